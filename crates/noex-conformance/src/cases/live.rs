//! Live views (`client.store().live::<T>(query)`): every item says exactly what changed
//! since the item before, by record key and `_version`; the view is the server's result in
//! its order; whatever happened between two reads, or while the client was away, comes as
//! one item; a live view ends as a subscription does.
//!
//! The cases marked server-independent make their own buckets and queries under unique
//! names, so they also run against a real noex-server (`NOEX_URL`). The others need the
//! embedded server's faults. The testkit writes directly (its `insert`, and `purge_expired`
//! for a delete) while the client is away, since no client can reach a stalled server.

use super::independent::people_bucket;
use crate::{fast_options, unique, Ctx, EventLog};
use futures::StreamExt;
use noex_client::proto::CoreError;
use noex_client::runtime::Backend;
use noex_client::{
    Changes, Client, ClientOptions, ConnectionState, DisconnectReason, Error, LifecycleEvent,
    LiveError, LiveQuery, Record,
};
use noex_testkit::{HandshakeFault, QueryDef, TestServer, TestServerBuilder};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use std::fmt::Debug;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);
/// How long a check that nothing comes waits.
const QUIET: Duration = Duration::from_millis(250);

/// A person as the application reads it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Person {
    name: String,
    #[serde(default)]
    age: Option<f64>,
    role: String,
}

/// A product of a bucket keyed by `sku`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Product {
    title: String,
    stock: f64,
}

/// A record of the fault cases' `items` bucket.
#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Item {
    n: i64,
}

/// A fresh query named after `prefix` with the declarative `config`.
async fn query(client: &Client, prefix: &str, config: Value) -> String {
    let name = unique(prefix);
    client
        .store()
        .define_query(&name, config)
        .await
        .expect("define query");
    name
}

/// The next item, which must be changes.
async fn next<T>(ctx: &Ctx, live: &mut LiveQuery<T>) -> Changes<T>
where
    T: DeserializeOwned + Clone + Send + Debug + 'static,
{
    match ctx.within(WAIT, live.next()).await {
        Some(Some(Ok(changes))) => changes,
        other => panic!(
            "expected the next changes of {}, got {other:?}",
            live.query()
        ),
    }
}

/// Nothing comes for a while.
async fn quiet<T>(ctx: &Ctx, live: &mut LiveQuery<T>)
where
    T: DeserializeOwned + Clone + Send + Debug + 'static,
{
    if let Some(item) = ctx.within(QUIET, live.next()).await {
        panic!("nothing changed, yet the live view gave {item:?}");
    }
}

fn keys<T>(records: &[Record<T>]) -> Vec<Value> {
    records.iter().map(|r| r.key.clone()).collect()
}

/// The keys added, updated and removed.
fn shape<T>(changes: &Changes<T>) -> (Vec<Value>, Vec<Value>, Vec<Value>) {
    (
        keys(&changes.added),
        keys(&changes.updated),
        keys(&changes.removed),
    )
}

fn none() -> Vec<Value> {
    Vec::new()
}

/// Subscriptions to `query` the server holds (its own count per query: other clients of a
/// shared server do not count).
async fn subscribed(client: &Client, query: &str) -> u64 {
    let queries = client.store().list_queries().await.expect("list queries");
    queries
        .iter()
        .find(|q| q.name == query)
        .map_or(0, |q| q.active_subscriptions)
}

async fn unsubscribed(ctx: &Ctx, client: &Client, query: &str) {
    ctx.eventually(WAIT, "the server forgets the live query", || async {
        subscribed(client, query).await == 0
    })
    .await;
    if ctx.is_testkit() {
        ctx.eventually(WAIT, "no subscription left on the server", || async {
            ctx.server().subscription_count() == 0
        })
        .await;
    }
}

