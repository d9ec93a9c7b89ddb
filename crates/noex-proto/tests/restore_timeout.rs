//! A restore that gets no answer replaces the connection; no subscription is given up.

mod common;

use common::Harness;
use noex_proto::{DisconnectReason, Event, LifecycleEvent, SubscriptionEvent, SubscriptionSpec};
use serde_json::json;
use std::time::Duration;

#[test]
fn unanswered_restore_replaces_the_connection_and_keeps_every_subscription() {
    let mut h = Harness::connected(Harness::config().request_timeout(Duration::from_secs(2)));
    let a = h.subscribe(SubscriptionSpec::query("all-users", None));
    let b = h.subscribe(SubscriptionSpec::rules("order.*"));
    h.answer_subscribes(json!([]));
    assert!(h.core.is_subscription_active(a) && h.core.is_subscription_active(b));

    // The connection drops; the new one says welcome but never answers the restore.
    h.server_close(Some(1001), "going away");
    h.reopen(false);
    let first_restore = h.conn();
    assert_eq!(
        h.sends_on(first_restore)
            .iter()
            .filter(|s| s.kind().ends_with(".subscribe"))
            .count(),
        2
    );
    h.events.clear();
    h.advance(Duration::from_secs(3));
    assert!(h
        .closes
        .iter()
        .any(|(conn, _, reason)| *conn == first_restore && reason == "restore_timeout"));
    assert!(h.events.iter().any(|e| matches!(
        e,
        Event::Lifecycle(LifecycleEvent::Disconnected(
            DisconnectReason::RestoreTimeout
        ))
    )));
    assert!(
        !h.events
            .iter()
            .any(|e| matches!(e, Event::Subscription(SubscriptionEvent::Failed { .. }))),
        "no subscription given up"
    );
    assert_eq!(h.core.subscription_count(), 2);

    // The next connection restores both, with fresh data.
    h.reopen(false);
    assert_ne!(h.conn(), first_restore);
    h.answer_subscribes(json!([{"id": 1}]));
    assert!(h.core.is_subscription_active(a) && h.core.is_subscription_active(b));
    let restored = h
        .events
        .iter()
        .filter(|e| matches!(e, Event::Subscription(SubscriptionEvent::Restored { .. })))
        .count();
    assert_eq!(restored, 2);
}
