//! The stateful consumer: resolves the source index, checks the stored identity, and runs the
//! gap-free read protocol of DESIGN.md §3 as an explicit poll → deliver → commit cycle.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::client::{Client, DocVersion, IndexInfo, ShardPage, ShardStat};
use crate::error::{Error, Result};
use crate::offsets::{OffsetDoc, OffsetStore, doc_id};
use crate::sink::{Batch, Sink};
pub use crate::stop::StopFlag;
use crate::time;

/// Where a group without stored offsets starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartFrom {
    /// From the first event of each shard.
    Earliest,
    /// From the global checkpoint at the first run: only events written afterwards.
    Latest,
}

/// A subset of shards: those with `shard % count == index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slice {
    pub index: u32,
    pub count: u32,
}

impl Slice {
    pub fn contains(&self, shard: u32) -> bool {
        shard % self.count == self.index
    }
}

/// What a consumer reads and where it keeps its offsets.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub group: String,
    pub index: String,
    pub offsets_index: String,
    pub batch_size: usize,
    pub start_from: StartFrom,
    pub slice: Option<Slice>,
    /// Identifies this run in audit fields and leases.
    pub run_id: String,
    pub host: String,
    /// How long a shard stays owned by this run without a commit or renewal.
    pub lease_ttl: Duration,
    /// Append a record per commit to `<offsets_index>-history`.
    pub history: bool,
    /// Mark delivered events `processed: true` / `processed_by: [group]`, and skip events
    /// this group already marked.
    pub mark_processed: bool,
}

impl ConsumerConfig {
    pub fn new(group: impl Into<String>, index: impl Into<String>) -> ConsumerConfig {
        ConsumerConfig {
            group: group.into(),
            index: index.into(),
            offsets_index: "consumer-offsets".into(),
            batch_size: 500,
            start_from: StartFrom::Earliest,
            slice: None,
            run_id: crate::random::run_id(),
            host: "unknown".into(),
            lease_ttl: Duration::from_secs(300),
            history: true,
            mark_processed: false,
        }
    }

    /// The `owner` value this run writes into the offset documents it holds.
    pub fn owner(&self) -> String {
        format!("{}@{}", self.run_id, self.host)
    }
}

struct ShardState {
    shard: u32,
    version: DocVersion,
    doc: OffsetDoc,
    /// The snapshot checkpoint `G[s]`: nothing beyond it is read until the next snapshot.
    target: i64,
    /// When this run's lease on the shard runs out (epoch ms).
    lease_deadline: i64,
}

impl ShardState {
    fn position(&self) -> i64 {
        self.doc.seq_no
    }
}

/// Per-shard position at the end of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardReport {
    pub shard: u32,
    pub committed: i64,
    pub checkpoint: i64,
}

impl ShardReport {
    pub fn lag(&self) -> i64 {
        (self.checkpoint - self.committed).max(0)
    }
}

/// A shard this run did not take because another live run holds its lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedShard {
    pub shard: u32,
    pub owner: String,
    pub lease_until: String,
}

/// True when `doc` carries a lease of another owner that has not expired at `now_ms`.
pub fn leased_by_other(doc: &OffsetDoc, me: &str, now_ms: i64) -> bool {
    match (&doc.owner, &doc.lease_until) {
        (Some(owner), Some(until)) if owner != me => crate::time::parse_rfc3339_millis(until)
            .map(|t| t > now_ms)
            .unwrap_or(false),
        _ => false,
    }
}

/// `owner until time` of the live lease another run holds on `doc`, if any.
pub fn live_lease(doc: &OffsetDoc, me: &str, now_ms: i64) -> Option<String> {
    leased_by_other(doc, me, now_ms).then(|| {
        format!(
            "{} until {}",
            doc.owner.as_deref().unwrap_or("?"),
            doc.lease_until.as_deref().unwrap_or("?")
        )
    })
}

/// A consumer of one group on one index, owning some of its shards.
pub struct Consumer {
    client: Client,
    store: OffsetStore,
    config: ConsumerConfig,
    source: IndexInfo,
    shards: Vec<ShardState>,
    skipped: Vec<SkippedShard>,
    use_primary: bool,
    next: usize,
    owner: String,
    /// The page the next `poll` is expected to ask for, already in flight.
    prefetch: Option<Prefetch>,
    history: Option<HistoryWriter>,
}

