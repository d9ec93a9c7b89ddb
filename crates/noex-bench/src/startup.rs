//! `--only startup`: how long a test server takes to come up as a process, measured as a
//! test runner sees it: from just before the process is spawned to the moment its first
//! standard-output line (the `ws://HOST:PORT` URL) has been read. 100 ms after each start
//! ([`SETTLE`]) the process gets SIGTERM; the time to its (successful) exit is measured too.
//!
//! Launchers, both given the same fixture JSON ([`FIXTURE`]) as their last argument:
//!
//! - `noex serve --fixture FIXTURE` (this workspace's `noex` binary, see [`noex_binary`]);
//! - when `NOEX_REAL_LAUNCHER` is set, that command: the real server's test launcher, e.g.
//!   `node /path/to/start-server.mjs` (the `noex-client` sdist's
//!   `tests/fixtures/start-server.mjs`, next to a `node_modules/@hamicek/` that holds
//!   `noex-server`, `noex-store` and `noex-rules`). The command is split on whitespace (no
//!   quoting).
//!
//! Each launcher is started once untimed (disk caches), then the timed starts alternate
//! between the two launchers so a slow stretch of a noisy machine hits both alike.

use crate::measure::percentile;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The fixture both launchers start with: what the Python client's tests typically ask
/// for (a bucket with a schema, an `all`, a `where` and a `count` query, rules on).
pub(crate) const FIXTURE: &str = r#"{"buckets": [{"name": "users", "schema": {"name": {"type": "string", "required": true}, "age": {"type": "number"}, "role": {"type": "string", "default": "user"}}}], "queries": [{"name": "all-users", "type": "all", "bucket": "users"}, {"name": "users-by-role", "type": "where", "bucket": "users", "field": "role"}, {"name": "user-count", "type": "count", "bucket": "users"}]}"#;

/// How long a launcher may take to print its URL.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a launcher may take to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long each server runs between its URL line and SIGTERM. The real launcher prints its
/// URL before it installs its SIGTERM handler, so a SIGTERM sent at once kills it by the
/// signal's default action instead of its clean stop (exit 0).
const SETTLE: Duration = Duration::from_millis(100);

/// A command that starts a server and prints its URL first.
#[derive(Debug, Clone)]
pub(crate) struct Launcher {
    /// The program and its arguments; the fixture JSON is appended.
    pub(crate) argv: Vec<String>,
}

impl Launcher {
    /// `noex serve --fixture`.
    pub(crate) fn noex_serve(bin: &Path) -> Launcher {
        Launcher {
            argv: vec![
                bin.display().to_string(),
                "serve".into(),
                "--fixture".into(),
            ],
        }
    }

    /// The command in `NOEX_REAL_LAUNCHER`, if set and not blank.
    pub(crate) fn real_from_env() -> Option<Launcher> {
        let command = std::env::var("NOEX_REAL_LAUNCHER").ok()?;
        let argv: Vec<String> = command.split_whitespace().map(str::to_owned).collect();
        (!argv.is_empty()).then_some(Launcher { argv })
    }

    /// The command line as a shell would take it.
    pub(crate) fn shown(&self) -> String {
        let mut parts = self.argv.clone();
        parts.push(format!("'{FIXTURE}'"));
        parts.join(" ")
    }
}

/// One start and stop.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    /// Spawn to URL line read.
    pub(crate) start: Duration,
    /// SIGTERM to exit.
    pub(crate) stop: Duration,
}

