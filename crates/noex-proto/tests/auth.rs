//! Behaviour 6: auth sequencing. Token → auth.login; credentials → identity.login, the
//! returned session token presented with auth.login on the next connection, with a fallback
//! to the credentials; a failed login is surfaced.

mod common;

use common::*;
use noex_proto::{
    ops, Auth, ConnectionState, CoreError, DisconnectReason, ErrorCode, LifecycleEvent,
    RequestError, Secret,
};
use serde_json::json;
use std::time::Duration;

fn token_config() -> noex_proto::Config {
    Harness::config().auth(Auth::Token(Secret::new("reader-token")))
}

fn credentials_config() -> noex_proto::Config {
    Harness::config().auth(Auth::Credentials {
        username: "alice".into(),
        password: Secret::new("alice-pass-123"),
    })
}

fn login_answer(token: &str) -> serde_json::Value {
    json!({"token": token, "expiresAt": 1795825472006_u64,
           "user": {"id": "a69e", "username": "alice", "roles": ["doc-reader"]}})
}

#[test]
fn token_login_after_welcome_that_requires_auth() {
    let mut h = Harness::new(token_config());
    h.connect();
    h.open_and_welcome(true);
    let login = h.last_send().clone();
    assert_eq!(
        login.json,
        json!({"id": login.id().unwrap(), "type": "auth.login", "token": "reader-token"})
    );
    // Not connected until the login is answered; requests wait for it (queued by default)
    // and go out only after the login.
    assert_eq!(h.core.state(), ConnectionState::Connecting);
    let waiting = h.request(ops::store::all("x"));
    assert_eq!(h.times_sent(waiting.0), 0);
    h.answer(
        login.id().unwrap(),
        json!({"userId": "reader-1", "roles": ["reader"], "expiresAt": null}),
    );
    assert_eq!(h.core.state(), ConnectionState::Connected);
    assert_eq!(h.times_sent(waiting.0), 1);
    assert!(h.sent_request(waiting.0).unwrap().seq > login.seq);
    let authenticated: Vec<_> = h
        .lifecycle()
        .into_iter()
        .filter_map(|l| match l {
            LifecycleEvent::Authenticated(p) => Some(value(p)),
            _ => None,
        })
        .collect();
    assert_eq!(
        authenticated,
        vec![json!({"userId": "reader-1", "roles": ["reader"], "expiresAt": null})]
    );
    // The login is internal: no response event for it.
    assert!(h
        .responses(noex_proto::RequestId(login.id().unwrap()))
        .is_empty());
}

#[test]
fn requests_during_the_login_fail_at_once_when_queueing_is_off() {
    let mut h = Harness::new(token_config().queue_while_disconnected(false));
    h.connect();
    h.open_and_welcome(true);
    assert_eq!(
        h.try_request(ops::store::all("x")),
        Err(RequestError::Disconnected {
            delivery: noex_proto::Delivery::NotSent
        })
    );
    assert_eq!(h.sends.len(), 1, "only the login went out");
    assert_eq!(h.core.counters().requests_disconnected, 1);
}

#[test]
fn no_login_when_the_server_does_not_require_it() {
    let mut h = Harness::new(token_config());
    h.connect();
    h.open_and_welcome(false);
    assert!(h.sends.is_empty());
    assert_eq!(h.core.state(), ConnectionState::Connected);
}

#[test]
fn credentials_login_then_session_resume_on_the_next_connection() {
    let mut h = Harness::new(credentials_config());
    h.connect();
    h.open_and_welcome(true);
    let login = h.last_send().clone();
    assert_eq!(
        login.json,
        json!({"id": login.id().unwrap(), "type": "identity.login",
               "username": "alice", "password": "alice-pass-123"})
    );
    h.answer(login.id().unwrap(), login_answer("tok-1"));
    assert!(h.core.has_session_token());
    assert_eq!(h.core.state(), ConnectionState::Connected);

    h.server_close(Some(1006), "");
    h.reopen(true);
    let resume = h.last_send().clone();
    assert_eq!(resume.connection, h.conn());
    assert_eq!(
        resume.json,
        json!({"id": resume.id().unwrap(), "type": "auth.login", "token": "tok-1"})
    );
    h.answer(
        resume.id().unwrap(),
        json!({"userId": "a69e", "roles": ["doc-reader"], "expiresAt": 1795825472006_u64}),
    );
    assert_eq!(h.core.state(), ConnectionState::Connected);
    // No identity.login on the second connection.
    assert!(h
        .sends_on(h.conn())
        .iter()
        .all(|s| s.kind() != "identity.login"));
    assert!(h.core.has_session_token());
}

#[test]
fn refused_session_falls_back_to_credentials_quietly() {
    let mut h = Harness::new(credentials_config());
    h.connect();
    h.open_and_welcome(true);
    h.answer(h.last_send().id().unwrap(), login_answer("tok-1"));
    h.server_close(None, "");
    h.reopen(true);
    let resume = h.last_send().id().unwrap();
    h.clear();
    h.answer_error(resume, "UNAUTHORIZED", "Invalid token");
    let fallback = h.last_send().clone();
    assert_eq!(fallback.kind(), "identity.login");
    assert_eq!(fallback.json["username"], "alice");
    assert!(h.core_errors().is_empty(), "{:?}", h.core_errors());
    h.answer(fallback.id().unwrap(), login_answer("tok-2"));
    assert_eq!(h.core.state(), ConnectionState::Connected);
    // The new token is the one presented next time.
    h.server_close(None, "");
    h.reopen(true);
    assert_eq!(h.last_send().json["token"], "tok-2");
}

