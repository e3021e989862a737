//! The naive single-`last` `_seq_no` loop of DESIGN.md §2, kept only as a baseline that must
//! lose events where seqtail does not.

use serde_json::json;

use crate::helpers::{TestIndex, http, tally};

/// One poll of the naive design: everything with `_seq_no > last` across all shards, then
/// `last = max(seen)`. It is given every advantage (an explicit refresh first).
fn naive_poll(index: &str, last: &mut i64) -> Vec<String> {
    http("POST", &format!("/{index}/_refresh"), None);
    let (status, v) = http(
        "POST",
        &format!("/{index}/_search"),
        Some(json!({
            "size": 10000,
            "seq_no_primary_term": true,
            "sort": [{"_seq_no": "asc"}],
            "query": {"range": {"_seq_no": {"gt": *last}}}
        })),
    );
    assert_eq!(status, 200, "{v}");
    let mut ids = Vec::new();
    for hit in v["hits"]["hits"].as_array().into_iter().flatten() {
        ids.push(hit["_id"].as_str().unwrap().to_string());
        *last = (*last).max(hit["_seq_no"].as_i64().unwrap());
    }
    ids
}

#[test]
fn naive_single_last_loop_loses_events_that_seqtail_delivers() {
    let index = TestIndex::new("naive", 2);
    let on0 = index.routing_for(0);
    let on1 = index.routing_for(1);
    let doc = |id: String, r: &str| (id, Some(r.to_string()), json!({"event_type": "t"}));
    // Shard 0 gets ahead: seq_no 0..9; shard 1 stays behind: 0..1.
    let mut first: Vec<_> = (0..10).map(|i| doc(format!("a{i}"), &on0)).collect();
    first.extend((0..2).map(|i| doc(format!("b{i}"), &on1)));
    index.write(&first);

    let mut last = -1;
    let mut naive: Vec<String> = naive_poll(&index.name, &mut last);
    let mut seqtail: Vec<String> = index.run("g", &[]).ok().ids();
    assert_eq!(naive.len(), 12);
    assert_eq!(seqtail.len(), 12);
    assert_eq!(last, 9);

    // New events land on the shard whose numbers are behind: seq_no 2..5 on shard 1.
    let second: Vec<_> = (2..6).map(|i| doc(format!("b{i}"), &on1)).collect();
    index.write(&second);
    naive.extend(naive_poll(&index.name, &mut last));
    seqtail.extend(index.run("g", &[]).ok().ids());

    let written = first
        .iter()
        .chain(second.iter())
        .map(|d| d.0.clone())
        .collect();
    let (naive_lost, naive_dup) = tally(&written, &naive);
    let (lost, dup) = tally(&written, &seqtail);
    eprintln!(
        "naive loop: lost {naive_lost}, duplicated {naive_dup}; seqtail: lost {lost}, duplicated {dup}"
    );
    assert_eq!(
        naive_lost, 4,
        "the naive loop must skip shard 1's seq_no 2..5"
    );
    assert_eq!(
        (lost, dup),
        (0, 0),
        "seqtail must deliver every event exactly once"
    );
}