/// Starts `launcher`, waits for its URL line, SIGTERMs it and waits for a successful exit.
pub(crate) fn start_once(launcher: &Launcher) -> Result<Sample, String> {
    let t0 = Instant::now();
    let mut child = Command::new(&launcher.argv[0])
        .args(&launcher.argv[1..])
        .arg(FIXTURE)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", launcher.argv[0]))?;
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let _ = tx.send(lines.next());
        // Drain the rest so the server never blocks on a full pipe.
        for _ in lines.map_while(Result::ok) {}
    });
    let mut stderr_pipe = child.stderr.take().expect("stderr");
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr_pipe.read_to_string(&mut text);
        text
    });
    let first = rx.recv_timeout(START_TIMEOUT);
    let start = t0.elapsed();
    match first {
        Ok(Some(Ok(line))) if line.trim().starts_with("ws://") => {}
        Ok(Some(Ok(line))) => {
            return Err(abort(
                &mut child,
                stderr,
                launcher,
                format!("first stdout line is not a ws:// URL: {line:?}"),
            ))
        }
        Ok(other) => {
            return Err(abort(
                &mut child,
                stderr,
                launcher,
                format!("no URL line ({other:?})"),
            ))
        }
        Err(_) => {
            return Err(abort(
                &mut child,
                stderr,
                launcher,
                format!("no URL line within {START_TIMEOUT:?}"),
            ))
        }
    }
    std::thread::sleep(SETTLE);
    let t1 = Instant::now();
    // `kill` rather than libc: the workspace forbids unsafe code.
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    if !sent.as_ref().is_ok_and(|s| s.success()) {
        return Err(abort(
            &mut child,
            stderr,
            launcher,
            format!("kill -TERM failed: {sent:?}"),
        ));
    }
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if t1.elapsed() > STOP_TIMEOUT {
            return Err(abort(
                &mut child,
                stderr,
                launcher,
                format!("did not exit within {STOP_TIMEOUT:?} of SIGTERM"),
            ));
        }
        std::thread::sleep(Duration::from_micros(500));
    };
    let stop = t1.elapsed();
    let _ = reader.join();
    let said = stderr.join().unwrap_or_default();
    if !status.success() {
        return Err(format!(
            "{}: exited with {status} after SIGTERM; stderr:\n{said}",
            launcher.shown()
        ));
    }
    Ok(Sample { start, stop })
}

/// Kills a launcher that misbehaved; the error names it and has its stderr.
fn abort(
    child: &mut std::process::Child,
    stderr: std::thread::JoinHandle<String>,
    launcher: &Launcher,
    why: String,
) -> String {
    let _ = child.kill();
    let _ = child.wait();
    let said = stderr.join().unwrap_or_default();
    format!("{}: {why}; stderr:\n{said}", launcher.shown())
}

/// Median and p90 of the start times, median of the stop times.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Summary {
    /// Median start.
    pub(crate) p50: Duration,
    /// 90th percentile start.
    pub(crate) p90: Duration,
    /// Median stop.
    pub(crate) stop: Duration,
}

/// Summarises samples.
pub(crate) fn summarise(samples: &[Sample]) -> Summary {
    let mut starts: Vec<Duration> = samples.iter().map(|s| s.start).collect();
    let mut stops: Vec<Duration> = samples.iter().map(|s| s.stop).collect();
    Summary {
        p50: percentile(&mut starts, 0.5),
        p90: percentile(&mut starts, 0.9),
        stop: percentile(&mut stops, 0.5),
    }
}

/// Runs `runs` timed starts of each launcher (after one untimed start each), alternating.
pub(crate) fn run(launchers: &[&Launcher], runs: usize) -> Result<Vec<Vec<Sample>>, String> {
    for launcher in launchers {
        start_once(launcher)?;
    }
    let mut samples = vec![Vec::with_capacity(runs); launchers.len()];
    for _ in 0..runs {
        for (i, launcher) in launchers.iter().enumerate() {
            samples[i].push(start_once(launcher)?);
        }
    }
    Ok(samples)
}

/// The `noex` binary (see [`noex_conformance::noex_bin::noex_binary`]), or, when that
/// fails and one is there, a `noex` next to this executable.
pub(crate) fn noex_binary() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current exe: {e}"))?;
    let profile_dir = exe.parent().ok_or("no parent of the current exe")?;
    noex_conformance::noex_bin::noex_binary(profile_dir).or_else(|e| {
        let sibling = profile_dir.join("noex");
        if sibling.is_file() {
            eprintln!("noex-bench: {e}; using {}", sibling.display());
            Ok(sibling)
        } else {
            Err(e)
        }
    })
}
