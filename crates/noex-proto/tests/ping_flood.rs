//! A server that floods pings while not reading cannot make the send queue grow.

use noex_proto::{ClientCore, Config, Input, Output};
use std::time::{Duration, Instant};

#[test]
fn pongs_are_coalesced_while_the_socket_is_backed_up() {
    let t0 = Instant::now();
    let mut core = ClientCore::new(Config::new("ws://test"), 1);
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
    while core.poll_output().is_some() {}

    let mut pongs = 0;
    let mut last_seq = 0;
    for i in 0..1_000u64 {
        let now = t0 + Duration::from_millis(i);
        core.handle_input(
            now,
            connection,
            Input::Frame(&format!(r#"{{"type":"ping","timestamp":{i}}}"#)),
        );
        while let Some(output) = core.poll_output() {
            if let Output::Send { seq, text, .. } = output {
                assert!(text.contains("pong"));
                pongs += 1;
                last_seq = seq;
            }
        }
    }
    assert!(
        pongs <= 65,
        "{pongs} pongs queued for a socket that takes nothing"
    );
    assert_eq!(core.counters().pings, 1_000);
    assert_eq!(core.counters().pongs_coalesced, 1_000 - pongs);

    // Once the socket takes the frames, every ping is answered again.
    core.handle_input(t0, connection, Input::Written { seq: last_seq });
    core.handle_input(
        t0,
        connection,
        Input::Frame(r#"{"type":"ping","timestamp":5000}"#),
    );
    let Some(Output::Send { text, .. }) = core.poll_output() else {
        panic!("pong expected")
    };
    assert_eq!(text, r#"{"type":"pong","timestamp":5000}"#);
}

#[test]
fn every_ping_is_answered_on_a_healthy_socket_even_without_acks() {
    let t0 = Instant::now();
    let mut core = ClientCore::new(Config::new("ws://test"), 1);
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
    while core.poll_output().is_some() {}
    for i in 0..10 {
        core.handle_input(
            t0,
            connection,
            Input::Frame(&format!(r#"{{"type":"ping","timestamp":{i}}}"#)),
        );
        let Some(Output::Send { text, .. }) = core.poll_output() else {
            panic!("pong expected")
        };
        assert_eq!(text, format!(r#"{{"type":"pong","timestamp":{i}}}"#));
    }
}
