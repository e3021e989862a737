//! The OpenSearch REST calls seqtail makes: one agent, URL failover, timeouts, retries with
//! backoff, and typed requests and responses. Nothing else in the crate builds URLs.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_json::value::RawValue;
use ureq::Agent;
use ureq::http::{Method, Request};
use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig};

use crate::error::{Error, Result};
use crate::secret::Secret;
use crate::stop::StopFlag;

/// How to reach OpenSearch.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Base URLs tried in order (`http://127.0.0.1:9200`); the first that answers is kept.
    pub urls: Vec<String>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// PEM bundle of CA certificates that replaces the default roots.
    pub ca_cert: Option<std::path::PathBuf>,
    pub client_cert: Option<std::path::PathBuf>,
    pub client_key: Option<std::path::PathBuf>,
    /// Skip certificate verification. Never the default.
    pub insecure: bool,
    /// Connect timeout, and the time allowed for one response.
    pub timeout: Duration,
    /// How long retryable failures are retried before giving up.
    pub retry_timeout: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            urls: vec!["http://127.0.0.1:9200".into()],
            username: None,
            password: None,
            ca_cert: None,
            client_cert: None,
            client_key: None,
            insecure: false,
            timeout: Duration::from_secs(30),
            retry_timeout: Duration::from_secs(60),
        }
    }
}

/// Largest response body accepted (a page of big documents can exceed ureq's 10 MB default).
const BODY_LIMIT: u64 = 1 << 30;

/// A blocking OpenSearch client. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    agent: Agent,
    urls: Arc<Vec<String>>,
    current: Arc<AtomicUsize>,
    authorization: Option<Arc<String>>,
    retry_timeout: Duration,
    stop: Option<StopFlag>,
}

/// A raw answer: status and body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Reply {
    fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// A document's version for optimistic concurrency control.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct DocVersion {
    #[serde(rename = "_seq_no")]
    pub seq_no: i64,
    #[serde(rename = "_primary_term")]
    pub primary_term: i64,
}

/// The condition attached to a document write.
#[derive(Debug, Clone, Copy)]
pub enum WriteCondition {
    /// Fail with 409 if the document exists (`op_type=create`).
    Create,
    /// Fail with 409 unless the document is still at this version.
    Version(DocVersion),
    /// Write whatever is there.
    Overwrite,
}

/// Identity of a concrete index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexInfo {
    pub name: String,
    pub uuid: String,
    pub shards: u32,
}

/// What the primary copy of one shard reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardStat {
    pub shard: u32,
    pub global_checkpoint: i64,
    pub max_seq_no: i64,
    pub history_uuid: String,
}

/// One event as read from a shard; `source` is the raw JSON OpenSearch sent.
#[derive(Debug, Deserialize)]
pub struct Hit {
    #[serde(rename = "_id")]
    pub id: String,
    #[serde(rename = "_seq_no")]
    pub seq_no: i64,
    #[serde(rename = "_primary_term")]
    pub primary_term: i64,
    #[serde(rename = "_source")]
    pub source: Option<Box<RawValue>>,
    /// Custom routing the event was written with, if any.
    #[serde(rename = "_routing", default)]
    pub routing: Option<String>,
}

/// One page request of a shard: events with `after < _seq_no <= up_to`, in `_seq_no` order.
#[derive(Debug, Clone, Copy)]
pub struct ShardPage<'a> {
    pub shard: u32,
    pub after: i64,
    pub up_to: i64,
    pub size: usize,
    /// Add the `_primary` preference so a lagging replica can never answer.
    pub primary: bool,
    /// Skip events whose `processed_by` already names this group.
    pub exclude_marked_by: Option<&'a str>,
}

/// The outcome of `_bulk`: per-item failures named, not dropped.
#[derive(Debug, Default)]
pub struct BulkOutcome {
    pub written: usize,
    /// (position in the request, id, status, error type and reason)
    pub failed: Vec<BulkFailure>,
}

#[derive(Debug, Clone)]
pub struct BulkFailure {
    pub position: usize,
    pub id: Option<String>,
    pub status: u16,
    pub reason: String,
}

