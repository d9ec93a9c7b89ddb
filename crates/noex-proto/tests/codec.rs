//! Behaviour 1: the message model and codec. Every server frame kind decodes; unknown fields
//! are ignored; unknown types and invalid JSON are reported as events without killing the
//! connection or the pending requests; error codes (known and unknown) and `retry_after`.

mod common;

use common::*;
use noex_proto::codec::{decode, encode_pong, encode_request};
use noex_proto::{
    ops, ConnectionState, CoreError, ErrorCode, FrameError, Payload, PushChannel, RequestError,
    ServerFrame, SystemEvent,
};
use serde_json::json;
use std::time::Duration;

#[test]
fn welcome_decodes_all_fields() {
    let f = decode(
        r#"{"type":"welcome","version":"1.0.0","serverTime":1795739063895,"requiresAuth":true}"#,
    )
    .unwrap();
    let ServerFrame::Welcome(info) = f else {
        panic!("{f:?}")
    };
    assert_eq!(info.version, "1.0.0");
    assert_eq!(info.server_time, Some(1795739063895));
    assert!(info.requires_auth);
}

#[test]
fn welcome_tolerates_missing_optional_fields() {
    let ServerFrame::Welcome(info) = decode(r#"{"type":"welcome"}"#).unwrap() else {
        panic!()
    };
    assert_eq!(info.version, "");
    assert_eq!(info.server_time, None);
    assert!(!info.requires_auth);
}

