//! Durations and numbers at the edge of their types never panic.

use noex_proto::{
    ops, Backoff, ClientCore, Config, Input, Liveness, Output, Payload, RequestOptions,
};
use std::time::{Duration, Instant};

#[test]
fn huge_durations_from_the_caller_saturate_instead_of_panicking() {
    let t0 = Instant::now();
    let config = Config::new("ws://test")
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
    let mut core = ClientCore::new(config, 3);
    core.connect(t0);
    let Some(Output::Open { connection, .. }) = core.poll_output() else {
        panic!("open expected")
    };
    core.handle_input(t0, connection, Input::Opened);
    core.handle_input(
        t0,
        connection,
        Input::Frame(r#"{"type":"welcome","version":"1.0.0","requiresAuth":false}"#),
    );
    let id = core
        .request_with(
            t0,
            ops::store::count("b", None),
            RequestOptions::default().timeout(Duration::MAX),
        )
        .expect("accepted");
    assert!(core
        .poll_timeout()
        .is_some_and(|t| t > t0 + Duration::from_secs(86_400)));
    core.handle_input(
        t0,
        connection,
        Input::Closed {
            code: Some(1001),
            reason: "",
        },
    );
    assert!(
        core.poll_timeout().is_some(),
        "a backoff is scheduled, far away"
    );
    core.handle_timeout(t0 + Duration::from_secs(3600));
    while let Some(output) = core.poll_output() {
        if let Output::Event(noex_proto::Event::Response {
            id: answered,
            result,
        }) = output
        {
            assert_eq!(answered, id);
            assert!(result.is_err());
        }
    }
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
