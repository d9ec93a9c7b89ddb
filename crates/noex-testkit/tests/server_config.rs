//! Server configuration as the real server's config file has it: rate limiting, heartbeat,
//! subscription limits, TTL and maxSize buckets, the `pattern` constraint, procedure
//! timeouts, optional auth, permissions, allowed origins, payload limit, error details,
//! host binding and graceful shutdown.

mod common;

use std::time::{Duration, Instant};

use common::{Client, Event};
use noex_testkit::{
    AuthMode, BucketDef, HeartbeatConfig, PermissionDefault, PermissionRule, Permissions, QueryDef,
    RateLimit, TestServer, TokenSession,
};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

const LIMIT: Duration = Duration::from_secs(20);

async fn within<F: std::future::Future<Output = ()>>(f: F) {
    tokio::time::timeout(LIMIT, f)
        .await
        .expect("test timed out");
}

fn users() -> BucketDef {
    BucketDef::new("users").field("name", json!({"type": "string", "required": true}))
}

fn tokens() -> AuthMode {
    AuthMode::tokens([
        TokenSession::new("r", "reader-1", ["reader"]),
        TokenSession::new("w", "writer-1", ["writer"]),
        TokenSession::new("a", "admin-1", ["admin"]),
    ])
}

#[tokio::test]
async fn rate_limit_answers_rate_limited_with_retry_after() {
    within(async {
        let server = TestServer::builder()
            .bucket(users())
            .rate_limit(RateLimit::new(3, 60_000))
            .start()
            .expect("start");
        let mut c = Client::open(&server.url()).await;
        let stats = c.ok(json!({"type": "server.stats"})).await;
        assert_eq!(stats["rateLimitEnabled"], true);
        c.ok(json!({"type": "store.all", "bucket": "users"})).await;
        // A failing request consumes a token too.
        c.err(json!({"type": "store.nope"})).await;
        let (code, message, details) = c.err(json!({"type": "store.all", "bucket": "users"})).await;
        assert_eq!(code, "RATE_LIMITED");
        let retry = details["retryAfterMs"].as_i64().expect("retryAfterMs");
        assert!((1..=60_000).contains(&retry), "{retry}");
        assert_eq!(
            message,
            format!("Rate limit exceeded. Retry after {retry}ms")
        );
        // Per remote address: another connection from the same address is limited too.
        let mut d = Client::open(&server.url()).await;
        let (code, _, _) = d.err(json!({"type": "store.all", "bucket": "users"})).await;
        assert_eq!(code, "RATE_LIMITED");
    })
    .await;
}

#[tokio::test]
async fn rate_limit_window_slides() {
    within(async {
        let server = TestServer::builder()
            .rate_limit(RateLimit::new(1, 300))
            .start()
            .expect("start");
        let mut c = Client::open(&server.url()).await;
        c.ok(json!({"type": "store.buckets"})).await;
        let (code, _, _) = c.err(json!({"type": "store.buckets"})).await;
        assert_eq!(code, "RATE_LIMITED");
        tokio::time::sleep(Duration::from_millis(400)).await;
        c.ok(json!({"type": "store.buckets"})).await;
    })
    .await;
}

#[tokio::test]
async fn error_details_can_be_hidden() {
    within(async {
        let exposed = TestServer::builder()
            .bucket(users())
            .start()
            .expect("start");
        let mut c = Client::open(&exposed.url()).await;
        let (v, _) = c
            .request(json!({"type": "store.insert", "bucket": "users", "data": {}}))
            .await;
        assert_eq!(v["code"], "VALIDATION_ERROR");
        assert!(v.get("details").is_some(), "{v}");

        let hidden = TestServer::builder()
            .bucket(users())
            .expose_error_details(false)
            .rate_limit(RateLimit::new(2, 60_000))
            .start()
            .expect("start");
        let mut c = Client::open(&hidden.url()).await;
        let (v, _) = c
            .request(json!({"type": "store.insert", "bucket": "users", "data": {}}))
            .await;
        assert_eq!(v["code"], "VALIDATION_ERROR");
        assert!(
            v["message"].as_str().is_some_and(|m| m.contains("name")),
            "{v}"
        );
        assert!(v.get("details").is_none(), "{v}");
        c.ok(json!({"type": "store.buckets"})).await;
        let (v, _) = c.request(json!({"type": "store.buckets"})).await;
        assert_eq!(v["code"], "RATE_LIMITED");
        assert!(v.get("details").is_none(), "{v}");
    })
    .await;
}

