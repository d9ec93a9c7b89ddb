//! Cases that need nothing but a server speaking the protocol: they create their own
//! buckets and queries, so they also run against a real noex-server.

use crate::{unique, Ctx};
use futures::StreamExt;
use noex_client::{ClientOptions, EmitOptions, ErrorCode, Record, RuleMessage, Transaction};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    name: String,
    #[serde(default)]
    age: Option<f64>,
}

async fn people_bucket(client: &noex_client::Client) -> String {
    let name = unique("people");
    client
        .store()
        .define_bucket(
            &name,
            &json!({"key": "id", "schema": {
                "id": {"type": "string", "generated": "uuid"},
                "name": {"type": "string", "required": true},
                "age": {"type": "number", "min": 0},
                "role": {"type": "string", "default": "user"}
            }}),
        )
        .await
        .expect("define bucket");
    name
}

/// Insert, get, update, delete with typed records and their metadata.
pub async fn store_crud_typed_records(ctx: Ctx) {
    let client = ctx.connect(ClientOptions::new()).await;
    let name = people_bucket(&client).await;
    let users = client.store().bucket(&name).typed::<User>();

    let alice = users
        .insert(&json!({"name": "Alice", "age": 30}))
        .await
        .unwrap();
    assert_eq!(alice.version, 1);
    assert!(alice.key.is_string(), "generated key: {:?}", alice.key);
    assert!(alice.created_at > 0 && alice.updated_at >= alice.created_at);
    assert_eq!(
        alice.data,
        User {
            name: "Alice".into(),
            age: Some(30.0)
        }
    );

    let got = users.get(&alice.key).await.unwrap().expect("found");
    assert_eq!(got.data, alice.data);
    assert!(users.get("no-such-key").await.unwrap().is_none());

    let updated = users.update(&alice.key, &json!({"age": 31})).await.unwrap();
    assert_eq!(updated.version, 2);
    assert_eq!(updated.data.age, Some(31.0));
    assert_eq!(updated.data.name, "Alice");

    // Untyped access sees the default and the key too.
    let raw: Record = client
        .store()
        .bucket(&name)
        .get(&alice.key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(raw.data["role"], "user");
    assert_eq!(raw.data["id"], alice.key);

    assert!(users.delete(&alice.key).await.unwrap());
    assert!(users.get(&alice.key).await.unwrap().is_none());
    client.store().drop_bucket(&name).await.unwrap();
    client.disconnect().await;
}

/// where, findOne, count, first, last, paginate (and the page stream), aggregates, clear.
pub async fn store_queries_and_aggregates(ctx: Ctx) {
    let client = ctx.connect(ClientOptions::new()).await;
    let name = people_bucket(&client).await;
    let users = client.store().bucket(&name);
    for (n, age) in [("Alice", 30), ("Bob", 25), ("Carol", 35)] {
        users.insert(&json!({"name": n, "age": age})).await.unwrap();
    }
    let all = users.all().await.unwrap();
    let names: Vec<_> = all
        .iter()
        .map(|r| r.data["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["Alice", "Bob", "Carol"], "insertion order");

    let older = users.where_(json!({"age": {"$gte": 30}})).await.unwrap();
    assert_eq!(older.len(), 2);
    let bob = users
        .find_one(json!({"name": "Bob"}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bob.data["age"], 25);
    assert!(users
        .find_one(json!({"name": "Nobody"}))
        .await
        .unwrap()
        .is_none());
    assert_eq!(users.count(None).await.unwrap(), 3);
    assert_eq!(
        users
            .count(Some(json!({"age": {"$lt": 30}})))
            .await
            .unwrap(),
        1
    );
    assert_eq!(users.first(2).await.unwrap().len(), 2);
    assert_eq!(users.last(1).await.unwrap()[0].data["name"], "Carol");

    let page = users.paginate(2, None).await.unwrap();
    assert_eq!(page.records.len(), 2);
    assert!(page.has_more);
    let rest = users.paginate(2, page.next_cursor.clone()).await.unwrap();
    assert_eq!(rest.records.len(), 1);
    assert!(!rest.has_more);
    let pages: Vec<_> = users.pages(2).collect().await;
    let walked: usize = pages.into_iter().map(|p| p.unwrap().len()).sum();
    assert_eq!(walked, 3);

    assert_eq!(users.sum("age", None).await.unwrap(), 90.0);
    assert_eq!(users.avg("age", None).await.unwrap(), 30.0);
    assert_eq!(users.min("age", None).await.unwrap(), Some(25.0));
    assert_eq!(
        users
            .max("age", Some(json!({"age": {"$lt": 35}})))
            .await
            .unwrap(),
        Some(30.0)
    );

    users.clear().await.unwrap();
    assert_eq!(users.count(None).await.unwrap(), 0);
    client.store().drop_bucket(&name).await.unwrap();
}

/// Server errors come back typed, with details, and the client carries on.
pub async fn store_errors(ctx: Ctx) {
    let client = ctx.connect(ClientOptions::new()).await;
    let name = people_bucket(&client).await;
    let users = client.store().bucket(&name);
    let err = users.insert(&json!({"age": -1})).await.unwrap_err();
    assert!(err.is(&ErrorCode::ValidationError), "{err:?}");
    let details = match &err {
        noex_client::Error::Server { details, .. } => details.clone().expect("details"),
        other => panic!("{other:?}"),
    };
    let fields: Vec<_> = details
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        fields.contains(&"name".to_owned()) && fields.contains(&"age".to_owned()),
        "{details}"
    );
    assert!(!err.may_have_been_applied());

    let missing = client
        .store()
        .bucket(&unique("ghost"))
        .all()
        .await
        .unwrap_err();
    assert!(missing.is(&ErrorCode::BucketNotDefined), "{missing:?}");
    let query = client
        .store()
        .subscribe::<Value>(&unique("no-query"), None)
        .await
        .unwrap_err();
    assert!(query.is(&ErrorCode::QueryNotDefined), "{query:?}");
    // Still working.
    assert_eq!(users.count(None).await.unwrap(), 0);
    client.store().drop_bucket(&name).await.unwrap();
}

/// Transactions apply everything or nothing.
pub async fn transactions(ctx: Ctx) {
    let client = ctx.connect(ClientOptions::new()).await;
    let name = people_bucket(&client).await;
    let users = client.store().bucket(&name);
    let alice = users
        .insert(&json!({"name": "Alice", "age": 30}))
        .await
        .unwrap();

    let tx = Transaction::new()
        .insert(&name, &json!({"name": "Eve", "age": 22}))
        .unwrap()
        .update(&name, &alice.key, &json!({"age": 31}))
        .unwrap()
        .get(&name, &alice.key)
        .unwrap()
        .where_(&name, json!({"name": "Eve"}))
        .unwrap()
        .count(&name, None)
        .unwrap();
    let results = client.store().transaction(tx).await.unwrap();
    assert_eq!(results.len(), 5);
    assert_eq!(results[2].data["age"], 31);
    assert_eq!(results[4].data, 2);

    let failing = Transaction::new()
        .insert(&name, &json!({"name": "Mallory"}))
        .unwrap()
        .insert(&name, &json!({"age": 5}))
        .unwrap();
    let err = client.store().transaction(failing).await.unwrap_err();
    assert!(err.code().is_some(), "{err:?}");
    assert_eq!(
        users.count(None).await.unwrap(),
        2,
        "nothing of a failed transaction applied"
    );
    client.store().drop_bucket(&name).await.unwrap();
}

/// defineBucket, updateBucket, getBucketSchema, dropBucket, defineQuery, listQueries,
/// undefineQuery, buckets, stats.
pub async fn admin_store_ops(ctx: Ctx) {
    let client = ctx.connect(ClientOptions::new()).await;
    let store = client.store();
    let name = unique("products");
    let created = store
        .define_bucket(&name, &json!({"key": "id", "schema": {"id": {"type": "string", "generated": "uuid"}, "title": {"type": "string", "required": true}}}))
        .await
        .unwrap();
    assert_eq!(created["created"], true);
    let again = store
        .define_bucket(
            &name,
            &json!({"key": "id", "schema": {"id": {"type": "string"}}}),
        )
        .await
        .unwrap_err();
    assert!(again.is(&ErrorCode::AlreadyExists), "{again:?}");
    let schema = store.get_bucket_schema(&name).await.unwrap();
    assert_eq!(schema["config"]["schema"]["title"]["required"], true);
    store
        .update_bucket(
            &name,
            &json!({"addFields": {"stock": {"type": "number", "default": 0}}}),
        )
        .await
        .unwrap();
    let widget = store
        .bucket(&name)
        .insert(&json!({"title": "Widget"}))
        .await
        .unwrap();
    assert_eq!(widget.data["stock"], 0);
    assert!(store.buckets().await.unwrap().names.contains(&name));

    let query = unique("cheap");
    store
        .define_query(&query, &json!({"bucket": name, "filter": {"stock": 0}}))
        .await
        .unwrap();
    let listed = store.list_queries().await.unwrap();
    assert!(listed
        .iter()
        .any(|q| q.name == query && q.kind == "declarative"));
    store.undefine_query(&query).await.unwrap();
    let gone = store.undefine_query(&query).await.unwrap_err();
    assert!(gone.is(&ErrorCode::QueryNotDefined), "{gone:?}");
    assert!(store.stats().await.unwrap().is_object());
    store.drop_bucket(&name).await.unwrap();
    let dropped = store.get_bucket_schema(&name).await.unwrap_err();
    assert!(dropped.is(&ErrorCode::BucketNotDefined), "{dropped:?}");
}

/// A declarative query subscription: initial data first, then the whole new result on
/// every change.
pub async fn store_subscription_pushes(ctx: Ctx) {
    let client = ctx.connect(ClientOptions::new()).await;
    let name = people_bucket(&client).await;
    let query = unique("admins");
    client
        .store()
        .define_query(
            &query,
            &json!({"bucket": name, "filter": {"role": "admin"}}),
        )
        .await
        .unwrap();
    let mut sub = client
        .store()
        .subscribe::<Vec<Record<User>>>(&query, None)
        .await
        .unwrap();
    let initial = sub.next().await.unwrap().unwrap();
    assert!(initial.is_empty());
    let users = client.store().bucket(&name);
    users
        .insert(&json!({"name": "Alice", "role": "admin"}))
        .await
        .unwrap();
    let update = ctx
        .within(Duration::from_secs(5), sub.next())
        .await
        .expect("push")
        .unwrap()
        .unwrap();
    assert_eq!(update.len(), 1);
    assert_eq!(update[0].data.name, "Alice");
    users.insert(&json!({"name": "Bob"})).await.unwrap();
    users
        .insert(&json!({"name": "Carol", "role": "admin"}))
        .await
        .unwrap();
    let latest = ctx
        .within(Duration::from_secs(5), async {
            loop {
                let value = sub.next().await.unwrap().unwrap();
                if value.len() == 2 {
                    return value;
                }
            }
        })
        .await
        .expect("second admin pushed");
    assert_eq!(latest[1].data.name, "Carol");
    sub.unsubscribe().await;
    client.store().undefine_query(&query).await.unwrap();
    client.store().drop_bucket(&name).await.unwrap();
}

/// The callback form receives updates; dropping the handle unsubscribes on the server.
pub async fn subscription_callback_and_drop(ctx: Ctx) {
    let client = ctx.connect(ClientOptions::new()).await;
    let name = people_bucket(&client).await;
    let query = unique("everyone");
    client
        .store()
        .define_query(&query, &json!({"bucket": name}))
        .await
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::<usize>::new()));
    let sink = seen.clone();
    let sub = client
        .store()
        .subscribe::<Vec<Value>>(&query, None)
        .await
        .unwrap();
    let handle = sub.on_update(move |v| sink.lock().unwrap().push(v.unwrap().len()));
    client
        .store()
        .bucket(&name)
        .insert(&json!({"name": "Alice"}))
        .await
        .unwrap();
    let seen2 = seen.clone();
    ctx.eventually(Duration::from_secs(5), "callback sees the insert", || {
        let seen = seen2.clone();
        async move { seen.lock().unwrap().last() == Some(&1) }
    })
    .await;
    let me = |list: Vec<noex_client::ConnectionInfo>| {
        list.iter().map(|c| c.store_subscription_count).sum::<u64>()
    };
    assert!(me(client.server().connections().await.unwrap()) >= 1);
    drop(handle);
    let client2 = client.clone();
    ctx.eventually(
        Duration::from_secs(5),
        "server forgets the subscription",
        || {
            let client = client2.clone();
            async move { me(client.server().connections().await.unwrap()) == 0 }
        },
    )
    .await;
    client.store().undefine_query(&query).await.unwrap();
    client.store().drop_bucket(&name).await.unwrap();
}

/// emit with ids, event pushes to matching patterns, facts.
pub async fn rules_events_and_facts(ctx: Ctx) {
    let client = ctx.connect(ClientOptions::new()).await;
    let rules = client.rules();
    let topic = unique("order");
    let mut sub = rules.subscribe(&format!("{topic}.*")).await.unwrap();
    let emitted = rules
        .emit_with(
            &format!("{topic}.created"),
            &json!({"total": 99}),
            EmitOptions {
                correlation_id: Some("corr-1".into()),
                causation_id: Some("cause-1".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(emitted.correlation_id.as_deref(), Some("corr-1"));
    assert_eq!(emitted.data["total"], 99);
    let RuleMessage { topic: got, event } = ctx
        .within(Duration::from_secs(5), sub.next())
        .await
        .expect("event")
        .unwrap()
        .unwrap();
    assert_eq!(got, format!("{topic}.created"));
    assert_eq!(event.id, emitted.id);
    rules
        .emit(&unique("other.topic"), &json!({}))
        .await
        .unwrap();
    rules
        .emit(&format!("{topic}.shipped"), &json!({}))
        .await
        .unwrap();
    let next = ctx
        .within(Duration::from_secs(5), sub.next())
        .await
        .expect("event")
        .unwrap()
        .unwrap();
    assert_eq!(
        next.topic,
        format!("{topic}.shipped"),
        "non-matching topic skipped"
    );

    let key = format!("{}:42:tier", unique("customer"));
    let fact = rules.set_fact(&key, &json!("gold")).await.unwrap();
    assert_eq!(fact.value, "gold");
    assert_eq!(
        rules.get_fact::<String>(&key).await.unwrap().as_deref(),
        Some("gold")
    );
    assert_eq!(
        rules.get_fact::<String>(&unique("nope")).await.unwrap(),
        None
    );
    let prefix = key.split(':').next().unwrap().to_owned();
    let found = rules
        .query_facts(&format!("{prefix}:*:tier"))
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert!(rules
        .all_facts()
        .await
        .unwrap()
        .iter()
        .any(|f| f.key == key));
    assert!(rules.delete_fact(&key).await.unwrap());
    assert!(!rules.delete_fact(&key).await.unwrap());
    sub.unsubscribe().await;
}

/// The rule registry: register, get, list, disable, enable, update, validate, unregister.
pub async fn rules_admin(ctx: Ctx) {
    let client = ctx.connect(ClientOptions::new()).await;
    let rules = client.rules();
    let id = unique("rule");
    let rule = json!({"id": id, "name": "Ship notify", "priority": 100, "enabled": true, "tags": ["demo"],
        "trigger": {"type": "event", "topic": "order.paid"}, "conditions": [],
        "actions": [{"type": "emit_event", "topic": "order.ready", "data": {}}]});
    let registered = rules.register_rule(&rule).await.unwrap();
    assert_eq!(registered["id"], id);
    assert_eq!(rules.get_rule(&id).await.unwrap()["name"], "Ship notify");
    assert!(rules
        .get_rules()
        .await
        .unwrap()
        .iter()
        .any(|r| r["id"] == id));
    assert_eq!(rules.disable_rule(&id).await.unwrap()["enabled"], false);
    assert_eq!(rules.enable_rule(&id).await.unwrap()["enabled"], true);
    // An update bumps the version; noex-rules numbers versions from one counter shared by
    // all rules, so only "greater than before" holds on a server with other rules.
    let updated = rules
        .update_rule(&id, &json!({"priority": 5}))
        .await
        .unwrap();
    let version = |v: &Value| v["version"].as_u64().expect("a version");
    assert!(
        version(&updated) > version(&registered),
        "{registered} then {updated}"
    );
    assert_eq!(rules.get_rule(&id).await.unwrap()["priority"], 5);
    let verdict = rules.validate_rule(&json!({"id": "bad"})).await.unwrap();
    assert!(!verdict.valid && !verdict.errors.is_empty());
    rules.unregister_rule(&id).await.unwrap();
    assert!(rules
        .get_rule(&id)
        .await
        .unwrap_err()
        .is(&ErrorCode::NotFound));
    assert!(rules.stats().await.unwrap().is_object());
}

/// Procedures: register, get, list, call, update, unregister.
pub async fn procedures(ctx: Ctx) {
    let client = ctx.connect(ClientOptions::new()).await;
    let name = people_bucket(&client).await;
    let users = client.store().bucket(&name);
    users
        .insert(&json!({"name": "A", "age": 40}))
        .await
        .unwrap();
    users.insert(&json!({"name": "B", "age": 2})).await.unwrap();
    let proc_name = unique("sum-ages");
    let procedures = client.procedures();
    procedures
        .register(&json!({"name": proc_name, "description": "Sum ages",
        "input": {"min": {"type": "number", "required": true}},
        "steps": [
            {"action": "store.where", "bucket": name, "filter": {}, "as": "people"},
            {"action": "aggregate", "source": "people", "field": "age", "op": "sum", "as": "total"},
            {"action": "return", "value": {"total": "{{ total }}"}}
        ]}))
        .await
        .unwrap();
    assert_eq!(
        procedures.get(&proc_name).await.unwrap()["description"],
        "Sum ages"
    );
    assert!(procedures
        .list()
        .await
        .unwrap()
        .iter()
        .any(|p| p["name"] == proc_name));
    let result = procedures
        .call(&proc_name, &json!({"min": 0}))
        .await
        .unwrap();
    assert_eq!(result["success"], true, "{result}");
    assert_eq!(result["result"]["total"], 42, "{result}");
    let missing = procedures.call(&proc_name, &json!({})).await.unwrap_err();
    assert!(missing.is(&ErrorCode::ValidationError), "{missing:?}");
    procedures
        .update(&proc_name, &json!({"description": "v2"}))
        .await
        .unwrap();
    assert_eq!(
        procedures.get(&proc_name).await.unwrap()["description"],
        "v2"
    );
    procedures.unregister(&proc_name).await.unwrap();
    assert!(procedures
        .get(&proc_name)
        .await
        .unwrap_err()
        .is(&ErrorCode::NotFound));
    client.store().drop_bucket(&name).await.unwrap();
}

/// server.stats and server.connections.
pub async fn server_introspection(ctx: Ctx) {
    let client = ctx.connect(ClientOptions::new()).await;
    let stats = client.server().stats().await.unwrap();
    assert_eq!(stats["name"], "noex-server");
    assert!(stats["connectionCount"].as_u64().unwrap() >= 1);
    let connections = client.server().connections().await.unwrap();
    assert!(!connections.is_empty());
    assert!(connections
        .iter()
        .all(|c| c.connection_id.starts_with("conn-")));
    // An operation the server does not know is a typed error, and the client carries on.
    let unknown = client
        .request(noex_client::proto::ops::auth::whoami())
        .await
        .unwrap_err();
    assert!(unknown.is(&ErrorCode::UnknownOperation), "{unknown:?}");
    assert!(client.is_connected());
}
