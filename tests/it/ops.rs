//! Production concerns against real tools: metrics checked by promtool and pushed to a real
//! Pushgateway, ECS JSON logs, and TLS + basic auth + client certificates through a real nginx.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::helpers::{TempDir, TestIndex, agent};

fn env_or_fail(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run `scripts/test.sh`, which starts the Pushgateway and nginx with \
             scripts/services.sh (tools from scripts/install-test-deps.sh)"
        )
    })
}

fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool not found: run scripts/install-test-deps.sh");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sample(text: &str, metric: &str, labels_contain: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(metric) && l[metric.len()..].starts_with('{'))
        .find(|l| labels_contain.iter().all(|s| l.contains(s)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn metrics_file_passes_promtool_and_a_failure_keeps_the_last_success() {
    let index = TestIndex::new("metricsfile", 2);
    index.write_events("m", 0..30);
    let dir = TempDir::new("metrics");
    let path = dir.path("seqtail.prom");
    index.run("g", &["--metrics-file", &path]).ok();
    let first = std::fs::read_to_string(&path).unwrap();
    promtool_check(&first);
    assert_eq!(
        sample(&first, "seqtail_last_run_events", &["group=\"g\""]),
        Some(30.0)
    );
    assert_eq!(sample(&first, "seqtail_last_run_exit_code", &[]), Some(0.0));
    assert_eq!(
        sample(&first, "seqtail_lag_events", &["shard=\"0\""]),
        Some(0.0)
    );
    assert!(sample(&first, "seqtail_committed_seq_no", &["shard=\"1\""]).is_some());
    assert!(sample(&first, "seqtail_checkpoint_seq_no", &["shard=\"1\""]).is_some());
    let success = sample(&first, "seqtail_last_success_timestamp_seconds", &[]).unwrap();

    index.write_events("n", 0..5);
    let failed = index.run("g", &["--metrics-file", &path, "--exec", "exit 1"]);
    assert_eq!(failed.code, Some(1));
    let second = std::fs::read_to_string(&path).unwrap();
    promtool_check(&second);
    assert_eq!(
        sample(&second, "seqtail_last_run_exit_code", &[]),
        Some(1.0)
    );
    assert_eq!(
        sample(&second, "seqtail_last_success_timestamp_seconds", &[]),
        Some(success)
    );
    assert!(
        !std::fs::read_dir(&dir.0).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".tmp"))
    );
}

#[test]
fn the_pushgateway_receives_a_success_then_a_failure_and_keeps_the_success_time() {
    let gateway = env_or_fail("SEQTAIL_TEST_PUSHGATEWAY");
    let index = TestIndex::new("push", 2);
    index.write_events("p", 0..20);
    let group = index.name.replace("it-", "grp-");
    index.run(&group, &["--pushgateway", &gateway]).ok();
    let scrape = || {
        let mut r = agent().get(format!("{gateway}/metrics")).call().unwrap();
        r.body_mut().read_to_string().unwrap()
    };
    let g = format!("group=\"{group}\"");
    let after_success = scrape();
    assert_eq!(
        sample(
            &after_success,
            "seqtail_last_run_events",
            &[&g, "job=\"seqtail\""]
        ),
        Some(20.0)
    );
    let success = sample(
        &after_success,
        "seqtail_last_success_timestamp_seconds",
        &[&g],
    )
    .expect("success pushed");

    index.write_events("q", 0..3);
    let failed = index.run(&group, &["--pushgateway", &gateway, "--exec", "exit 3"]);
    assert_eq!(failed.code, Some(1), "{}", failed.stderr);
    let after_failure = scrape();
    assert_eq!(
        sample(&after_failure, "seqtail_last_run_exit_code", &[&g]),
        Some(1.0)
    );
    assert_eq!(
        sample(&after_failure, "seqtail_last_run_events", &[&g]),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &after_failure,
            "seqtail_last_success_timestamp_seconds",
            &[&g]
        ),
        Some(success),
        "a failed run never erases the last success"
    );
    let ours: String = after_failure
        .lines()
        .filter(|l| l.contains(&g) || l.starts_with("# "))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(ours.contains("seqtail_lag_events"));
}