/// Waits until the pushes of `writes` writes since `before` have reached the client: on
/// the embedded server one push per write that changed the result; a real server
/// evaluates its queries after answering and skips a result equal to the last, so there
/// the pushes are awaited until they stop.
async fn settle(ctx: &Ctx, client: &Client, before: u64, writes: u64) {
    let pushes = || async { client.counters().await.expect("counters").pushes_delivered };
    if ctx.is_testkit() {
        ctx.eventually(WAIT, "every push arrived", || async {
            pushes().await >= before + writes
        })
        .await;
        return;
    }
    let mut last = pushes().await;
    loop {
        ctx.sleep(Duration::from_millis(300)).await;
        let now = pushes().await;
        if now == last && now > before {
            return;
        }
        last = now;
    }
}

async fn cleanup(client: &Client, queries: &[&str], bucket: &str) {
    for query in queries {
        client.store().undefine_query(query).await.unwrap();
    }
    client.store().drop_bucket(bucket).await.unwrap();
}

/// An insert, an update and a delete each give one item with one keyed change and nothing
/// else, records read into a struct; after each the view is the server's result, in order.
/// The first item is the initial result, all added.
pub async fn live_insert_update_delete_are_one_keyed_change_each(ctx: Ctx) {
    let client = ctx.connect(ClientOptions::new()).await;
    let bucket = people_bucket(&client).await;
    let everyone = query(&client, "live-everyone", json!({"bucket": bucket})).await;
    let people = client.store().bucket(&bucket).typed::<Person>();
    let zed = people
        .insert(json!({"name": "Zed", "age": 70}))
        .await
        .unwrap();
    let mut live = client.store().live::<Person>(&everyone).await.unwrap();
    assert_eq!(live.query(), everyone);

    let initial = next(&ctx, &mut live).await;
    assert_eq!(
        initial.added,
        vec![zed.clone()],
        "the initial result, added"
    );
    assert_eq!(initial.len(), 1, "{initial:?}");
    assert_eq!(live.view(), people.all().await.unwrap().as_slice());

    let alice = people
        .insert(json!({"name": "Alice", "age": 30, "role": "admin"}))
        .await
        .unwrap();
    let inserted = next(&ctx, &mut live).await;
    assert_eq!(shape(&inserted), (vec![alice.key.clone()], none(), none()));
    assert_eq!(inserted.added[0], alice);
    assert_eq!(
        inserted.added[0].data,
        Person {
            name: "Alice".into(),
            age: Some(30.0),
            role: "admin".into()
        }
    );
    assert_eq!(live.view(), people.all().await.unwrap().as_slice());

    let older = people.update(&alice.key, json!({"age": 31})).await.unwrap();
    let updated = next(&ctx, &mut live).await;
    assert_eq!(shape(&updated), (none(), vec![alice.key.clone()], none()));
    assert_eq!(updated.updated, vec![older.clone()], "as it is now");
    assert_eq!(updated.updated[0].version, 2);
    assert_eq!(live.view(), people.all().await.unwrap().as_slice());

    assert!(people.delete(&zed.key).await.unwrap());
    let deleted = next(&ctx, &mut live).await;
    assert_eq!(shape(&deleted), (none(), none(), vec![zed.key.clone()]));
    assert_eq!(deleted.removed, vec![zed], "as it was last seen");
    assert_eq!(live.view(), people.all().await.unwrap().as_slice());
    assert_eq!(live.view(), [older].as_slice());

    quiet(&ctx, &mut live).await;
    live.unsubscribe().await;
    cleanup(&client, &[&everyone], &bucket).await;
}

