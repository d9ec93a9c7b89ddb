//! Withdrawing a request (`ClientCore::cancel`, what dropping a request's future does): it
//! ends at once without an event, counted as cancelled; its frame, if not yet written, is
//! no longer wanted and the transport drops it; a late answer is counted and dropped; a
//! request still queued for the connection is never sent.

mod common;

use common::*;
use noex_proto::{ops, Liveness, RequestId, RequestOptions, SubscriptionSpec};
use serde_json::json;

#[test]
fn a_cancelled_request_ends_without_an_event_and_is_counted() {
    // No watchdog: the request's deadline is the only timer.
    let mut h = Harness::connected(Harness::config().liveness(Liveness::Off));
    let id = h.request(ops::store::all("users"));
    h.cancel(id);
    assert!(h.responses(id).is_empty());
    assert_eq!(h.core.pending_requests(), 0);
    assert_eq!(h.core.pending_entries(), 0);
    assert_eq!(h.core.poll_timeout(), None, "its deadline is gone");
    let c = h.core.counters();
    assert_eq!(c.requests_cancelled, 1);
    assert_eq!(c.requests_issued, c.requests_ended() + c.requests_pending);
}

#[test]
fn the_frame_of_a_request_cancelled_before_it_was_written_is_dropped() {
    let mut h = Harness::connected(Harness::config());
    let id = h.request(ops::store::insert("users", json!({"name": "A"})));
    let frame = h.sent_request(id.0).unwrap().clone();
    assert_eq!(frame.request, Some(id));
    assert!(h.core.wants_frame(frame.request));
    h.cancel(id);
    assert!(!h.core.wants_frame(frame.request));
    assert!(!h.reached_server(&frame));
    // Other frames are still wanted.
    let other = h.request(ops::store::all("users"));
    assert!(h.core.wants_frame(Some(other)));
}

#[test]
fn a_late_answer_to_a_cancelled_request_is_counted_and_dropped() {
    let mut h = Harness::connected(Harness::config());
    let id = h.request(ops::store::insert("users", json!({"name": "A"})));
    h.written_all();
    h.cancel(id);
    h.clear();
    h.answer(id.0, record("A", 1));
    assert!(h.events.is_empty(), "{:?}", h.events);
    assert_eq!(h.core.counters().late_answers, 1);
    assert_eq!(h.core.counters().requests_ok, 0);
}

#[test]
fn a_request_cancelled_while_queued_is_never_sent() {
    let mut h = Harness::new(Harness::config());
    h.connect();
    let cancelled = h.request(ops::store::insert("users", json!({"n": 1})));
    let kept = h.request(ops::store::insert("users", json!({"n": 2})));
    h.cancel(cancelled);
    assert_eq!(h.core.pending_requests(), 1);
    h.open_and_welcome(false);
    assert_eq!(h.times_sent(cancelled.0), 0);
    assert_eq!(h.times_sent(kept.0), 1);
    assert!(h.responses(cancelled).is_empty());
}

#[test]
fn a_request_cancelled_while_waiting_for_a_reconnect_is_never_sent() {
    let mut h = Harness::connected(Harness::config());
    h.server_close(None, "");
    let id = h.request(ops::store::all("users"));
    h.cancel(id);
    h.reopen(false);
    assert_eq!(h.times_sent(id.0), 0);
    assert!(h.responses(id).is_empty());
}

#[test]
fn a_cancelled_retry_safe_read_is_not_sent_again_after_a_reconnect() {
    let mut h = Harness::connected(Harness::config());
    let id = h.request_with(
        ops::store::all("users"),
        RequestOptions::default().retry_safe(true),
    );
    h.written_all();
    h.server_close(None, "");
    assert!(h.responses(id).is_empty(), "kept for the reconnect");
    h.cancel(id);
    h.reopen(false);
    assert_eq!(h.times_sent(id.0), 1);
    assert!(h.responses(id).is_empty());
    assert_eq!(h.core.counters().requests_resent, 0);
}

#[test]
fn cancel_after_the_end_and_of_unknown_or_internal_ids_does_nothing() {
    let mut h = Harness::connected(Harness::config());
    let id = h.request(ops::store::all("users"));
    h.answer(id.0, json!([]));
    h.cancel(id);
    h.cancel(RequestId(12_345));
    // The id of an internal request (a subscribe) is not the caller's to cancel.
    let sub = h.subscribe(SubscriptionSpec::query("q", None));
    let subscribe = h.last_send().clone();
    h.cancel(RequestId(subscribe.id().unwrap()));
    assert!(h.core.wants_frame(subscribe.request));
    h.answer_subscribes(json!([]));
    assert!(h.core.is_subscription_active(sub));
    assert_eq!(h.core.counters().requests_cancelled, 0);
    assert_eq!(h.core.counters().requests_ok, 1);
}
