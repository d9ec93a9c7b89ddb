//! Behaviour 7: subscriptions. Stable handles across connections; all restored together
//! (pipelined) after a reconnect, each with fresh data and the gap it was not registered;
//! a failing restore is reported and removed while the others carry on; pushes overtaking
//! their subscribe answer are held and delivered after it; unsubscribing while disconnected
//! sends nothing; one dropped before its answer is undone on the server (or never made),
//! and never restored; close ends every subscription quietly.

mod common;

use common::*;
use noex_proto::{
    ConnectionState, CoreError, DisconnectReason, ErrorCode, Gap, Input, RequestError,
    SubscriptionEvent, SubscriptionId, SubscriptionSpec,
};
use serde_json::json;
use std::time::Duration;

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

/// A subscribe answer's data is handed on unread (whoever reads it checks it): data that is
/// not JSON, in the server's layout, is an error for that one value when it is read; the
/// subscription is made and its pushes arrive, and the connection is not faulted.
#[test]
fn initial_data_that_is_not_json_is_an_error_for_whoever_reads_it() {
    let mut h = Harness::connected(Harness::config());
    let sub = h.subscribe(q("users"));
    let id = h.last_send().id().unwrap();
    h.frame(&format!(
        r#"{{"id":{id},"type":"result","data":{{"subscriptionId":"sub-5","data":[{{"a":1}}}}}}"#
    ));
    assert!(h.core.is_subscription_active(sub));
    let SubscriptionEvent::Ready {
        data: Some(data), ..
    } = h.sub_events()[0]
    else {
        panic!("{:?}", h.sub_events())
    };
    assert!(data.to_value().is_err());
    assert!(data.clone().into_payload().is_err());
    assert_eq!(format!("{data:?}"), "SubscriptionData(unchecked, 8 bytes)");
    assert_eq!(h.core.counters().protocol_errors, 0);
    h.push("sub-5", json!([{"a": 2}]));
    assert_eq!(h.updates()[&sub], vec![json!([{"a": 2}])]);
    // A well-formed answer's data reads as the full decode reads it.
    let other = h.subscribe(q("others"));
    let id = h.last_send().id().unwrap();
    h.frame(&format!(
        r#"{{"id":{id},"type":"result","data":{{"subscriptionId":"sub-6","data":[{{"b":"}}}}"}}]}}}}"#
    ));
    let data = h.sub_events().into_iter().find_map(|e| match e {
        SubscriptionEvent::Ready { id, data: Some(d) } if *id == other => Some(value(d)),
        _ => None,
    });
    assert_eq!(data, Some(json!([{"b": "}}"}])));
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
        let fresh = noex_proto::SubscriptionData::from(
            noex_proto::Payload::from_json(r#"["fresh"]"#).unwrap(),
        );
        assert!(h.sub_events().iter().any(|e| matches!(e,
            SubscriptionEvent::Restored { id, data: Some(d), .. } if id == s && *d == fresh)));
    }
    assert!(h.sub_events().iter().any(|e| matches!(e,
        SubscriptionEvent::Restored { id, data: None, .. } if *id == r)));
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
                format!("ready {}", value(data.as_ref().unwrap()))
            }
            SubscriptionEvent::Update { data, .. } => {
                format!("update {}", data.to_value().unwrap())
            }
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
fn subscribe_without_connection_is_refused_and_close_ends_every_subscription_quietly() {
    let mut h = Harness::new(Harness::config());
    assert!(matches!(
        h.core.subscribe(h.now(), q("a")),
        Err(RequestError::Disconnected { .. })
    ));
    h.connect();
    h.open_and_welcome(false);
    let a = h.subscribe(q("a"));
    h.answer_subscribes(json!([]));
    let b = h.subscribe(q("b")); // in flight at close
    h.clear();
    h.close();
    let mut ended: Vec<_> = h
        .sub_events()
        .into_iter()
        .map(|e| match e {
            SubscriptionEvent::Ended { id } => *id,
            other => panic!("close must end subscriptions quietly, got {other:?}"),
        })
        .collect();
    ended.sort();
    assert_eq!(ended, vec![a, b]);
    assert_eq!(h.core.subscription_count(), 0);
    assert!(matches!(
        h.core.subscribe(h.now(), q("c")),
        Err(RequestError::Closed { .. })
    ));
}

