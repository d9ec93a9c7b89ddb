//! Replays the recordings of noex-server 0.1.4 on session lifetimes
//! (`fixtures/transcripts/auth-identity-sessions.jsonl`: built-in identity with
//! `sessionTtl` 1500 ms; `auth-token-sessions.jsonl`: a token validator whose sessions
//! carry `expiresAt`) against the testkit, comparing every server frame structurally
//! (uuids and tokens bound on first sight, as in `transcripts.rs`).
//!
//! Connections: a `welcome` opens the next one; a `back on connection N` note switches
//! to connection N; a `connection closed` note closes the one in use. Waits: a
//! `waited … ms (until … past expiresAt …; client clock now T)` note is where the
//! recording waited for sessions to expire.
//!
//! - In memory, the clock follows the recording: each connection opens at its
//!   `welcome`'s `serverTime`, a wait moves the clock to the client clock it names (or by
//!   the milliseconds waited), so sessions expire by their own `expiresAt`, with no real
//!   wait. Each recorded `expiresAt` must stand for one value throughout (a login's
//!   expiry is the one `auth.login` and the whoamis report later).
//! - Over sockets (identity recording only), a wait past expiry is
//!   `TestServer::expire_sessions()`: every session alive then was past its expiry in
//!   the recording.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{Bindings, Client, Event, STEP};
use noex_testkit::memory::{MemoryOutput, MemoryServer};
use noex_testkit::{
    AuthMode, BucketDef, HeartbeatConfig, TestServer, TestServerBuilder, TokenSession,
};
use serde_json::Value;

const IDENTITY_SESSIONS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fixtures/transcripts/auth-identity-sessions.jsonl"
));
const TOKEN_SESSIONS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fixtures/transcripts/auth-token-sessions.jsonl"
));

const LIMIT: Duration = Duration::from_secs(20);

/// One line of a recording.
#[derive(Debug, Clone)]
enum Line {
    Note(String),
    /// A frame the client sent: its text (key order kept) and value.
    Send(String, Value),
    Recv(Value),
}

fn lines(text: &str) -> Vec<Line> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let v: Value = serde_json::from_str(line).expect("recording line is JSON");
            match v["dir"].as_str() {
                Some("note") => Line::Note(v["frame"].as_str().unwrap_or_default().to_string()),
                Some("c2s") => {
                    let start = line.find("\"frame\": ").expect("frame") + 9;
                    let end = line.rfind('}').unwrap_or(line.len());
                    Line::Send(line[start..end].trim().to_string(), v["frame"].clone())
                }
                _ => Line::Recv(v["frame"].clone()),
            }
        })
        .collect()
}

/// The server configuration of the first note (`server config: {...} (...)`).
fn config(text: &str) -> Value {
    let Some(Line::Note(note)) = lines(text).into_iter().next() else {
        panic!("the recording starts with its config note");
    };
    let start = note.find('{').expect("config JSON");
    serde_json::Deserializer::from_str(&note[start..])
        .into_iter::<Value>()
        .next()
        .and_then(Result::ok)
        .expect("config JSON")
}