/// A page request running on its own thread while the caller delivers and commits.
struct Prefetch {
    shard_index: usize,
    after: i64,
    up_to: i64,
    handle: std::thread::JoinHandle<Result<Vec<crate::client::Hit>>>,
}

/// Appends history records from a background thread so the audit trail costs the batch loop
/// no round trip. `finish` waits until every record is written.
struct HistoryWriter {
    tx: Option<std::sync::mpsc::Sender<HistoryRecord>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl HistoryWriter {
    fn start(store: OffsetStore) -> HistoryWriter {
        let (tx, rx) = std::sync::mpsc::channel::<HistoryRecord>();
        let handle = std::thread::spawn(move || {
            // Whatever queued up while the previous write was in flight goes in one `_bulk`.
            while let Ok(first) = rx.recv() {
                let mut records = vec![first];
                records.extend(rx.try_iter());
                // The offsets are already committed; a lost history record must not undo them.
                if let Err(e) = store.append_history_bulk(&records) {
                    log::error!("{} history records not written: {e}", records.len());
                }
            }
        });
        HistoryWriter {
            tx: Some(tx),
            handle: Some(handle),
        }
    }

    fn send(&self, record: HistoryRecord) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(record);
        }
    }

    fn finish(&mut self) {
        self.tx.take();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for HistoryWriter {
    fn drop(&mut self) {
        self.finish();
    }
}

impl Consumer {
    /// Connects, checks identities, takes the leases of the shards it can own, loads or creates
    /// their offsets, and takes the first snapshot.
    pub fn open(client: Client, config: ConsumerConfig) -> Result<Consumer> {
        let store = OffsetStore::new(client.clone(), config.offsets_index.clone());
        store.ensure_index()?;
        if config.history {
            store.ensure_history_index()?;
        }
        let version = client.version()?;
        let use_primary = supports_primary_preference(&version);
        if !use_primary {
            log::warn!(
                "server {version} has no `_primary` search preference (OpenSearch 2.8+); reading \
                 with `_shards:<s>` only, so a lagging replica may answer and a batch may arrive late"
            );
        }
        let source = client.index_info(&config.index)?;
        let stats = primaries(&client, &source)?;
        let candidates: Vec<u32> = (0..source.shards)
            .filter(|s| config.slice.is_none_or(|sl| sl.contains(*s)))
            .collect();
        if candidates.is_empty() {
            return Err(Error::Config(format!(
                "slice {}/{} owns none of the {} shards of index {}",
                config.slice.map(|s| s.index).unwrap_or(0),
                config.slice.map(|s| s.count).unwrap_or(1),
                source.shards,
                source.name
            )));
        }

        // Identity: any stored document of this group for this index name (or uuid) must
        // describe the live index, or the offsets belong to another stream.
        let stored = store.find_group(&config.group, &config.index, &source.uuid)?;
        for (_, doc) in &stored {
            check_identity(&config, &source, &stats, doc)?;
        }

        let ids: Vec<String> = candidates
            .iter()
            .map(|s| doc_id(&config.group, &source.uuid, *s))
            .collect();
        let mut loaded: BTreeMap<u32, (DocVersion, OffsetDoc)> = BTreeMap::new();
        for (_, version, doc) in store.get_many(&ids)? {
            check_identity(&config, &source, &stats, &doc)?;
            loaded.insert(doc.shard, (version, doc));
        }

        let owner = config.owner();
        let mut shards = Vec::with_capacity(candidates.len());
        let mut skipped = Vec::new();
        for shard in candidates {
            let stat = &stats[shard as usize];
            let fresh = || {
                let start = match config.start_from {
                    StartFrom::Earliest => -1,
                    StartFrom::Latest => stat.global_checkpoint,
                };
                OffsetDoc {
                    group: config.group.clone(),
                    index: config.index.clone(),
                    index_uuid: source.uuid.clone(),
                    shard,
                    history_uuid: stat.history_uuid.clone(),
                    seq_no: start,
                    primary_term: 0,
                    checkpoint: stat.global_checkpoint,
                    committed_at: time::now_rfc3339(),
                    run_id: config.run_id.clone(),
                    host: config.host.clone(),
                    owner: None,
                    lease_until: None,
                    events_total: 0,
                }
            };
            match acquire(&store, &config, &owner, loaded.remove(&shard), fresh)? {
                Acquired::Owned(version, doc, deadline) => shards.push(ShardState {
                    shard,
                    version,
                    target: doc.seq_no,
                    doc,
                    lease_deadline: deadline,
                }),
                Acquired::Skipped(doc) => {
                    log::warn!(
                        "shard {shard} of group {} is leased by {} until {}: skipped",
                        config.group,
                        doc.owner.as_deref().unwrap_or("?"),
                        doc.lease_until.as_deref().unwrap_or("?")
                    );
                    skipped.push(SkippedShard {
                        shard,
                        owner: doc.owner.unwrap_or_default(),
                        lease_until: doc.lease_until.unwrap_or_default(),
                    })
                }
            }
        }
        if shards.is_empty() {
            let held: Vec<String> = skipped
                .iter()
                .map(|s| format!("shard {} by {} until {}", s.shard, s.owner, s.lease_until))
                .collect();
            return Err(Error::Conflict(format!(
                "every shard this run could read is leased by another live run of group {} ({}); \
                 try later, or wait for the leases to expire if that run crashed",
                config.group,
                held.join(", ")
            )));
        }
        let mut consumer = Consumer {
            client,
            store,
            config,
            source,
            shards,
            skipped,
            use_primary,
            next: 0,
            owner,
            prefetch: None,
            history: None,
        };
        if consumer.config.history {
            consumer.history = Some(HistoryWriter::start(consumer.store.clone()));
        }
        consumer.snapshot()?;
        Ok(consumer)
    }

    /// The concrete index being read.
    pub fn source(&self) -> &IndexInfo {
        &self.source
    }

    pub fn config(&self) -> &ConsumerConfig {
        &self.config
    }

    /// Shards this run left alone because another live run holds them.
    pub fn skipped(&self) -> &[SkippedShard] {
        &self.skipped
    }

    /// Takes a new snapshot: the checkpoint of every primary, then a refresh. Returns true when
    /// some owned shard has events beyond its committed position.
    pub fn snapshot(&mut self) -> Result<bool> {
        let stats = primaries(&self.client, &self.source)?;
        for state in &self.shards {
            let stat = &stats[state.shard as usize];
            if stat.history_uuid != state.doc.history_uuid {
                return Err(identity_error(
                    &self.config,
                    &state.doc,
                    &self.source,
                    &stat.history_uuid,
                ));
            }
        }
        // Order matters: checkpoints first, refresh second, so every operation at or below a
        // checkpoint is visible to the searches that follow.
        self.client.refresh(&self.source.name)?;
        let mut pending = false;
        for state in &mut self.shards {
            state.target = stats[state.shard as usize]
                .global_checkpoint
                .max(state.position());
            pending |= state.target > state.position();
        }
        Ok(pending)
    }

    /// Reads the next non-empty batch, visiting shards in turn. Ranges with no visible event
    /// (gaps left by updates and deletes) are committed to the checkpoint on the way, so they
    /// are never scanned again. `Ok(None)`: every owned shard has reached the snapshot.
    pub fn poll(&mut self) -> Result<Option<Batch>> {
        self.renew_leases()?;
        let count = self.shards.len();
        for step in 0..count {
            let i = (self.next + step) % count;
            let (shard, after, up_to) = {
                let s = &self.shards[i];
                (s.shard, s.position(), s.target)
            };
            if after >= up_to {
                continue;
            }
            let size = self.config.batch_size;
            let hits = match self.prefetch.take() {
                Some(p) if (p.shard_index, p.after, p.up_to) == (i, after, up_to) => p
                    .handle
                    .join()
                    .map_err(|_| Error::Internal("prefetch thread panicked".into()))??,
                _ => self.fetch(shard, after, up_to)?,
            };
            if hits.is_empty() {
                self.commit_position(i, up_to, None, 0)?;
                continue;
            }
            let commit_to = if hits.len() < size {
                up_to
            } else {
                hits.last().map(|h| h.seq_no).unwrap_or(up_to)
            };
            self.next = (i + 1) % count;
            self.start_prefetch(i, commit_to);
            return Ok(Some(Batch {
                group: self.config.group.clone(),
                index: self.config.index.clone(),
                index_uuid: self.source.uuid.clone(),
                shard,
                events: hits,
                commit_to,
            }));
        }
        Ok(None)
    }

    fn page(&self, shard: u32, after: i64, up_to: i64) -> ShardPage<'static> {
        ShardPage {
            shard,
            after,
            up_to,
            size: self.config.batch_size,
            primary: self.use_primary,
            exclude_marked_by: None,
        }
    }

    /// With `--mark-processed`, the group whose marks are skipped.
    fn marked_by(&self) -> Option<&str> {
        self.config
            .mark_processed
            .then_some(self.config.group.as_str())
    }

    fn fetch(&self, shard: u32, after: i64, up_to: i64) -> Result<Vec<crate::client::Hit>> {
        let page = self.page(shard, after, up_to);
        search_page(&self.client, &self.source.name, page, self.marked_by())
    }

    /// Starts fetching the page the next `poll` will ask for, given that shard `i` is about to
    /// be committed at `i_position`: it overlaps the search with delivery and commit.
    fn start_prefetch(&mut self, i: usize, i_position: i64) {
        let count = self.shards.len();
        let next = (0..count)
            .map(|step| (self.next + step) % count)
            .find_map(|j| {
                let s = &self.shards[j];
                let position = if j == i { i_position } else { s.position() };
                (position < s.target).then_some((j, s.shard, position, s.target))
            });
        let Some((j, shard, after, up_to)) = next else {
            return;
        };
        let client = self.client.clone();
        let index = self.source.name.clone();
        let page = self.page(shard, after, up_to);
        let marked_by = self.marked_by().map(str::to_owned);
        let handle =
            std::thread::spawn(move || search_page(&client, &index, page, marked_by.as_deref()));
        self.prefetch = Some(Prefetch {
            shard_index: j,
            after,
            up_to,
            handle,
        });
    }

    /// Marks the events of a delivered batch as processed by this group (`--mark-processed`).
    /// Each mark re-indexes the event with `if_seq_no`, so a version the producer replaced
    /// meanwhile is left alone (it comes back as a new event anyway). Returns events marked.
    pub fn mark_processed(&self, batch: &Batch) -> Result<u64> {
        let mut body = String::new();
        for e in &batch.events {
            let Some(raw) = &e.source else { continue };
            let mut source: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(raw.get()).map_err(|err| {
                    Error::Internal(format!("event {} has a non-object _source: {err}", e.id))
                })?;
            let mut by: Vec<serde_json::Value> = match source.remove("processed_by") {
                Some(serde_json::Value::Array(a)) => a,
                Some(serde_json::Value::String(s)) => vec![s.into()],
                _ => Vec::new(),
            };
            if !by.iter().any(|g| g.as_str() == Some(&self.config.group)) {
                by.push(self.config.group.clone().into());
            }
            source.insert("processed".into(), true.into());
            source.insert("processed_by".into(), by.into());
            let mut meta = serde_json::json!({
                "_id": e.id, "if_seq_no": e.seq_no, "if_primary_term": e.primary_term
            });
            if let Some(r) = &e.routing {
                meta["routing"] = r.clone().into();
            }
            body.push_str(&serde_json::json!({ "index": meta }).to_string());
            body.push('\n');
            body.push_str(&serde_json::Value::Object(source).to_string());
            body.push('\n');
        }
        let outcome = self
            .client
            .bulk(&self.source.name, body.as_bytes(), false)?;
        let conflicts = outcome.failed.iter().filter(|f| f.status == 409).count();
        if let Some(f) = outcome.failed.iter().find(|f| f.status != 409) {
            return Err(Error::Unavailable {
                what: format!("mark events of shard {} as processed", batch.shard),
                detail: format!(
                    "event {} was not marked: HTTP {} {}",
                    f.id.as_deref().unwrap_or("?"),
                    f.status,
                    f.reason
                ),
            });
        }
        if conflicts > 0 {
            log::info!("{conflicts} events changed since they were read and were not marked");
        }
        Ok(outcome.written as u64)
    }

    /// Commits a delivered batch. Call only after the sink accepted it.
    pub fn commit(&mut self, batch: &Batch) -> Result<()> {
        let i = self
            .shards
            .iter()
            .position(|s| s.shard == batch.shard)
            .ok_or_else(|| Error::Internal(format!("commit for unowned shard {}", batch.shard)))?;
        let term = batch.events.last().map(|e| e.primary_term);
        self.commit_position(i, batch.commit_to, term, batch.events.len() as u64)
    }

    fn commit_position(
        &mut self,
        i: usize,
        seq_no: i64,
        term: Option<i64>,
        events: u64,
    ) -> Result<()> {
        let from = self.shards[i].position();
        let mut doc = self.shards[i].doc.clone();
        doc.seq_no = seq_no;
        if let Some(term) = term {
            doc.primary_term = term;
        }
        doc.checkpoint = self.shards[i].target;
        doc.events_total += events;
        self.write_own(i, doc, true)?;
        log::debug!(
            "committed group {} shard {} at {} ({} events)",
            self.config.group,
            self.shards[i].shard,
            seq_no,
            events
        );
        if let Some(writer) = &self.history {
            // write_own stamped the document with this run, this host and the commit time.
            writer.send(HistoryRecord::of(
                "commit",
                &self.shards[i].doc,
                from,
                seq_no,
                events,
            ));
        }
        Ok(())
    }

    /// Writes this run's view of shard `i` with a fresh lease (or none, when releasing),
    /// conditional on the version this run last saw.
    fn write_own(&mut self, i: usize, mut doc: OffsetDoc, keep_lease: bool) -> Result<()> {
        let now = time::now_millis();
        doc.committed_at = time::rfc3339_millis(now);
        let owner = keep_lease.then_some(self.owner.as_str());
        let deadline = stamp(&mut doc, &self.config, owner, now);
        let state = &self.shards[i];
        let version = match self.store.replace(&doc, state.version)? {
            Some(v) => v,
            None => {
                // A 409 can also mean our own write landed and its answer was lost before a
                // retry: accept it when the stored document is exactly ours.
                match self
                    .store
                    .get(&doc_id(&doc.group, &doc.index_uuid, doc.shard))?
                {
                    Some((v, stored)) if stored == doc => v,
                    Some((_, stored)) => {
                        return Err(Error::Conflict(format!(
                            "group {} shard {}: the offset changed under this run (now seq_no {} \
                             by run {} on {}, owner {}); another run owns the shard, so this run \
                             stops without committing further",
                            doc.group,
                            doc.shard,
                            stored.seq_no,
                            stored.run_id,
                            stored.host,
                            stored.owner.as_deref().unwrap_or("none")
                        )));
                    }
                    None => {
                        return Err(Error::Conflict(format!(
                            "group {} shard {}: the offset document was deleted during the run; \
                             this run stops without committing",
                            doc.group, doc.shard
                        )));
                    }
                }
            }
        };
        let state = &mut self.shards[i];
        state.version = version;
        state.doc = doc;
        state.lease_deadline = if keep_lease { deadline } else { 0 };
        Ok(())
    }

    /// Renews leases that are past half their time, so a slow batch does not lose them.
    fn renew_leases(&mut self) -> Result<()> {
        let half = self.config.lease_ttl.as_millis() as i64 / 2;
        let now = time::now_millis();
        for i in 0..self.shards.len() {
            if self.shards[i].lease_deadline - now < half {
                let doc = self.shards[i].doc.clone();
                self.write_own(i, doc, true)?;
            }
        }
        Ok(())
    }

    /// Gives up the leases of every owned shard (a clean exit). The position is rewritten
    /// unchanged, so `committed_at` records when a run last confirmed it.
    pub fn release(&mut self) -> Result<()> {
        self.prefetch.take();
        if let Some(writer) = &mut self.history {
            writer.finish();
        }
        for i in 0..self.shards.len() {
            let doc = self.shards[i].doc.clone();
            self.write_own(i, doc, false)?;
        }
        Ok(())
    }

    /// Committed position and snapshot of every owned shard.
    pub fn report(&self) -> Vec<ShardReport> {
        self.shards
            .iter()
            .map(|s| ShardReport {
                shard: s.shard,
                committed: s.position(),
                checkpoint: s.target,
            })
            .collect()
    }
}

