//! Behaviour 3: request correlation. Ids are never reused, every request has a deadline
//! (default from config, overridable), resolves exactly once, and late answers are counted.

mod common;

use common::*;
use noex_proto::{ops, Delivery, Liveness, RequestError, RequestId, RequestOptions};
use serde_json::json;
use std::collections::BTreeSet;
use std::time::Duration;

#[test]
fn wire_id_is_the_request_id_and_ids_are_never_reused() {
    let mut h = Harness::connected(Harness::config());
    let mut ids = Vec::new();
    for i in 0..5 {
        let id = h.request(ops::store::get("users", json!(format!("k{i}"))));
        assert_eq!(h.last_send().id(), Some(id.0));
        ids.push(id);
    }
    // Internal requests (subscribe) share the id space.
    h.subscribe(noex_proto::SubscriptionSpec::query("all-users", None));
    let sub_req = h.last_send().id().unwrap();
    // Lose the connection and come back: numbering goes on.
    h.server_close(None, "");
    h.reopen(false);
    h.answer_subscribes(json!([]));
    for _ in 0..3 {
        ids.push(h.request(ops::store::buckets()));
    }
    let wire: Vec<u64> = h.sends.iter().filter_map(|s| s.id()).collect();
    let unique: BTreeSet<u64> = wire.iter().copied().collect();
    assert_eq!(unique.len(), wire.len(), "an id was reused: {wire:?}");
    assert!(
        wire.windows(2).all(|w| w[0] < w[1]),
        "ids not increasing: {wire:?}"
    );
    assert!(ids.iter().all(|id| id.0 != sub_req));
}

#[test]
fn default_deadline_comes_from_config() {
    let mut h = Harness::connected(Harness::config().request_timeout(ms(3_000)));
    let start = h.now();
    let id = h.request(ops::store::all("users"));
    assert_eq!(h.core.poll_timeout(), Some(start + ms(3_000)));
    h.advance(ms(2_999));
    assert!(h.responses(id).is_empty());
    h.advance(ms(1));
    assert!(matches!(h.error_of(id), RequestError::Timeout { .. }));
    assert_eq!(h.core.pending_requests(), 0);
    assert_eq!(h.core.counters().requests_timed_out, 1);
}

#[test]
fn library_default_deadline_is_ten_seconds() {
    let mut h = Harness::connected(Harness::config());
    let id = h.request(ops::store::all("users"));
    h.advance(ms(9_999));
    assert!(h.responses(id).is_empty());
    h.advance(ms(1));
    assert!(matches!(h.error_of(id), RequestError::Timeout { .. }));
}

#[test]
fn per_request_deadline_overrides_the_default() {
    let mut h = Harness::connected(Harness::config());
    let short = h.request_with(
        ops::store::all("a"),
        RequestOptions::default().timeout(ms(500)),
    );
    let long = h.request_with(
        ops::store::all("b"),
        RequestOptions::default().timeout(Duration::from_secs(60)),
    );
    let default = h.request(ops::store::all("c"));
    h.advance(ms(500));
    assert!(matches!(h.error_of(short), RequestError::Timeout { .. }));
    assert!(h.responses(default).is_empty());
    h.advance(Duration::from_secs(10));
    assert!(matches!(h.error_of(default), RequestError::Timeout { .. }));
    assert!(h.responses(long).is_empty());
    h.answer(long.0, json!([]));
    assert!(h.response(long).is_ok());
}

#[test]
fn answers_out_of_order_reach_their_requests() {
    let mut h = Harness::connected(Harness::config());
    let a = h.request(ops::store::count("users", None));
    let b = h.request(ops::store::count("orders", None));
    h.answer(b.0, json!(2));
    h.answer(a.0, json!(1));
    assert_eq!(value(h.response(a).as_ref().unwrap()), json!(1));
    assert_eq!(value(h.response(b).as_ref().unwrap()), json!(2));
    assert_eq!(h.core.counters().requests_ok, 2);
}

#[test]
fn resolution_is_exactly_once_and_late_answers_are_counted() {
    let mut h = Harness::connected(Harness::config());
    let timed_out = h.request_with(
        ops::store::all("users"),
        RequestOptions::default().timeout(ms(100)),
    );
    let answered = h.request(ops::store::all("users"));
    h.advance(ms(100));
    // Late answer to the timed-out request: dropped and counted.
    h.answer(timed_out.0, json!([]));
    // A second answer (result, then error) to an answered request.
    h.answer(answered.0, json!([]));
    h.answer(answered.0, json!([1]));
    h.answer_error(answered.0, "INTERNAL_ERROR", "x");
    // An answer to an id never issued.
    h.answer(9_999, json!(null));

    assert_eq!(h.responses(timed_out).len(), 1);
    assert_eq!(h.responses(answered).len(), 1);
    assert_eq!(value(h.response(answered).as_ref().unwrap()), json!([]));
    assert_eq!(h.core.counters().late_answers, 4);
    assert_eq!(h.core.pending_entries(), 0);
}

