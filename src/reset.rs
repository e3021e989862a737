//! `offsets reset` and `offsets delete`: plan first, change only with `--execute`, and never
//! under a live lease unless forced.

use serde::Serialize;
use serde_json::json;

use crate::cli::{ResetArgs, ResetTo};
use crate::client::{Client, DocVersion};
use crate::consumer::{HistoryRecord, live_lease};
use crate::error::{Error, Result};
use crate::offsets::{OffsetDoc, OffsetStore};
use crate::time;

/// One shard of a reset plan.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PlanRow {
    pub shard: u32,
    /// The stored position for the live index, if any.
    pub current: Option<i64>,
    /// The new stored position: the next event delivered is the first after it.
    pub new: i64,
    pub checkpoint: i64,
    /// A live lease on the shard (`owner until time`).
    pub lease: Option<String>,
}

/// What a reset would do.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub group: String,
    pub index: String,
    pub index_uuid: String,
    pub shards: Vec<PlanRow>,
    /// Offsets of this group stored for an earlier incarnation of the index, re-keyed away.
    pub stale: Vec<String>,
    #[serde(skip)]
    stale_docs: Vec<(DocVersion, OffsetDoc)>,
    #[serde(skip)]
    current_docs: Vec<Option<(DocVersion, OffsetDoc)>>,
    #[serde(skip)]
    history_uuids: Vec<String>,
}

impl Plan {
    pub fn leased(&self) -> Vec<&PlanRow> {
        self.shards.iter().filter(|r| r.lease.is_some()).collect()
    }

