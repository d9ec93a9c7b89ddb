//! The embedded server against the SDK's table of request fields (`OpKind::fields` in
//! noex-proto, read from the real server's handlers): over a real WebSocket, every required
//! field left out is refused with `VALIDATION_ERROR` naming it, and a request with all the
//! required fields is never refused for a field the table calls optional or does not know.
//!
//! The server runs with built-in identity (so `identity.*` and `auth.*` answer), audit and
//! rules on, and the client is logged in as the superadmin: every operation is reachable,
//! none is skipped.

mod common;

use std::time::Duration;

use common::Client;
use noex_proto::ops::{FieldType, OpField, OpKind};
use noex_testkit::{AuthMode, TestServer};
use serde_json::{json, Map, Value};

const LIMIT: Duration = Duration::from_secs(60);

/// A value of the right type that passes the server's argument checks.
fn sample(field: &OpField) -> Value {
    match field.ty {
        FieldType::String => json!("x"),
        FieldType::Integer | FieldType::Number => json!(1),
        FieldType::Boolean => json!(true),
        FieldType::Object => json!({}),
        FieldType::Array => json!([]),
        // `Any`, and kinds added later: a string is accepted wherever any value is.
        _ => json!("x"),
    }
}

/// `{"type": op}` plus every required field but `without`.
fn request(kind: OpKind, without: Option<&str>) -> Value {
    let mut body = Map::new();
    body.insert("type".into(), json!(kind.name()));
    for f in kind.fields().iter().filter(|f| f.required) {
        if Some(f.name) != without {
            body.insert(f.name.into(), sample(f));
        }
    }
    Value::Object(body)
}

/// The field a `VALIDATION_ERROR` of the server's argument checks names
/// (`Missing or invalid "bucket": ...`, `Missing "key": ...`, `Invalid "data": ...`).
fn named_field(message: &str) -> Option<&str> {
    let rest = ["Missing or invalid \"", "Missing \"", "Invalid \""]
        .iter()
        .find_map(|p| message.strip_prefix(p))?;
    rest.split('"').next()
}

/// A server where every operation is reachable, and a client logged in as the superadmin.
async fn everything_on() -> (TestServer, Client) {
    let server = TestServer::builder()
        .auth(AuthMode::identity("s3cret"))
        .audit(true)
        .rules(true)
        .start()
        .expect("start");
    let mut c = Client::open(&server.url()).await;
    c.ok(json!({"type": "identity.loginWithSecret", "secret": "s3cret"}))
        .await;
    (server, c)
}

#[tokio::test]
async fn each_missing_required_field_is_a_validation_error() {
    tokio::time::timeout(LIMIT, async {
        let (_server, mut c) = everything_on().await;
        let mut probes = 0;
        let mut disagreements = Vec::new();
        for kind in OpKind::ALL {
            for f in kind.fields().iter().filter(|f| f.required) {
                let req = request(*kind, Some(f.name));
                let (answer, _) = c.request(req.clone()).await;
                let message = answer["message"].as_str().unwrap_or_default();
                let ok = answer["type"] == "error"
                    && answer["code"] == "VALIDATION_ERROR"
                    && named_field(message) == Some(f.name);
                if !ok {
                    disagreements.push(format!("{req} -> {answer}"));
                }
                probes += 1;
            }
        }
        assert!(
            disagreements.is_empty(),
            "the testkit does not refuse these as the table says:\n{}",
            disagreements.join("\n")
        );
        assert!(probes >= 90, "{probes}");
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn the_required_fields_are_enough() {
    tokio::time::timeout(LIMIT, async {
        let (_server, mut c) = everything_on().await;
        let mut disagreements = Vec::new();
        for kind in OpKind::ALL {
            let req = request(*kind, None);
            let (answer, _) = c.request(req.clone()).await;
            if matches!(kind, OpKind::AuthLogout | OpKind::IdentityLogout) {
                // The next probes need the session back.
                c.ok(json!({"type": "identity.loginWithSecret", "secret": "s3cret"}))
                    .await;
            }
            if answer["type"] == "result" {
                continue;
            }
            // Other refusals (NOT_FOUND, a bad bucket config, ...) are about the sample
            // values; a missing or invalid argument must be one that was sent.
            let message = answer["message"].as_str().unwrap_or_default();
            let code = answer["code"].as_str().unwrap_or_default();
            assert_ne!(code, "UNKNOWN_OPERATION", "{req} -> {answer}");
            // (A wrong token or password is refused; the session must stay.)
            assert_ne!(message, "Authentication required", "{req} -> {answer}");
            if code == "VALIDATION_ERROR" {
                if let Some(field) = named_field(message) {
                    if req.get(field).is_none() {
                        disagreements.push(format!("{req} -> {answer}"));
                    }
                }
            }
        }
        assert!(
            disagreements.is_empty(),
            "the testkit wants fields the table does not call required:\n{}",
            disagreements.join("\n")
        );
    })
    .await
    .expect("test timed out");
}