#[test]
fn written_then_timeout_is_outcome_unknown() {
    let mut h = Harness::connected(Harness::config());
    let id = h.request_with(
        ops::store::insert("users", json!({"name": "A"})),
        RequestOptions::default().timeout(ms(100)),
    );
    h.written_all();
    h.advance(ms(100));
    assert_eq!(
        h.error_of(id),
        &RequestError::Timeout {
            delivery: Delivery::OutcomeUnknown
        }
    );
    assert!(h.error_of(id).may_have_been_applied());
}

/// A frame handed out but not yet written when the deadline passes is never written: the
/// request has ended, so the transport drops it ([`noex_proto::ClientCore::wants_frame`]).
/// The timeout can therefore say "not sent".
#[test]
fn handed_out_but_unwritten_then_timeout_is_not_sent_and_the_frame_is_dropped() {
    let mut h = Harness::connected(Harness::config());
    let id = h.request_with(
        ops::store::insert("users", json!({"name": "A"})),
        RequestOptions::default().timeout(ms(100)),
    );
    let frame = h.sent_request(id.0).unwrap().clone();
    assert_eq!(frame.request, Some(id));
    assert!(h.core.wants_frame(frame.request));
    h.advance(ms(100));
    assert_eq!(
        h.error_of(id),
        &RequestError::Timeout {
            delivery: Delivery::NotSent
        }
    );
    assert!(!h.error_of(id).may_have_been_applied());
    assert!(
        !h.core.wants_frame(frame.request),
        "the frame must be dropped"
    );
    assert!(!h.reached_server(&frame));
}

#[test]
fn frames_without_a_request_are_always_wanted() {
    let mut h = Harness::connected(Harness::config());
    h.ping(7);
    let pong = h.last_send().clone();
    assert_eq!(pong.request, None);
    assert!(h.core.wants_frame(None));
    h.close();
    assert!(h.core.wants_frame(pong.request));
}

#[test]
fn queued_request_that_times_out_was_not_sent() {
    let mut h = Harness::new(Harness::config().queue_while_disconnected(true));
    h.connect();
    // Connecting, not yet open: the request waits.
    let id = h.request_with(
        ops::store::insert("users", json!({"name": "A"})),
        RequestOptions::default().timeout(ms(500)),
    );
    assert!(h.sends.is_empty());
    h.advance(ms(500));
    assert_eq!(
        h.error_of(id),
        &RequestError::Timeout {
            delivery: Delivery::NotSent
        }
    );
    // When the connection comes it is not sent.
    h.open_and_welcome(false);
    assert_eq!(h.times_sent(id.0), 0);
}

#[test]
fn cancel_ends_a_request_without_an_event() {
    let mut h = Harness::connected(Harness::config().liveness(Liveness::Off));
    let id = h.request(ops::store::all("users"));
    h.core.cancel(id);
    assert_eq!(h.core.pending_entries(), 0);
    assert_eq!(h.core.poll_timeout(), None);
    h.answer(id.0, json!([]));
    assert!(h.responses(id).is_empty());
    assert_eq!(h.core.counters().requests_cancelled, 1);
    assert_eq!(h.core.counters().late_answers, 1);
    // Cancelling twice or an unknown id is harmless.
    h.core.cancel(id);
    h.core.cancel(RequestId(12345));
    assert_eq!(h.core.counters().requests_cancelled, 1);
}

#[test]
fn request_is_refused_at_once_when_no_connection_is_coming() {
    // Never connected.
    let mut h = Harness::new(Harness::config());
    assert_eq!(
        h.try_request(ops::store::all("users")),
        Err(RequestError::Disconnected {
            delivery: Delivery::NotSent
        })
    );
    // Gave up (the first attempt failed and is not retried by default).
    h.connect();
    h.input(noex_proto::Input::ConnectFailed { reason: "refused" });
    assert_eq!(h.core.state(), noex_proto::ConnectionState::Disconnected);
    assert_eq!(
        h.try_request(ops::store::all("users")),
        Err(RequestError::Disconnected {
            delivery: Delivery::NotSent
        })
    );
    // Closed.
    h.close();
    assert_eq!(
        h.try_request(ops::store::all("users")),
        Err(RequestError::Closed {
            delivery: Delivery::NotSent
        })
    );
    assert!(h.sends.is_empty());
    assert!(h
        .events
        .iter()
        .all(|e| !matches!(e, noex_proto::Event::Response { .. })));
    // Refusals are counted like any other end.
    let c = h.core.counters();
    assert_eq!(c.requests_issued, 3);
    assert_eq!(c.requests_disconnected, 2);
    assert_eq!(c.requests_closed, 1);
    assert_eq!(c.requests_pending, 0);
}