enum Acquired {
    Owned(DocVersion, OffsetDoc, i64),
    Skipped(OffsetDoc),
}

/// Takes the lease of one shard, creating its offset document if needed. Both the create and
/// the update are conditional, so of two runs racing for a shard exactly one gets it.
fn acquire(
    store: &OffsetStore,
    config: &ConsumerConfig,
    owner: &str,
    mut current: Option<(DocVersion, OffsetDoc)>,
    fresh: impl Fn() -> OffsetDoc,
) -> Result<Acquired> {
    for _ in 0..3 {
        let now = time::now_millis();
        let (version, mut doc) = match current.take() {
            Some((version, doc)) => {
                if leased_by_other(&doc, owner, now) {
                    return Ok(Acquired::Skipped(doc));
                }
                (Some(version), doc)
            }
            None => (None, fresh()),
        };
        let deadline = stamp(&mut doc, config, Some(owner), now);
        let written = match version {
            Some(v) => store.replace(&doc, v)?,
            None => {
                let created = store.create(&doc)?;
                if created.is_some() {
                    log::info!(
                        "group {} starts shard {} of {} after seq_no {} ({:?})",
                        config.group,
                        doc.shard,
                        config.index,
                        doc.seq_no,
                        config.start_from
                    );
                }
                created
            }
        };
        if let Some(v) = written {
            return Ok(Acquired::Owned(v, doc, deadline));
        }
        // Lost a race: look at what the other run wrote and decide again.
        current = store.get(&doc_id(&doc.group, &doc.index_uuid, doc.shard))?;
    }
    Err(Error::Conflict(format!(
        "group {}: could not take a shard lease after 3 attempts; other runs keep changing it",
        config.group
    )))
}

