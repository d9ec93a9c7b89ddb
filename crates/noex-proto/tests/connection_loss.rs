//! Behaviour 8 and issue 6: pending requests when the connection breaks. Failures say
//! "not sent" or "outcome unknown" honestly; writes are never re-sent; retry-safe reads are
//! re-sent after the reconnect within their deadline; queueing while a connection is coming
//! (the default) is bounded by the deadline and the queue size.

mod common;

use common::*;
use noex_proto::{
    ops, ConnectionState, Delivery, Input, RequestError, RequestOptions, SubscriptionSpec,
};
use serde_json::json;
use std::time::Duration;

fn disconnected(delivery: Delivery) -> RequestError {
    RequestError::Disconnected { delivery }
}

#[test]
fn handed_out_but_not_written_then_drop_is_not_sent() {
    let mut h = Harness::connected(Harness::config());
    let id = h.request(ops::store::insert("users", json!({"name": "A"})));
    assert_eq!(h.times_sent(id.0), 1);
    h.server_close(None, "socket ended");
    assert_eq!(h.error_of(id), &disconnected(Delivery::NotSent));
    assert!(!h.error_of(id).may_have_been_applied());
}

#[test]
fn written_then_drop_is_outcome_unknown() {
    let mut h = Harness::connected(Harness::config());
    let id = h.request(ops::store::insert("users", json!({"name": "A"})));
    h.written_all();
    h.server_close(Some(1006), "");
    assert_eq!(h.error_of(id), &disconnected(Delivery::OutcomeUnknown));
    assert!(h.error_of(id).may_have_been_applied());
}

#[test]
fn written_acknowledges_up_to_a_sequence_number() {
    let mut h = Harness::connected(Harness::config());
    let a = h.request(ops::store::insert("users", json!({"name": "A"})));
    let seq_a = h.last_send().seq;
    let b = h.request(ops::store::insert("users", json!({"name": "B"})));
    let c = h.request(ops::store::insert("users", json!({"name": "C"})));
    let seq_c = h.last_send().seq;
    h.input(Input::Written { seq: seq_a });
    // An older acknowledgement never moves the mark back.
    h.input(Input::Written { seq: seq_a - 1 });
    h.server_close(None, "");
    assert_eq!(h.error_of(a), &disconnected(Delivery::OutcomeUnknown));
    assert_eq!(h.error_of(b), &disconnected(Delivery::NotSent));
    assert_eq!(h.error_of(c), &disconnected(Delivery::NotSent));
    assert!(seq_c > seq_a);
}

#[test]
fn written_on_an_old_connection_does_not_count_for_the_new_one() {
    let mut h = Harness::connected(Harness::config());
    let old = h.conn();
    h.server_close(None, "");
    h.reopen(false);
    let id = h.request(ops::store::insert("users", json!({"name": "A"})));
    let seq = h.last_send().seq;
    h.input_on(old, Input::Written { seq });
    h.server_close(None, "");
    assert_eq!(h.error_of(id), &disconnected(Delivery::NotSent));
}

#[test]
fn writes_are_never_resent_even_when_marked_retry_safe() {
    let mut h = Harness::connected(Harness::config().retry_reads(true));
    let writes = [
        h.request_with(
            ops::store::insert("users", json!({"name": "A"})),
            RequestOptions::default().retry_safe(true),
        ),
        h.request(ops::store::update("users", json!("k"), json!({"a": 1}))),
        h.request(ops::store::delete("users", json!("k"))),
        h.request(ops::store::clear("users")),
        h.request(ops::rules::emit("t", json!({}), None, None)),
        h.request(ops::rules::set_fact("k", json!(1))),
        h.request(ops::procedures::call("p", json!({}))),
    ];
    h.written_all();
    h.server_close(None, "");
    h.reopen(false);
    h.advance(Duration::from_secs(30));
    for id in writes {
        assert_eq!(h.times_sent(id.0), 1, "write {id:?} re-sent");
        assert_eq!(h.error_of(id), &disconnected(Delivery::OutcomeUnknown));
    }
    assert_eq!(h.core.counters().requests_resent, 0);
}

