//! The bodies of the fuzz targets, shared by `fuzz/fuzz_targets/*.rs` (cargo-fuzz) and by
//! `tests/fuzz_corpus.rs` and `tests/properties.rs` (stable Rust), so CI runs them too.
//!
//! `core_script` drives a whole `ClientCore` through an arbitrary script: the caller's
//! intents, a model transport (it writes frames in order, drops those the core no longer
//! wants, and reports what it wrote), a model server that answers (rightly or wrongly) what
//! reached it, and jumps in time. It checks invariants after every step and at the end.
#![allow(dead_code)]

use arbitrary::Arbitrary;
use noex_proto::codec::{decode, encode_pong};
use noex_proto::ops::{self, OpKind, Operation};
use noex_proto::ServerFrame;
use noex_proto::{
    Auth, ClientCore, Config, ConnectionId, ConnectionState, Delivery, Event, Input, Liveness,
    Output, RequestError, RequestId, RequestOptions, Secret, SubscriptionEvent, SubscriptionId,
    SubscriptionSpec,
};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

/// Target `decode_frame`: any bytes, as a text frame, must decode or fail cleanly.
pub(crate) fn decode_frame(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match decode(text) {
        Ok(ServerFrame::Ping { timestamp }) => {
            // The pong carries the same timestamp text, and is JSON.
            let pong = encode_pong(&timestamp);
            assert_eq!(
                pong,
                format!(r#"{{"type":"pong","timestamp":{}}}"#, timestamp.json())
            );
            valid_json(&pong);
        }
        Ok(ServerFrame::Result { data, .. }) => valid_json(data.json()),
        Ok(ServerFrame::Error { error, .. }) => {
            let _ = error.retry_after();
            // Unknown codes are kept verbatim.
            assert_eq!(
                noex_proto::ErrorCode::parse(error.code.as_str()),
                error.code
            );
        }
        Ok(_) | Err(_) => {}
    }
    // The whole core must survive the frame too, on a ready connection.
    let base = Instant::now();
    let mut core = ClientCore::new(Config::new("ws://fuzz"), 0);
    core.connect(base);
    let conn = ConnectionId(1);
    core.handle_input(base, conn, Input::Opened);
    core.handle_input(
        base,
        conn,
        Input::Frame(r#"{"type":"welcome","version":"1.0.0","requiresAuth":false}"#),
    );
    let _ = core.subscribe(base, SubscriptionSpec::query("q", None));
    let _ = core.request(base, ops::store::all("b"));
    core.handle_input(base, conn, Input::Frame(text));
    while let Some(out) = core.poll_output() {
        if let Output::Send { text, .. } = out {
            valid_json(&text);
        }
    }
}

/// Checks that `text` is JSON. Numbers beyond `f64` (`1e400`) are syntactically valid JSON
/// that `serde_json::Value` refuses; `RawValue` keeps them, so they are allowed here.
fn valid_json(text: &str) {
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
        panic!("not JSON ({e}): {text:?}");
    }
}

/// One step of a script.
#[derive(Arbitrary, Debug, Clone, PartialEq)]
pub(crate) enum Step {
    /// The caller asks to connect.
    Connect,
    /// The caller sends request number `op` of [`op_table`].
    Request {
        op: u8,
        timeout_ms: Option<u16>,
        retry: Option<bool>,
    },
    /// The caller subscribes to query `q{name}` (or rules pattern `p{name}.*`).
    Subscribe {
        rules: bool,
        name: u8,
    },
    /// The caller drops its `pick`-th live subscription.
    Unsubscribe {
        pick: u8,
    },
    /// The caller withdraws its `pick`-th accepted request.
    Cancel {
        pick: u8,
    },
    /// The transport opened the connection.
    Opened,
    /// Opening failed.
    ConnectFailed,
    /// The server says welcome.
    Welcome {
        requires_auth: bool,
    },
    /// The server answers the `pick`-th unanswered request of this connection.
    Answer {
        pick: u8,
        ok: bool,
        shape: u8,
    },
    /// The server answers a raw id (maybe never issued).
    AnswerId {
        id: u16,
        ok: bool,
    },
    /// The server pushes on one of its subscription ids (or an unknown one).
    Push {
        pick: u8,
    },
    /// Heartbeat.
    Ping {
        timestamp: u32,
    },
    /// Garbage text: one of [`GARBAGE`], or a few arbitrary bytes.
    Garbage {
        pick: u8,
        bytes: [u8; 8],
    },
    /// A binary frame of `len` bytes.
    Binary {
        len: u8,
    },
    /// The transport writes the frames handed out, up to `back` frames before the last,
    /// and reports them written.
    Written {
        back: u8,
    },
    /// The server or the network closes the connection.
    ServerClose {
        code: u8,
    },
    /// `system` frames.
    Shutdown,
    SessionRevoked,
    /// Time passes.
    Advance {
        ms: u16,
    },
    /// A long pause (seconds).
    Sleep {
        secs: u8,
    },
    /// Input on an old connection.
    Stale,
    /// The caller closes the client.
    Close,
}

/// A whole script: a configuration and its steps.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Script {
    pub seed: u64,
    pub queue: bool,
    pub retry_reads: bool,
    pub auth: u8,
    pub liveness: u8,
    pub retry_initial: bool,
    pub steps: Vec<Step>,
}

