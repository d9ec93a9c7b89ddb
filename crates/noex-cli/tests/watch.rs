//! `noex watch` against an in-process testkit server: piped JSON lines, and the live view
//! in a pseudo-terminal.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use std::time::{Duration, Instant};

use noex_testkit::{QueryDef, TestServer};
use serde_json::{json, Value};

const DEADLINE: Duration = Duration::from_secs(20);

fn server() -> TestServer {
    common::users_builder()
        .query("users", QueryDef::all("users"))
        .query("user-count", QueryDef::count("users"))
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
        Watch::spawn(&server.url(), args, false)
    }

    /// `noex watch ARGS --url URL`; with `merged`, its stderr goes to the same pipe as its
    /// stdout (both are read as lines, in the order they were written).
    fn spawn(url: &str, args: &[&str], merged: bool) -> Watch {
        let mut command = Command::new(env!("CARGO_BIN_EXE_noex"));
        command
            .arg("watch")
            .args(args)
            .args(["--url", url])
            .env_remove("NOEX_TOKEN")
            .stdin(Stdio::null());
        let merged = if merged {
            let (reader, writer) = std::io::pipe().expect("pipe");
            command
                .stdout(writer.try_clone().expect("pipe"))
                .stderr(writer);
            Some(reader)
        } else {
            command.stdout(Stdio::piped()).stderr(Stdio::piped());
            None
        };
        let mut child = command.spawn().expect("noex starts");
        // The command holds the pipe's writing end: dropped, the reader sees the end.
        drop(command);
        let stdout: Box<dyn Read + Send> = match merged {
            Some(reader) => Box::new(reader),
            None => Box::new(child.stdout.take().expect("stdout")),
        };
        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(mut err) = child.stderr.take() {
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
        }
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

    /// The next line, within the deadline.
    fn next(&self, what: &str) -> Value {
        self.lines
            .recv_timeout(DEADLINE)
            .unwrap_or_else(|_| panic!("no line ({what}) within {DEADLINE:?}"))
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
    restart(&server);
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
    restart(&server);
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
    // An update highlights the updated row, and only it.
    let alice = server.records("users")[0].clone();
    let bob = server.records("users")[1].clone();
    update(&server, &alice["id"], json!({"age": 31}));
    let end = Instant::now() + DEADLINE;
    while !highlighted("Alice") {
        assert!(
            Instant::now() < end,
            "Alice not highlighted:\n{}",
            pty.text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = pty.text();
    assert!(text.contains("31") && !highlighted("Bob"), "{text}");
    // A removed row stays under the others, struck through in red, until the next change.
    delete(&server, &bob["id"]);
    let text = pty.wait_for(|s| s.contains("1 records"), "Bob removed");
    let removed = |name: &str| {
        let p = pty.parser.lock().unwrap();
        let s = p.screen();
        (0..rows).any(|r| {
            s.contents_between(r, 0, r, cols).contains(name)
                && s.cell(r, 2)
                    .is_some_and(|c| c.fgcolor() == vt100::Color::Idx(1))
        })
    };
    assert!(removed("Bob") && !removed("Alice"), "{text}");
    assert!(!highlighted("Alice"), "{text}");
    // The server restarts: the view says so and goes on.
    restart(&server);
    server
        .insert("users", json!({"name": "Carol", "age": 25}))
        .unwrap();
    pty.wait_for(
        |s| s.contains("Carol") && s.contains("reconnects: 1") && s.contains("restored"),
        "Carol after the restart",
    );
    assert!(highlighted("Carol") && !removed("Bob"), "{}", pty.text());
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
    restart(&server);
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
    for changes in [None, Some("--changes")] {
        let out = Command::new(env!("CARGO_BIN_EXE_noex"))
            .args(["watch", "query", "nope", "--url", &server.url()])
            .args(changes)
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
}

/// `noex call OP FIELDS --url URL`: its answer.
fn call(server: &TestServer, op: &str, fields: Value) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_noex"))
        .args(["call", op, &fields.to_string(), "--url", &server.url()])
        .env_remove("NOEX_TOKEN")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).expect("a JSON answer")
}

fn update(server: &TestServer, key: &Value, data: Value) {
    call(
        server,
        "store.update",
        json!({"bucket": "users", "key": key, "data": data}),
    );
}

fn delete(server: &TestServer, key: &Value) {
    call(
        server,
        "store.delete",
        json!({"bucket": "users", "key": key}),
    );
}

/// Asserts a `--changes` line: its fields, op, key, and the record's name and version.
fn assert_change(line: &Value, op: &str, key: &Value, name: &str, version: u64) {
    let fields: Vec<&String> = line.as_object().expect("an object").keys().collect();
    assert_eq!(fields, ["at", "key", "op", "record"], "{line}");
    assert!(
        line["at"].as_str().is_some_and(|a| a.ends_with('Z')),
        "{line}"
    );
    assert_eq!(line["op"], op, "{line}");
    assert_eq!(&line["key"], key, "{line}");
    let record = &line["record"];
    assert_eq!(&record["id"], key, "{line}");
    assert_eq!(record["name"], name, "{line}");
    assert_eq!(record["_version"], version, "{line}");
    assert!(record["_createdAt"].is_i64(), "{line}");
    assert!(record["_updatedAt"].is_i64(), "{line}");
}

#[test]
fn watch_changes_piped_gives_one_line_per_change() {
    let server = server();
    let alice = server
        .insert("users", json!({"name": "Alice", "age": 30}))
        .unwrap();
    let watch = Watch::start(&server, &["query", "users", "--changes"]);
    // The initial result: every record added.
    assert_change(&watch.next("Alice"), "added", &alice["id"], "Alice", 1);
    let bob = server
        .insert("users", json!({"name": "Bob", "age": 41}))
        .unwrap();
    assert_change(&watch.next("Bob added"), "added", &bob["id"], "Bob", 1);
    update(&server, &alice["id"], json!({"age": 31}));
    let line = watch.next("Alice updated");
    assert_change(&line, "updated", &alice["id"], "Alice", 2);
    assert_eq!(line["record"]["age"], 31, "{line}");
    delete(&server, &bob["id"]);
    // Removed: the record as last seen.
    let line = watch.next("Bob removed");
    assert_change(&line, "removed", &bob["id"], "Bob", 1);
    assert_eq!(line["record"]["age"], 41, "{line}");
    // Nothing else came: the next change is the next line.
    let carol = server
        .insert("users", json!({"name": "Carol", "age": 25}))
        .unwrap();
    assert_change(
        &watch.next("Carol added"),
        "added",
        &carol["id"],
        "Carol",
        1,
    );
}

/// A TCP relay to the server that a test can cut: its connections are closed and new
/// ones closed at once until it is mended. Stops accepting when dropped.
struct Relay {
    addr: SocketAddr,
    open: Arc<AtomicBool>,
    stopped: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    fn start(server: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        let open = Arc::new(AtomicBool::new(true));
        let stopped = Arc::new(AtomicBool::new(false));
        let links: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (is_open, is_stopped, all) = (open.clone(), stopped.clone(), links.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if is_stopped.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                if !is_open.load(Ordering::SeqCst) {
                    continue;
                }
                let Ok(upstream) = TcpStream::connect(server) else {
                    continue;
                };
                let mut all = all.lock().unwrap();
                for (mut from, mut to) in [
                    (client.try_clone(), upstream.try_clone()),
                    (upstream.try_clone(), client.try_clone()),
                ]
                .into_iter()
                .filter_map(|(a, b)| Some((a.ok()?, b.ok()?)))
                {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Both);
                        let _ = from.shutdown(Shutdown::Both);
                    });
                }
                all.extend([client, upstream]);
            }
        });
        Relay {
            addr,
            open,
            stopped,
            links,
        }
    }

    fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            let _ = link.shutdown(Shutdown::Both);
        }
    }

    fn mend(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cut();
        self.stopped.store(true, Ordering::SeqCst);
        // Wakes the accepting thread so it sees it is stopped.
        let _ = TcpStream::connect(self.addr);
    }
}

