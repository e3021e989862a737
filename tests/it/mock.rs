//! HTTP edge cases a real server cannot be made to produce on demand: retryable statuses and
//! error bodies. Everything else runs against the real OpenSearch.

use mockito::{Matcher, Server};
use seqtail::{Client, ClientConfig, Error};
use std::time::Duration;

fn client(url: &str, retry: Duration) -> Client {
    Client::new(&ClientConfig {
        urls: vec![url.to_string()],
        retry_timeout: retry,
        timeout: Duration::from_secs(5),
        ..ClientConfig::default()
    })
    .unwrap()
}

const ROOT: &str = r#"{"version":{"number":"2.19.6","distribution":"opensearch"}}"#;

#[test]
fn retries_429_and_503_then_succeeds() {
    // mockito answers with the first mock (in creation order) that still expects hits.
    let mut server = Server::new();
    let m429 = server
        .mock("GET", "/")
        .with_status(429)
        .with_body("{}")
        .expect(1)
        .create();
    let m503 = server
        .mock("GET", "/")
        .with_status(503)
        .with_body("{}")
        .expect(1)
        .create();
    let m200 = server
        .mock("GET", "/")
        .with_status(200)
        .with_body(ROOT)
        .expect(1)
        .create();
    let version = client(&server.url(), Duration::from_secs(20))
        .version()
        .unwrap();
    assert_eq!(version, "2.19.6");
    m429.assert();
    m503.assert();
    m200.assert();
}

#[test]
fn gives_up_after_the_retry_timeout_with_exit_69() {
    let mut server = Server::new();
    let m = server
        .mock("GET", "/")
        .with_status(503)
        .with_body(
            r#"{"error":{"type":"cluster_block_exception","reason":"blocked"},"status":503}"#,
        )
        .expect_at_least(2)
        .create();
    let e = client(&server.url(), Duration::from_millis(800))
        .version()
        .unwrap_err();
    m.assert();
    assert_eq!(e.exit_code(), 69, "{e}");
    assert!(e.to_string().contains("cluster_block_exception"), "{e}");
}

#[test]
fn error_bodies_reach_the_message() {
    let mut server = Server::new();
    server
        .mock("GET", Matcher::Regex("^/events/_settings".into()))
        .with_status(400)
        .with_body(
            r#"{"error":{"root_cause":[{"type":"illegal_argument_exception","reason":"bad thing"}],"type":"illegal_argument_exception","reason":"bad thing happened"},"status":400}"#,
        )
        .create();
    let e = client(&server.url(), Duration::from_secs(1))
        .index_info("events")
        .unwrap_err();
    let Error::OpenSearch {
        status,
        error_type,
        reason,
        ..
    } = &e
    else {
        panic!("{e:?}")
    };
    assert_eq!(*status, 400);
    assert_eq!(error_type, "illegal_argument_exception");
    assert_eq!(reason, "bad thing happened");
    assert!(
        e.to_string()
            .contains("HTTP 400 illegal_argument_exception: bad thing happened"),
        "{e}"
    );
}

#[test]
fn fails_over_to_the_next_url() {
    let mut server = Server::new();
    let m = server
        .mock("GET", "/")
        .with_status(200)
        .with_body(ROOT)
        .expect(1)
        .create();
    let c = Client::new(&ClientConfig {
        urls: vec!["http://127.0.0.1:9".into(), server.url()],
        retry_timeout: Duration::from_secs(10),
        ..ClientConfig::default()
    })
    .unwrap();
    assert_eq!(c.version().unwrap(), "2.19.6");
    assert_eq!(c.current_url(), server.url());
    m.assert();
}

#[test]
fn a_run_against_a_failing_server_reports_type_and_reason() {
    let mut server = Server::new();
    server
        .mock(
            "GET",
            "/consumer-offsets/_settings?filter_path=*.settings.index.uuid",
        )
        .with_status(200)
        .create();
    server
        .mock(
            "GET",
            "/consumer-offsets-history/_settings?filter_path=*.settings.index.uuid",
        )
        .with_status(200)
        .create();
    server
        .mock("GET", "/")
        .with_status(200)
        .with_body(ROOT)
        .create();
    server
        .mock("GET", Matcher::Regex("^/events/_settings".into()))
        .with_status(403)
        .with_body(r#"{"error":{"type":"security_exception","reason":"no permissions for [indices:monitor/settings/get]"},"status":403}"#)
        .create();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_seqtail"))
        .args(["--url", &server.url(), "run", "--group", "g"])
        .env_remove("SEQTAIL_URL")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(err.contains("security_exception: no permissions"), "{err}");
}

#[test]
fn a_stop_request_ends_read_retries_at_once_but_not_write_retries() {
    let mut server = Server::new();
    let down = server
        .mock("GET", "/")
        .with_status(503)
        .with_body("{}")
        .expect_at_least(1)
        .create();
    let stop = seqtail::StopFlag::new();
    let c = client(&server.url(), Duration::from_secs(60)).with_stop(stop.clone());
    let raiser = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            stop.raise();
        })
    };
    let started = std::time::Instant::now();
    let e = c.version().unwrap_err();
    raiser.join().unwrap();
    down.assert();
    assert_eq!(e.exit_code(), 69, "{e}");
    assert!(e.to_string().contains("stop signal"), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );

    // A commit keeps retrying after the stop request: the batch in flight must be committed.
    let busy = server
        .mock("PUT", Matcher::Regex("^/offsets/_doc/".into()))
        .with_status(503)
        .with_body("{}")
        .expect(2)
        .create();
    let ok = server
        .mock("PUT", Matcher::Regex("^/offsets/_doc/".into()))
        .with_status(200)
        .with_body(r#"{"_seq_no":5,"_primary_term":1,"result":"updated"}"#)
        .expect(1)
        .create();
    let v = c
        .put_doc(
            "offsets",
            "g:u:0",
            b"{}",
            seqtail::WriteCondition::Version(seqtail::DocVersion {
                seq_no: 4,
                primary_term: 1,
            }),
        )
        .unwrap();
    assert_eq!(
        v,
        Some(seqtail::DocVersion {
            seq_no: 5,
            primary_term: 1
        })
    );
    busy.assert();
    ok.assert();
}