#[tokio::test]
async fn server_wide_subscription_limit() {
    within(async {
        let server = TestServer::builder()
            .bucket(users())
            .query("all", QueryDef::all("users"))
            .max_total_subscriptions(2)
            .start()
            .expect("start");
        let mut a = Client::open(&server.url()).await;
        let mut b = Client::open(&server.url()).await;
        a.ok(json!({"type": "store.subscribe", "query": "all"}))
            .await;
        b.ok(json!({"type": "rules.subscribe", "pattern": "x.*"}))
            .await;
        let (code, message, details) = b
            .err(json!({"type": "store.subscribe", "query": "all"}))
            .await;
        assert_eq!(code, "RATE_LIMITED");
        assert_eq!(message, "Global subscription limit reached (max 2)");
        assert!(details.is_null());
        let (_, message, _) = a
            .err(json!({"type": "rules.subscribe", "pattern": "y"}))
            .await;
        assert_eq!(message, "Global subscription limit reached (max 2)");
        // A connection leaving frees its subscriptions.
        a.close(1000).await;
        drop(a);
        let deadline = Instant::now() + Duration::from_secs(3);
        while server.subscription_count() > 1 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        b.ok(json!({"type": "store.subscribe", "query": "all"}))
            .await;
    })
    .await;
}