#[test]
fn close_while_reconnecting_ends_the_waiting_subscriptions_too() {
    let mut h = Harness::connected(Harness::config());
    let a = h.subscribe(q("a"));
    h.answer_subscribes(json!([]));
    h.server_close(None, "");
    let b = h.subscribe(q("b")); // waits for the restore burst
    h.clear();
    h.close();
    assert_eq!(
        h.sub_events(),
        vec![
            &SubscriptionEvent::Ended { id: a },
            &SubscriptionEvent::Ended { id: b }
        ]
    );
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
fn with_no_reconnect_coming_registered_and_unregistered_subscriptions_both_fail() {
    let mut h = Harness::connected(Harness::config());
    let registered = h.subscribe(q("a"));
    h.answer_subscribes(json!([]));
    let pending = h.subscribe(q("b"));
    h.server_close(Some(4003), "too_many_connections");
    let failed: Vec<SubscriptionId> = h
        .sub_events()
        .into_iter()
        .filter_map(|e| match e {
            SubscriptionEvent::Failed {
                id,
                error:
                    RequestError::GaveUp(DisconnectReason::Closed {
                        code: Some(4003), ..
                    }),
            } => Some(*id),
            _ => None,
        })
        .collect();
    assert_eq!(failed, vec![registered, pending]);
    assert_eq!(h.core.subscription_count(), 0);
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

// ---- dropping a subscription before its answer ----------------------------------------

#[test]
fn dropped_while_its_subscribe_is_in_flight_leaves_nothing_on_the_server_and_is_not_restored() {
    let mut h = Harness::connected(Harness::config());
    let kept = h.subscribe(q("kept"));
    let dropped = h.subscribe(q("dropped"));
    assert!(h.unsubscribe(dropped));
    assert!(!h.core.is_subscription_active(dropped));
    // Both subscribes reached the server; it answers both.
    let made = h.answer_subscribes(json!([]));
    assert_eq!(made.len(), 2);
    let (_, dropped_sid) = &made[1];
    // The dropped one is undone at once: the server keeps only the kept one.
    assert_eq!(h.last_send().kind(), "store.unsubscribe");
    assert_eq!(h.last_send().json["subscriptionId"], dropped_sid.as_str());
    assert_eq!(h.server_subs.len(), 1);
    assert!(!h.server_subs.contains(dropped_sid));
    assert!(h.sub_events().iter().all(|e| !matches!(e,
        SubscriptionEvent::Ready { id, .. } if *id == dropped)));
    h.answer(h.last_send().id().unwrap(), json!({"unsubscribed": true}));
    assert_eq!(h.core.pending_entries(), 0);
    // After a reconnect only the kept one is made again.
    h.server_close(None, "");
    h.reopen(false);
    let burst: Vec<_> = h
        .sends_on(h.conn())
        .iter()
        .map(|s| s.json["query"].clone())
        .collect();
    assert_eq!(burst, vec![json!("kept")]);
    h.answer_subscribes(json!([]));
    assert_eq!(h.server_subs.len(), 1);
    assert!(h.core.is_subscription_active(kept));
    assert_eq!(h.core.subscription_ids().collect::<Vec<_>>(), vec![kept]);
}

#[test]
fn dropped_while_queued_for_the_connection_is_never_sent() {
    let mut h = Harness::new(Harness::config());
    h.connect();
    let dropped = h.subscribe(q("dropped")); // waits for the connection
    let kept = h.subscribe(q("kept"));
    assert!(h.sends.is_empty());
    assert!(h.unsubscribe(dropped));
    h.open_and_welcome(false);
    let sent: Vec<_> = h
        .sends
        .iter()
        .map(|s| (s.kind().to_owned(), s.json["query"].clone()))
        .collect();
    assert_eq!(sent, vec![("store.subscribe".to_owned(), json!("kept"))]);
    h.answer_subscribes(json!([]));
    assert_eq!(h.server_subs.len(), 1);
    assert_eq!(h.core.state(), ConnectionState::Connected);
    assert!(h.core.is_subscription_active(kept));
    // Nor on any later connection.
    h.server_close(None, "");
    h.reopen(false);
    assert!(h.sends.iter().all(|s| s.json["query"] != "dropped"));
    assert!(h.sends.iter().all(|s| s.kind() != "store.unsubscribe"));
}

#[test]
fn dropped_while_waiting_for_a_reconnect_is_never_sent() {
    let mut h = Harness::connected(Harness::config());
    h.server_close(None, "");
    let dropped = h.subscribe(q("dropped"));
    assert!(h.unsubscribe(dropped));
    h.reopen(false);
    assert!(h.sends.is_empty(), "{:?}", h.sends);
    assert_eq!(h.core.state(), ConnectionState::Connected);
}

#[test]
fn dropped_during_the_restore_burst_is_undone_and_not_restored_again() {
    let mut h = Harness::connected(Harness::config());
    let a = h.subscribe(q("a"));
    let b = h.subscribe(q("b"));
    h.answer_subscribes(json!([]));
    h.server_close(None, "");
    h.reopen(false);
    assert_eq!(h.core.state(), ConnectionState::Reconnecting);
    assert!(h.unsubscribe(b));
    let made = h.answer_subscribes(json!([]));
    // The restore is complete without it; its registration is undone.
    assert_eq!(h.core.state(), ConnectionState::Connected);
    assert_eq!(h.last_send().kind(), "store.unsubscribe");
    assert_eq!(h.last_send().json["subscriptionId"], made[1].1.as_str());
    assert_eq!(h.server_subs.len(), 1);
    assert!(h.sub_events().iter().all(|e| !matches!(e,
        SubscriptionEvent::Restored { id, .. } if *id == b)));
    h.server_close(None, "");
    h.reopen(false);
    let burst: Vec<_> = h
        .sends_on(h.conn())
        .iter()
        .map(|s| s.json["query"].clone())
        .collect();
    assert_eq!(burst, vec![json!("a")]);
    let _ = a;
}

#[test]
fn a_subscribe_that_timed_out_after_it_was_written_is_undone_when_its_answer_comes_late() {
    let mut h = Harness::connected(Harness::config().request_timeout(ms(1_000)));
    let sub = h.subscribe(q("slow"));
    let req = h.last_send().id().unwrap();
    h.written_all();
    h.advance(ms(1_000));
    assert!(matches!(
        h.sub_events()[..],
        [SubscriptionEvent::Failed { id, error: RequestError::Timeout { delivery: noex_proto::Delivery::OutcomeUnknown } }] if *id == sub
    ));
    // The server registered it after all: nobody holds it, so it is undone.
    h.answer(req, json!({"subscriptionId": "sub-9", "data": []}));
    assert_eq!(h.core.counters().late_answers, 1);
    assert_eq!(h.last_send().kind(), "store.unsubscribe");
    assert_eq!(h.last_send().json["subscriptionId"], "sub-9");
    assert!(h.server_subs.is_empty());
    // Its pushes are dropped quietly from then on.
    h.clear();
    h.push("sub-9", json!([1]));
    assert!(h.events.is_empty(), "{:?}", h.events);
}

#[test]
fn a_subscribe_that_timed_out_unwritten_never_reaches_the_server() {
    let mut h = Harness::connected(Harness::config().request_timeout(ms(1_000)));
    let sub = h.subscribe(q("slow"));
    let frame = h.last_send().clone();
    h.advance(ms(1_000));
    assert!(matches!(
        h.sub_events()[..],
        [SubscriptionEvent::Failed { id, error: RequestError::Timeout { delivery: noex_proto::Delivery::NotSent } }] if *id == sub
    ));
    assert!(!h.core.wants_frame(frame.request));
    assert!(!h.reached_server(&frame));
    assert!(h.answer_subscribes(json!([])).is_empty());
}

#[test]
fn an_unsubscribe_is_written_even_after_its_deadline() {
    let mut h = Harness::connected(Harness::config().request_timeout(ms(1_000)));
    let sub = h.subscribe(q("a"));
    h.answer_subscribes(json!([]));
    h.unsubscribe(sub);
    let unsubscribe = h.last_send().clone();
    assert_eq!(unsubscribe.kind(), "store.unsubscribe");
    // The socket is backed up past the deadline: the unsubscribe still goes out when it
    // can, or the server would keep the subscription.
    h.advance(ms(5_000));
    assert!(h.core.wants_frame(unsubscribe.request));
    assert!(h.reached_server(&unsubscribe));
    assert!(h.server_subs.is_empty());
    assert_eq!(h.core.pending_entries(), 0);
}

// ---- the gap of a restored subscription -------------------------------------------------

fn restored_gap(h: &Harness, sub: SubscriptionId) -> Gap {
    h.sub_events()
        .into_iter()
        .find_map(|e| match e {
            SubscriptionEvent::Restored { id, gap, .. } if *id == sub => Some(*gap),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{sub:?} not restored: {:?}", h.sub_events()))
}

#[test]
fn a_restored_rules_subscription_reports_the_gap_from_the_last_frame_to_its_new_registration() {
    let mut h = Harness::connected(Harness::config());
    let sub = h.subscribe(SubscriptionSpec::rules("order.*"));
    h.answer_subscribes(json!(null));
    h.advance(ms(4_000));
    h.ping(1);
    // The last frame of the link: from here on, events the server sent may be lost.
    let last_frame = h.now();
    h.advance(ms(1_000));
    let lost_at = h.now();
    h.server_close(None, "");
    h.reopen(false);
    h.advance(ms(30));
    let registered_at = h.now();
    h.answer_subscribes(json!(null));
    assert!(
        registered_at > lost_at + ms(1_000),
        "the backoff lies between"
    );
    assert!(h.sub_events().iter().any(|e| matches!(e,
        SubscriptionEvent::Restored { id, data: None, .. } if *id == sub)));
    assert_eq!(
        restored_gap(&h, sub),
        Gap {
            from: last_frame,
            to: registered_at
        }
    );
}

#[test]
fn a_restored_store_subscription_reports_its_gap_and_fresh_data() {
    let mut h = Harness::connected(Harness::config());
    let sub = h.subscribe(q("a"));
    h.answer_subscribes(json!(["old"]));
    let lost_at = h.now();
    h.server_close(Some(1001), "server_shutting_down");
    h.reopen(false);
    let registered_at = h.now();
    h.answer_subscribes(json!(["fresh"]));
    assert_eq!(
        restored_gap(&h, sub),
        Gap {
            from: lost_at,
            to: registered_at
        }
    );
    let data = h.sub_events().into_iter().find_map(|e| match e {
        SubscriptionEvent::Restored { data: Some(d), .. } => Some(value(d)),
        _ => None,
    });
    assert_eq!(data, Some(json!(["fresh"])));
}

#[test]
fn the_gap_starts_at_the_first_loss_across_failed_attempts() {
    let mut h = Harness::connected(Harness::config().request_timeout(ms(2_000)));
    let sub = h.subscribe(SubscriptionSpec::rules("order.*"));
    h.answer_subscribes(json!(null));
    let last_frame = h.now();
    h.advance(ms(1_000));
    h.server_close(None, "");
    // Attempt 1: refused.
    while h.opens.len() < 2 {
        assert!(h.step());
    }
    h.input(Input::ConnectFailed { reason: "refused" });
    // Attempt 2: opens, but the restore gets no answer and the connection is replaced.
    h.reopen(false);
    h.advance(ms(2_000));
    assert!(h.disconnects().contains(&&DisconnectReason::RestoreTimeout));
    // Attempt 3: registered.
    h.reopen(false);
    let registered_at = h.now();
    h.answer_subscribes(json!(null));
    assert_eq!(h.core.state(), ConnectionState::Connected);
    assert_eq!(
        restored_gap(&h, sub),
        Gap {
            from: last_frame,
            to: registered_at
        }
    );
    assert!(registered_at - last_frame > Duration::from_secs(3));
}

#[test]
fn each_loss_after_a_registration_starts_a_new_gap() {
    let mut h = Harness::connected(Harness::config());
    let sub = h.subscribe(SubscriptionSpec::rules("order.*"));
    h.answer_subscribes(json!(null));
    h.server_close(None, "");
    h.reopen(false);
    h.answer_subscribes(json!(null));
    let second_link_last_frame = h.now();
    h.advance(ms(10_000));
    h.server_close(None, "");
    h.clear_events_only();
    h.reopen(false);
    let registered_at = h.now();
    h.answer_subscribes(json!(null));
    assert_eq!(
        restored_gap(&h, sub),
        Gap {
            from: second_link_last_frame,
            to: registered_at
        }
    );
}

/// An app that subscribes and unsubscribes on one connection for days: each id is
/// remembered (its pushes dropped quietly) only until its unsubscribe is answered.
#[test]
fn an_unsubscribed_id_is_forgotten_once_its_unsubscribe_is_answered() {
    let mut h = Harness::connected(Harness::config());
    let sub = h.subscribe(q("a"));
    let made = h.answer_subscribes(json!([]));
    let server_id = made[0].1.clone();
    assert!(h.unsubscribe(sub));
    let unsubscribe = h.last_send().clone();
    assert_eq!(unsubscribe.kind(), "store.unsubscribe");
    // While the unsubscribe is in flight, the server may still push: dropped quietly.
    h.clear();
    h.push(&server_id, json!([1]));
    assert!(h.core_errors().is_empty(), "{:?}", h.core_errors());
    assert_eq!(h.core.counters().pushes_dropped, 1);
    // Answered: nothing more comes for it, and it is forgotten. A push for it now is a
    // push for an unknown subscription, which is what it is.
    h.answer(unsubscribe.id().unwrap(), json!({"unsubscribed": true}));
    assert_forgotten(&mut h, &server_id);
}

/// A push for `server_id` is now one for an unknown subscription.
fn assert_forgotten(h: &mut Harness, server_id: &str) {
    h.clear();
    h.push(server_id, json!([2]));
    assert_eq!(
        h.core_errors(),
        vec![&CoreError::UnknownSubscription(server_id.to_owned())]
    );
}

/// The same for an unsubscribe the server never answers: forgotten at its deadline.
#[test]
fn an_unsubscribed_id_is_forgotten_when_its_unsubscribe_times_out() {
    let mut h = Harness::connected(Harness::config().request_timeout(ms(1_000)));
    let sub = h.subscribe(q("a"));
    let server_id = h.answer_subscribes(json!([]))[0].1.clone();
    assert!(h.unsubscribe(sub));
    h.written_all();
    h.advance(ms(1_000));
    assert_forgotten(&mut h, &server_id);
}

/// A server that never answers subscribes must not make the core remember timed-out
/// subscribes without end: at most `max_in_flight` are kept, the oldest forgotten first.
#[test]
fn timed_out_subscribes_kept_for_a_late_answer_are_bounded() {
    let config = Harness::config()
        .request_timeout(ms(1_000))
        .max_in_flight(2);
    let mut h = Harness::connected(config);
    let mut requests = Vec::new();
    for name in ["a", "b", "c"] {
        h.subscribe(q(name));
        requests.push(h.last_send().id().unwrap());
        h.written_all();
        h.advance(ms(1_000));
    }
    // The oldest was forgotten: its late answer undoes nothing.
    h.clear();
    h.answer(requests[0], json!({"subscriptionId": "sub-1", "data": []}));
    assert!(h.sends.is_empty(), "{:?}", h.sends);
    // The two newest are still undone when their answers come.
    for (request, server_id) in [(requests[1], "sub-2"), (requests[2], "sub-3")] {
        h.answer(request, json!({"subscriptionId": server_id, "data": []}));
        assert_eq!(h.last_send().kind(), "store.unsubscribe");
        assert_eq!(h.last_send().json["subscriptionId"], server_id);
    }
}
