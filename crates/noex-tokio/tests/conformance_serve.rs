//! The conformance suite's server-independent cases against `noex serve` run as a separate
//! process, exactly as a test in another language would use it: `noex serve --fixture
//! '{"rules": true}'`, the URL read from the first line of its standard output, the cases
//! run in URL mode (no access to the embedded server, as with `NOEX_URL`), then SIGTERM and
//! a bounded wait for a clean exit.
//!
//! **Finding the `noex` binary** (it belongs to another package of this workspace, so
//! `CARGO_BIN_EXE_noex` is not available here):
//!
//! 1. `NOEX_BIN`, when set, names it (it must exist; nothing is built).
//! 2. Otherwise the test asks cargo: `cargo build -p noex-cli --bin noex
//!    --message-format=json-render-diagnostics`, run in this workspace with the target
//!    directory and profile this test binary was built with (both derived from
//!    `std::env::current_exe()`: `<target-dir>[/<triple>]/<profile-dir>/deps/<test>`; the
//!    target directory is the one holding cargo's `CACHEDIR.TAG`), and takes the
//!    `executable` of the `noex` artifact from cargo's JSON output. This works with any
//!    `CARGO_TARGET_DIR`, `--target-dir`, `--release` or `--target`, rebuilds the binary
//!    when noex-cli changed, and costs a no-op build when it is up to date. Cargo is
//!    `$CARGO` (set by cargo for the tests it runs) or `cargo` on the `PATH`.
//!
//! When neither works the test fails with what cargo said; it never skips.
//!
//! The fixture is `{"rules": true}`: the URL-mode cases need no auth and the rule engine,
//! and define their own buckets and queries (under unique names) through the admin
//! operations.
//!
//! A second process serves the session cases of `noex_conformance::cases::time`: built-in
//! identity with sessions of 1.5 s (`auth: {builtIn, adminSecret, sessionTtl}`), faults
//! through the control commands on its standard input (`--control-stdin`:
//! `expire-sessions`, `delay`).
#![cfg(unix)]

use noex_conformance::cases::time::{self, ServerControl};
use noex_conformance::{cases::independent as cases, Ctx};
use std::io::{BufRead, BufReader, Read, Write};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The launcher fixture: rule engine on, no auth, nothing predefined.
const FIXTURE: &str = r#"{"rules": true}"#;
/// The session cases' fixture: built-in identity, sessions of 1.5 s
/// ([`time::SESSION_TTL`]) and the admin secret [`time::ADMIN_SECRET`].
const AUTH_FIXTURE: &str = r#"{"rules": true, "auth": {"builtIn": true,
    "adminSecret": "time-admin-secret", "sessionTtl": 1500}}"#;
/// How long a control command may take to answer.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `noex serve` may take to print its URL.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one case may take against it.
const CASE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the process may take to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

type Case = fn(Ctx) -> futures::future::BoxFuture<'static, ()>;

/// The server-independent cases: the `@independent` list of `conformance_suite!` (checked
/// against it by [`case_list_matches_the_suite`]).
const CASES: &[(&str, Case)] = &[
    ("store_crud_typed_records", |c| {
        Box::pin(cases::store_crud_typed_records(c))
    }),
    ("store_queries_and_aggregates", |c| {
        Box::pin(cases::store_queries_and_aggregates(c))
    }),
    ("store_errors", |c| Box::pin(cases::store_errors(c))),
    ("transactions", |c| Box::pin(cases::transactions(c))),
    ("admin_store_ops", |c| Box::pin(cases::admin_store_ops(c))),
    ("store_subscription_pushes", |c| {
        Box::pin(cases::store_subscription_pushes(c))
    }),
    ("subscription_callback_and_drop", |c| {
        Box::pin(cases::subscription_callback_and_drop(c))
    }),
    ("rules_events_and_facts", |c| {
        Box::pin(cases::rules_events_and_facts(c))
    }),
    ("rules_admin", |c| Box::pin(cases::rules_admin(c))),
    ("procedures", |c| Box::pin(cases::procedures(c))),
    ("server_introspection", |c| {
        Box::pin(cases::server_introspection(c))
    }),
    ("filter_builder_operators", |c| {
        Box::pin(cases::filter_builder_operators(c))
    }),
    ("unsubscribe_and_bare_emit", |c| {
        Box::pin(cases::unsubscribe_and_bare_emit(c))
    }),
    ("live_insert_update_delete_are_one_keyed_change_each", |c| {
        Box::pin(cases::live_insert_update_delete_are_one_keyed_change_each(
            c,
        ))
    }),
    ("live_params_on_a_sorted_where_query", |c| {
        Box::pin(cases::live_params_on_a_sorted_where_query(c))
    }),
    ("live_key_field_names_the_bucket_key", |c| {
        Box::pin(cases::live_key_field_names_the_bucket_key(c))
    }),
    ("live_burst_between_reads_is_merged", |c| {
        Box::pin(cases::live_burst_between_reads_is_merged(c))
    }),
    ("live_record_replaced_under_its_key_between_reads", |c| {
        Box::pin(cases::live_record_replaced_under_its_key_between_reads(c))
    }),
    ("live_unsubscribe_drop_and_on_change", |c| {
        Box::pin(cases::live_unsubscribe_drop_and_on_change(c))
    }),
    ("live_count_query_is_not_a_list", |c| {
        Box::pin(cases::live_count_query_is_not_a_list(c))
    }),
];

