//! Behaviour 4: the connection lifecycle, its states and its events; the connect timeout.
//! The state changes first, then the event that announces it: a caller that reacts to
//! `Connected`, `Disconnected` or `Reconnecting` already reads the new state.

mod common;

use common::*;
use noex_proto::{
    ops, ConnectionState, CoreError, DisconnectReason, Input, LifecycleEvent, Output, WelcomeInfo,
};
use serde_json::json;
use std::time::Duration;

#[test]
fn first_connection_states_and_events() {
    let mut h = Harness::new(Harness::config());
    assert_eq!(h.core.state(), ConnectionState::Disconnected);
    h.connect();
    assert_eq!(h.opens.len(), 1);
    assert_eq!(h.opens[0].1, "ws://test.invalid:1");
    assert_eq!(h.core.state(), ConnectionState::Connecting);
    h.opened();
    assert_eq!(h.core.state(), ConnectionState::Connecting);
    h.welcome(false);
    assert_eq!(h.core.state(), ConnectionState::Connected);
    let l = h.lifecycle();
    assert_eq!(
        l,
        vec![
            &LifecycleEvent::StateChanged(ConnectionState::Connecting),
            &LifecycleEvent::Welcome(WelcomeInfo {
                version: "1.0.0".into(),
                server_time: Some(1795739063895),
                requires_auth: false
            }),
            &LifecycleEvent::StateChanged(ConnectionState::Connected),
            &LifecycleEvent::Connected,
        ]
    );
    assert_eq!(h.core.counters().reconnects, 0);
}

#[test]
fn connect_is_idempotent_while_connecting_or_connected() {
    let mut h = Harness::new(Harness::config());
    h.connect();
    h.connect();
    assert_eq!(h.opens.len(), 1);
    h.open_and_welcome(false);
    h.connect();
    assert_eq!(h.opens.len(), 1);
}

#[test]
fn connect_timeout_without_open() {
    let mut h = Harness::new(Harness::config().connect_timeout(ms(2_000)));
    h.connect();
    h.advance(ms(1_999));
    assert!(h.disconnects().is_empty());
    h.advance(ms(1));
    assert_eq!(
        h.closes,
        vec![(h.conn(), 4000, "connect_timeout".to_owned())]
    );
    assert_eq!(h.disconnects(), vec![&DisconnectReason::ConnectTimeout]);
    // The first connection failing is reported, not retried, by default.
    assert_eq!(h.core.state(), ConnectionState::Disconnected);
    h.advance(Duration::from_secs(120));
    assert_eq!(h.opens.len(), 1);
    assert_eq!(h.core.poll_timeout(), None);
}