/// Steps are read until the input runs out (at most [`MAX_STEPS`]), so every byte counts.
impl<'a> Arbitrary<'a> for Script {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        let mut script = Script {
            seed: u.arbitrary()?,
            queue: u.arbitrary()?,
            retry_reads: u.arbitrary()?,
            auth: u.arbitrary()?,
            liveness: u.arbitrary()?,
            retry_initial: u.arbitrary()?,
            steps: Vec::new(),
        };
        while !u.is_empty() && script.steps.len() < MAX_STEPS {
            script.steps.push(u.arbitrary()?);
        }
        Ok(script)
    }
}

/// The longest script.
pub(crate) const MAX_STEPS: usize = 400;

/// The operations a script can send: reads and writes, logins included.
pub(crate) fn op_table(n: u8) -> Operation {
    match n % 14 {
        0 => ops::store::all("users"),
        1 => ops::store::get("users", json!("k1")),
        2 => ops::store::insert("users", json!({"name": "A"})),
        3 => ops::store::update("users", json!("k1"), json!({"age": 2})),
        4 => ops::store::delete("users", json!("k1")),
        5 => ops::rules::emit("order.created", json!({"n": 1}), None, None),
        6 => ops::auth::whoami(),
        7 => ops::store::count("users", None),
        8 => ops::identity::login("alice", &Secret::new("pw-123456")),
        9 => ops::auth::login(&Secret::new("tok-x")),
        10 => ops::auth::logout(),
        11 => ops::procedures::call("p", json!({})),
        12 => ops::identity::login_with_secret(&Secret::new("s")),
        _ => ops::rules::set_fact("k", json!(1)),
    }
}

const CLOSE_CODES: [Option<u16>; 9] = [
    None,
    Some(1000),
    Some(1001),
    Some(1003),
    Some(1006),
    Some(4000),
    Some(4001),
    Some(4002),
    Some(4003),
];

/// Frames a broken or hostile server might send.
pub(crate) const GARBAGE: [&str; 14] = [
    "{not json",
    "[1,2,3]",
    "null",
    r#"{"type":"bogus","id":1}"#,
    r#"{"id":1}"#,
    r#"{"type":"result","data":1}"#,
    r#"{"type":"result","id":-1}"#,
    r#"{"type":"error","id":0,"code":"PARSE_ERROR","message":"Invalid JSON"}"#,
    r#"{"type":"push","channel":"subscription","data":1}"#,
    r#"{"type":"ping"}"#,
    r#"{"type":"system","event":"shutdown","gracePeriodMs":1e308}"#,
    r#"{"type":"system","event":"shutdown","gracePeriodMs":-5}"#,
    r#"{"type":"welcome","version":"1.0.0","requiresAuth":false}"#,
    r#"{"type":"result","id":1,"data":{"subscriptionId":5}}"#,
];

const ERROR_CODES: [&str; 6] = [
    "NOT_FOUND",
    "UNAUTHORIZED",
    "RATE_LIMITED",
    "INTERNAL_ERROR",
    "VALIDATION_ERROR",
    "SOMETHING_NEW",
];

/// The config a script asks for. Besides `liveness % 3`, `liveness / 3 % 2` picks a small
/// in-flight cap (so refusals for it happen too).
pub(crate) fn script_config(script: &Script) -> Config {
    let mut config = Config::new("ws://fuzz")
        .queue_while_disconnected(script.queue)
        .retry_reads(script.retry_reads)
        .retry_initial_connect(script.retry_initial)
        .max_queued(50)
        .max_held_pushes(20)
        .liveness(match script.liveness % 3 {
            0 => Liveness::default(),
            1 => Liveness::Fixed(Duration::from_secs(5)),
            _ => Liveness::Off,
        });
    if script.liveness / 3 % 2 == 1 {
        config = config.max_in_flight(6);
    }
    match script.auth % 3 {
        1 => config = config.auth(Auth::Token(Secret::new("tok"))),
        2 => {
            config = config.auth(Auth::Credentials {
                username: "alice".into(),
                password: Secret::new("pw-123456"),
            })
        }
        _ => {}
    }
    config
}