/// One page of a shard, skipping events `marked_by` already marked.
fn search_page(
    client: &Client,
    index: &str,
    page: ShardPage<'_>,
    marked_by: Option<&str>,
) -> Result<Vec<crate::client::Hit>> {
    let page = ShardPage {
        exclude_marked_by: marked_by,
        ..page
    };
    client.search_shard(index, &page)
}

/// Stamps `doc` as written by this run at `now_ms`, holding the lease as `owner` or, with
/// None, releasing it. Returns when the lease runs out.
fn stamp(doc: &mut OffsetDoc, config: &ConsumerConfig, owner: Option<&str>, now_ms: i64) -> i64 {
    let deadline = now_ms + config.lease_ttl.as_millis() as i64;
    doc.run_id = config.run_id.clone();
    doc.host = config.host.clone();
    doc.owner = owner.map(str::to_owned);
    doc.lease_until = owner.map(|_| time::rfc3339_millis(deadline));
    deadline
}

/// One line of the audit trail in `<offsets-index>-history`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HistoryRecord {
    /// `commit`, `reset` or `delete`.
    pub kind: String,
    pub group: String,
    pub index: String,
    pub index_uuid: String,
    pub shard: u32,
    pub from_seq_no: i64,
    pub to_seq_no: i64,
    pub events: u64,
    pub run_id: String,
    pub host: String,
    pub time: String,
}