/// `.params(..)` on a sorted where query: records enter and leave the result by insert and
/// by update; a record the filter does not match changes nothing; an update that moves a
/// record is one update, and the view follows the server's order.
pub async fn live_params_on_a_sorted_where_query(ctx: Ctx) {
    let client = ctx.connect(ClientOptions::new()).await;
    let bucket = people_bucket(&client).await;
    let by_role = query(
        &client,
        "live-by-role",
        json!({"bucket": bucket, "filter": {"role": "{{ params.role }}"}, "sort": {"age": "asc"}}),
    )
    .await;
    let people = client.store().bucket(&bucket).typed::<Person>();
    let mut admins = client
        .store()
        .live::<Person>(&by_role)
        .params(json!({"role": "admin"}))
        .await
        .unwrap();
    let initial = next(&ctx, &mut admins).await;
    assert!(initial.is_empty(), "no admins yet: {initial:?}");
    assert!(admins.view().is_empty());

    let bob = people
        .insert(json!({"name": "Bob", "age": 40, "role": "admin"}))
        .await
        .unwrap();
    assert_eq!(
        shape(&next(&ctx, &mut admins).await),
        (vec![bob.key.clone()], none(), none())
    );
    // Not an admin: the result does not change, nothing comes; the next item is the next
    // admin.
    let carol = people
        .insert(json!({"name": "Carol", "age": 20}))
        .await
        .unwrap();
    let dave = people
        .insert(json!({"name": "Dave", "age": 50, "role": "admin"}))
        .await
        .unwrap();
    let added = next(&ctx, &mut admins).await;
    assert_eq!(shape(&added), (vec![dave.key.clone()], none(), none()));
    assert_eq!(keys(admins.view()), [bob.key.clone(), dave.key.clone()]);

    // Bob grows older than Dave: one update, and he moves behind Dave.
    let bob2 = people.update(&bob.key, json!({"age": 60})).await.unwrap();
    let moved = next(&ctx, &mut admins).await;
    assert_eq!(moved.updated, vec![bob2.clone()]);
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert_eq!(keys(admins.view()), [dave.key.clone(), bob.key.clone()]);

    // Carol becomes an admin: added by an update, first by age.
    let carol2 = people
        .update(&carol.key, json!({"role": "admin"}))
        .await
        .unwrap();
    let promoted = next(&ctx, &mut admins).await;
    assert_eq!(promoted.added, vec![carol2.clone()]);
    assert_eq!(promoted.len(), 1, "{promoted:?}");
    assert_eq!(
        admins.view(),
        [carol2.clone(), dave.clone(), bob2.clone()].as_slice()
    );

    // Dave stops being one: removed as he was last seen.
    people
        .update(&dave.key, json!({"role": "user"}))
        .await
        .unwrap();
    let demoted = next(&ctx, &mut admins).await;
    assert_eq!(demoted.removed, vec![dave]);
    assert_eq!(demoted.len(), 1, "{demoted:?}");
    let mut server = people.find(json!({"role": "admin"})).await.unwrap();
    server.sort_by(|a, b| a.data.age.partial_cmp(&b.data.age).unwrap());
    assert_eq!(admins.view(), server.as_slice());
    assert_eq!(admins.view(), [carol2, bob2].as_slice());

    quiet(&ctx, &mut admins).await;
    drop(admins);
    cleanup(&client, &[&by_role], &bucket).await;
}