#[test]
fn retry_safe_read_is_resent_after_reconnect_and_answered_once() {
    let mut h = Harness::connected(Harness::config());
    let read = h.request_with(
        ops::store::all("users"),
        RequestOptions::default().retry_safe(true),
    );
    let plain_read = h.request(ops::store::all("users"));
    h.written_all();
    h.server_close(None, "");
    // The plain read fails; the retry-safe one waits.
    assert_eq!(
        h.error_of(plain_read),
        &disconnected(Delivery::OutcomeUnknown)
    );
    assert!(h.responses(read).is_empty());
    assert_eq!(h.core.pending_requests(), 1);

    h.reopen(false);
    assert_eq!(h.times_sent(read.0), 2);
    let resent = h.sent_request(read.0).unwrap();
    assert_eq!(resent.connection, h.conn());
    assert_eq!(resent.json["type"], "store.all");
    assert_eq!(h.times_sent(plain_read.0), 1);
    h.answer(read.0, json!([record("Alice", 30)]));
    assert!(h.response(read).is_ok());
    assert_eq!(h.core.counters().requests_resent, 1);
}

#[test]
fn config_retry_reads_covers_every_read_but_no_write() {
    let mut h = Harness::connected(Harness::config().retry_reads(true));
    let read = h.request(ops::store::count("users", None));
    let whoami = h.request(ops::auth::whoami());
    let write = h.request(ops::store::insert("users", json!({})));
    let opted_out = h.request_with(
        ops::store::all("users"),
        RequestOptions::default().retry_safe(false),
    );
    h.server_close(None, "");
    h.reopen(false);
    assert_eq!(h.times_sent(read.0), 2);
    assert_eq!(h.times_sent(whoami.0), 2);
    assert_eq!(h.times_sent(write.0), 1);
    assert_eq!(h.times_sent(opted_out.0), 1);
    assert_eq!(h.error_of(write), &disconnected(Delivery::NotSent));
    assert_eq!(h.error_of(opted_out), &disconnected(Delivery::NotSent));
}

#[test]
fn retry_safe_read_past_its_deadline_is_not_resent() {
    let mut h = Harness::connected(Harness::config());
    let read = h.request_with(
        ops::store::all("users"),
        RequestOptions::default().retry_safe(true).timeout(ms(800)),
    );
    h.server_close(None, "");
    // Backoff is at least 1 s: the deadline passes first.
    h.reopen(false);
    assert!(matches!(h.error_of(read), RequestError::Timeout { .. }));
    assert_eq!(h.times_sent(read.0), 1);
}

#[test]
fn retry_safe_read_waits_for_restored_subscriptions_and_keeps_its_deadline() {
    let mut h = Harness::connected(Harness::config().request_timeout(ms(5_000)));
    h.subscribe(SubscriptionSpec::query("all-users", None));
    h.answer_subscribes(json!([]));
    let read = h.request_with(
        ops::store::all("users"),
        RequestOptions::default().retry_safe(true),
    );
    h.server_close(None, "");
    h.reopen(false);
    // Restoring: the read goes out only once the connection is ready again.
    assert_eq!(h.times_sent(read.0), 1);
    h.answer_subscribes(json!([]));
    assert_eq!(h.times_sent(read.0), 2);
    // Still bound by its original deadline (5 s from the first send).
    h.advance(ms(5_000));
    assert!(matches!(h.error_of(read), RequestError::Timeout { .. }));
}

