//! Cases that need nothing but a server speaking the protocol: they create their own
//! buckets and queries, so they also run against a real noex-server.

pub use super::live::{
    live_burst_between_reads_is_merged, live_count_query_is_not_a_list,
    live_insert_update_delete_are_one_keyed_change_each, live_key_field_names_the_bucket_key,
    live_params_on_a_sorted_where_query, live_record_replaced_under_its_key_between_reads,
    live_unsubscribe_drop_and_on_change,
};

use crate::{unique, Ctx};
use futures::StreamExt;
use noex_client::proto::ops;
use noex_client::{
    ClientOptions, EmitOptions, ErrorCode, Filter, Record, RuleMessage, Transaction,
};
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

/// A fresh bucket of people (generated `id` keys, `role` defaults to `user`), for the cases
/// here and the live views'.
pub(super) async fn people_bucket(client: &noex_client::Client) -> String {
    let name = unique("people");
    client
        .store()
        .define_bucket(
            &name,
            json!({"key": "id", "schema": {
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
        .insert(json!({"name": "Alice", "age": 30}))
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

    let updated = users.update(&alice.key, json!({"age": 31})).await.unwrap();
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
        users.insert(json!({"name": n, "age": age})).await.unwrap();
    }
    let all = users.all().await.unwrap();
    let names: Vec<_> = all
        .iter()
        .map(|r| r.data["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["Alice", "Bob", "Carol"], "insertion order");

    let older = users.find(json!({"age": {"$gte": 30}})).await.unwrap();
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
    assert_eq!(users.count(Filter::all()).await.unwrap(), 3);
    assert_eq!(users.count(json!({"age": {"$lt": 30}})).await.unwrap(), 1);
    assert_eq!(users.count(Filter::field("age").lt(30)).await.unwrap(), 1);
    assert_eq!(users.first(2).await.unwrap().len(), 2);
    assert_eq!(users.last(1).await.unwrap()[0].data["name"], "Carol");

    let page = users.paginate(2).await.unwrap();
    assert_eq!(page.records.len(), 2);
    assert!(page.has_more);
    let rest = users
        .paginate(2)
        .after(page.next_cursor.clone())
        .await
        .unwrap();
    assert_eq!(rest.records.len(), 1);
    assert!(!rest.has_more);
    let pages: Vec<_> = users.pages(2).collect().await;
    let walked: usize = pages.into_iter().map(|p| p.unwrap().len()).sum();
    assert_eq!(walked, 3);

    assert_eq!(users.sum("age", Filter::all()).await.unwrap(), 90.0);
    assert_eq!(users.avg("age", Filter::all()).await.unwrap(), 30.0);
    assert_eq!(users.min("age", Filter::all()).await.unwrap(), Some(25.0));
    assert_eq!(
        users.max("age", json!({"age": {"$lt": 35}})).await.unwrap(),
        Some(30.0)
    );

    users.clear().await.unwrap();
    assert_eq!(users.count(Filter::all()).await.unwrap(), 0);
    client.store().drop_bucket(&name).await.unwrap();
}

/// Server errors come back typed, with details, and the client carries on.
pub async fn store_errors(ctx: Ctx) {
    let client = ctx.connect(ClientOptions::new()).await;
    let name = people_bucket(&client).await;
    let users = client.store().bucket(&name);
    let err = users.insert(json!({"age": -1})).await.unwrap_err();
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
        .subscribe::<Value>(&unique("no-query"))
        .await
        .unwrap_err();
    assert!(query.is(&ErrorCode::QueryNotDefined), "{query:?}");
    // Still working.
    assert_eq!(users.count(Filter::all()).await.unwrap(), 0);
    client.store().drop_bucket(&name).await.unwrap();
}

/// Transactions apply everything or nothing.
pub async fn transactions(ctx: Ctx) {
    let client = ctx.connect(ClientOptions::new()).await;
    let name = people_bucket(&client).await;
    let users = client.store().bucket(&name);
    let alice = users
        .insert(json!({"name": "Alice", "age": 30}))
        .await
        .unwrap();
    let bob = users
        .insert(json!({"name": "Bob", "age": 40}))
        .await
        .unwrap();

    let tx = Transaction::new()
        .insert(&name, json!({"name": "Eve", "age": 22}))
        .update(&name, &alice.key, json!({"age": 31}))
        .get(&name, &alice.key)
        .find(&name, Filter::field("name").eq("Eve"))
        .find_one(&name, json!({"name": "Nobody"}))
        .count(&name, Filter::all())
        .delete(&name, &bob.key);
    let results = client.store().transaction::<User>(tx).await.unwrap();
    assert_eq!(results.len(), 7);
    let eve = results[0].clone().into_record().expect("inserted");
    assert_eq!((eve.version, eve.data.name.as_str()), (1, "Eve"));
    assert_eq!(results[1].clone().into_record().unwrap().version, 2);
    assert_eq!(
        results[2].clone().into_record().unwrap().data.age,
        Some(31.0)
    );
    assert_eq!(results[3].clone().into_records().unwrap().len(), 1);
    assert_eq!(results[4].outcome, noex_client::TxOutcome::Found(None));
    assert_eq!(results[5].count(), Some(3));
    assert_eq!(results[6].deleted(), Some(true));

    // The store commits each record's net writes against the record as it was: an update
    // then a delete of one record conflicts with itself, and nothing is applied.
    let twice = Transaction::new()
        .update(&name, &alice.key, json!({"age": 32}))
        .delete(&name, &alice.key);
    let err = client
        .store()
        .transaction::<Value>(twice)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&ErrorCode::Conflict), "{err:?}");
    let kept = users.get(&alice.key).await.unwrap().expect("still there");
    assert_eq!((kept.version, kept.data["age"].clone()), (2, json!(31)));

    let failing = Transaction::new()
        .insert(&name, json!({"name": "Mallory"}))
        .insert(&name, json!({"age": 5}));
    let err = client
        .store()
        .transaction::<Value>(failing)
        .await
        .unwrap_err();
    assert!(err.code().is_some(), "{err:?}");
    assert_eq!(
        users.count(Filter::all()).await.unwrap(),
        2,
        "Alice and Eve only: nothing of a failed transaction applied"
    );
    // A value that cannot be serialised fails the transaction when it is sent, unsent.
    let unserialisable: std::collections::HashMap<(u8, u8), u8> = [((1, 2), 3)].into();
    let bad = Transaction::new()
        .insert(&name, json!({"name": "Trent"}))
        .insert(&name, unserialisable);
    let err = client.store().transaction::<Value>(bad).await.unwrap_err();
    assert!(
        err.code().is_none() && !err.may_have_been_applied(),
        "{err:?}"
    );
    assert_eq!(users.count(Filter::all()).await.unwrap(), 2);
    client.store().drop_bucket(&name).await.unwrap();
}

/// defineBucket, updateBucket, getBucketSchema, dropBucket, defineQuery, listQueries,
/// undefineQuery, buckets, stats.
pub async fn admin_store_ops(ctx: Ctx) {
    let client = ctx.connect(ClientOptions::new()).await;
    let store = client.store();
    let name = unique("products");
    store
        .define_bucket(&name, json!({"key": "id", "schema": {"id": {"type": "string", "generated": "uuid"}, "title": {"type": "string", "required": true}}, "indexes": ["title"]}))
        .await
        .unwrap();
    let again = store
        .define_bucket(
            &name,
            json!({"key": "id", "schema": {"id": {"type": "string"}}}),
        )
        .await
        .unwrap_err();
    assert!(again.is(&ErrorCode::AlreadyExists), "{again:?}");
    let schema = store.get_bucket_schema(&name).await.unwrap();
    assert_eq!(schema.name, name);
    assert_eq!(schema.config.key, "id");
    assert_eq!(schema.config.schema["title"]["required"], true);
    assert_eq!(schema.config.indexes.unwrap(), ["title"]);
    store
        .update_bucket(
            &name,
            json!({"addFields": {"stock": {"type": "number", "default": 0}}}),
        )
        .await
        .unwrap();
    let widget = store
        .bucket(&name)
        .insert(json!({"title": "Widget"}))
        .await
        .unwrap();
    assert_eq!(widget.data["stock"], 0);
    assert!(store.buckets().await.unwrap().names.contains(&name));

    let query = unique("cheap");
    store
        .define_query(&query, json!({"bucket": name, "filter": {"stock": 0}}))
        .await
        .unwrap();
    let listed = store.list_queries().await.unwrap();
    assert!(listed
        .iter()
        .any(|q| q.name == query && q.kind == "declarative"));
    store.undefine_query(&query).await.unwrap();
    let gone = store.undefine_query(&query).await.unwrap_err();
    assert!(gone.is(&ErrorCode::QueryNotDefined), "{gone:?}");
    let stats = store.stats().await.unwrap();
    assert!(stats.buckets.names.contains(&name), "{stats:?}");
    assert_eq!(stats.records.per_bucket.get(&name), Some(&1), "{stats:?}");
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
        .define_query(&query, json!({"bucket": name, "filter": {"role": "admin"}}))
        .await
        .unwrap();
    let mut sub = client
        .store()
        .subscribe::<Vec<Record<User>>>(&query)
        .await
        .unwrap();
    let initial = sub.next().await.unwrap().unwrap();
    assert!(initial.is_empty());
    let users = client.store().bucket(&name);
    users
        .insert(json!({"name": "Alice", "role": "admin"}))
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
    users.insert(json!({"name": "Bob"})).await.unwrap();
    users
        .insert(json!({"name": "Carol", "role": "admin"}))
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
        .define_query(&query, json!({"bucket": name}))
        .await
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::<usize>::new()));
    let sink = seen.clone();
    let sub = client
        .store()
        .subscribe::<Vec<Value>>(&query)
        .await
        .unwrap();
    let handle = sub.on_update(move |v| sink.lock().unwrap().push(v.unwrap().len()));
    client
        .store()
        .bucket(&name)
        .insert(json!({"name": "Alice"}))
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
            json!({"total": 99}),
            EmitOptions::new()
                .correlation_id("corr-1")
                .causation_id("cause-1"),
        )
        .await
        .unwrap();
    assert_eq!(emitted.correlation_id.as_deref(), Some("corr-1"));
    assert_eq!(emitted.data["total"], 99);
    let RuleMessage {
        topic: got, event, ..
    } = ctx
        .within(Duration::from_secs(5), sub.next())
        .await
        .expect("event")
        .unwrap()
        .unwrap()
        .into_event()
        .expect("an event");
    assert_eq!(got, format!("{topic}.created"));
    assert_eq!(event.id, emitted.id);
    rules.emit(&unique("other.topic"), json!({})).await.unwrap();
    rules
        .emit(&format!("{topic}.shipped"), json!({}))
        .await
        .unwrap();
    let next = ctx
        .within(Duration::from_secs(5), sub.next())
        .await
        .expect("event")
        .unwrap()
        .unwrap()
        .into_event()
        .expect("an event");
    assert_eq!(
        next.topic,
        format!("{topic}.shipped"),
        "non-matching topic skipped"
    );

    let key = format!("{}:42:tier", unique("customer"));
    let fact = rules.set_fact(&key, "gold").await.unwrap();
    assert_eq!(fact.value, Some(json!("gold")));
    assert_eq!(
        rules.get_fact::<String>(&key).await.unwrap().as_deref(),
        Some("gold")
    );
    assert_eq!(rules.get_fact(&key).await.unwrap(), Some(json!("gold")));
    assert_eq!(
        rules.get_fact::<Value>(&unique("nope")).await.unwrap(),
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
    assert_eq!(registered.id, id);
    let got = rules.get_rule(&id).await.unwrap();
    assert_eq!(
        (got.name.as_str(), got.priority, got.enabled),
        ("Ship notify", Some(100), Some(true))
    );
    assert_eq!(got.trigger["topic"], "order.paid");
    assert_eq!(got.tags.as_deref(), Some(&["demo".to_owned()][..]));
    assert!(rules
        .get_rules()
        .await
        .unwrap()
        .iter()
        .any(|r| r.id == id && r.name == "Ship notify"));
    assert!(!rules.disable_rule(&id).await.unwrap().enabled);
    assert_eq!(rules.get_rule(&id).await.unwrap().enabled, Some(false));
    assert!(rules.enable_rule(&id).await.unwrap().enabled);
    assert_eq!(rules.get_rule(&id).await.unwrap().enabled, Some(true));
    // An update bumps the version; noex-rules numbers versions from one counter shared by
    // all rules, so only "greater than before" holds on a server with other rules.
    let updated = rules
        .update_rule(&id, json!({"priority": 5}))
        .await
        .unwrap();
    assert!(
        updated.version > registered.version,
        "{registered:?} then {updated:?}"
    );
    assert_eq!(rules.get_rule(&id).await.unwrap().priority, Some(5));
    let verdict = rules.validate_rule(json!({"id": "bad"})).await.unwrap();
    assert!(!verdict.valid && !verdict.errors.is_empty());
    assert!(
        verdict.errors.iter().any(|e| e.path == "trigger"),
        "{verdict:?}"
    );
    rules.unregister_rule(&id).await.unwrap();
    assert!(rules
        .get_rule(&id)
        .await
        .unwrap_err()
        .is(&ErrorCode::NotFound));
    let stats = rules.stats().await.unwrap();
    assert!(
        stats.events_processed <= stats.events_processed + 1,
        "{stats:?}"
    );
}

/// Procedures: register, get, list, call, update, unregister.
pub async fn procedures(ctx: Ctx) {
    let client = ctx.connect(ClientOptions::new()).await;
    let name = people_bucket(&client).await;
    let users = client.store().bucket(&name);
    users.insert(json!({"name": "A", "age": 40})).await.unwrap();
    users.insert(json!({"name": "B", "age": 2})).await.unwrap();
    let proc_name = unique("sum-ages");
    let procedures = client.procedures();
    procedures
        .register(json!({"name": proc_name, "description": "Sum ages",
        "input": {"min": {"type": "number", "required": true}},
        "steps": [
            {"action": "store.where", "bucket": name, "filter": {}, "as": "people"},
            {"action": "aggregate", "source": "people", "field": "age", "op": "sum", "as": "total"},
            {"action": "return", "value": {"total": "{{ total }}"}}
        ]}))
        .await
        .unwrap();
    let got = procedures.get(&proc_name).await.unwrap();
    assert_eq!(got.description.as_deref(), Some("Sum ages"));
    assert_eq!(got.steps.len(), 3);
    assert_eq!(got.input.expect("input")["min"]["required"], true);
    assert!(procedures
        .list()
        .await
        .unwrap()
        .iter()
        .any(|p| p.name == proc_name && p.steps_count == 3));
    #[derive(Deserialize)]
    struct Total {
        total: f64,
    }
    let result = procedures
        .call::<Total>(&proc_name)
        .input(json!({"min": 0}))
        .await
        .unwrap();
    assert!(result.success);
    assert_eq!(result.result.expect("returned").total, 42.0);
    let untyped: noex_client::ProcedureResult = procedures
        .call(&proc_name)
        .input(json!({"min": 0}))
        .await
        .unwrap();
    assert_eq!(untyped.result, Some(json!({"total": 42})));
    let missing = procedures.call::<Value>(&proc_name).await.unwrap_err();
    assert!(missing.is(&ErrorCode::ValidationError), "{missing:?}");
    procedures
        .update(&proc_name, json!({"description": "v2"}))
        .await
        .unwrap();
    assert_eq!(
        procedures
            .get(&proc_name)
            .await
            .unwrap()
            .description
            .as_deref(),
        Some("v2")
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
    assert_eq!(stats.name, "noex-server");
    assert!(stats.connection_count >= 1);
    assert!(stats.connections.active >= 1);
    assert!(!stats.store.name.is_empty(), "{stats:?}");
    let connections = client.server().connections().await.unwrap();
    assert!(!connections.is_empty());
    assert!(connections
        .iter()
        .all(|c| c.connection_id.starts_with("conn-")));
    // An operation the server does not know is a typed error, and the client carries on.
    let unknown = client.request(ops::auth::whoami()).await.unwrap_err();
    assert!(unknown.is(&ErrorCode::UnknownOperation), "{unknown:?}");
    assert!(client.is_connected());
}

/// Every filter operator of the builder, against the store's own semantics.
pub async fn filter_builder_operators(ctx: Ctx) {
    let client = ctx.connect(ClientOptions::new()).await;
    let name = people_bucket(&client).await;
    let users = client.store().bucket(&name);
    let (a, b, c) = join3(
        users.insert(json!({"name": "Alice", "age": 30, "role": "admin"})),
        users.insert(json!({"name": "Bob", "age": 25})),
        users.insert(json!({"name": "carol", "age": 35, "role": "owner"})),
    )
    .await;
    let _ = (a.unwrap(), b.unwrap(), c.unwrap());
    let count = |filter: Filter| {
        let users = users.clone();
        async move { users.count(filter).await.unwrap() }
    };
    let f = Filter::field;
    let cases: Vec<(Filter, u64)> = vec![
        (f("role").eq("admin").into(), 1),
        (f("role").neq("admin").into(), 2),
        (f("age").gt(30).into(), 1),
        (f("age").gte(30).into(), 2),
        (f("age").lt(30).into(), 1),
        (f("age").lte(30).into(), 2),
        (f("role").one_of(["admin", "owner"]).into(), 2),
        (f("role").none_of(["admin"]).into(), 2),
        (f("name").contains("AR").into(), 1),
        (f("name").starts_with("Al").into(), 1),
        (f("name").ends_with("ob").into(), 1),
        (f("age").between(25, 30).into(), 2),
        (f("age").gte(26).lt(36).into(), 2),
        (f("age").gte(30).and(f("role").eq("admin")), 1),
        (Filter::or([f("name").eq("Bob"), f("role").eq("owner")]), 2),
        (f("age").eq(30).and(f("age").eq(25)), 0),
        (
            Filter::all_of([f("age").gt(20), f("name").starts_with("c")]),
            1,
        ),
        (Filter::all(), 3),
    ];
    for (filter, expected) in cases {
        let json = filter.to_value();
        assert_eq!(count(filter).await, expected, "{json}");
    }
    let found = users
        .find_one(f("name").eq("Bob"))
        .await
        .unwrap()
        .expect("Bob");
    assert_eq!(found.data["age"], 25);
    let admins = users.find(f("role").exists(true)).await.unwrap();
    // `role` has a default, so every record has one.
    assert_eq!(admins.len(), 3);
    assert_eq!(users.sum("age", f("age").lt(35)).await.unwrap(), 55.0);
    client.store().drop_bucket(&name).await.unwrap();
}

/// Runs three futures at once without naming a runtime (`join!` over temporaries).
async fn join3<A, B, C>(
    a: impl std::future::Future<Output = A>,
    b: impl std::future::Future<Output = B>,
    c: impl std::future::Future<Output = C>,
) -> (A, B, C) {
    futures::join!(a, b, c)
}

/// `rules.emit` without data, ending a rules subscription from `rules()`, and
/// unsubscribing by the server's subscription id in both domains.
pub async fn unsubscribe_and_bare_emit(ctx: Ctx) {
    let client = ctx.connect(ClientOptions::new()).await;
    let rules = client.rules();
    let topic = unique("tick");
    let mut sub = rules.subscribe(&format!("{topic}.*")).await.unwrap();
    let emitted = rules
        .emit_without_data(&format!("{topic}.now"))
        .await
        .unwrap();
    assert_eq!(emitted.data, json!({}));
    let message = ctx
        .within(Duration::from_secs(5), sub.next())
        .await
        .expect("event")
        .unwrap()
        .unwrap()
        .into_event()
        .expect("an event");
    assert_eq!(message.event.id, emitted.id);
    let live = |client: noex_client::Client| async move {
        let list = client.server().connections().await.unwrap();
        list.iter().map(|c| c.rules_subscription_count).sum::<u64>()
    };
    assert!(live(client.clone()).await >= 1);
    rules.unsubscribe(sub.id()).await;
    ctx.eventually(Duration::from_secs(5), "rules subscription ended", || {
        let client = client.clone();
        async move { live(client).await == 0 }
    })
    .await;

    // Subscriptions made with raw requests end by the id the server gave.
    #[derive(Deserialize)]
    struct Subscribed {
        #[serde(rename = "subscriptionId")]
        subscription_id: String,
    }
    let raw: Subscribed = client
        .request(ops::rules::subscribe(&format!("{topic}.*")))
        .await
        .unwrap()
        .deserialize()
        .unwrap();
    assert!(
        raw.subscription_id.starts_with("sub-"),
        "{}",
        raw.subscription_id
    );
    rules
        .unsubscribe_server_id(&raw.subscription_id)
        .await
        .unwrap();
    let again = rules
        .unsubscribe_server_id(&raw.subscription_id)
        .await
        .unwrap_err();
    assert!(again.is(&ErrorCode::NotFound), "{again:?}");

    let name = people_bucket(&client).await;
    let query = unique("all-people");
    client
        .store()
        .define_query(&query, json!({"bucket": name}))
        .await
        .unwrap();
    let raw: Subscribed = client
        .request(ops::store::subscribe(&query, None))
        .await
        .unwrap()
        .deserialize()
        .unwrap();
    client
        .store()
        .unsubscribe_server_id(&raw.subscription_id)
        .await
        .unwrap();
    let again = client
        .store()
        .unsubscribe_server_id(&raw.subscription_id)
        .await
        .unwrap_err();
    assert!(again.is(&ErrorCode::NotFound), "{again:?}");
    client.store().undefine_query(&query).await.unwrap();
    client.store().drop_bucket(&name).await.unwrap();
}
