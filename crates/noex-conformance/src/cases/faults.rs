//! Cases that need the embedded server: fault injection, close codes, timeouts, limits.

pub use super::auth::{
    auth_and_audit, credentials_login_across_reconnects, identity_api, session_revoked_stops,
    token_login_across_reconnects,
};
pub use super::live::{
    live_gives_up_then_ends_and_ends_on_disconnect, live_missed_across_a_clean_close,
    live_missed_across_a_server_restart, live_missed_while_the_link_was_silent,
};
pub use super::outcomes::stall_resume_drop_outcomes;
pub use super::resources::{
    counters_add_up, disconnect_ends_streams_quietly, disconnect_releases_the_socket,
    dropped_futures_while_reconnecting_are_never_sent,
    dropped_subscribe_futures_leave_nothing_on_the_server, giving_up_ends_streams_with_the_reason,
    handshake_delay_and_reset_hold_at_most_one_socket, handshake_stall_holds_at_most_one_socket,
    in_flight_cap_makes_callers_wait, panicking_lifecycle_callback_is_isolated,
    panicking_on_update_callback_is_isolated, requests_wait_for_the_connection_by_default,
    revoked_or_exhausted_ends_streams, state_is_set_before_its_event,
};
pub use super::time::{
    expired_session_is_made_again_and_refused_requests_resent,
    link_silent_before_first_ping_is_noticed, listener_after_connect_hears_only_later_events,
    rules_events_while_silently_dead_lie_in_a_gap, session_stays_logged_in_for_four_lifetimes,
    static_token_expiry_gives_up_saying_expired, token_provider_refreshes_expiring_tokens,
};

use super::users_server;
use crate::{fast_options, Ctx, EventLog};
use futures::StreamExt;
use noex_client::runtime::Backend;
use noex_client::{
    ClientOptions, ConnectionState, Delivery, DisconnectReason, Error, ErrorCode, LifecycleEvent,
    Record, RequestOptions, RuleMessage, RuleUpdate,
};
use noex_testkit::TestServer;
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

fn reconnected(e: &LifecycleEvent) -> bool {
    matches!(e, LifecycleEvent::Reconnected)
}

async fn wait_reconnects(ctx: &Ctx, log: &EventLog, n: usize) {
    ctx.eventually(WAIT, "reconnected", || async {
        log.count(reconnected) >= n
    })
    .await;
}

