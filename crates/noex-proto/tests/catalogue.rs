//! Behaviour 2: the operation catalogue. The recordings are the judge: every constructor
//! must encode exactly the frame the real server was sent, field names and nesting included.

mod common;

use common::*;
use noex_proto::ops::{self, audit::AuditFilter, identity::Grant, AnswerShape, Filter, OpKind};
use noex_proto::Secret;
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// The recorded client requests that are deliberately malformed or name no real operation.
fn is_deliberate_garbage(frame: &Value) -> bool {
    let Some(f) = frame.as_object() else {
        return true; // raw text, arrays
    };
    let kind = f.get("type").and_then(Value::as_str);
    f.get("id").is_none()
        || matches!(kind, None | Some("pong" | "foo.bar" | "store.nope"))
        // store.insert without bucket, rules.emit without topic (validation probes)
        || (kind == Some("store.insert") && f.get("bucket").is_none())
        || (kind == Some("rules.emit") && f.get("topic").is_none())
        // a transaction with an invalid op (validation probe)
        || (kind == Some("store.transaction") && frame.to_string().contains("explode"))
}

#[test]
fn every_recorded_request_is_reproduced_exactly_by_its_constructor() {
    let mut rebuilt = 0;
    let mut kinds = BTreeSet::new();
    for name in TRANSCRIPTS {
        for (dir, frame) in transcript(name) {
            if dir != "c2s" {
                continue;
            }
            match recorded_op(&frame) {
                Some(op) => {
                    let id = frame["id"].as_u64().expect("recorded request has an id");
                    let encoded: Value = serde_json::from_str(&op.encode(id)).unwrap();
                    assert_eq!(
                        encoded,
                        frame,
                        "{name}: constructor for {}",
                        op.kind().name()
                    );
                    assert_eq!(op.kind().name(), frame["type"]);
                    // id and type come first, as the server's own clients send them.
                    assert!(op
                        .encode(id)
                        .starts_with(&format!(r#"{{"id":{id},"type":"{}""#, op.kind().name())));
                    kinds.insert(op.kind().name());
                    rebuilt += 1;
                }
                None => assert!(
                    is_deliberate_garbage(&frame),
                    "{name}: could not rebuild {frame}"
                ),
            }
        }
    }
    assert!(rebuilt >= 160, "only {rebuilt} requests rebuilt");
    // The transcripts exercise most of the catalogue; the rest is checked below.
    assert!(kinds.len() >= 75, "{} kinds: {kinds:?}", kinds.len());
}

#[test]
fn identity_fields_are_flattened_and_acl_uses_the_servers_names() {
    let grant = Grant {
        subject_type: "user".into(),
        subject_id: "u1".into(),
        resource_type: "bucket".into(),
        resource_name: "docs".into(),
        operations: vec!["read".into(), "write".into()],
    };
    let v: Value = serde_json::from_str(&ops::identity::grant(&grant).encode(1)).unwrap();
    assert_eq!(
        v,
        json!({"id": 1, "type": "identity.grant", "subjectType": "user", "subjectId": "u1",
               "resourceType": "bucket", "resourceName": "docs", "operations": ["read", "write"]})
    );
    // Not the {userId, resource, permission} shape the server does not read.
    for wrong in ["userId", "resource", "permission", "grant"] {
        assert!(v.get(wrong).is_none(), "{wrong}");
    }
    let v: Value = serde_json::from_str(&ops::identity::revoke(&grant).encode(2)).unwrap();
    assert_eq!(v["type"], "identity.revoke");
    assert_eq!(v["subjectId"], "u1");

    let mut extra = serde_json::Map::new();
    extra.insert("displayName".into(), json!("Alice"));
    extra.insert("email".into(), json!("a@example.com"));
    let v: Value = serde_json::from_str(
        &ops::identity::create_user("alice", &Secret::new("alice-pass-123"), &extra).encode(3),
    )
    .unwrap();
    assert_eq!(
        v,
        json!({"id": 3, "type": "identity.createUser", "username": "alice",
               "password": "alice-pass-123", "displayName": "Alice", "email": "a@example.com"})
    );
}

/// Operations the transcripts do not show, checked against PROTOCOL.md's field names.
#[test]
fn operations_beyond_the_recordings() {
    let cases: Vec<(ops::Operation, Value)> = vec![
        (
            ops::identity::list_users(Some(2), Some(10)),
            json!({"type": "identity.listUsers", "page": 2, "pageSize": 10}),
        ),
        (
            ops::identity::list_users(None, None),
            json!({"type": "identity.listUsers"}),
        ),
        (
            ops::rules::emit("t", json!({}), None, Some("cause-1")),
            json!({"type": "rules.emit", "topic": "t", "data": {}, "causationId": "cause-1"}),
        ),
        (
            ops::audit::query(&AuditFilter::all().from(1).to(2)),
            json!({"type": "audit.query", "from": 1, "to": 2}),
        ),
        (
            ops::identity::create_role("r", None, Some(&json!([]))),
            json!({"type": "identity.createRole", "name": "r", "permissions": []}),
        ),
        (
            ops::identity::create_role("r", None, None),
            json!({"type": "identity.createRole", "name": "r"}),
        ),
        (
            ops::rules::emit_bare("t", Some("c"), None),
            json!({"type": "rules.emit", "topic": "t", "correlationId": "c"}),
        ),
        (
            ops::store::count("b", Some(&Filter::all())),
            json!({"type": "store.count", "bucket": "b"}),
        ),
        (
            ops::store::find("b", &Filter::field("age").between(1, 2).into()),
            json!({"type": "store.where", "bucket": "b", "filter": {"age": {"$between": [1, 2]}}}),
        ),
        (
            ops::store::count("b", Some(&json!({"x": 1}).into())),
            json!({"type": "store.count", "bucket": "b", "filter": {"x": 1}}),
        ),
        (
            ops::store::sum("b", "f", Some(&json!({"x": {"$neq": 1}}).into())),
            json!({"type": "store.sum", "bucket": "b", "field": "f", "filter": {"x": {"$neq": 1}}}),
        ),
    ];
    for (op, mut expected) in cases {
        expected["id"] = json!(5);
        let got: Value = serde_json::from_str(&op.encode(5)).unwrap();
        assert_eq!(got, expected);
    }
}

#[test]
fn every_kind_is_covered_by_a_constructor_in_these_tests() {
    let mut covered = BTreeSet::new();
    for name in TRANSCRIPTS {
        for (dir, frame) in transcript(name) {
            if dir == "c2s" {
                if let Some(op) = recorded_op(&frame) {
                    covered.insert(op.kind().name());
                }
            }
        }
    }
    covered.insert(ops::identity::login("u", &Secret::new("p")).kind().name());
    let missing: Vec<_> = OpKind::ALL
        .iter()
        .map(|k| k.name())
        .filter(|n| !covered.contains(n))
        .collect();
    assert!(missing.is_empty(), "not exercised: {missing:?}");
}

#[test]
fn reads_are_exactly_the_side_effect_free_operations() {
    let reads: BTreeSet<&str> = [
        "store.get",
        "store.all",
        "store.where",
        "store.findOne",
        "store.count",
        "store.first",
        "store.last",
        "store.paginate",
        "store.sum",
        "store.avg",
        "store.min",
        "store.max",
        "store.buckets",
        "store.stats",
        "store.getBucketSchema",
        "store.listQueries",
        "rules.getFact",
        "rules.queryFacts",
        "rules.getAllFacts",
        "rules.stats",
        "rules.getRule",
        "rules.getRules",
        "rules.validateRule",
        "auth.whoami",
        "identity.whoami",
        "identity.getUser",
        "identity.listUsers",
        "identity.listRoles",
        "identity.getUserRoles",
        "identity.getAcl",
        "identity.myAccess",
        "identity.getOwner",
        "audit.query",
        "procedures.get",
        "procedures.list",
        "server.stats",
        "server.connections",
    ]
    .into_iter()
    .collect();
    for kind in OpKind::ALL {
        assert_eq!(
            kind.is_read(),
            reads.contains(kind.name()),
            "{}: is_read",
            kind.name()
        );
        assert_eq!(OpKind::from_name(kind.name()), Some(*kind));
    }
    // Writes the issue names explicitly.
    for write in [
        "store.insert",
        "store.update",
        "store.delete",
        "store.clear",
        "store.transaction",
        "rules.emit",
        "rules.setFact",
        "rules.deleteFact",
        "procedures.call",
        "identity.createUser",
        "identity.grant",
        "store.defineBucket",
        "store.subscribe",
        "auth.login",
        "identity.login",
        "identity.refreshSession",
    ] {
        assert!(!OpKind::from_name(write).unwrap().is_read(), "{write}");
    }
    assert_eq!(OpKind::from_name("foo.bar"), None);
    assert_eq!(OpKind::ALL.len(), 84);
}

#[test]
fn answer_shapes() {
    assert_eq!(OpKind::StoreInsert.answer(), AnswerShape::Record);
    assert_eq!(OpKind::StoreGet.answer(), AnswerShape::OptionalRecord);
    assert_eq!(OpKind::StoreFindOne.answer(), AnswerShape::OptionalRecord);
    assert_eq!(OpKind::StoreAll.answer(), AnswerShape::Records);
    assert_eq!(OpKind::StoreCount.answer(), AnswerShape::Number);
    assert_eq!(OpKind::StoreMin.answer(), AnswerShape::OptionalNumber);
    assert_eq!(OpKind::StorePaginate.answer(), AnswerShape::Page);
    assert_eq!(OpKind::RulesGetFact.answer(), AnswerShape::Any);
    assert_eq!(OpKind::ServerConnections.answer(), AnswerShape::List);
}

#[test]
fn secrets_never_show_in_debug() {
    let ops = [
        ops::auth::login(&Secret::new("tok-123456")),
        ops::identity::login("alice", &Secret::new("tok-123456")),
        ops::identity::login_with_secret(&Secret::new("tok-123456")),
        ops::identity::create_user("a", &Secret::new("tok-123456"), &serde_json::Map::new()),
        ops::identity::change_password("u", &Secret::new("tok-123456"), &Secret::new("x")),
        ops::identity::reset_password("u", &Secret::new("tok-123456")),
    ];
    for op in ops {
        assert!(op.kind().carries_secret());
        let debug = format!("{op:?}");
        assert!(!debug.contains("tok-123456"), "{debug}");
        // The wire form of course carries it.
        assert!(op.encode(1).contains("tok-123456"));
    }
    let plain = ops::store::all("users");
    assert!(format!("{plain:?}").contains("users"));
    let config = noex_proto::Config::new("ws://x").auth(noex_proto::Auth::Credentials {
        username: "alice".into(),
        password: Secret::new("tok-123456"),
    });
    assert!(!format!("{config:?}").contains("tok-123456"));
}

#[test]
fn subscription_specs_encode_subscribe_and_unsubscribe() {
    use noex_proto::SubscriptionSpec;
    let q = SubscriptionSpec::query("all-users", None);
    assert_eq!(
        q.operation().encode(22),
        r#"{"id":22,"type":"store.subscribe","query":"all-users"}"#
    );
    assert_eq!(
        q.unsubscribe_operation("sub-1").encode(27),
        r#"{"id":27,"type":"store.unsubscribe","subscriptionId":"sub-1"}"#
    );
    assert!(q.has_initial_data());
    let r = SubscriptionSpec::rules("order.*");
    assert_eq!(
        r.operation().encode(52),
        r#"{"id":52,"type":"rules.subscribe","pattern":"order.*"}"#
    );
    assert_eq!(
        r.unsubscribe_operation("sub-6").encode(73),
        r#"{"id":73,"type":"rules.unsubscribe","subscriptionId":"sub-6"}"#
    );
    assert!(!r.has_initial_data());
}
