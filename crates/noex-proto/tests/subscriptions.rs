//! Behaviour 7: subscriptions. Stable handles across connections; all restored together
//! (pipelined) after a reconnect, each with fresh data; a failing restore is reported and
//! removed while the others carry on; pushes overtaking their subscribe answer are held and
//! delivered after it; unsubscribing while disconnected sends nothing.

mod common;

use common::*;
use noex_proto::{
    ConnectionState, CoreError, ErrorCode, RequestError, SubscriptionEvent, SubscriptionSpec,
};
use serde_json::json;

fn q(name: &str) -> SubscriptionSpec {
    SubscriptionSpec::query(name, None)
}

#[test]
fn store_subscription_ready_with_initial_data_then_updates() {
    let mut h = Harness::connected(Harness::config());
    let sub = h.subscribe(SubscriptionSpec::query(
        "users-by-role",
        Some(json!({"role": "admin"})),
    ));
    let req = h.last_send().clone();
    assert_eq!(
        req.json,
        json!({"id": req.id().unwrap(), "type": "store.subscribe", "query": "users-by-role",
               "params": {"role": "admin"}})
    );
    assert!(!h.core.is_subscription_active(sub));
    h.answer(
        req.id().unwrap(),
        json!({"subscriptionId": "sub-2", "data": [record("Alice", 30)]}),
    );
    assert!(h.core.is_subscription_active(sub));
    let SubscriptionEvent::Ready {
        id,
        data: Some(data),
    } = h.sub_events()[0]
    else {
        panic!("{:?}", h.sub_events())
    };
    assert_eq!(*id, sub);
    assert_eq!(value(data)[0]["name"], "Alice");
    h.push("sub-2", json!([record("Alice", 30), record("Dave", 40)]));
    assert_eq!(h.updates()[&sub].len(), 1);
    assert_eq!(h.updates()[&sub][0][1]["name"], "Dave");
    assert_eq!(h.core.counters().pushes_delivered, 1);
}

#[test]
fn rules_subscription_has_no_initial_data_and_gets_event_pushes() {
    let mut h = Harness::connected(Harness::config());
    let sub = h.subscribe(SubscriptionSpec::rules("order.*"));
    let req = h.last_send().clone();
    assert_eq!(req.json["type"], "rules.subscribe");
    assert_eq!(req.json["pattern"], "order.*");
    h.answer(req.id().unwrap(), json!({"subscriptionId": "sub-6"}));
    assert_eq!(
        h.sub_events()[0],
        &SubscriptionEvent::Ready {
            id: sub,
            data: None
        }
    );
    h.frame_json(
        json!({"type": "push", "channel": "event", "subscriptionId": "sub-6",
        "data": {"topic": "order.created", "event": {"id": "e1", "topic": "order.created"}}}),
    );
    assert_eq!(h.updates()[&sub][0]["topic"], "order.created");
}