#[test]
fn result_keeps_data_verbatim_and_null_when_absent() {
    let ServerFrame::Result { id, data } =
        decode(r#"{"id":12,"type":"result","data":{"a":[1,2,{"b":null}]}}"#).unwrap()
    else {
        panic!()
    };
    assert_eq!(id, 12);
    assert_eq!(data.json(), r#"{"a":[1,2,{"b":null}]}"#);

    let ServerFrame::Result { data, .. } =
        decode(r#"{"id":5,"type":"result","data":null}"#).unwrap()
    else {
        panic!()
    };
    assert!(data.is_null());
    let ServerFrame::Result { data, .. } = decode(r#"{"id":5,"type":"result"}"#).unwrap() else {
        panic!()
    };
    assert!(data.is_null());
}

#[test]
fn result_without_valid_id_is_a_bad_field() {
    for text in [
        r#"{"type":"result","data":1}"#,
        r#"{"id":"7","type":"result","data":1}"#,
        r#"{"id":-1,"type":"result","data":1}"#,
    ] {
        assert_eq!(
            decode(text),
            Err(FrameError::BadField {
                kind: "result",
                field: "id"
            }),
            "{text}"
        );
    }
}

#[test]
fn error_frame_with_details_and_unknown_code() {
    let f = decode(
        r#"{"id":41,"type":"error","code":"VALIDATION_ERROR","message":"bad","details":[{"field":"title"}]}"#,
    )
    .unwrap();
    let ServerFrame::Error { id, error } = f else {
        panic!()
    };
    assert_eq!(id, 41);
    assert_eq!(error.code, ErrorCode::ValidationError);
    assert_eq!(error.message, "bad");
    assert_eq!(
        error.details.as_ref().map(value),
        Some(json!([{"field": "title"}]))
    );

    let ServerFrame::Error { error, .. } =
        decode(r#"{"id":1,"type":"error","code":"BRAND_NEW_CODE","message":"x","details":null}"#)
            .unwrap()
    else {
        panic!()
    };
    assert_eq!(error.code, ErrorCode::Other("BRAND_NEW_CODE".into()));
    assert_eq!(error.code.as_str(), "BRAND_NEW_CODE");
    assert_eq!(error.details, None);
}

#[test]
fn error_without_id_is_id_zero() {
    let ServerFrame::Error { id, error } =
        decode(r#"{"type":"error","code":"PARSE_ERROR","message":"Invalid JSON"}"#).unwrap()
    else {
        panic!()
    };
    assert_eq!(id, 0);
    assert_eq!(error.code, ErrorCode::ParseError);
}

#[test]
fn every_known_error_code_round_trips() {
    let codes = [
        ("PARSE_ERROR", ErrorCode::ParseError),
        ("INVALID_REQUEST", ErrorCode::InvalidRequest),
        ("UNKNOWN_OPERATION", ErrorCode::UnknownOperation),
        ("VALIDATION_ERROR", ErrorCode::ValidationError),
        ("NOT_FOUND", ErrorCode::NotFound),
        ("ALREADY_EXISTS", ErrorCode::AlreadyExists),
        ("CONFLICT", ErrorCode::Conflict),
        ("UNAUTHORIZED", ErrorCode::Unauthorized),
        ("FORBIDDEN", ErrorCode::Forbidden),
        ("RATE_LIMITED", ErrorCode::RateLimited),
        ("BACKPRESSURE", ErrorCode::Backpressure),
        ("INTERNAL_ERROR", ErrorCode::InternalError),
        ("BUCKET_NOT_DEFINED", ErrorCode::BucketNotDefined),
        ("QUERY_NOT_DEFINED", ErrorCode::QueryNotDefined),
        ("RULES_NOT_AVAILABLE", ErrorCode::RulesNotAvailable),
        ("SESSION_REVOKED", ErrorCode::SessionRevoked),
    ];
    for (text, code) in codes {
        assert_eq!(ErrorCode::parse(text), code);
        assert_eq!(code.as_str(), text);
        assert_eq!(code.to_string(), text);
    }
    // Case matters: the server spells codes in upper case.
    assert_eq!(
        ErrorCode::parse("not_found"),
        ErrorCode::Other("not_found".into())
    );
}

#[test]
fn retry_after_from_rate_limited_details() {
    let ServerFrame::Error { error, .. } = decode(
        r#"{"id":3,"type":"error","code":"RATE_LIMITED","message":"slow down","details":{"retryAfterMs":1500}}"#,
    )
    .unwrap() else {
        panic!()
    };
    assert_eq!(error.code, ErrorCode::RateLimited);
    assert_eq!(error.retry_after(), Some(Duration::from_millis(1500)));

    for details in [
        r#"null"#,
        r#"{}"#,
        r#"{"retryAfterMs":-5}"#,
        r#"{"retryAfterMs":"soon"}"#,
    ] {
        let text = format!(
            r#"{{"id":3,"type":"error","code":"RATE_LIMITED","message":"m","details":{details}}}"#
        );
        let ServerFrame::Error { error, .. } = decode(&text).unwrap() else {
            panic!()
        };
        assert_eq!(error.retry_after(), None, "{details}");
    }
}

#[test]
fn push_on_both_channels_and_unknown_channel() {
    let ServerFrame::Push {
        channel,
        subscription_id,
        data,
    } = decode(r#"{"type":"push","channel":"subscription","subscriptionId":"sub-3","data":3}"#)
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(channel, PushChannel::Subscription);
    assert_eq!(subscription_id, "sub-3");
    assert_eq!(data.json(), "3");

    let ServerFrame::Push { channel, data, .. } = decode(
        r#"{"type":"push","channel":"event","subscriptionId":"sub-6","data":{"topic":"order.created","event":{"id":"e1"}}}"#,
    )
    .unwrap() else {
        panic!()
    };
    assert_eq!(channel, PushChannel::Event);
    assert_eq!(value(&data)["topic"], "order.created");

    let ServerFrame::Push { channel, .. } =
        decode(r#"{"type":"push","channel":"future","subscriptionId":"sub-1","data":1}"#).unwrap()
    else {
        panic!()
    };
    assert_eq!(channel, PushChannel::Other("future".into()));

    assert_eq!(
        decode(r#"{"type":"push","channel":"event","data":1}"#),
        Err(FrameError::BadField {
            kind: "push",
            field: "subscriptionId"
        })
    );
}

#[test]
fn ping_keeps_timestamp_verbatim() {
    for ts in [
        "1795739065397",
        "1.5e3",
        "\"opaque\"",
        "12345678901234567890123",
    ] {
        let text = format!(r#"{{"type":"ping","timestamp":{ts}}}"#);
        let ServerFrame::Ping { timestamp } = decode(&text).unwrap() else {
            panic!()
        };
        assert_eq!(timestamp.json(), ts);
        assert_eq!(
            encode_pong(&timestamp),
            format!(r#"{{"type":"pong","timestamp":{ts}}}"#)
        );
    }
    assert!(decode(r#"{"type":"ping"}"#).is_err());
}

#[test]
fn system_events() {
    assert_eq!(
        decode(r#"{"type":"system","event":"shutdown","gracePeriodMs":500}"#).unwrap(),
        ServerFrame::System(SystemEvent::Shutdown {
            grace_period: Some(Duration::from_millis(500))
        })
    );
    assert_eq!(
        decode(r#"{"type":"system","event":"session_revoked","reason":"admin"}"#).unwrap(),
        ServerFrame::System(SystemEvent::SessionRevoked {
            reason: Some("admin".into())
        })
    );
    assert_eq!(
        decode(r#"{"type":"system","event":"maintenance"}"#).unwrap(),
        ServerFrame::System(SystemEvent::Other {
            event: "maintenance".into()
        })
    );
}

#[test]
fn unknown_fields_are_ignored_in_every_kind() {
    let frames = [
        r#"{"type":"welcome","version":"1.0.0","requiresAuth":false,"x":{"deep":[1]}}"#,
        r#"{"id":1,"type":"result","data":1,"extra":"y","meta":null}"#,
        r#"{"id":1,"type":"error","code":"NOT_FOUND","message":"m","trace":[1,2]}"#,
        r#"{"type":"push","channel":"event","subscriptionId":"s","data":1,"seq":9}"#,
        r#"{"type":"ping","timestamp":1,"n":2}"#,
        r#"{"type":"system","event":"shutdown","gracePeriodMs":1,"who":"ops"}"#,
    ];
    for text in frames {
        assert!(decode(text).is_ok(), "{text}");
    }
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    let garbage = [
        "",
        "{not json",
        "[1,2,3]",
        "null",
        "42",
        "\"result\"",
        r#"{"type":5}"#,
        r#"{"id":1}"#,
        r#"{"type":"bogus"}"#,
        r#"{"type":"result","id":1,"data":}"#,
        "{\"type\":\"result\",\"id\":1,\"data\":\"\u{0}\"}",
    ];
    for text in garbage {
        assert!(decode(text).is_err(), "{text:?} decoded");
    }
    assert_eq!(
        decode(r#"{"type":"bogus","id":1}"#),
        Err(FrameError::UnknownType("bogus".into()))
    );
    assert_eq!(decode(r#"{"id":1}"#), Err(FrameError::MissingType));
}

#[test]
fn escaped_type_is_understood() {
    let f = decode(r#"{"id":1,"type":"res\u0075lt","data":true}"#).unwrap();
    assert!(matches!(f, ServerFrame::Result { id: 1, .. }));
}

#[test]
fn requests_are_flattened_with_id_and_type_first() {
    assert_eq!(
        encode_request(9, "store.buckets", ""),
        r#"{"id":9,"type":"store.buckets"}"#
    );
    assert_eq!(
        encode_request(10, "store.get", r#""bucket":"b","key":"k""#),
        r#"{"id":10,"type":"store.get","bucket":"b","key":"k"}"#
    );
    let op = ops::store::insert("users", json!({"name": "Alice"}));
    let v: serde_json::Value = serde_json::from_str(&op.encode(3)).unwrap();
    assert_eq!(
        v,
        json!({"id": 3, "type": "store.insert", "bucket": "users", "data": {"name": "Alice"}})
    );
}

#[test]
fn with_fields_cannot_override_id_or_type() {
    let mut extra = serde_json::Map::new();
    extra.insert("id".into(), json!(999));
    extra.insert("type".into(), json!("store.clear"));
    extra.insert("displayName".into(), json!("A"));
    let op = ops::identity::update_user("u1", &extra);
    let v: serde_json::Value = serde_json::from_str(&op.encode(4)).unwrap();
    assert_eq!(
        v,
        json!({"id": 4, "type": "identity.updateUser", "userId": "u1", "displayName": "A"})
    );
}

// ---- through the core ---------------------------------------------------------------------

fn protocol_errors(h: &Harness) -> usize {
    h.core_errors()
        .into_iter()
        .filter(|e| matches!(e, CoreError::Protocol(_)))
        .count()
}

#[test]
fn invalid_json_and_unknown_type_are_reported_and_the_connection_carries_on() {
    let mut h = Harness::connected(Harness::config());
    let id = h.request(ops::store::all("users"));
    h.clear();

    h.frame("{not json");
    h.frame(r#"{"type":"brand-new","id":1}"#);
    h.frame(r#"[1,2,3]"#);
    h.frame(r#"{"type":"result","data":1}"#);

    assert_eq!(protocol_errors(&h), 4);
    let errs = h.core_errors();
    assert!(matches!(
        errs[0],
        CoreError::Protocol(FrameError::NotJson(_))
    ));
    assert!(matches!(
        errs[1],
        CoreError::Protocol(FrameError::UnknownType(t)) if t == "brand-new"
    ));
    assert!(h.closes.is_empty(), "the connection must not be closed");
    assert!(h.disconnects().is_empty());
    assert_eq!(h.core.state(), ConnectionState::Connected);
    assert_eq!(h.core.counters().protocol_errors, 4);
    assert_eq!(h.core.pending_requests(), 1);

    // The pending request still resolves normally.
    h.answer(id.0, json!([record("Alice", 30)]));
    let Ok(data) = h.response(id) else { panic!() };
    assert_eq!(value(data)[0]["name"], "Alice");
}

#[test]
fn binary_frame_is_reported_not_fatal() {
    let mut h = Harness::connected(Harness::config());
    h.clear();
    h.input(noex_proto::Input::Binary(b"\x00\x01"));
    assert!(matches!(
        h.core_errors()[..],
        [CoreError::Protocol(FrameError::Binary(2))]
    ));
    assert_eq!(h.core.state(), ConnectionState::Connected);
    assert!(h.closes.is_empty());
}

#[test]
fn error_with_id_zero_is_a_core_error_not_a_response() {
    let mut h = Harness::connected(Harness::config());
    let id = h.request(ops::store::buckets());
    h.clear();
    h.frame(r#"{"id":0,"type":"error","code":"PARSE_ERROR","message":"Invalid JSON"}"#);
    assert!(matches!(
        h.core_errors()[..],
        [CoreError::Server(e)] if e.code == ErrorCode::ParseError
    ));
    assert!(h.responses(id).is_empty());
    assert_eq!(h.core.pending_requests(), 1);
}

#[test]
fn server_error_reaches_the_request_with_code_message_details() {
    let mut h = Harness::connected(Harness::config());
    let id = h.request(ops::store::insert("products", json!({"price": -1})));
    h.frame_json(json!({
        "id": id.0, "type": "error", "code": "SOMETHING_ELSE", "message": "nope",
        "details": {"retryAfterMs": 250}
    }));
    let RequestError::Server(e) = h.error_of(id) else {
        panic!()
    };
    assert_eq!(e.code, ErrorCode::Other("SOMETHING_ELSE".into()));
    assert_eq!(e.message, "nope");
    assert_eq!(e.retry_after(), Some(Duration::from_millis(250)));
    assert!(!h.error_of(id).may_have_been_applied());
    assert_eq!(h.error_of(id).delivery(), None);
}

#[test]
fn payload_helpers() {
    let p = Payload::from_json(r#"{"token":"s3cret"}"#).unwrap();
    // Debug never shows the contents (tokens travel in payloads).
    assert!(!format!("{p:?}").contains("s3cret"));
    assert_eq!(p, Payload::from_value(&json!({"token": "s3cret"})).unwrap());
    assert!(Payload::from_json("{").is_err());
}

/// Found by the seed corpus of the `decode_frame` fuzz target: a huge `retryAfterMs` or
/// `gracePeriodMs` from the server made `Duration::from_secs_f64` panic.
#[test]
fn huge_or_negative_durations_from_the_server_do_not_panic() {
    let ServerFrame::Error { error, .. } = decode(
        r#"{"id":1,"type":"error","code":"RATE_LIMITED","message":"m","details":{"retryAfterMs":1e308}}"#,
    )
    .unwrap() else {
        panic!()
    };
    assert_eq!(error.retry_after(), None);
    for grace in ["1e308", "-1", "\"soon\""] {
        let text = format!(r#"{{"type":"system","event":"shutdown","gracePeriodMs":{grace}}}"#);
        assert_eq!(
            decode(&text).unwrap(),
            ServerFrame::System(SystemEvent::Shutdown { grace_period: None }),
            "{grace}"
        );
    }
    // Large but representable values are kept.
    assert_eq!(
        decode(r#"{"type":"system","event":"shutdown","gracePeriodMs":86400000}"#).unwrap(),
        ServerFrame::System(SystemEvent::Shutdown {
            grace_period: Some(Duration::from_secs(86_400))
        })
    );
    // And through a connected core.
    let mut h = Harness::connected(Harness::config());
    h.frame(r#"{"type":"system","event":"shutdown","gracePeriodMs":1e308}"#);
    assert!(h
        .lifecycle()
        .contains(&&noex_proto::LifecycleEvent::ServerShutdown { grace_period: None }));
}

#[test]
fn a_frame_built_in_place_equals_the_encoded_one_for_every_id_width() {
    for op in [
        ops::store::insert("users", json!({"name": "A\"lice", "tags": ["é", 1]})),
        ops::server::stats(),
    ] {
        for id in [0, 1, 9, 10, 12_345, u64::MAX] {
            let frame = op.clone().into_frame(id);
            assert_eq!(frame, op.encode(id));
            let v: serde_json::Value = serde_json::from_str(&frame).expect("valid JSON");
            assert_eq!(v["id"], id);
            assert_eq!(v["type"], op.kind().name());
        }
    }
}
