//! Bad input: usage errors, bad values, an unreachable server, secrets kept out of output.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn seqtail(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_seqtail"));
    for (k, _) in std::env::vars() {
        if k.starts_with("SEQTAIL_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn unknown_flag_is_a_usage_error() {
    let (code, _, err) = seqtail(&["run", "--group", "g", "--frobnicate"], &[]);
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("unknown flag `--frobnicate`"), "{err}");
    let (code, _, err) = seqtail(&["run", "--group"], &[]);
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("needs a value"), "{err}");
}

#[test]
fn bad_values_are_configuration_errors() {
    for (args, needle) in [
        (
            vec!["--url", "localhost:9200", "run", "--group", "g"],
            "must start with http://",
        ),
        (
            vec!["run", "--group", "g", "--batch-size", "0"],
            "out of range",
        ),
        (vec!["run", "--group", "UPPER"], "not a valid group name"),
        (
            vec!["run", "--group", "g", "--max-duration", "5"],
            "no unit",
        ),
        (
            vec!["--index", "a/b", "run", "--group", "g"],
            "not a valid index name",
        ),
    ] {
        let (code, _, err) = seqtail(&args, &[]);
        assert_eq!(code, Some(78), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    let (code, _, err) = seqtail(
        &["run", "--group", "g"],
        &[("SEQTAIL_PASSWORD_FILE", "/nonexistent/secret")],
    );
    assert_eq!(code, Some(78), "{err}");
    assert!(err.contains("/nonexistent/secret"), "{err}");
}

#[test]
fn an_unreachable_server_exits_69_after_the_retry_timeout() {
    // Port 9 (discard) on loopback: nothing listens, connections are refused at once.
    let started = Instant::now();
    let (code, _, err) = seqtail(
        &[
            "--url",
            "http://127.0.0.1:9",
            "--retry-timeout",
            "2s",
            "--timeout",
            "1s",
            "run",
            "--group",
            "g",
        ],
        &[],
    );
    let took = started.elapsed();
    assert_eq!(code, Some(69), "{err}");
    assert!(err.contains("OpenSearch unavailable"), "{err}");
    assert!(
        took >= Duration::from_secs(2),
        "retried for the retry timeout, took {took:?}"
    );
    assert!(
        took < Duration::from_secs(15),
        "did not hang, took {took:?}"
    );
}

#[test]
fn the_password_never_appears_in_output() {
    let (code, out, err) = seqtail(
        &[
            "-vv",
            "--url",
            "http://127.0.0.1:9",
            "--retry-timeout",
            "500ms",
            "--username",
            "admin",
            "run",
            "--group",
            "g",
        ],
        &[("SEQTAIL_PASSWORD", "Sup3r-S3cret-Value")],
    );
    assert_eq!(code, Some(69), "{err}");
    assert!(
        !out.contains("Sup3r-S3cret-Value") && !err.contains("Sup3r-S3cret-Value"),
        "{err}"
    );
}

#[test]
fn help_and_version() {
    let (code, out, _) = seqtail(&["--help"], &[]);
    assert_eq!(code, Some(0));
    for command in ["init", "run", "produce", "groups", "offsets", "health"] {
        assert!(
            out.lines().any(|l| l.trim_start().starts_with(command)),
            "{command} missing:\n{out}"
        );
    }
    let (code, out, _) = seqtail(&["groups", "--help"], &[]);
    assert_eq!(code, Some(0));
    assert!(out.contains("seqtail groups describe GROUP"), "{out}");
    let (code, out, _) = seqtail(&["--version"], &[]);
    assert_eq!(code, Some(0));
    assert!(out.starts_with("seqtail "), "{out}");
}

#[test]
fn sigterm_while_the_server_is_down_exits_69_at_once() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_seqtail"));
    for (k, _) in std::env::vars() {
        if k.starts_with("SEQTAIL_") {
            cmd.env_remove(k);
        }
    }
    let child = cmd
        .args([
            "--url",
            "http://127.0.0.1:9",
            "--retry-timeout",
            "60s",
            "run",
            "--group",
            "g",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let started = Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(69), "{err}");
    assert!(err.contains("stop signal"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?} after SIGTERM",
        started.elapsed()
    );
}