impl Client {
    /// Builds the agent. TLS material is read here, so a bad file is a configuration error.
    pub fn new(config: &ClientConfig) -> Result<Client> {
        if config.urls.is_empty() {
            return Err(Error::Config("no --url given".into()));
        }
        let mut urls = Vec::with_capacity(config.urls.len());
        for url in &config.urls {
            urls.push(validate_url(url)?);
        }
        let mut tls = TlsConfig::builder();
        if let Some(path) = &config.ca_cert {
            let certs = read_certificates(path, "--ca-cert")?;
            tls = tls.root_certs(RootCerts::Specific(Arc::new(certs)));
        }
        match (&config.client_cert, &config.client_key) {
            (Some(cert), Some(key)) => {
                let chain = read_certificates(cert, "--client-cert")?;
                let key = read_private_key(key)?;
                tls = tls.client_cert(Some(ClientCert::new_with_certs(&chain, key)));
            }
            (None, None) => {}
            _ => {
                return Err(Error::Config(
                    "--client-cert and --client-key go together; give both or neither".into(),
                ));
            }
        }
        if config.insecure {
            log::warn!(
                "--insecure: the server certificate is not verified; anyone on the path can read \
                 and change this traffic"
            );
            tls = tls.disable_verification(true);
        }
        let agent: Agent = Agent::config_builder()
            .http_status_as_error(false)
            // Proxy variables from the environment would send loopback and in-cluster traffic
            // somewhere else; seqtail talks to the URLs it was given.
            .proxy(None)
            .timeout_connect(Some(config.timeout))
            .timeout_recv_response(Some(config.timeout))
            .timeout_recv_body(Some(config.timeout))
            .timeout_send_body(Some(config.timeout))
            .user_agent(concat!("seqtail/", env!("CARGO_PKG_VERSION")))
            .tls_config(tls.build())
            .build()
            .into();
        let authorization = match (&config.username, &config.password) {
            (Some(user), Some(pass)) => Some(Arc::new(format!(
                "Basic {}",
                base64(format!("{user}:{}", pass.expose()).as_bytes())
            ))),
            (Some(_), None) => {
                return Err(Error::Config(
                    "--username needs a password: set --password-file, SEQTAIL_PASSWORD_FILE or \
                     SEQTAIL_PASSWORD"
                        .into(),
                ));
            }
            (None, Some(_)) => {
                return Err(Error::Config(
                    "a password was given without --username".into(),
                ));
            }
            (None, None) => None,
        };
        Ok(Client {
            agent,
            urls: Arc::new(urls),
            current: Arc::new(AtomicUsize::new(0)),
            authorization,
            retry_timeout: config.retry_timeout,
            stop: None,
        })
    }

    /// Stops retrying reads (GET, searches, refreshes) once `stop` is raised: a job asked to
    /// stop while OpenSearch is down exits at once with 69 instead of waiting out the retry
    /// timeout. Writes, offset commits above all, keep retrying.
    pub fn with_stop(mut self, stop: StopFlag) -> Client {
        self.stop = Some(stop);
        self
    }

    /// The URL currently in use (for logs; carries no credentials).
    pub fn current_url(&self) -> &str {
        &self.urls[self.current.load(Ordering::Relaxed) % self.urls.len()]
    }

