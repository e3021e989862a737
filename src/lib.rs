//! seqtail turns an OpenSearch index into a resumable, gap-free event stream for scheduled
//! batch jobs.
//!
//! A shard is a partition: a group's position is one `_seq_no` per shard, stored in an offsets
//! index and advanced with optimistic concurrency. Each run snapshots the global checkpoints,
//! refreshes, reads every shard up to its checkpoint in `_seq_no` order, hands batches to a
//! [`Sink`], and commits only what the sink accepted.
//!
//! ```no_run
//! use seqtail::{Client, ClientConfig, Consumer, ConsumerConfig, NullSink, Sink};
//!
//! let client = Client::new(&ClientConfig::default())?;
//! let mut consumer = Consumer::open(client, ConsumerConfig::new("my-group", "events"))?;
//! let mut sink = NullSink::default();
//! while let Some(batch) = consumer.poll()? {
//!     sink.deliver(&batch)?;
//!     consumer.commit(&batch)?;
//! }
//! // Give the shard leases back so the next run need not wait for them to expire.
//! consumer.release()?;
//! # Ok::<(), seqtail::Error>(())
//! ```
#![forbid(unsafe_code)]

mod app;
pub mod cli;
mod client;
mod consumer;
mod error;
mod init;
pub mod inspect;
pub mod logging;
mod metrics;
mod offsets;
mod produce;
mod random;
pub mod reset;
mod secret;
mod sink;
mod stop;
mod time;

pub use app::{Context, describe_failure, execute};
pub use client::{
    BulkFailure, BulkOutcome, Client, ClientConfig, DocVersion, Hit, IndexInfo, Reply, ShardPage,
    ShardStat, WriteCondition,
};
pub use consumer::{
    Consumer, ConsumerConfig, HistoryRecord, RunLimits, RunReport, ShardReport, SkippedShard,
    Slice, StartFrom, StopFlag, StopReason, leased_by_other, run,
};
pub use error::{Error, Result};
pub use init::{InitConfig, InitReport, events_index_body, init};
pub use metrics::RunMetrics;
pub use offsets::{OffsetDoc, OffsetStore, doc_id, offsets_index_body};
pub use produce::{OnBadLine, ProduceConfig, ProduceReport, Source, produce};
pub use random::run_id;
pub use secret::Secret;
pub use sink::{Batch, ExecSink, NullSink, Sink, StdoutSink};
pub use time::{now_rfc3339, parse_duration, parse_rfc3339_millis, rfc3339_millis};
