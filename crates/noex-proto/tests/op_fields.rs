//! Each operation's request fields (`OpKind::fields`): complete, consistent with what the
//! catalogue's constructors send, and with what the real server accepted and refused in
//! the recordings.

mod common;

use std::collections::{BTreeSet, HashMap};

use noex_proto::ops::{
    self, audit::AuditFilter, identity::Grant, store::TxOp, FieldType, Filter, OpField, OpKind,
    Operation,
};
use noex_proto::Secret;
use serde_json::{json, Map, Value};

#[test]
fn every_operation_has_an_entry_with_unique_names() {
    let mut with_fields = 0;
    for kind in OpKind::ALL {
        let fields = kind.fields();
        let names: BTreeSet<&str> = fields.iter().map(|f| f.name).collect();
        assert_eq!(names.len(), fields.len(), "{}: a name twice", kind.name());
        for f in fields {
            assert!(!f.name.is_empty(), "{}", kind.name());
            assert!(
                f.name != "id" && f.name != "type",
                "{}: `{}` is the client's",
                kind.name(),
                f.name
            );
            assert_eq!(kind.field(f.name), Some(f));
        }
        // Required fields first, as the server checks them.
        let first_optional = fields.iter().position(|f| !f.required);
        if let Some(i) = first_optional {
            assert!(fields[i..].iter().all(|f| !f.required), "{}", kind.name());
        }
        if !fields.is_empty() {
            with_fields += 1;
        }
    }
    assert!(with_fields >= 60, "{with_fields}");
    assert!(OpKind::StoreGet.field("nope").is_none());
}

#[test]
fn a_few_entries_read_from_the_server_source() {
    let summary = |kind: OpKind| -> Vec<(&'static str, bool, FieldType)> {
        kind.fields()
            .iter()
            .map(|f| (f.name, f.required, f.ty))
            .collect()
    };
    use FieldType as T;
    assert_eq!(
        summary(OpKind::StorePaginate),
        [
            ("bucket", true, T::String),
            ("limit", true, T::Integer),
            ("after", false, T::Any)
        ]
    );
    assert_eq!(
        summary(OpKind::StoreSum),
        [
            ("bucket", true, T::String),
            ("field", true, T::String),
            ("filter", false, T::Object)
        ]
    );
    assert_eq!(
        summary(OpKind::RulesSetFact),
        [("key", true, T::String), ("value", true, T::Any)]
    );
    // `operations` is required by grant and optional for revoke (all of them then).
    assert!(OpKind::IdentityGrant.field("operations").unwrap().required);
    assert!(!OpKind::IdentityRevoke.field("operations").unwrap().required);
    assert_eq!(
        OpKind::IdentityCreateUser
            .fields()
            .iter()
            .filter(|f| f.required)
            .map(|f| f.name)
            .collect::<Vec<_>>(),
        ["username", "password"]
    );
    assert!(OpKind::AuditQuery.fields().iter().all(|f| !f.required));
    assert!(OpKind::ServerConnections.fields().is_empty());
    assert_eq!(FieldType::Array.to_string(), "array");
}

/// The top-level members of an encoded request, `id` and `type` left out.
fn sent_keys(op: &Operation) -> BTreeSet<String> {
    let frame: Value = serde_json::from_str(&op.encode(1)).expect("a request is JSON");
    assert_eq!(frame["type"], op.kind().name());
    frame
        .as_object()
        .expect("an object")
        .keys()
        .filter(|k| *k != "id" && *k != "type")
        .cloned()
        .collect()
}

fn check(op: &Operation, seen: &mut BTreeSet<&'static str>) {
    let kind = op.kind();
    let keys = sent_keys(op);
    let declared: BTreeSet<&str> = kind.fields().iter().map(|f| f.name).collect();
    for k in &keys {
        assert!(
            declared.contains(k.as_str()),
            "{}: sends `{k}`, not a field of the table {declared:?}",
            kind.name()
        );
    }
    for f in kind.fields().iter().filter(|f| f.required) {
        assert!(
            keys.contains(f.name),
            "{}: does not send the required `{}`",
            kind.name(),
            f.name
        );
    }
    seen.insert(kind.name());
}