impl HistoryRecord {
    /// The record of a change that left `doc` as written: run, host and time are its audit
    /// fields.
    pub fn of(kind: &str, doc: &OffsetDoc, from_seq_no: i64, to_seq_no: i64, events: u64) -> Self {
        HistoryRecord {
            kind: kind.into(),
            group: doc.group.clone(),
            index: doc.index.clone(),
            index_uuid: doc.index_uuid.clone(),
            shard: doc.shard,
            from_seq_no,
            to_seq_no,
            events,
            run_id: doc.run_id.clone(),
            host: doc.host.clone(),
            time: doc.committed_at.clone(),
        }
    }
}

fn primaries(client: &Client, source: &IndexInfo) -> Result<Vec<ShardStat>> {
    let stats = client.shard_stats(&source.name)?;
    let mut by_shard: Vec<Option<ShardStat>> = vec![None; source.shards as usize];
    for stat in stats {
        if let Some(slot) = by_shard.get_mut(stat.shard as usize) {
            *slot = Some(stat);
        }
    }
    by_shard
        .into_iter()
        .enumerate()
        .map(|(shard, stat)| {
            stat.ok_or_else(|| Error::Unavailable {
                what: format!("read shard {shard} of index {}", source.name),
                detail: "the shard has no started primary; check `GET _cluster/health` and \
                         `GET _cat/shards`"
                    .into(),
            })
        })
        .collect()
}

