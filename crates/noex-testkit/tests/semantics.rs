//! The in-memory semantics: store, reactive queries, rules, auth, identity, audit,
//! procedures, server info and error answers.

mod common;

use std::time::Duration;

use common::{Client, Event};
use noex_testkit::{AuthMode, BucketDef, QueryDef, TestServer, TokenSession};
use serde_json::{json, Value};

const LIMIT: Duration = Duration::from_secs(15);

async fn within<F: std::future::Future<Output = ()>>(f: F) {
    tokio::time::timeout(LIMIT, f)
        .await
        .expect("test timed out");
}

fn shop() -> TestServer {
    TestServer::builder()
        .bucket(
            BucketDef::new("users")
                .field("name", json!({"type": "string", "required": true, "minLength": 2}))
                .field("age", json!({"type": "number", "min": 0, "max": 150}))
                .field("role", json!({"type": "string", "default": "user", "enum": ["user", "admin"]}))
                .field("email", json!({"type": "string", "unique": true})),
        )
        .bucket_json(
            "counters",
            json!({"key": "n", "schema": {"n": {"type": "number", "generated": "autoincrement"}, "label": {"type": "string"}}}),
        )
        .query("all-users", QueryDef::all("users"))
        .query("users-by-role", QueryDef::where_param("users", "role"))
        .query("user-count", QueryDef::count("users"))
        .query("adults", QueryDef::where_filter("users", json!({"age": {"$gte": 18}})))
        .start()
        .expect("start")
}

#[tokio::test]
async fn store_records_defaults_versions_and_validation() {
    within(async {
        let server = shop();
        let mut c = Client::open(&server.url()).await;
        let a = c.ok(json!({"type": "store.insert", "bucket": "users", "data": {"name": "Al", "age": 30}})).await;
        assert_eq!(a["role"], "user");
        assert_eq!(a["_version"], 1);
        assert_eq!(a["id"].as_str().map(str::len), Some(36));
        assert!(a["_createdAt"].is_number());
        let key = a["id"].clone();
        let u = c.ok(json!({"type": "store.update", "bucket": "users", "key": key, "data": {"age": 31, "id": "nope", "_version": 9}})).await;
        assert_eq!(u["_version"], 2);
        assert_eq!(u["id"], key, "key cannot be changed");
        assert_eq!(u["age"], 31);

        let (code, msg, details) = c.err(json!({"type": "store.insert", "bucket": "users", "data": {"name": 5, "age": -1, "role": "boss"}})).await;
        assert_eq!(code, "VALIDATION_ERROR");
        assert_eq!(msg, "Validation failed for bucket \"users\": name: Expected type \"string\", got number; age: Minimum value is 0; role: Value must be one of: user, admin");
        assert_eq!(details.as_array().map(Vec::len), Some(3));
        assert_eq!(details[0], json!({"field": "name", "message": "Expected type \"string\", got number", "code": "type"}));

        c.ok(json!({"type": "store.insert", "bucket": "users", "data": {"name": "Bo", "email": "b@x.io"}})).await;
        let (code, _, details) = c.err(json!({"type": "store.insert", "bucket": "users", "data": {"name": "Cy", "email": "b@x.io"}})).await;
        assert_eq!(code, "ALREADY_EXISTS");
        assert_eq!(details["field"], "email");

        let (code, msg, _) = c.err(json!({"type": "store.update", "bucket": "users", "key": "missing", "data": {}})).await;
        assert_eq!((code.as_str(), msg.as_str()), ("INTERNAL_ERROR", "Record with key \"missing\" not found in bucket \"users\""));
        assert_eq!(c.ok(json!({"type": "store.delete", "bucket": "users", "key": "missing"})).await, json!({"deleted": true}));

        let n1 = c.ok(json!({"type": "store.insert", "bucket": "counters", "data": {"label": "a"}})).await;
        let n2 = c.ok(json!({"type": "store.insert", "bucket": "counters", "data": {"label": "b"}})).await;
        assert_eq!((n1["n"].clone(), n2["n"].clone()), (json!(1), json!(2)));
        assert_eq!(c.ok(json!({"type": "store.get", "bucket": "counters", "key": 2})).await["label"], "b");
        assert_eq!(server.records("users").len(), 2);
    })
    .await;
}

