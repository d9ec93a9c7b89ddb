//! Cases for what the client owns and must release, and for what the application's own
//! code can do to it: connection attempts against peers that never answer, dropped
//! futures, panicking callbacks, how streams end, event order, backpressure, counters.

use super::users_server;
use crate::{fast_options, Ctx, EventLog};
use futures::future::join_all;
use futures::StreamExt;
use noex_client::runtime::Backend;
use noex_client::{
    proto::CoreError, Backoff, Client, ClientOptions, ConnectionState, Delivery, DisconnectReason,
    Error, LifecycleEvent, Record, RequestOptions,
};
use noex_testkit::HandshakeFault;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

/// Attempts every 50 ms, each given up after 200 ms without a welcome.
fn attempt_options() -> ClientOptions {
    fast_options()
        .backoff(Backoff {
            initial: Duration::from_millis(50),
            multiplier: 1.0,
            max: Duration::from_millis(50),
            jitter: Duration::ZERO,
            max_retries: None,
        })
        .connect_timeout(Duration::from_millis(200))
        .retry_initial_connect(true)
}

/// A request fails at once, not sent (no connection is coming, or fail-fast is on).
async fn fails_at_once_not_sent(client: &Client) {
    let err = client
        .store()
        .bucket("users")
        .count(noex_client::Filter::all())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Disconnected {
                delivery: Delivery::NotSent
            }
        ),
        "{err:?}"
    );
}

/// Samples the server's open sockets every 20 ms for `span`; returns the most seen.
async fn most_open_sockets(ctx: &Ctx, span: Duration) -> usize {
    let mut most = 0;
    let mut waited = Duration::ZERO;
    while waited < span {
        most = most.max(ctx.server().open_sockets());
        ctx.sleep(Duration::from_millis(20)).await;
        waited += Duration::from_millis(20);
    }
    most
}

async fn no_sockets_left(ctx: &Ctx) {
    ctx.eventually(WAIT, "every socket released", || async {
        ctx.server().open_sockets() == 0
    })
    .await;
}

/// Keeps trying a server that accepts TCP and never answers the handshake, `fault`
/// applied, for `span`; checks the client never holds more than one socket and holds none
/// after `disconnect()`. Returns how many attempts the server saw.
async fn attempts_against(ctx: &Ctx, fault: HandshakeFault, span: Duration) -> u64 {
    ctx.server().set_handshake_fault(fault.clone());
    let before = ctx.server().accepted_sockets();
    let client = Client::new(ctx.backend.clone());
    let connecting = client.connect(&ctx.url, attempt_options());
    let watch = async {
        let most = most_open_sockets(ctx, span).await;
        client.disconnect().await;
        most
    };
    let (result, most) = futures::join!(connecting, watch);
    assert!(
        matches!(result, Err(Error::Closed { .. })),
        "{fault:?}: {result:?}"
    );
    assert!(
        most <= 1,
        "{fault:?}: the client held {most} sockets at once"
    );
    no_sockets_left(ctx).await;
    ctx.server().accepted_sockets() - before
}

/// A peer that accepts TCP and never answers the handshake: every attempt is given up at
/// its connect timeout and its socket closed; at most one socket at a time, none after
/// `disconnect()`.
pub async fn handshake_stall_holds_at_most_one_socket(backend: Backend) {
    let ctx = Ctx::with_server(&backend, users_server());
    let attempts = attempts_against(&ctx, HandshakeFault::Stall, Duration::from_millis(1500)).await;
    assert!(attempts >= 3, "only {attempts} attempts in 1.5 s");
}

/// A handshake answered later than the connect timeout, and one reset at once: the same
/// bound. A handshake answered within the timeout connects.
pub async fn handshake_delay_and_reset_hold_at_most_one_socket(backend: Backend) {
    let ctx = Ctx::with_server(&backend, users_server());
    let slow = HandshakeFault::Delay(Duration::from_millis(600));
    let attempts = attempts_against(&ctx, slow, Duration::from_millis(1000)).await;
    assert!(attempts >= 2, "only {attempts} delayed attempts");
    let attempts = attempts_against(&ctx, HandshakeFault::Reset, Duration::from_millis(600)).await;
    assert!(attempts >= 3, "only {attempts} reset attempts");

    ctx.server()
        .set_handshake_fault(HandshakeFault::Delay(Duration::from_millis(100)));
    let client = Client::new(ctx.backend.clone());
    client
        .connect(&ctx.url, attempt_options())
        .await
        .expect("a handshake within the timeout connects");
    assert_eq!(ctx.server().open_sockets(), 1);
    client.disconnect().await;
    no_sockets_left(&ctx).await;
}