fn check_identity(
    config: &ConsumerConfig,
    source: &IndexInfo,
    stats: &[ShardStat],
    doc: &OffsetDoc,
) -> Result<()> {
    if doc.index_uuid != source.uuid {
        return Err(Error::Offsets(format!(
            "group {} has offsets for index {} with uuid {}, but {} is now uuid {} ({} shards): \
             the index was deleted and re-created, restored or split, so those offsets describe \
             another stream. Nothing was read or committed. To start the group on the new \
             index run `seqtail offsets reset {} --index {} --to earliest --execute` (or \
             `--to latest` to skip what is there)",
            config.group,
            doc.index,
            doc.index_uuid,
            source.name,
            source.uuid,
            source.shards,
            config.group,
            config.index
        )));
    }
    if doc.shard >= source.shards {
        return Err(Error::Offsets(format!(
            "group {} has an offset for shard {} but index {} (uuid {}) has {} shards; reset the \
             group with `seqtail offsets reset {} --index {} --to earliest --execute`",
            config.group,
            doc.shard,
            source.name,
            source.uuid,
            source.shards,
            config.group,
            config.index
        )));
    }
    let live = &stats[doc.shard as usize].history_uuid;
    if &doc.history_uuid != live {
        return Err(identity_error(config, doc, source, live));
    }
    Ok(())
}