    /// Sends one request, failing over between URLs and retrying connection errors, timeouts,
    /// 429, 502, 503 and 504 with exponential backoff and full jitter until the retry timeout.
    pub fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&[u8]>,
        what: &str,
    ) -> Result<Reply> {
        let deadline = Instant::now() + self.retry_timeout;
        // Only reads give up early on a stop request; writes carry work that must land.
        let is_read = method == Method::GET
            || ["/_search", "/_mget", "/_refresh", "/_stats"]
                .iter()
                .any(|p| path.contains(p));
        let stop = self.stop.as_ref().filter(|_| is_read);
        let stopped = |attempt: u32, failure: &str| Error::Unavailable {
            what: what.to_string(),
            detail: format!(
                "stopped retrying after {} attempt(s) because a stop signal arrived; last \
                 failure: {failure}",
                attempt + 1
            ),
        };
        let mut attempt: u32 = 0;
        loop {
            let index = self.current.load(Ordering::Relaxed) % self.urls.len();
            let url = format!("{}{}", self.urls[index], path);
            let outcome = self.send_once(&method, &url, body);
            let failure = match outcome {
                Ok(reply) if !matches!(reply.status, 429 | 502 | 503 | 504) => return Ok(reply),
                Ok(reply) => format!(
                    "HTTP {} from {}{}",
                    reply.status,
                    self.urls[index],
                    error_summary(&reply.body)
                        .map(|s| format!(": {s}"))
                        .unwrap_or_default()
                ),
                Err(e) => {
                    if let Some(fatal) = non_retryable(&e, &self.urls[index]) {
                        return Err(fatal);
                    }
                    // A connection-level failure: try the next URL.
                    self.current
                        .compare_exchange(index, index + 1, Ordering::Relaxed, Ordering::Relaxed)
                        .ok();
                    format!("{} ({e})", self.urls[index])
                }
            };
            let now = Instant::now();
            if stop.is_some_and(StopFlag::is_raised) {
                return Err(stopped(attempt, &failure));
            }
            if now >= deadline {
                return Err(Error::Unavailable {
                    what: what.to_string(),
                    detail: format!(
                        "gave up after {} attempt(s) in {}; last failure: {failure}",
                        attempt + 1,
                        crate::time::human(self.retry_timeout)
                    ),
                });
            }
            let pause = backoff(attempt).min(deadline - now);
            log::warn!(
                "{what}: {failure}; retrying in {} (attempt {})",
                crate::time::human(pause),
                attempt + 1
            );
            if sleep_unless(pause, stop) {
                return Err(stopped(attempt, &failure));
            }
            attempt += 1;
        }
    }

    fn send_once(
        &self,
        method: &Method,
        url: &str,
        body: Option<&[u8]>,
    ) -> Result<Reply, ureq::Error> {
        let mut builder = Request::builder().method(method.clone()).uri(url);
        if let Some(auth) = &self.authorization {
            builder = builder.header("Authorization", auth.as_str());
        }
        let mut response = match body {
            Some(bytes) => {
                let content_type = if url.contains("/_bulk") {
                    "application/x-ndjson"
                } else {
                    "application/json"
                };
                let request = builder
                    .header("Content-Type", content_type)
                    .body(bytes)
                    .map_err(ureq::Error::Http)?;
                self.agent.run(request)?
            }
            None => {
                let request = builder.body(()).map_err(ureq::Error::Http)?;
                self.agent.run(request)?
            }
        };
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(BODY_LIMIT)
            .read_to_vec()?;
        Ok(Reply { status, body })
    }

    fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&[u8]>,
        what: &str,
    ) -> Result<T> {
        let reply = self.send(method, path, body, what)?;
        parse_success(reply, what)
    }

    /// `GET /`: the server's version number.
    pub fn version(&self) -> Result<String> {
        #[derive(Deserialize)]
        struct Root {
            version: RootVersion,
        }
        #[derive(Deserialize)]
        struct RootVersion {
            number: String,
            distribution: Option<String>,
        }
        let root: Root = self.call(Method::GET, "/", None, "read the server version")?;
        Ok(match root.version.distribution {
            Some(d) if d != "opensearch" => format!("{d} {}", root.version.number),
            _ => root.version.number,
        })
    }

    /// `GET /<index>/_settings`: uuid and shard count of the concrete index behind a name.
    pub fn index_info(&self, index: &str) -> Result<IndexInfo> {
        let path = format!(
            "/{}/_settings?filter_path=*.settings.index.uuid,*.settings.index.number_of_shards",
            enc(index)
        );
        let what = format!("read the settings of index {index}");
        let v: Value = self.call(Method::GET, &path, None, &what)?;
        let map = v
            .as_object()
            .ok_or_else(|| Error::Internal(format!("{what}: unexpected answer {v}")))?;
        if map.len() != 1 {
            let names: Vec<&String> = map.keys().collect();
            return Err(Error::Config(format!(
                "--index {index} resolves to {} indices ({names:?}); seqtail reads exactly one \
                 concrete index: point --index at it or at an alias with one index",
                map.len()
            )));
        }
        let (name, body) = map.iter().next().expect("one entry checked above");
        let settings = &body["settings"];
        let uuid = settings["index"]["uuid"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let shards = settings["index"]["number_of_shards"]
            .as_str()
            .and_then(|s| s.parse::<u32>().ok())
            .unwrap_or(0);
        if uuid.is_empty() || shards == 0 {
            return Err(Error::Internal(format!(
                "{what}: no uuid or shard count in {v}"
            )));
        }
        Ok(IndexInfo {
            name: name.clone(),
            uuid,
            shards,
        })
    }

    /// `GET /<index>/_stats?level=shards`: checkpoint and history of every primary.
    pub fn shard_stats(&self, index: &str) -> Result<Vec<ShardStat>> {
        let path = format!(
            "/{}/_stats/docs?level=shards&filter_path=indices.*.shards.*.routing.primary,\
             indices.*.shards.*.routing.state,indices.*.shards.*.seq_no,\
             indices.*.shards.*.commit.user_data.history_uuid",
            enc(index)
        );
        let what = format!("read the shard checkpoints of index {index}");
        let v: Value = self.call(Method::GET, &path, None, &what)?;
        let mut out = Vec::new();
        let indices = v["indices"].as_object().cloned().unwrap_or_default();
        for (_, body) in indices {
            let Some(shards) = body["shards"].as_object() else {
                continue;
            };
            for (shard, copies) in shards {
                let shard: u32 = shard
                    .parse()
                    .map_err(|_| Error::Internal(format!("{what}: shard id {shard}")))?;
                for copy in copies.as_array().into_iter().flatten() {
                    if copy["routing"]["primary"].as_bool() != Some(true) {
                        continue;
                    }
                    let gcp = copy["seq_no"]["global_checkpoint"].as_i64();
                    let max = copy["seq_no"]["max_seq_no"].as_i64();
                    let history = copy["commit"]["user_data"]["history_uuid"].as_str();
                    if let (Some(gcp), Some(max), Some(history)) = (gcp, max, history) {
                        out.push(ShardStat {
                            shard,
                            global_checkpoint: gcp,
                            max_seq_no: max,
                            history_uuid: history.to_string(),
                        });
                    }
                }
            }
        }
        out.sort_by_key(|s| s.shard);
        Ok(out)
    }

    /// `POST /<index>/_refresh`, requiring every shard copy to succeed.
    pub fn refresh(&self, index: &str) -> Result<()> {
        let what = format!("refresh index {index}");
        let v: Value = self.call(
            Method::POST,
            &format!("/{}/_refresh", enc(index)),
            None,
            &what,
        )?;
        let failed = v["_shards"]["failed"].as_i64().unwrap_or(0);
        if failed > 0 {
            return Err(Error::Unavailable {
                what,
                detail: format!("{failed} shard copies failed to refresh: {}", v["_shards"]),
            });
        }
        Ok(())
    }

    /// One page of a shard in `_seq_no` order: events with `after < _seq_no <= up_to`.
    ///
    /// `primary` adds the `_primary` preference so a lagging replica can never answer.
    pub fn search_shard(&self, index: &str, page: &ShardPage<'_>) -> Result<Vec<Hit>> {
        let ShardPage {
            shard,
            after,
            up_to,
            size,
            primary,
            exclude_marked_by,
        } = *page;
        let preference = if primary {
            format!("_shards:{shard}%7C_primary")
        } else {
            format!("_shards:{shard}")
        };
        let path = format!(
            "/{}/_search?preference={preference}&filter_path=timed_out,_shards,hits.hits._id,\
             hits.hits._seq_no,hits.hits._primary_term,hits.hits._source,hits.hits._routing",
            enc(index)
        );
        let range = serde_json::json!({"range": {"_seq_no": {"gt": after, "lte": up_to}}});
        let query = match exclude_marked_by {
            None => range,
            // Works whether processed_by is a keyword or a dynamically mapped text field.
            Some(group) => serde_json::json!({"bool": {
                "filter": [range],
                "must_not": [
                    {"term": {"processed_by": group}},
                    {"term": {"processed_by.keyword": group}}
                ]
            }}),
        };
        let body = serde_json::json!({
            "size": size,
            "sort": [{"_seq_no": "asc"}],
            "seq_no_primary_term": true,
            "track_total_hits": false,
            "query": query
        });
        let what = format!("read shard {shard} of index {index}");
        let reply = self.send(
            Method::POST,
            &path,
            Some(body.to_string().as_bytes()),
            &what,
        )?;
        if !reply.is_success() {
            return Err(error_from_reply(&reply, &what));
        }
        #[derive(Deserialize)]
        struct Page {
            timed_out: bool,
            #[serde(rename = "_shards")]
            shards: ShardsHeader,
            #[serde(default)]
            hits: Option<Hits>,
        }
        #[derive(Deserialize)]
        struct Hits {
            #[serde(default)]
            hits: Vec<Hit>,
        }
        let page: Page = serde_json::from_slice(&reply.body)
            .map_err(|e| Error::Internal(format!("{what}: unreadable answer: {e}")))?;
        if page.timed_out || page.shards.failed > 0 || page.shards.successful < 1 {
            return Err(Error::Unavailable {
                what,
                detail: format!(
                    "the search was incomplete (timed_out={}, shards successful={} failed={}); \
                     the batch is not delivered",
                    page.timed_out, page.shards.successful, page.shards.failed
                ),
            });
        }
        let hits = page.hits.map(|h| h.hits).unwrap_or_default();
        if hits.iter().any(|h| h.source.is_none()) {
            return Err(Error::Config(format!(
                "index {index} returns no _source; seqtail needs _source enabled to deliver events"
            )));
        }
        Ok(hits)
    }

    /// `GET /<index>/_doc/<id>` (realtime). `Ok(None)` when the document does not exist.
    pub fn get_doc<T: DeserializeOwned>(
        &self,
        index: &str,
        id: &str,
    ) -> Result<Option<(DocVersion, T)>> {
        let what = format!("read document {id} of index {index}");
        let path = format!("/{}/_doc/{}", enc(index), enc(id));
        let reply = self.send(Method::GET, &path, None, &what)?;
        if reply.status == 404 {
            let v: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
            if v["found"] == Value::Bool(false) {
                return Ok(None);
            }
        }
        let v: Value = parse_success(reply, &what)?;
        decode_doc(&v, &what).map(Some)
    }

    /// `POST /<index>/_mget` (realtime): the documents that exist, by id.
    pub fn mget<T: DeserializeOwned>(
        &self,
        index: &str,
        ids: &[String],
    ) -> Result<Vec<(String, DocVersion, T)>> {
        let what = format!("read {} documents of index {index}", ids.len());
        let body = serde_json::json!({ "ids": ids });
        let v: Value = self.call(
            Method::POST,
            &format!("/{}/_mget", enc(index)),
            Some(body.to_string().as_bytes()),
            &what,
        )?;
        let mut out = Vec::new();
        for doc in v["docs"].as_array().into_iter().flatten() {
            if let Some(err) = doc.get("error") {
                return Err(Error::Unavailable {
                    what,
                    detail: format!("document {} could not be read: {err}", doc["_id"]),
                });
            }
            if doc["found"] != Value::Bool(true) {
                continue;
            }
            let id = doc["_id"].as_str().unwrap_or_default().to_string();
            let (version, value) = decode_doc(doc, &what)?;
            out.push((id, version, value));
        }
        Ok(out)
    }

    /// Writes a whole document under a condition. A 409 comes back as `Ok(None)`.
    pub fn put_doc(
        &self,
        index: &str,
        id: &str,
        body: &[u8],
        condition: WriteCondition,
    ) -> Result<Option<DocVersion>> {
        let path = match condition {
            WriteCondition::Create => format!("/{}/_doc/{}?op_type=create", enc(index), enc(id)),
            WriteCondition::Version(v) => format!(
                "/{}/_doc/{}?if_seq_no={}&if_primary_term={}",
                enc(index),
                enc(id),
                v.seq_no,
                v.primary_term
            ),
            WriteCondition::Overwrite => format!("/{}/_doc/{}", enc(index), enc(id)),
        };
        let what = format!("write document {id} of index {index}");
        let reply = self.send(Method::PUT, &path, Some(body), &what)?;
        if reply.status == 409 {
            return Ok(None);
        }
        let version: DocVersion = parse_success(reply, &what)?;
        Ok(Some(version))
    }

    /// Deletes a document under a version condition. A 409 or 404 comes back as `Ok(false)`.
    pub fn delete_doc(&self, index: &str, id: &str, version: DocVersion) -> Result<bool> {
        let path = format!(
            "/{}/_doc/{}?if_seq_no={}&if_primary_term={}",
            enc(index),
            enc(id),
            version.seq_no,
            version.primary_term
        );
        let what = format!("delete document {id} of index {index}");
        let reply = self.send(Method::DELETE, &path, None, &what)?;
        if reply.status == 409 || reply.status == 404 {
            return Ok(false);
        }
        let _: Value = parse_success(reply, &what)?;
        Ok(true)
    }

    /// `POST /<index>/_search` with a JSON body; the whole answer.
    pub fn search(&self, index: &str, body: &Value) -> Result<Value> {
        let what = format!("search index {index}");
        self.call(
            Method::POST,
            &format!("/{}/_search", enc(index)),
            Some(body.to_string().as_bytes()),
            &what,
        )
    }

    /// `POST /<index>/_search` restricted to one shard (read from its primary).
    pub fn search_shard_query(&self, index: &str, shard: u32, body: &Value) -> Result<Value> {
        let what = format!("search shard {shard} of index {index}");
        self.call(
            Method::POST,
            &format!("/{}/_search?preference=_shards:{shard}", enc(index)),
            Some(body.to_string().as_bytes()),
            &what,
        )
    }

    /// `HEAD /<index>`.
    pub fn index_exists(&self, index: &str) -> Result<bool> {
        let what = format!("check whether index {index} exists");
        // GET, not HEAD: a refusal (a proxy's 400, a 403) then comes with a body to report.
        let path = format!(
            "/{}/_settings?filter_path=*.settings.index.uuid",
            enc(index)
        );
        let reply = self.send(Method::GET, &path, None, &what)?;
        match reply.status {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(error_from_reply(&reply, &what)),
        }
    }

    /// `PUT /<index>`. Returns false when the index already existed.
    pub fn create_index(&self, index: &str, body: &Value) -> Result<bool> {
        let what = format!("create index {index}");
        let reply = self.send(
            Method::PUT,
            &format!("/{}", enc(index)),
            Some(body.to_string().as_bytes()),
            &what,
        )?;
        if reply.status == 400 {
            let e = error_from_reply(&reply, &what);
            if e.error_type() == Some("resource_already_exists_exception") {
                return Ok(false);
            }
            return Err(e);
        }
        let _: Value = parse_success(reply, &what)?;
        Ok(true)
    }

    /// `GET /<index>`: settings and mappings, for drift reports.
    pub fn get_index(&self, index: &str) -> Result<Value> {
        let what = format!("read index {index}");
        self.call(
            Method::GET,
            &format!("/{}?flat_settings=true", enc(index)),
            None,
            &what,
        )
    }

    /// `DELETE /<index>`. Returns false when it did not exist.
    pub fn delete_index(&self, index: &str) -> Result<bool> {
        let what = format!("delete index {index}");
        let reply = self.send(Method::DELETE, &format!("/{}", enc(index)), None, &what)?;
        if reply.status == 404 {
            return Ok(false);
        }
        let _: Value = parse_success(reply, &what)?;
        Ok(true)
    }

    /// `POST /<index>/_bulk` with NDJSON; item failures are reported one by one.
    pub fn bulk(&self, index: &str, ndjson: &[u8], refresh: bool) -> Result<BulkOutcome> {
        let what = format!("bulk-write to index {index}");
        let path = format!(
            "/{}/_bulk?filter_path=errors,items.*._id,items.*.status,items.*.error{}",
            enc(index),
            if refresh { "&refresh=wait_for" } else { "" }
        );
        let v: Value = self.call(Method::POST, &path, Some(ndjson), &what)?;
        let mut outcome = BulkOutcome::default();
        for (position, item) in v["items"].as_array().into_iter().flatten().enumerate() {
            let Some((_, result)) = item.as_object().and_then(|o| o.iter().next()) else {
                continue;
            };
            let status = result["status"].as_u64().unwrap_or(0) as u16;
            if (200..300).contains(&status) {
                outcome.written += 1;
            } else {
                let err = &result["error"];
                outcome.failed.push(BulkFailure {
                    position,
                    id: result["_id"].as_str().map(str::to_string),
                    status,
                    reason: format!(
                        "{}: {}",
                        err["type"].as_str().unwrap_or("error"),
                        err["reason"].as_str().unwrap_or("no reason given")
                    ),
                });
            }
        }
        Ok(outcome)
    }

    /// `GET /_cluster/health`.
    pub fn cluster_health(&self) -> Result<Value> {
        self.call(
            Method::GET,
            "/_cluster/health",
            None,
            "read the cluster health",
        )
    }
}