/// After `disconnect()` the client holds no socket, also when it was connected.
pub async fn disconnect_releases_the_socket(backend: Backend) {
    let ctx = Ctx::with_server(&backend, users_server());
    let client = ctx.connect(fast_options()).await;
    let _live = client
        .store()
        .subscribe::<Vec<Record>>("all-users")
        .await
        .unwrap();
    assert_eq!(ctx.server().open_sockets(), 1);
    client.disconnect().await;
    no_sockets_left(&ctx).await;
    assert_eq!(ctx.server().subscription_count(), 0);
}

/// 1 000 subscribe futures dropped before their answer leave no subscription on the
/// server, get no pushes, and are not made again after a reconnect.
pub async fn dropped_subscribe_futures_leave_nothing_on_the_server(backend: Backend) {
    let ctx = Ctx::with_server(&backend, users_server());
    let client = ctx.connect(fast_options()).await;
    let (log, _guard) = EventLog::attach(&client);
    let mut kept = client
        .store()
        .subscribe::<Vec<Record>>("all-users")
        .await
        .unwrap();
    assert!(kept.next().await.unwrap().unwrap().is_empty());
    assert_eq!(ctx.server().subscription_count(), 1);

    ctx.server().set_delay(Duration::from_millis(5));
    let store = client.store();
    let futures: Vec<_> = (0..1000)
        .map(|_| std::future::IntoFuture::into_future(store.subscribe::<Vec<Record>>("all-users")))
        .collect();
    // Polled (so every subscribe is on its way), then dropped before the answers.
    assert!(ctx
        .within(Duration::from_millis(50), join_all(futures))
        .await
        .is_none());
    ctx.server().set_delay(Duration::ZERO);
    ctx.eventually(
        WAIT,
        "the server holds only the kept subscription",
        || async {
            ctx.server().subscription_count() == 1
                && client.counters().await.unwrap().subscriptions_live == 1
        },
    )
    .await;

    let pushes_before = client.counters().await.unwrap().pushes_delivered;
    ctx.server()
        .insert("users", json!({"name": "Alice"}))
        .unwrap();
    assert_eq!(kept.next().await.unwrap().unwrap().len(), 1);
    ctx.sleep(Duration::from_millis(100)).await;
    let counters = client.counters().await.unwrap();
    assert_eq!(counters.pushes_delivered, pushes_before + 1, "{counters:?}");

    ctx.server().drop_connections();
    ctx.eventually(WAIT, "reconnected", || async {
        log.count(|e| matches!(e, LifecycleEvent::Reconnected)) == 1
    })
    .await;
    assert_eq!(
        ctx.server().subscription_count(),
        1,
        "only the kept one is restored"
    );
}

/// Requests and subscribes whose futures are dropped while the client waits to reconnect
/// are never sent.
pub async fn dropped_futures_while_reconnecting_are_never_sent(backend: Backend) {
    let ctx = Ctx::with_server(&backend, users_server());
    let options = fast_options().backoff(Backoff {
        initial: Duration::from_millis(300),
        jitter: Duration::ZERO,
        ..Default::default()
    });
    let client = ctx.connect(options).await;
    let (log, _guard) = EventLog::attach(&client);
    ctx.server().drop_connections();
    ctx.eventually(WAIT, "reconnecting", || async {
        client.state() == ConnectionState::Reconnecting
    })
    .await;
    let users = client.store().bucket("users");
    let names: Vec<Value> = (0..100).map(|i| json!({"name": format!("u{i}")})).collect();
    let inserts: Vec<_> = names.iter().map(|name| users.insert(name)).collect();
    assert!(ctx
        .within(Duration::from_millis(20), join_all(inserts))
        .await
        .is_none());
    let store = client.store();
    let subscribes: Vec<_> = (0..100)
        .map(|_| std::future::IntoFuture::into_future(store.subscribe::<Vec<Record>>("all-users")))
        .collect();
    assert!(ctx
        .within(Duration::from_millis(20), join_all(subscribes))
        .await
        .is_none());
    ctx.eventually(WAIT, "reconnected", || async {
        log.count(|e| matches!(e, LifecycleEvent::Reconnected)) == 1
    })
    .await;
    // One more request on the new connection, to be sure everything before it was seen.
    assert_eq!(users.count(noex_client::Filter::all()).await.unwrap(), 0);
    assert!(ctx.server().records("users").is_empty());
    let frames = ctx.server().received_frames();
    let last = frames.last().unwrap();
    let kinds: Vec<String> = last
        .frames
        .iter()
        .filter_map(|f| serde_json::from_str::<Value>(f).ok())
        .filter_map(|v| v["type"].as_str().map(str::to_owned))
        .filter(|t| t != "pong")
        .collect();
    assert_eq!(kinds, vec!["store.count"], "{kinds:?}");
    assert_eq!(ctx.server().subscription_count(), 0);
    let counters = client.counters().await.unwrap();
    assert_eq!(counters.requests_cancelled, 100, "{counters:?}");
    assert_eq!(counters.requests_pending, 0, "{counters:?}");
    assert_eq!(counters.subscriptions_live, 0, "{counters:?}");
}

