//! Delivery guarantees against the real server: exactly once across clean runs, at most one
//! batch redelivered after SIGKILL, nothing after SIGTERM, concurrent writers, groups, identity.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;

use crate::helpers::{TempDir, TestIndex, http, parse_events, tally};

#[test]
fn two_runs_deliver_every_event_once_and_a_third_delivers_nothing() {
    let index = TestIndex::new("twice", 5);
    let written = index.write_events("e", 0..1000);
    let first = index
        .run("g", &["--batch-size", "50", "--max-batches", "6"])
        .ok();
    assert_eq!(
        first.events.len(),
        300,
        "6 batches of 50:\n{}",
        first.stderr
    );
    assert!(
        first.stderr.contains("reason=max-batches"),
        "{}",
        first.stderr
    );
    let second = index
        .run("g", &["--batch-size", "50", "--max-batches", "0"])
        .ok();
    assert!(
        second.stderr.contains("reason=caught-up"),
        "{}",
        second.stderr
    );
    let mut all = first.ids();
    all.extend(second.ids());
    let (lost, dup) = tally(&written, &all);
    eprintln!(
        "written {}, delivered {} + {}, lost {lost}, redelivered {dup}",
        written.len(),
        first.events.len(),
        second.events.len()
    );
    assert_eq!((lost, dup), (0, 0));
    let third = index.run("g", &[]).ok();
    assert!(third.events.is_empty());
    // Per shard, events arrive in ascending _seq_no.
    for shard in 0..5 {
        let seqs: Vec<i64> = first
            .events
            .iter()
            .chain(second.events.iter())
            .filter(|e| e.shard == shard)
            .map(|e| e.seq_no)
            .collect();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "shard {shard} out of order"
        );
    }
    // Committed offsets equal the checkpoint of each shard.
    let offsets = index.offsets_of("g");
    assert_eq!(offsets.len(), 5);
    let total: u64 = offsets
        .values()
        .map(|o| o["events_total"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 1000);
    for o in offsets.values() {
        assert_eq!(o["seq_no"], o["checkpoint"], "{o}");
    }
}

#[test]
fn sigkill_between_sink_and_commit_redelivers_at_most_the_batch_in_flight() {
    let index = TestIndex::new("kill9", 3);
    let written = index.write_events("k", 0..600);
    let dir = TempDir::new("kill9");
    let out = dir.path("delivered.ndjson");
    let count = dir.path("batches");
    // The sink appends the batch, then on the 4th batch kills seqtail with SIGKILL before it can
    // commit: the batch has been delivered, its offset not.
    let exec = format!(
        "cat >> {out}; echo x >> {count}; if [ $(wc -l < {count}) -eq 4 ]; then kill -9 $PPID; fi"
    );
    let lease = ["--lease-ttl", "6s", "--exec-timeout", "5s"];
    let first = ["--batch-size", "40", "--max-batches", "0", "--exec", &exec];
    let killed = index.run("g", &[&first[..], &lease].concat());
    assert_eq!(
        killed.code, None,
        "seqtail should have died of SIGKILL:\n{}",
        killed.stderr
    );
    let before = parse_events(&std::fs::read_to_string(&out).unwrap()).len();
    assert_eq!(before, 160, "4 batches of 40 delivered before the kill");

    // The dead run still holds its shards: the next run finds nothing it may read.
    let exec = format!("cat >> {out}");
    let next = ["--batch-size", "40", "--max-batches", "0", "--exec", &exec];
    let args = [&next[..], &lease].concat();
    let blocked = index.run("g", &args);
    assert_eq!(blocked.code, Some(75), "{}", blocked.stderr);
    assert!(
        blocked.stderr.contains("leased by another live run"),
        "{}",
        blocked.stderr
    );
    assert!(parse_events(&std::fs::read_to_string(&out).unwrap()).len() == 160);
    // Once the lease has expired, the next run takes over.
    std::thread::sleep(Duration::from_millis(6100));
    index.run("g", &args).ok();
    let delivered: Vec<String> = parse_events(&std::fs::read_to_string(&out).unwrap())
        .into_iter()
        .map(|e| e.id)
        .collect();
    let (lost, dup) = tally(&written, &delivered);
    eprintln!(
        "SIGKILL: written {}, delivered {}, lost {lost}, redelivered {dup}",
        written.len(),
        delivered.len()
    );
    assert_eq!(lost, 0);
    assert_eq!(dup, 40, "exactly the batch in flight is redelivered");
}