#[derive(Deserialize)]
struct ShardsHeader {
    #[serde(default)]
    successful: i64,
    #[serde(default)]
    failed: i64,
}

fn decode_doc<T: DeserializeOwned>(v: &Value, what: &str) -> Result<(DocVersion, T)> {
    let version = DocVersion {
        seq_no: v["_seq_no"].as_i64().unwrap_or(-2),
        primary_term: v["_primary_term"].as_i64().unwrap_or(-2),
    };
    let source = v
        .get("_source")
        .cloned()
        .ok_or_else(|| Error::Internal(format!("{what}: document without _source")))?;
    let doc = serde_json::from_value(source.clone()).map_err(|e| {
        Error::Offsets(format!(
            "document {} is corrupt ({e}): {source}; inspect it, then delete or reset it",
            v["_id"]
        ))
    })?;
    Ok((version, doc))
}

fn parse_success<T: DeserializeOwned>(reply: Reply, what: &str) -> Result<T> {
    if !reply.is_success() {
        return Err(error_from_reply(&reply, what));
    }
    serde_json::from_slice(&reply.body).map_err(|e| {
        Error::Internal(format!(
            "{what}: unreadable answer ({e}): {}",
            truncate(&String::from_utf8_lossy(&reply.body), 300)
        ))
    })
}