fn panics_reported(log: &EventLog, callback: &str) -> usize {
    log.count(|e| {
        matches!(e, LifecycleEvent::Error(CoreError::CallbackPanicked { callback: c, .. })
            if c.starts_with(callback))
    })
}

/// A lifecycle callback that panics is reported and the client carries on: connect
/// completes, the state is right, reconnects happen, requests work, other callbacks run.
pub async fn panicking_lifecycle_callback_is_isolated(backend: Backend) {
    let ctx = Ctx::with_server(&backend, users_server());
    let client = Client::new(ctx.backend.clone());
    let _bomb = client.on(|event| {
        if matches!(
            event,
            LifecycleEvent::Connected | LifecycleEvent::Reconnected
        ) {
            panic!("application bug in a lifecycle callback");
        }
    });
    let (log, _guard) = EventLog::attach(&client);
    client.connect(&ctx.url, fast_options()).await.unwrap();
    assert_eq!(client.state(), ConnectionState::Connected);
    ctx.eventually(WAIT, "the panic reported", || async {
        panics_reported(&log, "lifecycle callback") == 1
    })
    .await;
    let users = client.store().bucket("users");
    users.insert(&json!({"name": "Alice"})).await.unwrap();

    ctx.server().drop_connections();
    ctx.eventually(WAIT, "reconnected", || async {
        log.count(|e| matches!(e, LifecycleEvent::Reconnected)) == 1
    })
    .await;
    ctx.eventually(WAIT, "the second panic reported", || async {
        panics_reported(&log, "lifecycle callback") == 2
    })
    .await;
    assert_eq!(users.count(noex_client::Filter::all()).await.unwrap(), 1);
    assert!(client.is_connected());
}

/// An `on_update` callback that panics is reported and called again for the next value;
/// its subscription stays live on the server.
pub async fn panicking_on_update_callback_is_isolated(backend: Backend) {
    let ctx = Ctx::with_server(&backend, users_server());
    let client = ctx.connect(fast_options()).await;
    let (log, _guard) = EventLog::attach(&client);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let calls = Arc::new(AtomicUsize::new(0));
    let handle = {
        let seen = seen.clone();
        let calls = calls.clone();
        client
            .store()
            .subscribe::<u64>("user-count")
            .await
            .unwrap()
            .on_update(move |count| {
                // The second call panics, whatever value it carries (a store
                // subscription keeps only the latest value, so values may be skipped).
                let call = calls.fetch_add(1, Ordering::SeqCst);
                let count = count.expect("no error on this subscription");
                if call == 1 {
                    panic!("application bug in on_update");
                }
                seen.lock().unwrap().push(count);
            })
    };
    // The initial value is read before anything changes.
    ctx.eventually(WAIT, "the initial value", || async {
        !seen.lock().unwrap().is_empty()
    })
    .await;
    let users = client.store().bucket("users");
    users.insert(&json!({"name": "a"})).await.unwrap();
    ctx.eventually(WAIT, "the panic reported", || async {
        panics_reported(&log, "on_update of subscription#") == 1
    })
    .await;
    assert_eq!(seen.lock().unwrap().as_slice(), &[0]);
    users.insert(&json!({"name": "b"})).await.unwrap();
    ctx.eventually(WAIT, "the update after the panic", || async {
        seen.lock().unwrap().contains(&2)
    })
    .await;
    assert_eq!(ctx.server().subscription_count(), 1);
    assert!(client.is_connected());
    drop(handle);
    ctx.eventually(WAIT, "unsubscribed", || async {
        ctx.server().subscription_count() == 0
    })
    .await;
}

