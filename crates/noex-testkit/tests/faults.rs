//! Fault injection controls, heartbeat, close codes and limits.

mod common;

use std::time::{Duration, Instant};

use common::{Client, Event};
use noex_testkit::{BucketDef, HandshakeFault, QueryDef, TestServer};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const LIMIT: Duration = Duration::from_secs(15);

fn users() -> TestServer {
    TestServer::builder()
        .bucket(BucketDef::new("users").field("name", json!({"type": "string"})))
        .query("all-users", QueryDef::all("users"))
        .start()
        .expect("start")
}

async fn within<F: std::future::Future<Output = ()>>(f: F) {
    tokio::time::timeout(LIMIT, f)
        .await
        .expect("test timed out");
}

async fn wait_for(mut cond: impl FnMut() -> bool) {
    for _ in 0..200 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached");
}

/// A WebSocket upgrade request, as a client sends it.
const UPGRADE: &str = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\n\r\n";

/// A raw TCP client that has sent the upgrade request.
async fn raw_upgrade(server: &TestServer) -> TcpStream {
    let mut tcp = TcpStream::connect(("127.0.0.1", server.port()))
        .await
        .expect("tcp connect");
    tcp.write_all(UPGRADE.as_bytes())
        .await
        .expect("send upgrade");
    tcp
}

#[tokio::test]
async fn drop_connections_closes_without_close_frame() {
    within(async {
        let server = users();
        let mut c = Client::open(&server.url()).await;
        wait_for(|| server.connection_count() == 1).await;
        server.drop_connections();
        match c.next_within(Duration::from_secs(2)).await {
            Event::Ended => {}
            other => panic!("expected an abrupt end, got {other:?}"),
        }
        wait_for(|| server.connection_count() == 0).await;
    })
    .await;
}

#[tokio::test]
async fn close_connections_sends_code_and_reason() {
    within(async {
        let server = users();
        for (code, reason) in [
            (1000, "normal_closure"),
            (1001, "going_away"),
            (4001, "heartbeat_timeout"),
            (1003, "binary_not_supported"),
            (4002, "session_revoked"),
            (4003, "too_many_connections"),
        ] {
            let mut c = Client::open(&server.url()).await;
            server.close_connections(code, reason);
            assert_eq!(
                c.expect_close(Duration::from_secs(2)).await,
                Some((code, reason.to_string()))
            );
        }
    })
    .await;
}

#[tokio::test]
async fn stall_holds_frames_and_resume_delivers_them() {
    within(async {
        let server = TestServer::builder()
            .bucket(BucketDef::new("users"))
            .heartbeat(Duration::from_millis(100))
            .start()
            .expect("start");
        let mut c = Client::open(&server.url()).await;
        server.stall();
        c.send_json(&json!({"id": 1, "type": "store.insert", "bucket": "users", "data": {"n": 1}}))
            .await;
        // Nothing at all (no answer, no ping, no heartbeat close) while stalled.
        assert!(c.silent_for(Duration::from_millis(600)).await);
        assert!(
            server.records("users").is_empty(),
            "request not applied while stalled"
        );
        server.resume();
        let v = c.recv_json().await;
        assert_eq!(v["id"], 1);
        assert_eq!(v["type"], "result");
        assert_eq!(server.records("users").len(), 1);
        // Heartbeat works again afterwards (requests answer pings on the way).
        for _ in 0..6 {
            tokio::time::sleep(Duration::from_millis(60)).await;
            let data = c
                .ok(json!({"type": "store.count", "bucket": "users"}))
                .await;
            assert_eq!(data, 1);
        }
    })
    .await;
}

#[tokio::test]
async fn delay_slows_every_answer() {
    within(async {
        let server = users();
        let mut c = Client::open(&server.url()).await;
        server.set_delay(Duration::from_millis(300));
        let t = Instant::now();
        c.ok(json!({"type": "store.all", "bucket": "users"})).await;
        c.ok(json!({"type": "store.all", "bucket": "users"})).await;
        assert!(t.elapsed() >= Duration::from_millis(600));
        server.set_delay(Duration::ZERO);
        let t = Instant::now();
        c.ok(json!({"type": "store.all", "bucket": "users"})).await;
        assert!(t.elapsed() < Duration::from_millis(250));
    })
    .await;
}

