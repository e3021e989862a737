//! `seqtail init`: creates the events index and the offsets index, idempotently, and reports
//! where existing ones differ from what was asked.

use serde_json::{Value, json};

use crate::client::Client;
use crate::error::Result;
use crate::offsets::{OffsetStore, history_index_body, offsets_index_body};

/// How the events index should look.
#[derive(Debug, Clone)]
pub struct InitConfig {
    pub index: String,
    pub offsets_index: String,
    pub shards: u32,
    pub replicas: u32,
}

/// What `init` did, index by index, and the differences it found but did not change.
#[derive(Debug, Default)]
pub struct InitReport {
    pub created: Vec<String>,
    pub existing: Vec<String>,
    pub drift: Vec<String>,
}

/// The events index: shards, replicas, and a mapping for the generated event fields.
///
/// `processed` maps explicit nulls to false; a missing field also reads as "not processed"
/// for the query seqtail documents (`must_not: term processed: true`).
pub fn events_index_body(shards: u32, replicas: u32) -> Value {
    json!({
        "settings": {
            "index": { "number_of_shards": shards, "number_of_replicas": replicas }
        },
        "mappings": {
            "properties": {
                "event_type": { "type": "keyword" },
                "timestamp": { "type": "date" },
                "key": { "type": "keyword" },
                "payload": { "type": "text", "index": false },
                "processed": { "type": "boolean", "null_value": false },
                "processed_by": { "type": "keyword" }
            }
        }
    })
}

/// Creates what is missing and compares what exists.
pub fn init(client: &Client, config: &InitConfig) -> Result<InitReport> {
    let mut report = InitReport::default();
    let wanted = events_index_body(config.shards, config.replicas);
    if client.create_index(&config.index, &wanted)? {
        report.created.push(config.index.clone());
    } else {
        report.existing.push(config.index.clone());
        compare(client, &config.index, &wanted, &mut report)?;
    }
    let store = OffsetStore::new(client.clone(), config.offsets_index.clone());
    if store.ensure_index()? {
        report.created.push(config.offsets_index.clone());
    } else {
        report.existing.push(config.offsets_index.clone());
        compare(
            client,
            &config.offsets_index,
            &offsets_index_body(),
            &mut report,
        )?;
    }
    let history = store.history_index();
    if store.ensure_history_index()? {
        report.created.push(history);
    } else {
        report.existing.push(history.clone());
        compare(client, &history, &history_index_body(), &mut report)?;
    }
    Ok(report)
}

fn compare(client: &Client, index: &str, wanted: &Value, report: &mut InitReport) -> Result<()> {
    let live = client.get_index(index)?;
    let Some((concrete, live)) = live.as_object().and_then(|o| o.iter().next()) else {
        return Ok(());
    };
    let settings = &live["settings"];
    for (key, value) in wanted["settings"]["index"]
        .as_object()
        .into_iter()
        .flatten()
    {
        let want = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let have = settings[format!("index.{key}")]
            .as_str()
            .unwrap_or("(unset)");
        if have != want {
            report.drift.push(format!(
                "{concrete}: setting index.{key} is {have}, init asks for {want}"
            ));
        }
    }
    let have_props = &live["mappings"]["properties"];
    for (field, spec) in wanted["mappings"]["properties"]
        .as_object()
        .into_iter()
        .flatten()
    {
        let have = &have_props[field];
        if have.is_null() {
            report.drift.push(format!(
                "{concrete}: field {field} is not mapped (init maps it as {spec})"
            ));
        } else if have["type"] != spec["type"] {
            report.drift.push(format!(
                "{concrete}: field {field} is mapped as {}, init maps it as {}",
                have["type"], spec["type"]
            ));
        }
    }
    if let Some(dynamic) = wanted["mappings"]["dynamic"].as_str() {
        let have = live["mappings"]["dynamic"].as_str().unwrap_or("true");
        if have != dynamic {
            report.drift.push(format!(
                "{concrete}: mapping is dynamic={have}, init asks for dynamic={dynamic}"
            ));
        }
    }
    Ok(())
}
