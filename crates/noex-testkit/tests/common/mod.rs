//! Shared helpers for the testkit's integration tests: a raw WebSocket client,
//! transcript loading, and structural comparison of frames.
#![allow(dead_code)]

use std::collections::HashMap;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Per-frame wait.
pub(crate) const STEP: Duration = Duration::from_secs(3);

/// What a test client observed.
#[derive(Debug)]
pub(crate) enum Event {
    Json(Value),
    Text(String),
    Binary(Vec<u8>),
    Close(Option<(u16, String)>),
    Ended,
}

/// A raw client.
pub(crate) struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

impl Client {
    pub(crate) async fn connect(url: &str) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("connect");
        Client { ws, next_id: 0 }
    }

    /// A client over an already connected WebSocket.
    pub(crate) fn from_ws(ws: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Client {
        Client { ws, next_id: 0 }
    }

    /// Connect and consume the welcome.
    pub(crate) async fn open(url: &str) -> Client {
        let mut c = Client::connect(url).await;
        let w = c.recv_json().await;
        assert_eq!(w["type"], "welcome", "first frame must be welcome: {w}");
        c
    }

    pub(crate) async fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::text(text.to_string()))
            .await
            .expect("send");
    }

    /// Send, reporting failure instead of panicking (the server may have closed).
    pub(crate) async fn try_send_text(&mut self, text: &str) -> bool {
        self.ws.send(Message::text(text.to_string())).await.is_ok()
    }

    pub(crate) async fn send_json(&mut self, v: &Value) {
        self.send_text(&v.to_string()).await;
    }

    pub(crate) async fn send_binary(&mut self, b: Vec<u8>) {
        self.ws.send(Message::binary(b)).await.expect("send binary");
    }

    pub(crate) async fn close(&mut self, code: u16) {
        let _ = self
            .ws
            .close(Some(CloseFrame {
                code: CloseCode::from(code),
                reason: "".into(),
            }))
            .await;
    }

    /// Next event, or panic after `wait`.
    pub(crate) async fn next_within(&mut self, wait: Duration) -> Event {
        match tokio::time::timeout(wait, self.ws.next()).await {
            Err(_) => panic!("no frame within {wait:?}"),
            Ok(None) => Event::Ended,
            Ok(Some(Err(_))) => Event::Ended,
            Ok(Some(Ok(m))) => match m {
                Message::Text(t) => match serde_json::from_str(t.as_str()) {
                    Ok(v) => Event::Json(v),
                    Err(_) => Event::Text(t.to_string()),
                },
                Message::Binary(b) => Event::Binary(b.to_vec()),
                Message::Close(f) => {
                    Event::Close(f.map(|f| (u16::from(f.code), f.reason.to_string())))
                }
                _ => Box::pin(self.next_within(wait)).await,
            },
        }
    }

    /// Whether nothing arrives within `wait`.
    pub(crate) async fn silent_for(&mut self, wait: Duration) -> bool {
        tokio::time::timeout(wait, self.ws.next()).await.is_err()
    }

    /// Next JSON frame, answering pings on the way.
    pub(crate) async fn recv_json(&mut self) -> Value {
        loop {
            match self.next_within(STEP).await {
                Event::Json(v) if v["type"] == "ping" => {
                    let ts = v["timestamp"].clone();
                    self.send_json(&json!({"type": "pong", "timestamp": ts}))
                        .await;
                }
                Event::Json(v) => return v,
                other => panic!("expected a JSON frame, got {other:?}"),
            }
        }
    }

    /// Send a request and wait for its answer; pushes that arrive first are returned too.
    pub(crate) async fn request(&mut self, mut req: Value) -> (Value, Vec<Value>) {
        self.next_id += 1;
        let id = self.next_id;
        req["id"] = json!(id);
        self.send_json(&req).await;
        let mut pushes = Vec::new();
        loop {
            let v = self.recv_json().await;
            if v["id"] == json!(id) {
                return (v, pushes);
            }
            pushes.push(v);
        }
    }

    /// The `data` of a successful answer (panics on an error answer).
    pub(crate) async fn ok(&mut self, req: Value) -> Value {
        let (v, _) = self.request(req.clone()).await;
        assert_eq!(v["type"], "result", "request {req} failed: {v}");
        v["data"].clone()
    }

    /// The `(code, message)` of an error answer (panics on success).
    pub(crate) async fn err(&mut self, req: Value) -> (String, String, Value) {
        let (v, _) = self.request(req.clone()).await;
        assert_eq!(v["type"], "error", "request {req} should fail: {v}");
        (
            v["code"].as_str().unwrap_or_default().to_string(),
            v["message"].as_str().unwrap_or_default().to_string(),
            v["details"].clone(),
        )
    }

    /// Wait for a close frame (skipping other frames) and return code and reason.
    pub(crate) async fn expect_close(&mut self, wait: Duration) -> Option<(u16, String)> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_within(left).await {
                Event::Close(c) => return c,
                Event::Ended => return None,
                _ => {}
            }
        }
    }
}