/// A request frame as the model transport holds it.
#[derive(Debug)]
struct Wire {
    id: u64,
    kind: String,
    /// The `subscriptionId` an unsubscribe names.
    target: Option<String>,
}

/// What the driver saw: every output, for determinism checks, and the bookkeeping the
/// invariants need.
#[derive(Default)]
pub(crate) struct Driver {
    pub log: Vec<Output>,
    offset: Duration,
    conn: Option<ConnectionId>,
    old_conns: Vec<ConnectionId>,
    /// Frames handed out on the current connection, not yet written: (seq, the request the
    /// core says it carries, the frame when it is a request).
    outq: VecDeque<(u64, Option<RequestId>, Option<Wire>)>,
    /// The current connection's transport is gone (closed by either side, or never
    /// opened): it writes nothing more.
    transport_gone: bool,
    /// Request ids whose frame the transport wrote (so it may have reached the server).
    delivered: BTreeSet<u64>,
    /// Frames the transport dropped unwritten because the core no longer wanted them.
    pub frames_dropped: usize,
    /// Requests written on the current connection and not yet answered by the model server.
    unanswered: Vec<(u64, String)>,
    /// Server subscription ids handed out on the current connection.
    server_subs: Vec<String>,
    /// The model server's subscriptions on the current connection: made by a subscribe it
    /// answered, removed by an unsubscribe that reached it.
    pub registry: BTreeSet<String>,
    next_server_sub: u64,
    next_token: u64,
    /// Per request id: (connection, seq) of every send.
    sent: BTreeMap<u64, Vec<(ConnectionId, u64)>>,
    kinds: BTreeMap<u64, String>,
    /// Written marks per connection.
    written: BTreeMap<ConnectionId, u64>,
    last_seq: BTreeMap<ConnectionId, u64>,
    /// Every `request_with` call, accepted or refused.
    issued: u64,
    pub accepted: BTreeMap<u64, OpKind>,
    cancelled: BTreeSet<u64>,
    pub responses: BTreeMap<u64, usize>,
    pub subs: Vec<SubscriptionId>,
    /// Subscriptions that ended (failed, ended by close, or dropped): nothing more may come
    /// for them.
    ended_subs: BTreeSet<SubscriptionId>,
    /// The query or pattern of every subscription made.
    pub specs: BTreeMap<SubscriptionId, String>,
    pub closed: bool,
    /// The client was told to close (set before draining what the close hands out).
    closed_now: bool,
    pub ready_count: usize,
    welcomed: BTreeSet<ConnectionId>,
}

impl Driver {
    pub(crate) fn now(&self, base: Instant) -> Instant {
        base + self.offset
    }

    /// Drains the core, checking every output.
    pub(crate) fn drain(&mut self, core: &mut ClientCore) {
        while let Some(out) = core.poll_output() {
            assert!(!self.closed, "output after an intentional close: {out:?}");
            match &out {
                Output::Open { connection, .. } => {
                    if let Some(old) = self.conn.replace(*connection) {
                        self.old_conns.push(old);
                    }
                    // The old connection's unwritten frames never leave.
                    self.outq.clear();
                    self.transport_gone = false;
                    self.unanswered.clear();
                    self.server_subs.clear();
                    self.registry.clear();
                }
                Output::Send {
                    connection,
                    seq,
                    text,
                    request,
                } => {
                    let v: Value = serde_json::from_str(text).expect("core sent invalid JSON");
                    let prev = self.last_seq.insert(*connection, *seq);
                    assert!(
                        prev.is_none_or(|p| p < *seq),
                        "sequence numbers must increase"
                    );
                    assert_eq!(Some(*connection), self.conn, "send on an old connection");
                    let wire = if let Some(id) = v.get("id").and_then(Value::as_u64) {
                        let kind = v["type"].as_str().unwrap_or_default().to_owned();
                        let sends = self.sent.entry(id).or_default();
                        sends.push((*connection, *seq));
                        let read = OpKind::from_name(&kind).is_some_and(OpKind::is_read);
                        assert!(read || sends.len() == 1, "write {kind} id {id} sent twice");
                        self.kinds.insert(id, kind.clone());
                        // The frame names the request it carries (unsubscribes excepted:
                        // they are always written).
                        assert!(
                            request.is_none_or(|r| r.0 == id),
                            "frame of request {id} handed out as {request:?}"
                        );
                        assert!(
                            request.is_some() || kind.ends_with(".unsubscribe"),
                            "{kind} {id} handed out without its request"
                        );
                        let target = v["subscriptionId"].as_str().map(str::to_owned);
                        Some(Wire { id, kind, target })
                    } else {
                        assert_eq!(v["type"], "pong");
                        assert_eq!(*request, None, "a pong carries no request");
                        None
                    };
                    self.outq.push_back((*seq, *request, wire));
                }
                Output::Close { connection, .. } if Some(*connection) == self.conn => {
                    // The transport closes: what it did not write never leaves.
                    self.outq.clear();
                    self.transport_gone = true;
                }
                Output::Close { .. } => {}
                Output::Event(Event::Response { id, result }) => self.check_response(*id, result),
                Output::Event(Event::Lifecycle(
                    noex_proto::LifecycleEvent::Connected | noex_proto::LifecycleEvent::Reconnected,
                )) => self.ready_count += 1,
                Output::Event(Event::Subscription(event)) => self.check_subscription(event),
                Output::Event(_) => {}
                other => panic!("an output the checker does not know: {other:?}"),
            }
            self.log.push(out);
        }
    }