/// `disconnect()` ends every stream with `None`, no error first; a callback subscription
/// gets no error either.
pub async fn disconnect_ends_streams_quietly(backend: Backend) {
    let ctx = Ctx::with_server(&backend, users_server());
    let client = ctx.connect(fast_options()).await;
    let mut all = client
        .store()
        .subscribe::<Vec<Record>>("all-users")
        .await
        .unwrap();
    let mut orders = client.rules().subscribe("order.*").await.unwrap();
    assert!(all.next().await.unwrap().unwrap().is_empty());
    let errors = Arc::new(AtomicUsize::new(0));
    let _callback = {
        let errors = errors.clone();
        client
            .store()
            .subscribe::<u64>("user-count")
            .await
            .unwrap()
            .on_update(move |item| {
                if item.is_err() {
                    errors.fetch_add(1, Ordering::SeqCst);
                }
            })
    };
    client.disconnect().await;
    assert!(ctx.within(WAIT, all.next()).await.unwrap().is_none());
    assert!(ctx.within(WAIT, orders.next()).await.unwrap().is_none());
    ctx.sleep(Duration::from_millis(50)).await;
    assert_eq!(errors.load(Ordering::SeqCst), 0);
}

async fn ends_with_gave_up<T: std::fmt::Debug>(
    ctx: &Ctx,
    mut stream: impl futures::Stream<Item = noex_client::Result<T>> + Unpin,
    code: u16,
) {
    loop {
        match ctx.within(WAIT, stream.next()).await {
            Some(Some(Ok(_))) => continue,
            Some(Some(Err(Error::GaveUp(DisconnectReason::Closed { code: Some(c), .. }))))
                if c == code =>
            {
                break
            }
            other => panic!("expected the reason the client gave up ({code}), got {other:?}"),
        }
    }
    let end = ctx.within(WAIT, stream.next()).await;
    assert!(matches!(end, Some(None)), "then the end, got {end:?}");
}

/// A permanent close code arriving after a reconnect: every live subscription yields one
/// error saying why, then ends. Requests then fail at once, and are counted.
pub async fn giving_up_ends_streams_with_the_reason(backend: Backend) {
    let ctx = Ctx::with_server(&backend, users_server());
    let client = ctx.connect(fast_options()).await;
    let (log, _guard) = EventLog::attach(&client);
    let mut all = client
        .store()
        .subscribe::<Vec<Record>>("all-users")
        .await
        .unwrap();
    let orders = client.rules().subscribe("order.*").await.unwrap();
    assert!(all.next().await.unwrap().unwrap().is_empty());
    ctx.server().drop_connections();
    ctx.eventually(WAIT, "reconnected", || async {
        log.count(|e| matches!(e, LifecycleEvent::Reconnected)) == 1
    })
    .await;
    ctx.server().close_connections(4003, "too_many_connections");
    ends_with_gave_up(&ctx, all, 4003).await;
    ends_with_gave_up(&ctx, orders, 4003).await;
    assert_eq!(client.state(), ConnectionState::Disconnected);
    fails_at_once_not_sent(&client).await;
    let counters = client.counters().await.unwrap();
    assert_eq!(counters.requests_disconnected, 1, "{counters:?}");
    assert_eq!(counters.subscriptions_live, 0, "{counters:?}");
}

/// A revoked session (4002) and exhausted retries end subscriptions the same way.
pub async fn revoked_or_exhausted_ends_streams(backend: Backend) {
    let ctx = Ctx::with_server(&backend, users_server());
    let client = ctx.connect(fast_options()).await;
    let orders = client.rules().subscribe("order.*").await.unwrap();
    ctx.server().revoke_sessions("test");
    ends_with_gave_up(&ctx, orders, 4002).await;

    let options = attempt_options().backoff(Backoff {
        initial: Duration::from_millis(20),
        jitter: Duration::ZERO,
        max_retries: Some(2),
        ..Default::default()
    });
    let client = ctx.connect(options).await;
    let mut all = client
        .store()
        .subscribe::<Vec<Record>>("all-users")
        .await
        .unwrap();
    assert!(all.next().await.unwrap().unwrap().is_empty());
    ctx.server().set_handshake_fault(HandshakeFault::Reset);
    ctx.server().drop_connections();
    match ctx.within(WAIT, all.next()).await {
        Some(Some(Err(Error::GaveUp(reason)))) => {
            assert!(
                matches!(
                    &reason,
                    DisconnectReason::RetriesExhausted { attempts: 2, last }
                        if matches!(
                            **last,
                            DisconnectReason::ConnectFailed(_) | DisconnectReason::Closed { .. }
                        )
                ),
                "{reason:?}"
            )
        }
        other => panic!("expected GaveUp after the retries, got {other:?}"),
    }
    assert!(matches!(ctx.within(WAIT, all.next()).await, Some(None)));
}

