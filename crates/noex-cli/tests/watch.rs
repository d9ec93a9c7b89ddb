//! `noex watch` against an in-process testkit server: piped JSON lines, and the live view
//! in a pseudo-terminal.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use std::time::{Duration, Instant};

use noex_testkit::{QueryDef, TestServer};
use serde_json::{json, Value};

const DEADLINE: Duration = Duration::from_secs(20);

fn server() -> TestServer {
    common::users_builder()
        .query("users", QueryDef::all("users"))
        .start()
        .expect("server starts")
}

/// A running `noex watch` whose stdout lines arrive on a channel; killed on drop.
struct Watch {
    child: Child,
    lines: mpsc::Receiver<Value>,
    stderr: Arc<Mutex<String>>,
}

impl Watch {
    fn start(server: &TestServer, args: &[&str]) -> Watch {
        let mut child = Command::new(env!("CARGO_BIN_EXE_noex"))
            .arg("watch")
            .args(args)
            .args(["--url", &server.url()])
            .env_remove("NOEX_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("noex starts");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().expect("stderr");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    return;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not JSON: {line:?}: {e}"));
                if tx.send(v).is_err() {
                    return;
                }
            }
        });
        Watch {
            child,
            lines,
            stderr,
        }
    }

    /// The next line that satisfies `want`, within the deadline.
    fn until(&self, what: &str, want: impl Fn(&Value) -> bool) -> Value {
        let end = Instant::now() + DEADLINE;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) if want(&v) => return v,
                Ok(_) => {}
                Err(_) => panic!("no line with {what} within {DEADLINE:?}"),
            }
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn names(v: &Value) -> Vec<String> {
    v["data"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn watch_query_piped_survives_a_restart() {
    let server = server();
    server
        .insert("users", json!({"name": "Alice", "age": 30}))
        .unwrap();
    let watch = Watch::start(&server, &["query", "users"]);
    let first = watch.until("the initial result", |v| v.get("data").is_some());
    assert_eq!(names(&first), ["Alice"]);
    assert!(first["at"].as_str().unwrap().ends_with('Z'), "{first}");
    server
        .insert("users", json!({"name": "Bob", "age": 41}))
        .unwrap();
    watch.until("Bob", |v| names(v) == ["Alice", "Bob"]);
    server.restart(true);
    server
        .insert("users", json!({"name": "Carol", "age": 25}))
        .unwrap();
    watch.until("Carol after the restart", |v| {
        names(v) == ["Alice", "Bob", "Carol"]
    });
    // State changes went to stderr, as JSON lines.
    let err = watch.stderr.lock().unwrap().clone();
    let states: Vec<Value> = err
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(states.iter().any(|v| v["state"] == "reconnecting"), "{err}");
}

#[test]
fn watch_topic_piped_sees_an_event() {
    let server = server();
    let watch = Watch::start(&server, &["topic", "order.*"]);
    // The subscription is in place once the server counts it.
    wait_for_subscription(&server, "for the watch");
    emit(&server, "order.created", r#"{"total": 12}"#);
    let line = watch.until("the event", |v| v.get("topic").is_some());
    assert_eq!(line["topic"], "order.created");
    assert_eq!(line["event"]["data"], json!({"total": 12}));
    assert_eq!(line["event"]["topic"], "order.created");
}

/// Waits until the server counts at least one live subscription (the watch's, made or
/// made again after a restart).
fn wait_for_subscription(server: &TestServer, what: &str) {
    let end = Instant::now() + DEADLINE;
    while server.subscription_count() == 0 {
        assert!(Instant::now() < end, "no subscription {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `noex emit TOPIC DATA` against the server.
fn emit(server: &TestServer, topic: &str, data: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_noex"))
        .args(["emit", topic, data, "--url", &server.url()])
        .env_remove("NOEX_TOKEN")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn watch_topic_piped_reports_a_gap_across_a_restart() {
    let server = server();
    let watch = Watch::start(&server, &["topic", "orders.*"]);
    wait_for_subscription(&server, "before the restart");
    emit(&server, "orders.created", r#"{"n": 1}"#);
    let first = watch.until("the first event", |v| v.get("topic").is_some());
    assert_eq!(first["event"]["data"], json!({"n": 1}), "{first}");
    assert!(first.get("gap").is_none(), "{first}");
    server.restart(true);
    // The subscription is made again on the new server and the missed stretch comes out
    // as one line on stdout, before any later event.
    let gap = watch.until("the gap", |v| {
        v.get("gap").is_some() || v.get("topic").is_some()
    });
    assert!(gap.get("topic").is_none(), "an event before the gap: {gap}");
    let (from, to) = (
        gap["gap"]["from"].as_str().expect("from"),
        gap["gap"]["to"].as_str().expect("to"),
    );
    // RFC 3339 UTC with milliseconds, so they order as text.
    assert!(from.ends_with('Z') && to.ends_with('Z'), "{gap}");
    assert!(from <= to, "{gap}");
    assert!(gap["at"].as_str().is_some_and(|a| a >= to), "{gap}");
    let keys: Vec<&String> = gap.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["at", "gap"], "{gap}");
    wait_for_subscription(&server, "after the restart");
    emit(&server, "orders.shipped", r#"{"n": 2}"#);
    let second = watch.until("the event after the restart", |v| v.get("topic").is_some());
    assert_eq!(second["topic"], "orders.shipped", "{second}");
    assert_eq!(second["event"]["data"], json!({"n": 2}), "{second}");
    // The reconnect itself was on stderr, not stdout.
    let end = Instant::now() + DEADLINE;
    loop {
        let err = watch.stderr.lock().unwrap().clone();
        let states: Vec<Value> = err
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        if states.iter().any(|v| v["state"] == "restored") {
            assert!(states.iter().any(|v| v["state"] == "reconnecting"), "{err}");
            break;
        }
        assert!(Instant::now() < end, "no restored state on stderr: {err}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether the pty's screen shows the main screen with the cursor (the live view left the
/// alternate screen and showed the cursor again) and the terminal is out of raw mode.
fn assert_terminal_restored(pty: &common::Pty) {
    let (alternate, hidden) = {
        let p = pty.parser.lock().unwrap();
        (p.screen().alternate_screen(), p.screen().hide_cursor())
    };
    assert!(!alternate, "still on the alternate screen:\n{}", pty.text());
    assert!(!hidden, "the cursor is still hidden:\n{}", pty.text());
    assert_ne!(
        pty.raw_mode(),
        Some(true),
        "the terminal is still in raw mode"
    );
}

/// Whether the live view is up: the alternate screen, the cursor hidden, raw mode.
fn assert_live_view(pty: &common::Pty) {
    let (alternate, hidden) = {
        let p = pty.parser.lock().unwrap();
        (p.screen().alternate_screen(), p.screen().hide_cursor())
    };
    assert!(
        alternate && hidden,
        "not on the alternate screen:\n{}",
        pty.text()
    );
    assert_ne!(
        pty.raw_mode(),
        Some(false),
        "the terminal is not in raw mode"
    );
}

#[test]
fn watch_query_live_view_in_a_pty() {
    let server = server();
    server
        .insert("users", json!({"name": "Alice", "age": 30}))
        .unwrap();
    let (rows, cols) = (12, 100);
    let url = server.url();
    let mut pty = common::Pty::spawn(
        env!("CARGO_BIN_EXE_noex"),
        &["watch", "query", "users", "--url", &url],
        rows,
        cols,
    );
    pty.wait_for(|s| s.contains("Alice") && s.contains("1 records"), "Alice");
    assert_live_view(&pty);
    server
        .insert("users", json!({"name": "Bob", "age": 41}))
        .unwrap();
    let text = pty.wait_for(|s| s.contains("Bob") && s.contains("2 records"), "Bob");
    assert!(text.contains("noex watch query users"), "{text}");
    assert!(text.contains("● connected"), "{text}");
    assert!(text.contains("reconnects: 0"), "{text}");
    assert!(text.contains("name") && text.contains("age"), "{text}");
    // The row that changed in the last update is highlighted; the others are not.
    let highlighted = |name: &str| {
        let p = pty.parser.lock().unwrap();
        let s = p.screen();
        (0..rows).any(|r| {
            s.contents_between(r, 0, r, cols).contains(name)
                && s.cell(r, 2)
                    .is_some_and(|c| c.bgcolor() != vt100::Color::Default)
        })
    };
    assert!(highlighted("Bob") && !highlighted("Alice"), "{text}");
    if std::env::var_os("NOEX_PRINT_SCREEN").is_some() {
        println!("{text}");
    }
    // The server restarts: the view says so and goes on.
    server.restart(true);
    server
        .insert("users", json!({"name": "Carol", "age": 25}))
        .unwrap();
    pty.wait_for(
        |s| s.contains("Carol") && s.contains("reconnects: 1") && s.contains("restored"),
        "Carol after the restart",
    );
    pty.send(b"q");
    let status = pty.wait_exit("on q");
    assert!(status.success(), "{status:?}");
    assert_terminal_restored(&pty);
}

#[test]
fn watch_topic_live_view_in_a_pty() {
    let server = server();
    let (rows, cols) = (12, 100);
    let url = server.url();
    let mut pty = common::Pty::spawn(
        env!("CARGO_BIN_EXE_noex"),
        &["watch", "topic", "orders.*", "--url", &url],
        rows,
        cols,
    );
    pty.wait_for(
        |s| s.contains("noex watch topic orders.*") && s.contains("0 events"),
        "the empty view",
    );
    assert_live_view(&pty);
    wait_for_subscription(&server, "before the restart");
    emit(&server, "orders.created", r#"{"total": 12}"#);
    let text = pty.wait_for(|s| s.contains("1 events"), "the first event");
    // One line per event: the time it arrived, the topic, the data.
    let line = text
        .lines()
        .find(|l| l.contains("orders.created"))
        .unwrap_or_else(|| panic!("no event line:\n{text}"));
    assert!(line.contains(r#"{"total":12}"#), "{text}");
    assert!(text.contains("● connected  │  reconnects: 0"), "{text}");
    assert!(!text.contains("gap"), "{text}");
    // The server restarts: a gap line where events may have been missed, and the status
    // line says the subscription was restored and counts the gap.
    server.restart(true);
    let text = pty.wait_for(
        |s| s.contains("may have been missed") && s.contains("restored"),
        "the gap after the restart",
    );
    let status = text.lines().last().unwrap_or_default();
    assert!(status.contains("● connected"), "{text}");
    assert!(status.contains("reconnects: 1"), "{text}");
    assert!(status.contains("restored at"), "{text}");
    assert!(status.contains("gaps: 1"), "{text}");
    assert!(
        status.contains("q: quit"),
        "the status line is cut:\n{text}"
    );
    let lines: Vec<&str> = text.lines().collect();
    let event_at = lines.iter().position(|l| l.contains("orders.created"));
    let gap_at = lines
        .iter()
        .position(|l| l.contains("── gap: events between"));
    assert!(
        matches!((event_at, gap_at), (Some(e), Some(g)) if e < g),
        "the gap line is not under the first event:\n{text}"
    );
    wait_for_subscription(&server, "after the restart");
    emit(&server, "orders.shipped", r#"{"total": 13}"#);
    let text = pty.wait_for(
        |s| s.contains("orders.shipped") && s.contains("2 events"),
        "the event after the restart",
    );
    let lines: Vec<&str> = text.lines().collect();
    let gap_at = lines
        .iter()
        .position(|l| l.contains("── gap: events between"));
    let after = lines.iter().position(|l| l.contains("orders.shipped"));
    assert!(
        matches!((gap_at, after), (Some(g), Some(a)) if g < a),
        "the new event is not under the gap line:\n{text}"
    );
    assert!(lines[after.unwrap()].contains(r#"{"total":13}"#), "{text}");
    if std::env::var_os("NOEX_PRINT_SCREEN").is_some() {
        println!("{text}");
    }
    // Ctrl-C (a key in raw mode) quits with status 0 and gives the terminal back.
    pty.send(b"\x03");
    let status = pty.wait_exit("on Ctrl-C");
    assert!(status.success(), "{status:?}");
    assert_terminal_restored(&pty);
}

#[test]
fn watch_of_an_undefined_query_fails_with_the_server_error() {
    let server = server();
    let out = Command::new(env!("CARGO_BIN_EXE_noex"))
        .args(["watch", "query", "nope", "--url", &server.url()])
        .env_remove("NOEX_TOKEN")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("QUERY_NOT_DEFINED"),
        "{out:?}"
    );
    assert!(out.stdout.is_empty());
}
