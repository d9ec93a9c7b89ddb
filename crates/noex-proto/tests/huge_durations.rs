//! Durations and numbers at the edge of their types never panic.

mod common;

use common::Harness;
use noex_proto::{ops, Backoff, Event, Liveness, Payload, RequestOptions};
use std::time::Duration;

#[test]
fn huge_durations_from_the_caller_saturate_instead_of_panicking() {
    let config = Harness::config()
        .connect_timeout(Duration::MAX)
        .request_timeout(Duration::MAX)
        .liveness(Liveness::Fixed(Duration::MAX))
        .backoff(Backoff {
            initial: Duration::MAX,
            multiplier: f64::MAX,
            max: Duration::MAX,
            jitter: Duration::MAX,
            max_retries: None,
        });
    let mut h = Harness::connected(config);
    let t0 = h.now();
    let id = h.request_with(
        ops::store::count("b", None),
        RequestOptions::default().timeout(Duration::MAX),
    );
    assert!(h
        .core
        .poll_timeout()
        .is_some_and(|t| t > t0 + Duration::from_secs(86_400)));
    h.server_close(Some(1001), "");
    assert!(
        h.core.poll_timeout().is_some(),
        "a backoff is scheduled, far away"
    );
    h.advance(Duration::from_secs(3_600));
    let ended = h
        .events
        .iter()
        .filter(
            |e| matches!(e, Event::Response { id: answered, result: Err(_) } if *answered == id),
        )
        .count();
    assert_eq!(ended, 1);
}

#[test]
fn numbers_a_json_tree_cannot_hold_are_an_error_not_a_silent_null() {
    let p = Payload::from_json("1e400").expect("valid JSON");
    assert!(p.to_value().is_err());
    assert_eq!(
        Payload::from_json("[1,2]").unwrap().to_value().unwrap(),
        serde_json::json!([1, 2])
    );
}