#[tokio::test]
async fn store_queries_filters_pagination_aggregates() {
    within(async {
        let server = shop();
        for (name, age, role) in [("Ann", 17, "user"), ("Ben", 40, "admin"), ("Cat", 25, "user"), ("Dan", 33, "user")] {
            server.insert("users", json!({"name": name, "age": age, "role": role})).expect("insert");
        }
        let mut c = Client::open(&server.url()).await;
        let names = |v: &Value| -> Vec<String> {
            v.as_array().into_iter().flatten().map(|r| r["name"].as_str().unwrap_or("").to_string()).collect()
        };
        let r = c.ok(json!({"type": "store.where", "bucket": "users", "filter": {"age": {"$gt": 20, "$lte": 33}}})).await;
        assert_eq!(names(&r), ["Cat", "Dan"]);
        let r = c.ok(json!({"type": "store.where", "bucket": "users", "filter": {"name": {"$in": ["Ann", "Dan"]}}})).await;
        assert_eq!(names(&r), ["Ann", "Dan"]);
        let r = c.ok(json!({"type": "store.where", "bucket": "users", "filter": {"role": {"$neq": "user"}}})).await;
        assert_eq!(names(&r), ["Ben"]);
        // `$ne` is not an operator of the store: ignored, every record matches.
        let r = c.ok(json!({"type": "store.where", "bucket": "users", "filter": {"role": {"$ne": "user"}}})).await;
        assert_eq!(names(&r), ["Ann", "Ben", "Cat", "Dan"]);
        let r = c.ok(json!({"type": "store.where", "bucket": "users", "filter": {"$or": [{"age": 17}, {"name": {"$startsWith": "D"}}]}})).await;
        assert_eq!(names(&r), ["Ann", "Dan"]);
        let r = c.ok(json!({"type": "store.where", "bucket": "users", "filter": {"$and": [{"role": "user"}, {"age": {"$lt": 30}}]}})).await;
        assert_eq!(names(&r), ["Ann", "Cat"]);
        assert_eq!(c.ok(json!({"type": "store.count", "bucket": "users", "filter": {"role": "user"}})).await, 3);
        assert_eq!(names(&c.ok(json!({"type": "store.last", "bucket": "users", "n": 2})).await), ["Cat", "Dan"]);

        let p1 = c.ok(json!({"type": "store.paginate", "bucket": "users", "limit": 3})).await;
        assert_eq!(names(&p1["records"]), ["Ann", "Ben", "Cat"]);
        assert_eq!(p1["hasMore"], true);
        let p2 = c.ok(json!({"type": "store.paginate", "bucket": "users", "limit": 3, "after": p1["nextCursor"]})).await;
        assert_eq!(names(&p2["records"]), ["Dan"]);
        assert_eq!(p2["hasMore"], false);
        let p3 = c.ok(json!({"type": "store.paginate", "bucket": "users", "limit": 3, "after": p2["nextCursor"]})).await;
        assert_eq!(p3, json!({"records": [], "hasMore": false}));

        assert_eq!(c.ok(json!({"type": "store.sum", "bucket": "users", "field": "age"})).await, 115);
        assert_eq!(c.ok(json!({"type": "store.avg", "bucket": "users", "field": "age", "filter": {"role": "admin"}})).await, 40);
        assert_eq!(c.ok(json!({"type": "store.min", "bucket": "users", "field": "age"})).await, 17);
        assert_eq!(c.ok(json!({"type": "store.max", "bucket": "users", "field": "nothing"})).await, Value::Null);
        assert_eq!(c.ok(json!({"type": "store.clear", "bucket": "users"})).await, json!({"cleared": true}));
        assert_eq!(c.ok(json!({"type": "store.avg", "bucket": "users", "field": "age"})).await, 0);

        let (code, msg, _) = c.err(json!({"type": "store.where", "bucket": "users"})).await;
        assert_eq!((code.as_str(), msg.as_str()), ("VALIDATION_ERROR", "Missing or invalid \"filter\": expected object"));
        let (_, msg, _) = c.err(json!({"type": "store.get", "bucket": "users"})).await;
        assert_eq!(msg, "Missing \"key\": expected non-null value");
    })
    .await;
}

#[tokio::test]
async fn transactions_are_atomic() {
    within(async {
        let server = shop();
        let mut c = Client::open(&server.url()).await;
        let (code, _, _) = c.err(json!({"type": "store.transaction", "operations": [
            {"op": "insert", "bucket": "users", "data": {"name": "Tx"}},
            {"op": "update", "bucket": "users", "key": "missing", "data": {"age": 1}}
        ]})).await;
        assert_eq!(code, "INTERNAL_ERROR");
        assert!(server.records("users").is_empty(), "the insert was rolled back");
        let (_, msg, _) = c.err(json!({"type": "store.transaction", "operations": [{"op": "get", "bucket": "users"}]})).await;
        assert_eq!(msg, "operations[0]: \"get\" requires \"key\"");
        let (_, msg, _) = c.err(json!({"type": "store.transaction", "operations": []})).await;
        assert_eq!(msg, "\"operations\" must contain at least one operation");
        let r = c.ok(json!({"type": "store.transaction", "operations": [
            {"op": "insert", "bucket": "users", "data": {"name": "Ok"}},
            {"op": "count", "bucket": "users"}
        ]})).await;
        assert_eq!(r["results"][1], json!({"index": 1, "data": 1}));
    })
    .await;
}

