//! `seqtail produce`: the producer side. Generates synthetic events at a steady rate or ingests
//! NDJSON, writing with `_bulk`, idempotent ids, routing by a field, per-item failures named.

use std::io::BufRead;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use crate::client::{BulkFailure, Client};
use crate::consumer::StopFlag;
use crate::error::{Error, Result};

/// Where events come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// Synthetic events.
    Generate {
        count: Option<u64>,
        duration: Option<Duration>,
        payload_bytes: usize,
        keys: u64,
    },
    /// NDJSON, one document per line; `-` is standard input.
    Ndjson { path: String },
}

/// What to do with a line that is not a JSON object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnBadLine {
    Fail,
    Skip,
}

/// How events are ids'd, routed and written.
#[derive(Debug, Clone)]
pub struct ProduceConfig {
    pub index: String,
    pub source: Source,
    /// Events per second (None: as fast as possible).
    pub rate: Option<f64>,
    pub bulk_size: usize,
    pub routing_field: Option<String>,
    /// Ids are `<prefix><sequence>` (0-based event number, or 1-based line number for NDJSON).
    pub id_prefix: Option<String>,
    /// Ids are this field's value.
    pub id_field: Option<String>,
    pub on_bad_line: OnBadLine,
    /// How long item-level 429/5xx rejections are retried.
    pub retry_timeout: Duration,
}

/// What a produce run wrote.
#[derive(Debug, Default, Clone)]
pub struct ProduceReport {
    pub written: u64,
    pub failed: u64,
    pub skipped_lines: u64,
    pub duration: Duration,
}

impl ProduceReport {
    pub fn rate(&self) -> f64 {
        self.written as f64 / self.duration.as_secs_f64().max(1e-9)
    }
}

/// Accumulates documents into `_bulk` requests and writes them.
struct Writer<'a> {
    client: &'a Client,
    config: &'a ProduceConfig,
    /// (description for errors, id, action + source lines)
    items: Vec<(String, Option<String>, String)>,
    since: Option<Instant>,
    report: ProduceReport,
    failures: Vec<BulkFailure>,
}

/// Longest a partially filled bulk waits at a steady rate, so output is smooth, not bursty.
const MAX_LINGER: Duration = Duration::from_millis(100);

/// Runs the producer until the source is exhausted, a limit is reached, or a stop is requested.
pub fn produce(client: &Client, config: &ProduceConfig, stop: &StopFlag) -> Result<ProduceReport> {
    let started = Instant::now();
    let mut w = Writer {
        client,
        config,
        items: Vec::with_capacity(config.bulk_size),
        since: None,
        report: ProduceReport::default(),
        failures: Vec::new(),
    };
    let outcome = match &config.source {
        Source::Generate {
            count,
            duration,
            payload_bytes,
            keys,
        } => generate(
            &mut w,
            started,
            *count,
            *duration,
            *payload_bytes,
            *keys,
            stop,
        ),
        Source::Ndjson { path } => ingest(&mut w, started, path, stop),
    };
    let flushed = w.flush();
    w.report.duration = started.elapsed();
    outcome?;
    flushed?;
    if let Some(first) = w.failures.first() {
        for f in w.failures.iter().take(20) {
            log::error!(
                "document {} rejected: HTTP {} {}",
                f.id.as_deref().unwrap_or("(auto id)"),
                f.status,
                f.reason
            );
        }
        return Err(Error::Input(format!(
            "{} of {} documents could not be written (first: {} HTTP {} {})",
            w.failures.len(),
            w.report.written + w.failures.len() as u64,
            first.id.as_deref().unwrap_or("(auto id)"),
            first.status,
            first.reason
        )));
    }
    Ok(w.report)
}

fn generate(
    w: &mut Writer<'_>,
    started: Instant,
    count: Option<u64>,
    duration: Option<Duration>,
    payload_bytes: usize,
    keys: u64,
    stop: &StopFlag,
) -> Result<()> {
    let payload: String = (0..payload_bytes)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    let run_tag = crate::random::run_id();
    let types = ["click", "view", "purchase", "signup"];
    let mut i: u64 = 0;
    loop {
        // With a rate, event i is due at i/rate: stop at the first one due after the duration.
        let due = w.config.rate.map(|r| Duration::from_secs_f64(i as f64 / r));
        if stop.is_raised()
            || count.is_some_and(|c| i >= c)
            || duration.is_some_and(|d| due.unwrap_or_else(|| started.elapsed()) >= d)
        {
            return Ok(());
        }
        if let Some(rate) = w.config.rate {
            w.pace(started, i, rate)?;
        }
        let mut doc = Map::new();
        doc.insert("event_type".into(), json!(types[(i % 4) as usize]));
        doc.insert("timestamp".into(), json!(crate::time::now_rfc3339()));
        doc.insert("key".into(), json!(format!("key-{}", i % keys.max(1))));
        doc.insert("seq".into(), json!(i));
        doc.insert("producer".into(), json!(run_tag));
        doc.insert("payload".into(), json!(payload));
        doc.insert("processed".into(), json!(false));
        w.push(format!("event {i}"), doc, i)?;
        i += 1;
    }
}

