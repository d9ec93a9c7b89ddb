//! Replays the recordings of noex-server 0.1.4 on edge cases (`fixtures/transcripts/`,
//! see the notes at the top of each) against the testkit and compares every server frame
//! structurally with the recorded one. Varying values (ids, timestamps, uuids,
//! `retryAfterMs` and the number in its message) are normalised as in `transcripts.rs`.
//!
//! The recordings are replayed line by line over as many connections as they show: a
//! `welcome` opens the next connection, a request with an id from 100 (200, ...) goes to
//! the second (third, ...) connection, anything else to the connection last used; a
//! `raw text frame sent: …` note sends that text; a close note other than a client's
//! 1000 is expected from the server.

mod common;

use std::time::Duration;

use common::{Bindings, Client, Event, STEP};
use noex_testkit::{
    AuthMode, BucketDef, HeartbeatConfig, QueryDef, RateLimit, TestServer, TestServerBuilder,
    TokenSession,
};
use serde_json::{json, Value};

const LIMIT: Duration = Duration::from_secs(30);

macro_rules! recording {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/transcripts/",
            $name,
            ".jsonl"
        ))
    };
}

/// One line of a recording.
#[derive(Debug, Clone)]
enum Line {
    Note(String),
    /// A frame sent: its text (key order kept) and value.
    Send(String, Value),
    /// A raw text frame sent.
    Raw(String),
    Recv(Value),
}

fn lines(text: &str) -> Vec<Line> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let v: Value = serde_json::from_str(line).expect("recording line is JSON");
            match v["dir"].as_str() {
                Some("note") => {
                    let note = v["frame"].as_str().unwrap_or_default().to_string();
                    match note.strip_prefix("raw text frame sent: ") {
                        Some(raw) => Line::Raw(raw.to_string()),
                        None => Line::Note(note),
                    }
                }
                Some("c2s") => {
                    let text = line
                        .find("\"frame\": ")
                        .map(|i| line[i + 9..line.rfind('}').unwrap_or(line.len())].trim())
                        .unwrap_or_default()
                        .to_string();
                    Line::Send(text, v["frame"].clone())
                }
                _ => Line::Recv(v["frame"].clone()),
            }
        })
        .collect()
}

/// The connection a request id belongs to (ids 100-199: the second, ...).
fn conn_of(id: &Value) -> Option<usize> {
    let id = id.as_f64()?;
    (id.fract() == 0.0 && (100.0..1000.0).contains(&id)).then(|| (id / 100.0) as usize)
}

/// What a note asks the replay to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hook {
    Nothing,
    Sleep(u64),
    /// End every session now (`TestServer::expire_sessions`), where the recording waited
    /// for them to expire.
    ExpireSessions,
    /// Revoke the user's sessions once the next answer has arrived.
    RevokeAfterAnswer,
}

/// A frame's recorded value made comparable with what the testkit sent: the number in
/// `Rate limit exceeded. Retry after Nms` varies.
fn normalise(expected: &Value, actual: &Value) -> Value {
    let mut e = expected.clone();
    let prefix = "Rate limit exceeded. Retry after ";
    if let (Some(em), Some(am)) = (e["message"].as_str(), actual["message"].as_str()) {
        let shape = |m: &str| {
            m.strip_prefix(prefix)
                .and_then(|r| r.strip_suffix("ms"))
                .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
        };
        if shape(em) && shape(am) {
            e["message"] = actual["message"].clone();
            if e["details"]["retryAfterMs"].is_number()
                && actual["details"]["retryAfterMs"].is_number()
            {
                e["details"]["retryAfterMs"] = actual["details"]["retryAfterMs"].clone();
            }
        }
    }
    e
}

struct Replay<'a> {
    url: String,
    server: &'a TestServer,
    conns: Vec<Client>,
    current: usize,
    b: Bindings,
    /// Last ping: recorded timestamp and the one the testkit sent.
    last_ping: Option<(f64, Value)>,
    /// Connections the server closed.
    closed: Vec<usize>,
    label: &'a str,
}