#[tokio::test]
async fn heartbeat_closes_a_connection_without_pong() {
    within(async {
        let server = TestServer::builder()
            .heartbeat_config(HeartbeatConfig {
                interval_ms: 100,
                timeout_ms: 50,
            })
            .start()
            .expect("start");
        // This client never answers pings.
        let mut silent = Client::connect(&server.url()).await;
        let mut pings = 0;
        let close = loop {
            match silent.next_within(Duration::from_secs(3)).await {
                Event::Json(v) if v["type"] == "ping" => pings += 1,
                Event::Json(_) => {}
                Event::Close(c) => break c,
                other => panic!("unexpected {other:?}"),
            }
        };
        assert_eq!(close, Some((4001, "heartbeat_timeout".into())));
        assert_eq!(pings, 1, "closed at the tick after the unanswered ping");
        drop(silent);
        let deadline = Instant::now() + Duration::from_secs(4);
        while server.connection_count() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(server.connection_count(), 0);
        // A client that answers stays connected across many ticks.
        let mut live = Client::open(&server.url()).await;
        let until = Instant::now() + Duration::from_millis(600);
        while Instant::now() < until {
            live.ok(json!({"type": "store.buckets"})).await;
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        assert_eq!(server.connection_count(), 1);
    })
    .await;
}

#[tokio::test]
async fn ttl_buckets_expire_records_and_push() {
    within(async {
        let server = TestServer::builder()
            .bucket_json(
                "sessions",
                json!({"key": "id", "ttl": 300, "schema": {"id": {"type": "string", "generated": "uuid"}, "who": {"type": "string"}}}),
            )
            .query("live", QueryDef::all("sessions"))
            .ttl_check_interval(Duration::from_millis(50))
            .start()
            .expect("start");
        let mut c = Client::open(&server.url()).await;
        let sub = c.ok(json!({"type": "store.subscribe", "query": "live"})).await;
        assert_eq!(sub["data"], json!([]));
        let r = c
            .ok(json!({"type": "store.insert", "bucket": "sessions", "data": {"who": "ann"}}))
            .await;
        let created = r["_createdAt"].as_i64().expect("_createdAt");
        assert_eq!(r["_expiresAt"].as_i64(), Some(created + 300));
        let push = c.recv_json().await;
        assert_eq!(push["type"], "push");
        assert_eq!(push["data"].as_array().map(Vec::len), Some(1));
        // Expiry, driven by the server's timer, pushes the new (empty) result.
        let push = c.recv_json().await;
        assert_eq!(push["type"], "push");
        assert_eq!(push["data"], json!([]));
        assert!(server.records("sessions").is_empty());
        // Invalid TTLs are refused.
        let (code, message, _) = c
            .err(json!({"type": "store.defineBucket", "name": "bad", "config": {"key": "id", "ttl": "1w", "schema": {"id": {"type": "string"}}}}))
            .await;
        assert_eq!(code, "INTERNAL_ERROR");
        assert_eq!(
            message,
            "Invalid TTL format \"1w\". Expected a number (ms) or string like \"30s\", \"5m\", \"1h\", \"7d\"."
        );
        // String TTLs work; purge on demand.
        c.ok(json!({"type": "store.defineBucket", "name": "short", "config": {"key": "id", "ttl": "1s", "schema": {"id": {"type": "string", "generated": "uuid"}}}}))
            .await;
        let r = c
            .ok(json!({"type": "store.insert", "bucket": "short", "data": {}}))
            .await;
        assert_eq!(
            r["_expiresAt"].as_i64(),
            r["_createdAt"].as_i64().map(|t| t + 1000)
        );
        assert_eq!(server.purge_expired(), 0);
    })
    .await;
}

#[tokio::test]
async fn max_size_buckets_evict_the_oldest() {
    within(async {
        let server = TestServer::builder()
            .bucket_json(
                "log",
                json!({"key": "n", "maxSize": 2, "schema": {"n": {"type": "number", "generated": "autoincrement"}, "msg": {"type": "string"}}}),
            )
            .query("log", QueryDef::all("log"))
            .start()
            .expect("start");
        let mut c = Client::open(&server.url()).await;
        c.ok(json!({"type": "store.subscribe", "query": "log"})).await;
        for m in ["a", "b", "c"] {
            let (v, _) = c
                .request(json!({"type": "store.insert", "bucket": "log", "data": {"msg": m}}))
                .await;
            assert_eq!(v["type"], "result", "{v}");
            let push = c.recv_json().await;
            assert_eq!(push["type"], "push");
        }
        let msgs: Vec<Value> = server.records("log").iter().map(|r| r["msg"].clone()).collect();
        assert_eq!(msgs, vec![json!("b"), json!("c")]);
        let all = c.ok(json!({"type": "store.all", "bucket": "log"})).await;
        assert_eq!(all.as_array().map(Vec::len), Some(2));
    })
    .await;
}

#[tokio::test]
async fn pattern_constraint() {
    within(async {
        let server = TestServer::builder()
            .bucket(
                BucketDef::new("codes")
                    .field("code", json!({"type": "string", "pattern": "^[A-Z]{3}-\\d+$"}))
                    .field("note", json!({"type": "string", "pattern": "ok"})),
            )
            .start()
            .expect("start");
        let mut c = Client::open(&server.url()).await;
        c.ok(json!({"type": "store.insert", "bucket": "codes", "data": {"code": "ABC-12", "note": "this is ok too"}}))
            .await;
        let (code, message, details) = c
            .err(json!({"type": "store.insert", "bucket": "codes", "data": {"code": "abc-12"}}))
            .await;
        assert_eq!(code, "VALIDATION_ERROR");
        assert_eq!(
            message,
            "Validation failed for bucket \"codes\": code: Value must match pattern \"^[A-Z]{3}-\\d+$\""
        );
        assert_eq!(details[0]["code"], "pattern");
        // Unanchored search, as JavaScript's `test`.
        let (code, _, _) = c
            .err(json!({"type": "store.insert", "bucket": "codes", "data": {"note": "nope"}}))
            .await;
        assert_eq!(code, "VALIDATION_ERROR");
    })
    .await;
}

#[tokio::test]
async fn procedure_timeout_never_fires_for_in_memory_steps() {
    within(async {
        let server = TestServer::builder().bucket(users()).start().expect("start");
        for i in 0..300 {
            server
                .insert("users", json!({"name": format!("user {i}")}))
                .expect("insert");
        }
        let mut c = Client::open(&server.url()).await;
        // The longest procedure the validator accepts (100 steps), reading 300 records
        // per step, with a 1 ms timeout: as on the real server, whose in-memory steps
        // settle before the timer can fire, the call succeeds.
        let mut steps: Vec<Value> = (0..99)
            .map(|i| json!({"action": "store.where", "bucket": "users", "filter": {}, "as": format!("r{i}")}))
            .collect();
        steps.push(json!({"action": "store.insert", "bucket": "users", "data": {"name": "late"}}));
        c.ok(json!({"type": "procedures.register", "procedure": {"name": "slow", "timeoutMs": 1, "steps": steps}}))
            .await;
        let r = c.ok(json!({"type": "procedures.call", "name": "slow"})).await;
        assert_eq!(r["success"], true);
        assert_eq!(server.records("users").len(), 301);
        // A non-positive timeout is refused.
        let (code, message, details) = c
            .err(json!({"type": "procedures.update", "name": "slow", "updates": {"timeoutMs": 0}}))
            .await;
        assert_eq!(code, "VALIDATION_ERROR", "{message} {details}");
    })
    .await;
}

#[tokio::test]
async fn optional_auth() {
    within(async {
        let server = TestServer::builder()
            .bucket(users())
            .auth(tokens())
            .auth_required(false)
            .start()
            .expect("start");
        let mut c = Client::connect(&server.url()).await;
        let welcome = c.recv_json().await;
        assert_eq!(welcome["requiresAuth"], false);
        c.ok(json!({"type": "store.insert", "bucket": "users", "data": {"name": "anon"}}))
            .await;
        let who = c.ok(json!({"type": "auth.whoami"})).await;
        assert_eq!(who["authenticated"], false);
        c.ok(json!({"type": "auth.login", "token": "r"})).await;
        // Once logged in, the tier check applies.
        let (code, message, _) = c
            .err(json!({"type": "store.insert", "bucket": "users", "data": {"name": "x"}}))
            .await;
        assert_eq!(code, "FORBIDDEN");
        assert_eq!(
            message,
            "Role level insufficient for store.insert (requires write)"
        );
        let stats = c.ok(json!({"type": "store.stats"})).await;
        assert!(stats.is_object());

        let required = TestServer::builder().auth(tokens()).start().expect("start");
        let mut d = Client::connect(&required.url()).await;
        assert_eq!(d.recv_json().await["requiresAuth"], true);
        let (code, _, _) = d.err(json!({"type": "store.buckets"})).await;
        assert_eq!(code, "UNAUTHORIZED");
    })
    .await;
}

#[tokio::test]
async fn permissions_check_roles() {
    within(async {
        let server = TestServer::builder()
            .bucket(users())
            .auth(tokens())
            .permissions(Permissions::check_roles(["writer", "admin"]))
            .start()
            .expect("start");
        let mut reader = Client::open(&server.url()).await;
        reader.ok(json!({"type": "auth.login", "token": "r"})).await;
        let (code, message, _) = reader
            .err(json!({"type": "store.all", "bucket": "users"}))
            .await;
        assert_eq!(code, "FORBIDDEN");
        assert_eq!(message, "No permission for store.all on users");
        let mut writer = Client::open(&server.url()).await;
        writer.ok(json!({"type": "auth.login", "token": "w"})).await;
        writer
            .ok(json!({"type": "store.all", "bucket": "users"}))
            .await;
        // The tier check comes first.
        let (_, message, _) = writer
            .err(json!({"type": "store.defineBucket", "name": "b", "config": {}}))
            .await;
        assert_eq!(
            message,
            "Role level insufficient for store.defineBucket (requires admin)"
        );
    })
    .await;
}

#[tokio::test]
async fn permissions_rules_with_resources() {
    within(async {
        let server = TestServer::builder()
            .bucket(users())
            .bucket(BucketDef::new("secrets"))
            .auth(tokens())
            .permissions(Permissions::rules(
                PermissionDefault::Deny,
                vec![
                    PermissionRule::new("writer", ["store.*"]).buckets(["users"]),
                    PermissionRule::new("writer", ["rules.emit"]).topics(["orders.*"]),
                ],
            ))
            .start()
            .expect("start");
        let mut w = Client::open(&server.url()).await;
        w.ok(json!({"type": "auth.login", "token": "w"})).await;
        w.ok(json!({"type": "store.all", "bucket": "users"})).await;
        let (_, message, _) = w
            .err(json!({"type": "store.all", "bucket": "secrets"}))
            .await;
        assert_eq!(message, "No permission for store.all on secrets");
        w.ok(json!({"type": "rules.emit", "topic": "orders.created", "data": {}}))
            .await;
        let (_, message, _) = w
            .err(json!({"type": "rules.emit", "topic": "users.created", "data": {}}))
            .await;
        assert_eq!(message, "No permission for rules.emit on users.created");
        let (_, message, _) = w.err(json!({"type": "procedures.get", "name": "p"})).await;
        assert_eq!(message, "No permission for procedures.get on *");
    })
    .await;
}

async fn connect_with_origin(url: &str, origin: Option<&str>) -> Result<Client, String> {
    let mut req = url.into_client_request().map_err(|e| e.to_string())?;
    if let Some(o) = origin {
        req.headers_mut().insert(
            "origin",
            HeaderValue::from_str(o).map_err(|e| e.to_string())?,
        );
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(Client::from_ws(ws)),
        Err(e) => Err(e.to_string()),
    }
}

#[tokio::test]
async fn allowed_origins() {
    within(async {
        let server = TestServer::builder()
            .allowed_origins(["https://good.example"])
            .start()
            .expect("start");
        let mut good = connect_with_origin(&server.url(), Some("https://good.example"))
            .await
            .expect("allowed origin");
        assert_eq!(good.recv_json().await["type"], "welcome");
        let mut none = connect_with_origin(&server.url(), None)
            .await
            .expect("no origin is always allowed");
        assert_eq!(none.recv_json().await["type"], "welcome");
        let bad = connect_with_origin(&server.url(), Some("https://evil.example")).await;
        let err = bad.err().expect("a disallowed origin is refused");
        assert!(err.contains("403"), "{err}");
        assert_eq!(server.connection_count(), 2);
    })
    .await;
}

#[tokio::test]
async fn max_payload_bytes() {
    within(async {
        let server = TestServer::builder()
            .max_payload_bytes(1024)
            .start()
            .expect("start");
        let mut c = Client::open(&server.url()).await;
        let ok = json!({"id": 1, "type": "store.buckets", "pad": "a".repeat(500)});
        c.send_json(&ok).await;
        assert_eq!(c.recv_json().await["type"], "result");
        let big = json!({"id": 2, "type": "store.buckets", "pad": "a".repeat(2000)});
        if c.try_send_text(&big.to_string()).await {
            let end = c.next_within(Duration::from_secs(3)).await;
            assert!(
                matches!(end, Event::Close(Some((1009, _))) | Event::Ended),
                "{end:?}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn host_binding() {
    within(async {
        let server = TestServer::builder()
            .host("0.0.0.0")
            .start()
            .expect("start");
        assert!(
            server.url().starts_with("ws://127.0.0.1:"),
            "{}",
            server.url()
        );
        let mut c = Client::open(&server.url()).await;
        c.ok(json!({"type": "store.buckets"})).await;
        let explicit = TestServer::builder()
            .host("127.0.0.1")
            .port(0)
            .start()
            .expect("start");
        assert_eq!(
            explicit.local_addr().ip(),
            std::net::IpAddr::from([127, 0, 0, 1])
        );
    })
    .await;
}

#[tokio::test]
async fn graceful_shutdown_notifies_then_closes() {
    within(async {
        let server = std::sync::Arc::new(TestServer::builder().start().expect("start"));
        let url = server.url();
        let mut stays = Client::open(&url).await;
        let mut leaves = Client::open(&url).await;
        let s = server.clone();
        let started = Instant::now();
        let stop = tokio::task::spawn_blocking(move || s.shutdown(Duration::from_millis(400)));
        for c in [&mut stays, &mut leaves] {
            let notice = c.recv_json().await;
            assert_eq!(
                notice,
                json!({"type": "system", "event": "shutdown", "gracePeriodMs": 400})
            );
        }
        leaves.close(1000).await;
        let close = stays.expect_close(Duration::from_secs(5)).await;
        assert_eq!(close, Some((1000, "server_shutdown".into())));
        assert!(
            started.elapsed() >= Duration::from_millis(350),
            "{:?}",
            started.elapsed()
        );
        stop.await.expect("shutdown returns");
        assert!(tokio_tungstenite::connect_async(url.as_str())
            .await
            .is_err());
    })
    .await;
}

#[tokio::test]
async fn graceful_shutdown_ends_early_when_everyone_left() {
    within(async {
        let server = std::sync::Arc::new(TestServer::builder().start().expect("start"));
        let mut c = Client::open(&server.url()).await;
        let s = server.clone();
        let started = Instant::now();
        let stop = tokio::task::spawn_blocking(move || s.shutdown(Duration::from_secs(30)));
        let notice = c.recv_json().await;
        assert_eq!(notice["event"], "shutdown");
        c.close(1000).await;
        drop(c);
        stop.await.expect("shutdown returns");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        // Idempotent with stop.
        server.stop();
    })
    .await;
}

#[tokio::test]
async fn rate_limit_is_per_user_once_authenticated() {
    within(async {
        let server = TestServer::builder()
            .auth(tokens())
            .rate_limit(RateLimit::new(2, 60_000))
            .start()
            .expect("start");
        let mut a = Client::open(&server.url()).await;
        let mut b = Client::open(&server.url()).await;
        // auth.* requests consume tokens too (of the remote address, before login).
        a.ok(json!({"type": "auth.login", "token": "r"})).await;
        b.ok(json!({"type": "auth.login", "token": "w"})).await;
        for c in [&mut a, &mut b] {
            c.ok(json!({"type": "store.buckets"})).await;
            c.ok(json!({"type": "store.buckets"})).await;
            let (code, _, _) = c.err(json!({"type": "store.buckets"})).await;
            assert_eq!(code, "RATE_LIMITED");
        }
        // An unauthenticated request is refused before the limiter.
        let mut anon = Client::open(&server.url()).await;
        for _ in 0..3 {
            let (code, _, _) = anon.err(json!({"type": "store.buckets"})).await;
            assert_eq!(code, "UNAUTHORIZED");
        }
    })
    .await;
}

#[tokio::test]
async fn audit_tiers_max_entries_and_name() {
    within(async {
        let server = TestServer::builder()
            .bucket(users())
            .audit(true)
            .audit_tiers(["write"])
            .audit_max_entries(2)
            .name("my-server")
            .start()
            .expect("start");
        let mut c = Client::open(&server.url()).await;
        let stats = c.ok(json!({"type": "server.stats"})).await;
        assert_eq!(stats["name"], "my-server");
        for n in ["a", "b", "c"] {
            c.ok(json!({"type": "store.insert", "bucket": "users", "data": {"name": n}}))
                .await;
        }
        c.ok(json!({"type": "store.defineBucket", "name": "x", "config": {"key": "id", "schema": {"id": {"type": "string"}}}}))
            .await;
        let log = c.ok(json!({"type": "audit.query"})).await;
        let ops: Vec<Value> = log["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .map(|e| e["operation"].clone())
            .collect();
        // Only the write tier, newest first, at most two.
        assert_eq!(ops, vec![json!("store.insert"), json!("store.insert")]);
    })
    .await;
}

#[tokio::test]
async fn heartbeat_compares_pong_timestamps() {
    within(async {
        let server = TestServer::builder()
            .heartbeat_config(HeartbeatConfig {
                interval_ms: 100,
                timeout_ms: 10_000,
            })
            .start()
            .expect("start");
        // A pong carrying an older timestamp than the ping does not count.
        let mut stale = Client::connect(&server.url()).await;
        let close = loop {
            match stale.next_within(Duration::from_secs(3)).await {
                Event::Json(v) if v["type"] == "ping" => {
                    let ts = v["timestamp"].as_f64().unwrap_or(0.0) - 1000.0;
                    stale
                        .send_json(&json!({"type": "pong", "timestamp": ts}))
                        .await;
                }
                Event::Json(_) => {}
                Event::Close(c) => break c,
                other => panic!("unexpected {other:?}"),
            }
        };
        assert_eq!(close, Some((4001, "heartbeat_timeout".into())));
        // A pong from the far future satisfies every later check.
        let mut future = Client::connect(&server.url()).await;
        let mut pings = 0;
        while pings < 4 {
            match future.next_within(Duration::from_secs(3)).await {
                Event::Json(v) if v["type"] == "ping" => {
                    if pings == 0 {
                        future
                            .send_json(&json!({"type": "pong", "timestamp": 9e15}))
                            .await;
                    }
                    pings += 1;
                }
                Event::Json(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    })
    .await;
}