fn ingest(w: &mut Writer<'_>, started: Instant, path: &str, stop: &StopFlag) -> Result<()> {
    let reader: Box<dyn BufRead> = if path == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        Box::new(std::io::BufReader::new(std::fs::File::open(path).map_err(
            |e| Error::Config(format!("--from {path}: cannot open: {e}")),
        )?))
    };
    let mut n: u64 = 0;
    for (number, line) in reader.lines().enumerate() {
        let number = number as u64 + 1;
        if stop.is_raised() {
            break;
        }
        let line = line.map_err(|e| {
            Error::Config(format!("--from {path}: read error at line {number}: {e}"))
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let doc: Map<String, Value> = match serde_json::from_str(&line) {
            Ok(doc) => doc,
            Err(e) => {
                let msg = format!("{path} line {number}: not a JSON object: {e}");
                match w.config.on_bad_line {
                    OnBadLine::Skip => {
                        log::warn!("{msg}; skipped");
                        w.report.skipped_lines += 1;
                        continue;
                    }
                    OnBadLine::Fail => {
                        w.flush()?;
                        return Err(Error::Input(format!(
                            "{msg}. The {} documents before it were written, nothing after it; \
                             fix the line and run again (with --id-prefix or --id-field the \
                             re-run does not duplicate), or pass --on-bad-line skip",
                            w.report.written
                        )));
                    }
                }
            }
        };
        if let Some(rate) = w.config.rate {
            w.pace(started, n, rate)?;
        }
        w.push(format!("{path} line {number}"), doc, number)?;
        n += 1;
    }
    Ok(())
}

impl Writer<'_> {
    fn push(&mut self, what: String, doc: Map<String, Value>, seq: u64) -> Result<()> {
        let config = self.config;
        let id = match (&config.id_field, &config.id_prefix) {
            (Some(field), _) => Some(match doc.get(field) {
                Some(Value::String(s)) => s.clone(),
                Some(v @ Value::Number(_)) => v.to_string(),
                _ => {
                    return Err(Error::Config(format!(
                        "{what}: --id-field {field} is missing or not a string/number"
                    )));
                }
            }),
            (None, Some(prefix)) => Some(format!("{prefix}{seq}")),
            (None, None) => None,
        };
        let mut meta = Map::new();
        if let Some(id) = &id {
            meta.insert("_id".into(), json!(id));
        }
        if let Some(field) = &config.routing_field {
            let routing = match doc.get(field) {
                Some(Value::String(s)) => s.clone(),
                Some(v @ Value::Number(_)) => v.to_string(),
                _ => {
                    return Err(Error::Config(format!(
                        "{what}: --routing-field {field} is missing or not a string/number"
                    )));
                }
            };
            meta.insert("routing".into(), json!(routing));
        }
        let line = format!(
            "{}\n{}\n",
            json!({ "index": Value::Object(meta) }),
            Value::Object(doc)
        );
        self.items.push((what, id, line));
        self.since.get_or_insert_with(Instant::now);
        if self.items.len() >= config.bulk_size {
            self.flush()?;
        }
        Ok(())
    }

    /// Sleeps until event `i` is due at `rate` per second, flushing a lingering bulk meanwhile.
    fn pace(&mut self, started: Instant, i: u64, rate: f64) -> Result<()> {
        let due = started + Duration::from_secs_f64(i as f64 / rate);
        loop {
            let now = Instant::now();
            if self
                .since
                .is_some_and(|s| now.duration_since(s) >= MAX_LINGER)
            {
                self.flush()?;
                continue;
            }
            if now >= due {
                return Ok(());
            }
            let wake = match self.since {
                Some(s) => due.min(s + MAX_LINGER),
                None => due,
            };
            std::thread::sleep(wake.saturating_duration_since(now));
        }
    }

    /// Writes the pending documents; retries items rejected with 429 or 5xx until the retry
    /// timeout, then names each one that could not be written.
    fn flush(&mut self) -> Result<()> {
        let mut items = std::mem::take(&mut self.items);
        self.since = None;
        let deadline = Instant::now() + self.config.retry_timeout;
        let mut attempt = 0u32;
        while !items.is_empty() {
            let body: String = items.iter().map(|i| i.2.as_str()).collect();
            let outcome = self
                .client
                .bulk(&self.config.index, body.as_bytes(), false)?;
            self.report.written += outcome.written as u64;
            let mut slots: Vec<Option<(String, Option<String>, String)>> =
                items.into_iter().map(Some).collect();
            let mut retry = Vec::new();
            for failure in outcome.failed {
                let Some(item) = slots.get_mut(failure.position).and_then(Option::take) else {
                    continue;
                };
                let retryable = failure.status == 429 || failure.status >= 500;
                if retryable && Instant::now() < deadline {
                    retry.push(item);
                } else {
                    self.failures.push(BulkFailure {
                        id: failure.id.clone().or(item.1.clone()),
                        reason: format!("{} ({})", failure.reason, item.0),
                        ..failure
                    });
                    self.report.failed += 1;
                }
            }
            items = retry;
            if !items.is_empty() {
                attempt += 1;
                let pause = Duration::from_millis(50u64 << attempt.min(6));
                log::warn!(
                    "{} documents rejected with a retryable status; retrying in {}",
                    items.len(),
                    crate::time::human(pause)
                );
                std::thread::sleep(pause);
            }
        }
        Ok(())
    }
}
