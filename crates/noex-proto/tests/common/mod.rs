//! A reusable test harness for `ClientCore`: a virtual clock, an output recorder split by
//! kind, and helpers that play the server's part. Time only moves when a test moves it.
//!
//! The transport it plays honours [`ClientCore::wants_frame`]: a frame whose request ended
//! before it was written never reaches the server (`answer_subscribes` and the server-side
//! subscription record skip it).
#![allow(dead_code)]

use noex_proto::{
    ClientCore, Config, ConnectionId, ConnectionState, CoreError, DisconnectReason, Event, Input,
    LifecycleEvent, Output, Payload, RequestError, RequestId, SubscriptionEvent, SubscriptionId,
};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// Virtual time: a fixed base plus an offset that only tests advance.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    base: Instant,
    offset: Duration,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    pub(crate) fn new() -> Clock {
        Clock {
            base: Instant::now(),
            offset: Duration::ZERO,
        }
    }
    pub(crate) fn now(&self) -> Instant {
        self.base + self.offset
    }
    /// Time since the clock started.
    pub(crate) fn elapsed(&self) -> Duration {
        self.offset
    }
    pub(crate) fn advance(&mut self, by: Duration) {
        self.offset += by;
    }
    /// Moves to `at` (never backwards).
    pub(crate) fn set(&mut self, at: Instant) {
        let offset = at.saturating_duration_since(self.base);
        if offset > self.offset {
            self.offset = offset;
        }
    }
}

/// One `Output::Send`, with its text parsed.
#[derive(Debug, Clone)]
pub(crate) struct Sent {
    pub connection: ConnectionId,
    pub seq: u64,
    pub text: String,
    pub json: Value,
    /// The request the core says the frame carries (`None`: always written).
    pub request: Option<RequestId>,
}

impl Sent {
    /// The request id, when the frame is a request.
    pub(crate) fn id(&self) -> Option<u64> {
        self.json.get("id").and_then(Value::as_u64)
    }
    /// The `type` field.
    pub(crate) fn kind(&self) -> &str {
        self.json.get("type").and_then(Value::as_str).unwrap_or("")
    }
}

/// Drives one core with explicit time and records everything it hands out.
pub(crate) struct Harness {
    pub core: ClientCore,
    pub clock: Clock,
    /// `Output::Open` in order.
    pub opens: Vec<(ConnectionId, String)>,
    /// `Output::Send` in order.
    pub sends: Vec<Sent>,
    /// `Output::Close` in order.
    pub closes: Vec<(ConnectionId, u16, String)>,
    /// `Output::Event` in order.
    pub events: Vec<Event>,
    /// Every output in order (for determinism checks).
    pub log: Vec<Output>,
    /// The connection the server side talks on (the latest opened).
    pub conn: Option<ConnectionId>,
    /// Server subscription ids handed out (`sub-N`), per process.
    next_server_sub: u64,
    /// Request ids the test (as the server) has answered.
    answered: BTreeSet<u64>,
    /// Highest `Input::Written` reported per connection.
    written: BTreeMap<ConnectionId, u64>,
    /// The subscriptions the server holds on the current connection: made by a subscribe
    /// the test answered, removed by an unsubscribe the core handed out.
    pub server_subs: BTreeSet<String>,
}

impl Harness {
    pub(crate) fn new(config: Config) -> Harness {
        Harness::with_seed(config, 7)
    }

    pub(crate) fn with_seed(config: Config, seed: u64) -> Harness {
        Harness {
            core: ClientCore::new(config, seed),
            clock: Clock::new(),
            opens: Vec::new(),
            sends: Vec::new(),
            closes: Vec::new(),
            events: Vec::new(),
            log: Vec::new(),
            conn: None,
            next_server_sub: 1,
            answered: BTreeSet::new(),
            written: BTreeMap::new(),
            server_subs: BTreeSet::new(),
        }
    }

    /// A default config pointing at a dummy URL.
    pub(crate) fn config() -> Config {
        Config::new("ws://test.invalid:1")
    }

    pub(crate) fn now(&self) -> Instant {
        self.clock.now()
    }

