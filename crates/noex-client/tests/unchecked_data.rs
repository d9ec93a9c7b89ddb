//! A subscribe answer's data is handed on unread and checked by whatever reads it: data
//! that is not JSON is an error for that one value, and the subscription carries on.

mod common;

use common::options;
use futures::StreamExt;
use noex_client::Error;
use noex_conformance::Eventually;
use noex_testkit::{BucketDef, QueryDef, TestServer};
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

/// Polls `done` every few milliseconds until it holds, for at most [`WAIT`].
async fn until(done: impl FnMut() -> bool, what: &str) {
    Eventually::new(tokio::time::sleep)
        .every(Duration::from_millis(5))
        .within(WAIT)
        .until(what, done)
        .await
}

#[tokio::test]
async fn initial_data_that_is_not_json_is_an_error_then_the_subscription_carries_on() {
    let server = TestServer::builder()
        .bucket(BucketDef::new("items").field("n", json!({"type": "number"})))
        .query("all-items", QueryDef::all("items"))
        .start()
        .expect("server");
    let client = noex_tokio::connect(&server.url(), options())
        .await
        .expect("connect");
    // The id the subscribe will carry: the one after a request the server has seen (the
    // core numbers requests in order; checked below).
    let ids = |kind: &str| -> Vec<u64> {
        let logs = server.received_frames();
        let frames = logs.iter().flat_map(|c| &c.frames);
        frames
            .filter_map(|f| serde_json::from_str::<Value>(f).ok())
            .filter(|frame| frame["type"] == kind)
            .filter_map(|frame| frame["id"].as_u64())
            .collect()
    };
    let store = client.store();
    store.bucket("items").get("none").await.expect("a get");
    let id = ids("store.get")[0] + 1;
    // The server's own answer comes late (a connection's frames are handled after the
    // delay, in order); a hostile one, in the server's layout but with a bracket short,
    // is queued first.
    server.set_delay(Duration::from_millis(300));
    let sent = client.counters().await.expect("counters").frames_out;
    let subscribing = tokio::spawn(async move { store.subscribe::<Value>("all-items").await });
    // Once the subscribe has left the core, its answer finds it waiting.
    Eventually::new(tokio::time::sleep)
        .every(Duration::from_millis(1))
        .within(WAIT)
        .until_async("the subscribe", || async {
            client.counters().await.expect("counters").frames_out != sent
        })
        .await;
    server.send_raw_text(&format!(
        r#"{{"id":{id},"type":"result","data":{{"subscriptionId":"sub-1","data":[{{"n":1}}}}}}"#
    ));
    let mut sub = tokio::time::timeout(WAIT, subscribing)
        .await
        .expect("subscribed in time")
        .expect("the task")
        .expect("subscribed");
    let first = tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("a first item in time")
        .expect("a first item");
    match first {
        Err(Error::Serde(e)) => {
            assert_eq!(
                e.category(),
                Some(serde_json::error::Category::Eof),
                "{e:?}"
            );
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }
    // The server's own answer (late) registered `sub-1`; its pushes reach the subscription.
    server.set_delay(Duration::ZERO);
    until(
        || server.subscription_count() == 1,
        "the server's subscription",
    )
    .await;
    assert_eq!(
        ids("store.subscribe"),
        [id],
        "the subscribe's id was guessed right"
    );
    server.insert("items", json!({"n": 2})).expect("insert");
    let next = tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("a push in time")
        .expect("a push")
        .expect("a push that is JSON");
    assert_eq!(next[0]["n"], 2, "{next}");
    assert!(client.is_connected());
    drop(sub);
    client.disconnect().await;
}