    fn check_response(
        &mut self,
        id: RequestId,
        result: &Result<noex_proto::Payload, RequestError>,
    ) {
        let kind = *self
            .accepted
            .get(&id.0)
            .unwrap_or_else(|| panic!("response for {id:?}, which was never accepted"));
        assert!(
            !self.cancelled.contains(&id.0),
            "response after cancel: {id:?}"
        );
        let n = self.responses.entry(id.0).or_default();
        *n += 1;
        assert_eq!(*n, 1, "{id:?} resolved twice");
        let Err(error) = result else { return };
        let sends = self.sent.get(&id.0).map(Vec::as_slice).unwrap_or_default();
        match error.delivery() {
            Some(Delivery::OutcomeUnknown) => {
                assert!(
                    !sends.is_empty(),
                    "{id:?} outcome unknown but never handed out"
                );
            }
            Some(Delivery::NotSent) => {
                // "Not sent" must not have been acknowledged as written, and no frame of it
                // may have reached the server. (A timeout says "not sent" only for a frame
                // never written; the transport then drops it, see `write_upto`.)
                for (conn, seq) in sends {
                    let mark = self.written.get(conn).copied().unwrap_or(0);
                    assert!(
                        *seq > mark,
                        "{id:?} ({}) reported not sent but written (seq {seq} <= {mark})",
                        kind.name()
                    );
                }
                assert!(
                    !self.delivered.contains(&id.0),
                    "{id:?} ({}) reported not sent ({error:?}) but its frame reached the server",
                    kind.name()
                );
            }
            _ => {}
        }
    }

    fn check_subscription(&mut self, event: &SubscriptionEvent) {
        if let SubscriptionEvent::Ready {
            data: Some(data), ..
        }
        | SubscriptionEvent::Restored {
            data: Some(data), ..
        } = event
        {
            // Data handed on unread is read here: JSON reads as JSON; what is not is an
            // error for this value, and its `Debug` gives only its size.
            let read = data.to_value();
            let as_payload = data.clone().into_payload();
            assert_eq!(read.is_ok(), as_payload.is_ok(), "{data:?}");
            if read.is_err() {
                assert!(format!("{data:?}").contains("unchecked"), "{data:?}");
            }
        }
        let id = match event {
            SubscriptionEvent::Ready { id, .. }
            | SubscriptionEvent::Update { id, .. }
            | SubscriptionEvent::Failed { id, .. }
            | SubscriptionEvent::Ended { id } => *id,
            SubscriptionEvent::Restored { id, gap, .. } => {
                assert!(gap.from <= gap.to, "{id:?}: gap ends before it starts");
                *id
            }
            other => panic!("a subscription event the checker does not know: {other:?}"),
        };
        assert!(
            self.specs.contains_key(&id),
            "event for a subscription never made: {event:?}"
        );
        assert!(
            !self.ended_subs.contains(&id),
            "event for a subscription that ended: {event:?}"
        );
        if let SubscriptionEvent::Failed { .. } | SubscriptionEvent::Ended { .. } = event {
            if self.closed_now {
                assert!(
                    matches!(event, SubscriptionEvent::Ended { .. }),
                    "close fails {id:?} instead of ending it: {event:?}"
                );
            } else {
                assert!(
                    matches!(event, SubscriptionEvent::Failed { .. }),
                    "{id:?} ended without a close: {event:?}"
                );
            }
            self.subs.retain(|s| *s != id);
            self.ended_subs.insert(id);
        }
    }