/// Turns an error status into an error with OpenSearch's `type` and `reason`.
pub fn error_from_reply(reply: &Reply, what: &str) -> Error {
    let v: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
    let (error_type, reason) = match &v["error"] {
        Value::Object(e) => {
            let cause = e.get("root_cause").and_then(|c| c.get(0));
            let reason = e
                .get("reason")
                .and_then(Value::as_str)
                .or_else(|| cause.and_then(|c| c["reason"].as_str()))
                .unwrap_or("no reason given");
            (
                e.get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("error")
                    .to_string(),
                reason.to_string(),
            )
        }
        Value::String(s) => ("error".to_string(), s.clone()),
        _ => (
            "error".to_string(),
            if reply.body.is_empty() {
                "empty body".to_string()
            } else {
                truncate(&String::from_utf8_lossy(&reply.body), 300)
            },
        ),
    };
    let body_text = String::from_utf8_lossy(&reply.body);
    if reply.status == 400 && body_text.contains("SSL certificate") {
        // nginx and similar proxies answer a missing or rejected client certificate with 400.
        return Error::Config(format!(
            "the server refused to {what} without a valid client certificate (HTTP 400: {}); set \
             --client-cert and --client-key",
            if body_text.contains("No required SSL certificate") {
                "no client certificate was sent"
            } else {
                "the client certificate was rejected"
            }
        ));
    }
    if reply.status == 401 || reply.status == 403 {
        return Error::Config(format!(
            "OpenSearch refused to {what}: HTTP {} {error_type}: {reason}; check --username and \
             the password",
            reply.status
        ));
    }
    Error::OpenSearch {
        what: what.to_string(),
        status: reply.status,
        error_type,
        reason,
    }
}

