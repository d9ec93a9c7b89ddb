//! `noex watch` against an in-process testkit server: piped JSON lines, and the live view
//! in a pseudo-terminal.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
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
    let end = Instant::now() + DEADLINE;
    while server.subscription_count() == 0 {
        assert!(Instant::now() < end, "no subscription");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = Command::new(env!("CARGO_BIN_EXE_noex"))
        .args([
            "emit",
            "order.created",
            r#"{"total": 12}"#,
            "--url",
            &server.url(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let line = watch.until("the event", |v| v.get("topic").is_some());
    assert_eq!(line["topic"], "order.created");
    assert_eq!(line["event"]["data"], json!({"total": 12}));
    assert_eq!(line["event"]["topic"], "order.created");
}

/// The screen of a program in a pseudo-terminal, parsed as it arrives.
struct Screen {
    parser: Arc<Mutex<vt100::Parser>>,
}

impl Screen {
    fn text(&self) -> String {
        self.parser.lock().unwrap().screen().contents()
    }

    fn wait_for(&self, what: impl Fn(&str) -> bool, label: &str) -> String {
        let end = Instant::now() + DEADLINE;
        loop {
            let text = self.text();
            if what(&text) {
                return text;
            }
            assert!(Instant::now() < end, "screen never showed {label}:\n{text}");
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

#[test]
fn watch_query_live_view_in_a_pty() {
    use portable_pty::{native_pty_system, CommandBuilder, PtySize};

    let server = server();
    server
        .insert("users", json!({"name": "Alice", "age": 30}))
        .unwrap();
    let (rows, cols) = (12, 100);
    let pair = native_pty_system()
        .openpty(PtySize {
            rows,
            cols,
            pixel_width: 0,
            pixel_height: 0,
        })
        .expect("pty");
    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_noex"));
    cmd.args(["watch", "query", "users", "--url", &server.url()]);
    cmd.env("TERM", "xterm-256color");
    cmd.env_remove("NOEX_TOKEN");
    let mut child = pair.slave.spawn_command(cmd).expect("noex starts");
    drop(pair.slave);
    let mut reader = pair.master.try_clone_reader().expect("reader");
    let mut writer = pair.master.take_writer().expect("writer");
    let parser = Arc::new(Mutex::new(vt100::Parser::new(
        std::num::NonZeroU16::new(rows).unwrap(),
        std::num::NonZeroU16::new(cols).unwrap(),
        0,
    )));
    let feed = parser.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                return;
            }
            feed.lock().unwrap().process(&buf[..n]);
        }
    });
    let screen = Screen { parser };
    screen.wait_for(|s| s.contains("Alice") && s.contains("1 records"), "Alice");
    server
        .insert("users", json!({"name": "Bob", "age": 41}))
        .unwrap();
    let text = screen.wait_for(|s| s.contains("Bob") && s.contains("2 records"), "Bob");
    assert!(text.contains("noex watch query users"), "{text}");
    assert!(text.contains("● connected"), "{text}");
    assert!(text.contains("reconnects: 0"), "{text}");
    assert!(text.contains("name") && text.contains("age"), "{text}");
    // The row that changed in the last update is highlighted; the others are not.
    let highlighted = |name: &str| {
        let p = screen.parser.lock().unwrap();
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
    screen.wait_for(
        |s| s.contains("Carol") && s.contains("reconnects: 1") && s.contains("restored"),
        "Carol after the restart",
    );
    writer.write_all(b"q").unwrap();
    writer.flush().unwrap();
    let end = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("noex did not quit on q");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
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
