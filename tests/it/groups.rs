//! Consumer-group operations against the real server: concurrent runs and slices never share a
//! shard, reset and delete (dry run by default), inspection output, history, health, marking.

use std::collections::BTreeSet;
use std::process::{Child, Stdio};

use serde_json::{Value, json};

use crate::helpers::{RunResult, TestIndex, http, tally};

fn spawn_run(index: &TestIndex, group: &str, args: &[&str]) -> Child {
    index
        .seqtail()
        .args(["run", "--group", group])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn seqtail(index: &TestIndex, args: &[&str]) -> (Option<i32>, String, String) {
    let out = index.seqtail().args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The raw offset documents of a group, `_seq_no` and `_primary_term` included.
fn raw_offsets(index: &TestIndex, group: &str) -> Vec<Value> {
    http("POST", &format!("/{}/_refresh", index.offsets), None);
    let (_, v) = http(
        "POST",
        &format!("/{}/_search", index.offsets),
        Some(
            json!({"size": 100, "seq_no_primary_term": true, "sort": [{"shard": "asc"}],
                    "query": {"term": {"group": group}}}),
        ),
    );
    v["hits"]["hits"].as_array().cloned().unwrap_or_default()
}

#[test]
fn two_runs_started_together_never_deliver_the_same_event() {
    let index = TestIndex::new("together", 5);
    let written = index.write_events("t", 0..2000);
    // A slow sink keeps both runs alive for seconds, so they truly overlap.
    let args = [
        "--batch-size",
        "50",
        "--max-batches",
        "0",
        "--exec",
        "cat; sleep 0.05",
    ];
    let a = spawn_run(&index, "g", &args);
    let b = spawn_run(&index, "g", &args);
    let a = RunResult::from(a.wait_with_output().unwrap());
    let b = RunResult::from(b.wait_with_output().unwrap());
    for r in [&a, &b] {
        assert!(matches!(r.code, Some(0) | Some(75)), "{}", r.stderr);
    }
    let mut all = a.ids();
    all.extend(b.ids());
    let (lost, dup) = tally(&written, &all);
    eprintln!(
        "together: A delivered {} (exit {:?}), B delivered {} (exit {:?}), lost {lost}, duplicated {dup}",
        a.events.len(),
        a.code,
        b.events.len(),
        b.code
    );
    assert_eq!((lost, dup), (0, 0));
    let reported = [&a, &b].iter().any(|r| {
        r.stderr.contains("skipped_shards=") || r.stderr.contains("leased by another live run")
    });
    assert!(
        reported,
        "one run reports the shards it skipped:\n{}\n{}",
        a.stderr, b.stderr
    );
}

#[test]
fn three_slices_deliver_every_event_once() {
    let index = TestIndex::new("slices", 5);
    let written = index.write_events("s", 0..1500);
    let children: Vec<Child> = (0..3)
        .map(|i| {
            let slice = format!("{i}/3");
            spawn_run(
                &index,
                "g",
                &[
                    "--slice",
                    &slice,
                    "--max-batches",
                    "0",
                    "--batch-size",
                    "100",
                ],
            )
        })
        .collect();
    let mut all = Vec::new();
    let mut shards_per_slice = Vec::new();
    for c in children {
        let r = RunResult::from(c.wait_with_output().unwrap()).ok();
        shards_per_slice.push(r.events.iter().map(|e| e.shard).collect::<BTreeSet<_>>());
        all.extend(r.ids());
    }
    assert_eq!(tally(&written, &all), (0, 0));
    assert_eq!(shards_per_slice[0], BTreeSet::from([0, 3]));
    assert_eq!(shards_per_slice[1], BTreeSet::from([1, 4]));
    assert_eq!(shards_per_slice[2], BTreeSet::from([2]));
    // An Indexed Job pod gets its slice from JOB_COMPLETION_INDEX.
    index.write_events("late", 0..100);
    let out = index
        .seqtail()
        .env("JOB_COMPLETION_INDEX", "1")
        .env("SEQTAIL_SLICES", "3")
        .args(["run", "--group", "g", "--max-batches", "0"])
        .output()
        .unwrap();
    let r = RunResult::from(out).ok();
    assert!(r.events.iter().all(|e| e.shard % 3 == 1), "{:?}", r.events);
    assert!(!r.events.is_empty());
}

fn timed_index(name: &str) -> (TestIndex, i64) {
    let index = TestIndex::new(name, 1);
    let t0: i64 = 1_790_000_000_000;
    let docs: Vec<_> = (0..100)
        .map(|i| {
            (
                format!("e{i}"),
                None,
                json!({"n": i, "timestamp": t0 + i * 1000}),
            )
        })
        .collect();
    index.write(&docs);
    (index, t0)
}

#[test]
fn resets_move_a_group_exactly_and_dry_runs_change_nothing() {
    let (index, t0) = timed_index("reset");
    let r = index.run("g", &["--max-batches", "0"]).ok();
    assert_eq!(r.events.len(), 100);
    let seq_of = |r: &RunResult| r.events.iter().map(|e| e.seq_no).collect::<Vec<_>>();

    // Dry run: the plan is printed, the stored documents are byte-identical.
    let before = raw_offsets(&index, "g");
    let (code, out, err) = seqtail(&index, &["offsets", "reset", "g", "--to", "seq:90"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("SHARD") && out.contains("dry run: nothing changed"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()[..3] == ["0", "99", "89"]),
        "{out}"
    );
    assert_eq!(raw_offsets(&index, "g"), before);

    let reset = |to: &str| {
        let (code, out, err) = seqtail(&index, &["offsets", "reset", "g", "--to", to, "--execute"]);
        assert_eq!(code, Some(0), "{err}");
        assert!(out.contains("applied."), "{out}");
    };
    reset("seq:90");
    let r = index.run("g", &["--max-batches", "0"]).ok();
    assert_eq!(seq_of(&r), (90..100).collect::<Vec<i64>>());

    let t = seqtail::rfc3339_millis(t0 + 95_000);
    reset(&format!("time:{t}"));
    let r = index.run("g", &["--max-batches", "0"]).ok();
    assert_eq!(seq_of(&r), (95..100).collect::<Vec<i64>>());

    reset("earliest");
    let r = index.run("g", &["--max-batches", "0"]).ok();
    assert_eq!(r.events.len(), 100);

    reset("latest");
    let new = index.write_events("new", 0..3);
    let r = index.run("g", &["--max-batches", "0"]).ok();
    assert_eq!(r.ids().into_iter().collect::<BTreeSet<_>>(), new);

    // Reset records appear in the history.
    let (_, out, _) = seqtail(
        &index,
        &["groups", "history", "g", "--json", "--limit", "100"],
    );
    let history: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(history.iter().filter(|h| h["kind"] == "reset").count(), 4);
}

#[test]
fn reset_refuses_a_live_lease_unless_forced_and_rekeys_a_recreated_index() {
    let index = TestIndex::new("resetlease", 1);
    index.write_events("a", 0..10);
    index.run("g", &[]).ok();
    // Another run holds the shard.
    let doc = raw_offsets(&index, "g").remove(0);
    let id = doc["_id"].as_str().unwrap().to_string();
    let (status, v) = http(
        "POST",
        &format!("/{}/_update/{id}", index.offsets),
        Some(
            json!({"doc": {"owner": "other-run@elsewhere", "lease_until": "2999-01-01T00:00:00.000Z"}}),
        ),
    );
    assert_eq!(status, 200, "{v}");
    let (code, _, err) = seqtail(
        &index,
        &["offsets", "reset", "g", "--to", "earliest", "--execute"],
    );
    assert_eq!(code, Some(75), "{err}");
    assert!(err.contains("other-run@elsewhere"), "{err}");
    let (code, out, _) = seqtail(&index, &["groups", "describe", "g"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("other-run@elsewhere"), "{out}");
    let (code, _, err) = seqtail(
        &index,
        &[
            "offsets",
            "reset",
            "g",
            "--to",
            "earliest",
            "--execute",
            "--force",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(index.run("g", &[]).ok().events.len(), 10);

    // Re-created index: run exits 65, the reset it names re-keys the group onto the new index.
    index.delete();
    index.create();
    let fresh = index.write_events("b", 0..7);
    assert_eq!(index.run("g", &[]).code, Some(65));
    let (code, out, err) = seqtail(
        &index,
        &["offsets", "reset", "g", "--to", "earliest", "--execute"],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("re-key"), "{out}");
    let r = index.run("g", &[]).ok();
    assert_eq!(r.ids().into_iter().collect::<BTreeSet<_>>(), fresh);
    assert_eq!(
        raw_offsets(&index, "g").len(),
        1,
        "the stale document is gone"
    );
}

#[test]
fn delete_is_a_dry_run_unless_executed() {
    let index = TestIndex::new("delete", 2);
    index.write_events("d", 0..10);
    index.run("g", &[]).ok();
    let before = raw_offsets(&index, "g");
    let (code, out, _) = seqtail(&index, &["offsets", "delete", "g"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("2 offset documents") && out.contains("dry run"),
        "{out}"
    );
    assert_eq!(raw_offsets(&index, "g"), before);
    let (code, out, _) = seqtail(&index, &["offsets", "delete", "g", "--execute"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(raw_offsets(&index, "g").is_empty());
    assert_eq!(
        index.run("g", &[]).ok().events.len(),
        10,
        "a deleted group starts over"
    );
}

#[test]
fn describe_list_history_and_health() {
    let index = TestIndex::new("describe", 3);
    index.write_events("x", 0..300);
    index
        .run("g", &["--batch-size", "40", "--max-batches", "3"])
        .ok();
    let (code, out, err) = seqtail(&index, &["groups", "describe", "g", "--json"]);
    assert_eq!(code, Some(0), "{err}");
    let rows: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(rows.len(), 3);
    let lag: i64 = rows.iter().map(|r| r["lag"].as_i64().unwrap()).sum();
    let events: u64 = rows
        .iter()
        .map(|r| r["events_total"].as_u64().unwrap())
        .sum();
    assert_eq!(events, 120);
    assert_eq!(lag, 180);
    for r in &rows {
        assert_eq!(r["state"], "ok");
        assert_eq!(r["owner"], Value::Null, "released at exit");
        assert_eq!(
            r["lag"].as_i64().unwrap(),
            r["checkpoint"].as_i64().unwrap() - r["committed"].as_i64().unwrap()
        );
    }
    let (_, out, _) = seqtail(&index, &["groups", "describe", "g"]);
    let header = out.lines().next().unwrap();
    for col in [
        "SHARD",
        "COMMITTED",
        "CHECKPOINT",
        "LAG",
        "OWNER",
        "LEASE-UNTIL",
        "LAST-COMMIT",
        "EVENTS",
    ] {
        assert!(header.contains(col), "{header}");
    }
    assert_eq!(out.lines().count(), 4);

    // Health: lagging now, healthy once caught up.
    let (code, out, _) = seqtail(&index, &["health", "--group", "g", "--max-lag", "0"]);
    assert_eq!(code, Some(1));
    assert!(out.contains("lag 180 events exceeds --max-lag 0"), "{out}");
    index.run("g", &["--max-batches", "0"]).ok();
    let (code, out, _) = seqtail(
        &index,
        &[
            "health",
            "--group",
            "g",
            "--max-lag",
            "0",
            "--max-age",
            "1m",
        ],
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with("OK "), "{out}");
    std::thread::sleep(std::time::Duration::from_millis(50));
    let (code, out, _) = seqtail(&index, &["health", "--group", "g", "--max-age", "10ms"]);
    assert_eq!(code, Some(1));
    assert!(out.contains("over --max-age"), "{out}");
    let (code, out, _) = seqtail(&index, &["health", "--group", "nobody", "--max-lag", "0"]);
    assert_eq!(code, Some(1));
    assert!(out.contains("no stored offsets"), "{out}");

    // List: one row per group with the total lag.
    let (_, out, _) = seqtail(&index, &["groups", "list", "--json"]);
    let groups: Vec<Value> = serde_json::from_str(&out).unwrap();
    let g = groups.iter().find(|g| g["group"] == "g").unwrap();
    assert_eq!(g["lag"], json!(0));
    assert_eq!(g["events_total"], json!(300));
    let (_, out, _) = seqtail(&index, &["groups", "list"]);
    assert!(out.lines().any(|l| l.starts_with("g ")), "{out}");

    // History: one record per commit, newest first, events adding up.
    let (_, out, _) = seqtail(
        &index,
        &["groups", "history", "g", "--json", "--limit", "1000"],
    );
    let history: Vec<Value> = serde_json::from_str(&out).unwrap();
    let commits: Vec<&Value> = history.iter().filter(|h| h["kind"] == "commit").collect();
    let total: u64 = commits.iter().map(|h| h["events"].as_u64().unwrap()).sum();
    assert_eq!(total, 300);
    let times: Vec<&str> = history
        .iter()
        .map(|h| h["time"].as_str().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");
    for h in &commits {
        assert!(h["to_seq_no"].as_i64() > h["from_seq_no"].as_i64(), "{h}");
    }
    let (_, out, _) = seqtail(&index, &["groups", "history", "g", "--limit", "2"]);
    assert_eq!(out.lines().count(), 3, "{out}");
    // --no-history writes none.
    index.write_events("y", 0..5);
    index.run("g", &["--no-history"]).ok();
    let (_, out, _) = seqtail(
        &index,
        &["groups", "history", "g", "--json", "--limit", "1000"],
    );
    assert_eq!(
        serde_json::from_str::<Vec<Value>>(&out).unwrap().len(),
        history.len()
    );
}

#[test]
fn mark_processed_marks_each_event_once_and_never_redelivers_its_own_marks() {
    let index = TestIndex::new("mark", 2);
    // Routed events: the marks must reach the right shard.
    let r0 = index.routing_for(0);
    let docs: Vec<_> = (0..60)
        .map(|i| {
            (
                format!("m{i}"),
                (i % 2 == 0).then(|| r0.clone()),
                json!({"n": i, "processed": false}),
            )
        })
        .collect();
    index.write(&docs);
    let first = index
        .run(
            "g",
            &[
                "--mark-processed",
                "--max-batches",
                "0",
                "--batch-size",
                "25",
            ],
        )
        .ok();
    let written: BTreeSet<String> = docs.iter().map(|d| d.0.clone()).collect();
    assert_eq!(tally(&written, &first.ids()), (0, 0));
    http("POST", &format!("/{}/_refresh", index.name), None);
    let (_, v) = http(
        "POST",
        &format!("/{}/_search", index.name),
        Some(json!({"size": 100, "seq_no_primary_term": true})),
    );
    let hits = v["hits"]["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 60);
    for h in hits {
        assert_eq!(h["_source"]["processed"], json!(true), "{h}");
        assert_eq!(
            h["_source"]["processed_by"],
            json!(["g"]),
            "marked once: {h}"
        );
    }
    // The marks gave the events new _seq_no; the group does not see them as new.
    let again = index
        .run(
            "g",
            &[
                "--mark-processed",
                "--until-caught-up",
                "--max-batches",
                "0",
            ],
        )
        .ok();
    assert!(again.events.is_empty(), "{:?}", again.events);
    // A second group sees each event once and adds itself to processed_by.
    let other = index
        .run("h", &["--mark-processed", "--max-batches", "0"])
        .ok();
    assert_eq!(tally(&written, &other.ids()), (0, 0));
    let (_, v) = http("GET", &format!("/{}/_doc/m1", index.name), None);
    assert_eq!(v["_source"]["processed_by"], json!(["g", "h"]));
}

#[test]
fn a_shard_leased_by_a_live_run_is_skipped_and_reported() {
    let index = TestIndex::new("skip", 3);
    index.write_events("a", 0..30);
    index.run("g", &["--max-batches", "0"]).ok();
    index.write_events("b", 0..60);
    // Another live run holds shard 1.
    let doc = raw_offsets(&index, "g").remove(1);
    assert_eq!(doc["_source"]["shard"], json!(1));
    let id = doc["_id"].as_str().unwrap().to_string();
    let (status, v) = http(
        "POST",
        &format!("/{}/_update/{id}", index.offsets),
        Some(
            json!({"doc": {"owner": "busy-run@elsewhere", "lease_until": "2999-01-01T00:00:00.000Z"}}),
        ),
    );
    assert_eq!(status, 200, "{v}");
    let r = index.run("g", &["--max-batches", "0"]).ok();
    assert!(r.stderr.contains("skipped_shards=1"), "{}", r.stderr);
    assert!(
        r.stderr.contains("leased by busy-run@elsewhere"),
        "{}",
        r.stderr
    );
    assert!(r.events.iter().all(|e| e.shard != 1));
    assert!(!r.events.is_empty());
    // The shard's offset is untouched: its events wait for the owner (or the lease's end).
    let mut expected = doc["_source"].clone();
    expected["owner"] = json!("busy-run@elsewhere");
    expected["lease_until"] = json!("2999-01-01T00:00:00.000Z");
    assert_eq!(raw_offsets(&index, "g").remove(1)["_source"], expected);
}