/// When a lifecycle callback runs, the state its event announces is in place; the same
/// for the `events()` stream.
pub async fn state_is_set_before_its_event(backend: Backend) {
    let ctx = Ctx::with_server(&backend, users_server());
    let client = Client::new(ctx.backend.clone());
    let seen: Arc<Mutex<Vec<(LifecycleEvent, ConnectionState)>>> = Default::default();
    let guard = {
        let seen = seen.clone();
        let observer = client.clone();
        client.on(move |event| {
            seen.lock().unwrap().push((event.clone(), observer.state()));
        })
    };
    client.connect(&ctx.url, fast_options()).await.unwrap();
    let mut events = client.events();
    ctx.server().drop_connections();
    ctx.eventually(WAIT, "reconnected", || async {
        seen.lock()
            .unwrap()
            .iter()
            .any(|(e, _)| matches!(e, LifecycleEvent::Reconnected))
    })
    .await;
    client.disconnect().await;
    drop(guard); // the callback holds a client handle
    let seen = seen.lock().unwrap().clone();
    let state_at = |pred: fn(&LifecycleEvent) -> bool| -> Vec<ConnectionState> {
        seen.iter()
            .filter(|(e, _)| pred(e))
            .map(|(_, s)| *s)
            .collect()
    };
    assert_eq!(
        state_at(|e| matches!(e, LifecycleEvent::Connected)),
        vec![ConnectionState::Connected]
    );
    assert_eq!(
        state_at(|e| matches!(e, LifecycleEvent::Reconnected)),
        vec![ConnectionState::Connected]
    );
    assert_eq!(
        state_at(|e| matches!(e, LifecycleEvent::Disconnected(_))),
        vec![ConnectionState::Reconnecting, ConnectionState::Disconnected]
    );
    assert!(
        state_at(|e| matches!(e, LifecycleEvent::Reconnecting { .. }))
            .iter()
            .all(|s| *s == ConnectionState::Reconnecting)
    );
    for (event, state) in &seen {
        if let LifecycleEvent::StateChanged(announced) = event {
            assert_eq!(announced, state, "{event:?}");
        }
    }
    // The stream sees the same order: each state change before what it announces.
    let mut order = Vec::new();
    while let Some(Some(event)) = ctx.within(Duration::from_millis(200), events.next()).await {
        order.push(event);
    }
    let position = |pred: &dyn Fn(&LifecycleEvent) -> bool| order.iter().position(pred);
    let reconnecting = position(&|e| {
        matches!(
            e,
            LifecycleEvent::StateChanged(ConnectionState::Reconnecting)
        )
    });
    let lost = position(&|e| matches!(e, LifecycleEvent::Disconnected(_)));
    assert!(reconnecting.is_some() && reconnecting < lost, "{order:?}");
}

/// A request made while the client waits to reconnect waits for the connection and
/// succeeds (the default); with fail-fast it fails at once, not sent.
pub async fn requests_wait_for_the_connection_by_default(backend: Backend) {
    let ctx = Ctx::with_server(&backend, users_server());
    let options = fast_options().backoff(Backoff {
        initial: Duration::from_millis(300),
        jitter: Duration::ZERO,
        ..Default::default()
    });
    let client = ctx.connect(options.clone()).await;
    ctx.server().drop_connections();
    ctx.eventually(WAIT, "reconnecting", || async {
        client.state() == ConnectionState::Reconnecting
    })
    .await;
    let alice = client
        .store()
        .bucket("users")
        .insert(&json!({"name": "Alice"}))
        .await
        .expect("waits for the connection");
    assert_eq!(alice.version, 1);
    assert!(client.is_connected());

    let client = ctx.connect(options.queue_while_disconnected(false)).await;
    ctx.server().drop_connections();
    ctx.eventually(WAIT, "reconnecting", || async {
        client.state() == ConnectionState::Reconnecting
    })
    .await;
    fails_at_once_not_sent(&client).await;
}