    /// Moves every pending output into the recorded lists.
    pub(crate) fn drain(&mut self) {
        while let Some(out) = self.core.poll_output() {
            self.log.push(out.clone());
            match out {
                Output::Open { connection, url } => {
                    self.conn = Some(connection);
                    self.opens.push((connection, url));
                    // A new connection: the server holds nothing for it yet.
                    self.server_subs.clear();
                }
                Output::Send {
                    connection,
                    seq,
                    text,
                    request,
                } => {
                    let json: Value = serde_json::from_str(&text)
                        .unwrap_or_else(|e| panic!("core sent invalid JSON {text:?}: {e}"));
                    let kind = json["type"].as_str().unwrap_or_default();
                    if kind.ends_with(".unsubscribe") && Some(connection) == self.conn {
                        if let Some(sid) = json["subscriptionId"].as_str() {
                            self.server_subs.remove(sid);
                        }
                    }
                    self.sends.push(Sent {
                        connection,
                        seq,
                        text,
                        json,
                        request,
                    });
                }
                Output::Close {
                    connection,
                    code,
                    reason,
                } => self.closes.push((connection, code, reason)),
                Output::Event(event) => self.events.push(event),
                // Kept in the log: the test gives the token (`ClientCore::provide_token`).
                Output::FetchToken { .. } => {}
                other => panic!("an output the test harness does not know: {other:?}"),
            }
        }
    }

    /// Forgets what was recorded so far (the core is untouched).
    pub(crate) fn clear(&mut self) {
        self.opens.clear();
        self.sends.clear();
        self.closes.clear();
        self.events.clear();
    }

    /// Forgets the recorded events only.
    pub(crate) fn clear_events_only(&mut self) {
        self.events.clear();
    }

    /// The current connection (panics when none was opened).
    pub(crate) fn conn(&self) -> ConnectionId {
        self.conn.expect("no connection was opened")
    }

    // ---- intents -------------------------------------------------------------------------

    pub(crate) fn connect(&mut self) {
        let now = self.now();
        self.core.connect(now);
        self.drain();
    }

    pub(crate) fn close(&mut self) {
        let now = self.now();
        self.core.close(now);
        self.drain();
    }

    pub(crate) fn request(&mut self, op: noex_proto::ops::Operation) -> RequestId {
        self.try_request(op).expect("request refused")
    }

    pub(crate) fn try_request(
        &mut self,
        op: noex_proto::ops::Operation,
    ) -> Result<RequestId, RequestError> {
        let now = self.now();
        let r = self.core.request(now, op);
        self.drain();
        r
    }

    pub(crate) fn request_with(
        &mut self,
        op: noex_proto::ops::Operation,
        options: noex_proto::RequestOptions,
    ) -> RequestId {
        let now = self.now();
        let r = self
            .core
            .request_with(now, op, options)
            .expect("request refused");
        self.drain();
        r
    }

    pub(crate) fn subscribe(&mut self, spec: noex_proto::SubscriptionSpec) -> SubscriptionId {
        let now = self.now();
        let r = self.core.subscribe(now, spec).expect("subscribe refused");
        self.drain();
        r
    }

    pub(crate) fn unsubscribe(&mut self, id: SubscriptionId) -> bool {
        let now = self.now();
        let r = self.core.unsubscribe(now, id);
        self.drain();
        r
    }

    pub(crate) fn cancel(&mut self, id: RequestId) {
        self.core.cancel(id);
        self.drain();
    }

    // ---- the transport's and the server's part -------------------------------------------

    pub(crate) fn input(&mut self, input: Input<'_>) {
        let conn = self.conn();
        self.input_on(conn, input);
    }

    pub(crate) fn input_on(&mut self, conn: ConnectionId, input: Input<'_>) {
        if let Input::Written { seq } = input {
            let mark = self.written.entry(conn).or_default();
            *mark = (*mark).max(seq);
        }
        let now = self.now();
        self.core.handle_input(now, conn, input);
        self.drain();
    }

    pub(crate) fn opened(&mut self) {
        self.input(Input::Opened);
    }

    pub(crate) fn welcome(&mut self, requires_auth: bool) {
        self.frame_json(json!({
            "type": "welcome", "version": "1.0.0", "serverTime": 1795739063895_u64,
            "requiresAuth": requires_auth
        }));
    }

    /// Opens the connection the core last asked for and sends `welcome`.
    pub(crate) fn open_and_welcome(&mut self, requires_auth: bool) {
        self.opened();
        self.welcome(requires_auth);
    }