#[test]
fn connect_timeout_waiting_for_welcome_then_retry_when_configured() {
    let mut h = Harness::new(Harness::config().retry_initial_connect(true));
    h.connect();
    h.opened();
    h.advance(Duration::from_secs(10));
    assert_eq!(h.disconnects(), vec![&DisconnectReason::ConnectTimeout]);
    assert_eq!(h.reconnecting().len(), 1);
    assert_eq!(h.reconnecting()[0].0, 1);
    // Never connected yet: still the first connection being made.
    assert_eq!(h.core.state(), ConnectionState::Connecting);
    h.reopen(false);
    assert_eq!(h.opens.len(), 2);
    assert_eq!(h.core.state(), ConnectionState::Connected);
    // Input for the abandoned first connection is ignored.
    let first = h.opens[0].0;
    h.clear();
    h.input_on(first, Input::Frame(r#"{"type":"ping","timestamp":1}"#));
    h.input_on(
        first,
        Input::Closed {
            code: Some(1000),
            reason: "",
        },
    );
    assert!(h.sends.is_empty() && h.events.is_empty());
    assert_eq!(h.core.state(), ConnectionState::Connected);
}

#[test]
fn welcome_cancels_the_connect_timeout() {
    let mut h = Harness::connected(Harness::config().connect_timeout(ms(500)));
    h.advance(Duration::from_secs(5));
    assert!(h.disconnects().is_empty());
    assert_eq!(h.core.state(), ConnectionState::Connected);
}

#[test]
fn first_connect_failure_is_reported() {
    let mut h = Harness::new(Harness::config());
    h.connect();
    h.input(Input::ConnectFailed {
        reason: "connection refused",
    });
    assert_eq!(
        h.disconnects(),
        vec![&DisconnectReason::ConnectFailed(
            "connection refused".into()
        )]
    );
    assert_eq!(h.core.state(), ConnectionState::Disconnected);
    // The caller may try again.
    h.connect();
    assert_eq!(h.opens.len(), 2);
    assert_eq!(h.core.state(), ConnectionState::Connecting);
}

#[test]
fn lost_connection_reconnects_with_events_in_order() {
    let mut h = Harness::connected(Harness::config());
    h.clear();
    h.server_close(Some(1000), "normal_closure");
    let l = h.lifecycle();
    assert_eq!(l.len(), 3, "{l:?}");
    assert_eq!(
        l[0],
        &LifecycleEvent::StateChanged(ConnectionState::Reconnecting)
    );
    assert_eq!(
        l[1],
        &LifecycleEvent::Disconnected(DisconnectReason::Closed {
            code: Some(1000),
            reason: "normal_closure".into()
        })
    );
    assert!(matches!(
        l[2],
        LifecycleEvent::Reconnecting { attempt: 1, .. }
    ));
    h.clear();
    h.reopen(false);
    let l = h.lifecycle();
    assert_eq!(l.len(), 3, "{l:?}");
    assert!(matches!(l[0], LifecycleEvent::Welcome(_)));
    assert_eq!(
        l[1],
        &LifecycleEvent::StateChanged(ConnectionState::Connected)
    );
    assert_eq!(l[2], &LifecycleEvent::Reconnected);
    assert_eq!(h.core.counters().reconnects, 1);
    assert!(h.count_lifecycle(|l| matches!(l, LifecycleEvent::Connected)) == 0);
}

#[test]
fn connect_during_backoff_opens_at_once() {
    let mut h = Harness::connected(Harness::config());
    h.server_close(None, "");
    assert_eq!(h.opens.len(), 1);
    h.connect();
    assert_eq!(h.opens.len(), 2);
    h.open_and_welcome(false);
    assert_eq!(h.core.state(), ConnectionState::Connected);
}

#[test]
fn reconnect_off_means_disconnected_for_good() {
    let mut h = Harness::connected(Harness::config().reconnect(false));
    h.server_close(Some(1000), "");
    assert_eq!(h.core.state(), ConnectionState::Disconnected);
    assert!(h.reconnecting().is_empty());
    h.advance(Duration::from_secs(60));
    assert_eq!(h.opens.len(), 1);
}

#[test]
fn server_shutdown_is_announced_then_reconnects() {
    let mut h = Harness::connected(Harness::config());
    h.clear();
    h.frame(r#"{"type":"system","event":"shutdown","gracePeriodMs":500}"#);
    assert_eq!(
        h.lifecycle(),
        vec![&LifecycleEvent::ServerShutdown {
            grace_period: Some(ms(500))
        }]
    );
    assert_eq!(h.core.state(), ConnectionState::Connected);
    h.server_close(Some(1000), "server_shutdown");
    assert_eq!(h.core.state(), ConnectionState::Reconnecting);
    h.reopen(false);
    assert_eq!(h.core.state(), ConnectionState::Connected);
}

#[test]
fn session_revoked_is_announced_and_4002_is_final() {
    let mut h = Harness::connected(Harness::config());
    h.clear();
    h.frame(r#"{"type":"system","event":"session_revoked","reason":"admin revoked"}"#);
    assert_eq!(
        h.lifecycle(),
        vec![&LifecycleEvent::SessionRevoked {
            reason: Some("admin revoked".into())
        }]
    );
    h.server_close(Some(4002), "session_revoked");
    assert_eq!(h.core.state(), ConnectionState::Disconnected);
    h.advance(Duration::from_secs(60));
    assert!(h.opens.is_empty(), "reconnected after 4002");
}

#[test]
fn unexpected_second_welcome_is_reported_and_ignored() {
    let mut h = Harness::connected(Harness::config());
    let id = h.request(ops::store::all("users"));
    h.clear();
    h.welcome(false);
    assert!(matches!(
        h.core_errors()[..],
        [CoreError::Unexpected("welcome")]
    ));
    assert_eq!(h.core.state(), ConnectionState::Connected);
    h.answer(id.0, json!([]));
    assert!(h.response(id).is_ok());
}

#[test]
fn unknown_system_event_is_ignored() {
    let mut h = Harness::connected(Harness::config());
    h.clear();
    h.frame(r#"{"type":"system","event":"maintenance_window","at":1}"#);
    assert!(h.events.is_empty());
}

#[test]
fn close_is_final_and_silent_afterwards() {
    let mut h = Harness::connected(Harness::config());
    let conn = h.conn();
    h.clear();
    h.close();
    assert_eq!(h.closes, vec![(conn, 1000, "client closed".to_owned())]);
    assert!(h.core.is_closed());
    assert_eq!(h.core.state(), ConnectionState::Disconnected);
    assert!(h.disconnects().contains(&&DisconnectReason::ClientClosed));
    // Nothing comes out any more, whatever happens.
    h.clear();
    h.frame(r#"{"type":"ping","timestamp":5}"#);
    h.input(Input::Closed {
        code: Some(1000),
        reason: "",
    });
    h.connect();
    h.advance(Duration::from_secs(3600));
    h.close();
    assert!(h.core.poll_output().is_none());
    assert!(h.opens.is_empty() && h.sends.is_empty() && h.closes.is_empty());
    assert!(h.events.is_empty());
    assert_eq!(h.core.poll_timeout(), None);
}

#[test]
fn close_announces_the_state_then_the_reason() {
    let mut h = Harness::connected(Harness::config());
    h.clear();
    h.close();
    assert_eq!(
        h.lifecycle(),
        vec![
            &LifecycleEvent::StateChanged(ConnectionState::Disconnected),
            &LifecycleEvent::Disconnected(DisconnectReason::ClientClosed),
        ]
    );
}

#[test]
fn close_while_reconnecting_announces_the_state_then_the_reason() {
    let mut h = Harness::connected(Harness::config());
    h.server_close(None, "");
    h.clear();
    h.close();
    assert_eq!(
        h.lifecycle(),
        vec![
            &LifecycleEvent::StateChanged(ConnectionState::Disconnected),
            &LifecycleEvent::Disconnected(DisconnectReason::ClientClosed),
        ]
    );
    assert!(
        h.closes.is_empty(),
        "no connection to close during the backoff"
    );
}

#[test]
fn a_failed_first_attempt_announces_the_state_then_the_reason() {
    let mut h = Harness::new(Harness::config());
    h.connect();
    h.clear();
    h.input(Input::ConnectFailed { reason: "refused" });
    assert_eq!(
        h.lifecycle(),
        vec![
            &LifecycleEvent::StateChanged(ConnectionState::Disconnected),
            &LifecycleEvent::Disconnected(DisconnectReason::ConnectFailed("refused".into())),
        ]
    );
}

#[test]
fn close_before_connecting_emits_no_close_frame() {
    let mut h = Harness::new(Harness::config());
    h.close();
    assert!(h.closes.is_empty());
    assert!(h.core.is_closed());
    assert!(!h.log.iter().any(|o| matches!(o, Output::Open { .. })));
}

#[test]
fn retries_are_limited_when_configured() {
    let mut h = Harness::connected(Harness::config().backoff(noex_proto::Backoff {
        max_retries: Some(2),
        ..noex_proto::Backoff::default()
    }));
    h.server_close(None, "");
    for _ in 0..2 {
        let before = h.opens.len();
        while h.opens.len() == before {
            assert!(h.step());
        }
        h.input(Input::ConnectFailed { reason: "refused" });
    }
    assert!(matches!(
        h.disconnects().last(),
        Some(DisconnectReason::RetriesExhausted { attempts: 2, .. })
    ));
    assert_eq!(h.core.state(), ConnectionState::Disconnected);
    assert_eq!(h.opens.len(), 3);
    h.advance(Duration::from_secs(300));
    assert_eq!(h.opens.len(), 3);
}
