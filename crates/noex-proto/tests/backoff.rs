//! Behaviour 5: reconnect timing. Exponential backoff with the reference clients' defaults,
//! jitter from the seed, reset after success, permanent close codes, intentional close.

mod common;

use common::*;
use noex_proto::{Backoff, ConnectionState, Input};
use std::time::Duration;

#[test]
fn defaults_match_the_reference_clients() {
    let b = Backoff::default();
    assert_eq!(b.initial, ms(1_000));
    assert_eq!(b.multiplier, 2.0);
    assert_eq!(b.max, ms(30_000));
    assert_eq!(b.jitter, ms(500));
    assert_eq!(b.max_retries, None);
    let delays: Vec<u64> = (1..=8)
        .map(|n| b.base_delay(n).as_millis() as u64)
        .collect();
    assert_eq!(
        delays,
        vec![1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000]
    );
    assert_eq!(b.base_delay(1_000), ms(30_000));
    assert_eq!(b.base_delay(u32::MAX), ms(30_000));
}

#[test]
fn odd_multipliers_do_not_shrink_or_explode() {
    for multiplier in [0.0, -3.0, f64::NAN, f64::INFINITY] {
        let b = Backoff {
            multiplier,
            ..Backoff::default()
        };
        let d = b.base_delay(5);
        assert!(d >= ms(1_000) && d <= ms(30_000), "{multiplier}: {d:?}");
    }
}

/// Fails every reconnect attempt at once and returns the announced (attempt, delay) pairs
/// together with the time actually waited before each new `Open`.
fn failing_reconnects(seed: u64, attempts: usize) -> Vec<(u32, Duration, Duration)> {
    let mut h = Harness::with_seed(Harness::config(), seed);
    h.connect();
    h.open_and_welcome(false);
    h.server_close(None, "");
    let mut out = Vec::new();
    for i in 0..attempts {
        let (attempt, delay) = h.reconnecting()[i];
        let before = h.opens.len();
        let lost_at = h.clock.elapsed();
        assert_eq!(h.core.poll_timeout(), Some(h.now() + delay));
        while h.opens.len() == before {
            assert!(h.step());
        }
        out.push((attempt, delay, h.clock.elapsed() - lost_at));
        h.input(Input::ConnectFailed { reason: "refused" });
    }
    out
}

#[test]
fn delays_grow_exponentially_with_bounded_jitter() {
    let seen = failing_reconnects(1, 9);
    let bases = [
        1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000, 30_000,
    ];
    for (i, (attempt, delay, waited)) in seen.iter().enumerate() {
        assert_eq!(*attempt as usize, i + 1);
        assert_eq!(delay, waited, "the open must come exactly after the delay");
        let base = ms(bases[i]);
        assert!(
            *delay >= base && *delay <= base + ms(500),
            "attempt {attempt}: {delay:?}"
        );
    }
    // The jitter is not constant.
    let jitters: std::collections::BTreeSet<u128> = seen
        .iter()
        .enumerate()
        .map(|(i, (_, d, _))| d.as_millis() - bases[i] as u128)
        .collect();
    assert!(jitters.len() > 1);
}

#[test]
fn same_seed_same_delays_other_seed_other_delays() {
    let a = failing_reconnects(42, 8);
    let b = failing_reconnects(42, 8);
    let c = failing_reconnects(43, 8);
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn attempt_count_resets_after_a_successful_connection() {
    let mut h = Harness::connected(Harness::config());
    h.server_close(None, "");
    // Two failed attempts…
    for _ in 0..2 {
        let before = h.opens.len();
        while h.opens.len() == before {
            assert!(h.step());
        }
        h.input(Input::ConnectFailed { reason: "refused" });
    }
    assert_eq!(h.reconnecting().last().unwrap().0, 3);
    // …then success, then a new loss starts from attempt 1 again.
    h.reopen(false);
    assert_eq!(h.core.state(), ConnectionState::Connected);
    h.clear();
    h.server_close(None, "");
    let (attempt, delay) = h.reconnecting()[0];
    assert_eq!(attempt, 1);
    assert!(delay >= ms(1_000) && delay <= ms(1_500));
}

#[test]
fn permanent_close_codes_stop_reconnecting() {
    for code in [1003, 4002, 4003] {
        let mut h = Harness::connected(Harness::config());
        h.server_close(Some(code), "permanent");
        assert_eq!(h.core.state(), ConnectionState::Disconnected, "{code}");
        assert!(h.reconnecting().is_empty(), "{code}");
        h.advance(Duration::from_secs(600));
        assert_eq!(h.opens.len(), 1, "{code} reconnected");
    }
}

#[test]
fn other_close_codes_reconnect() {
    for code in [
        Some(1000),
        Some(1001),
        Some(1006),
        Some(4001),
        Some(4000),
        None,
    ] {
        let mut h = Harness::connected(Harness::config());
        h.server_close(code, "");
        assert_eq!(h.core.state(), ConnectionState::Reconnecting, "{code:?}");
        h.reopen(false);
        assert_eq!(h.core.state(), ConnectionState::Connected, "{code:?}");
    }
}

#[test]
fn intentional_close_during_backoff_stops_everything() {
    let mut h = Harness::connected(Harness::config());
    h.server_close(None, "");
    assert!(h.core.poll_timeout().is_some());
    h.clear();
    h.close();
    assert!(h.closes.is_empty(), "no connection to close during backoff");
    assert_eq!(h.core.state(), ConnectionState::Disconnected);
    assert_eq!(h.core.poll_timeout(), None);
    h.clear();
    h.advance(Duration::from_secs(600));
    assert!(h.opens.is_empty());
    assert!(h.core.poll_output().is_none());
}

#[test]
fn intentional_close_while_reconnecting_closes_the_new_connection() {
    let mut h = Harness::connected(Harness::config());
    h.server_close(None, "");
    let before = h.opens.len();
    while h.opens.len() == before {
        assert!(h.step());
    }
    let new_conn = h.conn();
    h.clear();
    h.close();
    assert_eq!(h.closes, vec![(new_conn, 1000, "client closed".to_owned())]);
    h.clear();
    h.opened();
    h.welcome(false);
    h.advance(Duration::from_secs(600));
    assert!(h.events.is_empty() && h.sends.is_empty() && h.opens.is_empty());
}

#[test]
fn zero_jitter_gives_exact_delays() {
    let mut h = Harness::connected(Harness::config().backoff(Backoff {
        initial: ms(100),
        multiplier: 3.0,
        max: ms(1_000),
        jitter: Duration::ZERO,
        max_retries: None,
    }));
    h.server_close(None, "");
    for _ in 0..4 {
        let before = h.opens.len();
        while h.opens.len() == before {
            assert!(h.step());
        }
        h.input(Input::ConnectFailed { reason: "x" });
    }
    let delays: Vec<u64> = h
        .reconnecting()
        .iter()
        .map(|(_, d)| d.as_millis() as u64)
        .collect();
    assert_eq!(delays, vec![100, 300, 900, 1_000, 1_000]);
}
