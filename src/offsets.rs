//! The offsets index: one document per (group, index uuid, shard), written with optimistic
//! concurrency so that two runs can never both advance the same position.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::client::{Client, DocVersion, WriteCondition};
use crate::consumer::HistoryRecord;
use crate::error::{Error, Result};

/// The stored position of one group on one shard (DESIGN.md §4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetDoc {
    pub group: String,
    /// The index name the group reads (as given with `--index`).
    pub index: String,
    pub index_uuid: String,
    pub shard: u32,
    pub history_uuid: String,
    /// Last position processed; -1 when nothing has been processed yet.
    pub seq_no: i64,
    /// Primary term of the event at `seq_no` (0 when unknown, e.g. a skipped gap).
    pub primary_term: i64,
    /// The snapshot checkpoint when this was committed.
    pub checkpoint: i64,
    pub committed_at: String,
    pub run_id: String,
    pub host: String,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub lease_until: Option<String>,
    #[serde(default)]
    pub events_total: u64,
}

/// The document id of a group's offset on one shard.
pub fn doc_id(group: &str, index_uuid: &str, shard: u32) -> String {
    format!("{group}:{index_uuid}:{shard}")
}

/// A small bookkeeping index: one shard, a replica wherever a second node exists, and a strict
/// mapping so a stray write cannot add fields.
fn bookkeeping_index(properties: Value) -> Value {
    json!({
        "settings": {
            "index": { "number_of_shards": 1, "auto_expand_replicas": "0-1" }
        },
        "mappings": { "dynamic": "strict", "properties": properties }
    })
}

/// Settings and strict mapping of the offsets index.
pub fn offsets_index_body() -> Value {
    bookkeeping_index(json!({
        "group": { "type": "keyword" },
        "index": { "type": "keyword" },
        "index_uuid": { "type": "keyword" },
        "shard": { "type": "integer" },
        "history_uuid": { "type": "keyword" },
        "seq_no": { "type": "long" },
        "primary_term": { "type": "long" },
        "checkpoint": { "type": "long" },
        "committed_at": { "type": "date" },
        "run_id": { "type": "keyword" },
        "host": { "type": "keyword" },
        "owner": { "type": "keyword" },
        "lease_until": { "type": "date" },
        "events_total": { "type": "long" }
    }))
}

/// Settings and strict mapping of the history index.
pub fn history_index_body() -> Value {
    bookkeeping_index(json!({
        "kind": { "type": "keyword" },
        "group": { "type": "keyword" },
        "index": { "type": "keyword" },
        "index_uuid": { "type": "keyword" },
        "shard": { "type": "integer" },
        "from_seq_no": { "type": "long" },
        "to_seq_no": { "type": "long" },
        "events": { "type": "long" },
        "run_id": { "type": "keyword" },
        "host": { "type": "keyword" },
        "time": { "type": "date" }
    }))
}

/// Reads and writes offset documents.
#[derive(Clone)]
pub struct OffsetStore {
    client: Client,
    index: String,
}

impl OffsetStore {
    pub fn new(client: Client, index: impl Into<String>) -> OffsetStore {
        OffsetStore {
            client,
            index: index.into(),
        }
    }

    pub fn index(&self) -> &str {
        &self.index
    }

    /// Creates the offsets index if it is missing. Returns true when it was created.
    pub fn ensure_index(&self) -> Result<bool> {
        if self.client.index_exists(&self.index)? {
            return Ok(false);
        }
        let created = self
            .client
            .create_index(&self.index, &offsets_index_body())?;
        if created {
            log::info!("created offsets index {}", self.index);
        }
        Ok(created)
    }

    /// The audit-trail index beside the offsets index.
    pub fn history_index(&self) -> String {
        format!("{}-history", self.index)
    }

    /// Creates the history index if it is missing.
    pub fn ensure_history_index(&self) -> Result<bool> {
        let name = self.history_index();
        if self.client.index_exists(&name)? {
            return Ok(false);
        }
        self.client.create_index(&name, &history_index_body())
    }

    /// Appends one history record. The id makes a retried write idempotent.
    pub fn append_history(&self, record: &HistoryRecord) -> Result<()> {
        self.append_history_bulk(std::slice::from_ref(record))
    }

    /// Appends history records with one `_bulk`; every item must succeed.
    pub fn append_history_bulk(&self, records: &[HistoryRecord]) -> Result<()> {
        let mut body = String::new();
        for r in records {
            let id = format!(
                "{}:{}:{}:{}:{}:{}",
                r.group, r.index_uuid, r.shard, r.kind, r.to_seq_no, r.run_id
            );
            body.push_str(&json!({ "index": { "_id": id } }).to_string());
            body.push('\n');
            body.push_str(&serde_json::to_string(r).map_err(|e| Error::Internal(e.to_string()))?);
            body.push('\n');
        }
        let outcome = self
            .client
            .bulk(&self.history_index(), body.as_bytes(), false)?;
        if let Some(f) = outcome.failed.first() {
            return Err(Error::OpenSearch {
                what: format!("append {} history records", records.len()),
                status: f.status,
                error_type: "bulk_item_failure".into(),
                reason: f.reason.clone(),
            });
        }
        Ok(())
    }

