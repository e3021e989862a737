//! `groups list`, `groups describe`, `groups history` and `health`: what a group has committed,
//! how far behind the live checkpoints it is, and who holds its shards.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::client::Client;
use crate::consumer::{HistoryRecord, leased_by_other};
use crate::error::{Error, Result};
use crate::offsets::{OffsetDoc, OffsetStore};
use crate::time;

/// One row of `groups describe`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ShardRow {
    pub group: String,
    pub index: String,
    pub index_uuid: String,
    pub shard: u32,
    pub committed: i64,
    /// The live global checkpoint (None when the stored index no longer exists as stored).
    pub checkpoint: Option<i64>,
    pub lag: Option<i64>,
    /// The holder of a live lease, if any.
    pub owner: Option<String>,
    pub lease_until: Option<String>,
    pub last_commit: String,
    pub last_run: String,
    pub events_total: u64,
    /// `ok`, or why the offsets do not match the live index.
    pub state: String,
}

/// One row of `groups list`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct GroupRow {
    pub group: String,
    pub index: String,
    pub shards: usize,
    pub lag: Option<i64>,
    pub active_owners: usize,
    pub last_commit: String,
    pub events_total: u64,
    pub state: String,
}

/// A live index: its uuid and, per shard, (global checkpoint, history uuid).
type LiveIndex = (String, Vec<(i64, String)>);

/// Offsets of a group (or all groups) next to the live checkpoints of their indices.
pub fn describe(
    client: &Client,
    offsets_index: &str,
    group: Option<&str>,
) -> Result<Vec<ShardRow>> {
    let store = OffsetStore::new(client.clone(), offsets_index);
    if !client.index_exists(offsets_index)? {
        return Ok(Vec::new());
    }
    let docs: Vec<OffsetDoc> = store.list(group)?.into_iter().map(|(_, d)| d).collect();
    // Live checkpoints, once per index name.
    let mut live: BTreeMap<String, Option<LiveIndex>> = BTreeMap::new();
    for doc in &docs {
        if live.contains_key(&doc.index) {
            continue;
        }
        let info = match client.index_info(&doc.index) {
            Ok(info) => Some(info),
            Err(Error::OpenSearch { status: 404, .. }) => None,
            Err(e) => return Err(e),
        };
        let entry = match info {
            Some(info) => {
                let stats = client.shard_stats(&info.name)?;
                let mut by_shard = vec![(-1i64, String::new()); info.shards as usize];
                for s in stats {
                    if let Some(slot) = by_shard.get_mut(s.shard as usize) {
                        *slot = (s.global_checkpoint, s.history_uuid);
                    }
                }
                Some((info.uuid, by_shard))
            }
            None => None,
        };
        live.insert(doc.index.clone(), entry);
    }
    let now = time::now_millis();
    let rows = docs
        .into_iter()
        .map(|doc| {
            let (checkpoint, state) = match live.get(&doc.index).cloned().flatten() {
                None => (None, "index missing".to_string()),
                Some((uuid, _)) if uuid != doc.index_uuid => (
                    None,
                    format!("index re-created (now uuid {uuid}); reset needed"),
                ),
                Some((_, shards)) => match shards.get(doc.shard as usize) {
                    None => (None, "shard no longer exists; reset needed".into()),
                    Some((_, history)) if history != &doc.history_uuid => (
                        None,
                        "shard history changed (restored); reset needed".into(),
                    ),
                    Some((gcp, _)) => (Some(*gcp), "ok".into()),
                },
            };
            let live_lease = leased_by_other(&doc, "", now);
            ShardRow {
                lag: checkpoint.map(|c| (c - doc.seq_no).max(0)),
                checkpoint,
                owner: if live_lease { doc.owner.clone() } else { None },
                lease_until: if live_lease {
                    doc.lease_until.clone()
                } else {
                    None
                },
                last_commit: doc.committed_at.clone(),
                last_run: doc.run_id.clone(),
                events_total: doc.events_total,
                committed: doc.seq_no,
                group: doc.group,
                index: doc.index,
                index_uuid: doc.index_uuid,
                shard: doc.shard,
                state,
            }
        })
        .collect();
    Ok(rows)
}

