//! Run metrics in the Prometheus text format: pushed to a Pushgateway and/or written atomically
//! as a node_exporter textfile (DESIGN.md §7).

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::consumer::ShardReport;
use crate::error::{Error, Result};

/// What one run reports.
#[derive(Debug, Clone)]
pub struct RunMetrics {
    pub group: String,
    pub index: String,
    /// `I/N` when the run was sliced.
    pub slice: Option<String>,
    pub duration: Duration,
    pub events: u64,
    pub exit_code: i32,
    /// Unix time of this run's end, reported as the last success when `exit_code` is 0.
    pub finished_at: f64,
    pub shards: Vec<ShardReport>,
}

/// HELP texts are fixed: node_exporter drops a metric whose HELP differs between files.
const METRICS: &[(&str, &str)] = &[
    (
        "seqtail_last_success_timestamp_seconds",
        "Unix time the last successful run of the group finished.",
    ),
    (
        "seqtail_last_run_duration_seconds",
        "Duration of the last run.",
    ),
    (
        "seqtail_last_run_events",
        "Events delivered and committed by the last run.",
    ),
    (
        "seqtail_last_run_exit_code",
        "Exit code of the last run (0 is success).",
    ),
    (
        "seqtail_lag_events",
        "Events between the committed position and the checkpoint, per shard.",
    ),
    ("seqtail_committed_seq_no", "Committed _seq_no per shard."),
    (
        "seqtail_checkpoint_seq_no",
        "Global checkpoint of the shard at the last snapshot.",
    ),
];

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl RunMetrics {
    /// Renders the exposition text. `with_group` adds `group`/`slice` labels (textfiles have
    /// no grouping key); `last_success` is the value to report when this run failed.
    pub fn render(&self, with_group: bool, last_success: Option<f64>) -> String {
        let mut base = Vec::new();
        if with_group {
            base.push(format!("group=\"{}\"", escape(&self.group)));
            if let Some(s) = &self.slice {
                base.push(format!("slice=\"{}\"", escape(s)));
            }
        }
        base.push(format!("index=\"{}\"", escape(&self.index)));
        let labels = |extra: Option<String>| {
            let mut all = base.clone();
            all.extend(extra);
            format!("{{{}}}", all.join(","))
        };
        let mut out = String::new();
        let mut metric = |name: &str, samples: Vec<(String, String)>| {
            if samples.is_empty() {
                return;
            }
            let help = METRICS
                .iter()
                .find(|m| m.0 == name)
                .map(|m| m.1)
                .unwrap_or("");
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            for (l, v) in samples {
                let _ = writeln!(out, "{name}{l} {v}");
            }
        };
        let success = if self.exit_code == 0 {
            Some(self.finished_at)
        } else {
            last_success
        };
        if let Some(ts) = success {
            metric(
                "seqtail_last_success_timestamp_seconds",
                vec![(labels(None), format!("{ts:.3}"))],
            );
        }
        metric(
            "seqtail_last_run_duration_seconds",
            vec![(labels(None), format!("{:.3}", self.duration.as_secs_f64()))],
        );
        metric(
            "seqtail_last_run_events",
            vec![(labels(None), self.events.to_string())],
        );
        metric(
            "seqtail_last_run_exit_code",
            vec![(labels(None), self.exit_code.to_string())],
        );
        let per_shard = |f: &dyn Fn(&ShardReport) -> i64| -> Vec<(String, String)> {
            self.shards
                .iter()
                .map(|s| {
                    (
                        labels(Some(format!("shard=\"{}\"", s.shard))),
                        f(s).to_string(),
                    )
                })
                .collect()
        };
        metric("seqtail_lag_events", per_shard(&|s| s.lag()));
        metric("seqtail_committed_seq_no", per_shard(&|s| s.committed));
        metric("seqtail_checkpoint_seq_no", per_shard(&|s| s.checkpoint));
        out
    }

    /// Writes the textfile atomically (temp file in the same directory, then rename), keeping
    /// the last success timestamp of the previous file when this run failed.
    pub fn write_textfile(&self, path: &Path) -> Result<()> {
        let previous = std::fs::read_to_string(path)
            .ok()
            .and_then(|text| last_success_in(&text));
        let text = self.render(true, previous);
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "seqtail.prom".into());
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, text)
            .and_then(|_| std::fs::rename(&tmp, path))
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                Error::Config(format!(
                    "--metrics-file {}: cannot write: {e}",
                    path.display()
                ))
            })
    }

    /// Pushes with POST to `<url>/metrics/job/seqtail/group/<group>[/slice/<i_n>]`: POST
    /// replaces only the metrics named here, so a failed run (which does not send the success
    /// timestamp) keeps the last success in the Pushgateway.
    pub fn push(&self, url: &str, timeout: Duration) -> Result<()> {
        let mut target = format!(
            "{}/metrics/job/seqtail/group/{}",
            url.trim_end_matches('/'),
            crate::client::enc(&self.group)
        );
        if let Some(s) = &self.slice {
            target.push_str(&format!("/slice/{}", s.replace('/', "_of_")));
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .timeout_global(Some(timeout))
            .build()
            .into();
        let body = self.render(false, None);
        let mut response = agent
            .post(&target)
            .header("Content-Type", "text/plain; version=0.0.4")
            .send(body.as_bytes())
            .map_err(|e| Error::Unavailable {
                what: format!("push metrics to {url}"),
                detail: e.to_string(),
            })?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let text = response.body_mut().read_to_string().unwrap_or_default();
            return Err(Error::Unavailable {
                what: format!("push metrics to {url}"),
                detail: format!("HTTP {status}: {}", text.trim()),
            });
        }
        Ok(())
    }
}

/// The last success timestamp in an earlier textfile.
fn last_success_in(text: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with("seqtail_last_success_timestamp_seconds"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(exit_code: i32) -> RunMetrics {
        RunMetrics {
            group: "g".into(),
            index: "events".into(),
            slice: None,
            duration: Duration::from_millis(1500),
            events: 42,
            exit_code,
            finished_at: 1_800_000_000.5,
            shards: vec![ShardReport {
                shard: 0,
                committed: 9,
                checkpoint: 12,
            }],
        }
    }

    #[test]
    fn renders_gauges_with_labels() {
        let text = sample(0).render(true, None);
        assert!(text.contains(
            "seqtail_last_success_timestamp_seconds{group=\"g\",index=\"events\"} 1800000000.500"
        ));
        assert!(text.contains("seqtail_lag_events{group=\"g\",index=\"events\",shard=\"0\"} 3"));
        assert!(text.contains("# TYPE seqtail_committed_seq_no gauge"));
    }

    #[test]
    fn a_failed_run_keeps_the_previous_success() {
        let text = sample(1).render(true, Some(1_700_000_000.0));
        assert!(text.contains(
            "seqtail_last_success_timestamp_seconds{group=\"g\",index=\"events\"} 1700000000.000"
        ));
        assert!(text.contains("seqtail_last_run_exit_code{group=\"g\",index=\"events\"} 1"));
        assert_eq!(last_success_in(&text), Some(1_700_000_000.0));
        assert!(!sample(1).render(false, None).contains("last_success"));
    }
}