    pub fn render(&self, execute: bool) -> String {
        let rows: Vec<Vec<String>> = self
            .shards
            .iter()
            .map(|r| {
                vec![
                    r.shard.to_string(),
                    r.current
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| "-".into()),
                    r.new.to_string(),
                    r.checkpoint.to_string(),
                    r.lease.clone().unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        let mut out = format!(
            "reset plan for group {} on index {} (uuid {}):\n",
            self.group, self.index, self.index_uuid
        );
        out.push_str(&crate::inspect::table(
            &["SHARD", "CURRENT", "NEW", "CHECKPOINT", "LEASE"],
            &rows,
        ));
        for s in &self.stale {
            out.push_str(&format!("re-key: remove stale offset {s}\n"));
        }
        out.push_str(if execute {
            "applied.\n"
        } else {
            "dry run: nothing changed; add --execute to apply.\n"
        });
        out
    }
}

/// Builds the plan: live identity, stored positions, and the new position of every shard.
pub fn plan_reset(
    client: &Client,
    offsets_index: &str,
    index: &str,
    args: &ResetArgs,
) -> Result<Plan> {
    let store = OffsetStore::new(client.clone(), offsets_index);
    store.ensure_index()?;
    let info = client.index_info(index)?;
    let stats = client.shard_stats(&info.name)?;
    if let Some(s) = args.shard {
        if s >= info.shards {
            return Err(Error::Config(format!(
                "--shard {s}: index {} has shards 0..{}",
                info.name,
                info.shards - 1
            )));
        }
    }
    let stored = store.find_group(&args.group, index, &info.uuid)?;
    let now = time::now_millis();
    let targets: Vec<u32> = (0..info.shards)
        .filter(|s| args.shard.is_none_or(|only| only == *s))
        .collect();
    if matches!(args.to, ResetTo::Time(_)) {
        client.refresh(&info.name)?;
    }
    let mut plan = Plan {
        group: args.group.clone(),
        index: index.to_string(),
        index_uuid: info.uuid.clone(),
        shards: Vec::new(),
        stale: Vec::new(),
        stale_docs: Vec::new(),
        current_docs: Vec::new(),
        history_uuids: Vec::new(),
    };
    for (version, doc) in &stored {
        if doc.index_uuid != info.uuid && targets.contains(&doc.shard) {
            plan.stale.push(format!(
                "{}:{}:{} (seq_no {})",
                doc.group, doc.index_uuid, doc.shard, doc.seq_no
            ));
            plan.stale_docs.push((*version, doc.clone()));
        }
    }
    for shard in targets {
        let stat = stats
            .iter()
            .find(|s| s.shard == shard)
            .ok_or_else(|| Error::Unavailable {
                what: format!("read shard {shard} of index {}", info.name),
                detail: "the shard has no started primary".into(),
            })?;
        let checkpoint = stat.global_checkpoint;
        let current = stored
            .iter()
            .find(|(_, d)| d.index_uuid == info.uuid && d.shard == shard)
            .cloned();
        let new = match args.to {
            ResetTo::Earliest => -1,
            ResetTo::Latest => checkpoint,
            ResetTo::SeqNo(n) => n - 1,
            ResetTo::Time(t) => {
                let answer = client.search_shard_query(
                    &info.name,
                    shard,
                    &json!({
                        "size": 1,
                        "sort": [{"_seq_no": "asc"}],
                        "seq_no_primary_term": true,
                        "_source": false,
                        "query": {"range": {&args.time_field: {"gte": t, "format": "epoch_millis"}}}
                    }),
                )?;
                match answer["hits"]["hits"][0]["_seq_no"].as_i64() {
                    Some(first) => first - 1,
                    None => checkpoint,
                }
            }
        };
        let lease = current.as_ref().and_then(|(_, d)| live_lease(d, "", now));
        plan.shards.push(PlanRow {
            shard,
            current: current.as_ref().map(|(_, d)| d.seq_no),
            new,
            checkpoint,
            lease,
        });
        plan.current_docs.push(current);
        plan.history_uuids.push(stat.history_uuid.clone());
    }
    Ok(plan)
}

/// Applies a plan. Refuses while a live lease is held unless `force`.
pub fn apply_reset(
    client: &Client,
    offsets_index: &str,
    plan: &Plan,
    force: bool,
    run_id: &str,
    host: &str,
) -> Result<()> {
    refuse_leased(
        plan.leased()
            .iter()
            .map(|r| (r.shard, r.lease.clone().unwrap_or_default())),
        &plan.group,
        force,
    )?;
    let store = OffsetStore::new(client.clone(), offsets_index);
    store.ensure_history_index()?;
    for (i, row) in plan.shards.iter().enumerate() {
        let now = time::now_rfc3339();
        let (events_total, version) = match &plan.current_docs[i] {
            Some((v, d)) => (d.events_total, Some(*v)),
            None => (0, None),
        };
        let doc = OffsetDoc {
            group: plan.group.clone(),
            index: plan.index.clone(),
            index_uuid: plan.index_uuid.clone(),
            shard: row.shard,
            history_uuid: plan.history_uuids[i].clone(),
            seq_no: row.new,
            primary_term: 0,
            checkpoint: row.checkpoint,
            committed_at: now.clone(),
            run_id: run_id.to_string(),
            host: host.to_string(),
            owner: None,
            lease_until: None,
            events_total,
        };
        let written = match version {
            Some(v) => store.replace(&doc, v)?,
            None => store.create(&doc)?,
        };
        if written.is_none() {
            return Err(Error::Conflict(format!(
                "group {} shard {} changed while the reset was applied (a run committed); \
                 shards before it were reset; run the reset again",
                plan.group, row.shard
            )));
        }
        record(
            &store,
            HistoryRecord::of("reset", &doc, row.current.unwrap_or(-1), row.new, 0),
        );
    }
    for (version, doc) in &plan.stale_docs {
        store.delete(doc, *version)?;
    }
    Ok(())
}

/// `offsets delete`: the group's documents, and the plan text.
pub fn plan_delete(
    client: &Client,
    offsets_index: &str,
    group: &str,
) -> Result<Vec<(DocVersion, OffsetDoc)>> {
    if !client.index_exists(offsets_index)? {
        return Ok(Vec::new());
    }
    OffsetStore::new(client.clone(), offsets_index).list(Some(group))
}

pub fn render_delete(group: &str, docs: &[(DocVersion, OffsetDoc)], execute: bool) -> String {
    let rows: Vec<Vec<String>> = docs
        .iter()
        .map(|(_, d)| {
            vec![
                d.index.clone(),
                d.index_uuid.clone(),
                d.shard.to_string(),
                d.seq_no.to_string(),
            ]
        })
        .collect();
    let mut out = format!(
        "delete plan for group {group}: {} offset documents\n",
        docs.len()
    );
    out.push_str(&crate::inspect::table(
        &["INDEX", "UUID", "SHARD", "SEQ_NO"],
        &rows,
    ));
    out.push_str(if execute {
        "deleted.\n"
    } else {
        "dry run: nothing changed; add --execute to apply.\n"
    });
    out
}

pub fn apply_delete(
    client: &Client,
    offsets_index: &str,
    group: &str,
    docs: &[(DocVersion, OffsetDoc)],
    force: bool,
    run_id: &str,
    host: &str,
) -> Result<()> {
    let now = time::now_millis();
    refuse_leased(
        docs.iter()
            .filter_map(|(_, d)| live_lease(d, "", now).map(|l| (d.shard, l))),
        group,
        force,
    )?;
    let store = OffsetStore::new(client.clone(), offsets_index);
    store.ensure_history_index()?;
    for (version, doc) in docs {
        if !store.delete(doc, *version)? {
            return Err(Error::Conflict(format!(
                "group {group} shard {} changed while deleting; run the delete again",
                doc.shard
            )));
        }
        // The deleted document's audit fields name the last run; the record names this one.
        record(
            &store,
            HistoryRecord {
                run_id: run_id.into(),
                host: host.into(),
                time: time::now_rfc3339(),
                ..HistoryRecord::of("delete", doc, doc.seq_no, -1, 0)
            },
        );
    }
    Ok(())
}

fn refuse_leased(
    leased: impl Iterator<Item = (u32, String)>,
    group: &str,
    force: bool,
) -> Result<()> {
    let held: Vec<String> = leased
        .map(|(s, l)| format!("shard {s} held by {l}"))
        .collect();
    if held.is_empty() {
        return Ok(());
    }
    if force {
        log::warn!(
            "--force: changing offsets of group {group} although {}",
            held.join(", ")
        );
        return Ok(());
    }
    Err(Error::Conflict(format!(
        "group {group} has a live run ({}); stop it or wait for it to finish, or pass --force \
         (the running run will then fail its next commit with exit 75)",
        held.join(", ")
    )))
}

fn record(store: &OffsetStore, r: HistoryRecord) {
    if let Err(e) = store.append_history(&r) {
        log::error!("history record of the {} not written: {e}", r.kind);
    }
}