    /// `connect` + open + welcome without auth: a connected core.
    pub(crate) fn connected(config: Config) -> Harness {
        let mut h = Harness::new(config);
        h.connect();
        h.open_and_welcome(false);
        assert_eq!(h.core.state(), ConnectionState::Connected);
        h
    }

    pub(crate) fn frame(&mut self, text: &str) {
        self.input(Input::Frame(text));
    }

    pub(crate) fn frame_json(&mut self, value: Value) {
        let text = value.to_string();
        self.frame(&text);
    }

    /// A `result` for request `id`. A subscribe answered with a `subscriptionId` is
    /// recorded as held by the server.
    pub(crate) fn answer(&mut self, id: u64, data: Value) {
        self.answered.insert(id);
        let conn = self.conn;
        let subscribe = self
            .sent_request(id)
            .is_some_and(|s| Some(s.connection) == conn && s.kind().ends_with(".subscribe"));
        if let (true, Some(sid)) = (subscribe, data["subscriptionId"].as_str()) {
            self.server_subs.insert(sid.to_owned());
        }
        // Members in the order the server writes them (a `json!` object would sort them):
        // a subscribe answer is `{"subscriptionId", "data"}`.
        let data = match data.as_object() {
            Some(answer) if answer.contains_key("subscriptionId") => {
                let mut text = format!(r#"{{"subscriptionId":{}"#, answer["subscriptionId"]);
                for (key, value) in answer.iter().filter(|(k, _)| *k != "subscriptionId") {
                    text += &format!(",{}:{value}", Value::from(key.as_str()));
                }
                text + "}"
            }
            _ => data.to_string(),
        };
        self.frame(&format!(r#"{{"id":{id},"type":"result","data":{data}}}"#));
    }

    /// An `error` for request `id`.
    pub(crate) fn answer_error(&mut self, id: u64, code: &str, message: &str) {
        self.answered.insert(id);
        self.frame_json(json!({"id": id, "type": "error", "code": code, "message": message}));
    }

    /// A `push` on channel `subscription`.
    pub(crate) fn push(&mut self, server_sub: &str, data: Value) {
        self.frame_json(json!({
            "type": "push", "channel": "subscription", "subscriptionId": server_sub, "data": data
        }));
    }

    pub(crate) fn ping(&mut self, timestamp: u64) {
        self.frame_json(json!({"type": "ping", "timestamp": timestamp}));
    }

    /// The server (or the network) closes the current connection.
    pub(crate) fn server_close(&mut self, code: Option<u16>, reason: &str) {
        self.input(Input::Closed { code, reason });
    }

    /// The transport reports every frame handed out so far on the current connection as
    /// written.
    pub(crate) fn written_all(&mut self) {
        let conn = self.conn();
        if let Some(seq) = self
            .sends
            .iter()
            .filter(|s| s.connection == conn)
            .map(|s| s.seq)
            .max()
        {
            self.input(Input::Written { seq });
        }
    }

    /// A fresh `sub-N` id, as the server process would hand out.
    pub(crate) fn next_server_sub(&mut self) -> String {
        let id = format!("sub-{}", self.next_server_sub);
        self.next_server_sub += 1;
        id
    }

    /// Answers every unanswered subscribe that reached the server on the current connection
    /// with a fresh `sub-N` (and `data` for store queries). Returns the ids handed out in
    /// order.
    pub(crate) fn answer_subscribes(&mut self, data: Value) -> Vec<(u64, String)> {
        let conn = self.conn();
        let subs: Vec<(u64, String)> = self
            .sends
            .iter()
            .filter(|s| s.connection == conn && s.kind().ends_with(".subscribe"))
            .filter(|s| self.reached_server(s))
            .filter_map(|s| s.id().map(|id| (id, s.kind().to_owned())))
            .filter(|(id, _)| !self.answered.contains(id))
            .collect();
        let mut out = Vec::new();
        for (id, kind) in subs {
            let sub = self.next_server_sub();
            if kind == "store.subscribe" {
                self.answer(id, json!({"subscriptionId": sub, "data": data}));
            } else {
                self.answer(id, json!({"subscriptionId": sub}));
            }
            out.push((id, sub));
        }
        out
    }

    /// Whether the transport writes (or wrote) `sent`: it was reported written, or its
    /// request is still live so the transport would write it now. A frame whose request
    /// ended unwritten is dropped and never reaches the server.
    pub(crate) fn reached_server(&self, sent: &Sent) -> bool {
        let written = self
            .written
            .get(&sent.connection)
            .is_some_and(|mark| *mark >= sent.seq);
        written || self.core.wants_frame(sent.request)
    }

    // ---- time ----------------------------------------------------------------------------

    /// Moves time forward by `by`, calling `handle_timeout` at every deadline the core
    /// announces on the way (in order), and once more at the end.
    pub(crate) fn advance(&mut self, by: Duration) {
        let target = self.now() + by;
        let mut guard = 0;
        while let Some(at) = self.core.poll_timeout() {
            if at > target {
                break;
            }
            guard += 1;
            assert!(guard < 100_000, "the core never settles: deadline {at:?}");
            self.clock.set(at);
            let now = self.now();
            self.core.handle_timeout(now);
            self.drain();
        }
        self.clock.set(target);
        let now = self.now();
        self.core.handle_timeout(now);
        self.drain();
    }

    /// Waits (stepping through deadlines) until the core asks for a new connection, then
    /// opens it and says welcome. Returns the time waited.
    pub(crate) fn reopen(&mut self, requires_auth: bool) -> Duration {
        let started = self.clock.elapsed();
        let before = self.opens.len();
        let mut guard = 0;
        while self.opens.len() == before {
            guard += 1;
            assert!(guard < 10_000, "the core never reconnected");
            assert!(
                self.step(),
                "no deadline pending: the core will not reconnect"
            );
        }
        self.open_and_welcome(requires_auth);
        self.clock.elapsed() - started
    }

    /// Moves time to the core's next deadline (if any) and fires it.
    pub(crate) fn step(&mut self) -> bool {
        let Some(at) = self.core.poll_timeout() else {
            return false;
        };
        self.clock.set(at);
        let now = self.now();
        self.core.handle_timeout(now);
        self.drain();
        true
    }

    // ---- looking at what came out ---------------------------------------------------------

    /// Sends on connection `conn`.
    pub(crate) fn sends_on(&self, conn: ConnectionId) -> Vec<&Sent> {
        self.sends.iter().filter(|s| s.connection == conn).collect()
    }

    /// The last frame sent.
    pub(crate) fn last_send(&self) -> &Sent {
        self.sends.last().expect("nothing was sent")
    }

    /// The request sent with wire id `id` (the last one, if sent more than once).
    pub(crate) fn sent_request(&self, id: u64) -> Option<&Sent> {
        self.sends.iter().rev().find(|s| s.id() == Some(id))
    }

    /// How often a request with this id was handed out.
    pub(crate) fn times_sent(&self, id: u64) -> usize {
        self.sends.iter().filter(|s| s.id() == Some(id)).count()
    }

    /// Every response event for `id`.
    pub(crate) fn responses(&self, id: RequestId) -> Vec<&Result<Payload, RequestError>> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Response { id: rid, result } if *rid == id => Some(result),
                _ => None,
            })
            .collect()
    }

