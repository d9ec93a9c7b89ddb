//! Requests made before the connection is ready, and the bounds on requests.
//!
//! By default (`queue_while_disconnected` on) a request made while a connection is being
//! made or waited for (opening, awaiting welcome, logging in, restoring, backing off) waits
//! for it; with queueing off it fails at once. Either way, when no connection is coming
//! (never connected, gave up, closed) it fails at once. `max_in_flight` bounds the caller's
//! requests not yet ended, `max_queued` those waiting for the connection; past either the
//! request is refused with `QueueFull` and counted as rejected.

mod common;

use common::*;
use noex_proto::{
    ops, Auth, Config, ConnectionState, Delivery, RequestError, RequestOptions, Secret,
    SubscriptionSpec,
};
use serde_json::json;

fn refused() -> RequestError {
    RequestError::Disconnected {
        delivery: Delivery::NotSent,
    }
}

#[test]
fn defaults_queue_while_connecting_with_bounds_of_4096() {
    let config = Config::new("ws://x");
    assert!(config.queue_while_disconnected);
    assert_eq!(config.max_queued, 4_096);
    assert_eq!(config.max_in_flight, 4_096);
}

/// Drives a core (token login, one subscription) through every phase in which a
/// connection is coming, making one request in each; returns what each request got.
fn request_in_every_connecting_phase(
    config: Config,
) -> Vec<(&'static str, Result<u64, RequestError>)> {
    let mut h = Harness::new(config.auth(Auth::Token(Secret::new("t"))));
    let mut results = Vec::new();
    let mut try_one = |h: &mut Harness, phase| {
        let r = h.try_request(ops::store::all("users")).map(|id| id.0);
        results.push((phase, r));
    };
    h.connect();
    try_one(&mut h, "opening");
    h.opened();
    try_one(&mut h, "awaiting welcome");
    h.welcome(true);
    try_one(&mut h, "authenticating");
    h.answer(h.last_send().id().unwrap(), json!({"userId": "u"}));
    h.subscribe(SubscriptionSpec::query("q", None));
    h.answer_subscribes(json!([]));
    h.server_close(None, "");
    try_one(&mut h, "backing off");
    h.reopen(true);
    h.answer(h.last_send().id().unwrap(), json!({"userId": "u"}));
    assert_eq!(h.last_send().kind(), "store.subscribe");
    try_one(&mut h, "restoring");
    results
}

#[test]
fn by_default_requests_wait_in_every_phase_a_connection_is_coming() {
    for (phase, result) in request_in_every_connecting_phase(Harness::config()) {
        assert!(result.is_ok(), "refused while {phase}: {result:?}");
    }
}

#[test]
fn with_queueing_off_requests_fail_at_once_in_every_phase_a_connection_is_coming() {
    let config = Harness::config().queue_while_disconnected(false);
    for (phase, result) in request_in_every_connecting_phase(config) {
        assert_eq!(result, Err(refused()), "while {phase}");
    }
}

#[test]
fn waiting_requests_go_out_in_order_once_ready_and_not_before() {
    let mut h = Harness::new(Harness::config());
    h.connect();
    let a = h.request(ops::store::insert("users", json!({"n": 1})));
    h.opened();
    let b = h.request(ops::store::insert("users", json!({"n": 2})));
    assert!(h.sends.is_empty());
    h.welcome(false);
    let sent: Vec<u64> = h.sends.iter().filter_map(|s| s.id()).collect();
    assert_eq!(sent, vec![a.0, b.0]);
}

#[test]
fn with_no_connection_coming_requests_fail_at_once_even_when_queueing() {
    let mut h = Harness::new(Harness::config());
    assert_eq!(h.try_request(ops::store::all("a")), Err(refused()));
    h.connect();
    h.open_and_welcome(false);
    h.server_close(Some(4003), "too_many_connections");
    assert_eq!(h.core.state(), ConnectionState::Disconnected);
    assert_eq!(h.try_request(ops::store::all("b")), Err(refused()));
    h.close();
    assert_eq!(
        h.try_request(ops::store::all("c")),
        Err(RequestError::Closed {
            delivery: Delivery::NotSent
        })
    );
    assert_eq!(h.core.counters().requests_issued, 3);
    assert_eq!(h.core.counters().requests_pending, 0);
}

#[test]
fn past_max_in_flight_requests_are_refused_and_counted() {
    let mut h = Harness::connected(Harness::config().max_in_flight(2));
    let a = h.request(ops::store::all("a"));
    assert!(h.core.has_request_slot());
    h.request(ops::store::all("b"));
    assert!(!h.core.has_request_slot());
    let frames = h.sends.len();
    assert_eq!(
        h.try_request(ops::store::all("c")),
        Err(RequestError::QueueFull)
    );
    assert_eq!(RequestError::QueueFull.delivery(), Some(Delivery::NotSent));
    assert_eq!(h.sends.len(), frames, "a refused request is not sent");
    let c = h.core.counters();
    assert_eq!(
        (c.requests_issued, c.requests_rejected, c.requests_pending),
        (3, 1, 2)
    );
    // An answer frees a slot.
    h.answer(a.0, json!([]));
    assert!(h.core.has_request_slot());
    assert!(h.try_request(ops::store::all("d")).is_ok());
}

#[test]
fn the_in_flight_cap_counts_waiting_requests_too() {
    let mut h = Harness::new(Harness::config().max_in_flight(2));
    h.connect();
    h.request(ops::store::all("a"));
    h.request(ops::store::all("b"));
    assert_eq!(
        h.try_request(ops::store::all("c")),
        Err(RequestError::QueueFull)
    );
    h.open_and_welcome(false);
    assert_eq!(h.sends.len(), 2);
}

#[test]
fn cancels_and_timeouts_free_in_flight_slots() {
    let mut h = Harness::connected(Harness::config().max_in_flight(1));
    let a = h.request(ops::store::all("a"));
    assert!(!h.core.has_request_slot());
    h.cancel(a);
    assert!(h.core.has_request_slot());
    h.request_with(
        ops::store::all("b"),
        RequestOptions::default().timeout(ms(50)),
    );
    assert!(!h.core.has_request_slot());
    h.advance(ms(50));
    assert!(h.core.has_request_slot());
}

#[test]
fn internal_requests_take_no_slot() {
    let mut h = Harness::connected(Harness::config().max_in_flight(1));
    for name in ["a", "b", "c"] {
        h.subscribe(SubscriptionSpec::query(name, None));
    }
    assert!(h.core.has_request_slot());
    assert!(h.try_request(ops::store::all("x")).is_ok());
}

#[test]
fn max_in_flight_is_at_least_one() {
    let config = Harness::config().max_in_flight(0);
    assert_eq!(config.max_in_flight, 1);
    let mut h = Harness::connected(config);
    assert!(h.try_request(ops::store::all("a")).is_ok());
    assert_eq!(
        h.try_request(ops::store::all("b")),
        Err(RequestError::QueueFull)
    );
}

#[test]
fn past_max_queued_waiting_requests_are_refused_while_sent_ones_are_not_bounded_by_it() {
    let mut h = Harness::new(Harness::config().max_queued(1));
    h.connect();
    h.request(ops::store::all("a"));
    assert_eq!(
        h.try_request(ops::store::all("b")),
        Err(RequestError::QueueFull)
    );
    h.open_and_welcome(false);
    // Connected: the queue bound no longer applies.
    h.request(ops::store::all("c"));
    h.request(ops::store::all("d"));
    assert_eq!(h.core.pending_requests(), 3);
    assert_eq!(h.core.counters().requests_rejected, 1);
}