#[test]
fn refused_token_is_surfaced_and_final() {
    let mut h = Harness::new(token_config());
    h.connect();
    h.open_and_welcome(true);
    let conn = h.conn();
    h.answer_error(h.last_send().id().unwrap(), "UNAUTHORIZED", "Invalid token");
    let errors = h.core_errors();
    assert!(
        matches!(
            errors[..],
            [CoreError::Login(RequestError::Server(ref e))] if e.code == ErrorCode::Unauthorized
        ),
        "{errors:?}"
    );
    assert_eq!(h.closes, vec![(conn, 1000, "auth_rejected".to_owned())]);
    assert_eq!(
        h.disconnects(),
        vec![&DisconnectReason::AuthRejected {
            code: ErrorCode::Unauthorized,
            message: "Invalid token".into(),
        }]
    );
    assert_eq!(h.core.state(), ConnectionState::Disconnected);
    h.advance(Duration::from_secs(300));
    assert_eq!(h.opens.len(), 1);
}

#[test]
fn refused_credentials_after_a_reconnect_are_final_too() {
    let mut h = Harness::new(credentials_config());
    h.connect();
    h.open_and_welcome(true);
    h.answer(h.last_send().id().unwrap(), login_answer("tok-1"));
    h.server_close(None, "");
    h.reopen(true);
    h.answer_error(h.last_send().id().unwrap(), "UNAUTHORIZED", "Invalid token");
    h.answer_error(
        h.last_send().id().unwrap(),
        "UNAUTHORIZED",
        "Invalid credentials",
    );
    assert!(h
        .core_errors()
        .iter()
        .any(|e| matches!(e, CoreError::Login(_))));
    assert_eq!(h.core.state(), ConnectionState::Disconnected);
    assert!(!h.core.has_session_token());
}

#[test]
fn login_timeout_is_surfaced_and_retried_later() {
    let mut h = Harness::new(token_config().request_timeout(ms(2_000)));
    h.connect();
    h.open_and_welcome(true);
    h.answer(h.last_send().id().unwrap(), json!({"userId": "u"}));
    h.server_close(None, "");
    h.reopen(true);
    h.clear();
    h.advance(ms(2_000));
    assert!(matches!(
        h.core_errors()[..],
        [CoreError::Login(RequestError::Timeout { .. })]
    ));
    assert_eq!(h.disconnects(), vec![&DisconnectReason::LoginFailed]);
    assert_eq!(h.core.state(), ConnectionState::Reconnecting);
    h.reopen(true);
    assert_eq!(h.last_send().kind(), "auth.login");
}

#[test]
fn the_callers_own_login_is_resumed_then_made_again_with_its_credentials() {
    let mut h = Harness::connected(Harness::config());
    let id = h.request(ops::identity::login(
        "alice",
        &Secret::new("alice-pass-123"),
    ));
    h.answer(id.0, login_answer("tok-own"));
    assert!(h.core.has_session_token());
    h.server_close(None, "");
    h.reopen(true);
    let resume = h.last_send().clone();
    assert_eq!(resume.json["type"], "auth.login");
    assert_eq!(resume.json["token"], "tok-own");
    h.answer_error(resume.id().unwrap(), "UNAUTHORIZED", "Invalid token");
    // The caller's own login gets the care a configured one gets: made again.
    let login = h.last_send().clone();
    assert_eq!(login.json["type"], "identity.login");
    assert_eq!(login.json["username"], "alice");
    assert_eq!(login.json["password"], "alice-pass-123");
    h.answer(login.id().unwrap(), login_answer("tok-new"));
    assert_eq!(h.core.state(), ConnectionState::Connected);
    assert!(h.core_errors().is_empty(), "{:?}", h.core_errors());
}

#[test]
fn the_callers_own_token_is_resumed_and_a_refusal_is_reported() {
    let mut h = Harness::connected(Harness::config());
    let id = h.request(ops::auth::login(&Secret::new("tok-own")));
    h.answer(id.0, json!({"userId": "u", "roles": [], "expiresAt": null}));
    assert!(h.core.has_session_token());
    h.server_close(None, "");
    h.reopen(true);
    let resume = h.last_send().clone();
    assert_eq!(resume.json["type"], "auth.login");
    assert_eq!(resume.json["token"], "tok-own");
    h.answer_error(resume.id().unwrap(), "UNAUTHORIZED", "Invalid token");
    // Nothing to fall back on: reported, and the connection carries on unauthenticated.
    assert!(h
        .core_errors()
        .iter()
        .any(|e| matches!(e, CoreError::SessionResume(_))));
    assert!(!h.core.has_session_token());
    assert_eq!(h.core.state(), ConnectionState::Connected);
}

#[test]
fn logout_and_revocation_forget_the_session() {
    let mut h = Harness::connected(Harness::config());
    let id = h.request(ops::auth::login(&Secret::new("admin-token")));
    h.answer(id.0, json!({"userId": "admin-1"}));
    assert!(h.core.has_session_token());
    let out = h.request(ops::auth::logout());
    h.answer(out.0, json!({"loggedOut": true}));
    assert!(!h.core.has_session_token());

    let id = h.request(ops::identity::login_with_secret(&Secret::new("s")));
    h.answer(id.0, login_answer("tok-3"));
    assert!(h.core.has_session_token());
    h.frame(r#"{"type":"system","event":"session_revoked","reason":"x"}"#);
    assert!(!h.core.has_session_token());
}

#[test]
fn secrets_do_not_leak_into_event_debug_output() {
    let mut h = Harness::new(credentials_config());
    h.connect();
    h.open_and_welcome(true);
    h.answer(h.last_send().id().unwrap(), login_answer("tok-secret-xyz"));
    let debug = format!("{:?} {:?}", h.events, h.core);
    assert!(!debug.contains("tok-secret-xyz"), "token leaked");
    assert!(!debug.contains("alice-pass-123"), "password leaked");
}