/// `.key_field(..)` on a bucket keyed by `sku`: the changes and the view are keyed by it.
/// Without it the records have no `id`, and the first item says so.
pub async fn live_key_field_names_the_bucket_key(ctx: Ctx) {
    let client = ctx.connect(ClientOptions::new()).await;
    let bucket = unique("live-products");
    client
        .store()
        .define_bucket(
            &bucket,
            json!({"key": "sku", "schema": {
                "sku": {"type": "string", "required": true},
                "title": {"type": "string", "required": true},
                "stock": {"type": "number", "default": 0}
            }}),
        )
        .await
        .unwrap();
    let all = query(&client, "live-products", json!({"bucket": bucket})).await;
    let products = client
        .store()
        .bucket(&bucket)
        .typed::<Product>()
        .key_field("sku");
    let lamp = products
        .insert(json!({"sku": "sku-lamp", "title": "Lamp", "stock": 3}))
        .await
        .unwrap();
    assert_eq!(lamp.key, "sku-lamp");

    let mut wrong = client.store().live::<Product>(&all).await.unwrap();
    match ctx.within(WAIT, wrong.next()).await {
        Some(Some(Err(Error::Live {
            query,
            error: LiveError::MissingKey { index: 0, field },
        }))) => assert_eq!((query.as_str(), field.as_str()), (all.as_str(), "id")),
        other => panic!("expected the missing `id` key, got {other:?}"),
    }
    drop(wrong);

    let mut live = client
        .store()
        .live::<Product>(&all)
        .key_field("sku")
        .await
        .unwrap();
    let initial = next(&ctx, &mut live).await;
    assert_eq!(initial.added, vec![lamp.clone()]);
    assert_eq!(initial.len(), 1);

    let desk = products
        .insert(json!({"sku": "sku-desk", "title": "Desk"}))
        .await
        .unwrap();
    let added = next(&ctx, &mut live).await;
    assert_eq!(shape(&added), (vec![json!("sku-desk")], none(), none()));
    assert_eq!(added.added[0].data.stock, 0.0);

    let lamp2 = products
        .update("sku-lamp", json!({"stock": 2}))
        .await
        .unwrap();
    let updated = next(&ctx, &mut live).await;
    assert_eq!(updated.updated, vec![lamp2]);
    assert_eq!(updated.len(), 1);

    assert!(products.delete("sku-desk").await.unwrap());
    let removed = next(&ctx, &mut live).await;
    assert_eq!(removed.removed, vec![desk]);
    assert_eq!(removed.len(), 1);
    assert_eq!(live.view(), products.all().await.unwrap().as_slice());
    assert_eq!(keys(live.view()), [json!("sku-lamp")]);

    live.unsubscribe().await;
    cleanup(&client, &[&all], &bucket).await;
}

/// Writes between two reads come as one item, merged, nothing lost: a record inserted is
/// added, one updated twice is updated once (as it is now), one deleted is removed, and one
/// inserted and deleted meanwhile is in none.
pub async fn live_burst_between_reads_is_merged(ctx: Ctx) {
    let client = ctx.connect(fast_options()).await;
    let bucket = people_bucket(&client).await;
    let everyone = query(&client, "live-burst", json!({"bucket": bucket})).await;
    let people = client.store().bucket(&bucket).typed::<Person>();
    let bob = people.insert(json!({"name": "Bob"})).await.unwrap();
    let carol = people.insert(json!({"name": "Carol"})).await.unwrap();
    let mut live = client.store().live::<Person>(&everyone).await.unwrap();
    assert_eq!(
        next(&ctx, &mut live).await.added,
        vec![bob.clone(), carol.clone()]
    );

    let before = client.counters().await.unwrap().pushes_delivered;
    let alice = people.insert(json!({"name": "Alice"})).await.unwrap();
    people.update(&bob.key, json!({"age": 1})).await.unwrap();
    let bob3 = people.update(&bob.key, json!({"age": 2})).await.unwrap();
    assert!(people.delete(&carol.key).await.unwrap());
    let dave = people.insert(json!({"name": "Dave"})).await.unwrap();
    assert!(people.delete(&dave.key).await.unwrap());
    settle(&ctx, &client, before, 6).await;

    let merged = next(&ctx, &mut live).await;
    assert_eq!(merged.added, vec![alice.clone()], "{merged:?}");
    assert_eq!(
        merged.updated,
        vec![bob3.clone()],
        "once, the latest version"
    );
    assert_eq!(merged.updated[0].version, 3);
    assert_eq!(merged.removed, vec![carol], "as it was last seen");
    assert_eq!(merged.len(), 3, "Dave is in none: {merged:?}");
    assert_eq!(live.view(), people.all().await.unwrap().as_slice());
    assert_eq!(live.view(), [bob3, alice].as_slice());
    quiet(&ctx, &mut live).await;

    drop(live);
    cleanup(&client, &[&everyone], &bucket).await;
}