#[test]
fn url_mode_cases_pass_against_noex_serve_process() {
    let bin = noex_binary();
    let mut served = Served::start(&bin, FIXTURE, false);
    let url = served.url.clone();
    let started = Instant::now();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut failures = Vec::new();
    for (name, case) in CASES {
        let ctx = Ctx {
            backend: noex_tokio::Tokio.into(),
            url: url.clone(),
            server: None,
        };
        let case_started = Instant::now();
        let outcome = runtime.block_on(async {
            let task = tokio::spawn(case(ctx));
            match tokio::time::timeout(CASE_TIMEOUT, task).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) if e.is_panic() => Err(panic_message(e.into_panic())),
                Ok(Err(e)) => Err(format!("task failed: {e}")),
                Err(_) => Err(format!("did not finish within {CASE_TIMEOUT:?}")),
            }
        });
        eprintln!(
            "conformance_serve: {name}: {} ({:?})",
            if outcome.is_ok() { "ok" } else { "FAILED" },
            case_started.elapsed()
        );
        if let Err(why) = outcome {
            failures.push(format!("{name}: {why}"));
        }
        if let Some(status) = served.exited() {
            failures.push(format!("noex serve exited during {name}: {status}"));
            break;
        }
    }
    drop(runtime);
    eprintln!(
        "conformance_serve: {} cases in {:?} against {url}",
        CASES.len(),
        started.elapsed()
    );

    let stop = served.stop();
    let stderr = served.stderr();
    assert!(
        failures.is_empty(),
        "{} of {} URL-mode cases failed against `noex serve --fixture '{FIXTURE}'` ({}):\n{}\n\
         noex serve stderr:\n{stderr}",
        failures.len(),
        CASES.len(),
        bin.display(),
        failures.join("\n"),
    );
    match stop {
        Ok(status) => assert!(
            status.success(),
            "noex serve exited with {status} after SIGTERM; stderr:\n{stderr}"
        ),
        Err(why) => panic!("{why}; stderr:\n{stderr}"),
    }
}

/// The session cases against `noex serve` with the built-in identity and sessions of
/// 1.5 s: a `.credentials(..)` client making requests for four lifetimes never sees an
/// error (its session is renewed before it expires), and `expire-sessions` sent while
/// requests are in flight fails none of them (the client logs in again and sends the
/// refused ones again, each write stored once).
#[test]
fn sessions_stay_logged_in_against_noex_serve_process() {
    let bin = noex_binary();
    let mut served = Served::start(&bin, AUTH_FIXTURE, true);
    let ctx = Ctx {
        backend: noex_tokio::Tokio.into(),
        url: served.url.clone(),
        server: None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let control: &Served = &served;
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        runtime.block_on(async {
            let cases = async {
                let started = Instant::now();
                let user = time::store_user(&ctx, time::ADMIN_SECRET).await;
                time::stays_logged_in(&ctx, &user, time::SESSION_TTL).await;
                eprintln!(
                    "conformance_serve: stays_logged_in: ok ({:?})",
                    started.elapsed()
                );
                let started = Instant::now();
                let user = time::store_user(&ctx, time::ADMIN_SECRET).await;
                time::expired_session_made_again(&ctx, &user, control).await;
                eprintln!(
                    "conformance_serve: expired_session_made_again: ok ({:?})",
                    started.elapsed()
                );
            };
            tokio::time::timeout(CASE_TIMEOUT, cases).await
        })
    }));
    drop(runtime);
    let stop = served.stop();
    let stderr = served.stderr();
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(_)) => panic!(
            "the session cases did not finish within {CASE_TIMEOUT:?}; noex serve stderr:\n{stderr}"
        ),
        Err(panic) => panic!(
            "{}\nnoex serve --fixture '{AUTH_FIXTURE}' stderr:\n{stderr}",
            panic_message(panic)
        ),
    }
    match stop {
        Ok(status) => assert!(
            status.success(),
            "noex serve exited with {status} after SIGTERM; stderr:\n{stderr}"
        ),
        Err(why) => panic!("{why}; stderr:\n{stderr}"),
    }
}