#[test]
fn sigterm_mid_run_finishes_the_batch_and_redelivers_nothing() {
    let index = TestIndex::new("term", 3);
    let written = index.write_events("t", 0..600);
    let dir = TempDir::new("term");
    let out = dir.path("delivered.ndjson");
    let count = dir.path("batches");
    // On the 3rd batch the sink sends SIGTERM to seqtail and keeps working a little: seqtail
    // must wait for it, commit that batch, and stop.
    let exec = format!(
        "echo x >> {count}; if [ $(wc -l < {count}) -eq 3 ]; then kill -TERM $PPID; sleep 0.3; fi; cat >> {out}"
    );
    let stopped = index.run(
        "g",
        &["--batch-size", "40", "--max-batches", "0", "--exec", &exec],
    );
    assert_eq!(stopped.code, Some(0), "{}", stopped.stderr);
    assert!(
        stopped.stderr.contains("reason=signal"),
        "{}",
        stopped.stderr
    );
    let first = parse_events(&std::fs::read_to_string(&out).unwrap()).len();
    assert_eq!(first, 120, "3 batches delivered and committed");

    let exec = format!("cat >> {out}");
    index
        .run(
            "g",
            &["--batch-size", "40", "--max-batches", "0", "--exec", &exec],
        )
        .ok();
    let delivered: Vec<String> = parse_events(&std::fs::read_to_string(&out).unwrap())
        .into_iter()
        .map(|e| e.id)
        .collect();
    let (lost, dup) = tally(&written, &delivered);
    eprintln!(
        "SIGTERM: written {}, delivered {}, lost {lost}, redelivered {dup}",
        written.len(),
        delivered.len()
    );
    assert_eq!((lost, dup), (0, 0));
}

#[test]
fn four_concurrent_writers_on_five_shards_lose_nothing() {
    let index = Arc::new(TestIndex::new("writers", 5));
    let done = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let index = Arc::clone(&index);
        writers.push(std::thread::spawn(move || {
            let mut ids = BTreeSet::new();
            for round in 0..60 {
                let docs: Vec<_> = (0..25)
                    .map(|i| {
                        let id = format!("w{w}-{round}-{i}");
                        ids.insert(id.clone());
                        (id, None, json!({"writer": w, "round": round}))
                    })
                    .collect();
                index.write(&docs);
                std::thread::sleep(Duration::from_millis(20));
            }
            ids
        }));
    }
    // Short runs in a loop while the writers write.
    let mut delivered = Vec::new();
    let mut runs = 0;
    let reader = {
        let done = Arc::clone(&done);
        move || done.load(Ordering::SeqCst)
    };
    let mut written = BTreeSet::new();
    let mut handles = Some(writers);
    loop {
        let r = index
            .run("g", &["--batch-size", "100", "--max-batches", "3"])
            .ok();
        runs += 1;
        delivered.extend(r.ids());
        if let Some(hs) = handles.take() {
            if hs.iter().all(|h| h.is_finished()) {
                for h in hs {
                    written.extend(h.join().unwrap());
                }
                done.store(true, Ordering::SeqCst);
            } else {
                handles = Some(hs);
            }
        }
        if reader() {
            break;
        }
    }
    let tail = index
        .run("g", &["--max-batches", "0", "--until-caught-up"])
        .ok();
    delivered.extend(tail.ids());
    let (lost, dup) = tally(&written, &delivered);
    eprintln!(
        "4 writers: written {}, delivered {} in {} runs, lost {lost}, duplicated {dup}",
        written.len(),
        delivered.len(),
        runs + 1
    );
    assert_eq!(written.len(), 6000);
    assert_eq!((lost, dup), (0, 0));
}

