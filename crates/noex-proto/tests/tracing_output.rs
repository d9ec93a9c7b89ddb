//! What the core logs through `tracing`: a span per connection attempt and per restore,
//! reconnect decisions at info, request failures at debug — and never a secret.

mod common;
mod support {
    pub(crate) mod capture;
}

use common::*;
use noex_proto::{ops, Auth, Config, ConnectionState, Secret, SubscriptionSpec};
use serde_json::json;
use std::time::Duration;
use support::capture::Capture;

const PASSWORD: &str = "pw-Zq81-never-logged";
const SESSION_TOKEN: &str = "tok-Xk42-never-logged";
const URL_PASSWORD: &str = "urlpw-never-logged";
/// A server message may echo what was sent: only the code is logged.
const SERVER_MESSAGE: &str = "no key msg-Wd55-never-logged";

fn credentials_config() -> Config {
    Config::new(format!(
        "ws://alice:{URL_PASSWORD}@test.invalid:1/ws?token={URL_PASSWORD}"
    ))
    .auth(Auth::Credentials {
        username: "alice".into(),
        password: Secret::new(PASSWORD),
    })
}

#[test]
fn a_credentials_login_and_a_reconnect_log_no_secret() {
    let capture = Capture::default();
    let mut h = Harness::new(credentials_config());
    tracing::subscriber::with_default(capture.clone(), || {
        h.connect();
        let sub = h.subscribe(SubscriptionSpec::query("all", None));
        h.open_and_welcome(true);
        let login = h.last_send().clone();
        assert_eq!(login.kind(), "identity.login");
        h.answer(
            login.id().unwrap(),
            json!({"token": SESSION_TOKEN, "expiresAt": 1, "user": {"id": "u1", "password": PASSWORD}}),
        );
        h.answer_subscribes(json!([]));
        assert_eq!(h.core.state(), ConnectionState::Connected);
        // A request that fails with a server error: logged at debug, without its message.
        let get = h.request(ops::store::get("users", json!("u1")));
        h.answer_error(get.0, "NOT_FOUND", SERVER_MESSAGE);

        // The connection drops: the reconnect decision is logged at info.
        h.server_close(Some(1006), "abnormal");
        let opens = h.opens.len();
        while h.opens.len() == opens {
            h.advance(Duration::from_millis(100));
        }
        h.opened();
        h.welcome(true);
        let resume = h.last_send().clone();
        assert_eq!(resume.kind(), "auth.login");
        assert_eq!(resume.json["token"], SESSION_TOKEN);
        h.answer(
            resume.id().unwrap(),
            json!({"userId": "u1", "token": SESSION_TOKEN}),
        );
        h.answer_subscribes(json!([]));
        assert_eq!(h.core.state(), ConnectionState::Connected);
        assert!(h.core.is_subscription_active(sub));
    });

    let text = capture.text();
    for secret in [PASSWORD, SESSION_TOKEN, URL_PASSWORD, SERVER_MESSAGE] {
        assert!(!text.contains(secret), "{secret} logged:\n{text}");
    }
    // The events the core hands out do not show them in `Debug` either.
    let events = format!("{:?}", h.events);
    for secret in [PASSWORD, SESSION_TOKEN] {
        assert!(!events.contains(secret), "{secret} in {events}");
    }

    let lines = capture.lines();
    let find = |pred: &dyn Fn(&String) -> bool| lines.iter().find(|l| pred(l)).cloned();
    // One span per connection attempt, with the URL without its credentials.
    let spans: Vec<_> = lines
        .iter()
        .filter(|l| l.starts_with("SPAN#") && l.contains(" noex_connection"))
        .collect();
    assert_eq!(spans.len(), 2, "{text}");
    assert!(
        spans[0].contains("url=ws://<redacted>@test.invalid:1/ws?<redacted>"),
        "{}",
        spans[0]
    );
    assert!(spans[0].contains("connection=1"), "{}", spans[0]);
    // The reconnect decision, at info, with the attempt, the delay and the reason.
    let reconnecting = find(&|l| l.starts_with("EVENT INFO") && l.contains("message=reconnecting"))
        .unwrap_or_else(|| panic!("no reconnect at info:\n{text}"));
    assert!(reconnecting.contains("attempt=1"), "{reconnecting}");
    assert!(reconnecting.contains("delay_ms="), "{reconnecting}");
    assert!(reconnecting.contains("1006"), "{reconnecting}");
    // A restore span with the number of subscriptions, and how long it took at its end.
    let restore = find(&|l| l.starts_with("SPAN#") && l.contains(" noex_restore"))
        .unwrap_or_else(|| panic!("no restore span:\n{text}"));
    assert!(restore.contains("subscriptions=1"), "{restore}");
    let restore_id = restore
        .split_whitespace()
        .next()
        .and_then(|s| s.strip_prefix("SPAN#"))
        .unwrap()
        .to_owned();
    assert!(
        find(&|l| l.starts_with(&format!("RECORD#{restore_id} elapsed_ms="))).is_some(),
        "{text}"
    );
    assert!(
        find(
            &|l| l.starts_with(&format!("EVENT INFO parent#{restore_id}"))
                && l.contains("subscriptions restored")
        )
        .is_some(),
        "{text}"
    );
    // The failed request, at debug, with its id, operation and error kind.
    let failed = find(&|l| l.contains("message=request failed"))
        .unwrap_or_else(|| panic!("no request failure:\n{text}"));
    assert!(failed.starts_with("EVENT DEBUG"), "{failed}");
    assert!(failed.contains("op=store.get"), "{failed}");
    assert!(failed.contains("error=server"), "{failed}");
    assert!(
        failed.contains("code=Some(\"NOT_FOUND\")") || failed.contains("code=NOT_FOUND"),
        "{failed}"
    );
}

#[test]
fn giving_up_is_logged_at_info_with_why() {
    let capture = Capture::default();
    tracing::subscriber::with_default(capture.clone(), || {
        let mut h = Harness::connected(Harness::config());
        h.server_close(Some(4003), "too_many_connections");
    });
    let text = capture.text();
    assert!(
        capture.lines().iter().any(|l| l.starts_with("EVENT INFO")
            && l.contains("not reconnecting")
            && l.contains("permanent close code")),
        "{text}"
    );
}