#[test]
fn requests_while_reconnecting_wait_for_the_connection_by_default() {
    let mut h = Harness::connected(Harness::config());
    h.server_close(None, "");
    assert_eq!(h.core.state(), ConnectionState::Reconnecting);
    let id = h.request(ops::store::all("users"));
    assert_eq!(h.times_sent(id.0), 0);
    assert!(h.responses(id).is_empty());
    h.reopen(false);
    assert_eq!(h.sent_request(id.0).unwrap().connection, h.conn());
}

#[test]
fn requests_while_reconnecting_fail_at_once_when_queueing_is_off() {
    let mut h = Harness::connected(Harness::config().queue_while_disconnected(false));
    h.server_close(None, "");
    assert_eq!(h.core.state(), ConnectionState::Reconnecting);
    assert_eq!(
        h.try_request(ops::store::all("users")),
        Err(disconnected(Delivery::NotSent))
    );
    h.reopen(false);
    assert!(h.sends.iter().all(|s| s.kind() != "store.all"));
    assert_eq!(h.core.counters().requests_disconnected, 1);
}

#[test]
fn queue_while_disconnected_sends_after_reconnect() {
    let mut h = Harness::connected(Harness::config().queue_while_disconnected(true));
    h.server_close(None, "");
    let id = h.request(ops::store::insert("users", json!({"name": "Q"})));
    assert_eq!(h.times_sent(id.0), 0);
    h.reopen(false);
    assert_eq!(h.times_sent(id.0), 1);
    assert_eq!(h.sent_request(id.0).unwrap().connection, h.conn());
    h.answer(id.0, record("Q", 1));
    assert!(h.response(id).is_ok());
}

#[test]
fn queued_requests_keep_their_order() {
    let mut h = Harness::connected(Harness::config().queue_while_disconnected(true));
    h.server_close(None, "");
    let ids: Vec<_> = (0..4)
        .map(|i| h.request(ops::store::insert("users", json!({"n": i}))))
        .collect();
    h.reopen(false);
    let sent: Vec<u64> = h.sends_on(h.conn()).iter().filter_map(|s| s.id()).collect();
    assert_eq!(sent, ids.iter().map(|i| i.0).collect::<Vec<_>>());
}

#[test]
fn queued_request_is_bounded_by_its_deadline() {
    let mut h = Harness::connected(
        Harness::config()
            .queue_while_disconnected(true)
            .request_timeout(ms(300)),
    );
    h.server_close(None, "");
    let id = h.request(ops::store::insert("users", json!({})));
    h.reopen(false);
    assert_eq!(
        h.error_of(id),
        &RequestError::Timeout {
            delivery: Delivery::NotSent
        }
    );
    assert_eq!(h.times_sent(id.0), 0);
}

#[test]
fn queue_is_bounded_by_max_queued() {
    let mut h = Harness::connected(
        Harness::config()
            .queue_while_disconnected(true)
            .max_queued(2),
    );
    h.server_close(None, "");
    h.request(ops::store::all("a"));
    h.request(ops::store::all("b"));
    assert_eq!(
        h.try_request(ops::store::all("c")),
        Err(RequestError::QueueFull)
    );
    assert_eq!(RequestError::QueueFull.delivery(), Some(Delivery::NotSent));
}

/// Requests that left the queue (timed out or cancelled) no longer take a place in it.
#[test]
fn expired_and_cancelled_requests_free_their_queue_slot() {
    let mut h = Harness::connected(
        Harness::config()
            .queue_while_disconnected(true)
            .max_queued(1)
            .backoff(noex_proto::Backoff {
                initial: Duration::from_secs(60),
                ..noex_proto::Backoff::default()
            }),
    );
    h.server_close(None, "");
    let a = h.request_with(
        ops::store::all("a"),
        RequestOptions::default().timeout(ms(100)),
    );
    h.advance(ms(100));
    assert!(matches!(h.error_of(a), RequestError::Timeout { .. }));
    let b = h
        .try_request(ops::store::all("b"))
        .expect("slot freed by the timeout");
    h.core.cancel(b);
    // (Its deadline outlasts the 60 s backoff.)
    let c = h.request_with(
        ops::store::all("c"),
        RequestOptions::default().timeout(Duration::from_secs(120)),
    );
    h.reopen(false);
    assert_eq!(h.times_sent(b.0), 0);
    assert_eq!(h.times_sent(c.0), 1);
}

