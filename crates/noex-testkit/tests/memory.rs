//! The in-memory server (`noex_testkit::memory`) on virtual time: welcome, requests and
//! answers, pushes and their order, heartbeat, session expiry, rule timers, TTL purge,
//! restart, drop and close, limits. No sockets, threads or sleeps.

use std::time::Duration;

use noex_testkit::memory::{MemoryOutput, MemoryServer};
use noex_testkit::{AuthMode, BucketDef, QueryDef, TestServer, TestServerBuilder, TokenSession};
use serde_json::{json, Value};

/// 2026-11-30T00:00:00Z, a plausible epoch-millisecond time.
const T0: i64 = 1_796_083_200_000;

fn users() -> TestServerBuilder {
    TestServer::builder()
        .bucket(
            BucketDef::new("users")
                .field("name", json!({"type": "string", "required": true}))
                .field("age", json!({"type": "number"})),
        )
        .query("all-users", QueryDef::all("users"))
}

/// A harness: the server, a request counter, and helpers that read its output.
struct H {
    s: MemoryServer,
    next_id: u64,
}

impl H {
    fn new(b: TestServerBuilder) -> H {
        H {
            s: b.start_in_memory(T0).expect("in-memory server"),
            next_id: 0,
        }
    }

    /// Open a connection at `at` and take its welcome.
    fn open(&mut self, at: i64) -> u64 {
        let c = self.s.open(at);
        let (conn, w) = self.next();
        assert_eq!(conn, c);
        assert_eq!(w["type"], "welcome", "{w}");
        c
    }

