//! The store's builders (`subscribe`, `live`, `paginate`) and filters send exactly the
//! frames the positional forms sent, and a value a builder cannot serialise fails the call
//! unsent.

mod common;

use common::options;
use noex_client::{Client, Error, Filter, Transaction};
use noex_testkit::{BucketDef, QueryDef, TestServer};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::future::IntoFuture;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

/// `call`, failing the test when it takes longer than [`WAIT`].
async fn within<F: IntoFuture>(call: F) -> F::Output {
    tokio::time::timeout(WAIT, call)
        .await
        .expect("answered in time")
}

fn users_server() -> TestServer {
    TestServer::builder()
        .bucket(
            BucketDef::new("users")
                .key("id")
                .field("id", json!({"type": "string"}))
                .field("role", json!({"type": "string"})),
        )
        .query("all-users", QueryDef::all("users"))
        .query("users-by-role", QueryDef::where_param("users", "role"))
        .start()
        .expect("server")
}

/// The store frames the server received, in order, without their request ids.
fn store_frames(server: &TestServer) -> Vec<Value> {
    server
        .received_frames()
        .iter()
        .flat_map(|log| &log.frames)
        .filter_map(|frame| serde_json::from_str::<Value>(frame).ok())
        .filter(|frame| {
            frame["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("store."))
        })
        .map(|mut frame| {
            frame.as_object_mut().map(|o| o.remove("id"));
            frame
        })
        .collect()
}

#[tokio::test]
async fn builders_and_filters_send_what_the_positional_forms_sent() {
    let server = users_server();
    let client = within(noex_tokio::connect(&server.url(), options()))
        .await
        .expect("connect");
    let store = client.store();
    let users = store.bucket("users");
    for (id, role) in [("a", "admin"), ("b", "user"), ("c", "admin")] {
        within(users.insert(json!({"id": id, "role": role})))
            .await
            .expect("insert");
    }
    let before = store_frames(&server).len();

    let _all = within(store.subscribe::<Value>("all-users"))
        .await
        .expect("subscribe");
    let _admins = within(
        store
            .subscribe::<Vec<Value>>("users-by-role")
            .params(json!({"role": "admin"})),
    )
    .await
    .expect("subscribe with params");
    let live = within(
        store
            .live::<Value>("users-by-role")
            .params(json!({"role": "admin"}))
            .key_field("id"),
    )
    .await
    .expect("live");
    let first = within(users.paginate(2)).await.expect("a first page");
    assert_eq!((first.records.len(), first.has_more), (2, true));
    let rest = within(users.paginate(2).after("b"))
        .await
        .expect("the rest");
    assert_eq!(rest.records[0].key, "c");
    assert_eq!(within(users.count(Filter::all())).await.expect("count"), 3);
    let admins = Filter::field("role").eq("admin");
    assert_eq!(within(users.count(admins.clone())).await.expect("count"), 2);
    assert_eq!(
        within(users.find(admins.clone()))
            .await
            .expect("find")
            .len(),
        2
    );
    let tx = Transaction::new()
        .find("users", admins)
        .count("users", Filter::all());
    let results = within(store.transaction::<Value>(tx))
        .await
        .expect("transaction");
    assert_eq!(results[0].records().map(<[_]>::len), Some(2));
    assert_eq!((results[1].index, results[1].count()), (1, Some(3)));

    let sent = store_frames(&server).split_off(before);
    let by_role =
        json!({"type": "store.subscribe", "query": "users-by-role", "params": {"role": "admin"}});
    assert_eq!(
        sent,
        [
            json!({"type": "store.subscribe", "query": "all-users"}),
            by_role.clone(),
            by_role,
            json!({"type": "store.paginate", "bucket": "users", "limit": 2}),
            json!({"type": "store.paginate", "bucket": "users", "limit": 2, "after": "b"}),
            json!({"type": "store.count", "bucket": "users"}),
            json!({"type": "store.count", "bucket": "users", "filter": {"role": "admin"}}),
            json!({"type": "store.where", "bucket": "users", "filter": {"role": "admin"}}),
            json!({"type": "store.transaction", "operations": [
                {"op": "where", "bucket": "users", "filter": {"role": "admin"}},
                {"op": "count", "bucket": "users"},
            ]}),
        ]
    );
    live.unsubscribe().await;
}

#[tokio::test]
async fn a_value_a_builder_cannot_serialise_fails_the_call_unsent() {
    let server = users_server();
    let client: Client = within(noex_tokio::connect(&server.url(), options()))
        .await
        .expect("connect");
    let store = client.store();
    let users = store.bucket("users");
    // A map whose keys are not strings has no JSON form.
    let bad = || HashMap::from([((1u8, 2u8), 3u8)]);
    let sent = within(client.counters())
        .await
        .expect("counters")
        .frames_out;

    let subscribe = within(store.subscribe::<Value>("users-by-role").params(bad())).await;
    let live = within(store.live::<Value>("users-by-role").params(bad())).await;
    let page = within(users.paginate(2).after(bad())).await;
    for (what, error) in [
        ("subscribe", subscribe.err()),
        ("live", live.err()),
        ("paginate", page.err()),
    ] {
        match error {
            Some(Error::Serde(e)) => assert!(e.to_string().contains("cannot serialise"), "{e}"),
            other => panic!("{what}: {other:?}"),
        }
    }
    let after = within(client.counters())
        .await
        .expect("counters")
        .frames_out;
    assert_eq!(after, sent, "nothing was sent");
}