/// A record deleted and inserted again under the same key between two reads (its
/// `_version` is 1 again), and one inserted over an existing record (an insert replaces
/// the record: `_version` 1 again), have new data: the next item must name both, and the
/// view must hold the server's records.
pub async fn live_record_replaced_under_its_key_between_reads(ctx: Ctx) {
    let client = ctx.connect(fast_options()).await;
    let bucket = unique("live-replaced");
    client
        .store()
        .define_bucket(
            &bucket,
            json!({"key": "id", "schema": {
                "id": {"type": "string", "required": true},
                "name": {"type": "string", "required": true},
                "role": {"type": "string", "default": "user"}
            }}),
        )
        .await
        .unwrap();
    let everyone = query(&client, "live-replaced", json!({"bucket": bucket})).await;
    let people = client.store().bucket(&bucket).typed::<Person>();
    people
        .insert(json!({"id": "c", "name": "Carol"}))
        .await
        .unwrap();
    people
        .insert(json!({"id": "k", "name": "Kim"}))
        .await
        .unwrap();
    let mut live = client.store().live::<Person>(&everyone).await.unwrap();
    assert_eq!(next(&ctx, &mut live).await.len(), 2);

    let before = client.counters().await.unwrap().pushes_delivered;
    assert!(people.delete("c").await.unwrap());
    let carol = people
        .insert(json!({"id": "c", "name": "Carol again"}))
        .await
        .unwrap();
    let kim = people
        .insert(json!({"id": "k", "name": "Kim replaced"}))
        .await
        .unwrap();
    assert_eq!((carol.version, kim.version), (1, 1));
    settle(&ctx, &client, before, 3).await;

    let server = people.all().await.unwrap();
    let item = ctx.within(WAIT, live.next()).await;
    let Some(Some(Ok(changes))) = item else {
        panic!(
            "both records have new data, yet no item came ({item:?}); the view holds {:?}, \
             the server {server:?}",
            live.view()
        );
    };
    let named: Vec<Value> = changes
        .added
        .iter()
        .chain(&changes.updated)
        .map(|r| r.key.clone())
        .collect();
    assert!(
        named.contains(&json!("c")) && named.contains(&json!("k")),
        "both records replaced under their key must be in the changes: {changes:?}"
    );
    assert_eq!(live.view(), server.as_slice(), "the view is the server's");

    drop(live);
    cleanup(&client, &[&everyone], &bucket).await;
}