    /// The next output, which must be a JSON text frame.
    fn next(&mut self) -> (u64, Value) {
        match self.s.poll_output() {
            Some((c, MemoryOutput::Text(t))) => (c, serde_json::from_str(&t).expect("JSON")),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    fn quiet(&mut self) {
        assert_eq!(self.s.poll_output(), None);
    }

    /// Send `req` (an id added) on `conn` at `at`; the answer (pushes before it fail).
    fn ask(&mut self, conn: u64, at: i64, mut req: Value) -> Value {
        self.next_id += 1;
        req["id"] = self.next_id.into();
        self.s.receive(conn, at, &req.to_string());
        let (c, answer) = self.next();
        assert_eq!(c, conn, "answer on the asking connection: {answer}");
        assert_eq!(answer["id"], self.next_id, "{answer}");
        answer
    }

    fn ok(&mut self, conn: u64, at: i64, req: Value) -> Value {
        let a = self.ask(conn, at, req);
        assert_eq!(a["type"], "result", "{a}");
        a["data"].clone()
    }

    /// `(code, message)` of an error answer.
    fn err(&mut self, conn: u64, at: i64, req: Value) -> (String, String) {
        let a = self.ask(conn, at, req);
        assert_eq!(a["type"], "error", "{a}");
        (
            a["code"].as_str().unwrap_or_default().to_string(),
            a["message"].as_str().unwrap_or_default().to_string(),
        )
    }
}

#[test]
fn welcome_carries_the_virtual_time() {
    let mut s = TestServer::builder().start_in_memory(T0).expect("start");
    assert_eq!(s.now_ms(), T0);
    let c = s.open(T0 + 5);
    let Some((conn, MemoryOutput::Text(t))) = s.poll_output() else {
        panic!("welcome expected");
    };
    assert_eq!(conn, c);
    assert_eq!(
        t,
        format!(
            r#"{{"type":"welcome","version":"1.0.0","serverTime":{},"requiresAuth":false}}"#,
            T0 + 5
        )
    );
    assert_eq!(s.poll_output(), None);
    assert_eq!(s.connection_count(), 1);

    let mut s = TestServer::builder()
        .auth(AuthMode::identity("s3cret"))
        .start_in_memory(T0)
        .expect("start");
    s.open(T0);
    let Some((_, MemoryOutput::Text(t))) = s.poll_output() else {
        panic!("welcome expected");
    };
    assert!(t.ends_with(r#""requiresAuth":true}"#), "{t}");
}

#[test]
fn requests_get_answers_with_virtual_timestamps() {
    let mut h = H::new(users());
    let c = h.open(T0);
    let rec = h.ok(
        c,
        T0 + 10,
        json!({"type": "store.insert", "bucket": "users", "data": {"name": "Ann", "age": 30}}),
    );
    assert_eq!(
        (rec["_createdAt"].clone(), rec["_version"].clone()),
        (json!(T0 + 10), json!(1))
    );
    let got = h.ok(
        c,
        T0 + 20,
        json!({"type": "store.update", "bucket": "users", "key": rec["id"], "data": {"age": 31}}),
    );
    assert_eq!(got["_updatedAt"], T0 + 20);
    // Errors and framing errors as on the socket server.
    let (code, _) = h.err(
        c,
        T0 + 20,
        json!({"type": "store.insert", "bucket": "users", "data": {}}),
    );
    assert_eq!(code, "VALIDATION_ERROR");
    h.s.receive(c, T0 + 20, "not json");
    let (_, e) = h.next();
    assert_eq!(
        (e["id"].clone(), e["code"].clone()),
        (json!(0), json!("PARSE_ERROR"))
    );
    h.quiet();
    assert_eq!(h.s.records("users").len(), 1);
    // A time earlier than one given before is taken as the later one.
    let rec = h.ok(
        c,
        T0,
        json!({"type": "store.insert", "bucket": "users", "data": {"name": "Bo"}}),
    );
    assert_eq!(rec["_createdAt"], T0 + 20);
    assert_eq!(h.s.now_ms(), T0 + 20);
    // `insert` from the harness goes through the same validation.
    assert!(h.s.insert("users", json!({"age": 1})).is_err());
    assert_eq!(h.s.received_frames().len(), 1);
}

#[test]
fn subscription_push_follows_the_answer_that_caused_it() {
    let mut h = H::new(users());
    let (a, b) = (h.open(T0), h.open(T0));
    let sub = h.ok(
        a,
        T0,
        json!({"type": "store.subscribe", "query": "all-users"}),
    );
    assert_eq!(sub["subscriptionId"], "sub-1");
    assert_eq!(h.s.subscription_count(), 1);
    h.s.receive(
        b,
        T0 + 1,
        &json!({"id": 7, "type": "store.insert", "bucket": "users", "data": {"name": "Ann"}})
            .to_string(),
    );
    let (c1, answer) = h.next();
    let (c2, push) = h.next();
    assert_eq!((c1, answer["id"].clone()), (b, json!(7)));
    assert_eq!(
        (c2, push["type"].clone(), push["channel"].clone()),
        (a, json!("push"), json!("subscription"))
    );
    assert_eq!(push["data"][0]["name"], "Ann");
    h.quiet();
    // A direct insert pushes too.
    h.s.insert("users", json!({"name": "Bo"})).expect("insert");
    let (c, push) = h.next();
    assert_eq!((c, push["data"].as_array().map(Vec::len)), (a, Some(2)));
    // The subscriber leaves: its subscription ends, nothing is sent.
    h.s.receive_close(a, T0 + 2);
    h.quiet();
    assert_eq!((h.s.connection_count(), h.s.subscription_count()), (1, 0));
    // Frames for a closed connection are ignored.
    h.s.receive(a, T0 + 3, r#"{"id":1,"type":"store.buckets"}"#);
    h.quiet();
}

#[test]
fn heartbeat_pings_on_virtual_time_and_closes_4001_without_pong() {
    let mut h = H::new(TestServer::builder().heartbeat(Duration::from_millis(1000)));
    let c = h.open(T0 + 100);
    assert_eq!(h.s.poll_timeout(), Some(T0 + 1100));
    h.s.handle_timeout(T0 + 1099);
    h.quiet();
    h.s.handle_timeout(T0 + 1100);
    let (conn, ping) = h.next();
    assert_eq!(
        (conn, ping),
        (c, json!({"type": "ping", "timestamp": T0 + 1100}))
    );
    h.quiet();
    // The pong carries the ping's timestamp: the next tick pings again.
    h.s.receive(
        c,
        T0 + 1150,
        &json!({"type": "pong", "timestamp": T0 + 1100}).to_string(),
    );
    h.quiet();
    assert_eq!(h.s.poll_timeout(), Some(T0 + 2100));
    h.s.handle_timeout(T0 + 2100);
    assert_eq!(h.next().1, json!({"type": "ping", "timestamp": T0 + 2100}));
    // A pong with an older timestamp does not count.
    h.s.receive(
        c,
        T0 + 2200,
        &json!({"type": "pong", "timestamp": T0 + 1100}).to_string(),
    );
    h.s.handle_timeout(T0 + 3100);
    assert_eq!(
        h.s.poll_output(),
        Some((
            c,
            MemoryOutput::Close {
                code: 4001,
                reason: "heartbeat_timeout".into()
            }
        ))
    );
    h.quiet();
    assert_eq!(h.s.connection_count(), 0);
    assert_eq!(h.s.poll_timeout(), None);
}

#[test]
fn late_timeouts_tick_once_and_reschedule_from_the_call() {
    let mut h = H::new(TestServer::builder().heartbeat(Duration::from_millis(1000)));
    let (a, b) = (h.open(T0), h.open(T0 + 500));
    // Both are due by T0 + 5000; each ticks once, in order of due time.
    h.s.handle_timeout(T0 + 5000);
    assert_eq!(
        h.next(),
        (a, json!({"type": "ping", "timestamp": T0 + 5000}))
    );
    assert_eq!(
        h.next(),
        (b, json!({"type": "ping", "timestamp": T0 + 5000}))
    );
    h.quiet();
    assert_eq!(h.s.poll_timeout(), Some(T0 + 6000));
}

#[test]
fn identity_session_expires_on_virtual_time() {
    let mut h = H::new(
        users()
            .auth(AuthMode::identity("s3cret"))
            .session_ttl(Duration::from_millis(1000)),
    );
    let c = h.open(T0);
    let login = h.ok(
        c,
        T0,
        json!({"type": "identity.loginWithSecret", "secret": "s3cret"}),
    );
    assert_eq!(login["expiresAt"], T0 + 1000);
    let token = login["token"].clone();
    // Still valid at exactly expiresAt (the check is `expiresAt < now`).
    h.ok(c, T0 + 1000, json!({"type": "store.buckets"}));
    let (code, msg) = h.err(c, T0 + 1001, json!({"type": "store.buckets"}));
    assert_eq!(
        (code.as_str(), msg.as_str()),
        ("UNAUTHORIZED", "Session expired")
    );
    let (_, msg) = h.err(c, T0 + 1001, json!({"type": "store.buckets"}));
    assert_eq!(msg, "Authentication required");
    // The stored session has expired too: a new connection cannot resume with it.
    let d = h.open(T0 + 1002);
    let (code, msg) = h.err(d, T0 + 1002, json!({"type": "auth.login", "token": token}));
    assert_eq!(
        (code.as_str(), msg.as_str()),
        ("UNAUTHORIZED", "Invalid token")
    );
}

#[test]
fn expire_sessions_ends_every_session_now() {
    let mut h = H::new(users().auth(AuthMode::tokens([TokenSession::new(
        "tok",
        "u1",
        ["admin"],
    )])));
    let (a, b) = (h.open(T0), h.open(T0));
    h.ok(a, T0, json!({"type": "auth.login", "token": "tok"}));
    h.ok(b, T0, json!({"type": "auth.login", "token": "tok"}));
    h.s.expire_sessions();
    h.quiet();
    let (_, msg) = h.err(a, T0, json!({"type": "store.buckets"}));
    assert_eq!(msg, "Session expired");
    assert_eq!(
        h.ok(b, T0, json!({"type": "auth.whoami"})),
        json!({"authenticated": false})
    );
    // A new login makes a new session.
    h.ok(b, T0, json!({"type": "auth.login", "token": "tok"}));
    h.ok(b, T0, json!({"type": "store.buckets"}));
}

#[test]
fn rule_timers_fire_when_due() {
    let mut h = H::new(TestServer::builder().heartbeat(Duration::from_secs(3600)));
    let c = h.open(T0);
    h.ok(
        c,
        T0,
        json!({"type": "rules.subscribe", "pattern": "timer.*"}),
    );
    let rule = json!({"id": "t", "name": "t", "priority": 0, "enabled": true, "tags": [],
        "trigger": {"type": "event", "topic": "start"}, "conditions": [],
        "actions": [{"type": "set_timer", "timer": {"name": "t1", "duration": 250,
            "onExpire": {"topic": "timer.done", "data": {}}}}]});
    h.ok(c, T0, json!({"type": "rules.registerRule", "rule": rule}));
    h.ok(
        c,
        T0 + 10,
        json!({"type": "rules.emit", "topic": "start", "data": {}}),
    );
    assert_eq!(h.s.poll_timeout(), Some(T0 + 260));
    h.s.handle_timeout(T0 + 259);
    h.quiet();
    h.s.handle_timeout(T0 + 260);
    let (conn, push) = h.next();
    assert_eq!((conn, push["channel"].clone()), (c, json!("event")));
    assert_eq!(push["data"]["topic"], "timer.done");
    assert_eq!(push["data"]["event"]["timestamp"], T0 + 260);
    h.quiet();
    assert_eq!(h.s.poll_timeout(), Some(T0 + 3_600_000));
}

#[test]
fn ttl_purge_runs_on_its_interval() {
    let b = TestServer::builder()
        .bucket_json(
            "cache",
            json!({"key": "id", "ttl": 1500, "schema": {"id": {"type": "string"}}}),
        )
        .query("cache-all", QueryDef::all("cache"))
        .heartbeat(Duration::from_secs(3600));
    let mut h = H::new(b);
    let c = h.open(T0);
    h.ok(
        c,
        T0,
        json!({"type": "store.subscribe", "query": "cache-all"}),
    );
    h.ok(
        c,
        T0 + 100,
        json!({"type": "store.insert", "bucket": "cache", "data": {"id": "x"}}),
    );
    let (_, push) = h.next();
    assert_eq!(push["data"].as_array().map(Vec::len), Some(1));
    // Purges at T0 + 1000, 2000, ...: the record (expiring at T0 + 1600) goes at 2000.
    assert_eq!(h.s.poll_timeout(), Some(T0 + 1000));
    h.s.handle_timeout(T0 + 1000);
    h.quiet();
    assert_eq!(h.s.poll_timeout(), Some(T0 + 2000));
    h.s.handle_timeout(T0 + 2000);
    let (_, push) = h.next();
    assert_eq!(push["data"], json!([]));
    assert!(h.s.records("cache").is_empty());
}

#[test]
fn restart_drops_connections_and_keeps_or_resets_data() {
    let mut h = H::new(users());
    let (a, b) = (h.open(T0), h.open(T0));
    h.ok(
        a,
        T0,
        json!({"type": "store.subscribe", "query": "all-users"}),
    );
    h.ok(
        b,
        T0,
        json!({"type": "store.insert", "bucket": "users", "data": {"name": "Ann"}}),
    );
    let _push = h.next();
    h.s.restart(true);
    assert_eq!(h.s.poll_output(), Some((a, MemoryOutput::Dropped)));
    assert_eq!(h.s.poll_output(), Some((b, MemoryOutput::Dropped)));
    h.quiet();
    assert_eq!((h.s.connection_count(), h.s.subscription_count()), (0, 0));
    assert_eq!(h.s.records("users").len(), 1);
    let c = h.open(T0 + 10);
    assert!(c > b, "numbers are not reused");
    let sub = h.ok(
        c,
        T0 + 10,
        json!({"type": "store.subscribe", "query": "all-users"}),
    );
    assert_eq!(
        sub["subscriptionId"], "sub-1",
        "subscription ids start again"
    );
    h.s.restart(false);
    assert_eq!(h.s.poll_output(), Some((c, MemoryOutput::Dropped)));
    assert!(h.s.records("users").is_empty());
    assert_eq!(h.s.poll_timeout(), None);
}

#[test]
fn drop_close_and_revoke_end_connections() {
    let mut h = H::new(users());
    let (a, b) = (h.open(T0), h.open(T0));
    h.s.drop_connections();
    assert_eq!(h.s.poll_output(), Some((a, MemoryOutput::Dropped)));
    assert_eq!(h.s.poll_output(), Some((b, MemoryOutput::Dropped)));
    h.quiet();
    assert_eq!(h.s.connection_count(), 0);

    let c = h.open(T0);
    h.s.close_connections(4000, "bye");
    assert_eq!(
        h.s.poll_output(),
        Some((
            c,
            MemoryOutput::Close {
                code: 4000,
                reason: "bye".into()
            }
        ))
    );
    assert_eq!(h.s.connection_count(), 0);

    let d = h.open(T0);
    h.s.revoke_sessions("test");
    let (conn, sys) = h.next();
    assert_eq!(
        (conn, sys),
        (
            d,
            json!({"type": "system", "event": "session_revoked", "reason": "Session revoked by administrator"})
        )
    );
    assert_eq!(
        h.s.poll_output(),
        Some((
            d,
            MemoryOutput::Close {
                code: 4002,
                reason: "session_revoked".into()
            }
        ))
    );
    h.quiet();
}

#[test]
fn oversized_frames_close_1009_and_the_ip_limit_4003() {
    let mut h = H::new(users().max_payload_bytes(64).max_connections_per_ip(1));
    let a = h.open(T0);
    let refused = h.s.open(T0);
    assert_ne!(refused, a);
    assert_eq!(
        h.s.poll_output(),
        Some((
            refused,
            MemoryOutput::Close {
                code: 4003,
                reason: "too_many_connections".into()
            }
        ))
    );
    assert_eq!(h.s.connection_count(), 1);
    h.s.receive(a, T0, &"x".repeat(65));
    assert_eq!(
        h.s.poll_output(),
        Some((
            a,
            MemoryOutput::Close {
                code: 1009,
                reason: String::new()
            }
        ))
    );
    assert_eq!(h.s.connection_count(), 0);
    // The limit counts open connections only.
    h.open(T0);
}

#[test]
fn configuration_errors_are_reported() {
    let r = TestServer::builder()
        .bucket_json("b", json!(1))
        .start_in_memory(T0);
    assert!(
        matches!(r, Err(noex_testkit::TestkitError::Config(_))),
        "{r:?}"
    );
}