    /// The transport writes the frames handed out up to `seq` in order, dropping those the
    /// core no longer wants, then reports them written. What it wrote reaches the server.
    fn write_upto(&mut self, core: &mut ClientCore, base: Instant, seq: u64) {
        if self.conn.is_none() || self.transport_gone {
            return;
        }
        while self.outq.front().is_some_and(|(s, _, _)| *s <= seq) {
            let Some((_, request, wire)) = self.outq.pop_front() else {
                break;
            };
            if !core.wants_frame(request) {
                self.frames_dropped += 1;
                continue;
            }
            if let Some(r) = request {
                assert!(
                    !self.responses.contains_key(&r.0) && !self.cancelled.contains(&r.0),
                    "the frame of {r:?}, which ended, is still wanted"
                );
            }
            if let Some(Wire { id, kind, target }) = wire {
                if kind.ends_with(".unsubscribe") {
                    if let Some(target) = target {
                        self.registry.remove(&target);
                    }
                }
                self.delivered.insert(id);
                self.unanswered.push((id, kind));
            }
        }
        self.input(core, base, Input::Written { seq });
    }

    /// The transport writes everything handed out so far.
    fn write_all(&mut self, core: &mut ClientCore, base: Instant) {
        if let Some(last) = self.outq.back().map(|(s, _, _)| *s) {
            self.write_upto(core, base, last);
        }
    }

    /// The counters add up, agree with what the driver saw, and the gauges with the core.
    fn check_counters(&self, core: &ClientCore) {
        let c = core.counters();
        assert_eq!(
            c.requests_issued,
            c.requests_ended() + c.requests_pending,
            "counters do not add up: {c:?}"
        );
        assert_eq!(c.requests_issued, self.issued, "requests issued: {c:?}");
        assert_eq!(c.requests_pending, core.pending_requests() as u64);
        assert_eq!(c.subscriptions_live, core.subscription_count() as u64);
        assert_eq!(c.requests_cancelled, self.cancelled.len() as u64, "{c:?}");
        let open = self.accepted.len() - self.responses.len() - self.cancelled.len();
        assert_eq!(
            c.requests_pending, open as u64,
            "requests still open: {c:?}"
        );
        if core.state() == ConnectionState::Disconnected && !self.closed {
            // No connection is coming: nothing waits for one.
            assert_eq!(
                core.subscription_count(),
                0,
                "a subscription outlived giving up"
            );
            assert_eq!(core.pending_entries(), 0, "a request outlived giving up");
        }
    }

    fn input(&mut self, core: &mut ClientCore, base: Instant, input: Input<'_>) {
        if let Some(conn) = self.conn {
            match input {
                Input::Written { seq } => {
                    let mark = self.written.entry(conn).or_default();
                    *mark = (*mark).max(seq);
                }
                // The transport is gone: what it did not write never leaves.
                Input::Closed { .. } | Input::ConnectFailed { .. } => {
                    self.outq.clear();
                    self.transport_gone = true;
                }
                _ => {}
            }
            core.handle_input(self.now(base), conn, input);
        }
        self.drain(core);
    }

    fn frame(&mut self, core: &mut ClientCore, base: Instant, value: Value) {
        let text = value.to_string();
        self.input(core, base, Input::Frame(&text));
    }

    /// Moves time forward, firing every deadline on the way.
    pub(crate) fn advance(&mut self, core: &mut ClientCore, base: Instant, by: Duration) {
        let target = self.offset + by;
        let mut guard = 0;
        while let Some(at) = core.poll_timeout() {
            let at = at.saturating_duration_since(base);
            if at > target {
                break;
            }
            guard += 1;
            assert!(guard < 10_000, "the core never settles");
            self.offset = self.offset.max(at);
            core.handle_timeout(self.now(base));
            self.drain(core);
        }
        self.offset = target;
        core.handle_timeout(self.now(base));
        self.drain(core);
    }

    fn answer_data(&mut self, kind: &str, shape: u8) -> Value {
        if shape % 4 == 3 {
            return json!({"unexpected": [1, 2]});
        }
        match kind {
            "store.subscribe" | "rules.subscribe" => {
                self.next_server_sub += 1;
                let sub = format!("sub-{}", self.next_server_sub);
                self.server_subs.push(sub.clone());
                self.registry.insert(sub.clone());
                if kind == "store.subscribe" {
                    json!({"subscriptionId": sub, "data": [{"n": shape}]})
                } else {
                    json!({"subscriptionId": sub})
                }
            }
            "identity.login" | "identity.loginWithSecret" | "identity.refreshSession" => {
                self.next_token += 1;
                json!({"token": format!("tok-{}", self.next_token), "expiresAt": 1, "user": {}})
            }
            _ if shape % 4 == 2 => Value::Null,
            _ => json!({"ok": true, "records": [{"id": "x", "_version": 1}]}),
        }
    }