/// `unsubscribe()` and dropping end the live query on the server; `on_change` gets every
/// item with the view after it, and a callback that panics is reported and called again
/// for the next item, the view still right; dropping its handle unsubscribes.
pub async fn live_unsubscribe_drop_and_on_change(ctx: Ctx) {
    let client = ctx.connect(fast_options()).await;
    let (log, _guard) = EventLog::attach(&client);
    let bucket = people_bucket(&client).await;
    let everyone = query(&client, "live-callback", json!({"bucket": bucket})).await;
    let people = client.store().bucket(&bucket).typed::<Person>();

    let mut live = client.store().live::<Person>(&everyone).await.unwrap();
    next(&ctx, &mut live).await;
    assert_eq!(subscribed(&client, &everyone).await, 1);
    live.unsubscribe().await;
    unsubscribed(&ctx, &client, &everyone).await;

    let mut live = client.store().live::<Person>(&everyone).await.unwrap();
    next(&ctx, &mut live).await;
    assert_eq!(subscribed(&client, &everyone).await, 1);
    drop(live);
    unsubscribed(&ctx, &client, &everyone).await;

    type Seen = (Vec<Value>, Vec<Value>, Vec<Value>, Vec<Value>);
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let calls = Arc::new(AtomicUsize::new(0));
    let handle = {
        let seen = seen.clone();
        let calls = calls.clone();
        client
            .store()
            .live::<Person>(&everyone)
            .await
            .unwrap()
            .on_change(move |item, view| {
                // The second call panics, whatever it carries.
                let call = calls.fetch_add(1, Ordering::SeqCst);
                let changes = item.expect("no error on this live query");
                if call == 1 {
                    panic!("application bug in on_change");
                }
                let (added, updated, removed) = shape(&changes);
                seen.lock()
                    .unwrap()
                    .push((added, updated, removed, keys(view)));
            })
    };
    let count = |n: usize| {
        let seen = seen.clone();
        move || {
            let seen = seen.clone();
            async move { seen.lock().unwrap().len() == n }
        }
    };
    ctx.eventually(WAIT, "the initial result", count(1)).await;
    let panics = || {
        log.count(|e| {
            matches!(e, LifecycleEvent::Error(CoreError::CallbackPanicked { callback, .. })
                if callback.starts_with("on_change of subscription#"))
        })
    };
    let first = people.insert(json!({"name": "First"})).await.unwrap();
    ctx.eventually(WAIT, "the panic reported", || async { panics() == 1 })
        .await;
    let second = people.insert(json!({"name": "Second"})).await.unwrap();
    ctx.eventually(WAIT, "the item after the panic", count(2))
        .await;
    assert_eq!(
        seen.lock().unwrap().clone(),
        vec![
            (none(), none(), none(), none()),
            (
                vec![second.key.clone()],
                none(),
                none(),
                vec![first.key, second.key]
            ),
        ],
        "the panicking call's item was applied to the view"
    );
    assert_eq!(subscribed(&client, &everyone).await, 1);
    assert!(client.is_connected());
    drop(handle);
    unsubscribed(&ctx, &client, &everyone).await;
    cleanup(&client, &[&everyone], &bucket).await;
}

/// A count query is not a list of records: the first item is `Error::Live` naming the
/// query, with `NotAList`, then the stream ends, and nothing stays subscribed.
pub async fn live_count_query_is_not_a_list(ctx: Ctx) {
    let client = ctx.connect(fast_options()).await;
    let bucket = people_bucket(&client).await;
    let count = query(
        &client,
        "live-count",
        json!({"bucket": bucket, "aggregate": {"function": "count"}}),
    )
    .await;
    let mut live = client.store().live::<Person>(&count).await.unwrap();
    match ctx.within(WAIT, live.next()).await {
        Some(Some(Err(Error::Live {
            query,
            error: LiveError::NotAList,
        }))) => assert_eq!(query, count),
        other => panic!("expected NotAList, got {other:?}"),
    }
    assert!(matches!(ctx.within(WAIT, live.next()).await, Some(None)));
    unsubscribed(&ctx, &client, &count).await;
    // Ended for good: a change brings nothing.
    client
        .store()
        .bucket(&bucket)
        .insert(json!({"name": "Alice"}))
        .await
        .unwrap();
    assert!(matches!(ctx.within(WAIT, live.next()).await, Some(None)));
    cleanup(&client, &[&count], &bucket).await;
}

/// How the client is kept away while the data changes.
#[derive(Debug, Clone, Copy)]
enum Away {
    /// The server stalls (the link goes silent); the liveness watchdog notices.
    Stalled,
    /// The server restarts, keeping its data.
    Restarted,
    /// The server closes the connection cleanly (1000).
    Closed,
}

/// `items` with caller-given keys and a TTL (purged only when the case says), a query over
/// it, pings every 150 ms.
fn ttl_items_server() -> TestServerBuilder {
    TestServer::builder()
        .bucket_json(
            "items",
            json!({"key": "id", "ttl": "1h", "schema": {
                "id": {"type": "string", "required": true},
                "n": {"type": "number"}
            }}),
        )
        .ttl_check_interval(Duration::ZERO)
        .query("all-items", QueryDef::all("items"))
        .heartbeat(Duration::from_millis(150))
}

fn disconnects(log: &EventLog) -> usize {
    log.count(|e| matches!(e, LifecycleEvent::Disconnected(_)))
}