/// Count queries and parameterised queries push the right values.
pub async fn count_and_param_queries(backend: Backend) {
    let ctx = Ctx::with_server(&backend, users_server());
    let client = ctx.connect(ClientOptions::new()).await;
    let mut count = client.store().subscribe::<u64>("user-count").await.unwrap();
    let mut admins = client
        .store()
        .subscribe::<Vec<Record>>("users-by-role")
        .params(json!({"role": "admin"}))
        .await
        .unwrap();
    assert_eq!(count.next().await.unwrap().unwrap(), 0);
    assert!(admins.next().await.unwrap().unwrap().is_empty());
    let users = client.store().bucket("users");
    users
        .insert(&json!({"name": "Alice", "role": "admin"}))
        .await
        .unwrap();
    assert_eq!(
        ctx.within(WAIT, count.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap(),
        1
    );
    assert_eq!(
        ctx.within(WAIT, admins.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
            .len(),
        1
    );
    users.insert(&json!({"name": "Bob"})).await.unwrap();
    assert_eq!(
        ctx.within(WAIT, count.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap(),
        2
    );
}

/// After the server drops every connection, subscriptions come back with fresh data.
pub async fn restore_after_drop(backend: Backend) {
    let ctx = Ctx::with_server(&backend, users_server());
    let client = ctx.connect(fast_options()).await;
    let (log, _guard) = EventLog::attach(&client);
    let mut all = client
        .store()
        .subscribe::<Vec<Record>>("all-users")
        .await
        .unwrap();
    let mut events = client.rules().subscribe("order.*").await.unwrap();
    assert!(all.next().await.unwrap().unwrap().is_empty());

    ctx.server().drop_connections();
    ctx.server()
        .insert("users", json!({"name": "Written while away"}))
        .unwrap();
    wait_reconnects(&ctx, &log, 1).await;
    let fresh = ctx
        .within(WAIT, all.next())
        .await
        .expect("fresh data after restore")
        .unwrap()
        .unwrap();
    assert_eq!(
        fresh.len(),
        1,
        "restore delivers the data changed while disconnected"
    );
    // The rules subscription says first that events of the gap may have been missed.
    match ctx.within(WAIT, events.next()).await {
        Some(Some(Ok(RuleUpdate::Missed { from, to }))) => assert!(from <= to, "{from:?} > {to:?}"),
        other => panic!("expected the gap marker first, got {other:?}"),
    }
    client
        .rules()
        .emit("order.created", &json!({}))
        .await
        .unwrap();
    let message: RuleMessage = ctx
        .within(WAIT, events.next())
        .await
        .expect("rules sub restored")
        .unwrap()
        .unwrap()
        .into_event()
        .expect("an event");
    assert_eq!(message.topic, "order.created");
    assert!(log.count(|e| matches!(e, LifecycleEvent::Disconnected(_))) >= 1);
    assert!(log.count(|e| matches!(e, LifecycleEvent::Reconnecting { .. })) >= 1);
    assert_eq!(client.state(), ConnectionState::Connected);
    // Both subscriptions were made again in one burst on the new connection.
    let logs = ctx.server().received_frames();
    let second = logs.last().unwrap();
    let subscribes = second
        .frames
        .iter()
        .filter(|f| f.contains("\"store.subscribe\"") || f.contains("\"rules.subscribe\""))
        .count();
    assert_eq!(subscribes, 2);
}

/// A server that goes silent without closing is noticed by the liveness watchdog.
pub async fn restore_after_stall(backend: Backend) {
    let ctx = Ctx::with_server(
        &backend,
        users_server().heartbeat(Duration::from_millis(150)),
    );
    let options = fast_options().liveness_timeout(Duration::from_millis(600));
    let client = ctx.connect(options).await;
    let (log, _guard) = EventLog::attach(&client);
    let mut all = client
        .store()
        .subscribe::<Vec<Record>>("all-users")
        .await
        .unwrap();
    all.next().await.unwrap().unwrap();
    ctx.server().stall();
    ctx.eventually(WAIT, "liveness timeout", || async {
        log.count(|e| {
            matches!(
                e,
                LifecycleEvent::Disconnected(DisconnectReason::LivenessTimeout)
            )
        }) >= 1
    })
    .await;
    ctx.server()
        .insert("users", json!({"name": "Fresh"}))
        .unwrap();
    ctx.server().resume();
    wait_reconnects(&ctx, &log, 1).await;
    let fresh = ctx
        .within(WAIT, all.next())
        .await
        .expect("restored")
        .unwrap()
        .unwrap();
    assert_eq!(fresh.len(), 1);
}

/// Close codes 1000, 1001 and 4001 lead to a reconnect.
pub async fn close_codes_that_reconnect(backend: Backend) {
    let ctx = Ctx::with_server(&backend, users_server());
    let client = ctx.connect(fast_options()).await;
    let (log, _guard) = EventLog::attach(&client);
    for (i, code) in [1000u16, 1001, 4001].into_iter().enumerate() {
        ctx.server().close_connections(code, "test");
        wait_reconnects(&ctx, &log, i + 1).await;
        assert!(log.count(|e| matches!(e, LifecycleEvent::Disconnected(DisconnectReason::Closed { code: Some(c), .. }) if *c == code)) >= 1);
        assert_eq!(
            client
                .store()
                .bucket("users")
                .count(noex_client::Filter::all())
                .await
                .unwrap(),
            0
        );
    }
}

/// Close codes 1003, 4002 and 4003 are permanent: no reconnect.
pub async fn close_codes_that_stop(backend: Backend) {
    for code in [1003u16, 4002, 4003] {
        let ctx = Ctx::with_server(&backend, users_server());
        let client = ctx.connect(fast_options()).await;
        ctx.server().close_connections(code, "test");
        ctx.eventually(WAIT, "disconnected", || async {
            client.state() == ConnectionState::Disconnected
        })
        .await;
        ctx.sleep(Duration::from_millis(300)).await;
        assert_eq!(client.state(), ConnectionState::Disconnected, "code {code}");
        assert_eq!(
            ctx.server().connection_count(),
            0,
            "code {code}: no reconnect"
        );
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
}

/// A shutdown notice is reported, and the client comes back when the server does.
pub async fn shutdown_notice_then_reconnect(backend: Backend) {
    let ctx = Ctx::with_server(&backend, users_server());
    let client = ctx.connect(fast_options()).await;
    let (log, _guard) = EventLog::attach(&client);
    ctx.server().send_shutdown(100);
    ctx.eventually(WAIT, "shutdown notice", || async {
        log.count(|e| matches!(e, LifecycleEvent::ServerShutdown { grace_period: Some(g) } if *g == Duration::from_millis(100))) == 1
    })
    .await;
    wait_reconnects(&ctx, &log, 1).await;
    assert!(client.is_connected());
}

/// Requests in flight when the connection drops fail with a disconnected error saying the
/// frame left the client; requests made while reconnecting fail at once as not sent.
pub async fn pending_rejected_on_loss(backend: Backend) {
    let ctx = Ctx::with_server(&backend, users_server());
    let client = ctx
        .connect(
            fast_options()
                .backoff(noex_client::Backoff {
                    initial: Duration::from_millis(500),
                    jitter: Duration::ZERO,
                    ..Default::default()
                })
                // Fail fast while reconnecting instead of waiting (the default).
                .queue_while_disconnected(false),
        )
        .await;
    ctx.server().set_delay(Duration::from_millis(400));
    let users = client.store().bucket("users");
    let pending = users.all();
    let dropper = async {
        ctx.sleep(Duration::from_millis(100)).await;
        ctx.server().drop_connections();
    };
    let (result, ()) = futures::join!(pending, dropper);
    let err = result.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Disconnected {
                delivery: Delivery::OutcomeUnknown
            }
        ),
        "{err:?}"
    );
    assert!(err.may_have_been_applied());
    ctx.eventually(WAIT, "reconnecting", || async {
        client.state() == ConnectionState::Reconnecting
    })
    .await;
    let now = users.all().await.unwrap_err();
    assert!(
        matches!(
            now,
            Error::Disconnected {
                delivery: Delivery::NotSent
            }
        ),
        "{now:?}"
    );
    ctx.server().set_delay(Duration::ZERO);
    ctx.eventually(WAIT, "connected", || async { client.is_connected() })
        .await;
}

/// A read marked retry-safe is sent again after the reconnect and succeeds.
pub async fn retry_safe_read_survives_drop(backend: Backend) {
    let ctx = Ctx::with_server(&backend, users_server());
    let client = ctx.connect(fast_options()).await;
    client
        .store()
        .bucket("users")
        .insert(&json!({"name": "Alice"}))
        .await
        .unwrap();
    ctx.server().set_delay(Duration::from_millis(300));
    let users = client.store().bucket("users").with_options(
        RequestOptions::default()
            .retry_safe(true)
            .timeout(Duration::from_secs(8)),
    );
    let read = users.all();
    let dropper = async {
        ctx.sleep(Duration::from_millis(100)).await;
        ctx.server().drop_connections();
        ctx.sleep(Duration::from_millis(50)).await;
        ctx.server().set_delay(Duration::ZERO);
    };
    let (result, ()) = futures::join!(read, dropper);
    assert_eq!(result.unwrap().len(), 1);
    assert!(client.counters().await.unwrap().requests_resent >= 1);
}

/// A request without an answer in time fails with a timeout that may have been applied.
pub async fn request_timeout(backend: Backend) {
    let ctx = Ctx::with_server(&backend, users_server());
    let client = ctx.connect(fast_options()).await;
    ctx.server().set_delay(Duration::from_millis(800));
    let users = client
        .store()
        .bucket("users")
        .with_options(RequestOptions::default().timeout(Duration::from_millis(150)));
    let err = users.insert(&json!({"name": "Slow"})).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Timeout {
                delivery: Delivery::OutcomeUnknown
            }
        ),
        "{err:?}"
    );
    ctx.server().set_delay(Duration::ZERO);
    // The late answer is dropped and counted; the client keeps working.
    ctx.eventually(WAIT, "late answer counted", || async {
        client.counters().await.unwrap().late_answers >= 1
    })
    .await;
    assert_eq!(
        client
            .store()
            .bucket("users")
            .count(noex_client::Filter::all())
            .await
            .unwrap(),
        1
    );
}

