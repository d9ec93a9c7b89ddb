//! Sessions over time: renewal before `expiresAt`, a new login when the server says the
//! session expired (the refused requests sent again, never reported), a configured token
//! that cannot be renewed, the token provider, and the caller's own logins.

mod common;

use common::*;
use noex_proto::{
    ops, Auth, ConnectionState, CoreError, Delivery, DisconnectReason, Event, LifecycleEvent,
    Liveness, Output, RequestError, Secret, SubscriptionEvent, SubscriptionSpec, TokenFetchId,
};
use serde_json::json;
use std::time::Duration;

/// The `serverTime` of the harness's `welcome`.
const SERVER_T0: i64 = 1_795_739_063_895;

fn credentials() -> noex_proto::Config {
    Harness::config()
        .auth(Auth::Credentials {
            username: "alice".into(),
            password: Secret::new("alice-pass-123"),
        })
        .liveness(Liveness::Off)
}

/// A login answer whose session lasts `ttl` from now, on the server's clock (which reads
/// `SERVER_T0` at the welcome, `since_welcome` ago).
fn session(token: &str, since_welcome: Duration, ttl: Duration) -> serde_json::Value {
    let expires = SERVER_T0 + (since_welcome + ttl).as_millis() as i64;
    json!({"token": token, "expiresAt": expires,
           "user": {"id": "u1", "username": "alice", "roles": ["writer"]}})
}

/// A connected core logged in with credentials, its session lasting `ttl`.
fn logged_in(ttl: Duration) -> Harness {
    let mut h = Harness::new(credentials());
    h.connect();
    h.open_and_welcome(true);
    let login = h.last_send().clone();
    assert_eq!(login.kind(), "identity.login");
    h.answer(login.id().unwrap(), session("tok-1", Duration::ZERO, ttl));
    assert_eq!(h.core.state(), ConnectionState::Connected);
    h
}

fn renewed(h: &Harness) -> usize {
    h.count_lifecycle(|e| matches!(e, LifecycleEvent::SessionRenewed { .. }))
}

#[test]
fn the_session_is_renewed_at_three_quarters_of_its_life_again_and_again() {
    let mut h = logged_in(ms(2_000));
    let welcome_at = h.now();
    h.advance(ms(1_499));
    assert!(h
        .sends
        .iter()
        .all(|s| s.kind() != "identity.refreshSession"));
    h.advance(ms(1));
    let refresh = h.last_send().clone();
    assert_eq!(refresh.kind(), "identity.refreshSession");
    h.answer(
        refresh.id().unwrap(),
        session("tok-2", h.now() - welcome_at, ms(2_000)),
    );
    assert_eq!(renewed(&h), 1);
    assert!(h.lifecycle().contains(&&LifecycleEvent::SessionRenewed {
        expires_in: Some(ms(2_000))
    }));
    // Four more lifetimes: renewed each time, never a request refused.
    for n in 0..4u64 {
        h.advance(ms(1_500));
        let refresh = h.last_send().clone();
        assert_eq!(refresh.kind(), "identity.refreshSession", "renewal {n}");
        h.answer(
            refresh.id().unwrap(),
            session(&format!("tok-{}", n + 3), h.now() - welcome_at, ms(2_000)),
        );
    }
    assert_eq!(h.core.counters().sessions_renewed, 5);
    // The last token is the one resumed on the next connection.
    h.server_close(None, "");
    h.reopen(true);
    let resume = h.last_send().clone();
    assert_eq!(resume.kind(), "auth.login");
    assert_eq!(resume.json["token"], "tok-6");
}

#[test]
fn the_servers_clock_places_expiry_not_the_callers() {
    // The server's clock is an hour ahead of whatever the caller's reads: only the
    // distance from its `serverTime` counts.
    let mut h = Harness::new(credentials());
    h.connect();
    h.opened();
    h.frame_json(json!({"type": "welcome", "version": "1.0.0",
                        "serverTime": SERVER_T0 + 3_600_000, "requiresAuth": true}));
    let login = h.last_send().clone();
    h.answer(
        login.id().unwrap(),
        json!({"token": "t", "expiresAt": SERVER_T0 + 3_600_000 + 8_000, "user": {}}),
    );
    h.advance(ms(5_999));
    assert!(h
        .sends
        .iter()
        .all(|s| s.kind() != "identity.refreshSession"));
    h.advance(ms(1));
    assert_eq!(h.last_send().kind(), "identity.refreshSession");
}