/// A transaction's writes to one record, committed as noex-store 0.2.0 commits them (each
/// bucket's net inserts, updates and deletes checked against the records as they were),
/// recorded from the real server: an update then a delete conflicts, a delete then an
/// insert of the key conflicts; two updates, an insert then an update or a delete, and two
/// deletes do not.
#[tokio::test]
async fn a_transaction_conflicts_with_itself_as_the_store_does() {
    within(async {
        let server = shop();
        let mut c = Client::open(&server.url()).await;
        let insert = async |c: &mut Client, name: &str| {
            let r = c.ok(json!({"type": "store.insert", "bucket": "users", "data": {"name": name}})).await;
            r["id"].as_str().unwrap().to_owned()
        };
        let a = insert(&mut c, "Al").await;
        let b = insert(&mut c, "Bo").await;
        let tx = |ops: Value| json!({"type": "store.transaction", "operations": ops});

        let (code, msg, details) = c.err(tx(json!([
            {"op": "update", "bucket": "users", "key": a, "data": {"age": 2}},
            {"op": "delete", "bucket": "users", "key": a}
        ]))).await;
        assert_eq!(code, "CONFLICT");
        assert_eq!(msg, format!("Transaction conflict in bucket \"users\" for key \"{a}\": Version mismatch: expected 2, got 1"));
        assert_eq!(details, json!({"bucket": "users", "key": a}));
        let kept = c.ok(json!({"type": "store.get", "bucket": "users", "key": a})).await;
        assert_eq!((kept["_version"].clone(), kept.get("age")), (json!(1), None), "rolled back");

        let r = c.ok(tx(json!([
            {"op": "update", "bucket": "users", "key": a, "data": {"age": 2}},
            {"op": "update", "bucket": "users", "key": a, "data": {"age": 3}}
        ]))).await;
        assert_eq!((r["results"][0]["data"]["_version"].clone(), r["results"][1]["data"]["_version"].clone()), (json!(2), json!(3)));

        c.ok(tx(json!([
            {"op": "insert", "bucket": "users", "data": {"id": "x1", "name": "Xx"}},
            {"op": "update", "bucket": "users", "key": "x1", "data": {"age": 3}}
        ]))).await;
        c.ok(tx(json!([
            {"op": "insert", "bucket": "users", "data": {"id": "x2", "name": "Xx"}},
            {"op": "delete", "bucket": "users", "key": "x2"}
        ]))).await;

        let (code, msg, details) = c.err(tx(json!([
            {"op": "delete", "bucket": "users", "key": b},
            {"op": "insert", "bucket": "users", "data": {"id": b, "name": "B2"}}
        ]))).await;
        assert_eq!(code, "CONFLICT");
        assert_eq!(msg, format!("Transaction conflict in bucket \"users\" for key \"{b}\": Record with key \"{b}\" already exists"));
        assert_eq!(details, json!({"bucket": "users", "key": b}));

        let r = c.ok(tx(json!([
            {"op": "delete", "bucket": "users", "key": a},
            {"op": "delete", "bucket": "users", "key": a}
        ]))).await;
        assert_eq!(r["results"][1], json!({"index": 1, "data": {"deleted": true}}));

        let mut left: Vec<(Value, Value)> = server
            .records("users")
            .iter()
            .map(|r| (r["name"].clone(), r["_version"].clone()))
            .collect();
        left.sort_by_key(|(name, _)| name.to_string());
        assert_eq!(left, vec![(json!("Bo"), json!(1)), (json!("Xx"), json!(2))]);
    })
    .await;
}