    /// The newest `limit` history records of a group.
    pub fn history(&self, group: &str, limit: usize) -> Result<Vec<HistoryRecord>> {
        let name = self.history_index();
        if !self.client.index_exists(&name)? {
            return Ok(Vec::new());
        }
        self.client.refresh(&name)?;
        let answer = self.client.search(
            &name,
            &json!({
                "size": limit,
                "query": { "term": { "group": group } },
                "sort": [ { "time": "desc" }, { "shard": "asc" }, { "to_seq_no": "desc" } ]
            }),
        )?;
        let mut out = Vec::new();
        for hit in answer["hits"]["hits"].as_array().into_iter().flatten() {
            let record: HistoryRecord = serde_json::from_value(hit["_source"].clone())
                .map_err(|e| Error::Internal(format!("history record {}: {e}", hit["_id"])))?;
            out.push(record);
        }
        Ok(out)
    }

    /// Every offset document of `group` that names `index` or `index_uuid`, whatever its uuid:
    /// used to notice that the index behind a name was replaced.
    pub fn find_group(
        &self,
        group: &str,
        index: &str,
        index_uuid: &str,
    ) -> Result<Vec<(DocVersion, OffsetDoc)>> {
        // Offsets written by an earlier run may not be searchable yet; a refresh of this small
        // index makes them so.
        self.client.refresh(&self.index)?;
        let query = json!({
            "size": 10000,
            "seq_no_primary_term": true,
            "query": { "bool": {
                "filter": [ { "term": { "group": group } } ],
                "should": [
                    { "term": { "index": index } },
                    { "term": { "index_uuid": index_uuid } }
                ],
                "minimum_should_match": 1
            } },
            "sort": [ { "shard": "asc" } ]
        });
        self.search_docs(&query)
    }

    /// Every offset document of a group, or of all groups when `group` is None.
    pub fn list(&self, group: Option<&str>) -> Result<Vec<(DocVersion, OffsetDoc)>> {
        self.client.refresh(&self.index)?;
        let filter = match group {
            Some(g) => json!([ { "term": { "group": g } } ]),
            None => json!([]),
        };
        let query = json!({
            "size": 10000,
            "seq_no_primary_term": true,
            "query": { "bool": { "filter": filter } },
            "sort": [ { "group": "asc" }, { "index": "asc" }, { "shard": "asc" } ]
        });
        self.search_docs(&query)
    }

    fn search_docs(&self, query: &Value) -> Result<Vec<(DocVersion, OffsetDoc)>> {
        let answer = self.client.search(&self.index, query)?;
        let mut out = Vec::new();
        for hit in answer["hits"]["hits"].as_array().into_iter().flatten() {
            let version = DocVersion {
                seq_no: hit["_seq_no"].as_i64().unwrap_or(-2),
                primary_term: hit["_primary_term"].as_i64().unwrap_or(-2),
            };
            let doc: OffsetDoc = serde_json::from_value(hit["_source"].clone()).map_err(|e| {
                Error::Offsets(format!(
                    "offset document {} in {} is corrupt ({e}); inspect it with GET {}/_doc/{}, \
                     then fix or delete it (`seqtail offsets delete`)",
                    hit["_id"],
                    self.index,
                    self.index,
                    hit["_id"].as_str().unwrap_or("")
                ))
            })?;
            out.push((version, doc));
        }
        Ok(out)
    }

    /// Reads documents by id, realtime.
    pub fn get_many(&self, ids: &[String]) -> Result<Vec<(String, DocVersion, OffsetDoc)>> {
        self.client.mget(&self.index, ids)
    }

    /// Reads one document by id, realtime.
    pub fn get(&self, id: &str) -> Result<Option<(DocVersion, OffsetDoc)>> {
        self.client.get_doc(&self.index, id)
    }

    /// Writes a document if absent (`Ok(None)`: somebody else created it first).
    pub fn create(&self, doc: &OffsetDoc) -> Result<Option<DocVersion>> {
        let body = serde_json::to_vec(doc).map_err(|e| Error::Internal(e.to_string()))?;
        self.client.put_doc(
            &self.index,
            &doc_id(&doc.group, &doc.index_uuid, doc.shard),
            &body,
            WriteCondition::Create,
        )
    }

    /// Replaces a document if it is still at `version` (`Ok(None)`: it changed meanwhile).
    pub fn replace(&self, doc: &OffsetDoc, version: DocVersion) -> Result<Option<DocVersion>> {
        let body = serde_json::to_vec(doc).map_err(|e| Error::Internal(e.to_string()))?;
        self.client.put_doc(
            &self.index,
            &doc_id(&doc.group, &doc.index_uuid, doc.shard),
            &body,
            WriteCondition::Version(version),
        )
    }

    /// Deletes a document if it is still at `version`.
    pub fn delete(&self, doc: &OffsetDoc, version: DocVersion) -> Result<bool> {
        self.client.delete_doc(
            &self.index,
            &doc_id(&doc.group, &doc.index_uuid, doc.shard),
            version,
        )
    }
}
