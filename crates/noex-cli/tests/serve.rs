//! End-to-end tests of the `noex` binary: fixture startup, WebSocket welcome, config
//! errors, signals, the control channels and chaos.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(10);

/// A running `noex` whose stdout lines arrive on a channel; killed on drop.
struct Noex {
    child: Child,
    lines: mpsc::Receiver<String>,
    stdin: Option<ChildStdin>,
}

impl Noex {
    fn start(args: &[&str]) -> Noex {
        let mut child = Command::new(env!("CARGO_BIN_EXE_noex"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("noex starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Noex {
            child,
            lines,
            stdin,
        }
    }

    fn line(&self) -> String {
        self.lines
            .recv_timeout(WAIT)
            .expect("a line on stdout in time")
    }

    fn send(&mut self, command: &str) -> String {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{command}").unwrap();
        stdin.flush().unwrap();
        self.line()
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "noex did not exit in {limit:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Noex {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run `noex` to completion: (status, stdout, stderr).
fn run(args: &[&str]) -> (ExitStatus, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_noex"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("noex runs");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(url: &str) -> (Ws, Value) {
    let (mut ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
        .await
        .expect("connect in time")
        .expect("connects");
    let welcome = next_json(&mut ws).await;
    (ws, welcome)
}

/// The next text frame as JSON (pings answered by the library are skipped).
async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame in time")
            .expect("stream open")
            .expect("no error");
        if let Message::Text(t) = msg {
            return serde_json::from_str(&t).expect("JSON");
        }
    }
}

/// Wait for the close frame; its code.
async fn close_code(ws: &mut Ws) -> Option<u16> {
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("closes in time")
        {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return None,
        }
    }
}

#[tokio::test]
async fn fixture_prints_the_url_first_and_serves() {
    let fixture = r#"{"buckets": [{"name": "users", "schema": {"name": {"type": "string", "required": true}}}],
        "queries": [{"name": "all-users", "type": "all", "bucket": "users"}]}"#;
    let mut noex = Noex::start(&["serve", "--fixture", fixture]);
    let url = noex.line();
    assert!(url.starts_with("ws://127.0.0.1:"), "{url}");
    let (mut ws, welcome) = connect(&url).await;
    assert_eq!(welcome["type"], "welcome");
    assert_eq!(welcome["requiresAuth"], false);
    ws.send(Message::text(
        r#"{"id": 1, "type": "store.insert", "bucket": "users", "data": {"name": "a"}}"#,
    ))
    .await
    .unwrap();
    let answer = next_json(&mut ws).await;
    assert_eq!(answer["type"], "result", "{answer}");
    assert_eq!(answer["data"]["name"], "a");
    assert!(answer["data"]["id"].is_string());

    noex.signal("TERM");
    assert_eq!(close_code(&mut ws).await, Some(1000));
    assert!(noex.wait(WAIT).success());
}

#[tokio::test]
async fn fixture_auth_requires_login() {
    let fixture = r#"{"auth": {"sessions": {"tok": {"userId": "u1", "roles": ["admin"]}}}}"#;
    let noex = Noex::start(&["serve", "--fixture", fixture]);
    let (mut ws, welcome) = connect(&noex.line()).await;
    assert_eq!(welcome["requiresAuth"], true);
    ws.send(Message::text(
        r#"{"id": 1, "type": "auth.login", "token": "tok"}"#,
    ))
    .await
    .unwrap();
    let answer = next_json(&mut ws).await;
    assert_eq!(answer["data"]["userId"], "u1", "{answer}");
}

#[test]
fn fixture_errors_name_the_key() {
    let (status, stdout, stderr) = run(&["serve", "--fixture", r#"{"queries": [{"name": "q"}]}"#]);
    assert_eq!(status.code(), Some(1));
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("Error: invalid fixture: \"queries[0].bucket\" is required"),
        "{stderr}"
    );
}

#[test]
fn bad_config_file_is_refused_naming_the_key() {
    let dir = std::env::temp_dir().join(format!("noex-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.json");
    std::fs::write(
        &bad,
        r#"{"heartbeat": {"intervalMs": "fast", "timeoutMs": 1}, "prot": 1}"#,
    )
    .unwrap();
    let (status, stdout, stderr) = run(&["serve", "-c", bad.to_str().unwrap()]);
    assert_eq!(status.code(), Some(1));
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains(
        "Error loading config file: \"heartbeat.intervalMs\" must be a positive integer"
    ));
    assert!(stderr.contains("Error loading config file: unknown key \"prot\""));

    std::fs::write(&bad, "{ not json").unwrap();
    let (status, _, stderr) = run(&["serve", "--config", bad.to_str().unwrap()]);
    assert_eq!(status.code(), Some(1));
    assert!(
        stderr.starts_with("Error loading config file: invalid JSON:"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn command_line_errors_exit_1_like_the_real_cli() {
    let (status, _, stderr) = run(&["serve", "--bogus"]);
    assert_eq!(status.code(), Some(1));
    assert!(
        stderr.contains("Error: unexpected argument '--bogus' found"),
        "{stderr}"
    );
    assert!(stderr.contains("Run \"noex serve --help\" for usage information."));
    let (status, _, stderr) = run(&["serve", "--auth", "-p", "abc"]);
    assert_eq!(status.code(), Some(1));
    assert!(stderr.contains("Error: Invalid port: NaN (must be integer 0-65535)"));
    assert!(stderr.contains("Error: --admin-secret is required when --auth is enabled"));
    let (status, _, stderr) = run(&["serve", "--persistence", "sqlite"]);
    assert_eq!(status.code(), Some(1));
    assert!(
        stderr.contains("Persistence \"sqlite\" is not supported"),
        "{stderr}"
    );
}

#[test]
fn help_and_version() {
    let (status, stdout, _) = run(&["serve", "--help"]);
    assert!(status.success());
    assert!(stdout.contains("--max-connections-per-ip <n>"));
    assert!(stdout.contains("--fixture <json|@file>"));
    let (status, stdout, _) = run(&["serve", "-v"]);
    assert!(status.success());
    assert_eq!(stdout.trim(), "noex-server v0.1.0");
}

#[test]
fn secrets_are_not_printed() {
    let mut noex = Noex::start(&[
        "serve",
        "-p",
        "0",
        "-H",
        "127.0.0.1",
        "--auth",
        "--admin-secret",
        "hunter2-secret",
    ]);
    let mut banner = Vec::new();
    for _ in 0..9 {
        banner.push(noex.line());
    }
    let banner = banner.join("\n");
    assert!(banner.contains("Auth:         built-in"), "{banner}");
    assert!(!banner.contains("hunter2"));
    noex.signal("INT");
    assert!(noex.wait(WAIT).success());
    let mut rest = String::new();
    while let Ok(l) = noex.lines.recv_timeout(Duration::from_secs(2)) {
        rest.push_str(&l);
    }
    assert!(rest.contains("Shutting down..."));
}

#[tokio::test]
async fn banner_then_sigterm_stops_within_the_timeout() {
    let mut noex = Noex::start(&["serve", "--port", "0", "--host", "127.0.0.1"]);
    assert_eq!(noex.line(), "noex-server v0.1.0");
    let url_line = noex.line();
    let url = url_line
        .strip_prefix("  URL:          ")
        .expect("URL line")
        .to_string();
    let (_ws, welcome) = connect(&url).await;
    assert_eq!(welcome["type"], "welcome");
    noex.signal("TERM");
    let status = noex.wait(Duration::from_secs(5));
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn shutdown_grace_sends_the_notice() {
    let mut noex = Noex::start(&["serve", "--fixture", "{}", "--shutdown-grace", "300ms"]);
    let (mut ws, _) = connect(&noex.line()).await;
    noex.signal("TERM");
    let notice = next_json(&mut ws).await;
    assert_eq!(notice["type"], "system", "{notice}");
    assert_eq!(notice["event"], "shutdown");
    assert_eq!(notice["gracePeriodMs"], 300);
    assert_eq!(close_code(&mut ws).await, Some(1000));
    assert!(noex.wait(WAIT).success());
}

#[tokio::test]
async fn stdin_commands_inject_faults_and_eof_stops() {
    let mut noex = Noex::start(&["serve", "--fixture", "{}", "--control-stdin"]);
    let url = noex.line();
    let (mut ws, _) = connect(&url).await;
    let status = noex.send("status");
    assert!(status.starts_with("ok {"), "{status}");
    assert!(status.contains("\"connections\":1"), "{status}");
    assert_eq!(
        noex.send("bogus"),
        "error: unknown command \"bogus\" (try \"help\")"
    );
    assert_eq!(noex.send("close 4001 heartbeat_timeout"), "ok");
    assert_eq!(close_code(&mut ws).await, Some(4001));

    assert_eq!(noex.send("handshake stall"), "ok");
    let stalled = tokio::time::timeout(
        Duration::from_millis(500),
        tokio_tungstenite::connect_async(url.as_str()),
    )
    .await;
    assert!(stalled.is_err(), "handshake should stall");
    assert_eq!(noex.send("handshake normal"), "ok");
    let (_ws, welcome) = connect(&url).await;
    assert_eq!(welcome["type"], "welcome");

    drop(noex.stdin.take());
    assert!(noex.wait(WAIT).success());
}

/// Send `req` on `ws`; the answer.
async fn ask(ws: &mut Ws, req: &str) -> Value {
    ws.send(Message::text(req.to_string())).await.unwrap();
    next_json(ws).await
}

#[tokio::test]
async fn fixture_session_ttl_and_the_expire_sessions_command() {
    let fixture = r#"{"auth": {"builtIn": true, "adminSecret": "s3cret", "sessionTtl": 3600000}}"#;
    let mut noex = Noex::start(&["serve", "--fixture", fixture, "--control-stdin"]);
    let url = noex.line();
    let (mut ws, welcome) = connect(&url).await;
    let login = ask(
        &mut ws,
        r#"{"id": 1, "type": "identity.loginWithSecret", "secret": "s3cret"}"#,
    )
    .await;
    let ttl = login["data"]["expiresAt"].as_i64().expect("expiresAt")
        - welcome["serverTime"].as_i64().expect("serverTime");
    assert!((3_600_000..3_610_000).contains(&ttl), "{login}");
    let buckets = r#"{"id": 2, "type": "store.buckets"}"#;
    assert_eq!(ask(&mut ws, buckets).await["type"], "result");

    assert_eq!(noex.send("expire-sessions"), "ok");
    let answer = ask(&mut ws, buckets).await;
    assert_eq!(
        (answer["code"].as_str(), answer["message"].as_str()),
        (Some("UNAUTHORIZED"), Some("Session expired")),
        "{answer}"
    );
    let token = login["data"]["token"].as_str().expect("token");
    let (mut again, _) = connect(&url).await;
    let answer = ask(
        &mut again,
        &format!(r#"{{"id": 1, "type": "auth.login", "token": "{token}"}}"#),
    )
    .await;
    assert_eq!(answer["message"], "Invalid token", "{answer}");
}

/// A minimal HTTP request; the response body.
fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut sock = std::net::TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        sock,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    sock.read_to_string(&mut response).unwrap();
    let code = response[9..12].parse().unwrap();
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (code, body)
}

#[tokio::test]
async fn http_control_port() {
    let noex = Noex::start(&["serve", "--fixture", "{}", "--control-port", "0"]);
    let url = noex.line();
    let control = noex.line();
    let addr = control
        .strip_prefix("control http://")
        .expect("control line")
        .to_string();
    let (mut ws, _) = connect(&url).await;
    let (code, body) = http(&addr, "GET", "/status", "");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"connections\":1"));
    let (code, body) = http(&addr, "POST", "/command", "close 4003 too_many_connections");
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    assert_eq!(close_code(&mut ws).await, Some(4003));
    let (code, body) = http(&addr, "POST", "/command", "expire-sessions");
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    let (code, body) = http(&addr, "POST", "/command", "close 1005");
    assert_eq!(code, 400);
    assert!(body.starts_with("error: close code 1005 cannot be sent"));
    assert_eq!(http(&addr, "GET", "/nope", "").0, 404);
}

#[tokio::test]
async fn chaos_drops_connections() {
    let noex = Noex::start(&[
        "serve",
        "--fixture",
        "{}",
        "--chaos",
        "7",
        "--chaos-interval",
        "100ms",
        "--chaos-faults",
        "drop",
    ]);
    let (mut ws, _) = connect(&noex.line()).await;
    // Dropped without a close frame: the stream ends or errors.
    let end = tokio::time::timeout(WAIT, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(end.is_ok(), "chaos dropped the connection");
}

#[test]
fn chaos_rejects_unknown_faults() {
    let (status, _, stderr) = run(&[
        "serve",
        "--fixture",
        "{}",
        "--chaos",
        "1",
        "--chaos-faults",
        "nuke",
    ]);
    assert_eq!(status.code(), Some(1));
    assert!(stderr.contains("unknown fault \"nuke\""), "{stderr}");
}