async fn reconnects(ctx: &Ctx, log: &EventLog, n: usize) {
    ctx.eventually(WAIT, "reconnected", || async {
        log.count(|e| matches!(e, LifecycleEvent::Reconnected)) >= n
    })
    .await;
}

/// `(key, version, n)` of each record, in order.
fn items_of(records: &[Record<Item>]) -> Vec<(Value, u64, i64)> {
    records
        .iter()
        .map(|r| (r.key.clone(), r.version, r.data.n))
        .collect()
}

fn server_items(server: &TestServer) -> Vec<(Value, u64, i64)> {
    server
        .records("items")
        .iter()
        .map(|r| {
            (
                r["id"].clone(),
                r["_version"].as_u64().unwrap_or_default(),
                r["n"].as_i64().unwrap_or_default(),
            )
        })
        .collect()
}

/// One added, one updated, one removed, written straight into the server: `a` is new, `b`
/// is inserted again over itself (an insert replaces a record: version 2 becomes 1, a new
/// version), `c` expired and is purged.
fn write_while_away(server: &TestServer) {
    server.insert("items", json!({"id": "a", "n": 1})).unwrap();
    server.insert("items", json!({"id": "b", "n": 3})).unwrap();
    assert_eq!(server.purge_expired(), 1, "c expired");
}

/// The data changes while the client is away: the next item is exactly what was missed,
/// one added, one updated, one removed; then a reconnect with nothing missed gives
/// nothing, and the next change is one item again.
async fn missed_while_away(backend: Backend, away: Away) {
    let ctx = Ctx::with_server(&backend, ttl_items_server());
    let server = ctx.server();
    server.insert("items", json!({"id": "b", "n": 1})).unwrap();
    // Expired long ago, but purged only when the case says.
    server
        .insert("items", json!({"id": "c", "n": 1, "_expiresAt": 1}))
        .unwrap();
    server.insert("items", json!({"id": "d", "n": 1})).unwrap();
    let client = ctx
        .connect(fast_options().liveness_timeout(Duration::from_millis(600)))
        .await;
    let (log, _guard) = EventLog::attach(&client);
    let items = client.store().bucket("items").typed::<Item>();
    let b2 = items.update("b", json!({"n": 2})).await.unwrap();
    assert_eq!(b2.version, 2);
    let mut live = client.store().live::<Item>("all-items").await.unwrap();
    let initial = next(&ctx, &mut live).await;
    assert_eq!(
        shape(&initial),
        (vec![json!("b"), json!("c"), json!("d")], none(), none())
    );
    let before = live.view().to_vec();
    let pushes_before = client.counters().await.unwrap().pushes_delivered;

    match away {
        Away::Stalled => {
            server.stall();
            write_while_away(server);
            ctx.eventually(WAIT, "the silence noticed", || async {
                log.count(|e| {
                    matches!(
                        e,
                        LifecycleEvent::Disconnected(DisconnectReason::LivenessTimeout)
                    )
                }) == 1
            })
            .await;
            server.resume();
        }
        Away::Restarted | Away::Closed => {
            server.set_handshake_fault(HandshakeFault::Reset);
            match away {
                Away::Restarted => server.restart(true),
                _ => server.close_connections(1000, "normal"),
            }
            ctx.eventually(WAIT, "the loss noticed", || async {
                disconnects(&log) == 1
            })
            .await;
            write_while_away(server);
            server.set_handshake_fault(HandshakeFault::Normal);
        }
    }
    reconnects(&ctx, &log, 1).await;
    let missed = next(&ctx, &mut live).await;
    assert_eq!(
        shape(&missed),
        (vec![json!("a")], vec![json!("b")], vec![json!("c")]),
        "{away:?}: {missed:?}"
    );
    assert_eq!(items_of(&missed.added), [(json!("a"), 1, 1)]);
    assert_eq!(items_of(&missed.updated), [(json!("b"), 1, 3)]);
    assert_eq!(missed.removed, vec![before[1].clone()], "as last seen");
    assert_eq!(items_of(live.view()), server_items(server));
    assert_eq!(
        client.counters().await.unwrap().pushes_delivered,
        pushes_before,
        "{away:?}: nothing came but the fresh result of the restore"
    );

    // A reconnect with nothing missed: nothing.
    server.drop_connections();
    reconnects(&ctx, &log, 2).await;
    ctx.eventually(WAIT, "restored", || async {
        server.subscription_count() == 1
    })
    .await;
    quiet(&ctx, &mut live).await;
    server.insert("items", json!({"id": "e", "n": 5})).unwrap();
    let after = next(&ctx, &mut live).await;
    assert_eq!(shape(&after), (vec![json!("e")], none(), none()));
    assert_eq!(items_of(live.view()), server_items(server));
    assert_eq!(client.state(), ConnectionState::Connected);
}