#[test]
fn two_groups_keep_independent_offsets() {
    let index = TestIndex::new("groups", 2);
    let first = index.write_events("a", 0..200);
    let a1 = index.run("alpha", &["--max-batches", "0"]).ok();
    let b1 = index
        .run("beta", &["--batch-size", "30", "--max-batches", "2"])
        .ok();
    assert_eq!(a1.events.len(), 200);
    assert_eq!(b1.events.len(), 60);
    let second = index.write_events("b", 0..50);
    let a2 = index.run("alpha", &["--max-batches", "0"]).ok();
    let b2 = index.run("beta", &["--max-batches", "0"]).ok();
    let all: BTreeSet<String> = first.union(&second).cloned().collect();
    assert_eq!(
        a2.ids().into_iter().collect::<BTreeSet<_>>(),
        second,
        "alpha reads only the new events"
    );
    let mut beta = b1.ids();
    beta.extend(b2.ids());
    assert_eq!(tally(&all, &beta), (0, 0));
    assert_eq!(beta.len(), 250);
}

#[test]
fn recreated_index_exits_65_with_a_reset_hint_and_commits_nothing() {
    let index = TestIndex::new("recreate", 2);
    index.write_events("x", 0..20);
    index.run("g", &[]).ok();
    let before = index.offsets_of("g");
    index.delete();
    index.create();
    index.write_events("y", 0..20);
    let r = index.run("g", &[]);
    assert_eq!(r.code, Some(65), "{}", r.stderr);
    assert!(r.events.is_empty());
    assert!(r.stderr.contains("seqtail offsets reset g"), "{}", r.stderr);
    assert!(r.stderr.contains("re-created"), "{}", r.stderr);
    assert_eq!(index.offsets_of("g"), before, "nothing committed");
}

#[test]
fn a_failing_sink_exits_1_and_commits_nothing() {
    let index = TestIndex::new("sinkfail", 2);
    let written = index.write_events("s", 0..30);
    let r = index.run("g", &["--exec", "cat >/dev/null; exit 3"]);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(
        r.stderr.contains("exited with exit status: 3"),
        "{}",
        r.stderr
    );
    let again = index.run("g", &["--max-batches", "0"]).ok();
    assert_eq!(
        tally(&written, &again.ids()),
        (0, 0),
        "everything is delivered by the next run"
    );
}

#[test]
fn a_concurrent_commit_makes_the_run_exit_75() {
    let index = TestIndex::new("conflict", 1);
    index.write_events("c", 0..30);
    index
        .run("g", &["--batch-size", "10", "--max-batches", "1"])
        .ok();
    let offsets = index.offsets_of("g");
    let uuid = offsets[&0]["index_uuid"].as_str().unwrap().to_string();
    // The sink moves the offset under the run (as another run would): the commit gets a 409.
    let bump = format!(
        "cat >/dev/null; curl -s -XPOST '{}/{}/_update/g:{uuid}:0' -H 'content-type: application/json' \
         -d '{{\"doc\":{{\"host\":\"intruder\"}}}}' >/dev/null",
        crate::helpers::url(),
        index.offsets
    );
    let r = index.run("g", &["--batch-size", "10", "--exec", &bump]);
    assert_eq!(r.code, Some(75), "{}", r.stderr);
    assert!(
        r.stderr.contains("another run owns the shard"),
        "{}",
        r.stderr
    );
    assert_eq!(
        index.offsets_of("g")[&0]["seq_no"],
        json!(9),
        "the conflicting batch is not committed"
    );
}

#[test]
fn start_from_latest_skips_existing_events() {
    let index = TestIndex::new("latest", 2);
    index.write_events("old", 0..40);
    let r = index.run("g", &["--start-from", "latest"]).ok();
    assert!(r.events.is_empty());
    let new = index.write_events("new", 0..10);
    let r = index.run("g", &[]).ok();
    assert_eq!(r.ids().into_iter().collect::<BTreeSet<_>>(), new);
}

