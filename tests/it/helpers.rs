//! Shared test helpers: the server URL, uniquely named indices that delete themselves, a
//! preconfigured `seqtail` command, and parsing of delivered events.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};

/// The OpenSearch under test. Fails (never skips) when it is not configured.
pub fn url() -> String {
    match std::env::var("SEQTAIL_TEST_URL") {
        Ok(u) if !u.is_empty() => u,
        _ => panic!(
            "SEQTAIL_TEST_URL is not set: these tests need a real OpenSearch. Run \
             `scripts/test.sh` (starts one), or `export SEQTAIL_TEST_URL=$(scripts/opensearch.sh start)`"
        ),
    }
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .timeout_global(Some(std::time::Duration::from_secs(60)))
        .build()
        .into()
}

/// An HTTP call to the test server returning (status, JSON body).
pub fn http(method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let agent = agent();
    let full = format!("{}{}", url(), path);
    let request = ureq::http::Request::builder()
        .method(method)
        .uri(&full)
        .header("Content-Type", "application/json");
    let mut response = match body {
        Some(b) => agent.run(request.body(b.to_string()).unwrap()),
        None => agent.run(request.body(()).unwrap()),
    }
    .unwrap_or_else(|e| {
        panic!("{method} {full}: {e} (is the server from scripts/opensearch.sh running?)")
    });
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A uniquely named events index and offsets index, deleted when dropped.
pub struct TestIndex {
    pub name: String,
    pub offsets: String,
    pub shards: u32,
}

impl TestIndex {
    pub fn new(prefix: &str, shards: u32) -> TestIndex {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("it-{prefix}-{}-{n}", std::process::id());
        let index = TestIndex {
            offsets: format!("{name}-offsets"),
            name,
            shards,
        };
        index.create();
        index
    }

    pub fn create(&self) {
        let (status, body) = http(
            "PUT",
            &format!("/{}", self.name),
            Some(
                json!({"settings": {"index": {"number_of_shards": self.shards, "number_of_replicas": 0}}}),
            ),
        );
        assert_eq!(status, 200, "create {}: {body}", self.name);
    }

    pub fn delete(&self) {
        http("DELETE", &format!("/{}", self.name), None);
    }

    /// Indexes documents `(id, routing, body)` with `_bulk`, asserting every item succeeded.
    pub fn write(&self, docs: &[(String, Option<String>, Value)]) {
        let mut nd = String::new();
        for (id, routing, body) in docs {
            let mut meta = json!({"_id": id});
            if let Some(r) = routing {
                meta["routing"] = json!(r);
            }
            nd.push_str(&json!({"index": meta}).to_string());
            nd.push('\n');
            nd.push_str(&body.to_string());
            nd.push('\n');
        }
        let agent = agent();
        let mut response = agent
            .post(format!("{}/{}/_bulk", url(), self.name))
            .header("Content-Type", "application/x-ndjson")
            .send(nd)
            .expect("bulk");
        let v: Value =
            serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
        assert_eq!(v["errors"], json!(false), "bulk errors: {v}");
    }

    /// Writes `count` events with ids `{prefix}{i}` and no routing.
    pub fn write_events(&self, prefix: &str, range: std::ops::Range<usize>) -> BTreeSet<String> {
        let docs: Vec<(String, Option<String>, Value)> = range
            .map(|i| {
                (
                    format!("{prefix}{i}"),
                    None,
                    json!({"n": i, "event_type": "test", "processed": false}),
                )
            })
            .collect();
        for chunk in docs.chunks(500) {
            self.write(chunk);
        }
        docs.into_iter().map(|d| d.0).collect()
    }

    /// A routing value that lands on `shard`.
    pub fn routing_for(&self, shard: u32) -> String {
        for k in 0..10_000 {
            let r = format!("r{k}");
            let (_, v) = http(
                "GET",
                &format!("/{}/_search_shards?routing={r}", self.name),
                None,
            );
            if v["shards"][0][0]["shard"].as_u64() == Some(u64::from(shard)) {
                return r;
            }
        }
        panic!("no routing value found for shard {shard}");
    }

    /// `seqtail` with the URL and both indices set, and no inherited `SEQTAIL_*` variables.
    pub fn seqtail(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_seqtail"));
        for (k, _) in std::env::vars() {
            if k.starts_with("SEQTAIL_") {
                cmd.env_remove(k);
            }
        }
        cmd.env_remove("RUST_LOG");
        cmd.env("SEQTAIL_URL", url())
            .env("SEQTAIL_INDEX", &self.name)
            .env("SEQTAIL_OFFSETS_INDEX", &self.offsets)
            .env("SEQTAIL_RETRY_TIMEOUT", "20s")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `seqtail run --group G ARGS` to completion.
    pub fn run(&self, group: &str, args: &[&str]) -> RunResult {
        let output = self
            .seqtail()
            .args(["run", "--group", group])
            .args(args)
            .output()
            .expect("spawn seqtail");
        RunResult::from(output)
    }

    /// The stored offset documents of a group, by shard.
    pub fn offsets_of(&self, group: &str) -> BTreeMap<u64, Value> {
        http("POST", &format!("/{}/_refresh", self.offsets), None);
        let (_, v) = http(
            "POST",
            &format!("/{}/_search", self.offsets),
            Some(json!({"size": 1000, "query": {"term": {"group": group}}})),
        );
        v["hits"]["hits"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|h| {
                (
                    h["_source"]["shard"].as_u64().unwrap(),
                    h["_source"].clone(),
                )
            })
            .collect()
    }
}

impl Drop for TestIndex {
    fn drop(&mut self) {
        if std::env::var("SEQTAIL_TEST_URL").is_ok() {
            http("DELETE", &format!("/{}", self.name), None);
            http("DELETE", &format!("/{}", self.offsets), None);
        }
    }
}

/// One delivered event, as a sink saw it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Delivered {
    pub shard: u64,
    pub seq_no: i64,
    pub id: String,
}

/// Parses NDJSON envelopes.
pub fn parse_events(text: &str) -> Vec<Delivered> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("bad envelope {l}: {e}"));
            Delivered {
                shard: v["shard"].as_u64().unwrap(),
                seq_no: v["seq_no"].as_i64().unwrap(),
                id: v["id"].as_str().unwrap().to_string(),
            }
        })
        .collect()
}

/// The outcome of one `seqtail run`.
#[derive(Debug)]
pub struct RunResult {
    pub code: Option<i32>,
    pub events: Vec<Delivered>,
    pub stderr: String,
}

impl From<Output> for RunResult {
    fn from(output: Output) -> Self {
        RunResult {
            code: output.status.code(),
            events: parse_events(&String::from_utf8_lossy(&output.stdout)),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl RunResult {
    pub fn ok(self) -> Self {
        assert_eq!(self.code, Some(0), "seqtail failed:\n{}", self.stderr);
        self
    }

    pub fn ids(&self) -> Vec<String> {
        self.events.iter().map(|e| e.id.clone()).collect()
    }
}

/// Counts (lost, duplicated) of `delivered` against `written`.
pub fn tally(written: &BTreeSet<String>, delivered: &[String]) -> (usize, usize) {
    let mut seen = BTreeSet::new();
    let mut duplicates = 0;
    for id in delivered {
        if !seen.insert(id.clone()) {
            duplicates += 1;
        }
    }
    let lost = written.difference(&seen).count();
    (lost, duplicates)
}

/// A scratch directory, removed when dropped.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let path =
            std::env::temp_dir().join(format!("seqtail-it-{name}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self, file: &str) -> String {
        self.0.join(file).display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