#[test]
fn watch_changes_piped_gives_what_was_missed_after_the_restored_line() {
    let server = server();
    let alice = server
        .insert("users", json!({"name": "Alice", "age": 30}))
        .unwrap();
    let bob = server
        .insert("users", json!({"name": "Bob", "age": 41}))
        .unwrap();
    let dave = server
        .insert("users", json!({"name": "Dave", "age": 50}))
        .unwrap();
    // The watch reaches the server through a relay, so it can be kept away while the
    // records change; its stdout and stderr are one stream, in the order written.
    let relay = Relay::start(server.local_addr());
    let watch = Watch::spawn(&relay.url(), &["query", "users", "--changes"], true);
    let op = |v: &Value| v.get("op").is_some();
    for (who, name) in [(&alice, "Alice"), (&bob, "Bob"), (&dave, "Dave")] {
        assert_change(&watch.until(name, op), "added", &who["id"], name, 1);
    }
    relay.cut();
    watch.until("reconnecting", |v| v["state"] == "reconnecting");
    // The server restarts with its data, and the records change while the watch is away.
    restart(&server);
    let carol = server
        .insert("users", json!({"name": "Carol", "age": 25}))
        .unwrap();
    update(&server, &alice["id"], json!({"age": 31}));
    delete(&server, &bob["id"]);
    relay.mend();
    // The subscription is restored, then what was missed: one line per record that
    // changed (Dave did not), before anything that changes later.
    let restored = watch.until("the restored line", |v| op(v) || v["state"] == "restored");
    assert_eq!(
        restored["state"], "restored",
        "a change before the restored line: {restored}"
    );
    let missed: Vec<Value> = (0..3).map(|_| watch.until("a missed change", op)).collect();
    assert_change(&missed[0], "added", &carol["id"], "Carol", 1);
    assert_change(&missed[1], "updated", &alice["id"], "Alice", 2);
    assert_change(&missed[2], "removed", &bob["id"], "Bob", 1);
    for line in &missed {
        assert!(line["at"].as_str() >= restored["at"].as_str(), "{line}");
    }
    let eve = server
        .insert("users", json!({"name": "Eve", "age": 22}))
        .unwrap();
    assert_change(&watch.until("Eve", op), "added", &eve["id"], "Eve", 1);
}

