//! "Not sent" versus "outcome unknown", checked against the server's data.

use crate::{fast_options, Ctx};
use noex_client::runtime::Backend;
use noex_client::{Delivery, Error, Record};
use noex_testkit::TestServer;
use serde_json::json;
use std::collections::BTreeSet;
use std::time::Duration;

fn counter_server() -> noex_testkit::TestServerBuilder {
    TestServer::builder()
        .bucket_json("writes", json!({"key": "id", "schema": {"id": {"type": "string", "generated": "uuid"}, "n": {"type": "number"}}}))
        .heartbeat(Duration::from_millis(150))
}

fn stored(ctx: &Ctx) -> BTreeSet<u64> {
    ctx.server()
        .records("writes")
        .iter()
        .filter_map(|r| r["n"].as_u64())
        .collect()
}

#[derive(Debug)]
enum Outcome {
    Ok,
    NotSent,
    Unknown,
}

fn classify(result: Result<Record, Error>) -> Outcome {
    match result {
        Ok(_) => Outcome::Ok,
        Err(e) => match e.delivery() {
            Some(Delivery::NotSent) => Outcome::NotSent,
            Some(Delivery::OutcomeUnknown) => Outcome::Unknown,
            None => panic!("unexpected error {e:?}"),
        },
    }
}

/// Writes issued into a stalled link: the watchdog drops it; writes that never left are
/// reported "not sent", and after the server resumes and applies what it had received,
/// none of the "not sent" writes is in the data.
pub async fn stalled_writes_not_sent_are_absent(backend: Backend) {
    let ctx = Ctx::with_server(&backend, counter_server());
    let options = fast_options()
        .liveness_timeout(Duration::from_millis(500))
        .backoff(noex_client::Backoff {
            initial: Duration::from_millis(800),
            jitter: Duration::ZERO,
            ..Default::default()
        });
    let client = ctx.connect(options).await;
    let bucket = client.store().bucket("writes");
    ctx.server().stall();
    let mut results = Vec::new();
    let writes = (0..40u64).map(|n| {
        let bucket = bucket.clone();
        let ctx = ctx.clone();
        async move {
            // Spread the writes over the stall, the watchdog's cut and the reconnect wait.
            ctx.sleep(Duration::from_millis(n * 25)).await;
            (n, bucket.insert(&json!({"n": n})).await)
        }
    });
    for (n, result) in futures::future::join_all(writes).await {
        results.push((n, classify(result)));
    }
    ctx.server().resume();
    ctx.eventually(Duration::from_secs(10), "reconnected", || async {
        client.is_connected()
    })
    .await;
    ctx.sleep(Duration::from_millis(300)).await;
    let data = stored(&ctx);
    let not_sent: Vec<u64> = results
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::NotSent))
        .map(|(n, _)| *n)
        .collect();
    let unknown = results
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Unknown))
        .count();
    assert!(
        !not_sent.is_empty() && unknown > 0,
        "both kinds occur: {results:?}"
    );
    for n in &not_sent {
        assert!(
            !data.contains(n),
            "write {n} was reported not sent but is stored"
        );
    }
    for (n, outcome) in &results {
        if matches!(outcome, Outcome::Ok) {
            assert!(data.contains(n), "write {n} succeeded but is missing");
        }
    }
}

/// stall → resume → drop: every write either succeeded (and is stored), or is reported
/// "outcome unknown", or is absent.
pub async fn stall_resume_drop_outcomes(backend: Backend) {
    let ctx = Ctx::with_server(&backend, counter_server());
    let client = ctx.connect(fast_options()).await;
    let bucket = client.store().bucket("writes");
    let server = ctx.server();
    let writes = (0..30u64).map(|n| {
        let bucket = bucket.clone();
        let ctx = ctx.clone();
        async move {
            ctx.sleep(Duration::from_millis(n * 10)).await;
            (n, bucket.insert(&json!({"n": n})).await)
        }
    });
    let faults = async {
        ctx.sleep(Duration::from_millis(60)).await;
        server.stall();
        ctx.sleep(Duration::from_millis(100)).await;
        server.resume();
        ctx.sleep(Duration::from_millis(20)).await;
        server.drop_connections();
    };
    let (results, ()) = futures::join!(futures::future::join_all(writes), faults);
    ctx.eventually(Duration::from_secs(10), "reconnected", || async {
        client.is_connected()
    })
    .await;
    let data = stored(&ctx);
    for (n, result) in results {
        match classify(result) {
            Outcome::Ok => assert!(data.contains(&n), "write {n} succeeded but is missing"),
            Outcome::Unknown => {}
            Outcome::NotSent => assert!(
                !data.contains(&n),
                "write {n} reported not sent but is stored"
            ),
        }
    }
}