#[test]
fn queued_requests_fail_not_sent_when_no_reconnect_is_coming() {
    let mut h = Harness::connected(Harness::config().queue_while_disconnected(true));
    h.server_close(None, "");
    let id = h.request(ops::store::insert("users", json!({})));
    // The next connection is refused for good.
    h.advance(ms(1_500));
    h.opened();
    h.server_close(Some(4003), "too_many_connections");
    assert_eq!(h.error_of(id), &disconnected(Delivery::NotSent));
    assert_eq!(h.core.state(), ConnectionState::Disconnected);
    assert_eq!(h.core.pending_entries(), 0);
}

#[test]
fn intentional_close_reports_delivery_too() {
    let mut h = Harness::connected(Harness::config());
    let written = h.request(ops::store::insert("users", json!({"n": 1})));
    h.written_all();
    let unwritten = h.request(ops::store::insert("users", json!({"n": 2})));
    h.close();
    assert_eq!(
        h.error_of(written),
        &RequestError::Closed {
            delivery: Delivery::OutcomeUnknown
        }
    );
    assert_eq!(
        h.error_of(unwritten),
        &RequestError::Closed {
            delivery: Delivery::NotSent
        }
    );
    assert_eq!(h.core.counters().requests_closed, 2);
    assert_eq!(h.core.pending_entries(), 0);
}

#[test]
fn counters_for_disconnect_failures() {
    let mut h = Harness::connected(Harness::config());
    h.request(ops::store::all("a"));
    h.request(ops::store::all("b"));
    h.server_close(None, "");
    assert_eq!(h.core.counters().requests_disconnected, 2);
}

#[test]
fn a_read_that_times_out_before_the_reconnect_is_not_counted_as_resent() {
    let mut h = Harness::connected(Harness::config().backoff(noex_proto::Backoff {
        initial: Duration::from_secs(5),
        jitter: Duration::ZERO,
        ..Default::default()
    }));
    let read = h.request_with(
        ops::store::all("users"),
        RequestOptions::default()
            .retry_safe(true)
            .timeout(Duration::from_secs(1)),
    );
    h.written_all();
    h.server_close(None, "");
    h.advance(Duration::from_secs(2));
    assert!(matches!(
        h.error_of(read),
        RequestError::Timeout {
            delivery: Delivery::OutcomeUnknown
        }
    ));
    assert_eq!(
        h.core.counters().requests_resent,
        0,
        "it was never sent again"
    );
}

/// A retry-safe read kept for the reconnect after its first copy was written still "may
/// have been applied" when the client then gives up before sending it again.
#[test]
fn a_kept_read_that_was_written_stays_outcome_unknown_when_the_client_gives_up() {
    let mut h = Harness::connected(Harness::config());
    let read = h.request_with(
        ops::store::all("users"),
        RequestOptions::default().retry_safe(true),
    );
    let write = h.request(ops::store::insert("users", json!({})));
    h.written_all();
    h.server_close(None, "");
    // The write is not kept: it fails now, "outcome unknown".
    assert_eq!(h.error_of(write), &disconnected(Delivery::OutcomeUnknown));
    let queued = h.request(ops::store::count("users", None));
    h.advance(ms(1_500));
    h.opened();
    h.server_close(Some(4003), "too_many_connections");
    assert_eq!(h.error_of(read), &disconnected(Delivery::OutcomeUnknown));
    assert_eq!(h.error_of(queued), &disconnected(Delivery::NotSent));
    assert_eq!(h.times_sent(read.0), 1);
    assert_eq!(h.core.pending_entries(), 0);
}
