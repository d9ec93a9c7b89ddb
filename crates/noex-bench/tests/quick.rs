//! Runs `noex-bench --quick` so the benchmark keeps compiling and working. Asserts only
//! that it finishes and prints its table, never any timing.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn quick_mode_runs() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_noex-bench"))
        .arg("--quick")
        .env_remove("NOEX_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start noex-bench");
    let limit = Duration::from_secs(300);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("noex-bench --quick did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        use std::io::Read;
        stdout.read_to_string(&mut out).expect("read output");
    }
    assert!(
        status.success(),
        "noex-bench --quick failed: {status}\n{out}"
    );
    for part in [
        "throughput",
        "CPU per request",
        "latency p50",
        "restore",
        "memory per",
        "peak memory, 5 000 requests issued at once",
        "client's own memory",
        "startup, spawn → URL line",
        "client CPU per push, 100-record result",
        "client CPU per push, live view of 1 000 records",
        "memory of a live view, 1 000 records",
    ] {
        assert!(out.contains(part), "no {part:?} row in\n{out}");
    }
    assert!(out.contains("command: "), "the table names its command");
}
