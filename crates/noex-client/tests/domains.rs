//! The rules subscription's items (events, and the notices that some were missed) and the
//! builders of the domain APIs, against the embedded server.

mod common;

use common::options;
use futures::{FutureExt, StreamExt};
use noex_client::{
    AuditFilter, Client, Error, LifecycleEvent, ListenerGuard, NewUser, ProcedureResult,
    RuleSubscription, RuleUpdate,
};
use noex_conformance::Eventually;
use noex_testkit::{AuthMode, TestServer};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

const WAIT: Duration = Duration::from_secs(10);
const SECRET: &str = "admin-secret-for-domain-tests";

/// Polls `done` every few milliseconds until it holds, for at most [`WAIT`].
async fn until(done: impl FnMut() -> bool, what: &str) {
    Eventually::new(tokio::time::sleep)
        .every(Duration::from_millis(5))
        .within(WAIT)
        .until(what, done)
        .await
}

/// Waits until the client has received `n` pushes in all.
async fn pushes_delivered(client: &Client, n: u64) {
    Eventually::new(tokio::time::sleep)
        .every(Duration::from_millis(5))
        .within(WAIT)
        .until_async("the pushes", || async {
            client.counters().await.expect("counters").pushes_delivered >= n
        })
        .await
}

/// The next item, within [`WAIT`].
async fn next(sub: &mut RuleSubscription) -> noex_client::Result<RuleUpdate> {
    tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("an item in time")
        .expect("the stream goes on")
}

fn event_n(update: RuleUpdate) -> u64 {
    let message = update.into_event().expect("an event");
    message.event.data["n"].as_u64().expect("n")
}

async fn emit(client: &Client, n: u64) {
    client
        .rules()
        .emit("tick.now", json!({"n": n}))
        .await
        .expect("emit");
}