/// With `max_in_flight(4)`, ten concurrent requests put four frames on the wire at a time;
/// all succeed. A caller whose deadline passes while it waits for a slot fails, not sent.
pub async fn in_flight_cap_makes_callers_wait(backend: Backend) {
    let ctx = Ctx::with_server(&backend, users_server());
    let client = ctx.connect(fast_options().max_in_flight(4)).await;
    let users = client.store().bucket("users");
    let frames_before = client.counters().await.unwrap().frames_out;
    // The server answers one request every 300 ms. Watched until every caller is issued
    // (a loaded machine may run the driver late), before the first answer frees a slot.
    ctx.server().set_delay(Duration::from_millis(300));
    let calls: Vec<_> = (0..10)
        .map(|_| users.count(noex_client::Filter::all()))
        .collect();
    let watch = async {
        let mut seen = (0, 0);
        for _ in 0..25 {
            ctx.sleep(Duration::from_millis(10)).await;
            let counters = client.counters().await.unwrap();
            seen = (
                counters.frames_out - frames_before,
                counters.requests_pending,
            );
            if seen.1 == 10 {
                break;
            }
        }
        seen
    };
    let (results, (frames, pending)) = futures::join!(join_all(calls), watch);
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(frames, 4, "only four requests on the wire at a time");
    assert_eq!(pending, 10, "the others wait, counted as pending");

    let hold: Vec<_> = (0..4)
        .map(|_| users.count(noex_client::Filter::all()))
        .collect();
    let late = users
        .clone()
        .with_options(RequestOptions::default().timeout(Duration::from_millis(100)));
    let (held, waited) = futures::join!(join_all(hold), late.count(noex_client::Filter::all()));
    assert!(held.iter().all(Result::is_ok));
    assert!(
        matches!(
            waited,
            Err(Error::Timeout {
                delivery: Delivery::NotSent
            })
        ),
        "{waited:?}"
    );
    ctx.server().set_delay(Duration::ZERO);
    let counters = client.counters().await.unwrap();
    assert_eq!(counters.requests_timed_out, 1, "{counters:?}");
    assert_eq!(
        counters.requests_issued,
        counters.requests_ended() + counters.requests_pending,
        "{counters:?}"
    );
}

/// Every request is counted once by how it ended; the gauges say what is live.
pub async fn counters_add_up(backend: Backend) {
    let ctx = Ctx::with_server(&backend, users_server());
    let client = ctx.connect(fast_options()).await;
    let users = client.store().bucket("users");
    users.insert(&json!({"name": "Alice"})).await.unwrap();
    users.insert(&json!({"age": 3})).await.unwrap_err(); // name is required
    let _live = client.rules().subscribe("order.*").await.unwrap();
    ctx.server().set_delay(Duration::from_millis(300));
    let short = users
        .clone()
        .with_options(RequestOptions::default().timeout(Duration::from_millis(50)));
    short.count(noex_client::Filter::all()).await.unwrap_err();
    assert!(ctx
        .within(
            Duration::from_millis(20),
            users.count(noex_client::Filter::all())
        )
        .await
        .is_none());
    let slow = users.count(noex_client::Filter::all());
    let watch = async {
        ctx.sleep(Duration::from_millis(100)).await;
        client.counters().await.unwrap()
    };
    let (answer, during) = futures::join!(slow, watch);
    answer.unwrap();
    assert_eq!(during.requests_pending, 1, "{during:?}");
    assert_eq!(during.subscriptions_live, 1, "{during:?}");
    ctx.server().set_delay(Duration::ZERO);
    let counters = client.counters().await.unwrap();
    assert_eq!(counters.requests_issued, 5, "{counters:?}");
    assert_eq!(counters.requests_ok, 2, "{counters:?}");
    assert_eq!(counters.requests_server_error, 1, "{counters:?}");
    assert_eq!(counters.requests_timed_out, 1, "{counters:?}");
    assert_eq!(counters.requests_cancelled, 1, "{counters:?}");
    assert_eq!(counters.requests_pending, 0, "{counters:?}");
    assert_eq!(
        counters.requests_issued,
        counters.requests_ended(),
        "{counters:?}"
    );
}