fn identity_error(
    config: &ConsumerConfig,
    doc: &OffsetDoc,
    source: &IndexInfo,
    live_history: &str,
) -> Error {
    Error::Offsets(format!(
        "group {} shard {} of index {} (uuid {}) was stored with history {} but the shard now has \
         history {}: the shard was restored from a snapshot or force-allocated, so its sequence \
         numbers restarted. Nothing was read or committed. Reset the group with `seqtail offsets \
         reset {} --index {} --to earliest --execute` (or `--to latest`)",
        config.group,
        doc.shard,
        source.name,
        source.uuid,
        doc.history_uuid,
        live_history,
        config.group,
        config.index
    ))
}

/// True for OpenSearch 2.8 and later, which accept `_shards:<s>|_primary`.
fn supports_primary_preference(version: &str) -> bool {
    if version.contains(' ') {
        return false; // another distribution, e.g. "elasticsearch 7.10.2"
    }
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    major > 2 || (major == 2 && minor >= 8)
}

/// Bounds of one run (DESIGN.md §5).
#[derive(Debug, Clone, Default)]
pub struct RunLimits {
    /// Stop after this many delivered batches (None: no limit).
    pub max_batches: Option<u64>,
    /// Stop starting batches when the time left is shorter than the last batch took.
    pub max_duration: Option<Duration>,
    /// Take new snapshots until one shows nothing new.
    pub until_caught_up: bool,
}

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    CaughtUp,
    MaxBatches,
    MaxDuration,
    Signal,
    Failed,
}

impl StopReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            StopReason::CaughtUp => "caught-up",
            StopReason::MaxBatches => "max-batches",
            StopReason::MaxDuration => "max-duration",
            StopReason::Signal => "signal",
            StopReason::Failed => "failed",
        }
    }
}

/// What a run did.
#[derive(Debug)]
pub struct RunReport {
    pub group: String,
    pub index: String,
    pub run_id: String,
    pub events: u64,
    pub batches: u64,
    pub duration: Duration,
    pub reason: StopReason,
    pub shards: Vec<ShardReport>,
    /// Shards left to other live runs.
    pub skipped: Vec<u32>,
    pub error: Option<Error>,
}