/// The list above is the suite's: a case added to `conformance_suite!`'s server-independent
/// list must be added here too.
#[test]
fn case_list_matches_the_suite() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../noex-conformance/src/lib.rs");
    let source =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let marker = "conformance_suite!(@independent $block_on, $backend, [";
    let start = source
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker:?} in {}: update this test", path.display()))
        + marker.len();
    let end = start
        + source[start..]
            .find(']')
            .expect("the independent list ends with ]");
    let suite: Vec<&str> = source[start..end]
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let ours: Vec<&str> = CASES.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        ours,
        suite,
        "tests/conformance_serve.rs must run the same server-independent cases as {}",
        path.display()
    );
}

/// `noex serve` in a child process; killed if still running when dropped.
struct Served {
    child: Child,
    url: String,
    stderr: Arc<Mutex<String>>,
    /// Its standard input, with `--control-stdin`.
    control: Option<Mutex<ChildStdin>>,
    /// Its standard output after the URL line: the control commands' replies.
    replies: Mutex<mpsc::Receiver<std::io::Result<String>>>,
}

impl Served {
    /// `noex serve --fixture FIXTURE`, with `--control-stdin` when `control`.
    fn start(bin: &Path, fixture: &str, control: bool) -> Served {
        let mut command = Command::new(bin);
        command.args(["serve", "--fixture", fixture]);
        if control {
            command.arg("--control-stdin").stdin(Stdio::piped());
        } else {
            command.stdin(Stdio::null());
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        let control = child.stdin.take().map(Mutex::new);
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_pipe = child.stderr.take().expect("stderr");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        // Keeps draining so the server never blocks on a full pipe; the lines wait in the
        // channel for `command` (and are dropped with it).
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut served = Served {
            child,
            url: String::new(),
            stderr,
            control,
            replies: Mutex::new(rx),
        };
        let first = served
            .replies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .recv_timeout(STARTUP_TIMEOUT);
        let first = match first {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => {
                let status = served.wait_for_exit(Duration::from_secs(2));
                panic!(
                    "reading noex serve's stdout failed ({e}; exit: {status:?}); stderr:\n{}",
                    served.stderr()
                )
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = served.wait_for_exit(Duration::from_secs(2));
                panic!(
                    "noex serve printed no URL line (exit: {status:?}); stderr:\n{}",
                    served.stderr()
                )
            }
            Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                "noex serve printed no URL line within {STARTUP_TIMEOUT:?}; stderr:\n{}",
                served.stderr()
            ),
        };
        let url = first.trim();
        assert!(
            url.starts_with("ws://") && url.len() > "ws://".len(),
            "noex serve's first stdout line is not a ws:// URL: {first:?}; stderr:\n{}",
            served.stderr()
        );
        served.url = url.to_string();
        served
    }

    /// Sends a control command (`--control-stdin`) and returns its reply line.
    fn command(&self, command: &str) -> Result<String, String> {
        let stdin = self
            .control
            .as_ref()
            .ok_or("started without --control-stdin")?;
        let replies = self.replies.lock().unwrap_or_else(|e| e.into_inner());
        {
            let mut stdin = stdin.lock().unwrap_or_else(|e| e.into_inner());
            writeln!(stdin, "{command}")
                .and_then(|()| stdin.flush())
                .map_err(|e| format!("write {command:?}: {e}"))?;
        }
        match replies.recv_timeout(COMMAND_TIMEOUT) {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) => Err(format!("read the reply to {command:?}: {e}")),
            Err(e) => Err(format!("no reply to {command:?}: {e}")),
        }
    }

    /// Sends `command` and panics unless the reply is `ok`.
    fn must(&self, command: &str) {
        match self.command(command) {
            Ok(reply) if reply.trim() == "ok" => {}
            other => panic!("control command {command:?}: {other:?}"),
        }
    }

    /// Its exit status, if it has exited.
    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    fn wait_for_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, then waits up to [`STOP_TIMEOUT`] for the exit.
    fn stop(&mut self) -> Result<ExitStatus, String> {
        if let Some(status) = self.exited() {
            return Err(format!("noex serve had already exited: {status}"));
        }
        // `kill` rather than libc: the workspace forbids unsafe code.
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .map_err(|e| format!("run kill -TERM: {e}"))?;
        if !sent.success() {
            return Err(format!("kill -TERM {} failed: {sent}", self.child.id()));
        }
        self.wait_for_exit(STOP_TIMEOUT)
            .ok_or_else(|| format!("noex serve did not exit within {STOP_TIMEOUT:?} of SIGTERM"))
    }

    fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl ServerControl for Served {
    fn expire_sessions(&self) {
        self.must("expire-sessions");
    }
    fn set_delay(&self, delay: Duration) {
        self.must(&format!("delay {}ms", delay.as_millis()));
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panicked (non-string payload)".into())
}

/// The `noex` binary: `NOEX_BIN`, or built by cargo into this test's own target directory
/// with its profile (`<target-dir>[/<triple>]/<profile-dir>/deps/<this test>`).
fn noex_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("a test executable lives in <profile-dir>/deps");
    noex_conformance::noex_bin::noex_binary(profile_dir).unwrap_or_else(|e| panic!("{e}"))
}