#[test]
fn all_subscriptions_are_restored_together_with_fresh_data() {
    let mut h = Harness::connected(Harness::config());
    let subs: Vec<_> = ["a", "b", "c"].iter().map(|n| h.subscribe(q(n))).collect();
    let r = h.subscribe(SubscriptionSpec::rules("order.*"));
    h.answer_subscribes(json!(["old"]));
    assert!(subs.iter().all(|s| h.core.is_subscription_active(*s)));

    h.server_close(None, "");
    assert!(subs.iter().all(|s| !h.core.is_subscription_active(*s)));
    h.clear();
    h.reopen(false);
    // Every subscribe is out before any answer: pipelined, not one round trip each.
    let burst: Vec<_> = h
        .sends_on(h.conn())
        .iter()
        .map(|s| s.json.clone())
        .collect();
    assert_eq!(burst.len(), 4, "{burst:?}");
    let queries: Vec<_> = burst.iter().filter_map(|f| f["query"].as_str()).collect();
    assert_eq!(queries, vec!["a", "b", "c"]);
    assert_eq!(burst[3]["pattern"], "order.*");
    // Not connected until the restore is done.
    assert_eq!(h.core.state(), ConnectionState::Reconnecting);
    h.answer_subscribes(json!(["fresh"]));
    assert_eq!(h.core.state(), ConnectionState::Connected);
    for s in &subs {
        assert!(h.core.is_subscription_active(*s));
        assert!(h.sub_events().contains(&&SubscriptionEvent::Restored {
            id: *s,
            data: Some(noex_proto::Payload::from_json(r#"["fresh"]"#).unwrap()),
        }));
    }
    assert!(h
        .sub_events()
        .contains(&&SubscriptionEvent::Restored { id: r, data: None }));
    // Reconnected comes after all restores.
    let last_restore = h
        .events
        .iter()
        .rposition(|e| {
            matches!(
                e,
                noex_proto::Event::Subscription(SubscriptionEvent::Restored { .. })
            )
        })
        .unwrap();
    let reconnected = h
        .events
        .iter()
        .position(|e| {
            matches!(
                e,
                noex_proto::Event::Lifecycle(noex_proto::LifecycleEvent::Reconnected)
            )
        })
        .unwrap();
    assert!(reconnected > last_restore);
    // The new server ids route pushes to the same handles.
    let new_ids: Vec<String> = (5..9).map(|n| format!("sub-{n}")).collect();
    h.push(&new_ids[1], json!(["b-update"]));
    assert_eq!(h.updates()[&subs[1]], vec![json!(["b-update"])]);
}

#[test]
fn a_failing_restore_is_reported_and_removed_while_the_others_carry_on() {
    let mut h = Harness::connected(Harness::config());
    let a = h.subscribe(q("a"));
    let b = h.subscribe(q("b"));
    let c = h.subscribe(q("c"));
    h.answer_subscribes(json!([]));
    h.server_close(None, "");
    h.reopen(false);
    let reqs: Vec<u64> = h.sends_on(h.conn()).iter().filter_map(|s| s.id()).collect();
    h.answer(reqs[0], json!({"subscriptionId": "sub-10", "data": [1]}));
    h.answer_error(reqs[1], "QUERY_NOT_DEFINED", "Query \"b\" is not defined");
    h.answer(reqs[2], json!({"subscriptionId": "sub-12", "data": [3]}));
    assert_eq!(h.core.state(), ConnectionState::Connected);
    let failed: Vec<_> = h
        .sub_events()
        .into_iter()
        .filter_map(|e| match e {
            SubscriptionEvent::Failed { id, error } => Some((*id, error.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].0, b);
    assert!(matches!(
        &failed[0].1,
        RequestError::Server(e) if e.code == ErrorCode::QueryNotDefined
    ));
    assert_eq!(h.core.subscription_ids().collect::<Vec<_>>(), vec![a, c]);
    assert!(h.core.is_subscription_active(a) && h.core.is_subscription_active(c));
    // A restore with a malformed answer is removed the same way.
    h.server_close(None, "");
    h.reopen(false);
    let reqs: Vec<u64> = h.sends_on(h.conn()).iter().filter_map(|s| s.id()).collect();
    assert_eq!(reqs.len(), 2);
    h.answer(reqs[0], json!({"unexpected": true}));
    h.answer(reqs[1], json!({"subscriptionId": "sub-20", "data": []}));
    assert_eq!(h.core.subscription_ids().collect::<Vec<_>>(), vec![c]);
    assert!(h.sub_events().iter().any(|e| matches!(
        e,
        SubscriptionEvent::Failed { id, error: RequestError::Malformed(_) } if *id == a
    )));
}

#[test]
fn a_push_overtaking_its_subscribe_answer_is_held_then_delivered_after_it() {
    let mut h = Harness::connected(Harness::config());
    let sub = h.subscribe(q("all-users"));
    let req = h.last_send().id().unwrap();
    // The server registered sub-1 and pushed before its answer reached us.
    h.push("sub-1", json!(["p1"]));
    h.push("sub-1", json!(["p2"]));
    assert_eq!(h.core.held_pushes(), 2);
    assert!(h.sub_events().is_empty());
    h.answer(req, json!({"subscriptionId": "sub-1", "data": ["initial"]}));
    let kinds: Vec<_> = h
        .sub_events()
        .into_iter()
        .map(|e| match e {
            SubscriptionEvent::Ready { data, .. } => {
                format!("ready {}", data.as_ref().unwrap().json())
            }
            SubscriptionEvent::Update { data, .. } => format!("update {}", data.json()),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            r#"ready ["initial"]"#,
            r#"update ["p1"]"#,
            r#"update ["p2"]"#
        ]
    );
    assert_eq!(h.core.held_pushes(), 0);
    assert_eq!(h.core.counters().pushes_held, 2);
    assert_eq!(h.core.counters().pushes_delivered, 2);
    let _ = sub;
}

#[test]
fn held_pushes_during_restore_are_delivered_after_the_restore() {
    let mut h = Harness::connected(Harness::config());
    let a = h.subscribe(q("a"));
    let b = h.subscribe(q("b"));
    h.answer_subscribes(json!([]));
    h.server_close(None, "");
    h.reopen(false);
    let reqs: Vec<u64> = h.sends_on(h.conn()).iter().filter_map(|s| s.id()).collect();
    h.push("sub-31", json!(["b-early"]));
    h.answer(reqs[0], json!({"subscriptionId": "sub-30", "data": []}));
    assert_eq!(h.core.held_pushes(), 1);
    h.answer(reqs[1], json!({"subscriptionId": "sub-31", "data": []}));
    assert_eq!(h.updates()[&b], vec![json!(["b-early"])]);
    assert!(!h.updates().contains_key(&a));
}

#[test]
fn unclaimed_held_pushes_are_dropped_and_reported_once_no_answer_can_claim_them() {
    let mut h = Harness::connected(Harness::config());
    h.subscribe(q("a"));
    let req = h.last_send().id().unwrap();
    h.push("sub-99", json!([]));
    assert_eq!(h.core.held_pushes(), 1);
    h.answer(req, json!({"subscriptionId": "sub-1", "data": []}));
    assert_eq!(h.core.held_pushes(), 0);
    assert!(h
        .core_errors()
        .contains(&&CoreError::UnknownSubscription("sub-99".into())));
    assert_eq!(h.core.counters().pushes_dropped, 1);
}

#[test]
fn held_pushes_are_bounded() {
    let mut h = Harness::connected(Harness::config().max_held_pushes(2));
    let sub = h.subscribe(q("a"));
    let req = h.last_send().id().unwrap();
    for i in 0..3 {
        h.push("sub-1", json!([i]));
    }
    assert_eq!(h.core.held_pushes(), 2);
    assert!(h
        .core_errors()
        .contains(&&CoreError::HeldPushOverflow("sub-1".into())));
    h.answer(req, json!({"subscriptionId": "sub-1", "data": []}));
    assert_eq!(h.updates()[&sub], vec![json!([1]), json!([2])]);
}

#[test]
fn push_for_an_unknown_subscription_is_reported() {
    let mut h = Harness::connected(Harness::config());
    h.clear();
    h.push("sub-404", json!([]));
    assert_eq!(
        h.core_errors(),
        vec![&CoreError::UnknownSubscription("sub-404".into())]
    );
    assert_eq!(h.core.counters().pushes_dropped, 1);
    assert_eq!(h.core.state(), ConnectionState::Connected);
}

#[test]
fn unsubscribe_while_connected_tells_the_server_and_drops_later_pushes_quietly() {
    let mut h = Harness::connected(Harness::config());
    let sub = h.subscribe(q("a"));
    h.answer_subscribes(json!([]));
    assert!(h.unsubscribe(sub));
    let req = h.last_send().clone();
    assert_eq!(
        req.json,
        json!({"id": req.id().unwrap(), "type": "store.unsubscribe", "subscriptionId": "sub-1"})
    );
    h.clear();
    h.push("sub-1", json!(["late"]));
    assert!(h.events.is_empty(), "{:?}", h.events);
    h.answer(req.id().unwrap(), json!({"unsubscribed": true}));
    assert!(h.events.is_empty());
    assert_eq!(h.core.subscription_count(), 0);
    assert!(!h.unsubscribe(sub), "second unsubscribe");
    assert_eq!(h.core.pending_entries(), 0);
}

#[test]
fn rules_unsubscribe_uses_rules_unsubscribe() {
    let mut h = Harness::connected(Harness::config());
    let sub = h.subscribe(SubscriptionSpec::rules("order.*"));
    h.answer_subscribes(json!(null));
    h.unsubscribe(sub);
    assert_eq!(h.last_send().json["type"], "rules.unsubscribe");
    assert_eq!(h.last_send().json["subscriptionId"], "sub-1");
}

#[test]
fn unsubscribing_while_disconnected_sends_nothing_and_is_not_restored() {
    let mut h = Harness::connected(Harness::config());
    let a = h.subscribe(q("a"));
    let b = h.subscribe(q("b"));
    h.answer_subscribes(json!([]));
    h.server_close(None, "");
    h.clear();
    assert!(h.unsubscribe(a));
    assert!(h.sends.is_empty());
    h.reopen(false);
    let burst: Vec<_> = h
        .sends_on(h.conn())
        .iter()
        .map(|s| s.json["query"].clone())
        .collect();
    assert_eq!(burst, vec![json!("b")]);
    h.answer_subscribes(json!([]));
    assert!(h.core.is_subscription_active(b));
    assert!(h.sends.iter().all(|s| s.kind() != "store.unsubscribe"));
}

#[test]
fn unsubscribing_while_the_subscribe_is_in_flight_undoes_it_on_the_server() {
    let mut h = Harness::connected(Harness::config());
    let sub = h.subscribe(q("a"));
    let req = h.last_send().id().unwrap();
    h.unsubscribe(sub);
    assert_eq!(h.last_send().id(), Some(req), "nothing sent yet");
    h.answer(req, json!({"subscriptionId": "sub-7", "data": []}));
    assert_eq!(h.last_send().json["type"], "store.unsubscribe");
    assert_eq!(h.last_send().json["subscriptionId"], "sub-7");
    assert!(h.sub_events().is_empty(), "no Ready for a dropped handle");
}

#[test]
fn subscribe_while_reconnecting_goes_out_with_the_restore_burst() {
    let mut h = Harness::connected(Harness::config());
    h.server_close(None, "");
    let sub = h.subscribe(q("late"));
    assert!(h.sends.is_empty());
    h.reopen(false);
    assert_eq!(h.last_send().json["query"], "late");
    assert_eq!(h.core.state(), ConnectionState::Reconnecting);
    h.answer_subscribes(json!([]));
    assert!(matches!(h.sub_events()[0], SubscriptionEvent::Ready { id, .. } if *id == sub));
    assert_eq!(h.core.state(), ConnectionState::Connected);
}

#[test]
fn subscribe_without_connection_is_refused_and_close_ends_every_subscription() {
    let mut h = Harness::new(Harness::config());
    assert!(h.core.subscribe(h.now(), q("a")).is_err());
    h.connect();
    h.open_and_welcome(false);
    let a = h.subscribe(q("a"));
    h.answer_subscribes(json!([]));
    let b = h.subscribe(q("b")); // in flight at close
    h.clear();
    h.close();
    let mut failed: Vec<_> = h
        .sub_events()
        .into_iter()
        .filter_map(|e| match e {
            SubscriptionEvent::Failed {
                id,
                error: RequestError::Closed { .. },
            } => Some(*id),
            _ => None,
        })
        .collect();
    failed.sort();
    assert_eq!(failed, vec![a, b]);
    assert_eq!(h.core.subscription_count(), 0);
    assert!(matches!(
        h.core.subscribe(h.now(), q("c")),
        Err(RequestError::Closed { .. })
    ));
}

#[test]
fn subscribe_timeout_fails_the_subscription() {
    let mut h = Harness::connected(Harness::config().request_timeout(ms(1_000)));
    let sub = h.subscribe(q("slow"));
    h.advance(ms(1_000));
    assert!(matches!(
        h.sub_events()[..],
        [SubscriptionEvent::Failed { id, error: RequestError::Timeout { .. } }] if *id == sub
    ));
    assert_eq!(h.core.subscription_count(), 0);
}

#[test]
fn never_registered_subscription_fails_when_no_reconnect_is_coming() {
    let mut h = Harness::connected(Harness::config());
    let registered = h.subscribe(q("a"));
    h.answer_subscribes(json!([]));
    let pending = h.subscribe(q("b"));
    h.server_close(Some(4003), "too_many_connections");
    assert!(h
        .sub_events()
        .iter()
        .any(|e| matches!(e, SubscriptionEvent::Failed { id, .. } if *id == pending)));
    // The registered one keeps its handle for a later connect().
    assert_eq!(
        h.core.subscription_ids().collect::<Vec<_>>(),
        vec![registered]
    );
    h.connect();
    h.open_and_welcome(false);
    assert_eq!(h.last_send().json["query"], "a");
}

#[test]
fn pushes_for_a_subscription_dropped_in_flight_are_not_reported_as_unknown() {
    let mut h = Harness::connected(Harness::config());
    let sub = h.subscribe(SubscriptionSpec::query("all-users", None));
    let subscribe_id = h.last_send().id().expect("subscribe request");
    assert!(h.unsubscribe(sub));
    // The server registered it before hearing of the unsubscribe: a push overtakes the answer.
    h.push("sub-77", json!([]));
    h.answer(
        subscribe_id,
        json!({"subscriptionId": "sub-77", "data": []}),
    );
    let unknown = h
        .events
        .iter()
        .filter(|e| {
            matches!(
                e,
                noex_proto::Event::Lifecycle(noex_proto::LifecycleEvent::Error(
                    CoreError::UnknownSubscription(_)
                ))
            )
        })
        .count();
    assert_eq!(unknown, 0);
    assert_eq!(h.core.held_pushes(), 0);
    assert_eq!(h.last_send().kind(), "store.unsubscribe");
}
