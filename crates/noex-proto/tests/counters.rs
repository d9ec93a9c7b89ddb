//! Behaviour 10: counters a caller can read.

mod common;

use common::*;
use noex_proto::{
    ops, ClientCore, Counters, Delivery, RequestError, RequestOptions, SubscriptionSpec,
};
use serde_json::json;

#[test]
fn counters_track_a_whole_session() {
    let mut h = Harness::connected(Harness::config());
    assert_eq!(h.core.counters().frames_in, 1); // welcome
    let ok = h.request(ops::store::all("a"));
    let err = h.request(ops::store::all("b"));
    let slow = h.request_with(
        ops::store::all("c"),
        RequestOptions::default().timeout(ms(10)),
    );
    let cancelled = h.request(ops::store::all("d"));
    h.core.cancel(cancelled);
    h.answer(ok.0, json!([]));
    h.answer_error(err.0, "NOT_FOUND", "x");
    h.advance(ms(10));
    h.answer(slow.0, json!([])); // late
    h.answer(cancelled.0, json!([])); // late
    let sub = h.subscribe(SubscriptionSpec::query("q", None));
    h.push("sub-1", json!([0])); // held
    h.answer_subscribes(json!([]));
    h.push("sub-1", json!([1])); // delivered
    h.push("sub-9", json!([9])); // dropped
    h.ping(1);
    h.frame("garbage");
    let lost = h.request(ops::store::all("e"));
    h.server_close(None, "");
    h.reopen(false);
    h.answer_subscribes(json!([]));
    let _ = (sub, lost);

    let c = h.core.counters();
    let expected = {
        let mut e = Counters::default();
        // ok, err, slow, cancelled, lost; none still open; `sub` still live.
        e.requests_issued = 5;
        e.requests_pending = 0;
        e.subscriptions_live = 1;
        // welcome, 2 answers, 2 late, 3 pushes, 1 subscribe answer, ping, garbage,
        // then welcome and the restore answer on the second connection.
        e.frames_in = 13;
        // 5 requests, 1 subscribe, 1 pong, then the restore subscribe.
        e.frames_out = 8;
        e.requests_ok = 1;
        e.requests_server_error = 1;
        e.requests_timed_out = 1;
        e.requests_cancelled = 1;
        e.requests_disconnected = 1;
        e.pushes_held = 1;
        e.pushes_delivered = 2;
        e.pushes_dropped = 1;
        e.late_answers = 2;
        e.reconnects = 1;
        e.protocol_errors = 1;
        e.pings = 1;
        e
    };
    assert_eq!(c, expected);
    assert_eq!(
        c.frames_out,
        h.sends.len() as u64,
        "every handed-out frame is counted"
    );
}

/// `requests_issued == requests_ended() + requests_pending`, checked after every step.
fn assert_adds_up(core: &ClientCore) {
    let c = core.counters();
    assert_eq!(
        c.requests_issued,
        c.requests_ended() + c.requests_pending,
        "counters do not add up: {c:?}"
    );
    assert_eq!(c.requests_pending, core.pending_requests() as u64);
}

#[test]
fn issued_requests_always_equal_ended_plus_pending() {
    let mut h = Harness::new(Harness::config().max_in_flight(3).max_queued(2));
    assert_adds_up(&h.core);
    // Refused: no connection coming.
    assert!(h.try_request(ops::store::all("a")).is_err());
    assert_adds_up(&h.core);
    h.connect();
    // Queued while connecting, then refused past `max_queued`.
    let queued = h.request(ops::store::all("b"));
    let timed_out = h.request_with(
        ops::store::all("c"),
        RequestOptions::default().timeout(ms(5)),
    );
    assert_eq!(
        h.try_request(ops::store::all("d")),
        Err(RequestError::QueueFull)
    );
    assert_adds_up(&h.core);
    h.advance(ms(5));
    assert!(matches!(
        h.error_of(timed_out),
        RequestError::Timeout { .. }
    ));
    assert_adds_up(&h.core);
    h.open_and_welcome(false);
    // In flight, then refused past `max_in_flight`.
    let cancelled = h.request(ops::store::all("e"));
    let lost = h.request(ops::store::insert("u", json!({})));
    assert_eq!(
        h.try_request(ops::store::all("f")),
        Err(RequestError::QueueFull)
    );
    assert_eq!(h.core.counters().requests_pending, 3);
    assert_adds_up(&h.core);
    h.cancel(cancelled);
    h.answer(queued.0, json!([]));
    assert_adds_up(&h.core);
    h.server_close(None, "");
    assert_eq!(
        h.error_of(lost),
        &RequestError::Disconnected {
            delivery: Delivery::NotSent
        }
    );
    assert_adds_up(&h.core);
    let waiting = h.request(ops::store::all("g"));
    h.close();
    assert!(matches!(h.error_of(waiting), RequestError::Closed { .. }));
    assert!(h.try_request(ops::store::all("h")).is_err());
    assert_adds_up(&h.core);

    let c = h.core.counters();
    assert_eq!(c.requests_issued, 9);
    assert_eq!(c.requests_ok, 1);
    assert_eq!(c.requests_timed_out, 1);
    assert_eq!(c.requests_cancelled, 1);
    assert_eq!(c.requests_rejected, 2);
    assert_eq!(c.requests_disconnected, 2);
    assert_eq!(c.requests_closed, 2);
    assert_eq!(c.requests_pending, 0);
    assert_eq!(c.requests_ended(), 9);
}

#[test]
fn gauges_show_open_requests_and_live_subscriptions_now() {
    let mut h = Harness::connected(Harness::config());
    let a = h.request(ops::store::all("a"));
    h.request(ops::store::all("b"));
    let s1 = h.subscribe(SubscriptionSpec::query("q1", None));
    h.subscribe(SubscriptionSpec::rules("p.*"));
    // Internal requests (the two subscribes) are not the caller's: not in the gauge.
    let c = h.core.counters();
    assert_eq!((c.requests_pending, c.subscriptions_live), (2, 2));
    h.answer(a.0, json!([]));
    h.unsubscribe(s1);
    let c = h.core.counters();
    assert_eq!((c.requests_pending, c.subscriptions_live), (1, 1));
    h.close();
    let c = h.core.counters();
    assert_eq!((c.requests_pending, c.subscriptions_live), (0, 0));
}
