//! "Not sent" versus "outcome unknown", checked against the server's data.

use crate::harness::{SimNetwork, SimRuntime, URL};
use crate::{fast_options, Ctx, Eventually};
use noex_client::runtime::{Backend, Runtime};
use noex_client::{Client, Delivery, Error, Record};
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

/// Writes issued into a stalled server, on virtual time (the harness, so the pacing of
/// the writes against the watchdog is exact): the watchdog drops the link; writes that
/// never left are reported "not sent" and, after the server resumes and applies what it
/// had received, none of them is in the data; writes that had left are "outcome
/// unknown" and, having reached the server's socket before the link went, are applied.
pub fn stalled_writes_not_sent_are_absent() {
    let rt = SimRuntime::new();
    let net = SimNetwork::start(&rt, counter_server()).expect("in-memory server");
    let client = Client::new(net.backend());
    let options = fast_options()
        .liveness_timeout(Duration::from_millis(500))
        .backoff(noex_client::Backoff {
            initial: Duration::from_millis(800),
            jitter: Duration::ZERO,
            ..Default::default()
        });
    rt.block_on(client.connect(URL, options)).expect("connects");
    let bucket = client.store().bucket("writes");
    net.stall();
    let writes = (0..40u64).map(|n| {
        let bucket = bucket.clone();
        let rt = rt.clone();
        async move {
            // Spread the writes over the stall, the watchdog's cut and the reconnect wait.
            rt.sleep(Duration::from_millis(n * 25)).await;
            (n, bucket.insert(&json!({"n": n})).await)
        }
    });
    let results: Vec<(u64, Outcome)> = rt
        .block_on(futures::future::join_all(writes))
        .into_iter()
        .map(|(n, result)| (n, classify(result)))
        .collect();
    net.resume();
    let wait = Eventually::new(|d| rt.sleep(d)).within(Duration::from_secs(10));
    rt.block_on(wait.until("reconnected", || client.is_connected()));
    rt.advance(Duration::from_millis(300));
    let data: BTreeSet<u64> = net
        .server(|s| s.records("writes"))
        .iter()
        .filter_map(|r| r["n"].as_u64())
        .collect();
    let count = |kind: fn(&Outcome) -> bool| results.iter().filter(|(_, o)| kind(o)).count();
    assert!(
        count(|o| matches!(o, Outcome::NotSent)) > 0
            && count(|o| matches!(o, Outcome::Unknown)) > 0,
        "both kinds occur: {results:?}"
    );
    for (n, outcome) in &results {
        match outcome {
            Outcome::NotSent => assert!(
                !data.contains(n),
                "write {n} was reported not sent but is stored"
            ),
            Outcome::Ok => assert!(data.contains(n), "write {n} succeeded but is missing"),
            Outcome::Unknown => assert!(
                data.contains(n),
                "write {n} had reached the server but is missing"
            ),
        }
    }
    rt.block_on(client.disconnect());
    rt.shutdown();
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