#[test]
fn watch_changes_of_a_count_falls_back_to_whole_results() {
    let server = server();
    server
        .insert("users", json!({"name": "Alice", "age": 30}))
        .unwrap();
    let watch = Watch::spawn(&server.url(), &["query", "user-count", "--changes"], true);
    // Said on stderr (here the same stream) before the first result.
    let fallback = watch.next("the fallback line");
    assert_eq!(fallback["fallback"], "data", "{fallback}");
    assert!(
        fallback["reason"]
            .as_str()
            .is_some_and(|r| r.contains("not a list of records")),
        "{fallback}"
    );
    let first = watch.next("the count");
    assert_eq!(first["data"], 1, "{first}");
    server
        .insert("users", json!({"name": "Bob", "age": 41}))
        .unwrap();
    let second = watch.next("the new count");
    assert_eq!(second["data"], 2, "{second}");
    assert!(second.get("op").is_none(), "{second}");
}

#[test]
fn watch_changes_keys_records_by_the_key_field() {
    let server = server();
    server
        .insert("users", json!({"name": "Alice", "age": 30}))
        .unwrap();
    let watch = Watch::start(&server, &["query", "users", "--changes", "--key", "name"]);
    let line = watch.next("Alice");
    assert_eq!(line["op"], "added", "{line}");
    assert_eq!(line["key"], "Alice", "{line}");
    drop(watch);
    // Records without the key field are not a list of records by that key: whole results.
    let watch = Watch::spawn(
        &server.url(),
        &["query", "users", "--changes", "--key", "nope"],
        true,
    );
    let fallback = watch.next("the fallback line");
    assert_eq!(fallback["fallback"], "data", "{fallback}");
    assert!(
        fallback["reason"]
            .as_str()
            .is_some_and(|r| r.contains("`nope`")),
        "{fallback}"
    );
    let whole = watch.next("the whole result");
    assert_eq!(whole["data"][0]["name"], "Alice", "{whole}");
}

#[test]
fn watch_changes_on_a_terminal_prints_json_lines() {
    let server = server();
    server
        .insert("users", json!({"name": "Alice", "age": 30}))
        .unwrap();
    let url = server.url();
    let mut pty = common::Pty::spawn(
        env!("CARGO_BIN_EXE_noex"),
        &["watch", "query", "users", "--changes", "--url", &url],
        12,
        200,
    );
    let text = pty.wait_for(|s| s.contains(r#""op":"added""#), "the added line");
    assert!(text.contains(r#""name":"Alice""#), "{text}");
    // Lines, not the live view.
    assert!(
        !pty.parser.lock().unwrap().screen().alternate_screen(),
        "{text}"
    );
    pty.send(b"\x03");
    let status = pty.wait_exit("on Ctrl-C");
    assert!(status.success(), "{status:?}");
}

/// Restarts the server with its data kept, on the same port.
fn restart(server: &TestServer) {
    server.try_restart(true).expect("the server restarts");
}