// ── transcripts ─────────────────────────────────────────────────

/// One line of a recording.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) dir: String,
    /// The frame's JSON text as recorded (key order kept).
    pub(crate) text: String,
    pub(crate) frame: Value,
    pub(crate) raw: bool,
}

/// One connection of a recording.
#[derive(Debug, Clone, Default)]
pub(crate) struct Segment {
    pub(crate) notes: Vec<String>,
    pub(crate) entries: Vec<Entry>,
    pub(crate) close: Option<(u16, String)>,
}

pub(crate) fn load(text: &str) -> Vec<Segment> {
    let mut segments = vec![Segment::default()];
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).expect("transcript line is JSON");
        let dir = v["dir"].as_str().unwrap_or_default().to_string();
        if dir == "note" {
            let note = v["frame"].as_str().unwrap_or_default().to_string();
            if let Some(rest) = note.strip_prefix("connection closed: code=") {
                let (code, reason) = rest.split_once(" reason=").unwrap_or((rest, ""));
                if let Some(seg) = segments.last_mut() {
                    seg.close = Some((code.parse().unwrap_or(0), reason.to_string()));
                }
                segments.push(Segment::default());
            } else if let Some(seg) = segments.last_mut() {
                seg.notes.push(note);
            }
            continue;
        }
        let text = line
            .find("\"frame\": ")
            .map(|i| {
                line[i + 9..line.rfind('}').unwrap_or(line.len())]
                    .trim()
                    .to_string()
            })
            .unwrap_or_default();
        let entry = Entry {
            dir,
            text,
            frame: v["frame"].clone(),
            raw: v.get("raw") == Some(&Value::Bool(true)),
        };
        if let Some(seg) = segments.last_mut() {
            seg.entries.push(entry);
        }
    }
    segments.retain(|s| !s.entries.is_empty() || !s.notes.is_empty());
    segments
}

/// The server configuration JSON from a `server config...: {...}` note.
pub(crate) fn config_note(seg: &Segment) -> Value {
    seg.notes
        .iter()
        .find_map(|n| {
            n.find('{')
                .map(|i| serde_json::from_str(&n[i..]).expect("config JSON"))
        })
        .unwrap_or(Value::Null)
}

// ── structural comparison ───────────────────────────────────────

/// Recorded generated values (uuids, tokens, event ids) mapped to the testkit's.
#[derive(Debug, Default)]
pub(crate) struct Bindings {
    map: HashMap<String, String>,
}

fn is_hex(s: &str) -> bool {
    s.chars().all(|c| c.is_ascii_hexdigit())
}

/// uuid (8-4-4-4-12 hex) or rule-engine event id (base36 `xxxxxxxx-yyyyyyyyy`).
pub(crate) fn is_generated(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let uuid = parts.len() == 5
        && parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts.iter().all(|p| is_hex(p));
    let event = parts.len() == 2
        && parts[0].len() >= 6
        && parts[1].len() == 9
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    uuid || event
}

const TIME_KEYS: &[&str] = &[
    "serverTime",
    "timestamp",
    "_createdAt",
    "_updatedAt",
    "_expiresAt",
    "createdAt",
    "updatedAt",
    "expiresAt",
    "connectedAt",
    "avgProcessingTimeMs",
];