    /// Answers one request that reached the server (the transport first writes what it
    /// holds).
    fn answer(&mut self, core: &mut ClientCore, base: Instant, pick: usize, ok: bool, shape: u8) {
        self.write_all(core, base);
        if self.unanswered.is_empty() {
            return;
        }
        let (id, kind) = self.unanswered.remove(pick % self.unanswered.len());
        let frame = if ok {
            let data = self.answer_data(&kind, shape);
            if id % 2 == 0 {
                // Members in the order the real server writes them (`{"id","type","data"}`
                // and a store subscribe's `{"subscriptionId","data"}`, the layout whose data
                // the core hands on unread); odd ids get them sorted. Now and then that
                // data is not JSON (a bracket short), for whoever reads it to find.
                let data = match (data.get("subscriptionId"), data.get("data")) {
                    (Some(sub), Some(query_data)) => {
                        let query_data = query_data.to_string();
                        let query_data = match shape % 8 {
                            5 => &query_data[..query_data.len() - 1],
                            _ => &query_data[..],
                        };
                        format!(r#"{{"subscriptionId":{sub},"data":{query_data}}}"#)
                    }
                    _ => data.to_string(),
                };
                let text = format!(r#"{{"id":{id},"type":"result","data":{data}}}"#);
                self.input(core, base, Input::Frame(&text));
                return;
            }
            json!({"id": id, "type": "result", "data": data})
        } else {
            let code = ERROR_CODES[shape as usize % ERROR_CODES.len()];
            json!({"id": id, "type": "error", "code": code, "message": "m",
                   "details": {"retryAfterMs": 10}})
        };
        self.frame(core, base, frame);
    }

    /// Plays the server cooperatively until the core is connected and nothing is left to
    /// answer. Returns false when the core cannot get connected (closed or gave up).
    pub(crate) fn heal(&mut self, core: &mut ClientCore, base: Instant) -> bool {
        for _ in 0..1_000 {
            if core.is_closed() {
                return false;
            }
            if core.state() == ConnectionState::Disconnected {
                core.connect(self.now(base));
                self.drain(core);
            }
            if core.state() == ConnectionState::Connected
                && self.unanswered.is_empty()
                && self.outq.is_empty()
            {
                return true;
            }
            if !self.unanswered.is_empty() || !self.outq.is_empty() {
                self.answer(core, base, 0, true, 0);
                continue;
            }
            // Not connected: finish opening whatever connection is in progress, or wait.
            let opened_now = self.log.iter().rev().find_map(|o| match o {
                Output::Open { connection, .. } => Some(*connection),
                _ => None,
            });
            match opened_now {
                Some(c) if Some(c) == self.conn && !self.welcomed(c) => {
                    self.input(core, base, Input::Opened);
                    let auth = core.config().auth.is_some();
                    self.frame(
                        core,
                        base,
                        json!({"type": "welcome", "version": "1.0.0", "requiresAuth": auth}),
                    );
                    self.welcomed.insert(c);
                }
                _ => {
                    let Some(at) = core.poll_timeout() else {
                        core.connect(self.now(base));
                        self.drain(core);
                        continue;
                    };
                    let by = at.saturating_duration_since(self.now(base));
                    self.advance(core, base, by);
                }
            }
        }
        core.state() == ConnectionState::Connected
    }

    /// The frames sent on the newest connection, parsed.
    pub(crate) fn sent_on_current(&self) -> Vec<Value> {
        self.log
            .iter()
            .filter_map(|o| match o {
                Output::Send {
                    connection, text, ..
                } if Some(*connection) == self.conn => serde_json::from_str(text).ok(),
                _ => None,
            })
            .collect()
    }

    fn welcomed(&self, c: ConnectionId) -> bool {
        self.welcomed.contains(&c)
    }
}

/// Runs a script and checks the invariants; returns the driver (with its output log) and
/// the core for further checks.
pub(crate) fn run_script(script: &Script, base: Instant) -> (Driver, ClientCore) {
    let mut core = ClientCore::new(script_config(script), script.seed);
    let mut d = Driver::default();
    for step in script.steps.iter().take(MAX_STEPS) {
        d.step(&mut core, base, step);
        if !d.closed {
            assert!(
                core.pending_entries() >= core.pending_requests(),
                "pending bookkeeping"
            );
            d.check_counters(&core);
        }
    }
    (d, core)
}

impl Driver {
    pub(crate) fn step(&mut self, core: &mut ClientCore, base: Instant, step: &Step) {
        let now = self.now(base);
        match step {
            Step::Connect => {
                core.connect(now);
                self.drain(core);
            }
            Step::Request {
                op,
                timeout_ms,
                retry,
            } => {
                let operation = op_table(*op);
                let kind = operation.kind();
                let mut options = RequestOptions::default();
                if let Some(ms) = timeout_ms {
                    options = options.timeout(Duration::from_millis(u64::from(*ms)));
                }
                if let Some(r) = retry {
                    options = options.retry_safe(*r);
                }
                let state = core.state();
                let slot = core.has_request_slot();
                let queue = core.config().queue_while_disconnected;
                self.issued += 1;
                match core.request_with(now, operation, options) {
                    Ok(id) => {
                        assert!(!self.closed, "request accepted after close");
                        assert!(slot, "request accepted past the in-flight cap");
                        assert!(
                            state == ConnectionState::Connected
                                || (queue && state != ConnectionState::Disconnected),
                            "request accepted while {state:?} (queueing {queue})"
                        );
                        assert!(self.accepted.insert(id.0, kind).is_none(), "id reused");
                    }
                    Err(e) => {
                        assert_eq!(e.delivery(), Some(Delivery::NotSent));
                        if state == ConnectionState::Connected && slot {
                            panic!("request refused while connected with a free slot: {e:?}");
                        }
                        if e == RequestError::QueueFull {
                            assert!(state != ConnectionState::Disconnected);
                        }
                    }
                }
                self.drain(core);
            }
            Step::Subscribe { rules, name } => {
                let (spec, label) = if *rules {
                    let p = format!("p{name}.*");
                    (SubscriptionSpec::rules(p.clone()), p)
                } else {
                    let q = format!("q{name}");
                    (SubscriptionSpec::query(q.clone(), None), q)
                };
                if let Ok(id) = core.subscribe(now, spec) {
                    assert!(!self.specs.contains_key(&id), "subscription handle reused");
                    self.subs.push(id);
                    self.specs.insert(id, label);
                }
                self.drain(core);
            }
            Step::Unsubscribe { pick } => {
                if !self.subs.is_empty() {
                    let id = self.subs.remove(*pick as usize % self.subs.len());
                    assert!(core.unsubscribe(now, id), "live {id:?} unknown to the core");
                    self.ended_subs.insert(id);
                    self.drain(core);
                }
            }
            Step::Cancel { pick } => {
                let ids: Vec<u64> = self.accepted.keys().copied().collect();
                if !ids.is_empty() {
                    let id = ids[*pick as usize % ids.len()];
                    core.cancel(RequestId(id));
                    if !self.responses.contains_key(&id) {
                        self.cancelled.insert(id);
                    }
                    self.drain(core);
                }
            }
            Step::Opened => self.input(core, base, Input::Opened),
            Step::ConnectFailed => self.input(core, base, Input::ConnectFailed { reason: "x" }),
            Step::Welcome { requires_auth } => {
                if let Some(c) = self.conn {
                    self.welcomed.insert(c);
                }
                self.frame(
                    core,
                    base,
                    json!({"type": "welcome", "version": "1.0.0", "serverTime": 1,
                           "requiresAuth": requires_auth}),
                )
            }
            Step::Answer { pick, ok, shape } => {
                self.answer(core, base, *pick as usize, *ok, *shape)
            }
            Step::AnswerId { id, ok } => {
                // Whatever the server answers a raw id with counts as its answer.
                self.unanswered.retain(|(u, _)| *u != u64::from(*id));
                let frame = if *ok {
                    json!({"id": id, "type": "result", "data": null})
                } else {
                    json!({"id": id, "type": "error", "code": "NOT_FOUND", "message": "m"})
                };
                self.frame(core, base, frame)
            }
            Step::Push { pick } => {
                let sub = if self.server_subs.is_empty() || *pick == u8::MAX {
                    format!("sub-x{pick}")
                } else {
                    self.server_subs[*pick as usize % self.server_subs.len()].clone()
                };
                let channel = if pick % 2 == 0 {
                    "subscription"
                } else {
                    "event"
                };
                self.frame(
                    core,
                    base,
                    json!({"type": "push", "channel": channel, "subscriptionId": sub,
                           "data": [{"pick": pick}]}),
                )
            }
            Step::Ping { timestamp } => {
                self.frame(core, base, json!({"type": "ping", "timestamp": timestamp}))
            }
            Step::Garbage { pick, bytes } => {
                let text = if pick % 2 == 0 {
                    GARBAGE[(*pick as usize / 2) % GARBAGE.len()].to_owned()
                } else {
                    String::from_utf8_lossy(bytes).into_owned()
                };
                // Garbage that answers a request counts as the server's answer to it.
                if let Ok(ServerFrame::Result { id, .. } | ServerFrame::Error { id, .. }) =
                    decode(&text)
                {
                    self.unanswered.retain(|(u, _)| *u != id);
                }
                self.input(core, base, Input::Frame(&text))
            }
            Step::Binary { len } => {
                let bytes = vec![0xA5; usize::from(*len)];
                self.input(core, base, Input::Binary(&bytes))
            }
            Step::Written { back } => {
                if let Some(conn) = self.conn {
                    if let Some(last) = self.last_seq.get(&conn).copied() {
                        let seq = last.saturating_sub(u64::from(*back % 4));
                        self.write_upto(core, base, seq);
                    }
                }
            }
            Step::ServerClose { code } => {
                let code = CLOSE_CODES[*code as usize % CLOSE_CODES.len()];
                self.input(core, base, Input::Closed { code, reason: "r" });
            }
            Step::Shutdown => self.frame(
                core,
                base,
                json!({"type": "system", "event": "shutdown", "gracePeriodMs": 500}),
            ),
            Step::SessionRevoked => self.frame(
                core,
                base,
                json!({"type": "system", "event": "session_revoked", "reason": "r"}),
            ),
            Step::Advance { ms } => self.advance(core, base, Duration::from_millis(u64::from(*ms))),
            Step::Sleep { secs } => self.advance(core, base, Duration::from_secs(u64::from(*secs))),
            Step::Stale => {
                if let Some(old) = self.old_conns.last().copied() {
                    core.handle_input(now, old, Input::Frame(r#"{"type":"ping","timestamp":1}"#));
                    core.handle_input(
                        now,
                        old,
                        Input::Closed {
                            code: None,
                            reason: "",
                        },
                    );
                    self.drain(core);
                }
            }
            Step::Close => {
                core.close(now);
                self.closed_now = true;
                self.drain(core);
                self.closed = true;
                assert_eq!(core.pending_entries(), 0, "pending survived close");
                assert_eq!(core.poll_timeout(), None, "timer survived close");
            }
        }
    }

    /// The final checks: close, then everything accepted has resolved exactly once.
    pub(crate) fn finish(&mut self, core: &mut ClientCore, base: Instant) {
        let now = self.now(base);
        core.close(now);
        self.closed_now = true;
        self.drain(core);
        self.closed = true;
        assert_eq!(
            core.pending_entries(),
            0,
            "pending survived the final close"
        );
        self.check_counters(core);
        assert_eq!(core.pending_requests(), 0);
        assert_eq!(core.subscription_count(), 0);
        assert_eq!(core.poll_timeout(), None);
        for id in self.accepted.keys() {
            let n = self.responses.get(id).copied().unwrap_or(0);
            if self.cancelled.contains(id) {
                assert_eq!(n, 0, "cancelled request {id} answered");
            } else {
                assert_eq!(n, 1, "request {id} resolved {n} times");
            }
        }
        // Nothing comes out any more.
        core.handle_timeout(now + Duration::from_secs(3_600));
        core.connect(now);
        if let Some(c) = self.conn {
            core.handle_input(now, c, Input::Frame(r#"{"type":"ping","timestamp":1}"#));
        }
        assert!(core.poll_output().is_none(), "output after close");
    }
}

/// How much of the interesting ground a script covered (for tests that check a batch of
/// scripts exercises it).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Exercised {
    /// Frames the transport dropped because their request had ended.
    pub frames_dropped: usize,
    /// Requests cancelled before they ended.
    pub cancelled: usize,
    /// Requests refused because the in-flight cap or the queue was full.
    pub refused_full: u64,
    /// Subscriptions failed because the core gave up on the connection.
    pub gave_up: usize,
    /// Subscriptions restored after a reconnect.
    pub restored: usize,
}

impl std::ops::AddAssign for Exercised {
    fn add_assign(&mut self, other: Exercised) {
        self.frames_dropped += other.frames_dropped;
        self.cancelled += other.cancelled;
        self.refused_full += other.refused_full;
        self.gave_up += other.gave_up;
        self.restored += other.restored;
    }
}

/// Target `core_script`.
pub(crate) fn core_script(script: &Script) -> Exercised {
    let base = Instant::now();
    let (mut d, mut core) = run_script(script, base);
    d.finish(&mut core, base);
    // Same seed, same inputs, same outputs.
    let (mut d2, mut core2) = run_script(script, base);
    d2.finish(&mut core2, base);
    assert!(d.log == d2.log, "two runs of one script differ");
    let sub_events = || {
        d.log.iter().filter_map(|o| match o {
            Output::Event(Event::Subscription(e)) => Some(e),
            _ => None,
        })
    };
    Exercised {
        frames_dropped: d.frames_dropped,
        cancelled: d.cancelled.len(),
        refused_full: core.counters().requests_rejected,
        gave_up: sub_events()
            .filter(|e| {
                matches!(
                    e,
                    SubscriptionEvent::Failed {
                        error: RequestError::GaveUp(_),
                        ..
                    }
                )
            })
            .count(),
        restored: sub_events()
            .filter(|e| matches!(e, SubscriptionEvent::Restored { .. }))
            .count(),
    }
}