impl RunReport {
    pub fn total_lag(&self) -> i64 {
        self.shards.iter().map(ShardReport::lag).sum()
    }

    /// The one summary line of a run.
    pub fn summary_line(&self) -> String {
        let lag: Vec<String> = self
            .shards
            .iter()
            .map(|s| format!("{}:{}", s.shard, s.lag()))
            .collect();
        let mut line = format!(
            "run {} group={} index={} events={} batches={} duration={} reason={} lag={} lag_by_shard={}",
            self.run_id,
            self.group,
            self.index,
            self.events,
            self.batches,
            time::human(self.duration),
            self.reason.as_str(),
            self.total_lag(),
            if lag.is_empty() {
                "-".to_string()
            } else {
                lag.join(",")
            }
        );
        if !self.skipped.is_empty() {
            let skipped: Vec<String> = self.skipped.iter().map(u32::to_string).collect();
            line.push_str(&format!(" skipped_shards={}", skipped.join(",")));
        }
        if let Some(e) = &self.error {
            line.push_str(&format!(" exit={} error=\"{e}\"", e.exit_code()));
        } else {
            line.push_str(" exit=0");
        }
        line
    }
}

/// Runs the batch loop: poll, deliver, commit, until a limit, caught up, a signal or an error.
pub fn run(
    consumer: &mut Consumer,
    sink: &mut dyn Sink,
    limits: &RunLimits,
    stop: &StopFlag,
    started: Instant,
) -> RunReport {
    let mut events = 0u64;
    let mut batches = 0u64;
    let mut last_batch = Duration::ZERO;
    let outcome: Result<StopReason> = (|| {
        loop {
            if stop.is_raised() {
                return Ok(StopReason::Signal);
            }
            if limits.max_batches.is_some_and(|m| batches >= m) {
                return Ok(StopReason::MaxBatches);
            }
            if let Some(max) = limits.max_duration {
                let elapsed = started.elapsed();
                if elapsed >= max || max - elapsed < last_batch {
                    return Ok(StopReason::MaxDuration);
                }
            }
            let batch_started = Instant::now();
            match consumer.poll()? {
                Some(batch) => {
                    sink.deliver(&batch)?;
                    if consumer.config.mark_processed {
                        consumer.mark_processed(&batch)?;
                    }
                    consumer.commit(&batch)?;
                    batches += 1;
                    events += batch.events.len() as u64;
                    last_batch = batch_started.elapsed();
                }
                None => {
                    if limits.until_caught_up && consumer.snapshot()? {
                        continue;
                    }
                    return Ok(StopReason::CaughtUp);
                }
            }
        }
    })();
    let (reason, error) = match outcome {
        Ok(reason) => (reason, None),
        Err(e) => (StopReason::Failed, Some(e)),
    };
    // Leases are released on every exit but a lost ownership (then they are not ours).
    if !matches!(error, Some(Error::Conflict(_))) {
        if let Err(e) = consumer.release() {
            log::warn!("leases not released ({e}); they expire by themselves");
        }
    }
    RunReport {
        group: consumer.config.group.clone(),
        index: consumer.config.index.clone(),
        run_id: consumer.config.run_id.clone(),
        events,
        batches,
        duration: started.elapsed(),
        reason,
        shards: consumer.report(),
        skipped: consumer.skipped.iter().map(|s| s.shard).collect(),
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primary_preference_needs_opensearch_2_8() {
        assert!(supports_primary_preference("2.19.6"));
        assert!(supports_primary_preference("2.8.0"));
        assert!(supports_primary_preference("3.1.0"));
        assert!(!supports_primary_preference("2.7.0"));
        assert!(!supports_primary_preference("1.3.20"));
        assert!(!supports_primary_preference("elasticsearch 7.10.2"));
    }

    #[test]
    fn slices_partition_shards() {
        let slices: Vec<Slice> = (0..3).map(|index| Slice { index, count: 3 }).collect();
        for shard in 0..10 {
            assert_eq!(slices.iter().filter(|s| s.contains(shard)).count(), 1);
        }
    }
}
