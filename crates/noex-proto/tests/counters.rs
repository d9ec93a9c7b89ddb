//! Behaviour 10: counters a caller can read.

mod common;

use common::*;
use noex_proto::{ops, Counters, RequestOptions, SubscriptionSpec};
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

    let c = h.core.counters().clone();
    let expected = {
        let mut e = Counters::default();
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