#[test]
fn a_resumed_session_is_renewed_by_a_new_login() {
    // A session resumed with `auth.login` cannot be refreshed on the server ("No active
    // session to refresh"): the renewal is a new login.
    let mut h = logged_in(ms(60_000));
    h.server_close(None, "");
    h.reopen(true);
    let welcome_at = h.now();
    let resume = h.last_send().clone();
    assert_eq!(resume.kind(), "auth.login");
    let expires = SERVER_T0 + 20_000;
    h.answer(
        resume.id().unwrap(),
        json!({"userId": "u1", "roles": ["writer"], "expiresAt": expires}),
    );
    assert_eq!(h.core.state(), ConnectionState::Connected);
    h.advance(ms(15_000));
    let renewal = h.last_send().clone();
    assert_eq!(renewal.kind(), "identity.login");
    h.answer(
        renewal.id().unwrap(),
        session("tok-9", h.now() - welcome_at, ms(60_000)),
    );
    assert_eq!(renewed(&h), 1);
    // Made by an identity login on this link: the next renewal refreshes it.
    h.advance(ms(45_000));
    assert_eq!(h.last_send().kind(), "identity.refreshSession");
}

#[test]
fn requests_refused_for_an_expired_session_go_out_again_after_a_new_login() {
    let mut h = logged_in(ms(3_600_000));
    let a = h.request(ops::store::insert("notes", json!({"n": 1})));
    let b = h.request(ops::store::get("notes", json!("k")));
    h.written_all();
    // The session ran out on the server (the caller's clock slept): the first request
    // is refused as expired, the next one as unauthenticated. Neither ran.
    h.answer_error(a.0, "UNAUTHORIZED", "Session expired");
    assert!(h.responses(a).is_empty(), "held, not reported");
    let login = h.last_send().clone();
    assert_eq!(login.kind(), "identity.login");
    assert_eq!(login.json["password"], "alice-pass-123");
    h.answer_error(b.0, "UNAUTHORIZED", "Authentication required");
    assert!(h.responses(b).is_empty(), "held, not reported");
    // A request made meanwhile waits for the new login, after the refused ones.
    let c = h.request(ops::store::count("notes", None));
    assert_eq!(h.times_sent(c.0), 0);
    assert_eq!(h.core.state(), ConnectionState::Connected);
    h.answer(login.id().unwrap(), session("tok-2", ms(0), ms(3_600_000)));
    let order: Vec<u64> = h
        .sends
        .iter()
        .rev()
        .take(3)
        .filter_map(|s| s.id())
        .collect();
    assert_eq!(
        order,
        vec![c.0, b.0, a.0],
        "refused first, in order, then the rest"
    );
    for id in [a, b, c] {
        assert_eq!(h.times_sent(id.0), if id == c { 1 } else { 2 });
    }
    h.answer(a.0, json!({"n": 1}));
    h.answer(b.0, json!(null));
    h.answer(c.0, json!(1));
    for id in [a, b, c] {
        assert!(h.response(id).is_ok());
    }
    let counters = h.core.counters();
    assert_eq!(counters.sessions_expired, 1);
    assert_eq!(counters.sessions_renewed, 1);
    assert_eq!(counters.requests_reauthorized, 2);
    assert_eq!(counters.requests_issued, counters.requests_ended());
    assert_eq!(
        h.count_lifecycle(|e| *e == LifecycleEvent::SessionExpired),
        1
    );
}

