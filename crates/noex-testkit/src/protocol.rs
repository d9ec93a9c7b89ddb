//! The testkit's own wire handling: parsing client frames and writing server frames,
//! exactly as noex-server 0.1.4 does (`src/protocol/parser.ts`, `serializer.ts`).

use serde_json::{Map, Value};

use crate::json::obj;

/// Protocol version announced in the welcome frame.
pub(crate) const PROTOCOL_VERSION: &str = "1.0.0";

/// A parsed client frame.
#[derive(Debug)]
pub(crate) enum Parsed {
    /// A request: `id` (echoed back verbatim), `type` and the whole object.
    Request {
        id: Value,
        ty: String,
        body: Map<String, Value>,
    },
    /// A heartbeat answer, with the timestamp it carries.
    Pong(f64),
    /// Garbage: answered with an error carrying id 0.
    Failure {
        code: &'static str,
        message: &'static str,
    },
}

/// Parse one text frame from a client. Never panics.
pub(crate) fn parse(raw: &str) -> Parsed {
    let value: Value = match serde_json::from_str(raw) {
        Ok(v) => v,
        Err(_) => {
            return Parsed::Failure {
                code: "PARSE_ERROR",
                message: "Invalid JSON",
            }
        }
    };
    let Value::Object(body) = value else {
        return Parsed::Failure {
            code: "PARSE_ERROR",
            message: "Message must be a JSON object",
        };
    };
    let ty = match body.get("type") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => {
            return Parsed::Failure {
                code: "INVALID_REQUEST",
                message: "Message must include non-empty string \"type\"",
            }
        }
    };
    if ty == "pong" {
        return match body.get("timestamp") {
            Some(Value::Number(n)) => match n.as_f64() {
                Some(ts) if ts.is_finite() => Parsed::Pong(ts),
                _ => Parsed::Failure {
                    code: "INVALID_REQUEST",
                    message: "Pong must include finite numeric \"timestamp\"",
                },
            },
            _ => Parsed::Failure {
                code: "INVALID_REQUEST",
                message: "Pong must include finite numeric \"timestamp\"",
            },
        };
    }
    let id = match body.get("id") {
        Some(Value::Number(n)) if n.as_f64().is_some_and(f64::is_finite) => {
            Value::Number(n.clone())
        }
        _ => {
            return Parsed::Failure {
                code: "INVALID_REQUEST",
                message: "Request must include finite numeric \"id\"",
            }
        }
    };
    Parsed::Request { id, ty, body }
}

pub(crate) fn result(id: &Value, data: Value) -> String {
    obj([
        ("id", id.clone()),
        ("type", "result".into()),
        ("data", data),
    ])
    .to_string()
}

pub(crate) fn error(id: &Value, code: &str, message: &str, details: Option<&Value>) -> String {
    let mut m = Map::new();
    m.insert("id".into(), id.clone());
    m.insert("type".into(), "error".into());
    m.insert("code".into(), code.into());
    m.insert("message".into(), message.into());
    if let Some(d) = details {
        m.insert("details".into(), d.clone());
    }
    Value::Object(m).to_string()
}

pub(crate) fn push(subscription_id: &str, channel: &str, data: Value) -> String {
    obj([
        ("type", "push".into()),
        ("channel", channel.into()),
        ("subscriptionId", subscription_id.into()),
        ("data", data),
    ])
    .to_string()
}

pub(crate) fn welcome(requires_auth: bool) -> String {
    obj([
        ("type", "welcome".into()),
        ("version", PROTOCOL_VERSION.into()),
        ("serverTime", crate::json::now_ms().into()),
        ("requiresAuth", requires_auth.into()),
    ])
    .to_string()
}

pub(crate) fn ping(timestamp: i64) -> String {
    obj([("type", "ping".into()), ("timestamp", timestamp.into())]).to_string()
}

pub(crate) fn system(event: &str, fields: Map<String, Value>) -> String {
    let mut m = Map::new();
    m.insert("type".into(), "system".into());
    m.insert("event".into(), event.into());
    m.extend(fields);
    Value::Object(m).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(raw: &str) -> (&'static str, &'static str) {
        match parse(raw) {
            Parsed::Failure { code, message } => (code, message),
            other => panic!("expected failure, got {other:?}"),
        }
    }

    #[test]
    fn garbage_is_classified_like_the_real_server() {
        assert_eq!(failure("{not json"), ("PARSE_ERROR", "Invalid JSON"));
        assert_eq!(
            failure("[1,2]"),
            ("PARSE_ERROR", "Message must be a JSON object")
        );
        assert_eq!(
            failure("null"),
            ("PARSE_ERROR", "Message must be a JSON object")
        );
        assert_eq!(failure(r#"{"id":5}"#).0, "INVALID_REQUEST");
        assert_eq!(
            failure(r#"{"type":"x"}"#).1,
            "Request must include finite numeric \"id\""
        );
        assert_eq!(failure(r#"{"type":"pong"}"#).0, "INVALID_REQUEST");
        assert!(matches!(
            parse(r#"{"type":"pong","timestamp":1}"#),
            Parsed::Pong(ts) if ts == 1.0
        ));
        assert!(matches!(
            parse(r#"{"type":"a.b","id":1.5}"#),
            Parsed::Request { .. }
        ));
    }
}