#[tokio::test]
async fn raw_frames_reach_every_client() {
    within(async {
        let server = users();
        let mut a = Client::open(&server.url()).await;
        let mut b = Client::open(&server.url()).await;
        wait_for(|| server.connection_count() == 2).await;
        server.send_raw_text("{not json");
        server.send_raw_text(r#"{"type":"mystery","x":1}"#);
        server.send_raw_binary(vec![1, 2, 3]);
        for c in [&mut a, &mut b] {
            assert!(matches!(c.next_within(Duration::from_secs(2)).await, Event::Text(t) if t == "{not json"));
            assert!(matches!(c.next_within(Duration::from_secs(2)).await, Event::Json(v) if v["type"] == "mystery"));
            assert!(matches!(c.next_within(Duration::from_secs(2)).await, Event::Binary(b) if b == vec![1, 2, 3]));
        }
    })
    .await;
}

#[tokio::test]
async fn shutdown_refuses_new_connections_during_grace() {
    within(async {
        let server = users();
        let mut c = Client::open(&server.url()).await;
        server.send_shutdown(400);
        let sys = c.recv_json().await;
        assert_eq!(
            sys,
            json!({"type": "system", "event": "shutdown", "gracePeriodMs": 400})
        );
        let mut late = Client::connect(&server.url()).await;
        assert_eq!(
            late.expect_close(Duration::from_secs(2)).await,
            Some((1001, "server_shutting_down".into()))
        );
        assert_eq!(
            c.expect_close(Duration::from_secs(2)).await,
            Some((1000, "server_shutdown".into()))
        );
        // Serving again afterwards.
        let mut again = Client::open(&server.url()).await;
        again.ok(json!({"type": "store.buckets"})).await;
    })
    .await;
}

#[tokio::test]
async fn revoke_sessions_sends_system_event_then_4002() {
    within(async {
        let server = users();
        let mut c = Client::open(&server.url()).await;
        server.revoke_sessions("test");
        let sys = c.recv_json().await;
        assert_eq!(sys["type"], "system");
        assert_eq!(sys["event"], "session_revoked");
        assert!(sys["reason"].is_string());
        assert_eq!(
            c.expect_close(Duration::from_secs(2)).await,
            Some((4002, "session_revoked".into()))
        );
    })
    .await;
}

#[tokio::test]
async fn restart_keeps_or_wipes_data_on_the_same_port() {
    within(async {
        let server = users();
        let port = server.port();
        let mut c = Client::open(&server.url()).await;
        c.ok(json!({"type": "store.insert", "bucket": "users", "data": {"name": "A"}}))
            .await;
        let sub = c
            .ok(json!({"type": "store.subscribe", "query": "all-users"}))
            .await;
        assert_eq!(sub["subscriptionId"], "sub-1");

        server.restart(true); // synchronous, called from inside a runtime
        assert_eq!(
            c.expect_close(Duration::from_secs(3)).await,
            Some((1000, "server_shutdown".into()))
        );
        assert_eq!(server.port(), port);
        let mut c = Client::open(&server.url()).await;
        assert_eq!(
            c.ok(json!({"type": "store.count", "bucket": "users"}))
                .await,
            1
        );
        let sub = c
            .ok(json!({"type": "store.subscribe", "query": "all-users"}))
            .await;
        assert_eq!(
            sub["subscriptionId"], "sub-1",
            "ids restart with the process"
        );

        server.restart(false);
        let _ = c.expect_close(Duration::from_secs(3)).await;
        let mut c = Client::open(&server.url()).await;
        assert_eq!(
            c.ok(json!({"type": "store.count", "bucket": "users"}))
                .await,
            0
        );
        server.stop();
        assert!(tokio_tungstenite::connect_async(server.url())
            .await
            .is_err());
    })
    .await;
}

#[tokio::test]
async fn received_frames_are_logged_per_connection() {
    within(async {
        let server = users();
        let mut a = Client::open(&server.url()).await;
        a.send_text("{garbage").await;
        a.ok(json!({"type": "store.buckets"})).await;
        let mut b = Client::open(&server.url()).await;
        b.ok(json!({"type": "store.stats"})).await;
        let logs = server.received_frames();
        assert_eq!(logs.len(), 2);
        assert_eq!(logs[0].id, "conn-1");
        assert_eq!(logs[0].frames[0], "{garbage");
        assert!(logs[0].frames[1].contains("store.buckets"));
        assert_eq!(logs[1].frames.len(), 1);
        assert!(logs[1].frames[0].contains("store.stats"));
    })
    .await;
}

#[tokio::test]
async fn heartbeat_pings_and_answered_pongs_keep_the_connection() {
    within(async {
        let server = TestServer::builder()
            .heartbeat(Duration::from_millis(100))
            .start()
            .expect("start");
        let mut c = Client::open(&server.url()).await;
        let mut pings = 0;
        let until = Instant::now() + Duration::from_millis(550);
        while Instant::now() < until {
            if let Event::Json(v) = c.next_within(Duration::from_secs(1)).await {
                assert_eq!(v["type"], "ping");
                assert!(v["timestamp"].is_number());
                pings += 1;
                c.send_json(&json!({"type": "pong", "timestamp": v["timestamp"]}))
                    .await;
            }
        }
        assert!(pings >= 3, "got {pings} pings");
        c.ok(json!({"type": "store.buckets"})).await;
        // Stop answering: closed with 4001 by the next tick.
        let got = c.expect_close(Duration::from_secs(2)).await;
        assert_eq!(got, Some((4001, "heartbeat_timeout".into())));
    })
    .await;
}

#[tokio::test]
async fn per_ip_limit_closes_with_4003() {
    within(async {
        let server = TestServer::builder()
            .max_connections_per_ip(1)
            .start()
            .expect("start");
        let _a = Client::open(&server.url()).await;
        let mut b = Client::connect(&server.url()).await;
        assert_eq!(
            b.expect_close(Duration::from_secs(2)).await,
            Some((4003, "too_many_connections".into()))
        );
        drop(_a);
        wait_for(|| server.connection_count() == 0).await;
        let _c = Client::open(&server.url()).await;
    })
    .await;
}

#[tokio::test]
async fn binary_frame_closes_with_1003() {
    within(async {
        let server = users();
        let mut c = Client::open(&server.url()).await;
        c.send_binary(b"{}".to_vec()).await;
        assert_eq!(
            c.expect_close(Duration::from_secs(2)).await,
            Some((1003, "binary_not_supported".into()))
        );
    })
    .await;
}

#[tokio::test]
async fn subscription_limit_answers_rate_limited() {
    within(async {
        let server = TestServer::builder()
            .bucket(BucketDef::new("users"))
            .query("all-users", QueryDef::all("users"))
            .max_subscriptions_per_connection(2)
            .start()
            .expect("start");
        let mut c = Client::open(&server.url()).await;
        c.ok(json!({"type": "store.subscribe", "query": "all-users"}))
            .await;
        c.ok(json!({"type": "rules.subscribe", "pattern": "a.*"}))
            .await;
        for req in [
            json!({"type": "store.subscribe", "query": "all-users"}),
            json!({"type": "rules.subscribe", "pattern": "b.*"}),
        ] {
            let (code, message, details) = c.err(req).await;
            assert_eq!(code, "RATE_LIMITED");
            assert!(
                message.starts_with("Subscription limit reached"),
                "{message}"
            );
            assert!(
                details.is_null(),
                "the real server sends no details here: {details}"
            );
        }
        // Another connection has its own budget.
        let mut d = Client::open(&server.url()).await;
        d.ok(json!({"type": "store.subscribe", "query": "all-users"}))
            .await;
    })
    .await;
}

/// The handle works without any async runtime (plain threads, blocking client).
#[test]
fn usable_from_plain_threads() {
    let server = users();
    let url = server.url();
    let t = std::thread::spawn(move || {
        let (mut ws, _) = tokio_tungstenite::tungstenite::connect(url.as_str()).expect("connect");
        let welcome = ws.read().expect("welcome");
        assert!(welcome.to_text().unwrap_or_default().contains("welcome"));
        ws.send(tokio_tungstenite::tungstenite::Message::text(
            r#"{"id":1,"type":"store.insert","bucket":"users","data":{"name":"T"}}"#,
        ))
        .expect("send");
        let answer = ws.read().expect("answer");
        assert!(answer.to_text().unwrap_or_default().contains("\"result\""));
    });
    t.join().expect("client thread");
    assert_eq!(server.records("users").len(), 1);
    server.drop_connections();
    server.restart(true);
    assert_eq!(server.records("users").len(), 1);
}

#[tokio::test]
async fn handshake_stall_holds_the_socket_until_the_client_closes() {
    within(async {
        let server = users();
        let mut before = Client::open(&server.url()).await;
        server.set_handshake_fault(HandshakeFault::Stall);

        let mut raw = raw_upgrade(&server).await;
        let mut buf = [0u8; 256];
        let read = tokio::time::timeout(Duration::from_millis(300), raw.read(&mut buf)).await;
        assert!(read.is_err(), "no handshake answer while stalled: {read:?}");
        assert_eq!(server.open_sockets(), 2);
        assert_eq!(server.connection_count(), 1);

        // A WebSocket client times out; the socket it gives up is released at once.
        let ws = tokio::time::timeout(
            Duration::from_millis(300),
            tokio_tungstenite::connect_async(server.url()),
        )
        .await;
        assert!(ws.is_err(), "handshake must not complete while stalled");
        wait_for(|| server.open_sockets() == 2).await;

        // Connections accepted before the fault are unaffected.
        before
            .ok(json!({"type": "store.count", "bucket": "users"}))
            .await;

        drop(before);
        wait_for(|| server.open_sockets() == 1).await;
        drop(raw);
        wait_for(|| server.open_sockets() == 0).await;
        assert_eq!(server.accepted_sockets(), 3);
    })
    .await;
}

#[tokio::test]
async fn handshake_stall_ends_on_restart_and_survives_it() {
    within(async {
        let server = users();
        server.set_handshake_fault(HandshakeFault::Stall);
        let mut raw = raw_upgrade(&server).await;
        wait_for(|| server.open_sockets() == 1).await;
        server.restart(true);
        assert_eq!(server.open_sockets(), 0);
        let mut buf = [0u8; 256];
        let read = tokio::time::timeout(Duration::from_secs(2), raw.read(&mut buf))
            .await
            .expect("the stalled socket is closed on restart");
        assert!(
            matches!(read, Ok(0) | Err(_)),
            "closed, not answered: {read:?}"
        );

        // The fault is kept across the restart.
        let ws = tokio::time::timeout(
            Duration::from_millis(300),
            tokio_tungstenite::connect_async(server.url()),
        )
        .await;
        assert!(ws.is_err(), "still stalled after restart");
    })
    .await;
}

#[tokio::test]
async fn handshake_delay_postpones_the_welcome() {
    within(async {
        let server = users();
        server.set_handshake_fault(HandshakeFault::Delay(Duration::from_millis(300)));
        let t = Instant::now();
        let mut c = Client::open(&server.url()).await;
        let elapsed = t.elapsed();
        assert!(
            elapsed >= Duration::from_millis(250),
            "welcome after {elapsed:?}"
        );
        assert_eq!(
            c.ok(json!({"type": "store.count", "bucket": "users"}))
                .await,
            0
        );
    })
    .await;
}

#[tokio::test]
async fn handshake_delay_releases_a_socket_the_client_closes() {
    within(async {
        let server = users();
        server.set_handshake_fault(HandshakeFault::Delay(Duration::from_secs(60)));
        let raw = raw_upgrade(&server).await;
        wait_for(|| server.open_sockets() == 1).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(server.open_sockets(), 1, "held during the delay");
        drop(raw);
        wait_for(|| server.open_sockets() == 0).await;
        assert_eq!(server.connection_count(), 0);
    })
    .await;
}

#[tokio::test]
async fn handshake_reset_resets_the_connection() {
    within(async {
        let server = users();
        server.set_handshake_fault(HandshakeFault::Reset);

        // The reset may already come back to the connect itself, or to the first read.
        let read = match TcpStream::connect(("127.0.0.1", server.port())).await {
            Ok(mut raw) => {
                let mut buf = [0u8; 16];
                tokio::time::timeout(Duration::from_secs(2), raw.read(&mut buf))
                    .await
                    .expect("reset promptly")
            }
            Err(e) => Err(e),
        };
        match read {
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
            Ok(n) => panic!("expected a connection reset, read {n} bytes"),
        }

        let ws = tokio::time::timeout(
            Duration::from_secs(2),
            tokio_tungstenite::connect_async(server.url()),
        )
        .await
        .expect("fails promptly");
        assert!(ws.is_err(), "handshake must fail on a reset");
        wait_for(|| server.open_sockets() == 0).await;
        assert_eq!(server.accepted_sockets(), 2);
        assert_eq!(server.connection_count(), 0);
    })
    .await;
}

#[tokio::test]
async fn handshake_fault_set_back_to_normal_serves_again() {
    within(async {
        let server = users();
        for fault in [HandshakeFault::Reset, HandshakeFault::Stall] {
            server.set_handshake_fault(fault.clone());
            let ws = tokio::time::timeout(
                Duration::from_millis(300),
                tokio_tungstenite::connect_async(server.url()),
            )
            .await;
            assert!(!matches!(ws, Ok(Ok(_))), "{fault:?}: no connection");
            server.set_handshake_fault(HandshakeFault::Normal);
            let t = Instant::now();
            let mut c = Client::open(&server.url()).await;
            assert!(t.elapsed() < Duration::from_millis(250));
            c.ok(json!({"type": "store.insert", "bucket": "users", "data": {"name": "A"}}))
                .await;
        }
        assert_eq!(server.records("users").len(), 2);
    })
    .await;
}

#[tokio::test]
async fn subscription_count_follows_subscribe_unsubscribe_and_close() {
    within(async {
        let server = users();
        let mut a = Client::open(&server.url()).await;
        let mut b = Client::open(&server.url()).await;
        assert_eq!(server.subscription_count(), 0);
        let s1 = a
            .ok(json!({"type": "store.subscribe", "query": "all-users"}))
            .await;
        assert_eq!(server.subscription_count(), 1);
        let s2 = a
            .ok(json!({"type": "rules.subscribe", "pattern": "order.*"}))
            .await;
        assert_eq!(server.subscription_count(), 2);
        a.ok(json!({"type": "rules.subscribe", "pattern": "user.*"}))
            .await;
        b.ok(json!({"type": "store.subscribe", "query": "all-users"}))
            .await;
        assert_eq!(server.subscription_count(), 4);

        a.ok(json!({"type": "store.unsubscribe", "subscriptionId": s1["subscriptionId"]}))
            .await;
        assert_eq!(server.subscription_count(), 3);
        a.ok(json!({"type": "rules.unsubscribe", "subscriptionId": s2["subscriptionId"]}))
            .await;
        assert_eq!(server.subscription_count(), 2);
        // Unsubscribing an unknown id changes nothing.
        a.err(json!({"type": "store.unsubscribe", "subscriptionId": "sub-999"}))
            .await;
        assert_eq!(server.subscription_count(), 2);

        a.close(1000).await;
        drop(a);
        wait_for(|| server.subscription_count() == 1).await;
        drop(b);
        wait_for(|| server.subscription_count() == 0).await;
        assert_eq!(server.connection_count(), 0);
    })
    .await;
}

/// `(storeSubscriptionCount, rulesSubscriptionCount)` of each connection `server.connections`
/// lists, in order.
async fn counts(c: &mut Client) -> Vec<(u64, u64)> {
    let list = c.ok(json!({"type": "server.connections"})).await;
    list.as_array()
        .expect("a list")
        .iter()
        .map(|e| {
            (
                e["storeSubscriptionCount"].as_u64().unwrap_or(u64::MAX),
                e["rulesSubscriptionCount"].as_u64().unwrap_or(u64::MAX),
            )
        })
        .collect()
}

#[tokio::test]
async fn subscription_counts_per_connection_follow_unsubscribes_and_closes() {
    within(async {
        let server = TestServer::builder()
            .bucket(BucketDef::new("users"))
            .query("all-users", QueryDef::all("users"))
            .max_subscriptions_per_connection(3)
            .start()
            .expect("start");
        let store = json!({"type": "store.subscribe", "query": "all-users"});
        let rules = json!({"type": "rules.subscribe", "pattern": "a.*"});
        let limit = "Subscription limit reached (max 3 per connection)";
        let mut a = Client::open(&server.url()).await;
        let mut b = Client::open(&server.url()).await;
        let mut c = Client::open(&server.url()).await;
        let a1 = a.ok(store.clone()).await["subscriptionId"].clone();
        let a2 = a.ok(rules.clone()).await["subscriptionId"].clone();
        a.ok(rules.clone()).await;
        let b1 = b.ok(rules.clone()).await["subscriptionId"].clone();
        b.ok(store.clone()).await;
        assert_eq!(counts(&mut c).await, [(1, 2), (1, 1), (0, 0)]);
        // At the limit exactly: a fourth of either kind is refused.
        assert_eq!(a.err(store.clone()).await.1, limit);
        assert_eq!(a.err(rules.clone()).await.1, limit);
        // Another connection's subscription is not `a`'s to remove.
        a.err(json!({"type": "rules.unsubscribe", "subscriptionId": b1}))
            .await;
        assert_eq!(counts(&mut c).await, [(1, 2), (1, 1), (0, 0)]);
        a.ok(json!({"type": "store.unsubscribe", "subscriptionId": a1}))
            .await;
        a.ok(json!({"type": "rules.unsubscribe", "subscriptionId": a2}))
            .await;
        assert_eq!(counts(&mut c).await, [(0, 1), (1, 1), (0, 0)]);
        assert_eq!(server.subscription_count(), 3);
        // Two places free: exactly two more.
        a.ok(store.clone()).await;
        a.ok(store.clone()).await;
        assert_eq!(a.err(rules.clone()).await.1, limit);
        assert_eq!(counts(&mut c).await, [(2, 1), (1, 1), (0, 0)]);
        // Another connection closing changes nothing for the others.
        b.close(1000).await;
        drop(b);
        wait_for(|| server.connection_count() == 2).await;
        assert_eq!(counts(&mut c).await, [(2, 1), (0, 0)]);
        assert_eq!(server.subscription_count(), 3);
        assert_eq!(a.err(store.clone()).await.1, limit);
        let stats = c.ok(json!({"type": "server.stats"})).await;
        assert_eq!(stats["connections"]["totalStoreSubscriptions"], 2);
        assert_eq!(stats["connections"]["totalRulesSubscriptions"], 1);
    })
    .await;
}

#[tokio::test]
async fn accepted_sockets_counts_every_connection() {
    within(async {
        let server = users();
        assert_eq!(server.accepted_sockets(), 0);
        assert_eq!(server.open_sockets(), 0);
        let mut clients = Vec::new();
        for i in 1..=3u64 {
            clients.push(Client::open(&server.url()).await);
            assert_eq!(server.accepted_sockets(), i);
        }
        assert_eq!(server.open_sockets(), 3);
        // A TCP connection that never upgrades is counted too.
        let raw = TcpStream::connect(("127.0.0.1", server.port()))
            .await
            .expect("tcp connect");
        wait_for(|| server.accepted_sockets() == 4).await;
        assert_eq!(server.open_sockets(), 4);
        drop(raw);
        drop(clients);
        wait_for(|| server.open_sockets() == 0).await;
        assert_eq!(server.accepted_sockets(), 4, "never decreases");
        let _again = Client::open(&server.url()).await;
        assert_eq!(server.accepted_sockets(), 5);
    })
    .await;
}