#[test]
fn a_held_request_that_times_out_was_not_sent() {
    // The refused copy never ran: a request whose deadline passes while it waits for
    // the new login reports "not sent".
    let mut h = logged_in(ms(3_600_000));
    let a = h.request_with(
        ops::store::insert("notes", json!({"n": 1})),
        noex_proto::RequestOptions::default().timeout(ms(1_000)),
    );
    h.written_all();
    h.answer_error(a.0, "UNAUTHORIZED", "Session expired");
    h.advance(ms(1_000));
    assert_eq!(
        h.error_of(a),
        &RequestError::Timeout {
            delivery: Delivery::NotSent
        }
    );
    assert!(!h.error_of(a).may_have_been_applied());
}

#[test]
fn a_request_refused_twice_is_reported() {
    let mut h = logged_in(ms(3_600_000));
    let a = h.request(ops::store::all("notes"));
    h.answer_error(a.0, "UNAUTHORIZED", "Session expired");
    let login = h.last_send().clone();
    h.answer(login.id().unwrap(), session("tok-2", ms(0), ms(3_600_000)));
    h.answer_error(a.0, "UNAUTHORIZED", "Authentication required");
    let RequestError::Server(e) = h.error_of(a) else {
        panic!("{:?}", h.error_of(a))
    };
    assert_eq!(e.message, "Authentication required");
}

#[test]
fn other_refusals_are_reported_at_once() {
    let mut h = logged_in(ms(3_600_000));
    let a = h.request(ops::store::all("notes"));
    h.answer_error(a.0, "FORBIDDEN", "No access to store.all on notes");
    assert!(matches!(h.error_of(a), RequestError::Server(_)));
    // A login's own refusal is the caller's answer: it bypasses the session check.
    let b = h.request(ops::identity::login("bob", &Secret::new("wrong-password")));
    h.answer_error(b.0, "UNAUTHORIZED", "Authentication required");
    assert!(matches!(h.error_of(b), RequestError::Server(_)));
    assert_eq!(h.core.counters().sessions_expired, 0);
}

#[test]
fn credentials_refused_on_the_new_login_end_the_held_requests_and_the_client() {
    let mut h = logged_in(ms(3_600_000));
    let sub = h.subscribe(SubscriptionSpec::rules("order.*"));
    h.answer_subscribes(json!(null));
    let a = h.request(ops::store::all("notes"));
    h.answer_error(a.0, "UNAUTHORIZED", "Session expired");
    let login = h.last_send().clone();
    h.answer_error(login.id().unwrap(), "UNAUTHORIZED", "Invalid credentials");
    let RequestError::Server(e) = h.error_of(a) else {
        panic!("{:?}", h.error_of(a))
    };
    assert_eq!(e.message, "Session expired");
    assert_eq!(h.core.state(), ConnectionState::Disconnected);
    assert!(h.sub_events().iter().any(|e| matches!(e,
        SubscriptionEvent::Failed { id, error: RequestError::GaveUp(DisconnectReason::AuthRejected { .. }) }
            if *id == sub)));
}

#[test]
fn after_the_callers_logout_an_unauthenticated_refusal_is_its_answer() {
    let mut h = logged_in(ms(3_600_000));
    let out = h.request(ops::identity::logout());
    h.answer(out.0, json!({"loggedOut": true}));
    let a = h.request(ops::store::all("notes"));
    h.answer_error(a.0, "UNAUTHORIZED", "Authentication required");
    assert!(matches!(h.error_of(a), RequestError::Server(_)));
    assert!(
        h.sends
            .iter()
            .filter(|s| s.kind() == "identity.login")
            .count()
            == 1
    );
}

#[test]
fn a_subscribe_refused_for_an_expired_session_is_made_after_the_new_login() {
    let mut h = logged_in(ms(3_600_000));
    let sub = h.subscribe(SubscriptionSpec::query("all-notes", None));
    let subscribe = h.last_send().clone();
    h.answer_error(subscribe.id().unwrap(), "UNAUTHORIZED", "Session expired");
    assert!(h.sub_events().is_empty());
    let login = h.last_send().clone();
    assert_eq!(login.kind(), "identity.login");
    h.answer(login.id().unwrap(), session("tok-2", ms(0), ms(3_600_000)));
    assert_eq!(h.last_send().kind(), "store.subscribe");
    h.answer_subscribes(json!([]));
    assert!(h.sub_events().iter().any(|e| matches!(e,
        SubscriptionEvent::Ready { id, .. } if *id == sub)));
}

