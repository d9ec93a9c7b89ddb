//! The client on the deterministic harness (`SimRuntime` + `SimNetwork`): each network
//! fault, the same run twice giving the same frames, and the cases that depend on exact
//! timing, run once here on virtual time instead of on every adapter's real clock.

use futures::StreamExt;
use noex_client::{Backoff, Client, ClientOptions, ConnectionState, Error, TransportErrorKind};
use noex_conformance::harness::{
    ConnectFault, Direction, Fate, SimNetwork, SimRuntime, Transfer, Verdict, Wire, URL,
};
use noex_testkit::{BucketDef, QueryDef, TestServer, TestServerBuilder};
use serde_json::{json, Value};
use std::time::Duration;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A bucket with caller-given keys (no generated uuids: every frame is reproducible), a
/// query over it, a 30 s heartbeat.
fn items_server() -> TestServerBuilder {
    TestServer::builder()
        .bucket(BucketDef::new("items").field("n", json!({"type": "number"})))
        .query("all-items", QueryDef::all("items"))
        .heartbeat(secs(30))
}

fn options() -> ClientOptions {
    ClientOptions::new()
        .backoff(Backoff {
            initial: ms(500),
            multiplier: 2.0,
            max: secs(4),
            jitter: ms(100),
            max_retries: None,
        })
        .seed(7)
}

fn start(builder: TestServerBuilder) -> (SimRuntime, SimNetwork, Client) {
    let rt = SimRuntime::new();
    let net = SimNetwork::start(&rt, builder).expect("server");
    let client = Client::new(net.backend());
    (rt, net, client)
}

/// Advances virtual time in steps of `step` until `done`, for at most `within`.
fn advance_until(
    rt: &SimRuntime,
    within: Duration,
    step: Duration,
    mut done: impl FnMut() -> bool,
) {
    let end = rt.elapsed() + within;
    while !done() {
        assert!(rt.elapsed() < end, "not done within {within:?} (virtual)");
        rt.advance(step);
    }
}

#[test]
fn a_silent_link_is_noticed_within_two_and_a_half_heartbeats() {
    let (rt, net, client) = start(items_server());
    rt.block_on(client.connect(URL, options()))
        .expect("connects");
    // Two pings: the client has measured the interval.
    rt.advance(secs(70));
    let first = net.current_link().expect("a link");
    net.silence(first);
    advance_until(&rt, secs(300), secs(1), || {
        net.current_link() != Some(first) && client.is_connected()
    });
    let link = net.link(first).expect("the silenced link");
    let last = link.last_to_client.expect("frames came before the silence");
    let noticed = link.client_gone.expect("the client let it go");
    assert_eq!(last, secs(60), "the last ping before the silence");
    assert!(
        noticed - last <= secs(75),
        "noticed {:?} after its last frame",
        noticed - last
    );
    assert!(noticed - last >= secs(60), "not before two intervals");
    assert_eq!(link.silenced_at, Some(secs(70)));
    // The server timed it out by itself meanwhile (its close swallowed).
    assert!(link.server_gone.is_some());
    rt.block_on(client.disconnect());
    rt.shutdown();
}

#[test]
fn refused_and_hanging_connects() {
    let (rt, net, client) = start(items_server());
    net.set_connect_fault(Some(ConnectFault::Refuse));
    match rt.block_on(client.connect(URL, options())) {
        Err(Error::Transport(e)) => assert_eq!(e.kind(), TransportErrorKind::Connect),
        other => panic!("expected a refused connect, got {other:?}"),
    }
    assert_eq!(rt.elapsed(), Duration::ZERO, "refused at once");

    net.set_connect_fault(Some(ConnectFault::Hang));
    let options = options().connect_timeout(secs(10));
    let result = rt.block_on(client.connect(URL, options.clone()));
    assert!(matches!(result, Err(Error::Timeout { .. })), "{result:?}");
    assert_eq!(rt.elapsed(), secs(10), "the connect timeout ended it");

    // Two more refusals, then the network comes back: retried until connected.
    net.set_connect_fault(None);
    net.fail_next_connects(ConnectFault::Refuse, 2);
    rt.block_on(client.connect(URL, options.retry_initial_connect(true)))
        .expect("connects on the third attempt");
    let stats = net.stats();
    assert_eq!(
        (stats.attempts, stats.refused, stats.hung, stats.opened),
        (5, 3, 1, 1)
    );
    rt.block_on(client.disconnect());
    rt.shutdown();
}

#[test]
fn delay_applies_to_connects_and_both_directions() {
    let (rt, net, client) = start(items_server());
    net.set_delay(ms(100));
    rt.block_on(client.connect(URL, options()))
        .expect("connects");
    assert_eq!(rt.elapsed(), ms(200), "the connect, then the welcome");
    let before = rt.elapsed();
    let bucket = client.store().bucket("items");
    rt.block_on(bucket.insert(json!({"id": "a", "n": 1})))
        .expect("insert");
    assert_eq!(rt.elapsed() - before, ms(200), "a round trip");
    rt.block_on(client.disconnect());
    rt.shutdown();
}

