//! Log output on stderr: plain text, or one ECS JSON object per line.

use std::io::Write;
use std::sync::{Mutex, OnceLock};

use serde_json::{Map, Value, json};

use crate::cli::LogFormat;

/// The log target of the one summary line a run prints; shown even with `-q`.
pub const SUMMARY_TARGET: &str = "seqtail::summary";

static LABELS: OnceLock<Mutex<Vec<(String, String)>>> = OnceLock::new();

/// Adds a label (`group`, `run_id`) to every later JSON log line.
pub fn set_label(key: &str, value: &str) {
    let labels = LABELS.get_or_init(|| Mutex::new(Vec::new()));
    if let Ok(mut l) = labels.lock() {
        l.retain(|(k, _)| k != key);
        l.push((key.to_string(), value.to_string()));
    }
}

fn labels() -> Vec<(String, String)> {
    LABELS
        .get()
        .and_then(|l| l.lock().ok().map(|l| l.clone()))
        .unwrap_or_default()
}

/// Installs the logger. `rust_log` (the value of `RUST_LOG`, if any) overrides the verbosity.
pub fn init(format: LogFormat, verbosity: i32, rust_log: Option<&str>) {
    let level = match verbosity {
        i32::MIN..=-2 => log::LevelFilter::Error,
        -1 => log::LevelFilter::Warn,
        0 => log::LevelFilter::Info,
        1 => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    };
    let mut builder = env_logger::Builder::new();
    builder.filter_level(level);
    // Dependencies stay quiet unless RUST_LOG asks for them.
    builder.filter_module("ureq", log::LevelFilter::Warn);
    builder.filter_module("ureq_proto", log::LevelFilter::Warn);
    builder.filter_module("rustls", log::LevelFilter::Warn);
    if let Some(spec) = rust_log {
        builder.parse_filters(spec);
    }
    // ureq-proto traces raw request bytes, Authorization header included: never let RUST_LOG
    // turn that on.
    builder.filter_module("ureq_proto", log::LevelFilter::Warn);
    builder.filter_module(SUMMARY_TARGET, log::LevelFilter::Info);
    builder.target(env_logger::Target::Stderr);
    match format {
        LogFormat::Text => {
            builder.format(|buf, record| {
                writeln!(
                    buf,
                    "{} {:<5} {}",
                    crate::time::now_rfc3339(),
                    record.level(),
                    record.args()
                )
            });
        }
        LogFormat::Json => {
            builder.format(|buf, record| {
                let line = ecs_line(record);
                writeln!(buf, "{line}")
            });
        }
    }
    let _ = builder.try_init();
}

/// Prints one error line before the logger exists (a command line that did not parse).
pub fn print_error(format: LogFormat, message: &str) {
    match format {
        LogFormat::Text => eprintln!("{message}"),
        LogFormat::Json => eprintln!(
            "{}",
            json!({
                "@timestamp": crate::time::now_rfc3339(),
                "log.level": "error",
                "message": message,
                "error.message": message,
                "ecs.version": "8.11.0",
                "service.name": "seqtail",
            })
        ),
    }
}

fn ecs_line(record: &log::Record<'_>) -> String {
    let message = record.args().to_string();
    let mut obj = Map::new();
    obj.insert("@timestamp".into(), json!(crate::time::now_rfc3339()));
    obj.insert(
        "log.level".into(),
        json!(record.level().as_str().to_lowercase()),
    );
    obj.insert("message".into(), json!(message));
    obj.insert("ecs.version".into(), json!("8.11.0"));
    obj.insert("service.name".into(), json!("seqtail"));
    obj.insert("log.logger".into(), json!(record.target()));
    let labels: Map<String, Value> = labels().into_iter().map(|(k, v)| (k, json!(v))).collect();
    if !labels.is_empty() {
        obj.insert("labels".into(), Value::Object(labels));
    }
    if record.level() <= log::Level::Warn {
        obj.insert("error.message".into(), json!(message));
    }
    if record.target() == SUMMARY_TARGET {
        obj.insert("event.kind".into(), json!("event"));
        let outcome = if message.contains(" exit=0") {
            "success"
        } else {
            "failure"
        };
        obj.insert("event.outcome".into(), json!(outcome));
        if let Some(secs) = message
            .split_whitespace()
            .find_map(|w| w.strip_prefix("duration="))
            .and_then(|d| d.trim_end_matches('s').parse::<f64>().ok())
        {
            // ECS event.duration is in nanoseconds.
            obj.insert("event.duration".into(), json!((secs * 1e9) as u64));
        }
    }
    Value::Object(obj).to_string()
}