#[test]
fn until_caught_up_takes_new_snapshots_and_gaps_are_skipped() {
    let index = TestIndex::new("caughtup", 1);
    index.write_events("u", 0..20);
    let dir = TempDir::new("caughtup");
    let out = dir.path("out");
    let flag = dir.path("wrote");
    // During the first batch the sink makes 5 more events visible: they lie beyond the run's
    // first snapshot.
    let late = dir.path("late.ndjson");
    let body: String = (0..5)
        .map(|i| format!("{{\"index\":{{\"_id\":\"late{i}\"}}}}\n{{\"late\":true}}\n"))
        .collect();
    std::fs::write(&late, &body).unwrap();
    let exec = format!(
        "cat >> {out}; if [ ! -e {flag} ]; then touch {flag}; curl -fsS -XPOST \
         '{}/{}/_bulk?refresh=true' -H 'content-type: application/x-ndjson' \
         --data-binary @{late} >/dev/null; fi",
        crate::helpers::url(),
        index.name
    );
    let r = index
        .run(
            "g",
            &["--batch-size", "10", "--max-batches", "0", "--exec", &exec],
        )
        .ok();
    assert!(r.stderr.contains("reason=caught-up"), "{}", r.stderr);
    let without = parse_events(&std::fs::read_to_string(&out).unwrap()).len();
    assert_eq!(
        without, 20,
        "one snapshot: the late events wait for the next run"
    );
    let r = index
        .run(
            "g",
            &[
                "--until-caught-up",
                "--max-batches",
                "0",
                "--exec",
                &format!("cat >> {out}"),
            ],
        )
        .ok();
    assert!(r.stderr.contains("events=5 "), "{}", r.stderr);

    std::fs::remove_file(&flag).unwrap();
    std::fs::write(&out, "").unwrap();
    std::fs::write(&late, body.replace("late", "later")).unwrap();
    index.write_events("v", 0..20);
    let r = index
        .run(
            "g2",
            &[
                "--until-caught-up",
                "--batch-size",
                "10",
                "--max-batches",
                "0",
                "--exec",
                &exec,
            ],
        )
        .ok();
    let delivered = parse_events(&std::fs::read_to_string(&out).unwrap()).len();
    assert_eq!(
        delivered, 50,
        "--until-caught-up reads the late events in the same run:\n{}",
        r.stderr
    );

    // Gaps: updating documents leaves holes in _seq_no that are skipped, not waited for.
    index.write_events("u", 0..10);
    let r = index.run("g", &["--max-batches", "0"]).ok();
    // Group g has not read v0..19 and later0..4 yet (25), plus the 10 updated documents.
    assert_eq!(
        r.events.len(),
        35,
        "updated documents come back once with their new seq_no"
    );
    let updated: BTreeSet<String> = r.ids().into_iter().filter(|i| i.starts_with('u')).collect();
    assert_eq!(updated, (0..10).map(|i| format!("u{i}")).collect());
    for o in index.offsets_of("g").values() {
        assert_eq!(o["seq_no"], o["checkpoint"], "{o}");
    }
}

#[test]
fn init_is_idempotent_and_reports_drift() {
    let dir = TestIndex::new("initbase", 1);
    let name = format!("{}-events", dir.name);
    let run = |args: &[&str]| {
        let out = dir
            .seqtail()
            .env("SEQTAIL_INDEX", &name)
            .arg("init")
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = run(&["--shards", "3", "--replicas", "0"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(&format!("created {name}")), "{out}");
    let (_, settings) = http("GET", &format!("/{name}/_settings"), None);
    assert_eq!(
        settings[&name]["settings"]["index"]["number_of_shards"],
        "3"
    );
    let (_, mapping) = http("GET", &format!("/{name}/_mapping"), None);
    assert_eq!(
        mapping[&name]["mappings"]["properties"]["processed"]["null_value"],
        json!(false)
    );
    let (code, out) = run(&["--shards", "3", "--replicas", "0"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains(&format!("exists  {name}")) && !out.contains("drift"),
        "{out}"
    );
    let (_, out) = run(&["--shards", "4", "--replicas", "0"]);
    assert!(
        out.contains("number_of_shards is 3, init asks for 4"),
        "{out}"
    );
    http("DELETE", &format!("/{name}"), None);
}
