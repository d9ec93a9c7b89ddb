//! Giving up on the connection: a permanent close code (1003, 4002, 4003), refused
//! credentials, exhausted retries, reconnect off, or a failed first attempt without
//! `retry_initial_connect`. The state changes first (`Disconnected`), then the reason is
//! announced (`RetriesExhausted`, with the last attempt's reason, when that is why), then
//! the requests waiting for a connection fail, and last every live subscription fails with
//! `GaveUp(reason)`: none is kept for a connection that is not coming.

mod common;

use common::*;
use noex_proto::{
    ops, Auth, Backoff, ConnectionState, Delivery, DisconnectReason, Event, Input, LifecycleEvent,
    RequestError, Secret, SubscriptionEvent, SubscriptionId, SubscriptionSpec,
};
use serde_json::json;
use std::time::Duration;

fn q(name: &str) -> SubscriptionSpec {
    SubscriptionSpec::query(name, None)
}

/// The subscriptions that failed with `GaveUp`, and the reason each carried.
fn gave_up(h: &Harness) -> Vec<(SubscriptionId, DisconnectReason)> {
    h.sub_events()
        .into_iter()
        .filter_map(|e| match e {
            SubscriptionEvent::Failed {
                id,
                error: RequestError::GaveUp(reason),
            } => Some((*id, reason.clone())),
            _ => None,
        })
        .collect()
}

/// Where the first event matching `pred` is in the recorded events.
fn position(h: &Harness, what: &str, pred: impl Fn(&Event) -> bool) -> usize {
    h.events
        .iter()
        .position(pred)
        .unwrap_or_else(|| panic!("no {what} in {:?}", h.events))
}

fn is_state(e: &Event, state: ConnectionState) -> bool {
    matches!(e, Event::Lifecycle(LifecycleEvent::StateChanged(s)) if *s == state)
}

fn is_disconnected(e: &Event) -> bool {
    matches!(e, Event::Lifecycle(LifecycleEvent::Disconnected(_)))
}

fn is_gave_up(e: &Event) -> bool {
    matches!(
        e,
        Event::Subscription(SubscriptionEvent::Failed {
            error: RequestError::GaveUp(_),
            ..
        })
    )
}

#[test]
fn close_4003_after_a_reconnect_fails_every_live_subscription_with_gave_up() {
    let mut h = Harness::connected(Harness::config());
    let a = h.subscribe(q("a"));
    let b = h.subscribe(SubscriptionSpec::rules("order.*"));
    h.answer_subscribes(json!([]));
    h.server_close(Some(1000), "normal_closure");
    h.reopen(false);
    h.answer_subscribes(json!([]));
    assert_eq!(h.core.state(), ConnectionState::Connected);
    let c = h.subscribe(q("c")); // in flight
    h.clear();
    h.server_close(Some(4003), "too_many_connections");

    let reason = DisconnectReason::Closed {
        code: Some(4003),
        reason: "too_many_connections".into(),
    };
    assert_eq!(
        gave_up(&h),
        vec![
            (a, reason.clone()),
            (b, reason.clone()),
            (c, reason.clone())
        ]
    );
    assert_eq!(h.core.subscription_count(), 0);
    assert_eq!(h.core.counters().subscriptions_live, 0);
    // State, then reason, then the subscriptions.
    let state = position(&h, "StateChanged(Disconnected)", |e| {
        is_state(e, ConnectionState::Disconnected)
    });
    let disconnected = position(&h, "Disconnected", is_disconnected);
    let first_failed = position(&h, "GaveUp", is_gave_up);
    assert!(
        state < disconnected && disconnected < first_failed,
        "{:?}",
        h.events
    );
    assert_eq!(h.disconnects(), vec![&reason]);
    // No reconnect comes.
    h.advance(Duration::from_secs(300));
    assert_eq!(h.opens.len(), 0);
}

#[test]
fn exhausted_retries_fail_every_live_subscription_after_the_error_and_the_queued_requests() {
    let mut h = Harness::connected(Harness::config().backoff(Backoff {
        max_retries: Some(2),
        ..Backoff::default()
    }));
    let a = h.subscribe(q("a"));
    h.answer_subscribes(json!([]));
    h.server_close(None, "");
    let b = h.subscribe(q("b")); // made while reconnecting: never registered
    let queued = h.request(ops::store::all("users"));
    for _ in 0..2 {
        let before = h.opens.len();
        while h.opens.len() == before {
            assert!(h.step());
        }
        h.clear();
        h.input(Input::ConnectFailed { reason: "refused" });
    }

    let reason = DisconnectReason::RetriesExhausted {
        attempts: 2,
        last: Box::new(DisconnectReason::ConnectFailed("refused".into())),
    };
    assert_eq!(gave_up(&h), vec![(a, reason.clone()), (b, reason.clone())]);
    assert!(reason.to_string().contains("2 failed attempts"), "{reason}");
    assert_eq!(
        h.error_of(queued),
        &RequestError::Disconnected {
            delivery: Delivery::NotSent
        }
    );
    let state = position(&h, "StateChanged(Disconnected)", |e| {
        is_state(e, ConnectionState::Disconnected)
    });
    let disconnected = position(&h, "Disconnected", is_disconnected);
    assert_eq!(
        h.disconnects().last(),
        Some(&&reason),
        "the reason is the reason"
    );
    let request_failed = position(
        &h,
        "the queued request's failure",
        |e| matches!(e, Event::Response { id, .. } if *id == queued),
    );
    let first_failed = position(&h, "GaveUp", is_gave_up);
    assert!(
        state < disconnected && disconnected < request_failed && request_failed < first_failed,
        "{:?}",
        h.events
    );
    assert_eq!(h.core.subscription_count(), 0);
    assert_eq!(h.core.pending_entries(), 0);
}

