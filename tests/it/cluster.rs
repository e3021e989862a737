//! Where replicas matter: a real 3-node cluster (scripts/opensearch.sh start --nodes 3), an
//! index with one replica, writers writing, short runs reading, and the node that holds
//! primaries (and is first in --url) killed with SIGKILL in the middle.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{RunResult, tally};

fn cluster() -> (Vec<String>, String) {
    let urls = std::env::var("SEQTAIL_TEST_CLUSTER_URLS").unwrap_or_else(|_| {
        panic!(
            "SEQTAIL_TEST_CLUSTER_URLS is not set: run `scripts/test.sh`, which starts a 3-node \
             cluster with `SEQTAIL_OS_NAME=trio scripts/opensearch.sh start --nodes 3`"
        )
    });
    let dir = std::env::var("SEQTAIL_TEST_CLUSTER_DIR").expect("SEQTAIL_TEST_CLUSTER_DIR");
    (urls.split(',').map(String::from).collect(), dir)
}

/// One call, failing over between the nodes in order.
fn call(
    urls: &[String],
    method: &str,
    path: &str,
    body: Option<String>,
    ndjson: bool,
) -> (u16, Value) {
    let agent = crate::helpers::agent();
    for url in urls {
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{url}{path}"))
            .header(
                "Content-Type",
                if ndjson {
                    "application/x-ndjson"
                } else {
                    "application/json"
                },
            );
        let result = match &body {
            Some(b) => agent.run(request.body(b.clone()).unwrap()),
            None => agent.run(request.body(()).unwrap()),
        };
        if let Ok(mut r) = result {
            let status = r.status().as_u16();
            let text = r.body_mut().read_to_string().unwrap_or_default();
            return (status, serde_json::from_str(&text).unwrap_or(Value::Null));
        }
    }
    panic!("no node of {urls:?} answered {method} {path}");
}

#[test]
fn killing_a_primary_node_mid_stream_loses_nothing() {
    let (urls, dir) = cluster();
    let index = format!("it-cluster-{}", std::process::id());
    let offsets = format!("{index}-offsets");
    let (status, v) = call(
        &urls,
        "PUT",
        &format!("/{index}"),
        Some(
            json!({"settings": {"index": {"number_of_shards": 3, "number_of_replicas": 1}}})
                .to_string(),
        ),
        false,
    );
    assert_eq!(status, 200, "{v}");
    let (_, health) = call(
        &urls,
        "GET",
        &format!("/_cluster/health/{index}?wait_for_status=green&timeout=60s"),
        None,
        false,
    );
    assert_eq!(health["status"], "green", "{health}");

    // Writers: 60 bulks of 50 events; an event counts as written once OpenSearch acknowledged it.
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let urls = urls.clone();
        let index = index.clone();
        let done = Arc::clone(&done);
        let dir = dir.clone();
        std::thread::spawn(move || {
            let mut acked = BTreeSet::new();
            let mut killed = None;
            for round in 0..60 {
                // A third of the way in, the node holding primaries dies mid-stream.
                if round == 20 {
                    killed = Some(kill_primary_node(&urls, &dir, &index));
                }
                let mut pending: Vec<String> = (0..50).map(|i| format!("c{round}-{i}")).collect();
                let mut tries = 0;
                while !pending.is_empty() && tries < 20 {
                    tries += 1;
                    let body: String = pending
                        .iter()
                        .map(|id| {
                            format!(
                                "{}\n{}\n",
                                json!({"index": {"_id": id}}),
                                json!({"round": round})
                            )
                        })
                        .collect();
                    let (status, v) = call(
                        &urls,
                        "POST",
                        &format!("/{index}/_bulk?timeout=30s"),
                        Some(body),
                        true,
                    );
                    let mut failed = Vec::new();
                    for (id, item) in pending
                        .iter()
                        .zip(v["items"].as_array().cloned().unwrap_or_default())
                    {
                        if (200..300).contains(&item["index"]["status"].as_u64().unwrap_or(0)) {
                            acked.insert(id.clone());
                        } else {
                            failed.push(id.clone());
                        }
                    }
                    if status != 200 {
                        failed = pending.clone();
                    }
                    pending = failed;
                    if !pending.is_empty() {
                        std::thread::sleep(Duration::from_millis(500));
                    }
                }
                std::thread::sleep(Duration::from_millis(40));
            }
            done.store(true, Ordering::SeqCst);
            (acked, killed)
        })
    };

    let url_arg = urls.join(",");
    let run = |args: &[&str]| -> RunResult {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_seqtail"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .args([
                "--url",
                &url_arg,
                "--index",
                &index,
                "--offsets-index",
                &offsets,
                "--retry-timeout",
                "20s",
                "--timeout",
                "10s",
            ])
            .args(["run", "--group", "g", "--lease-ttl", "8s"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        RunResult::from(out)
    };

    let mut delivered = Vec::new();
    let mut codes = Vec::new();
    while !done.load(Ordering::SeqCst) {
        let r = run(&["--max-batches", "3", "--batch-size", "100"]);
        delivered.extend(r.ids());
        codes.push(r.code);
        std::thread::sleep(Duration::from_millis(100));
    }
    let (acked, killed) = writer.join().unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let r = run(&["--until-caught-up", "--max-batches", "0"]);
        delivered.extend(r.ids());
        codes.push(r.code);
        if r.code == Some(0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no clean catch-up run within 90s: {}",
            r.stderr
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    let failed_runs = codes
        .iter()
        .filter(|c| **c != Some(0) && **c != Some(75))
        .count();
    let unique: BTreeSet<String> = delivered.iter().cloned().collect();
    let lost = acked.difference(&unique).count();
    let (_, dup) = tally(&acked, &delivered);
    eprintln!(
        "3 nodes, killed {:?}: acknowledged {}, delivered {} ({} unique) in {} runs ({} failed, exit codes {:?}), lost {lost}, redelivered {dup}",
        killed,
        acked.len(),
        delivered.len(),
        unique.len(),
        codes.len(),
        failed_runs,
        codes.iter().collect::<BTreeSet<_>>()
    );
    assert!(killed.is_some(), "the node was killed during the writes");
    assert_eq!(lost, 0, "every acknowledged event is delivered");
    assert!(
        dup <= failed_runs * 100 + 50 * 20,
        "redeliveries bounded by failed runs' batches"
    );
    for c in &codes {
        assert!(
            matches!(c, Some(0) | Some(69) | Some(70) | Some(75)),
            "unexpected exit {c:?}"
        );
    }
    call(
        &urls,
        "DELETE",
        &format!("/{index},{offsets},{offsets}-history"),
        None,
        false,
    );
}

/// SIGKILLs the node holding a primary of `index`, preferring node-0 (the first --url).
fn kill_primary_node(urls: &[String], dir: &str, index: &str) -> String {
    let (_, shards) = call(
        urls,
        "GET",
        &format!("/_cat/shards/{index}?format=json"),
        None,
        false,
    );
    let primaries: BTreeSet<String> = shards
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["prirep"] == "p")
        .filter_map(|s| s["node"].as_str().map(String::from))
        .collect();
    let node = if primaries.contains("node-0") {
        "node-0".to_string()
    } else {
        primaries.iter().next().cloned().expect("a primary")
    };
    let pid = std::fs::read_to_string(format!("{dir}/{node}/pid")).unwrap();
    let status = std::process::Command::new("kill")
        .args(["-9", pid.trim()])
        .status()
        .unwrap();
    assert!(status.success());
    node
}