impl Bindings {
    /// Replace recorded generated values by the testkit's in an outgoing frame.
    pub(crate) fn substitute(&self, v: &Value) -> Value {
        match v {
            Value::String(s) => {
                Value::String(self.map.get(s).cloned().unwrap_or_else(|| s.clone()))
            }
            Value::Array(a) => Value::Array(a.iter().map(|x| self.substitute(x)).collect()),
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, x)| (k.clone(), self.substitute(x)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// Replace recorded generated values in a frame's text (keeps key order).
    pub(crate) fn substitute_text(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (k, v) in &self.map {
            out = out.replace(&format!("\"{k}\""), &format!("\"{v}\""));
        }
        out
    }

    /// Compare `actual` with `expected`; `Err(path: reason)` on the first difference.
    pub(crate) fn compare(
        &mut self,
        expected: &Value,
        actual: &Value,
        path: &str,
    ) -> Result<(), String> {
        let key = path.rsplit('.').next().unwrap_or("");
        if TIME_KEYS.contains(&key) {
            return match (expected, actual) {
                (Value::Number(_), Value::Number(_)) | (Value::Null, Value::Null) => Ok(()),
                _ => Err(format!("{path}: expected {expected}, got {actual}")),
            };
        }
        match (expected, actual) {
            (Value::String(e), Value::String(a)) if e.starts_with("reference-store-") => {
                let _ = a;
                Ok(())
            }
            (Value::String(e), Value::String(a)) if is_generated(e) => match self.map.get(e) {
                Some(bound) if bound == a => Ok(()),
                Some(bound) => Err(format!("{path}: {e} was bound to {bound}, got {a}")),
                None => {
                    if self.map.values().any(|v| v == a) {
                        return Err(format!("{path}: {a} already bound to another value"));
                    }
                    self.map.insert(e.clone(), a.clone());
                    Ok(())
                }
            },
            (Value::Number(e), Value::Number(a)) => {
                if e.as_f64() == a.as_f64() {
                    Ok(())
                } else {
                    Err(format!("{path}: expected {e}, got {a}"))
                }
            }
            (Value::Array(e), Value::Array(a)) => {
                if e.len() != a.len() {
                    return Err(format!(
                        "{path}: expected {} items, got {}: {actual}",
                        e.len(),
                        a.len()
                    ));
                }
                for (i, (x, y)) in e.iter().zip(a).enumerate() {
                    self.compare(x, y, &format!("{path}[{i}]"))?;
                }
                Ok(())
            }
            (Value::Object(e), Value::Object(a)) => {
                let mut ek: Vec<&String> = e.keys().collect();
                let mut ak: Vec<&String> = a.keys().collect();
                ek.sort();
                ak.sort();
                if ek != ak {
                    return Err(format!("{path}: keys differ: expected {ek:?}, got {ak:?}"));
                }
                for (k, x) in e {
                    self.compare(x, &a[k], &format!("{path}.{k}"))?;
                }
                Ok(())
            }
            _ if expected == actual => Ok(()),
            _ => Err(format!("{path}: expected {expected}, got {actual}")),
        }
    }
}

/// Replay the client side of `seg` on `client` and compare every server frame.
pub(crate) async fn replay(client: &mut Client, seg: &Segment, b: &mut Bindings, label: &str) {
    let mut last_ping: Option<Value> = None;
    for (i, e) in seg.entries.iter().enumerate() {
        let at = format!("{label}#{i}");
        if e.dir == "c2s" {
            if e.raw {
                client.send_text(e.frame.as_str().unwrap_or_default()).await;
                continue;
            }
            if e.frame["type"] == "pong" && e.frame.get("timestamp").is_some() {
                let mut frame = e.frame.clone();
                if let Some(ts) = &last_ping {
                    frame["timestamp"] = ts.clone();
                }
                client.send_json(&frame).await;
            } else {
                client.send_text(&b.substitute_text(&e.text)).await;
            }
            continue;
        }
        let expecting_ping = e.frame["type"] == "ping";
        let actual = loop {
            match client.next_within(STEP).await {
                Event::Json(v) if v["type"] == "ping" && !expecting_ping => {
                    let ts = v["timestamp"].clone();
                    client
                        .send_json(&json!({"type": "pong", "timestamp": ts}))
                        .await;
                }
                Event::Json(v) => break v,
                other => panic!("{at}: expected {}, got {other:?}", e.frame),
            }
        };
        if expecting_ping {
            last_ping = Some(actual["timestamp"].clone());
        }
        if let Err(diff) = b.compare(&e.frame, &actual, "") {
            panic!("{at}: {diff}\n expected: {}\n actual:   {actual}", e.frame);
        }
    }
}

/// The static sessions of a recording's config note (`auth.sessions`: token → userId,
/// roles, expiresAt), for the builder.
pub(crate) fn token_sessions(config: &Value) -> Vec<noex_testkit::TokenSession> {
    config["auth"]["sessions"]
        .as_object()
        .expect("sessions")
        .iter()
        .map(|(token, s)| {
            let roles: Vec<String> = s["roles"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r.as_str().map(str::to_string))
                .collect();
            let t = noex_testkit::TokenSession::new(
                token.clone(),
                s["userId"].as_str().unwrap_or_default(),
                roles,
            );
            match s["expiresAt"].as_i64() {
                Some(at) => t.expires_at(at),
                None => t,
            }
        })
        .collect()
}