impl<'a> Replay<'a> {
    fn new(server: &'a TestServer, label: &'a str) -> Self {
        Replay {
            url: server.url(),
            server,
            conns: Vec::new(),
            current: 0,
            b: Bindings::default(),
            last_ping: None,
            closed: Vec::new(),
            label,
        }
    }

    /// A pong's timestamp: the same offset from the last ping as recorded (a far-future
    /// one is kept).
    fn pong(&self, frame: &Value) -> Value {
        let mut f = frame.clone();
        if let (Some(ts), Some((rec, actual))) = (frame["timestamp"].as_f64(), &self.last_ping) {
            if (ts - rec).abs() < 1e9 {
                let a = actual.as_f64().unwrap_or(0.0) + (ts - rec);
                f["timestamp"] = json!(a as i64);
            }
        }
        f
    }

    async fn run(&mut self, lines: &[Line], hook: impl Fn(&str) -> Hook) {
        let mut revoke_pending = false;
        for (i, line) in lines.iter().enumerate() {
            let at = format!("{}#{i}", self.label);
            match line {
                Line::Note(n) => {
                    if let Some(rest) = n.strip_prefix("connection closed: code=") {
                        let (code, reason) = rest.split_once(" reason=").unwrap_or((rest, ""));
                        if code != "1000" {
                            let code: u16 = code.parse().unwrap_or(0);
                            let got = self.conns[self.current].expect_close(STEP).await;
                            assert_eq!(got, Some((code, reason.to_string())), "{at}: close");
                            self.closed.push(self.current);
                        }
                        continue;
                    }
                    match hook(n) {
                        Hook::Nothing => {}
                        Hook::Sleep(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                        Hook::ExpireSessions => self.server.expire_sessions(),
                        Hook::RevokeAfterAnswer => revoke_pending = true,
                    }
                }
                Line::Raw(text) => self.conns[self.current].send_text(text).await,
                Line::Send(text, frame) => {
                    if let Some(c) = conn_of(&frame["id"]) {
                        self.current = c;
                    } else if frame.get("id").is_some_and(|id| id.is_number()) {
                        self.current = 0;
                    }
                    if frame["type"] == "pong" && frame["timestamp"].is_number() {
                        let f = self.pong(frame);
                        self.conns[self.current].send_json(&f).await;
                    } else {
                        let t = self.b.substitute_text(text);
                        self.conns[self.current].send_text(&t).await;
                    }
                }
                Line::Recv(expected) => {
                    if expected["type"] == "welcome" {
                        self.conns.push(Client::connect(&self.url).await);
                        self.current = self.conns.len() - 1;
                    } else if let Some(c) = conn_of(&expected["id"]) {
                        self.current = c;
                    } else if expected["id"].is_number() {
                        self.current = 0;
                    }
                    let actual = match self.conns[self.current].next_within(STEP).await {
                        Event::Json(v) => v,
                        other => panic!("{at}: expected {expected}, got {other:?}"),
                    };
                    if expected["type"] == "ping" {
                        if let Some(ts) = expected["timestamp"].as_f64() {
                            self.last_ping = Some((ts, actual["timestamp"].clone()));
                        }
                    }
                    let e = normalise(expected, &actual);
                    if let Err(diff) = self.b.compare(&e, &actual, "") {
                        panic!("{at}: {diff}\n expected: {expected}\n actual:   {actual}");
                    }
                    if revoke_pending && actual["type"] == "result" {
                        revoke_pending = false;
                        let user = actual["data"]["userId"].as_str().unwrap_or_default();
                        assert_eq!(self.server.revoke_session(user), 1, "{at}: revoked");
                    }
                }
            }
        }
    }
}

impl Replay<'_> {
    /// Nothing more arrives on the open connections (no push the recording lacks).
    async fn assert_quiet(&mut self) {
        for (i, c) in self.conns.iter_mut().enumerate() {
            if !self.closed.contains(&i) {
                assert!(
                    c.silent_for(Duration::from_millis(150)).await,
                    "{}: connection {i} got an unrecorded frame",
                    self.label
                );
            }
        }
    }
}

async fn replay_all(server: &TestServer, text: &str, label: &str) -> Vec<Client> {
    let mut r = Replay::new(server, label);
    r.run(&lines(text), |_| Hook::Nothing).await;
    r.assert_quiet().await;
    r.conns
}