#[test]
fn a_renewal_refused_becomes_a_new_login() {
    let mut h = logged_in(ms(4_000));
    h.advance(ms(3_000));
    let refresh = h.last_send().clone();
    assert_eq!(refresh.kind(), "identity.refreshSession");
    h.answer_error(refresh.id().unwrap(), "UNAUTHORIZED", "Session expired");
    let login = h.last_send().clone();
    assert_eq!(login.kind(), "identity.login");
    h.answer(login.id().unwrap(), session("tok-2", ms(3_000), ms(4_000)));
    assert_eq!(renewed(&h), 1);
    assert_eq!(h.core.counters().sessions_expired, 1);
}

#[test]
fn a_configured_token_whose_session_expires_ends_the_client_saying_so() {
    let config = Harness::config()
        .auth(Auth::Token(Secret::new("jwt-1")))
        .liveness(Liveness::Off);
    let mut h = Harness::new(config);
    h.connect();
    h.open_and_welcome(true);
    let login = h.last_send().clone();
    h.answer(
        login.id().unwrap(),
        json!({"userId": "u", "roles": [], "expiresAt": SERVER_T0 + 1_000}),
    );
    let sub = h.subscribe(SubscriptionSpec::rules("a.*"));
    h.answer_subscribes(json!(null));
    h.advance(ms(2_000));
    let a = h.request(ops::store::all("notes"));
    h.answer_error(a.0, "UNAUTHORIZED", "Session expired");
    let RequestError::Server(e) = h.error_of(a) else {
        panic!("{:?}", h.error_of(a))
    };
    assert_eq!(e.message, "Session expired");
    let expired = DisconnectReason::SessionExpired {
        message: "Session expired".into(),
    };
    assert_eq!(h.disconnects(), vec![&expired]);
    assert_eq!(h.core.state(), ConnectionState::Disconnected);
    assert!(h.sub_events().iter().any(|e| matches!(e,
        SubscriptionEvent::Failed { id, error: RequestError::GaveUp(r) } if *id == sub && *r == expired)));
    assert!(expired.to_string().contains("expired"));
}

#[test]
fn a_configured_token_refused_as_expired_on_reconnect_says_so() {
    let config = Harness::config()
        .auth(Auth::Token(Secret::new("jwt-1")))
        .liveness(Liveness::Off);
    let mut h = Harness::new(config);
    h.connect();
    h.open_and_welcome(true);
    let login = h.last_send().clone();
    h.answer(
        login.id().unwrap(),
        json!({"userId": "u", "roles": [], "expiresAt": null}),
    );
    h.server_close(None, "");
    h.reopen(true);
    let login = h.last_send().clone();
    h.answer_error(login.id().unwrap(), "UNAUTHORIZED", "Token has expired");
    assert_eq!(
        h.disconnects().last(),
        Some(&&DisconnectReason::SessionExpired {
            message: "Token has expired".into()
        })
    );
    assert_eq!(h.core.state(), ConnectionState::Disconnected);
}

/// The token requests the core made, in order.
fn fetches(h: &Harness) -> Vec<(TokenFetchId, bool)> {
    h.log
        .iter()
        .filter_map(|o| match o {
            Output::FetchToken { id, refresh } => Some((*id, *refresh)),
            _ => None,
        })
        .collect()
}

fn provider() -> noex_proto::Config {
    Harness::config()
        .auth(Auth::Provider)
        .liveness(Liveness::Off)
}

