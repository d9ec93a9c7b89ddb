//! Behaviour 9: heartbeat and liveness. Every ping gets a pong with the same timestamp; a
//! silent connection is closed and replaced 2¼ ping intervals after its last frame (the
//! quarter interval of slack never less than `min_margin`, 100 ms by default), or after a
//! fixed timeout.

mod common;

use common::*;
use noex_proto::{ConnectionState, DisconnectReason, Liveness};
use serde_json::json;
use std::time::Duration;

#[test]
fn pong_echoes_the_timestamp_verbatim() {
    let mut h = Harness::connected(Harness::config());
    for ts in [
        "1795739065397",
        "1.5e3",
        "-0",
        "123456789012345678901234567890",
        "\"t\"",
    ] {
        h.frame(&format!(r#"{{"type":"ping","timestamp":{ts}}}"#));
        assert_eq!(
            h.last_send().text,
            format!(r#"{{"type":"pong","timestamp":{ts}}}"#)
        );
        assert_eq!(h.last_send().id(), None, "a pong is not a request");
    }
    assert_eq!(h.core.counters().pings, 5);
}

#[test]
fn pings_are_answered_before_the_connection_is_ready() {
    let mut h = Harness::new(Harness::config().auth(noex_proto::Auth::Token("t".into())));
    h.connect();
    h.opened();
    h.ping(1);
    assert_eq!(h.last_send().json, json!({"type": "pong", "timestamp": 1}));
    h.welcome(true);
    h.ping(2);
    assert_eq!(h.last_send().json, json!({"type": "pong", "timestamp": 2}));
}

#[test]
fn before_any_ping_the_watchdog_assumes_the_servers_default_interval() {
    // No link has seen a ping: the initial interval (30 s, the server's default) is
    // assumed, so a link silent from its first frame is noticed after 2.25 of them.
    let mut h = Harness::connected(Harness::config());
    let conn = h.conn();
    h.advance(ms(67_499));
    assert_eq!(h.core.state(), ConnectionState::Connected);
    h.advance(ms(1));
    assert_eq!(h.closes, vec![(conn, 4000, "liveness_timeout".to_owned())]);
    assert_eq!(h.disconnects(), vec![&DisconnectReason::LivenessTimeout]);
}

#[test]
fn a_new_link_is_watched_from_its_first_frame_with_the_interval_learned_before() {
    // 400 ms pings on the first link; the second goes silent right after its welcome,
    // before its first ping: noticed 2 × 400 + 100 ms after its last frame, within 1.2 s.
    let mut h = Harness::connected(Harness::config());
    for t in 1..=3 {
        h.advance(ms(400));
        h.ping(t);
    }
    h.server_close(None, "");
    h.reopen(false);
    let second = h.conn();
    let last_frame = h.now();
    h.clear();
    h.advance(ms(899));
    assert_eq!(h.core.state(), ConnectionState::Connected);
    h.advance(ms(1));
    assert_eq!(
        h.closes,
        vec![(second, 4000, "liveness_timeout".to_owned())]
    );
    assert_eq!(h.now() - last_frame, ms(900));
}

#[test]
fn links_given_up_before_their_first_ping_double_the_interval_assumed_next() {
    // The server was reconfigured from 400 ms to 5 s pings: each new link is given up
    // before its first ping, the next one waits twice as long, until a ping is seen.
    let config = Harness::config().backoff(noex_proto::Backoff {
        initial: ms(10),
        jitter: Duration::ZERO,
        ..Default::default()
    });
    let mut h = Harness::connected(config);
    h.advance(ms(400));
    h.ping(1);
    let silence = |h: &mut Harness| {
        h.server_close(None, "");
        h.reopen(false);
        let start = h.now();
        let conn = h.conn();
        while h.closes.iter().all(|c| c.0 != conn) {
            assert!(h.step());
        }
        h.now() - start
    };
    let silences: Vec<Duration> = (0..6).map(|_| silence(&mut h)).collect();
    // Doubled each time, at most three times: 2.25 × 8 × 400 ms at most.
    assert_eq!(
        silences,
        vec![
            ms(900),
            ms(1_800),
            ms(3_600),
            ms(7_200),
            ms(7_200),
            ms(7_200)
        ]
    );
    // With 3.2 s assumed (given up after 7.2 s), the server's 5 s ping arrives in time
    // and is learned.
    h.reopen(false);
    h.advance(ms(5_000));
    h.ping(2);
    assert_eq!(silence(&mut h), ms(11_250), "2.25 × the 5 s measured");
}

#[test]
fn silence_after_pings_closes_and_reconnects() {
    // Server heartbeat every 1.5 s (as in basic.jsonl): 2 × 1.5 s + 1.5 s / 4 = 3.375 s.
    let mut h = Harness::connected(Harness::config());
    let conn = h.conn();
    h.advance(ms(1_500));
    h.ping(1);
    assert_eq!(h.core.poll_timeout(), Some(h.now() + ms(3_375)));
    h.advance(ms(3_374));
    assert!(h.closes.is_empty());
    h.clear();
    h.advance(ms(1));
    assert_eq!(h.closes, vec![(conn, 4000, "liveness_timeout".to_owned())]);
    assert_eq!(h.disconnects(), vec![&DisconnectReason::LivenessTimeout]);
    assert_eq!(h.core.state(), ConnectionState::Reconnecting);
    h.reopen(false);
    assert_eq!(h.core.state(), ConnectionState::Connected);
    assert_ne!(h.conn(), conn);
}

#[test]
fn any_frame_proves_the_server_alive() {
    let mut h = Harness::connected(Harness::config());
    h.advance(ms(1_500));
    h.ping(1);
    for _ in 0..10 {
        h.advance(ms(3_000));
        h.push("sub-x", json!(1)); // even a push nobody wants
    }
    assert!(h.closes.is_empty());
    assert_eq!(h.core.state(), ConnectionState::Connected);
}

#[test]
fn interval_is_estimated_from_the_pings_seen() {
    let mut h = Harness::connected(Harness::config());
    for i in 0..3 {
        h.advance(Duration::from_secs(30));
        h.ping(i);
    }
    // 2 × 30 s + 30 s / 4.
    assert_eq!(h.core.poll_timeout(), Some(h.now() + ms(67_500)));
    h.advance(ms(67_499));
    assert!(h.closes.is_empty());
    h.advance(ms(1));
    assert_eq!(h.disconnects(), vec![&DisconnectReason::LivenessTimeout]);
}

/// Pings every `interval` (three of them), then silence: how long after the last frame
/// the watchdog closes the connection (checked to the millisecond).
fn silence_noticed_after(config: noex_proto::Config, interval: Duration) -> Duration {
    let mut h = Harness::connected(config);
    for i in 0..3 {
        h.advance(interval);
        h.ping(i);
    }
    let last_frame = h.now();
    let deadline = h.core.poll_timeout().expect("watchdog armed");
    let after = deadline - last_frame;
    h.advance(after - ms(1));
    assert!(h.closes.is_empty(), "closed early at {interval:?}");
    h.advance(ms(1));
    assert_eq!(h.disconnects(), vec![&DisconnectReason::LivenessTimeout]);
    after
}

#[test]
fn one_second_pings_a_silent_link_is_noticed_after_two_and_a_quarter_seconds() {
    assert_eq!(
        silence_noticed_after(Harness::config(), ms(1_000)),
        ms(2_250)
    );
}

#[test]
fn hundred_millisecond_pings_use_the_default_floor_of_the_slack() {
    // 2 × 100 ms + max(25 ms, 100 ms).
    assert_eq!(silence_noticed_after(Harness::config(), ms(100)), ms(300));
}

#[test]
fn ten_millisecond_pings_use_the_default_floor_of_the_slack() {
    // 2 × 10 ms + max(2.5 ms, 100 ms).
    assert_eq!(silence_noticed_after(Harness::config(), ms(10)), ms(120));
}

#[test]
fn a_silent_link_is_noticed_within_two_and_a_half_intervals_from_400_ms_up() {
    for interval_ms in [400, 500, 750, 1_000, 5_000, 30_000, 60_000] {
        let interval = ms(interval_ms);
        let after = silence_noticed_after(Harness::config(), interval);
        assert_eq!(after, interval * 9 / 4, "at {interval:?}");
        assert!(after <= interval * 5 / 2, "at {interval:?}");
    }
}

#[test]
fn a_custom_min_margin_is_the_floor_of_the_slack() {
    let config = || {
        Harness::config().liveness(Liveness::Auto {
            min_margin: ms(200),
            initial_interval: ms(30_000),
        })
    };
    // Above the floor: a quarter interval (250 ms) of slack.
    assert_eq!(silence_noticed_after(config(), ms(1_000)), ms(2_250));
    // Below it: 2 × 100 ms + 200 ms.
    assert_eq!(silence_noticed_after(config(), ms(100)), ms(400));
}

#[test]
fn the_default_min_margin_is_100_ms() {
    assert_eq!(
        Liveness::default(),
        Liveness::Auto {
            min_margin: ms(100),
            initial_interval: ms(30_000),
        }
    );
}

#[test]
fn fixed_liveness_needs_no_ping() {
    let mut h = Harness::connected(Harness::config().liveness(Liveness::Fixed(ms(5_000))));
    h.advance(ms(4_000));
    h.frame(r#"{"type":"system","event":"noop"}"#);
    h.advance(ms(4_999));
    assert!(h.closes.is_empty());
    h.advance(ms(1));
    assert_eq!(h.disconnects(), vec![&DisconnectReason::LivenessTimeout]);
    assert_eq!(h.closes.len(), 1);
}

#[test]
fn liveness_off_never_fires() {
    let mut h = Harness::connected(Harness::config().liveness(Liveness::Off));
    h.advance(ms(1_000));
    h.ping(1);
    assert_eq!(h.core.poll_timeout(), None);
    h.advance(Duration::from_secs(3_600));
    assert_eq!(h.core.state(), ConnectionState::Connected);
}

#[test]
fn pending_requests_on_a_dead_connection_fail_with_the_watchdog() {
    let mut h = Harness::connected(Harness::config().liveness(Liveness::Fixed(ms(2_000))));
    let id = h.request(noex_proto::ops::store::insert("u", json!({})));
    h.written_all();
    h.advance(ms(2_000));
    assert_eq!(
        h.error_of(id),
        &noex_proto::RequestError::Disconnected {
            delivery: noex_proto::Delivery::OutcomeUnknown
        }
    );
}