/// One row per (group, index).
pub fn list(client: &Client, offsets_index: &str) -> Result<Vec<GroupRow>> {
    let rows = describe(client, offsets_index, None)?;
    let mut groups: BTreeMap<(String, String), GroupRow> = BTreeMap::new();
    for r in rows {
        let entry = groups
            .entry((r.group.clone(), r.index.clone()))
            .or_insert_with(|| GroupRow {
                group: r.group.clone(),
                index: r.index.clone(),
                shards: 0,
                lag: Some(0),
                active_owners: 0,
                last_commit: String::new(),
                events_total: 0,
                state: "ok".into(),
            });
        entry.shards += 1;
        entry.lag = match (entry.lag, r.lag) {
            (Some(a), Some(b)) => Some(a + b),
            _ => None,
        };
        entry.active_owners += usize::from(r.owner.is_some());
        if r.last_commit > entry.last_commit {
            entry.last_commit = r.last_commit.clone();
        }
        entry.events_total += r.events_total;
        if r.state != "ok" {
            entry.state = r.state.clone();
        }
    }
    Ok(groups.into_values().collect())
}

/// Renders rows as an aligned text table.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<String>, out: &mut String| {
        let mut text = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                text.push_str(c);
            } else {
                text.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(headers.iter().map(|h| h.to_string()).collect(), &mut out);
    for row in rows {
        line(row.clone(), &mut out);
    }
    out
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(T::to_string).unwrap_or_else(|| "-".into())
}

/// The `groups describe` table.
pub fn describe_table(rows: &[ShardRow]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.group.clone(),
                r.index.clone(),
                r.shard.to_string(),
                r.committed.to_string(),
                opt(&r.checkpoint),
                opt(&r.lag),
                opt(&r.owner),
                opt(&r.lease_until),
                r.last_commit.clone(),
                r.events_total.to_string(),
                r.state.clone(),
            ]
        })
        .collect();
    table(
        &[
            "GROUP",
            "INDEX",
            "SHARD",
            "COMMITTED",
            "CHECKPOINT",
            "LAG",
            "OWNER",
            "LEASE-UNTIL",
            "LAST-COMMIT",
            "EVENTS",
            "STATE",
        ],
        &cells,
    )
}

/// The `groups list` table.
pub fn list_table(rows: &[GroupRow]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.group.clone(),
                r.index.clone(),
                r.shards.to_string(),
                opt(&r.lag),
                r.active_owners.to_string(),
                r.last_commit.clone(),
                r.events_total.to_string(),
                r.state.clone(),
            ]
        })
        .collect();
    table(
        &[
            "GROUP",
            "INDEX",
            "SHARDS",
            "LAG",
            "ACTIVE-RUNS",
            "LAST-COMMIT",
            "EVENTS",
            "STATE",
        ],
        &cells,
    )
}

/// The `groups history` table.
pub fn history_table(records: &[HistoryRecord]) -> String {
    let cells: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            vec![
                r.time.clone(),
                r.kind.clone(),
                r.index.clone(),
                r.shard.to_string(),
                r.from_seq_no.to_string(),
                r.to_seq_no.to_string(),
                r.events.to_string(),
                r.run_id.clone(),
                r.host.clone(),
            ]
        })
        .collect();
    table(
        &[
            "TIME", "KIND", "INDEX", "SHARD", "FROM", "TO", "EVENTS", "RUN", "HOST",
        ],
        &cells,
    )
}

/// The verdict of `health`: `Ok(reason)` when healthy, `Err(reason)` otherwise.
pub fn health(
    client: &Client,
    offsets_index: &str,
    group: &str,
    max_lag: Option<i64>,
    max_age: Option<std::time::Duration>,
) -> Result<std::result::Result<String, String>> {
    let rows = describe(client, offsets_index, Some(group))?;
    if rows.is_empty() {
        return Ok(Err(format!("group {group} has no stored offsets")));
    }
    if let Some(bad) = rows.iter().find(|r| r.state != "ok") {
        return Ok(Err(format!(
            "group {group} shard {} of {}: {}",
            bad.shard, bad.index, bad.state
        )));
    }
    let lag: i64 = rows.iter().filter_map(|r| r.lag).sum();
    let last = rows
        .iter()
        .map(|r| r.last_commit.as_str())
        .max()
        .unwrap_or("");
    let age_ms = time::parse_rfc3339_millis(last)
        .map(|t| (time::now_millis() - t).max(0))
        .unwrap_or(i64::MAX);
    let age = std::time::Duration::from_millis(age_ms as u64);
    if let Some(max) = max_lag {
        if lag > max {
            return Ok(Err(format!(
                "group {group} lag {lag} events exceeds --max-lag {max}"
            )));
        }
    }
    if let Some(max) = max_age {
        if age > max {
            return Ok(Err(format!(
                "group {group} last commit {last} is {} old, over --max-age {}",
                time::human(age),
                time::human(max)
            )));
        }
    }
    Ok(Ok(format!(
        "group {group} healthy: lag {lag} events, last commit {last} ({} ago)",
        time::human(age)
    )))
}