#[test]
fn json_logs_are_one_ecs_object_per_line() {
    let index = TestIndex::new("jsonlog", 2);
    index.write_events("j", 0..10);
    let ok = index.run("g", &["--log-format", "json", "-vv"]).ok();
    let failed = index.run("g", &["--log-format", "json", "--exec", "exit 2"]);
    index.write_events("k", 0..2);
    let failed2 = index.run("g", &["--log-format", "json", "--exec", "exit 2"]);
    assert_eq!(failed2.code, Some(1));
    for stderr in [&ok.stderr, &failed.stderr, &failed2.stderr] {
        let lines: Vec<Value> = stderr
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect();
        assert!(!lines.is_empty());
        for v in &lines {
            for key in [
                "@timestamp",
                "log.level",
                "message",
                "ecs.version",
                "service.name",
            ] {
                assert!(v.get(key).is_some(), "{key} missing in {v}");
            }
            assert_eq!(v["labels"]["group"], "g", "{v}");
            assert!(v["labels"]["run_id"].is_string(), "{v}");
        }
        let summary = lines
            .iter()
            .find(|v| v.get("event.outcome").is_some())
            .expect("summary line");
        assert!(summary["event.duration"].as_u64().is_some(), "{summary}");
    }
    let summary_of = |s: &str| -> Value {
        s.lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .find(|v| v.get("event.outcome").is_some())
            .unwrap()
    };
    assert_eq!(summary_of(&ok.stderr)["event.outcome"], "success");
    let bad = summary_of(&failed2.stderr);
    assert_eq!(bad["event.outcome"], "failure");
    assert!(
        failed2.stderr.contains("\"error.message\""),
        "{}",
        failed2.stderr
    );
    // A usage error is JSON too when JSON was asked for.
    let out = index
        .seqtail()
        .args(["--log-format", "json", "run", "--bogus"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let v: Value = serde_json::from_str(String::from_utf8_lossy(&out.stderr).trim()).unwrap();
    assert!(v["error.message"].as_str().unwrap().contains("--bogus"));
}

#[test]
fn tls_basic_auth_and_client_certificates_through_nginx() {
    let url = env_or_fail("SEQTAIL_TEST_TLS_URL");
    let tls = env_or_fail("SEQTAIL_TEST_TLS_DIR");
    let password = std::fs::read_to_string(format!("{tls}/password"))
        .unwrap()
        .trim()
        .to_string();
    let encoded = basic_auth_value(&format!("seqtail:{password}"));
    let index = TestIndex::new("tls", 2);
    index.write_events("s", 0..25);
    let wrong_pw = TempDir::new("tlspw");
    let wrong_pw_file = wrong_pw.path("pw");
    std::fs::write(&wrong_pw_file, "not-the-password\n").unwrap();
    let run = |ca: &str, pw_file: &str, client: bool, extra: &[&str]| {
        let mut cmd = index.seqtail();
        cmd.env("SEQTAIL_URL", &url)
            .env("SEQTAIL_RETRY_TIMEOUT", "2s")
            .env("RUST_LOG", "trace,ureq=trace,ureq_proto=trace,rustls=trace")
            .args([
                "-v",
                "-v",
                "--username",
                "seqtail",
                "--password-file",
                pw_file,
                "--ca-cert",
                ca,
            ]);
        if client {
            cmd.args([
                "--client-cert",
                &format!("{tls}/client.crt"),
                "--client-key",
                &format!("{tls}/client.key"),
            ]);
        }
        let out = cmd
            .args(["run", "--group", "g"])
            .args(extra)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !stdout.contains(&password) && !stderr.contains(&password),
            "the password leaked:\n{stderr}"
        );
        assert!(
            !stderr.contains(&encoded),
            "the Authorization header leaked"
        );
        // Wire traces print the request bytes 16 a row, which would split the header value:
        // no such dump may appear at all.
        let dumps = stderr.lines().filter(|l| is_hex_dump(l)).count();
        assert_eq!(
            dumps, 0,
            "request bytes (Authorization header included) were logged"
        );
        (out.status.code(), stdout, stderr)
    };
    let pw_file = format!("{tls}/password");
    let bundle = format!("{tls}/bundle.crt");
    let (code, stdout, stderr) = run(&bundle, &pw_file, true, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout.lines().count(), 25);

    let (code, _, stderr) = run(&format!("{tls}/wrong-ca.crt"), &pw_file, true, &[]);
    assert_eq!(code, Some(78), "wrong CA: {stderr}");
    assert!(
        stderr.contains("TLS") && stderr.contains("--ca-cert"),
        "{stderr}"
    );

    let (code, _, stderr) = run(&bundle, &wrong_pw_file, true, &[]);
    assert_eq!(code, Some(78), "wrong password: {stderr}");
    assert!(stderr.contains("401"), "{stderr}");

    let (code, _, stderr) = run(&bundle, &pw_file, false, &[]);
    assert_eq!(code, Some(78), "no client certificate: {stderr}");
    assert!(stderr.contains("client certificate"), "{stderr}");

    // --insecure works without the right CA, and says so.
    index.write_events("i", 0..3);
    let (code, stdout, stderr) = run(
        &format!("{tls}/wrong-ca.crt"),
        &pw_file,
        true,
        &["--insecure"],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout.lines().count(), 3);
    assert!(stderr.contains("--insecure"), "{stderr}");
}

/// Standard base64 of `text`, as it appears in a basic-auth header.
fn basic_auth_value(text: &str) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in text.as_bytes().chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for (i, shift) in [18, 12, 6, 0].iter().enumerate() {
            out.push(if i <= c.len() {
                A[(n >> shift) as usize & 63] as char
            } else {
                '='
            });
        }
    }
    out
}

/// A line of ureq-proto's wire trace: groups of four hex digits.
fn is_hex_dump(line: &str) -> bool {
    line.split_whitespace()
        .filter(|w| w.len() == 4 && w.chars().all(|c| c.is_ascii_hexdigit()))
        .count()
        >= 6
}
