//! `noex bench` against an in-process testkit server: piped, and in a pseudo-terminal
//! (the progress bar on stderr).

mod common;

use std::process::Command;

use noex_testkit::TestServer;

#[test]
fn bench_prints_throughput_and_percentiles() {
    let server = TestServer::builder().start().expect("server starts");
    let out = Command::new(env!("CARGO_BIN_EXE_noex"))
        .args([
            "bench",
            "--duration",
            "1s",
            "--connections",
            "2",
            "--depth",
            "4",
        ])
        .args(["--url", &server.url()])
        .env_remove("NOEX_TOKEN")
        .output()
        .expect("noex runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // Piped: one JSON object.
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).expect("JSON");
    assert_eq!(v["op"], "server.stats");
    assert!(v["requests"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(v["errors"], 0);
    assert!(v["reqPerSec"].as_f64().unwrap() > 0.0);
    let lat = &v["latencyMs"];
    assert!(lat["p50"].as_f64().unwrap() > 0.0, "{v}");
    assert!(lat["p50"].as_f64().unwrap() <= lat["p90"].as_f64().unwrap());
    assert!(lat["p90"].as_f64().unwrap() <= lat["p99"].as_f64().unwrap());
    assert!(lat["p99"].as_f64().unwrap() <= lat["max"].as_f64().unwrap());
    assert!(v["seconds"].as_f64().unwrap() >= 1.0);
    // stderr is not a terminal: no progress bar, nor any of its redrawing.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains('\r') && !stderr.contains('\x1b'),
        "{stderr:?}"
    );
    assert!(!stderr.contains("req/s"), "{stderr:?}");
}

/// `12s/30s`, as indicatif draws `{elapsed}/{duration}` under a minute.
fn elapsed_of_total(word: &str) -> bool {
    let seconds = |t: &str| {
        t.strip_suffix('s')
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    word.split_once('/')
        .is_some_and(|(a, b)| seconds(a) && seconds(b))
}

/// `noex bench` on a terminal: the human report on stdout, and while it runs a progress bar
/// on stderr (the elapsed time of the duration and the running count, rate and errors),
/// cleared at the end.
#[test]
fn bench_draws_a_progress_bar_on_a_terminal() {
    let server = TestServer::builder().start().expect("server starts");
    let url = server.url();
    let mut pty = common::Pty::spawn(
        env!("CARGO_BIN_EXE_noex"),
        &[
            "bench",
            "--duration",
            "3s",
            "--connections",
            "2",
            "--depth",
            "2",
            "--url",
            &url,
        ],
        12,
        100,
    );
    let bar = pty.wait_for(
        |s| s.contains(" requests, ") && s.contains(" req/s, ") && s.contains(" errors"),
        "the progress bar",
    );
    assert!(
        pty.running(),
        "the bar was seen only after the exit:\n{bar}"
    );
    // indicatif's `{elapsed}/{duration}` (`0s/3s`; the total is its estimate).
    let line = bar
        .lines()
        .find(|l| l.contains(" req/s, "))
        .unwrap_or_default();
    assert!(
        line.split_whitespace().any(elapsed_of_total),
        "no elapsed/duration in {line:?}"
    );
    assert!(line.contains(", 0 errors"), "{line:?}");
    let status = pty.wait_exit("after the duration");
    assert!(status.success(), "{status:?}");
    let text = pty.text();
    for row in [
        "op           server.stats",
        "load         2 connections × 2 in flight",
        "duration     3.",
        " ok, 0 errors",
        "throughput   ",
        "latency      p50 ",
    ] {
        assert!(text.contains(row), "no {row:?} in the report:\n{text}");
    }
    let latency = text
        .lines()
        .find(|l| l.starts_with("latency"))
        .unwrap_or_default();
    assert!(
        latency.contains(" ms  p90 ") && latency.contains(" ms  p99 ") && latency.contains("max "),
        "{latency:?}"
    );
    // The bar was cleared when the bench ended.
    assert!(!text.contains(" req/s, "), "the bar was left:\n{text}");
}

/// On a terminal with stderr sent to a file, the report is drawn but no bar is: the bar
/// follows stderr, not stdout.
#[test]
fn bench_draws_no_bar_when_stderr_is_not_a_terminal() {
    let server = TestServer::builder().start().expect("server starts");
    let url = server.url();
    let err_file = std::env::temp_dir().join(format!(
        "noex-bench-stderr-{}-{:?}.txt",
        std::process::id(),
        std::thread::current().id()
    ));
    let err_path = err_file.to_str().expect("a UTF-8 temp path").to_string();
    let mut pty = common::Pty::spawn(
        "/bin/sh",
        &[
            "-c",
            r#"exec "$0" bench --duration 1s --connections 1 --depth 2 --url "$1" 2>"$2""#,
            env!("CARGO_BIN_EXE_noex"),
            &url,
            &err_path,
        ],
        12,
        100,
    );
    let status = pty.wait_exit("after the duration");
    let stderr = std::fs::read(&err_file).unwrap_or_default();
    let _ = std::fs::remove_file(&err_file);
    assert!(status.success(), "{status:?}\n{}", pty.text());
    let text = pty.text();
    assert!(text.contains("throughput   "), "no report:\n{text}");
    assert!(text.contains("latency      p50 "), "no report:\n{text}");
    let stderr = String::from_utf8_lossy(&stderr);
    assert!(
        !stderr.contains('\r') && !stderr.contains('\x1b') && !stderr.contains("req/s"),
        "a bar on stderr: {stderr:?}"
    );
}

#[test]
fn bench_rejects_an_unknown_operation() {
    let out = Command::new(env!("CARGO_BIN_EXE_noex"))
        .args(["bench", "--op", "store.nope", "--duration", "1s"])
        .output()
        .expect("noex runs");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}