/// Counts the client's `Reconnected` events (each comes once every subscription is
/// registered again).
fn count_reconnects(client: &Client) -> (Arc<AtomicUsize>, ListenerGuard) {
    let count = Arc::new(AtomicUsize::new(0));
    let guard = {
        let count = count.clone();
        client.on(move |event| {
            if matches!(event, LifecycleEvent::Reconnected) {
                count.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    (count, guard)
}

/// Drops the connection and waits until the client has made its subscriptions again.
async fn reconnect(server: &TestServer, reconnects: &AtomicUsize) {
    let before = reconnects.load(Ordering::SeqCst);
    server.drop_connections();
    until(|| reconnects.load(Ordering::SeqCst) > before, "reconnected").await;
}

/// A slow reader loses the oldest events (counted), never the notice that events were
/// missed during a reconnect, and the count leaves the notice out.
#[tokio::test]
async fn a_slow_reader_gets_the_lag_count_and_keeps_the_missed_notice() {
    let server = TestServer::builder().start().expect("server");
    let client = noex_tokio::connect(&server.url(), options().rules_buffer(2))
        .await
        .expect("connect");
    let (reconnects, _guard) = count_reconnects(&client);
    let mut sub = client.rules().subscribe("tick.*").await.expect("subscribe");
    assert_eq!(sub.pattern(), "tick.*");
    let before = client.counters().await.expect("counters").pushes_delivered;
    for n in 0..5 {
        emit(&client, n).await;
    }
    pushes_delivered(&client, before + 5).await;
    assert_eq!(sub.unread(), 2);
    let lost_at = SystemTime::now();
    reconnect(&server, &reconnects).await;
    // The notice comes with the answer to the subscribe, before these events' pushes.
    for n in 5..8 {
        emit(&client, n).await;
    }
    pushes_delivered(&client, before + 8).await;
    // Events 0 to 6 were dropped to make room, 7 is kept, and so is the notice.
    assert_eq!(
        next(&mut sub).await.expect("lag"),
        RuleUpdate::Lagged { missed: 7 }
    );
    match next(&mut sub).await.expect("notice") {
        RuleUpdate::Missed { from, to } => {
            assert!(
                from <= lost_at && lost_at <= to,
                "{from:?} {lost_at:?} {to:?}"
            )
        }
        other => panic!("expected the missed notice, got {other:?}"),
    }
    assert_eq!(event_n(next(&mut sub).await.expect("event")), 7);
    assert!(sub.next().now_or_never().is_none(), "nothing more");
}

/// Two reconnects with nothing read between them: one notice covering both.
#[tokio::test]
async fn notices_of_reconnects_in_a_row_come_as_one() {
    let server = TestServer::builder().start().expect("server");
    let client = noex_tokio::connect(&server.url(), options())
        .await
        .expect("connect");
    let (reconnects, _guard) = count_reconnects(&client);
    let mut sub = client.rules().subscribe("tick.*").await.expect("subscribe");
    reconnect(&server, &reconnects).await;
    assert_eq!(sub.unread(), 1, "the first notice");
    let between = SystemTime::now();
    reconnect(&server, &reconnects).await;
    assert_eq!(sub.unread(), 1, "the second notice joined the first");
    // The second notice came with the second subscribe's answer, before this push.
    emit(&client, 1).await;
    until(|| sub.unread() == 2, "the event").await;
    let Ok(RuleUpdate::Missed { from, to }) = next(&mut sub).await else {
        panic!("expected one notice first");
    };
    // It ends when the second reconnect ended, after the first.
    assert!(
        from <= between && between <= to,
        "{from:?} {between:?} {to:?}"
    );
    assert_eq!(event_n(next(&mut sub).await.expect("event")), 1);
    assert!(sub.next().now_or_never().is_none(), "nothing more");
}

/// `on_update` hands over the items; `rules().unsubscribe` ends the subscription on the
/// server once it returns.
#[tokio::test]
async fn callbacks_and_unsubscribing_from_rules() {
    let server = TestServer::builder().start().expect("server");
    let client = noex_tokio::connect(&server.url(), options())
        .await
        .expect("connect");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let handle = {
        let seen = seen.clone();
        let sub = client.rules().subscribe("tick.*").await.expect("subscribe");
        sub.on_update(move |update| {
            let n = event_n(update.expect("an item"));
            seen.lock().unwrap_or_else(|e| e.into_inner()).push(n);
        })
    };
    for n in 0..3 {
        emit(&client, n).await;
    }
    until(
        || *seen.lock().unwrap_or_else(|e| e.into_inner()) == [0, 1, 2],
        "three events",
    )
    .await;
    drop(handle);
    until(|| server.subscription_count() == 0, "the callback's end").await;

    let sub = client.rules().subscribe("tick.*").await.expect("subscribe");
    until(|| server.subscription_count() == 1, "subscribed").await;
    client.rules().unsubscribe(sub.id()).await;
    until(|| server.subscription_count() == 0, "unsubscribed").await;
}

/// An unreadable event is an `Err` the stream carries on after.
#[tokio::test]
async fn an_event_that_cannot_be_read_is_an_error_and_the_stream_goes_on() {
    let server = TestServer::builder().start().expect("server");
    let client = noex_tokio::connect(&server.url(), options())
        .await
        .expect("connect");
    let mut sub = client.rules().subscribe("tick.*").await.expect("subscribe");
    until(|| server.subscription_count() == 1, "subscribed").await;
    // A push in the server's layout whose event lacks the fields every event has.
    let id = "sub-1";
    server.send_raw_text(&format!(
        r#"{{"type":"push","channel":"event","subscriptionId":"{id}","data":{{"topic":"tick.x","event":{{}}}}}}"#
    ));
    match next(&mut sub).await {
        Err(Error::Serde(_)) => {}
        other => panic!("expected an unreadable event, got {other:?}"),
    }
    emit(&client, 4).await;
    assert_eq!(event_n(next(&mut sub).await.expect("event")), 4);
}

/// `list_users` pages, `procedures().call` with and without input, `audit().query` with
/// an owned filter.
#[tokio::test]
async fn builders_send_what_they_were_given() {
    let server = TestServer::builder()
        .auth(AuthMode::Identity {
            admin_secret: SECRET.into(),
        })
        .audit(true)
        .start()
        .expect("server");
    let client = noex_tokio::connect(&server.url(), options())
        .await
        .expect("connect");
    let identity = client.identity();
    identity.login_with_secret(SECRET).await.expect("login");
    for name in ["alice", "bob", "carol"] {
        let user = identity
            .create_user(NewUser::new(name, "password-123").metadata([("team", "ops")]))
            .await
            .expect("user");
        assert_eq!(user.metadata.expect("metadata")["team"], "ops");
    }
    let all = identity.list_users().await.expect("users");
    assert_eq!((all.total, all.page, all.users.len()), (3, 1, 3));
    let second = identity
        .list_users()
        .page(2)
        .page_size(2)
        .await
        .expect("page 2");
    assert_eq!((second.page, second.page_size), (2, 2));
    assert_eq!(second.users.len(), 1);

    let procedures = client.procedures();
    let registered = procedures
        .register(
            json!({"name": "echo", "input": {"n": {"type": "number", "default": 0}},
            "steps": [{"action": "return", "value": {"n": "{{ input.n }}"}}]}),
        )
        .await
        .expect("register");
    assert_eq!(
        (registered.name.as_str(), registered.registered),
        ("echo", true)
    );
    #[derive(serde::Deserialize)]
    struct Echo {
        n: f64,
    }
    let run = procedures
        .call::<Echo>("echo")
        .input(json!({"n": 7}))
        .await
        .expect("call");
    assert_eq!(run.result.expect("returned").n, 7.0);
    // Without input: the input field's default.
    let bare: ProcedureResult = procedures.call("echo").await.expect("call without input");
    assert_eq!(bare.result, Some(json!({"n": 0})));
    // Input that cannot be JSON fails the call unsent.
    let sent = client.counters().await.expect("counters").requests_issued;
    let bad = procedures
        .call::<Value>("echo")
        .input(std::collections::HashMap::from([((1, 2), 3)]))
        .await
        .expect_err("unserialisable input");
    assert!(matches!(bad, Error::Serde(_)), "{bad:?}");
    assert_eq!(
        client.counters().await.expect("counters").requests_issued,
        sent
    );
    let gone = procedures.unregister("echo").await.expect("unregister");
    assert!(gone.unregistered);

    let entries = client
        .audit()
        .query(AuditFilter::all().operation("procedures.register").limit(5))
        .await
        .expect("audit");
    assert!(!entries.is_empty());
    assert!(entries.iter().all(|e| e.operation == "procedures.register"));
    let everything = client
        .audit()
        .query(AuditFilter::all())
        .await
        .expect("audit");
    assert!(everything.len() > entries.len());
}