#[test]
fn drops_stalls_and_restarts_keep_the_subscription_fresh() {
    let (rt, net, client) = start(items_server());
    rt.block_on(client.connect(URL, options()))
        .expect("connects");
    let store = client.store();
    let mut items = rt
        .block_on(store.subscribe::<Value>("all-items"))
        .expect("subscribes");
    let first = rt.block_on(items.next()).expect("initial").expect("data");
    assert_eq!(first, json!([]));

    // Dropped: the stream ends without a close; the client reconnects and restores.
    net.drop_link(net.current_link().expect("link"));
    let now_ms = net.now_ms();
    net.server(|s| s.insert("items", json!({"id": "a", "n": 1})))
        .expect("insert");
    assert!(now_ms > 0);
    advance_until(&rt, secs(30), ms(100), || client.is_connected());
    let restored = rt.block_on(items.next()).expect("restored").expect("data");
    assert_eq!(restored[0]["id"], "a");

    // Stalled: frames wait; after the resume the write is applied and answered.
    net.stall();
    let bucket = client.store().bucket("items");
    let write = bucket.insert(json!({"id": "b", "n": 2}));
    let (answer, ()) = rt.block_on(futures::future::join(write, async {
        rt_sleep(&net, secs(2)).await;
        assert!(net.server(|s| s.records("items")).len() == 1, "held");
        net.resume();
    }));
    answer.expect("answered after the resume");
    assert_eq!(net.server(|s| s.records("items")).len(), 2);

    // Restarted with its data: every connection dropped, subscriptions restored.
    net.restart(true);
    advance_until(&rt, secs(30), ms(100), || {
        client.is_connected() && net.server(|s| s.subscription_count()) == 1
    });
    net.server(|s| s.insert("items", json!({"id": "c", "n": 3})))
        .expect("insert");
    rt.run_ready();
    let mut last = None;
    while items.unread() > 0 {
        last = rt.block_on(items.next());
    }
    let last = last.expect("a value").expect("data");
    assert_eq!(last.as_array().map(Vec::len), Some(3), "{last}");
    rt.block_on(client.disconnect());
    rt.shutdown();
}

async fn rt_sleep(net: &SimNetwork, d: Duration) {
    use noex_client::runtime::Runtime;
    net.runtime().sleep(d).await
}

#[test]
fn the_filter_picks_a_phase_of_a_link() {
    // Silence the link as the server's second ping comes.
    let (rt, net, client) = start(items_server());
    let options = options().connect_timeout(secs(5));
    net.set_filter(Some(|e: &noex_conformance::harness::FrameEvent<'_>| {
        if e.direction == Direction::ToClient && e.text.contains("\"ping\"") && e.at >= secs(60) {
            Verdict::Silence
        } else {
            Verdict::Pass
        }
    }));
    rt.block_on(client.connect(URL, options)).expect("connects");
    rt.advance(secs(59));
    let conn = net.current_link().expect("link");
    rt.advance(secs(2));
    let link = net.link(conn).expect("link");
    assert_eq!(link.silenced_at, Some(secs(60)));
    assert_eq!(link.frames_to_client, 2, "the welcome and the first ping");
    net.set_filter(None::<fn(&noex_conformance::harness::FrameEvent<'_>) -> Verdict>);
    let swallowed: Vec<_> = net
        .take_log()
        .into_iter()
        .filter(|t| t.fate == Fate::Swallowed)
        .collect();
    assert_eq!(swallowed.len(), 1, "{swallowed:?}");
    assert!(matches!(&swallowed[0].wire, Wire::Text(t) if t.contains("ping")));
    rt.block_on(client.disconnect());
    rt.shutdown();
}

/// One scenario: connect, write, subscribe, drop, restart, silence; the frames it made.
fn scenario() -> Vec<Transfer> {
    let (rt, net, client) = start(items_server());
    rt.block_on(client.connect(URL, options()))
        .expect("connects");
    let store = client.store();
    let bucket = store.bucket("items");
    let items = rt
        .block_on(store.subscribe::<Value>("all-items"))
        .expect("subscribes");
    for n in 0..5 {
        rt.block_on(bucket.insert(json!({"id": format!("k{n}"), "n": n})))
            .expect("insert");
        rt.advance(ms(1_234 * n));
    }
    net.drop_all();
    rt.advance(secs(10));
    net.restart(true);
    rt.advance(secs(45));
    net.silence(net.current_link().expect("link"));
    rt.advance(secs(200));
    assert_eq!(client.state(), ConnectionState::Connected);
    drop(items);
    rt.block_on(client.disconnect());
    rt.shutdown();
    net.take_log()
}

#[test]
fn the_same_test_gives_the_same_frames() {
    let first = scenario();
    assert!(first.len() > 30, "{}", first.len());
    let second = scenario();
    assert_eq!(first.len(), second.len());
    for (a, b) in first.iter().zip(&second) {
        // Field by field: `Debug` of a frame is bounded and would hide a difference.
        assert!(a == b, "{a:?} != {b:?}");
    }
}

#[test]
fn recorded_frames_keep_secrets_out_of_debug() {
    let builder = TestServer::builder().auth(noex_testkit::AuthMode::identity("admin-secret-Zq"));
    let (rt, net, client) = start(builder);
    let options = options()
        .credentials("alice", "alice-password-Zq")
        .reconnect(false);
    let refused = rt.block_on(client.connect(URL, options));
    assert!(refused.is_err(), "no such user");
    let log = net.take_log();
    let login = log
        .iter()
        .find(|t| matches!(&t.wire, Wire::Text(text) if text.contains("identity.login")))
        .expect("the login frame");
    let shown = format!("{login:?}");
    assert!(shown.contains("identity.login"), "{shown}");
    assert!(!shown.contains("alice-password-Zq"), "{shown}");
    rt.shutdown();
}

#[test]
fn stalled_writes_not_sent_are_absent() {
    noex_conformance::cases::outcomes::stalled_writes_not_sent_are_absent();
}