/// Every constructor of the catalogue, with its optional arguments left out and given.
fn constructors() -> Vec<Operation> {
    use ops::{audit, auth, identity, procedures, rules, server, store};
    let secret = Secret::new("s3cret-password");
    let filter: Filter = Filter::field("age").gte(30).into();
    let cursor = json!("c1");
    let params = json!({"role": "admin"});
    let mut extra = Map::new();
    extra.insert("displayName".into(), json!("Bob"));
    extra.insert("email".into(), json!("bob@example.com"));
    extra.insert("enabled".into(), json!(true));
    extra.insert("metadata".into(), json!({"team": "a"}));
    let mut user_changes = Map::new();
    user_changes.insert("displayName".into(), json!("Bobby"));
    user_changes.insert("email".into(), json!("bobby@example.com"));
    user_changes.insert("metadata".into(), json!({}));
    let mut role_changes = Map::new();
    role_changes.insert("description".into(), json!("writers"));
    role_changes.insert("permissions".into(), json!([]));
    let grant = Grant {
        subject_type: "user".into(),
        subject_id: "u1".into(),
        resource_type: "bucket".into(),
        resource_name: "users".into(),
        operations: vec!["read".into()],
    };
    let audit_all = AuditFilter::all()
        .user("u1")
        .operation("store.insert")
        .result("success")
        .from(1)
        .to(2)
        .limit(10);
    vec![
        store::insert("users", json!({"name": "A"})),
        store::get("users", "u1"),
        store::update("users", "u1", json!({"age": 1})),
        store::delete("users", 7),
        store::all("users"),
        store::find("users", &filter),
        store::find_one("users", &filter),
        store::count("users", None),
        store::count("users", Some(&filter)),
        store::first("users", 2),
        store::last("users", 2),
        store::paginate("users", 10, None),
        store::paginate("users", 10, Some(&cursor)),
        store::sum("users", "age", None),
        store::sum("users", "age", Some(&filter)),
        store::avg("users", "age", None),
        store::avg("users", "age", Some(&filter)),
        store::min("users", "age", None),
        store::min("users", "age", Some(&filter)),
        store::max("users", "age", None),
        store::max("users", "age", Some(&filter)),
        store::clear("users"),
        store::subscribe("all-users", None),
        store::subscribe("users-by-role", Some(&params)),
        store::unsubscribe("sub-1"),
        store::transaction(&[TxOp::insert("users", json!({})), TxOp::get("users", "u1")]),
        store::buckets(),
        store::stats(),
        store::define_bucket("b", json!({"key": "id", "schema": {}})),
        store::update_bucket("b", json!({"addFields": {}})),
        store::get_bucket_schema("b"),
        store::drop_bucket("b"),
        store::define_query("q", json!({"bucket": "b"})),
        store::undefine_query("q"),
        store::list_queries(),
        rules::emit("t", json!({"a": 1}), None, None),
        rules::emit("t", json!({}), Some("c1"), Some("c0")),
        rules::emit_bare("t", Some("c1"), None),
        rules::set_fact("k", 1),
        rules::get_fact("k"),
        rules::delete_fact("k"),
        rules::query_facts("k:*"),
        rules::get_all_facts(),
        rules::stats(),
        rules::subscribe("order.*"),
        rules::unsubscribe("sub-1"),
        rules::register_rule(json!({"id": "r"})),
        rules::unregister_rule("r"),
        rules::update_rule("r", json!({"priority": 2})),
        rules::enable_rule("r"),
        rules::disable_rule("r"),
        rules::get_rule("r"),
        rules::get_rules(),
        rules::validate_rule(json!({"id": "r"})),
        auth::login(&secret),
        auth::logout(),
        auth::whoami(),
        identity::login("bob", &secret),
        identity::login_with_secret(&secret),
        identity::logout(),
        identity::whoami(),
        identity::refresh_session(),
        identity::create_user("bob", &secret, &Map::new()),
        identity::create_user("bob", &secret, &extra),
        identity::get_user("u1"),
        identity::update_user("u1", &user_changes),
        identity::delete_user("u1"),
        identity::list_users(None, None),
        identity::list_users(Some(1), Some(20)),
        identity::enable_user("u1"),
        identity::disable_user("u1"),
        identity::change_password("u1", &secret, &secret),
        identity::reset_password("u1", &secret),
        identity::create_role("writer", None, None),
        identity::create_role("writer", Some("writes"), Some(&json!([]))),
        identity::update_role("r1", &role_changes),
        identity::delete_role("r1"),
        identity::list_roles(),
        identity::assign_role("u1", "writer"),
        identity::remove_role("u1", "writer"),
        identity::get_user_roles("u1"),
        identity::grant(&grant),
        identity::revoke(&grant),
        identity::get_acl("bucket", "users"),
        identity::my_access(),
        identity::get_owner("bucket", "users"),
        identity::transfer_owner("bucket", "users", "u2"),
        audit::query(&AuditFilter::all()),
        audit::query(&audit_all),
        procedures::register(json!({"name": "p", "steps": []})),
        procedures::unregister("p"),
        procedures::update("p", json!({"description": "x"})),
        procedures::get("p"),
        procedures::list(),
        procedures::call("p", json!({})),
        server::stats(),
        server::connections(),
    ]
}