#[tokio::test]
async fn subscriptions_push_whole_results_on_change_only() {
    within(async {
        let server = shop();
        let mut c = Client::open(&server.url()).await;
        let all = c.ok(json!({"type": "store.subscribe", "query": "all-users"})).await;
        assert_eq!(all, json!({"subscriptionId": "sub-1", "data": []}));
        let admins = c.ok(json!({"type": "store.subscribe", "query": "users-by-role", "params": {"role": "admin"}})).await;
        assert_eq!(admins["subscriptionId"], "sub-2");
        let count = c.ok(json!({"type": "store.subscribe", "query": "user-count"})).await;
        assert_eq!(count["data"], 0);
        let adults = c.ok(json!({"type": "store.subscribe", "query": "adults"})).await;
        assert_eq!(adults["subscriptionId"], "sub-4");

        // A client write: result first, then the pushes.
        let (res, early) = c.request(json!({"type": "store.insert", "bucket": "users", "data": {"name": "Kid", "age": 9}})).await;
        assert_eq!(res["type"], "result");
        assert!(early.is_empty(), "store pushes follow the result");
        let p1 = c.recv_json().await;
        assert_eq!((p1["channel"].clone(), p1["subscriptionId"].clone()), (json!("subscription"), json!("sub-1")));
        assert_eq!(p1["data"].as_array().map(Vec::len), Some(1));
        let p2 = c.recv_json().await;
        assert_eq!((p2["subscriptionId"].clone(), p2["data"].clone()), (json!("sub-3"), json!(1)));
        // admins and adults did not change: no pushes for them.
        assert!(c.silent_for(Duration::from_millis(150)).await);

        // A direct write through the handle pushes too.
        server.insert("users", json!({"name": "Boss", "age": 50, "role": "admin"})).expect("insert");
        let mut got = Vec::new();
        for _ in 0..4 {
            let p = c.recv_json().await;
            got.push(p["subscriptionId"].as_str().unwrap_or_default().to_string());
        }
        got.sort();
        assert_eq!(got, ["sub-1", "sub-2", "sub-3", "sub-4"]);

        assert_eq!(c.ok(json!({"type": "store.unsubscribe", "subscriptionId": "sub-1"})).await, json!({"unsubscribed": true}));
        let (code, msg, _) = c.err(json!({"type": "store.unsubscribe", "subscriptionId": "sub-1"})).await;
        assert_eq!((code.as_str(), msg.as_str()), ("NOT_FOUND", "Subscription \"sub-1\" not found"));

        // Ids are per server, not per connection; subscriptions die with the connection.
        let mut d = Client::open(&server.url()).await;
        let s = d.ok(json!({"type": "store.subscribe", "query": "user-count"})).await;
        assert_eq!(s["subscriptionId"], "sub-5");
        drop(d);
        // The server notices the closed socket: wait until its own state shows it.
        tokio::time::timeout(common::STEP, async {
            while server.connection_count() > 1 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await
        .expect("the server notices the closed connection");
        let stats = c.ok(json!({"type": "server.stats"})).await;
        assert_eq!(stats["connections"]["totalStoreSubscriptions"], 3);
    })
    .await;
}

#[tokio::test]
async fn declarative_queries_with_params_sort_and_limit() {
    within(async {
        let server = shop();
        let mut c = Client::open(&server.url()).await;
        c.ok(json!({"type": "store.defineQuery", "name": "young", "config": {
            "bucket": "users", "filter": {"age": {"$lt": "{{ params.maxAge }}"}}, "sort": {"age": "desc"}, "limit": 2, "fields": ["name", "age"]
        }})).await;
        for (n, a) in [("Aa", 10), ("Bb", 20), ("Cc", 30), ("Dd", 40)] {
            server.insert("users", json!({"name": n, "age": a})).expect("insert");
        }
        let s = c.ok(json!({"type": "store.subscribe", "query": "young", "params": {"maxAge": 35}})).await;
        assert_eq!(s["data"], json!([{"name": "Cc", "age": 30}, {"name": "Bb", "age": 20}]));
        c.ok(json!({"type": "store.insert", "bucket": "users", "data": {"name": "Ee", "age": 34}})).await;
        let p = c.recv_json().await;
        assert_eq!(p["data"], json!([{"name": "Ee", "age": 34}, {"name": "Cc", "age": 30}]));
        let (code, _, _) = c.err(json!({"type": "store.defineQuery", "name": "young", "config": {"bucket": "users"}})).await;
        assert_eq!(code, "ALREADY_EXISTS");
        let (code, msg, _) = c.err(json!({"type": "store.defineQuery", "name": "x", "config": {"bucket": "ghost"}})).await;
        assert_eq!((code.as_str(), msg.as_str()), ("BUCKET_NOT_DEFINED", "Bucket \"ghost\" is not defined"));
    })
    .await;
}

#[tokio::test]
async fn rules_events_patterns_facts_and_actions() {
    within(async {
        let server = TestServer::builder().start().expect("start");
        let mut c = Client::open(&server.url()).await;
        let one = c.ok(json!({"type": "rules.subscribe", "pattern": "order.*"})).await["subscriptionId"].clone();
        let all = c.ok(json!({"type": "rules.subscribe", "pattern": "*"})).await["subscriptionId"].clone();
        let (res, pushes) = c.request(json!({"type": "rules.emit", "topic": "order.item.added", "data": {}})).await;
        assert_eq!(res["type"], "result");
        // A trailing `*` of a subscription matches any depth; `*` alone matches everything.
        let subs: Vec<&Value> = pushes.iter().map(|p| &p["subscriptionId"]).collect();
        assert_eq!(subs, [&one, &all]);
        let (_, pushes) = c.request(json!({"type": "rules.emit", "topic": "order", "data": {}})).await;
        assert_eq!(pushes.len(), 2, "order.* also matches the bare prefix");
        let (res, pushes) = c.request(json!({"type": "rules.emit", "topic": "login", "correlationId": "c-1", "causationId": "e-0"})).await;
        assert_eq!(pushes.len(), 1, "pushes come before the emit's answer");
        assert_eq!(pushes[0]["subscriptionId"], all);
        let ev = &res["data"];
        assert_eq!((ev["correlationId"].clone(), ev["causationId"].clone(), ev["source"].clone()), (json!("c-1"), json!("e-0"), json!("api")));
        assert_eq!(ev["data"], json!({}));
        assert_eq!(pushes[0]["data"]["event"], *ev);

        c.ok(json!({"type": "rules.registerRule", "rule": {
            "id": "big", "name": "Big orders", "enabled": true, "tags": [], "trigger": {"type": "event", "topic": "order.placed"},
            "conditions": [{"source": {"type": "event", "field": "total"}, "operator": "gte", "value": 100}],
            "actions": [
                {"type": "set_fact", "key": "last-big", "value": {"ref": "event.id"}},
                {"type": "emit_event", "topic": "order.flagged", "data": {"orderId": {"ref": "event.id"}}}
            ]
        }})).await;
        let (_, pushes) = c.request(json!({"type": "rules.emit", "topic": "order.placed", "data": {"id": "o-9", "total": 150}})).await;
        let topics: Vec<&str> = pushes.iter().filter(|p| p["subscriptionId"] == one).map(|p| p["data"]["topic"].as_str().unwrap_or("")).collect();
        assert_eq!(topics, ["order.placed", "order.flagged"]);
        let flagged = pushes.iter().find(|p| p["data"]["topic"] == "order.flagged").expect("flagged");
        assert_eq!(flagged["data"]["event"]["source"], "rule");
        assert_eq!(flagged["data"]["event"]["data"], json!({"orderId": "o-9"}));
        assert_eq!(c.ok(json!({"type": "rules.getFact", "key": "last-big"})).await, "o-9");
        let (_, pushes) = c.request(json!({"type": "rules.emit", "topic": "order.placed", "data": {"id": "o-1", "total": 5}})).await;
        assert_eq!(pushes.iter().filter(|p| p["subscriptionId"] == one).count(), 1, "condition false: no action");
        c.ok(json!({"type": "rules.disableRule", "ruleId": "big"})).await;
        let (_, pushes) = c.request(json!({"type": "rules.emit", "topic": "order.placed", "data": {"id": "o-2", "total": 500}})).await;
        assert_eq!(pushes.iter().filter(|p| p["subscriptionId"] == one).count(), 1, "disabled rule does not run");

        let f = c.ok(json!({"type": "rules.setFact", "key": "user:1:name", "value": "A"})).await;
        assert_eq!(f["version"], 1);
        let f = c.ok(json!({"type": "rules.setFact", "key": "user:1:name", "value": "B"})).await;
        assert_eq!(f["version"], 2);
        c.ok(json!({"type": "rules.setFact", "key": "user:2:name", "value": "C"})).await;
        c.ok(json!({"type": "rules.setFact", "key": "user:1:role", "value": null})).await;
        let q = c.ok(json!({"type": "rules.queryFacts", "pattern": "user:*:name"})).await;
        assert_eq!(q.as_array().map(Vec::len), Some(2));
        let q = c.ok(json!({"type": "rules.queryFacts", "pattern": "user:1:*"})).await;
        assert_eq!(q.as_array().map(Vec::len), Some(2));
        let (_, msg, _) = c.err(json!({"type": "rules.setFact", "key": "k"})).await;
        assert_eq!(msg, "Missing \"value\": expected a value");
        let (code, msg, _) = c.err(json!({"type": "rules.updateRule", "ruleId": "nope", "updates": {}})).await;
        assert_eq!((code.as_str(), msg.as_str()), ("INTERNAL_ERROR", "Rule 'nope' not found"));
        let (code, _, _) = c.err(json!({"type": "rules.registerRule", "rule": {"id": "big", "name": "x", "trigger": {"type": "event", "topic": "a"}}})).await;
        assert_eq!(code, "ALREADY_EXISTS");
        let (code, _, details) = c.err(json!({"type": "rules.registerRule", "rule": {"id": "bad"}})).await;
        assert_eq!(code, "VALIDATION_ERROR");
        assert!(details.is_array());

        let off = TestServer::builder().rules(false).start().expect("start");
        let mut d = Client::open(&off.url()).await;
        let (code, msg, _) = d.err(json!({"type": "rules.emit", "topic": "x"})).await;
        assert_eq!((code.as_str(), msg.as_str()), ("RULES_NOT_AVAILABLE", "Rule engine is not configured"));
    })
    .await;
}

#[tokio::test]
async fn token_auth_tiers_and_audit() {
    within(async {
        let server = TestServer::builder()
            .bucket(BucketDef::new("notes").field("text", json!({"type": "string"})))
            .auth(AuthMode::Tokens(vec![
                TokenSession::new("admin-token", "admin-1", ["admin"]),
                TokenSession::new("reader-token", "reader-1", ["reader"]),
                TokenSession::new("custom-token", "custom-1", ["auditor"]),
                TokenSession::new("old-token", "old-1", ["writer"]).expires_at(1),
            ]))
            .audit(true)
            .start()
            .expect("start");
        let dbg = format!("{:?}", AuthMode::Tokens(vec![TokenSession::new("admin-token", "u", ["admin"])]));
        assert!(!dbg.contains("admin-token"), "tokens are redacted in Debug: {dbg}");

        let mut c = Client::connect(&server.url()).await;
        let w = c.recv_json().await;
        assert_eq!(w["requiresAuth"], true);
        assert_eq!(c.ok(json!({"type": "auth.whoami"})).await, json!({"authenticated": false}));
        let (code, msg, _) = c.err(json!({"type": "store.all", "bucket": "notes"})).await;
        assert_eq!((code.as_str(), msg.as_str()), ("UNAUTHORIZED", "Authentication required"));
        let (_, msg, _) = c.err(json!({"type": "auth.login", "token": "old-token"})).await;
        assert_eq!(msg, "Token has expired");
        c.ok(json!({"type": "auth.login", "token": "reader-token"})).await;
        c.ok(json!({"type": "store.all", "bucket": "notes"})).await;
        let (code, msg, _) = c.err(json!({"type": "store.insert", "bucket": "notes", "data": {}})).await;
        assert_eq!((code.as_str(), msg.as_str()), ("FORBIDDEN", "Role level insufficient for store.insert (requires write)"));
        c.ok(json!({"type": "auth.login", "token": "custom-token"})).await;
        c.ok(json!({"type": "store.insert", "bucket": "notes", "data": {"text": "custom roles skip the tier check"}})).await;
        c.ok(json!({"type": "auth.login", "token": "admin-token"})).await;
        let t0 = c.ok(json!({"type": "server.connections"})).await[0]["connectedAt"].as_i64().unwrap_or(0);
        c.ok(json!({"type": "store.insert", "bucket": "notes", "data": {"text": "x"}})).await;
        c.ok(json!({"type": "store.all", "bucket": "notes"})).await; // read tier: not audited

        let e = c.ok(json!({"type": "audit.query", "operation": "store.insert"})).await["entries"].clone();
        assert_eq!(e.as_array().map(Vec::len), Some(3));
        assert_eq!(e[0]["userId"], "admin-1");
        assert_eq!(e[1]["userId"], "custom-1");
        assert_eq!((e[2]["result"].clone(), e[2]["error"].clone()), (json!("error"), json!("Role level insufficient for store.insert (requires write)")));
        let e = c.ok(json!({"type": "audit.query", "operation": "store.all"})).await["entries"].clone();
        assert_eq!(e.as_array().map(Vec::len), Some(0), "read-tier operations are not audited");
        let e = c.ok(json!({"type": "audit.query", "from": t0, "limit": 2})).await["entries"].clone();
        assert_eq!(e.as_array().map(Vec::len), Some(2));
        let e = c.ok(json!({"type": "audit.query", "to": 1})).await["entries"].clone();
        assert_eq!(e, json!([]));
        let (_, msg, _) = c.err(json!({"type": "audit.query", "result": "maybe"})).await;
        assert_eq!(msg, "Invalid \"result\": expected \"success\" or \"error\"");
        assert_eq!(c.ok(json!({"type": "auth.logout"})).await, json!({"loggedOut": true}));

        let open = TestServer::builder().start().expect("start");
        let mut d = Client::open(&open.url()).await;
        let (code, msg, _) = d.err(json!({"type": "audit.query"})).await;
        assert_eq!((code.as_str(), msg.as_str()), ("UNKNOWN_OPERATION", "Audit log is not configured"));
        let (_, msg, _) = d.err(json!({"type": "identity.whoami"})).await;
        assert_eq!(msg, "Identity management is not configured");
    })
    .await;
}

#[tokio::test]
async fn identity_users_roles_and_session_resume() {
    within(async {
        let server = TestServer::builder()
            .auth(AuthMode::identity("s3cret"))
            .start()
            .expect("start");
        assert!(!format!("{:?}", AuthMode::Identity { admin_secret: "s3cret".into() }).contains("s3cret"));
        let mut admin = Client::open(&server.url()).await;
        admin.ok(json!({"type": "identity.loginWithSecret", "secret": "s3cret"})).await;
        let user = admin.ok(json!({"type": "identity.createUser", "username": "bob", "password": "bob-password"})).await;
        assert!(user.get("passwordHash").is_none() && user.get("password").is_none());
        let bob_id = user["id"].clone();
        admin.ok(json!({"type": "identity.assignRole", "userId": bob_id, "roleName": "writer"})).await;
        let (code, _, _) = admin.err(json!({"type": "identity.assignRole", "userId": bob_id, "roleName": "writer"})).await;
        assert_eq!(code, "ALREADY_EXISTS");
        admin.ok(json!({"type": "store.defineBucket", "name": "notes", "config": {"key": "id", "schema": {"id": {"type": "string", "generated": "uuid"}}}})).await;
        let (code, msg, _) = admin.err(json!({"type": "identity.deleteUser", "userId": "__superadmin__"})).await;
        assert_eq!((code.as_str(), msg.as_str()), ("FORBIDDEN", "Cannot delete virtual superadmin"));

        let mut bob = Client::open(&server.url()).await;
        let login = bob.ok(json!({"type": "identity.login", "username": "bob", "password": "bob-password"})).await;
        assert_eq!(login["user"]["roles"], json!(["writer"]));
        let token = login["token"].clone();
        bob.ok(json!({"type": "store.insert", "bucket": "notes", "data": {}})).await;
        let (code, msg, _) = bob.err(json!({"type": "store.dropBucket", "name": "notes"})).await;
        assert_eq!((code.as_str(), msg.as_str()), ("FORBIDDEN", "No access to store.dropBucket on notes"));
        let (code, msg, _) = bob.err(json!({"type": "identity.listUsers"})).await;
        assert_eq!((code.as_str(), msg.as_str()), ("FORBIDDEN", "Admin role required"));
        let (code, msg, _) = bob.err(json!({"type": "identity.createRole", "name": "x"})).await;
        assert_eq!((code.as_str(), msg.as_str()), ("FORBIDDEN", "Superadmin role required"));
        let (code, _, _) = bob.err(json!({"type": "server.stats"})).await;
        assert_eq!(code, "FORBIDDEN");

        // The identity session token resumes the session on a new connection.
        let mut again = Client::open(&server.url()).await;
        let r = again.ok(json!({"type": "auth.login", "token": token})).await;
        assert_eq!((r["userId"].clone(), r["roles"].clone()), (bob_id.clone(), json!(["writer"])));
        again.ok(json!({"type": "store.all", "bucket": "notes"})).await;

        // Disabling the user kills its sessions; login is refused.
        admin.ok(json!({"type": "identity.disableUser", "userId": bob_id})).await;
        let mut late = Client::open(&server.url()).await;
        let (_, msg, _) = late.err(json!({"type": "auth.login", "token": token})).await;
        assert_eq!(msg, "Invalid token");
        let (_, msg, _) = late.err(json!({"type": "identity.login", "username": "bob", "password": "bob-password"})).await;
        assert_eq!(msg, "Account disabled");
        let dbg = format!("{server:?} {:?}", server.received_frames());
        let token_text = token.as_str().unwrap_or("?");
        assert!(!dbg.contains(token_text) && !dbg.contains("s3cret") && !dbg.contains("bob-password"), "{dbg}");
        let names = admin.ok(json!({"type": "store.buckets"})).await;
        assert_eq!(names, json!({"count": 1, "names": ["notes"]}));
    })
    .await;
}

#[tokio::test]
async fn procedures_steps_and_transactions() {
    within(async {
        let server = shop();
        let mut c = Client::open(&server.url()).await;
        c.ok(json!({"type": "procedures.register", "procedure": {
            "name": "add-and-list",
            "input": {"name": {"type": "string"}, "age": {"type": "number", "required": false, "default": 20}},
            "steps": [
                {"action": "store.insert", "bucket": "users", "data": {"name": "{{ input.name }}", "age": "{{ input.age }}"}, "as": "created"},
                {"action": "store.where", "bucket": "users", "filter": {}, "as": "all"},
                {"action": "transform", "source": "all", "operation": "pluck", "args": "name", "as": "names"},
                {"action": "store.count", "bucket": "users", "as": "n"},
                {"action": "if", "condition": {"ref": "n", "operator": "gt", "value": 1}, "then": [
                    {"action": "return", "value": {"many": true, "names": "{{ names }}"}}
                ], "else": [
                    {"action": "return", "value": "only {{ created.name }} ({{ all.length }})"}
                ]}
            ]
        }})).await;
        let r = c.ok(json!({"type": "procedures.call", "name": "add-and-list", "input": {"name": "Zed"}})).await;
        assert_eq!(r["success"], true);
        assert_eq!(r["result"], "only Zed (1)");
        assert_eq!(r["results"]["created"]["age"], 20);
        let r = c.ok(json!({"type": "procedures.call", "name": "add-and-list", "input": {"name": "Yan"}})).await;
        assert_eq!(r["result"], json!({"many": true, "names": ["Zed", "Yan"]}));
        let (_, msg, details) = c.err(json!({"type": "procedures.call", "name": "add-and-list", "input": {"name": 1}})).await;
        assert_eq!(msg, "Invalid procedure input: Input \"name\": expected string, got number");
        assert_eq!(details["issues"].as_array().map(Vec::len), Some(1));

        c.ok(json!({"type": "procedures.register", "procedure": {
            "name": "all-or-nothing", "transaction": true,
            "steps": [
                {"action": "store.insert", "bucket": "users", "data": {"name": "Tmp"}},
                {"action": "store.update", "bucket": "users", "key": "missing", "data": {}}
            ]
        }})).await;
        let (code, _, _) = c.err(json!({"type": "procedures.call", "name": "all-or-nothing"})).await;
        assert_eq!(code, "INTERNAL_ERROR");
        assert_eq!(server.records("users").len(), 2, "transactional procedure rolled back");

        let (_, msg, _) = c.err(json!({"type": "procedures.register", "procedure": {"name": "bad", "steps": [{"action": "explode"}]}})).await;
        assert!(msg.starts_with("Procedure validation failed: steps[0].action: expected one of: store.get"), "{msg}");
        let list = c.ok(json!({"type": "procedures.list"})).await;
        assert_eq!(list["procedures"][0], json!({"name": "add-and-list", "stepsCount": 5}));
    })
    .await;
}

#[tokio::test]
async fn server_info_and_error_answers() {
    within(async {
        let server = shop();
        let mut c = Client::open(&server.url()).await;
        let conns = c.ok(json!({"type": "server.connections"})).await;
        assert_eq!(conns[0]["connectionId"], "conn-1");
        assert_eq!(conns[0]["remoteAddress"], "127.0.0.1");
        let stats = c.ok(json!({"type": "server.stats"})).await;
        assert_eq!(
            (
                stats["name"].clone(),
                stats["authEnabled"].clone(),
                stats["rulesEnabled"].clone()
            ),
            (json!("noex-server"), json!(false), json!(true))
        );
        for (req, code, msg) in [
            (
                json!({"type": "foo.bar"}),
                "UNKNOWN_OPERATION",
                "Unknown operation \"foo.bar\"",
            ),
            (
                json!({"type": "store.explode"}),
                "UNKNOWN_OPERATION",
                "Unknown store operation \"store.explode\"",
            ),
            (
                json!({"type": "rules.explode"}),
                "UNKNOWN_OPERATION",
                "Unknown rules operation \"rules.explode\"",
            ),
            (
                json!({"type": "procedures.explode"}),
                "UNKNOWN_OPERATION",
                "Unknown procedures operation \"procedures.explode\"",
            ),
            (
                json!({"type": "server.explode"}),
                "UNKNOWN_OPERATION",
                "Unknown server operation \"server.explode\"",
            ),
            (
                json!({"type": "auth.login", "token": "x"}),
                "UNKNOWN_OPERATION",
                "Authentication is not configured",
            ),
            (
                json!({"type": "store.subscribe", "query": "nope"}),
                "QUERY_NOT_DEFINED",
                "Query \"nope\" is not defined",
            ),
            (
                json!({"type": "store.dropBucket", "name": "ghost"}),
                "BUCKET_NOT_DEFINED",
                "Bucket \"ghost\" does not exist",
            ),
        ] {
            let (got_code, got_msg, _) = c.err(req).await;
            assert_eq!((got_code.as_str(), got_msg.as_str()), (code, msg));
        }
        // Garbage never breaks the connection.
        for junk in [
            "",
            "}",
            "[[[[",
            "\u{0}\u{1}",
            "123",
            "\"str\"",
            "{\"id\": \"1\", \"type\": \"x\"}",
            "{\"id\": 1, \"type\": 5}",
            &"[".repeat(10_000),
        ] {
            c.send_text(junk).await;
            let v = c.recv_json().await;
            assert_eq!(v["id"], 0, "junk {junk:?} -> {v}");
        }
        let (v, _) = c.request(json!({"type": "store.buckets"})).await;
        assert_eq!(v["type"], "result");
        // Too large a frame: the connection is closed (1 MiB limit), the server survives.
        let huge = format!("{{\"x\":\"{}\"}}", "a".repeat(1_100_000));
        if c.try_send_text(&huge).await {
            let end = c.next_within(Duration::from_secs(2)).await;
            assert!(
                matches!(end, Event::Close(Some((1009, _))) | Event::Ended),
                "{end:?}"
            );
        }
        let mut d = Client::open(&server.url()).await;
        d.ok(json!({"type": "store.buckets"})).await;
    })
    .await;
}

#[tokio::test]
async fn store_pushes_follow_bucket_changes_only() {
    within(async {
        let server = TestServer::builder()
            .bucket(BucketDef::new("users").field("name", json!({"type": "string"})))
            .query("all", QueryDef::all("users"))
            .start()
            .expect("start");
        let mut c = Client::open(&server.url()).await;
        c.ok(json!({"type": "store.insert", "bucket": "users", "data": {"name": "a"}}))
            .await;
        let sub = c
            .ok(json!({"type": "store.subscribe", "query": "all"}))
            .await;
        assert_eq!(sub["data"].as_array().map(Vec::len), Some(1));
        // `clear` publishes nothing: no push now, nor at an unrelated later request.
        c.ok(json!({"type": "store.clear", "bucket": "users"}))
            .await;
        c.ok(json!({"type": "rules.emit", "topic": "x"})).await;
        c.ok(json!({"type": "store.delete", "bucket": "users", "key": "missing"}))
            .await;
        assert!(c.silent_for(Duration::from_millis(150)).await);
        // The next change pushes the whole new result.
        c.ok(json!({"type": "store.insert", "bucket": "users", "data": {"name": "b"}}))
            .await;
        let p = c.recv_json().await;
        assert_eq!(p["data"].as_array().map(Vec::len), Some(1));
        // After `undefineQuery` the subscription is dead but still held by the server.
        c.ok(json!({"type": "store.undefineQuery", "name": "all"}))
            .await;
        c.ok(json!({"type": "store.insert", "bucket": "users", "data": {"name": "c"}}))
            .await;
        assert!(c.silent_for(Duration::from_millis(150)).await);
        let id = sub["subscriptionId"].clone();
        c.ok(json!({"type": "store.unsubscribe", "subscriptionId": id}))
            .await;
        let (code, _, _) = c
            .err(json!({"type": "store.unsubscribe", "subscriptionId": id}))
            .await;
        assert_eq!(code, "NOT_FOUND");
    })
    .await;
}

#[tokio::test]
async fn rule_set_fact_does_not_trigger_fact_rules_and_timers_fire() {
    within(async {
        let server = TestServer::builder().start().expect("start");
        let mut c = Client::open(&server.url()).await;
        c.ok(json!({"type": "rules.subscribe", "pattern": "out.*"})).await;
        let rule = |id: &str, trigger: Value, actions: Value| {
            json!({"type": "rules.registerRule", "rule": {
                "id": id, "name": id, "enabled": true, "tags": [], "conditions": [],
                "trigger": trigger, "actions": actions
            }})
        };
        c.ok(rule(
            "setter",
            json!({"type": "event", "topic": "go"}),
            json!([{"type": "set_fact", "key": "k:1", "value": 1}]),
        ))
        .await;
        c.ok(rule(
            "watcher",
            json!({"type": "fact", "pattern": "k:*"}),
            json!([{"type": "emit_event", "topic": "out.fact", "data": {"key": {"ref": "trigger.fact.key"}}}]),
        ))
        .await;
        // A fact set by a rule goes to the fact store directly: no fact trigger.
        let (_, pushes) = c.request(json!({"type": "rules.emit", "topic": "go"})).await;
        assert!(pushes.is_empty(), "{pushes:?}");
        assert_eq!(c.ok(json!({"type": "rules.getFact", "key": "k:1"})).await, 1);
        // `rules.setFact` does trigger it, before its answer.
        let (_, pushes) = c
            .request(json!({"type": "rules.setFact", "key": "k:2", "value": 2}))
            .await;
        assert_eq!(pushes.len(), 1);
        assert_eq!(pushes[0]["data"]["event"]["data"], json!({"key": "k:2"}));
        // A timer set by a rule fires later with `source: "timer"`.
        c.ok(rule(
            "timer",
            json!({"type": "event", "topic": "later"}),
            json!([{"type": "set_timer", "timer": {"name": "t", "duration": "50ms",
                "onExpire": {"topic": "out.timer", "data": {"v": {"ref": "event.v"}}}}}]),
        ))
        .await;
        c.ok(json!({"type": "rules.emit", "topic": "later", "data": {"v": 7}}))
            .await;
        let p = c.recv_json().await;
        assert_eq!(p["data"]["event"]["source"], "timer");
        assert_eq!(p["data"]["event"]["data"], json!({"v": 7}));
        assert_eq!(c.ok(json!({"type": "rules.stats"})).await["timersCount"], 0);
    })
    .await;
}