#[test]
fn request_while_connecting_waits_by_default() {
    let mut h = Harness::new(Harness::config());
    h.connect();
    let id = h.request(ops::store::all("users"));
    assert!(h.sends.is_empty());
    assert_eq!(h.core.pending_requests(), 1);
    h.open_and_welcome(false);
    assert_eq!(h.times_sent(id.0), 1);
    h.answer(id.0, json!([]));
    assert!(h.response(id).is_ok());
}

#[test]
fn request_while_connecting_is_refused_when_queueing_is_off() {
    let mut h = Harness::new(Harness::config().queue_while_disconnected(false));
    h.connect();
    assert_eq!(
        h.try_request(ops::store::all("users")),
        Err(RequestError::Disconnected {
            delivery: Delivery::NotSent
        })
    );
    h.open_and_welcome(false);
    assert!(h.sends.is_empty());
}

#[test]
fn server_error_resolves_the_request() {
    let mut h = Harness::connected(Harness::config().liveness(Liveness::Off));
    let id = h.request(ops::store::get_bucket_schema("products"));
    h.answer_error(
        id.0,
        "BUCKET_NOT_DEFINED",
        "Bucket \"products\" does not exist",
    );
    let RequestError::Server(e) = h.error_of(id) else {
        panic!()
    };
    assert_eq!(e.code, noex_proto::ErrorCode::BucketNotDefined);
    assert_eq!(h.core.counters().requests_server_error, 1);
    // Nothing left to time out.
    assert_eq!(h.core.poll_timeout(), None);
}

/// A slow request among thousands answered after it: the deadline that falls due first is
/// still the slow one's, it times out on time, and nothing of the others stays behind.
#[test]
fn a_slow_request_among_many_answered_ones_times_out_on_time() {
    let config = Harness::config().request_timeout(ms(3_000));
    let mut h = Harness::connected(config.liveness(Liveness::Off));
    let start = h.now();
    let slow = h.request(ops::store::all("slow"));
    for i in 0..5_000u64 {
        let id = h.request(ops::store::get("users", json!(format!("k{i}"))));
        h.answer(id.0, json!(null));
        if i % 1_000 == 0 {
            h.advance(ms(100));
        }
    }
    assert_eq!(h.core.pending_entries(), 1);
    assert_eq!(h.core.poll_timeout(), Some(start + ms(3_000)));
    let late = h.request(ops::store::all("late"));
    h.advance(start + ms(3_000) - h.now());
    assert!(matches!(h.error_of(slow), RequestError::Timeout { .. }));
    assert!(h.responses(late).is_empty());
    assert_eq!(h.core.pending_entries(), 1);
    h.answer(late.0, json!([]));
    assert!(h.response(late).is_ok());
    assert_eq!(h.core.pending_entries(), 0);
    assert_eq!(h.core.poll_timeout(), None);
}

/// Deadlines come from the caller's clock; one that goes back still gets every request
/// ended at its own deadline, the earliest first.
#[test]
fn a_caller_clock_that_goes_back_keeps_every_deadline() {
    let mut h = Harness::connected(Harness::config().request_timeout(ms(3_000)));
    let now = h.now();
    let first = h.core.request(now, ops::store::all("a")).unwrap();
    let earlier = now.checked_sub(ms(2_000)).expect("an earlier instant");
    let second = h.core.request(earlier, ops::store::all("b")).unwrap();
    let custom = h
        .core
        .request_with(
            now,
            ops::store::all("c"),
            RequestOptions::default().timeout(ms(1_500)),
        )
        .unwrap();
    h.drain();
    // `second` falls due first (1 s from now), then `custom`, then `first`.
    assert_eq!(h.core.poll_timeout(), Some(earlier + ms(3_000)));
    h.advance(ms(1_000));
    assert!(matches!(h.error_of(second), RequestError::Timeout { .. }));
    assert!(h.responses(custom).is_empty() && h.responses(first).is_empty());
    assert_eq!(h.core.poll_timeout(), Some(now + ms(1_500)));
    h.advance(ms(500));
    assert!(matches!(h.error_of(custom), RequestError::Timeout { .. }));
    assert!(h.responses(first).is_empty());
    h.advance(ms(1_500));
    assert!(matches!(h.error_of(first), RequestError::Timeout { .. }));
    assert_eq!(h.core.pending_entries(), 0);
}
