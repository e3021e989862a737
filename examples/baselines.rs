//! Benchmark baselines, not part of seqtail: the raw-read ceiling, the seed's timestamp +
//! in-memory-set design, and the naive single-`last` `_seq_no` loop (DESIGN.md §2).
//! Driven by scripts/bench.sh; each prints one JSON line of figures.
//!
//!   baselines raw   --url U --index I [--batch-size 500]
//!   baselines seed  --url U --index I [--batch-size 500] [--follow-secs S] [--count-lost]
//!   baselines naive --url U --index I [--batch-size 500] [--follow-secs S] [--count-lost]
//!   baselines ids   --url U --index I          (every id in the index, one per line)

use std::collections::HashSet;
use std::time::{Duration, Instant};

use seqtail::{Client, ClientConfig, Hit, ShardPage};
use serde_json::json;

struct Args {
    mode: String,
    url: String,
    index: String,
    batch: usize,
    follow: Duration,
    count_lost: bool,
}

fn args() -> Args {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let get = |name: &str| {
        argv.iter()
            .position(|a| a == name)
            .and_then(|i| argv.get(i + 1).cloned())
    };
    Args {
        mode: argv.first().cloned().unwrap_or_default(),
        url: get("--url").unwrap_or_else(|| "http://127.0.0.1:9200".into()),
        index: get("--index").unwrap_or_else(|| "events".into()),
        batch: get("--batch-size")
            .and_then(|b| b.parse().ok())
            .unwrap_or(500),
        follow: Duration::from_secs_f64(
            get("--follow-secs")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0.0),
        ),
        count_lost: argv.iter().any(|a| a == "--count-lost"),
    }
}

fn client(url: &str) -> Client {
    Client::new(&ClientConfig {
        urls: vec![url.to_string()],
        ..ClientConfig::default()
    })
    .expect("client")
}

fn main() {
    let a = args();
    let c = client(&a.url);
    match a.mode.as_str() {
        "raw" => raw(&c, &a),
        "seed" => follow(&c, &a, seed_poll),
        "naive" => follow(&c, &a, naive_poll),
        "ids" => {
            for id in all_ids(&c, &a.index) {
                println!("{id}");
            }
        }
        other => {
            eprintln!("unknown mode {other:?}: raw | seed | naive | ids");
            std::process::exit(64);
        }
    }
}

/// The ceiling: the same per-shard `_seq_no` pages seqtail reads, through the same client,
/// with no sink, no commit, no bookkeeping.
fn raw(c: &Client, a: &Args) {
    let started = Instant::now();
    let info = c.index_info(&a.index).expect("index");
    let stats = c.shard_stats(&info.name).expect("stats");
    c.refresh(&info.name).expect("refresh");
    let mut events = 0usize;
    for s in &stats {
        each_page(
            c,
            &info.name,
            s.shard,
            s.global_checkpoint,
            a.batch,
            |hits| events += hits.len(),
        );
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({"mode": "raw", "events": events, "seconds": secs})
    );
}

/// State of a polling baseline.
#[derive(Default)]
struct Poller {
    seen: HashSet<String>,
    delivered: usize,
    last_ts: i64,
    last_seq: i64,
}

/// Runs polls until the follow time is over, then one final poll; prints the figures.
fn follow(c: &Client, a: &Args, poll: fn(&Client, &Args, &mut Poller)) {
    let started = Instant::now();
    let mut p = Poller {
        last_ts: 0,
        last_seq: -1,
        ..Poller::default()
    };
    loop {
        let done = started.elapsed() >= a.follow;
        poll(c, a, &mut p);
        if done {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let secs = started.elapsed().as_secs_f64();
    let mut out = json!({
        "mode": a.mode, "delivered": p.delivered, "unique": p.seen.len(), "seconds": secs
    });
    if a.count_lost {
        let all = all_ids(c, &a.index);
        out["written"] = json!(all.len());
        out["lost"] = json!(all.iter().filter(|id| !p.seen.contains(*id)).count());
    }
    println!("{out}");
}

/// The seed's design: `timestamp >= last_ts`, sorted by timestamp, a set of seen ids.
fn seed_poll(c: &Client, a: &Args, p: &mut Poller) {
    c.refresh(&a.index).expect("refresh");
    loop {
        let v = c
            .search(
                &a.index,
                &json!({
                    "size": a.batch,
                    "sort": [{"timestamp": "asc"}],
                    "query": {"range": {"timestamp": {"gte": p.last_ts, "format": "epoch_millis"}}}
                }),
            )
            .expect("search");
        let hits = v["hits"]["hits"].as_array().cloned().unwrap_or_default();
        let mut new = 0;
        for h in &hits {
            let id = h["_id"].as_str().unwrap_or_default().to_string();
            if p.seen.insert(id) {
                new += 1;
                p.delivered += 1;
            }
            if let Some(ts) = h["sort"][0].as_i64() {
                p.last_ts = p.last_ts.max(ts);
            }
        }
        if hits.len() < a.batch || new == 0 {
            return;
        }
    }
}

/// DESIGN.md §2: one global `last` `_seq_no` over all shards.
fn naive_poll(c: &Client, a: &Args, p: &mut Poller) {
    c.refresh(&a.index).expect("refresh");
    loop {
        let v = c
            .search(
                &a.index,
                &json!({
                    "size": a.batch,
                    "seq_no_primary_term": true,
                    "sort": [{"_seq_no": "asc"}],
                    "query": {"range": {"_seq_no": {"gt": p.last_seq}}}
                }),
            )
            .expect("search");
        let hits = v["hits"]["hits"].as_array().cloned().unwrap_or_default();
        for h in &hits {
            p.seen
                .insert(h["_id"].as_str().unwrap_or_default().to_string());
            p.delivered += 1;
            p.last_seq = p.last_seq.max(h["_seq_no"].as_i64().unwrap_or(-1));
        }
        if hits.len() < a.batch {
            return;
        }
    }
}

/// Every id in the index, by sliced `_seq_no` pages per shard (no scroll context needed).
fn all_ids(c: &Client, index: &str) -> Vec<String> {
    let info = c.index_info(index).expect("index");
    c.refresh(&info.name).expect("refresh");
    let stats = c.shard_stats(&info.name).expect("stats");
    let mut ids = Vec::new();
    for s in stats {
        each_page(c, &info.name, s.shard, s.max_seq_no, 5000, |hits| {
            ids.extend(hits.iter().map(|h| h.id.clone()))
        });
    }
    ids
}

/// Reads one shard's `(-1, up_to]` in `_seq_no` pages of `size` from its primary.
fn each_page(
    c: &Client,
    index: &str,
    shard: u32,
    up_to: i64,
    size: usize,
    mut f: impl FnMut(&[Hit]),
) {
    let mut after = -1;
    loop {
        let page = ShardPage {
            shard,
            after,
            up_to,
            size,
            primary: true,
            exclude_marked_by: None,
        };
        let hits = c.search_shard(index, &page).expect("search");
        f(&hits);
        match hits.last() {
            Some(h) if hits.len() == size => after = h.seq_no,
            _ => break,
        }
    }
}