/// A server that accepts TCP but never speaks WebSocket makes `connect` time out.
pub async fn connect_timeout(backend: Backend) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let ctx = Ctx {
        backend: backend.clone(),
        url,
        server: None,
    };
    let client = noex_client::Client::new(backend);
    let result = ctx
        .within(
            WAIT,
            client.connect(
                &ctx.url,
                fast_options().connect_timeout(Duration::from_millis(300)),
            ),
        )
        .await
        .expect("connect gives up");
    let err = result.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert_eq!(client.state(), ConnectionState::Disconnected);
    drop(listener);
    // Nothing listening at all: a transport error.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}", closed.local_addr().unwrap());
    drop(closed);
    let err = client.connect(&url, fast_options()).await.unwrap_err();
    assert!(matches!(err, Error::Transport(_)), "{err:?}");
}

/// Garbage, unknown frame types, answers to unknown ids and binary frames from the server
/// are reported and change nothing else.
pub async fn bad_frames_leave_client_working(backend: Backend) {
    let ctx = Ctx::with_server(&backend, users_server());
    let client = ctx.connect(fast_options()).await;
    let (log, _guard) = EventLog::attach(&client);
    let mut all = client
        .store()
        .subscribe::<Vec<Value>>("all-users")
        .await
        .unwrap();
    all.next().await.unwrap().unwrap();
    let server = ctx.server();
    server.send_raw_text("{not json");
    server.send_raw_text(r#"{"type":"mystery","x":1}"#);
    server.send_raw_text(r#"{"id":99999,"type":"result","data":{}}"#);
    server.send_raw_text(r#"{"id":"seven","type":"result","data":{}}"#);
    server.send_raw_text(
        r#"{"type":"push","channel":"subscription","subscriptionId":"sub-424242","data":[]}"#,
    );
    server.send_raw_text("[1,2,3]");
    server.send_raw_binary(vec![0, 1, 2]);
    client
        .store()
        .bucket("users")
        .insert(&json!({"name": "Still here"}))
        .await
        .unwrap();
    let update = ctx
        .within(WAIT, all.next())
        .await
        .expect("push still delivered")
        .unwrap()
        .unwrap();
    assert_eq!(update.len(), 1);
    assert!(client.is_connected());
    let protocol_errors = log.count(|e| {
        matches!(
            e,
            LifecycleEvent::Error(noex_client::proto::CoreError::Protocol(_))
        )
    });
    assert!(protocol_errors >= 5, "{:?}", log.events());
    let counters = client.counters().await.unwrap();
    assert!(counters.late_answers >= 1);
    assert!(counters.pushes_dropped >= 1);
    assert_eq!(
        log.count(|e| matches!(e, LifecycleEvent::Disconnected(_))),
        0
    );
}

/// A request future dropped before its answer leaves nothing behind once its deadline
/// A request whose future is dropped is withdrawn at once: cancelled in the core, not
/// left to its deadline.
pub async fn dropped_request_future_is_withdrawn(backend: Backend) {
    let ctx = Ctx::with_server(&backend, users_server());
    let client = ctx.connect(fast_options()).await;
    ctx.server().set_delay(Duration::from_millis(500));
    let users = client.store().bucket("users");
    // Start the request, then drop the future.
    assert!(ctx
        .within(
            Duration::from_millis(20),
            users.count(noex_client::Filter::all())
        )
        .await
        .is_none());
    ctx.eventually(WAIT, "the dropped request is cancelled", || async {
        let counters = client.counters().await.unwrap();
        counters.requests_cancelled == 1 && counters.requests_pending == 0
    })
    .await;
    ctx.server().set_delay(Duration::ZERO);
    assert_eq!(
        client
            .store()
            .bucket("users")
            .count(noex_client::Filter::all())
            .await
            .unwrap(),
        0
    );
    let counters = client.counters().await.unwrap();
    assert_eq!(counters.requests_timed_out, 0, "{counters:?}");
    // The late answer of the withdrawn request is ignored.
    ctx.eventually(WAIT, "the late answer arrives", || async {
        client.counters().await.unwrap().late_answers == 1
    })
    .await;
}

/// A subscription nobody reads keeps only the latest result.
pub async fn slow_consumer_keeps_latest_only(backend: Backend) {
    let ctx = Ctx::with_server(&backend, users_server());
    let client = ctx.connect(fast_options()).await;
    let mut count = client.store().subscribe::<u64>("user-count").await.unwrap();
    let users = client.store().bucket("users");
    for i in 0..200 {
        users
            .insert(&json!({"name": format!("u{i}")}))
            .await
            .unwrap();
    }
    ctx.eventually(WAIT, "all pushes arrived", || async {
        client.counters().await.unwrap().pushes_delivered >= 200
    })
    .await;
    assert!(count.unread() <= 1, "unread {}", count.unread());
    assert_eq!(
        count.next().await.unwrap().unwrap(),
        200,
        "the latest value wins"
    );
}

/// Past the per-connection subscription limit the server answers RATE_LIMITED.
pub async fn subscription_limit(backend: Backend) {
    let ctx = Ctx::with_server(&backend, users_server().max_subscriptions_per_connection(2));
    let client = ctx.connect(fast_options()).await;
    let _a = client.store().subscribe::<u64>("user-count").await.unwrap();
    let _b = client.rules().subscribe("x.*").await.unwrap();
    let err = client
        .store()
        .subscribe::<u64>("user-count")
        .await
        .unwrap_err();
    assert!(err.is(&ErrorCode::RateLimited), "{err:?}");
    assert!(
        err.to_string().contains("Subscription limit reached"),
        "{err}"
    );
}

/// `wss://` through a local TLS endpoint whose certificate is trusted explicitly.
pub async fn wss_with_custom_root(backend: Backend) {
    let server = TestServer::builder().start().unwrap();
    let proxy = crate::tls_proxy::TlsProxy::start(server.port());
    let client = noex_client::Client::new(backend.clone());
    let url = format!("wss://localhost:{}", proxy.port());
    let untrusted = client.connect(&url, fast_options()).await.unwrap_err();
    assert!(matches!(untrusted, Error::Transport(_)), "{untrusted:?}");
    let welcome = client
        .connect(&url, fast_options().add_root_certificate(proxy.ca_der()))
        .await
        .unwrap();
    assert_eq!(welcome.version, "1.0.0");
    assert_eq!(client.store().buckets().await.unwrap().count, 0);
}

/// Lifecycle events as a stream, and the state getter.
pub async fn events_stream_and_state(backend: Backend) {
    let ctx = Ctx::with_server(&backend, users_server());
    let client = noex_client::Client::new(backend.clone());
    assert_eq!(client.state(), ConnectionState::Disconnected);
    let mut events = client.events();
    client.connect(&ctx.url, fast_options()).await.unwrap();
    assert!(client.is_connected());
    let mut seen = Vec::new();
    while let Some(Some(event)) = ctx.within(Duration::from_millis(200), events.next()).await {
        seen.push(event);
    }
    assert!(
        seen.iter().any(|e| matches!(e, LifecycleEvent::Welcome(_))),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|e| matches!(e, LifecycleEvent::Connected)),
        "{seen:?}"
    );
    client.disconnect().await;
    assert_eq!(client.state(), ConnectionState::Disconnected);
    let err = client.store().buckets().await.unwrap_err();
    assert!(
        matches!(err, Error::Disconnected { .. } | Error::Closed { .. }),
        "{err:?}"
    );
}

/// With queueing on, requests made while reconnecting wait and then succeed.
pub async fn queue_while_disconnected(backend: Backend) {
    let ctx = Ctx::with_server(&backend, users_server());
    let options = fast_options()
        .queue_while_disconnected(true)
        .max_queued(100)
        .backoff(noex_client::Backoff {
            initial: Duration::from_millis(300),
            jitter: Duration::ZERO,
            ..Default::default()
        });
    let client = ctx.connect(options).await;
    ctx.server().drop_connections();
    ctx.eventually(WAIT, "reconnecting", || async {
        client.state() == ConnectionState::Reconnecting
    })
    .await;
    let count = client
        .store()
        .bucket("users")
        .count(noex_client::Filter::all())
        .await
        .unwrap();
    assert_eq!(count, 0);
    assert!(client.is_connected());
}

/// Dropping the last handle closes the connection cleanly.
pub async fn dropping_last_handle_closes(backend: Backend) {
    let ctx = Ctx::with_server(&backend, users_server());
    let client = ctx.connect(fast_options()).await;
    let clone = client.clone();
    let sub = client.store().subscribe::<u64>("user-count").await.unwrap();
    assert_eq!(ctx.server().connection_count(), 1);
    drop(client);
    ctx.sleep(Duration::from_millis(100)).await;
    assert_eq!(ctx.server().connection_count(), 1, "a clone keeps it open");
    drop(clone);
    ctx.eventually(WAIT, "connection closed", || async {
        ctx.server().connection_count() == 0
    })
    .await;
    // The subscription ends with the client.
    let mut sub = sub;
    let end = ctx
        .within(WAIT, async {
            loop {
                match sub.next().await {
                    None => return true,
                    Some(Ok(_)) => continue,
                    Some(Err(_)) => continue,
                }
            }
        })
        .await;
    assert_eq!(end, Some(true));
}
