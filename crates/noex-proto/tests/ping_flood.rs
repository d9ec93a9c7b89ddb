//! A server that floods pings while not reading cannot make the send queue grow.

mod common;

use common::Harness;
use serde_json::json;

#[test]
fn pongs_are_coalesced_while_the_socket_is_backed_up() {
    let mut h = Harness::connected(Harness::config());
    h.sends.clear();
    for i in 0..1_000 {
        h.ping(i);
    }
    let pongs = h.sends.len() as u64;
    assert!(
        pongs <= 65,
        "{pongs} pongs queued for a socket that takes nothing"
    );
    assert!(h.sends.iter().all(|s| s.kind() == "pong"));
    assert_eq!(h.core.counters().pings, 1_000);
    assert_eq!(h.core.counters().pongs_coalesced, 1_000 - pongs);

    // Once the socket takes the frames, every ping is answered again.
    h.written_all();
    h.ping(5_000);
    assert_eq!(
        h.last_send().json,
        json!({"type": "pong", "timestamp": 5_000})
    );
}

#[test]
fn every_ping_is_answered_on_a_healthy_socket_even_without_acks() {
    let mut h = Harness::connected(Harness::config());
    for i in 0..10 {
        h.ping(i);
        assert_eq!(h.last_send().json, json!({"type": "pong", "timestamp": i}));
    }
    assert_eq!(h.core.counters().pongs_coalesced, 0);
}