fn error_summary(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let e = &v["error"];
    Some(format!(
        "{}: {}",
        e["type"].as_str()?,
        e["reason"].as_str().unwrap_or("")
    ))
}

/// Errors that retrying cannot fix: bad URLs and TLS failures (wrong CA, rejected certificate).
fn non_retryable(e: &ureq::Error, url: &str) -> Option<Error> {
    match e {
        ureq::Error::BadUri(m) => Some(Error::Config(format!("bad URL {url}: {m}"))),
        ureq::Error::Http(m) => Some(Error::Config(format!("bad request to {url}: {m}"))),
        ureq::Error::Tls(m) => Some(Error::Config(format!("TLS with {url} failed: {m}"))),
        ureq::Error::Rustls(m) => Some(Error::Config(format!(
            "TLS with {url} failed: {m}; check --ca-cert, --client-cert and --client-key"
        ))),
        ureq::Error::Io(io) => {
            let text = io.to_string();
            let lower = text.to_lowercase();
            if lower.contains("certificate") || lower.contains("handshake") || lower.contains("tls")
            {
                Some(Error::Config(format!(
                    "TLS with {url} failed: {text}; check --ca-cert, --client-cert and --client-key"
                )))
            } else {
                None
            }
        }
        _ => None,
    }
}

/// Sleeps for `pause`, waking early when `stop` is raised. Returns true if it was.
fn sleep_unless(pause: Duration, stop: Option<&StopFlag>) -> bool {
    let Some(stop) = stop else {
        std::thread::sleep(pause);
        return false;
    };
    let until = Instant::now() + pause;
    loop {
        if stop.is_raised() {
            return true;
        }
        let now = Instant::now();
        if now >= until {
            return false;
        }
        std::thread::sleep((until - now).min(Duration::from_millis(20)));
    }
}

