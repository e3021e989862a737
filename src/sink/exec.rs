//! `--exec CMD`: runs a command once per batch with the batch on stdin; exit 0 accepts it.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{Batch, Sink};
use crate::error::{Error, Result};

/// Runs `sh -c CMD` per batch.
pub struct ExecSink {
    command: String,
    timeout: Duration,
    run_id: String,
    buffer: Vec<u8>,
}

impl ExecSink {
    /// `timeout` bounds one batch: a child still running then is killed and the batch fails.
    pub fn new(command: impl Into<String>, timeout: Duration, run_id: impl Into<String>) -> Self {
        ExecSink {
            command: command.into(),
            timeout,
            run_id: run_id.into(),
            buffer: Vec::new(),
        }
    }
}

impl Sink for ExecSink {
    fn deliver(&mut self, batch: &Batch) -> Result<()> {
        self.buffer.clear();
        batch.write_ndjson(&mut self.buffer);
        let describe = || {
            format!(
                "--exec `{}` for shard {} events {}..{}",
                self.command,
                batch.shard,
                batch.first_seq_no().unwrap_or(-1),
                batch.last_seq_no().unwrap_or(-1)
            )
        };
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(&self.command)
            .env("SEQTAIL_GROUP", &batch.group)
            .env("SEQTAIL_INDEX", &batch.index)
            .env("SEQTAIL_INDEX_UUID", &batch.index_uuid)
            .env("SEQTAIL_SHARD", batch.shard.to_string())
            .env("SEQTAIL_BATCH_EVENTS", batch.events.len().to_string())
            .env(
                "SEQTAIL_FIRST_SEQ_NO",
                batch.first_seq_no().unwrap_or(-1).to_string(),
            )
            .env(
                "SEQTAIL_LAST_SEQ_NO",
                batch.last_seq_no().unwrap_or(-1).to_string(),
            )
            .env("SEQTAIL_RUN_ID", &self.run_id)
            .stdin(Stdio::piped())
            // Its own process group: a Ctrl-C meant for seqtail's graceful stop must not kill
            // the batch that seqtail is about to finish and commit.
            .process_group(0)
            .spawn()
            .map_err(|e| Error::Sink(format!("{}: cannot start: {e}", describe())))?;
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| Error::Internal("child without stdin".into()))?;
        let input = std::mem::take(&mut self.buffer);
        // Written from a thread so that a child which does not read its input cannot block
        // seqtail past the timeout.
        let writer = std::thread::spawn(move || {
            let result = stdin.write_all(&input);
            drop(stdin);
            (input, result)
        });
        let started = Instant::now();
        let mut pause = Duration::from_millis(1);
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if started.elapsed() >= self.timeout => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(Error::Sink(format!(
                        "{} did not finish within --exec-timeout {}; it was killed",
                        describe(),
                        crate::time::human(self.timeout)
                    )));
                }
                Ok(None) => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                Err(e) => return Err(Error::Sink(format!("{}: {e}", describe()))),
            }
        };
        if let Ok((input, _)) = writer.join() {
            self.buffer = input;
        }
        if status.success() {
            Ok(())
        } else {
            Err(Error::Sink(format!("{} exited with {status}", describe())))
        }
    }
}
