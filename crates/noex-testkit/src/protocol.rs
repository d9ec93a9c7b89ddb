//! The testkit's own wire handling: parsing client frames and writing server frames,
//! exactly as noex-server 0.1.4 does (`src/protocol/parser.ts`, `serializer.ts`).

use serde_json::{Map, Value};

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

/// A frame's JSON object with its members in the order given: the real server writes
/// each kind of frame's members in a fixed order (`JSON.stringify({ id, type: 'result',
/// data })`), which a `serde_json::Map` (sorted by key) would not keep.
fn ordered<'a>(members: impl IntoIterator<Item = (&'a str, &'a Value)>) -> String {
    let mut out = Vec::with_capacity(64);
    out.push(b'{');
    for (i, (key, value)) in members.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // Writing a `&str` or a `Value` into a `Vec` cannot fail.
        let _ = serde_json::to_writer(&mut out, key);
        out.push(b':');
        let _ = serde_json::to_writer(&mut out, value);
    }
    out.push(b'}');
    // Keys are `&str`, values are written by serde_json: UTF-8 throughout.
    String::from_utf8(out).unwrap_or_default()
}

/// `{"id":…,"type":"result","data":…}`. A subscribe answer's data is written
/// `{"subscriptionId":…,"data":…}`, as the server's store proxy builds it.
pub(crate) fn result(id: &Value, data: Value) -> String {
    match subscribe_answer(&data) {
        Some((subscription_id, query_data)) => {
            let data = ordered([("subscriptionId", subscription_id), ("data", query_data)]);
            format!(r#"{{"id":{id},"type":"result","data":{data}}}"#)
        }
        None => ordered([("id", id), ("type", &"result".into()), ("data", &data)]),
    }
}

/// The parts of a store subscribe answer: an object of exactly `subscriptionId` and `data`.
fn subscribe_answer(data: &Value) -> Option<(&Value, &Value)> {
    let answer = data.as_object().filter(|answer| answer.len() == 2)?;
    Some((answer.get("subscriptionId")?, answer.get("data")?))
}

/// `{"id":…,"type":"error","code":…,"message":…[,"details":…]}`.
pub(crate) fn error(id: &Value, code: &str, message: &str, details: Option<&Value>) -> String {
    let (kind, code, message) = ("error".into(), code.into(), message.into());
    let members = [
        ("id", id),
        ("type", &kind),
        ("code", &code),
        ("message", &message),
    ];
    ordered(members.into_iter().chain(details.map(|d| ("details", d))))
}

/// `{"type":"push","channel":…,"subscriptionId":…,"data":…}`.
pub(crate) fn push(subscription_id: &str, channel: &str, data: Value) -> String {
    ordered([
        ("type", &"push".into()),
        ("channel", &channel.into()),
        ("subscriptionId", &subscription_id.into()),
        ("data", &data),
    ])
}

/// `{"type":"welcome","version":…,"serverTime":…,"requiresAuth":…}`.
pub(crate) fn welcome(requires_auth: bool, server_time: i64) -> String {
    ordered([
        ("type", &"welcome".into()),
        ("version", &PROTOCOL_VERSION.into()),
        ("serverTime", &server_time.into()),
        ("requiresAuth", &requires_auth.into()),
    ])
}

/// `{"type":"ping","timestamp":…}`.
pub(crate) fn ping(timestamp: i64) -> String {
    ordered([("type", &"ping".into()), ("timestamp", &timestamp.into())])
}

/// `{"type":"system","event":…,<fields>}`.
pub(crate) fn system(event: &str, fields: Map<String, Value>) -> String {
    let (kind, event) = ("system".into(), event.into());
    let head = [("type", &kind), ("event", &event)];
    ordered(
        head.into_iter()
            .chain(fields.iter().map(|(k, v)| (k.as_str(), v))),
    )
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

    /// Each frame's members in the order noex-server's `serializer.ts` writes them.
    #[test]
    fn frames_keep_the_real_servers_member_order() {
        use serde_json::json;
        assert_eq!(
            result(&json!(7), json!({"subscriptionId": "sub-1", "data": [1]})),
            r#"{"id":7,"type":"result","data":{"subscriptionId":"sub-1","data":[1]}}"#
        );
        assert_eq!(
            error(&json!(8), "NOT_FOUND", "gone", None),
            r#"{"id":8,"type":"error","code":"NOT_FOUND","message":"gone"}"#
        );
        assert_eq!(
            error(
                &json!(0),
                "RATE_LIMITED",
                "slow",
                Some(&json!({"retryAfterMs": 5}))
            ),
            r#"{"id":0,"type":"error","code":"RATE_LIMITED","message":"slow","details":{"retryAfterMs":5}}"#
        );
        assert_eq!(
            push("sub-1", "subscription", json!(null)),
            r#"{"type":"push","channel":"subscription","subscriptionId":"sub-1","data":null}"#
        );
        assert_eq!(
            welcome(true, 1_796_120_576_149),
            r#"{"type":"welcome","version":"1.0.0","serverTime":1796120576149,"requiresAuth":true}"#
        );
        assert_eq!(ping(5), r#"{"type":"ping","timestamp":5}"#);
        let mut fields = Map::new();
        fields.insert("gracePeriodMs".into(), json!(100));
        assert_eq!(
            system("shutdown", fields),
            r#"{"type":"system","event":"shutdown","gracePeriodMs":100}"#
        );
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