/// The number in `text` after `marker`.
fn number_after(text: &str, marker: &str) -> Option<i64> {
    let rest = &text[text.find(marker)? + marker.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// What a note asks of the replay.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// Continue on connection N (1-based).
    Switch(usize),
    /// The client closed the connection in use.
    Close,
    /// The recording waited `ms`; `until` is the client clock afterwards; `expiry` says
    /// whether it waited for sessions to expire.
    Wait {
        ms: i64,
        until: Option<i64>,
        expiry: bool,
    },
    Nothing,
}

fn step(note: &str) -> Step {
    if let Some(n) = number_after(note, "back on connection ") {
        return Step::Switch(usize::try_from(n).expect("connection number"));
    }
    if note.starts_with("connection closed: ") {
        return Step::Close;
    }
    if let Some(ms) = number_after(note, "waited ") {
        return Step::Wait {
            ms,
            until: number_after(note, "client clock now "),
            expiry: note.contains("past expiresAt"),
        };
    }
    Step::Nothing
}

/// Builder for a recording's config: buckets as the launcher defines them, built-in
/// identity with `sessionTtl`, or static sessions plus one session per `<user>:<ms>`
/// token the recording logs in with (the launcher's validator gives it `expiresAt` ms).
fn builder(text: &str) -> TestServerBuilder {
    let config = config(text);
    let mut b = TestServer::builder();
    for bucket in config["buckets"].as_array().into_iter().flatten() {
        let mut def = BucketDef::new(bucket["name"].as_str().unwrap_or_default());
        for (field, schema) in bucket["schema"].as_object().into_iter().flatten() {
            def = def.field(field.clone(), schema.clone());
        }
        b = b.bucket(def);
    }
    if config["rules"] == false {
        b = b.rules(false);
    }
    let hb = &config["heartbeat"];
    if let (Some(interval_ms), Some(timeout_ms)) =
        (hb["intervalMs"].as_u64(), hb["timeoutMs"].as_u64())
    {
        b = b.heartbeat_config(HeartbeatConfig {
            interval_ms,
            timeout_ms,
        });
    }
    let auth = &config["auth"];
    if auth["builtIn"] == true {
        b = b.auth(AuthMode::identity(
            auth["adminSecret"].as_str().unwrap_or_default(),
        ));
        if let Some(ttl) = auth["sessionTtl"].as_u64() {
            b = b.session_ttl(Duration::from_millis(ttl));
        }
    } else {
        let mut sessions = common::token_sessions(&config);
        let roles: Vec<String> = auth["expiringTokens"]["roles"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r.as_str().map(str::to_string))
            .collect();
        let mut seen: Vec<String> = Vec::new();
        for line in lines(text) {
            let Line::Send(_, frame) = line else { continue };
            let Some(token) = frame["token"].as_str() else {
                continue;
            };
            let Some((user, ms)) = token.split_once(':') else {
                continue;
            };
            let Ok(ms) = ms.parse::<i64>() else { continue };
            if !seen.iter().any(|t| t == token) {
                seen.push(token.to_string());
                sessions.push(TokenSession::new(token, user, roles.clone()).expires_at(ms));
            }
        }
        b = b.auth(AuthMode::Tokens(sessions));
    }
    b
}

/// Checks that each recorded `expiresAt` stands for one value of the testkit's.
#[derive(Default)]
struct Expiries(HashMap<i64, i64>);

impl Expiries {
    fn check(&mut self, expected: &Value, actual: &Value, at: &str) {
        match (expected, actual) {
            (Value::Object(e), Value::Object(a)) => {
                for (k, x) in e {
                    let y = &a[k];
                    if k == "expiresAt" {
                        if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                            let bound = *self.0.entry(x).or_insert(y);
                            assert_eq!(bound, y, "{at}: expiresAt {x} was {bound} before");
                        }
                    } else {
                        self.check(x, y, at);
                    }
                }
            }
            (Value::Array(e), Value::Array(a)) => {
                for (x, y) in e.iter().zip(a) {
                    self.check(x, y, at);
                }
            }
            _ => {}
        }
    }
}

// ── in memory, the clock following the recording ──────────────