fn backoff(attempt: u32) -> Duration {
    let cap_ms = 100u64.saturating_mul(1 << attempt.min(16)).min(5_000);
    Duration::from_millis(crate::random::below(cap_ms + 1))
}

fn validate_url(url: &str) -> Result<String> {
    let trimmed = url.trim().trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("http://")
        .or_else(|| trimmed.strip_prefix("https://"))
        .ok_or_else(|| {
            Error::Config(format!(
                "--url `{url}` must start with http:// or https:// (for example http://127.0.0.1:9200)"
            ))
        })?;
    if rest.is_empty() || rest.contains('@') || rest.contains(char::is_whitespace) {
        return Err(Error::Config(format!(
            "--url `{}` is not a usable base URL; give scheme, host and port only and pass \
             credentials with --username and --password-file",
            redact_userinfo(url)
        )));
    }
    if rest.contains('?') || rest.contains('#') {
        return Err(Error::Config(format!(
            "--url `{url}` must not carry a query or fragment"
        )));
    }
    Ok(trimmed.to_string())
}

fn redact_userinfo(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_string(),
    }
}

fn read_certificates(path: &std::path::Path, flag: &str) -> Result<Vec<Certificate<'static>>> {
    let pem = std::fs::read(path)
        .map_err(|e| Error::Config(format!("{flag} {}: cannot read: {e}", path.display())))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(c)) => certs.push(c),
            Ok(_) => {}
            Err(e) => {
                return Err(Error::Config(format!(
                    "{flag} {}: not a valid PEM file: {e}",
                    path.display()
                )));
            }
        }
    }
    if certs.is_empty() {
        return Err(Error::Config(format!(
            "{flag} {}: no certificate found in the file",
            path.display()
        )));
    }
    Ok(certs)
}

fn read_private_key(path: &std::path::Path) -> Result<PrivateKey<'static>> {
    let pem = std::fs::read(path)
        .map_err(|e| Error::Config(format!("--client-key {}: cannot read: {e}", path.display())))?;
    PrivateKey::from_pem(&pem).map_err(|e| {
        Error::Config(format!(
            "--client-key {}: no usable private key: {e}",
            path.display()
        ))
    })
}

/// Percent-encodes a path segment (index names and ids are validated, this is a second fence).
pub fn enc(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b':' | b',' | b'*')
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(ALPHABET[(n >> 18) as usize & 63] as char);
        out.push(ALPHABET[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            ALPHABET[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            ALPHABET[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"admin:s3cr3t!"), "YWRtaW46czNjcjN0IQ==");
    }

    #[test]
    fn urls_are_checked() {
        assert_eq!(validate_url("http://h:9200/").unwrap(), "http://h:9200");
        assert!(validate_url("h:9200").is_err());
        let e = validate_url("http://admin:pw@h:9200")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("pw"), "{e}");
    }

    #[test]
    fn backoff_is_capped() {
        for attempt in 0..40 {
            assert!(backoff(attempt) <= Duration::from_secs(5));
        }
    }
}
