//! `seqtail produce` against the real server: idempotent ids, routing, steady rate, NDJSON
//! errors with line numbers, rejected documents named.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{Output, Stdio};

use serde_json::{Value, json};

use crate::helpers::{TempDir, TestIndex, http};

fn produce(index: &TestIndex, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = index
        .seqtail()
        .arg("produce")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        pipe.write_all(text.as_bytes()).unwrap();
    }
    drop(pipe);
    child.wait_with_output().unwrap()
}

fn count(index: &TestIndex) -> u64 {
    http("POST", &format!("/{}/_refresh", index.name), None);
    let (_, v) = http("GET", &format!("/{}/_count", index.name), None);
    v["count"].as_u64().unwrap()
}

#[test]
fn generated_events_with_an_id_prefix_are_idempotent_and_routed_by_key() {
    let index = TestIndex::new("prodgen", 5);
    let args = [
        "--count",
        "1200",
        "--bulk-size",
        "250",
        "--id-prefix",
        "ev-",
        "--keys",
        "7",
        "--routing-field",
        "key",
        "--payload-bytes",
        "64",
    ];
    let out = produce(&index, &args, None);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("written=1200"));
    assert_eq!(count(&index), 1200);
    // Re-running the same ingest overwrites, it does not duplicate.
    let out = produce(&index, &args, None);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(count(&index), 1200);
    // One key, one shard: every delivered event of a key comes from the same shard.
    let r = index
        .run("g", &["--max-batches", "0", "--batch-size", "1000"])
        .ok();
    assert_eq!(
        r.events.len(),
        1200,
        "the overwritten versions are the ones delivered"
    );
    let (_, v) = http(
        "POST",
        &format!("/{}/_search", index.name),
        Some(json!({"size": 1, "query": {"term": {"_id": "ev-42"}}})),
    );
    let src = &v["hits"]["hits"][0]["_source"];
    assert_eq!(src["seq"], json!(42));
    assert_eq!(src["processed"], json!(false));
    assert_eq!(src["payload"].as_str().unwrap().len(), 64);
    let mut shards_of_key: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    for e in &r.events {
        let seq: u64 = e.id.trim_start_matches("ev-").parse().unwrap();
        shards_of_key
            .entry(format!("key-{}", seq % 7))
            .or_default()
            .insert(e.shard);
    }
    assert_eq!(shards_of_key.len(), 7);
    assert!(
        shards_of_key.values().all(|s| s.len() == 1),
        "{shards_of_key:?}"
    );
}

#[test]
fn the_rate_is_never_exceeded() {
    let index = TestIndex::new("prodrate", 1);
    // 300 events at 200/s: the last one is due at 1.495 s, so the run cannot end sooner; and
    // --duration stops at the events due within it.
    let started = std::time::Instant::now();
    let out = produce(
        &index,
        &["--rate", "200", "--count", "300", "--payload-bytes", "16"],
        None,
    );
    let took = started.elapsed();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(count(&index), 300);
    eprintln!("--rate 200 --count 300 took {took:?}");
    assert!(
        took >= std::time::Duration::from_millis(1495),
        "300 events at 200/s took {took:?}"
    );
    let out = produce(
        &index,
        &["--rate", "100", "--duration", "1s", "--id-prefix", "d-"],
        None,
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("written=100 "),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_malformed_line_is_named_and_nothing_after_it_is_written_unless_skipped() {
    let index = TestIndex::new("prodbad", 1);
    let input = "{\"a\":1}\n{\"a\":2}\n{oops\n{\"a\":4}\n\n{\"a\":5}\n";
    let out = produce(
        &index,
        &["--from", "-", "--id-prefix", "line-"],
        Some(input),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("line 3: not a JSON object"), "{err}");
    assert!(
        err.contains("The 2 documents before it were written"),
        "{err}"
    );
    assert_eq!(count(&index), 2);
    let out = produce(
        &index,
        &[
            "--from",
            "-",
            "--id-prefix",
            "line-",
            "--on-bad-line",
            "skip",
        ],
        Some(input),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("line 3") && err.contains("skipped_lines=1"),
        "{err}"
    );
    assert_eq!(
        count(&index),
        4,
        "lines 1, 2, 4, 6 (ids by line number, so no duplicates)"
    );
    let (_, v) = http("GET", &format!("/{}/_doc/line-6", index.name), None);
    assert_eq!(v["_source"]["a"], json!(5));
}

#[test]
fn a_file_with_an_id_field_and_rejected_documents() {
    let index = TestIndex::new("prodrej", 1);
    // A strict mapping makes OpenSearch reject a document with an unknown field.
    http(
        "PUT",
        &format!("/{}/_mapping", index.name),
        Some(
            json!({"dynamic": "strict", "properties": {"uid": {"type": "keyword"}, "v": {"type": "long"}}}),
        ),
    );
    let dir = TempDir::new("prodrej");
    let path = dir.path("in.ndjson");
    std::fs::write(
        &path,
        "{\"uid\":\"a\",\"v\":1}\n{\"uid\":\"b\",\"extra\":true}\n{\"uid\":\"c\",\"v\":3}\n",
    )
    .unwrap();
    let out = produce(&index, &["--from", &path, "--id-field", "uid"], None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("document b rejected: HTTP 400 strict_dynamic_mapping_exception"),
        "{err}"
    );
    assert!(
        err.contains("1 of 3 documents could not be written"),
        "{err}"
    );
    assert_eq!(count(&index), 2);
    let (_, v) = http("GET", &format!("/{}/_doc/c", index.name), None);
    assert_eq!(v["_source"]["v"], Value::from(3));
}