/// Missed while the link was silently dead (the server stalled, the watchdog noticed).
pub async fn live_missed_while_the_link_was_silent(backend: Backend) {
    missed_while_away(backend, Away::Stalled).await
}

/// Missed while the server restarted with its data.
pub async fn live_missed_across_a_server_restart(backend: Backend) {
    missed_while_away(backend, Away::Restarted).await
}

/// Missed after a clean close (1000), before the reconnect.
pub async fn live_missed_across_a_clean_close(backend: Backend) {
    missed_while_away(backend, Away::Closed).await
}

/// A live query ends as a subscription does: a permanent close (4003) gives one
/// `GaveUp` saying why, then `None`; `disconnect()` gives `None` with no error first, also
/// to an `on_change` callback; nothing is left on the server.
pub async fn live_gives_up_then_ends_and_ends_on_disconnect(backend: Backend) {
    let ctx = Ctx::with_server(&backend, super::users_server());
    let server = ctx.server();
    let client = ctx.connect(fast_options()).await;
    let mut live = client.store().live::<Value>("all-users").await.unwrap();
    next(&ctx, &mut live).await;
    assert_eq!(server.subscription_count(), 1);
    server.close_connections(4003, "too_many_connections");
    match ctx.within(WAIT, live.next()).await {
        Some(Some(Err(Error::GaveUp(DisconnectReason::Closed {
            code: Some(4003), ..
        })))) => {}
        other => panic!("expected GaveUp (4003), got {other:?}"),
    }
    assert!(matches!(ctx.within(WAIT, live.next()).await, Some(None)));
    assert!(matches!(ctx.within(WAIT, live.next()).await, Some(None)));
    assert_eq!(client.state(), ConnectionState::Disconnected);

    let client = ctx.connect(fast_options()).await;
    let mut live = client.store().live::<Value>("all-users").await.unwrap();
    next(&ctx, &mut live).await;
    let errors = Arc::new(AtomicUsize::new(0));
    let items = Arc::new(AtomicUsize::new(0));
    let _callback = {
        let (errors, items) = (errors.clone(), items.clone());
        client
            .store()
            .live::<Value>("all-users")
            .await
            .unwrap()
            .on_change(move |item, _| {
                items.fetch_add(1, Ordering::SeqCst);
                if item.is_err() {
                    errors.fetch_add(1, Ordering::SeqCst);
                }
            })
    };
    ctx.eventually(WAIT, "the callback's initial item", || async {
        items.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_eq!(server.subscription_count(), 2);
    client.disconnect().await;
    assert!(matches!(ctx.within(WAIT, live.next()).await, Some(None)));
    ctx.eventually(WAIT, "nothing left on the server", || async {
        server.subscription_count() == 0 && server.connection_count() == 0
    })
    .await;
    ctx.sleep(Duration::from_millis(50)).await;
    assert_eq!(errors.load(Ordering::SeqCst), 0);
    assert_eq!(items.load(Ordering::SeqCst), 1);
}