fn replay_in_memory(text: &str, label: &str) -> usize {
    let all = lines(text);
    let start = all
        .iter()
        .find_map(|l| match l {
            Line::Recv(v) if v["type"] == "welcome" => v["serverTime"].as_i64(),
            _ => None,
        })
        .expect("a welcome");
    let mut server: MemoryServer = builder(text).start_in_memory(start).expect("start");
    let ttl = config(text)["auth"]["sessionTtl"].as_i64();
    let mut conns: Vec<u64> = Vec::new();
    let mut current = 0usize;
    let mut b = Bindings::default();
    let mut expiries = Expiries::default();
    for (i, line) in all.iter().enumerate() {
        let at = format!("{label}:{}", i + 1);
        match line {
            Line::Note(n) => match step(n) {
                Step::Switch(n) => current = n - 1,
                Step::Close => server.receive_close(conns[current], server.now_ms()),
                Step::Wait { ms, until, .. } => {
                    let now = until.unwrap_or(server.now_ms() + ms);
                    server.handle_timeout(now);
                }
                Step::Nothing => {}
            },
            Line::Send(text, _) => {
                server.receive(conns[current], server.now_ms(), &b.substitute_text(text));
            }
            Line::Recv(expected) => {
                if expected["type"] == "welcome" {
                    let t = expected["serverTime"].as_i64().expect("serverTime");
                    conns.push(server.open(t));
                    current = conns.len() - 1;
                }
                let actual = match server.poll_output() {
                    Some((c, MemoryOutput::Text(t))) => {
                        assert_eq!(c, conns[current], "{at}: frame on another connection: {t}");
                        serde_json::from_str::<Value>(&t).expect("JSON")
                    }
                    other => panic!("{at}: expected {expected}, got {other:?}"),
                };
                if let Err(d) = b.compare(expected, &actual, "") {
                    panic!("{at}: {d}\n expected: {expected}\n actual:   {actual}");
                }
                if expected["type"] == "welcome" {
                    assert_eq!(actual["serverTime"], expected["serverTime"], "{at}");
                }
                expiries.check(expected, &actual, &at);
                // A session made now lives sessionTtl from now.
                if let (Some(ttl), Some(token)) = (ttl, actual["data"]["token"].as_str()) {
                    assert!(!token.is_empty());
                    assert_eq!(actual["data"]["expiresAt"], server.now_ms() + ttl, "{at}");
                }
            }
        }
    }
    assert_eq!(server.poll_output(), None, "{label}: nothing more is sent");
    conns.len()
}

#[test]
fn identity_sessions_in_memory() {
    assert_eq!(replay_in_memory(IDENTITY_SESSIONS, "identity-sessions"), 12);
}

#[test]
fn token_sessions_in_memory() {
    assert_eq!(replay_in_memory(TOKEN_SESSIONS, "token-sessions"), 3);
}

// ── over sockets, expire_sessions() for the waits ───────────────

#[tokio::test]
async fn identity_sessions_over_sockets() {
    tokio::time::timeout(LIMIT, async {
        let server = builder(IDENTITY_SESSIONS).start().expect("start");
        let mut conns: Vec<Client> = Vec::new();
        let mut current = 0usize;
        let mut b = Bindings::default();
        let mut expired = 0;
        for (i, line) in lines(IDENTITY_SESSIONS).iter().enumerate() {
            let at = format!("identity-sessions:{}", i + 1);
            match line {
                Line::Note(n) => match step(n) {
                    Step::Switch(n) => current = n - 1,
                    Step::Close => conns[current].close(1000).await,
                    Step::Wait { expiry: true, .. } => {
                        server.expire_sessions();
                        expired += 1;
                    }
                    Step::Wait { .. } | Step::Nothing => {}
                },
                Line::Send(text, _) => conns[current].send_text(&b.substitute_text(text)).await,
                Line::Recv(expected) => {
                    if expected["type"] == "welcome" {
                        conns.push(Client::connect(&server.url()).await);
                        current = conns.len() - 1;
                    }
                    let actual = match conns[current].next_within(STEP).await {
                        Event::Json(v) => v,
                        other => panic!("{at}: expected {expected}, got {other:?}"),
                    };
                    if let Err(d) = b.compare(expected, &actual, "") {
                        panic!("{at}: {d}\n expected: {expected}\n actual:   {actual}");
                    }
                }
            }
        }
        assert_eq!((conns.len(), expired), (12, 5));
    })
    .await
    .expect("replay timed out");
}

#[test]
fn notes_are_understood() {
    assert_eq!(
        step("d. back on connection 2: wait until past"),
        Step::Switch(2)
    );
    assert_eq!(step("connection closed: code=1000 reason="), Step::Close);
    assert_eq!(
        step("waited 1694 ms (until 200 ms past expiresAt = 1796565252841; client clock now 1796565253043)"),
        Step::Wait { ms: 1694, until: Some(1_796_565_253_043), expiry: true }
    );
    assert_eq!(
        step("waited 300 ms before refreshing (session still valid)"),
        Step::Wait {
            ms: 300,
            until: None,
            expiry: false
        }
    );
    assert_eq!(step("c. connection 3 (new): auth.login"), Step::Nothing);
}