#[test]
fn the_token_provider_is_asked_on_connect_and_again_with_refresh_when_refused() {
    let mut h = Harness::new(provider());
    h.connect();
    h.open_and_welcome(true);
    let asked = fetches(&h);
    assert_eq!(asked.len(), 1);
    assert!(!asked[0].1, "a cached token will do at first");
    let now = h.now();
    h.core
        .provide_token(now, asked[0].0, Ok(Secret::new("stale")));
    h.drain();
    let login = h.last_send().clone();
    assert_eq!(login.json["token"], "stale");
    h.answer_error(login.id().unwrap(), "UNAUTHORIZED", "Invalid token");
    let asked = fetches(&h);
    assert_eq!(asked.len(), 2);
    assert!(asked[1].1, "refresh asked after a refusal");
    // An answer to the first request, late, is ignored.
    h.core
        .provide_token(now, asked[0].0, Ok(Secret::new("late")));
    h.core
        .provide_token(now, asked[1].0, Ok(Secret::new("fresh")));
    h.drain();
    let login = h.last_send().clone();
    assert_eq!(login.json["token"], "fresh");
    h.answer(
        login.id().unwrap(),
        json!({"userId": "u", "roles": [], "expiresAt": SERVER_T0 + 8_000}),
    );
    assert_eq!(h.core.state(), ConnectionState::Connected);
    assert_eq!(
        h.count_lifecycle(|e| *e == LifecycleEvent::TokenRefreshed),
        1
    );
    // Before that session expires the provider is asked for a new token.
    h.advance(ms(6_000));
    let asked = fetches(&h);
    assert_eq!(asked.len(), 3);
    assert!(asked[2].1);
    let now = h.now();
    h.core
        .provide_token(now, asked[2].0, Ok(Secret::new("next")));
    h.drain();
    let login = h.last_send().clone();
    assert_eq!(login.json["token"], "next");
    h.answer(
        login.id().unwrap(),
        json!({"userId": "u", "roles": [], "expiresAt": SERVER_T0 + 16_000}),
    );
    assert_eq!(renewed(&h), 1);
    assert_eq!(h.core.counters().tokens_fetched, 3);
    let debug = format!("{:?} {:?}", h.log, h.core);
    for token in ["stale", "fresh", "next"] {
        assert!(!debug.contains(&format!("\"{token}\"")), "{token} leaked");
    }
}

#[test]
fn a_failing_or_silent_token_provider_is_a_failed_login_retried_later() {
    let mut h = Harness::new(provider().retry_initial_connect(true));
    h.connect();
    h.open_and_welcome(true);
    let (id, _) = fetches(&h)[0];
    let now = h.now();
    h.core
        .provide_token(now, id, Err("the identity provider is down".into()));
    h.drain();
    assert!(h
        .core_errors()
        .iter()
        .any(|e| matches!(e, CoreError::TokenProvider(m) if m.contains("down"))));
    assert_eq!(h.disconnects(), vec![&DisconnectReason::LoginFailed]);
    // Next connection: the provider never answers; the request timeout ends the wait.
    h.reopen(true);
    assert_eq!(fetches(&h).len(), 2);
    h.advance(Duration::from_secs(10));
    assert_eq!(h.disconnects().len(), 2);
    assert_eq!(h.disconnects()[1], &DisconnectReason::LoginFailed);
    assert_eq!(h.core.state(), ConnectionState::Connecting);
}

#[test]
fn the_callers_own_login_is_renewed_and_made_again_when_it_expires() {
    let mut h = Harness::connected(Harness::config().liveness(Liveness::Off));
    let welcome_at = h.now();
    let id = h.request(ops::identity::login("carol", &Secret::new("carol-pass-1")));
    h.answer(id.0, session("own-1", ms(0), ms(8_000)));
    h.advance(ms(6_000));
    let refresh = h.last_send().clone();
    assert_eq!(refresh.kind(), "identity.refreshSession");
    h.answer_error(refresh.id().unwrap(), "UNAUTHORIZED", "Session expired");
    let login = h.last_send().clone();
    assert_eq!(login.kind(), "identity.login");
    assert_eq!(login.json["username"], "carol");
    h.answer(
        login.id().unwrap(),
        session("own-2", h.now() - welcome_at, ms(8_000)),
    );
    assert_eq!(renewed(&h), 1);
    assert!(h.events.iter().all(|e| !matches!(
        e,
        Event::Response {
            result: Err(RequestError::Server(_)),
            ..
        }
    )));
}
