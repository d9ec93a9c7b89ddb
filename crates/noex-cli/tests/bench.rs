//! `noex bench` against an in-process testkit server.

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
    assert!(lat["p50"].as_f64().unwrap() <= lat["p99"].as_f64().unwrap());
    assert!(lat["p99"].as_f64().unwrap() <= lat["max"].as_f64().unwrap());
    assert!(v["seconds"].as_f64().unwrap() >= 1.0);
}

#[test]
fn bench_rejects_an_unknown_operation() {
    let out = Command::new(env!("CARGO_BIN_EXE_noex"))
        .args(["bench", "--op", "store.nope", "--duration", "1s"])
        .output()
        .expect("noex runs");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}