#[test]
fn constructors_send_declared_fields_and_every_required_one() {
    let mut seen = BTreeSet::new();
    for op in constructors() {
        check(&op, &mut seen);
    }
    let missing: Vec<&str> = OpKind::ALL
        .iter()
        .map(|k| k.name())
        .filter(|n| !seen.contains(n))
        .collect();
    assert!(missing.is_empty(), "no constructor checked for {missing:?}");
}

#[test]
fn every_declared_field_is_sent_by_some_constructor() {
    // The table lists nothing the SDK cannot send; an optional field only the generic
    // `Operation::with_field` reaches would show up here.
    let mut sent: HashMap<&'static str, BTreeSet<String>> = HashMap::new();
    for op in constructors() {
        sent.entry(op.kind().name())
            .or_default()
            .extend(sent_keys(&op));
    }
    for kind in OpKind::ALL {
        let got = sent.get(kind.name()).cloned().unwrap_or_default();
        let never: Vec<&str> = kind
            .fields()
            .iter()
            .map(|f| f.name)
            .filter(|n| !got.contains(*n))
            .collect();
        assert!(never.is_empty(), "{}: never sent {never:?}", kind.name());
    }
}

/// The field a `VALIDATION_ERROR` message of the server's argument checks names:
/// `Missing or invalid "bucket": ...`, `Missing "key": ...`, `Invalid "data": ...`.
fn named_field(message: &str) -> Option<&str> {
    let rest = ["Missing or invalid \"", "Missing \"", "Invalid \""]
        .iter()
        .find_map(|p| message.strip_prefix(p))?;
    rest.split('"').next()
}

/// The recordings of the real server: a request it answered with a result carried every
/// required field; one it refused for a missing or invalid argument named a field of the
/// table.
#[test]
fn the_recorded_server_agrees() {
    let dir = format!("{}/../../fixtures/transcripts", env!("CARGO_MANIFEST_DIR"));
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".jsonl").map(str::to_owned))
        .collect();
    names.sort();
    let (mut results, mut refusals) = (0, 0);
    for name in &names {
        // Requests waiting for their answer, per id; a closed connection forgets them.
        let mut pending: HashMap<String, Vec<Value>> = HashMap::new();
        for (dir, frame) in common::transcript(name) {
            match dir.as_str() {
                "note"
                    if frame
                        .as_str()
                        .is_some_and(|n| n.starts_with("connection closed")) =>
                {
                    pending.clear();
                }
                "c2s" if frame.get("id").is_some() && frame["type"].is_string() => {
                    pending
                        .entry(frame["id"].to_string())
                        .or_default()
                        .push(frame);
                }
                "s2c" if frame["type"] == "result" || frame["type"] == "error" => {
                    let Some(request) = pending.get_mut(&frame["id"].to_string()) else {
                        continue;
                    };
                    if request.is_empty() {
                        continue;
                    }
                    let request = request.remove(0);
                    let Some(kind) = request["type"].as_str().and_then(OpKind::from_name) else {
                        continue;
                    };
                    if frame["type"] == "result" {
                        for f in kind.fields().iter().filter(|f| f.required) {
                            assert!(
                                request.get(f.name).is_some(),
                                "{name}: {} succeeded without `{}`: {request}",
                                kind.name(),
                                f.name
                            );
                        }
                        results += 1;
                    } else if frame["code"] == "VALIDATION_ERROR" {
                        let message = frame["message"].as_str().unwrap_or_default();
                        if let Some(field) = named_field(message) {
                            assert!(
                                kind.field(field).is_some(),
                                "{name}: {} refused with `{message}`, `{field}` is not in the table",
                                kind.name()
                            );
                            if message.starts_with("Missing") && request.get(field).is_none() {
                                let declared: &OpField = kind.field(field).unwrap();
                                assert!(
                                    declared.required,
                                    "{name}: {} needs `{field}`: {message}",
                                    kind.name()
                                );
                            }
                            refusals += 1;
                        }
                    }
                }
                _ => {}
            }
        }
    }
    assert!(results > 200, "{results}");
    assert!(refusals >= 5, "{refusals}");
}