    /// The one response for `id` (panics unless exactly one came).
    pub(crate) fn response(&self, id: RequestId) -> &Result<Payload, RequestError> {
        let r = self.responses(id);
        assert_eq!(
            r.len(),
            1,
            "expected exactly one response for {id:?}, got {r:?}"
        );
        r[0]
    }

    /// The error of the one response for `id`.
    pub(crate) fn error_of(&self, id: RequestId) -> &RequestError {
        match self.response(id) {
            Err(e) => e,
            Ok(p) => panic!("expected an error for {id:?}, got Ok({})", p.json()),
        }
    }

    /// The lifecycle events, in order.
    pub(crate) fn lifecycle(&self) -> Vec<&LifecycleEvent> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Lifecycle(l) => Some(l),
                _ => None,
            })
            .collect()
    }

    /// The subscription events, in order.
    pub(crate) fn sub_events(&self) -> Vec<&SubscriptionEvent> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Subscription(s) => Some(s),
                _ => None,
            })
            .collect()
    }

    /// Core errors reported as lifecycle events.
    pub(crate) fn core_errors(&self) -> Vec<&CoreError> {
        self.lifecycle()
            .into_iter()
            .filter_map(|l| match l {
                LifecycleEvent::Error(e) => Some(e),
                _ => None,
            })
            .collect()
    }

    /// `Disconnected` reasons, in order.
    pub(crate) fn disconnects(&self) -> Vec<&DisconnectReason> {
        self.lifecycle()
            .into_iter()
            .filter_map(|l| match l {
                LifecycleEvent::Disconnected(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    /// `Reconnecting` (attempt, delay) pairs, in order.
    pub(crate) fn reconnecting(&self) -> Vec<(u32, Duration)> {
        self.lifecycle()
            .into_iter()
            .filter_map(|l| match l {
                LifecycleEvent::Reconnecting { attempt, delay } => Some((*attempt, *delay)),
                _ => None,
            })
            .collect()
    }

    /// State changes, in order.
    pub(crate) fn states(&self) -> Vec<ConnectionState> {
        self.lifecycle()
            .into_iter()
            .filter_map(|l| match l {
                LifecycleEvent::StateChanged(s) => Some(*s),
                _ => None,
            })
            .collect()
    }

    /// Updates delivered per subscription, data as JSON.
    pub(crate) fn updates(&self) -> BTreeMap<SubscriptionId, Vec<Value>> {
        let mut out: BTreeMap<SubscriptionId, Vec<Value>> = BTreeMap::new();
        for e in self.sub_events() {
            if let SubscriptionEvent::Update { id, data } = e {
                out.entry(*id)
                    .or_default()
                    .push(data.to_value().expect("JSON value"));
            }
        }
        out
    }

    /// The number of lifecycle events matching `pred`.
    pub(crate) fn count_lifecycle(&self, pred: impl Fn(&LifecycleEvent) -> bool) -> usize {
        self.lifecycle().into_iter().filter(|l| pred(l)).count()
    }
}

/// JSON an event carries: a [`Payload`] or a subscription's [`SubscriptionData`].
pub(crate) trait Json {
    /// Parses it into a JSON tree.
    fn json_value(&self) -> Value;
}

impl Json for Payload {
    fn json_value(&self) -> Value {
        self.to_value().expect("JSON value")
    }
}

impl Json for noex_proto::SubscriptionData {
    fn json_value(&self) -> Value {
        self.to_value().expect("JSON value")
    }
}

/// Parses a payload or a subscription's data into JSON.
pub(crate) fn value(p: &impl Json) -> Value {
    p.json_value()
}

/// A typical stored record as the server returns it.
pub(crate) fn record(name: &str, age: u64) -> Value {
    json!({
        "name": name, "age": age, "role": "user",
        "id": "d3d56717-a2d4-4dc3-aba3-5b24ff8818fc",
        "_version": 1, "_createdAt": 1795739063897_u64, "_updatedAt": 1795739063897_u64
    })
}

pub(crate) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The recorded transcripts, as `(dir, frame)` pairs.
pub(crate) fn transcript(name: &str) -> Vec<(String, Value)> {
    let path = format!(
        "{}/../../fixtures/transcripts/{name}.jsonl",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{path}: {e}"));
            (
                v["dir"].as_str().unwrap_or_default().to_owned(),
                v["frame"].clone(),
            )
        })
        .collect()
}

pub(crate) const TRANSCRIPTS: [&str; 3] = ["basic", "identity", "procedures-audit"];

/// Rebuilds a recorded client request with the typed catalogue constructors (never the
/// generic field API), or `None` when the recording is not a well-formed request of a known
/// operation (the transcripts also hold deliberate garbage).
pub(crate) fn recorded_op(frame: &Value) -> Option<noex_proto::ops::Operation> {
    use noex_proto::ops::{self, audit::AuditFilter, identity::Grant, store::TxOp, Filter};
    use noex_proto::Secret;
    let f = frame.as_object()?;
    f.get("id")?.as_u64()?;
    let kind = f.get("type")?.as_str()?;
    let s = |name: &str| f.get(name).and_then(Value::as_str);
    let v = |name: &str| f.get(name);
    let u = |name: &str| f.get(name).and_then(Value::as_u64);
    let map_without = |skip: &[&str]| {
        let mut m = serde_json::Map::new();
        for (k, val) in f {
            if k != "id" && k != "type" && !skip.contains(&k.as_str()) {
                m.insert(k.clone(), val.clone());
            }
        }
        m
    };
    let grant = || -> Option<Grant> {
        Some(Grant {
            subject_type: s("subjectType")?.into(),
            subject_id: s("subjectId")?.into(),
            resource_type: s("resourceType")?.into(),
            resource_name: s("resourceName")?.into(),
            operations: v("operations")?
                .as_array()?
                .iter()
                .map(|o| o.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()?,
        })
    };
    let filter = || v("filter").cloned().map(Filter::raw);
    let op = match kind {
        "store.insert" => ops::store::insert(s("bucket")?, v("data")?.clone()),
        "store.get" => ops::store::get(s("bucket")?, v("key")?),
        "store.update" => ops::store::update(s("bucket")?, v("key")?, v("data")?.clone()),
        "store.delete" => ops::store::delete(s("bucket")?, v("key")?),
        "store.all" => ops::store::all(s("bucket")?),
        "store.where" => ops::store::find(s("bucket")?, &Filter::raw(v("filter")?.clone())),
        "store.findOne" => ops::store::find_one(s("bucket")?, &Filter::raw(v("filter")?.clone())),
        "store.count" => ops::store::count(s("bucket")?, filter().as_ref()),
        "store.first" => ops::store::first(s("bucket")?, u("n")?),
        "store.last" => ops::store::last(s("bucket")?, u("n")?),
        "store.paginate" => ops::store::paginate(s("bucket")?, u("limit")?, v("after")),
        "store.sum" => ops::store::sum(s("bucket")?, s("field")?, filter().as_ref()),
        "store.avg" => ops::store::avg(s("bucket")?, s("field")?, filter().as_ref()),
        "store.min" => ops::store::min(s("bucket")?, s("field")?, filter().as_ref()),
        "store.max" => ops::store::max(s("bucket")?, s("field")?, filter().as_ref()),
        "store.clear" => ops::store::clear(s("bucket")?),
        "store.subscribe" => ops::store::subscribe(s("query")?, v("params")),
        "store.unsubscribe" => ops::store::unsubscribe(s("subscriptionId")?),
        "store.transaction" => {
            let mut tx = Vec::new();
            for o in v("operations")?.as_array()? {
                let b = o.get("bucket")?.as_str()?;
                let key = || o.get("key").cloned();
                let data = || o.get("data").cloned();
                let filter = || o.get("filter").cloned();
                tx.push(match o.get("op")?.as_str()? {
                    "get" => TxOp::get(b, key()?),
                    "insert" => TxOp::insert(b, data()?),
                    "update" => TxOp::update(b, key()?, data()?),
                    "delete" => TxOp::delete(b, key()?),
                    "where" => TxOp::find(b, Filter::raw(filter()?)),
                    "findOne" => TxOp::find_one(b, Filter::raw(filter()?)),
                    "count" => TxOp::count(b, filter().map_or_else(Filter::all, Filter::raw)),
                    _ => return None,
                });
            }
            ops::store::transaction(&tx)
        }
        "store.buckets" => ops::store::buckets(),
        "store.stats" => ops::store::stats(),
        "store.defineBucket" => ops::store::define_bucket(s("name")?, v("config")?),
        "store.updateBucket" => ops::store::update_bucket(s("name")?, v("updates")?),
        "store.getBucketSchema" => ops::store::get_bucket_schema(s("name")?),
        "store.dropBucket" => ops::store::drop_bucket(s("name")?),
        "store.defineQuery" => ops::store::define_query(s("name")?, v("config")?),
        "store.undefineQuery" => ops::store::undefine_query(s("name")?),
        "store.listQueries" => ops::store::list_queries(),
        "rules.emit" => ops::rules::emit(
            s("topic")?,
            v("data")?,
            s("correlationId"),
            s("causationId"),
        ),
        "rules.setFact" => ops::rules::set_fact(s("key")?, v("value")?),
        "rules.getFact" => ops::rules::get_fact(s("key")?),
        "rules.deleteFact" => ops::rules::delete_fact(s("key")?),
        "rules.queryFacts" => ops::rules::query_facts(s("pattern")?),
        "rules.getAllFacts" => ops::rules::get_all_facts(),
        "rules.stats" => ops::rules::stats(),
        "rules.subscribe" => ops::rules::subscribe(s("pattern")?),
        "rules.unsubscribe" => ops::rules::unsubscribe(s("subscriptionId")?),
        "rules.registerRule" => ops::rules::register_rule(v("rule")?),
        "rules.unregisterRule" => ops::rules::unregister_rule(s("ruleId")?),
        "rules.updateRule" => ops::rules::update_rule(s("ruleId")?, v("updates")?),
        "rules.enableRule" => ops::rules::enable_rule(s("ruleId")?),
        "rules.disableRule" => ops::rules::disable_rule(s("ruleId")?),
        "rules.getRule" => ops::rules::get_rule(s("ruleId")?),
        "rules.getRules" => ops::rules::get_rules(),
        "rules.validateRule" => ops::rules::validate_rule(v("rule")?),
        "auth.login" => ops::auth::login(&Secret::new(s("token")?)),
        "auth.logout" => ops::auth::logout(),
        "auth.whoami" => ops::auth::whoami(),
        "identity.login" => ops::identity::login(s("username")?, &Secret::new(s("password")?)),
        "identity.loginWithSecret" => ops::identity::login_with_secret(&Secret::new(s("secret")?)),
        "identity.logout" => ops::identity::logout(),
        "identity.whoami" => ops::identity::whoami(),
        "identity.refreshSession" => ops::identity::refresh_session(),
        "identity.createUser" => ops::identity::create_user(
            s("username")?,
            &Secret::new(s("password")?),
            &map_without(&["username", "password"]),
        ),
        "identity.getUser" => ops::identity::get_user(s("userId")?),
        "identity.updateUser" => {
            ops::identity::update_user(s("userId")?, &map_without(&["userId"]))
        }
        "identity.deleteUser" => ops::identity::delete_user(s("userId")?),
        "identity.listUsers" => ops::identity::list_users(u("page"), u("pageSize")),
        "identity.enableUser" => ops::identity::enable_user(s("userId")?),
        "identity.disableUser" => ops::identity::disable_user(s("userId")?),
        "identity.changePassword" => ops::identity::change_password(
            s("userId")?,
            &Secret::new(s("currentPassword")?),
            &Secret::new(s("newPassword")?),
        ),
        "identity.resetPassword" => {
            ops::identity::reset_password(s("userId")?, &Secret::new(s("newPassword")?))
        }
        "identity.createRole" => {
            ops::identity::create_role(s("name")?, s("description"), v("permissions"))
        }
        "identity.updateRole" => {
            ops::identity::update_role(s("roleId")?, &map_without(&["roleId"]))
        }
        "identity.deleteRole" => ops::identity::delete_role(s("roleId")?),
        "identity.listRoles" => ops::identity::list_roles(),
        "identity.assignRole" => ops::identity::assign_role(s("userId")?, s("roleName")?),
        "identity.removeRole" => ops::identity::remove_role(s("userId")?, s("roleName")?),
        "identity.getUserRoles" => ops::identity::get_user_roles(s("userId")?),
        "identity.grant" => ops::identity::grant(&grant()?),
        "identity.revoke" => ops::identity::revoke(&grant()?),
        "identity.getAcl" => ops::identity::get_acl(s("resourceType")?, s("resourceName")?),
        "identity.myAccess" => ops::identity::my_access(),
        "identity.getOwner" => ops::identity::get_owner(s("resourceType")?, s("resourceName")?),
        "identity.transferOwner" => {
            ops::identity::transfer_owner(s("resourceType")?, s("resourceName")?, s("newOwnerId")?)
        }
        "audit.query" => {
            let mut filter = AuditFilter::all();
            if let Some(user) = s("userId") {
                filter = filter.user(user);
            }
            if let Some(operation) = s("operation") {
                filter = filter.operation(operation);
            }
            if let Some(result) = s("result") {
                filter = filter.result(result);
            }
            if let Some(from) = v("from").and_then(Value::as_i64) {
                filter = filter.from(from);
            }
            if let Some(to) = v("to").and_then(Value::as_i64) {
                filter = filter.to(to);
            }
            if let Some(limit) = u("limit") {
                filter = filter.limit(limit);
            }
            ops::audit::query(&filter)
        }
        "procedures.register" => ops::procedures::register(v("procedure")?),
        "procedures.unregister" => ops::procedures::unregister(s("name")?),
        "procedures.update" => ops::procedures::update(s("name")?, v("updates")?),
        "procedures.get" => ops::procedures::get(s("name")?),
        "procedures.list" => ops::procedures::list(),
        "procedures.call" => ops::procedures::call(s("name")?, v("input")?),
        "server.stats" => ops::server::stats(),
        "server.connections" => ops::server::connections(),
        _ => return None,
    };
    Some(op)
}