#[test]
fn session_revoked_fails_every_live_subscription_with_gave_up() {
    let mut h = Harness::connected(Harness::config());
    let a = h.subscribe(q("a"));
    let b = h.subscribe(q("b"));
    h.answer_subscribes(json!([]));
    h.frame(r#"{"type":"system","event":"session_revoked","reason":"admin revoked"}"#);
    // Still connected until the close comes: nothing has failed yet.
    assert!(gave_up(&h).is_empty());
    h.server_close(Some(4002), "session_revoked");

    let reason = DisconnectReason::Closed {
        code: Some(4002),
        reason: "session_revoked".into(),
    };
    assert_eq!(gave_up(&h), vec![(a, reason.clone()), (b, reason)]);
    assert_eq!(h.core.state(), ConnectionState::Disconnected);
    assert_eq!(h.core.subscription_count(), 0);
}

#[test]
fn close_1003_fails_every_live_subscription_with_gave_up() {
    let mut h = Harness::connected(Harness::config());
    let a = h.subscribe(q("a"));
    h.answer_subscribes(json!([]));
    h.server_close(Some(1003), "binary_not_supported");
    assert!(matches!(
        &gave_up(&h)[..],
        [(id, DisconnectReason::Closed { code: Some(1003), .. })] if *id == a
    ));
}

#[test]
fn refused_credentials_fail_every_live_subscription_with_gave_up() {
    let mut h = Harness::new(Harness::config().auth(Auth::Token(Secret::new("t"))));
    h.connect();
    let a = h.subscribe(q("a")); // waits for the login
    h.open_and_welcome(true);
    let login = h.last_send().id().unwrap();
    h.answer_error(login, "UNAUTHORIZED", "Invalid token");
    let rejected = DisconnectReason::AuthRejected {
        code: noex_proto::ErrorCode::Unauthorized,
        message: "Invalid token".into(),
    };
    assert_eq!(gave_up(&h), vec![(a, rejected)]);
    assert!(h.sends.iter().all(|s| s.kind() != "store.subscribe"));
}

#[test]
fn with_reconnect_off_a_lost_connection_fails_every_live_subscription() {
    let mut h = Harness::connected(Harness::config().reconnect(false));
    let a = h.subscribe(q("a"));
    h.answer_subscribes(json!([]));
    h.server_close(Some(1000), "normal_closure");
    assert!(matches!(
        &gave_up(&h)[..],
        [(id, DisconnectReason::Closed { code: Some(1000), .. })] if *id == a
    ));
    assert!(!h
        .disconnects()
        .iter()
        .any(|r| matches!(r, DisconnectReason::RetriesExhausted { .. })));
}

#[test]
fn a_failed_first_attempt_fails_the_subscriptions_made_while_connecting() {
    let mut h = Harness::new(Harness::config());
    h.connect();
    let a = h.subscribe(q("a"));
    h.input(Input::ConnectFailed { reason: "refused" });
    assert_eq!(
        gave_up(&h),
        vec![(a, DisconnectReason::ConnectFailed("refused".into()))]
    );
}

#[test]
fn after_giving_up_a_new_connect_restores_nothing() {
    let mut h = Harness::connected(Harness::config());
    h.subscribe(q("a"));
    h.answer_subscribes(json!([]));
    h.server_close(Some(4003), "too_many_connections");
    h.clear();
    h.connect();
    h.open_and_welcome(false);
    assert_eq!(h.core.state(), ConnectionState::Connected);
    assert!(h.sends.is_empty(), "restored {:?}", h.sends);
    assert!(h.sub_events().is_empty());
}

#[test]
fn gave_up_carries_the_reason_and_no_delivery() {
    let error = RequestError::GaveUp(DisconnectReason::AuthRejected {
        code: noex_proto::ErrorCode::Unauthorized,
        message: "Invalid token".into(),
    });
    assert_eq!(error.delivery(), None);
    assert!(!error.may_have_been_applied());
    assert!(error.to_string().contains("gave up"), "{error}");
}