async fn run<F: std::future::Future<Output = ()>>(f: F) {
    tokio::time::timeout(LIMIT, f)
        .await
        .expect("test timed out");
}

// ── rules ────────────────────────────────────────────────────────

#[tokio::test]
async fn rules_topic_patterns() {
    run(async {
        let server = TestServer::builder().start().expect("start");
        replay_all(
            &server,
            recording!("rules-topic-patterns"),
            "rules-topic-patterns",
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn rules_fact_patterns() {
    run(async {
        let server = TestServer::builder().start().expect("start");
        replay_all(
            &server,
            recording!("rules-fact-patterns"),
            "rules-fact-patterns",
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn rules_versions() {
    run(async {
        let server = TestServer::builder().start().expect("start");
        replay_all(&server, recording!("rules-versions"), "rules-versions").await;
    })
    .await;
}

#[tokio::test]
async fn rules_actions() {
    run(async {
        let server = TestServer::builder().start().expect("start");
        replay_all(&server, recording!("rules-actions"), "rules-actions").await;
    })
    .await;
}

#[tokio::test]
async fn rules_actions_advanced() {
    run(async {
        let server = TestServer::builder().start().expect("start");
        replay_all(
            &server,
            recording!("rules-actions-advanced"),
            "rules-actions-advanced",
        )
        .await;
    })
    .await;
}

// ── store ────────────────────────────────────────────────────────

#[tokio::test]
async fn store_filters() {
    run(async {
        let server = TestServer::builder()
            .bucket_json(
                "items",
                json!({
                    "key": "name",
                    "schema": {
                        "name": {"type": "string", "required": true},
                        "n": {"type": "number"},
                        "s": {"type": "string"},
                        "tags": {"type": "array"},
                        "meta": {"type": "object"},
                        "opt": {"type": "string"},
                        "code": {"type": "string", "pattern": "^[A-Z]{3}$"}
                    },
                    "indexes": ["s"]
                }),
            )
            .start()
            .expect("start");
        replay_all(&server, recording!("store-filters"), "store-filters").await;
    })
    .await;
}

#[tokio::test]
async fn store_subscriptions_admin() {
    run(async {
        let server = TestServer::builder().start().expect("start");
        replay_all(
            &server,
            recording!("store-subscriptions-admin"),
            "store-subscriptions-admin",
        )
        .await;
    })
    .await;
}

/// The reference launcher's configuration (as in `basic.jsonl`).
fn launcher(b: TestServerBuilder) -> TestServerBuilder {
    b.bucket(
        BucketDef::new("users")
            .field("name", json!({"type": "string", "required": true}))
            .field("age", json!({"type": "number"}))
            .field("role", json!({"type": "string", "default": "user"})),
    )
    .query("all-users", QueryDef::all("users"))
    .query("users-by-role", QueryDef::where_param("users", "role"))
    .query("user-count", QueryDef::count("users"))
}

#[tokio::test]
async fn store_subscribe_params() {
    run(async {
        let text = recording!("store-subscribe-params");
        assert!(text.contains("users-by-role") && text.contains("reads params[field]"));
        let server = launcher(TestServer::builder()).start().expect("start");
        replay_all(&server, text, "store-subscribe-params").await;
    })
    .await;
}

// ── limits ───────────────────────────────────────────────────────

fn users() -> BucketDef {
    BucketDef::new("users").field("name", json!({"type": "string"}))
}

#[tokio::test]
async fn limits_ratelimit() {
    run(async {
        let text = recording!("limits-ratelimit");
        assert!(text.contains("rateLimit: {maxRequests: 3, windowMs: 1000}"));
        let server = TestServer::builder()
            .bucket(users())
            .rate_limit(RateLimit::new(3, 1000))
            .start()
            .expect("start");
        let mut r = Replay::new(&server, "limits-ratelimit");
        r.run(&lines(text), |n| {
            if n.starts_with("after the window (1.1 s)") {
                Hook::Sleep(1100)
            } else {
                Hook::Nothing
            }
        })
        .await;
        r.assert_quiet().await;
        assert_eq!(r.conns.len(), 2);
    })
    .await;
}

#[tokio::test]
async fn limits_heartbeat() {
    run(async {
        let text = recording!("limits-heartbeat");
        assert!(text.contains("heartbeat: {intervalMs: 300, timeoutMs: 50}"));
        let server = TestServer::builder()
            .heartbeat_config(HeartbeatConfig {
                interval_ms: 300,
                timeout_ms: 50,
            })
            .start()
            .expect("start");
        let mut r = Replay::new(&server, "limits-heartbeat");
        r.run(&lines(text), |_| Hook::Nothing).await;
        // The second connection is still open after its unanswered pings.
        let c = r.conns.last_mut().expect("second connection");
        c.send_json(&json!({"id": 1, "type": "server.stats"})).await;
        loop {
            match c.next_within(STEP).await {
                Event::Json(v) if v["type"] == "ping" => continue,
                Event::Json(v) => {
                    assert_eq!(v["id"], 1, "{v}");
                    break;
                }
                other => panic!("expected an answer, got {other:?}"),
            }
        }
    })
    .await;
}

// ── auth ─────────────────────────────────────────────────────────

/// The sessions of `auth-optional-permissions.jsonl` (also used by `auth-required`).
fn sessions() -> Vec<TokenSession> {
    let text = recording!("auth-optional-permissions");
    let note: Value = serde_json::from_str(text.lines().next().unwrap_or_default()).expect("note");
    let note = note["frame"].as_str().unwrap_or_default();
    let start = note.find('{').unwrap_or(0);
    let config: Value = serde_json::Deserializer::from_str(&note[start..])
        .into_iter::<Value>()
        .next()
        .and_then(Result::ok)
        .expect("config JSON");
    common::token_sessions(&config)
}

#[tokio::test]
async fn auth_required() {
    run(async {
        let server = TestServer::builder()
            .bucket(users())
            .auth(AuthMode::Tokens(sessions()))
            .start()
            .expect("start");
        replay_all(&server, recording!("auth-required"), "auth-required").await;
    })
    .await;
}

#[tokio::test]
async fn auth_session_expiry_and_revocation() {
    run(async {
        let server = TestServer::builder()
            .bucket(users())
            .auth(AuthMode::Tokens(vec![TokenSession::new(
                "short-token",
                "u1",
                ["admin"],
            )
            .expires_in(Duration::from_millis(300))]))
            .start()
            .expect("start");
        let mut r = Replay::new(&server, "auth-session-expiry");
        r.run(&lines(recording!("auth-session-expiry")), |n| {
            if n == "400 ms later" {
                // The 300 ms session has expired; no need to wait for it.
                Hook::ExpireSessions
            } else if n.contains("the server calls revokeSession(\"u1\")") {
                Hook::RevokeAfterAnswer
            } else {
                Hook::Nothing
            }
        })
        .await;
        r.assert_quiet().await;
        assert_eq!(r.conns.len(), 3);
    })
    .await;
}

// ── procedures, protocol ─────────────────────────────────────────

#[tokio::test]
async fn procedures_timeout() {
    run(async {
        let server = TestServer::builder()
            .bucket(users())
            .rules(false)
            .procedure_default_timeout_ms(5000)
            .start()
            .expect("start");
        replay_all(
            &server,
            recording!("procedures-timeout"),
            "procedures-timeout",
        )
        .await;
    })
    .await;
}

#[tokio::test]
async fn protocol_edge() {
    run(async {
        let text = recording!("protocol-edge");
        let server = TestServer::builder()
            .bucket(users())
            .max_connections_per_ip(2)
            .start()
            .expect("start");
        let conns = replay_all(&server, text, "protocol-edge").await;
        assert_eq!(conns.len(), 2);
        // The third concurrent connection: handshake, no welcome, close 4003.
        assert!(text.contains(
            "third connection: frames received []; closed code=4003 reason=too_many_connections"
        ));
        let mut third = Client::connect(&server.url()).await;
        match third.next_within(STEP).await {
            Event::Close(c) => assert_eq!(c, Some((4003, "too_many_connections".into()))),
            other => panic!("expected close 4003, got {other:?}"),
        }
        drop(conns);
    })
    .await;
}
