//! Replays the client side of every recording in `fixtures/transcripts/` against the
//! testkit and compares the answers structurally with the recorded ones.

mod common;

use std::time::Duration;

use common::{config_note, load, replay, Bindings, Client, Event, Segment};
use noex_testkit::{AuthMode, BucketDef, QueryDef, TestServer, TestServerBuilder, TokenSession};
use serde_json::Value;

const BASIC: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fixtures/transcripts/basic.jsonl"
));
const IDENTITY: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fixtures/transcripts/identity.jsonl"
));
const PROCEDURES_AUDIT: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fixtures/transcripts/procedures-audit.jsonl"
));

const LIMIT: Duration = Duration::from_secs(20);

/// Buckets and queries from a config note.
fn configure(mut b: TestServerBuilder, config: &Value) -> TestServerBuilder {
    for bucket in config["buckets"].as_array().cloned().unwrap_or_default() {
        let mut def = BucketDef::new(bucket["name"].as_str().unwrap_or_default());
        // The recording harness lists the schema fields in this order.
        if let Some(schema) = bucket["schema"].as_object() {
            let order: Vec<&str> = ["name", "age", "role", "status", "total", "orderId", "price"]
                .into_iter()
                .filter(|k| schema.contains_key(*k))
                .collect();
            for k in order {
                def = def.field(k, schema[k].clone());
            }
        }
        b = b.bucket(def);
    }
    for q in config["queries"].as_array().cloned().unwrap_or_default() {
        let name = q["name"].as_str().unwrap_or_default();
        let bucket = q["bucket"].as_str().unwrap_or_default();
        let def = match q["type"].as_str() {
            Some("where") => QueryDef::where_param(bucket, q["field"].as_str().unwrap_or_default()),
            Some("count") => QueryDef::count(bucket),
            _ => QueryDef::all(bucket),
        };
        b = b.query(name, def);
    }
    b
}

async fn finish(client: &mut Client, seg: &Segment) {
    let (code, reason) = seg.close.clone().expect("segment ends with a close note");
    if code == 1000 && reason.is_empty() {
        client.close(1000).await;
    }
    let got = client.expect_close(Duration::from_secs(3)).await;
    assert_eq!(got, Some((code, reason)), "close of segment");
}

#[tokio::test]
async fn basic_transcript() {
    tokio::time::timeout(LIMIT, async {
        let segs = load(BASIC);
        assert_eq!(segs.len(), 4, "four connections recorded");
        let config = config_note(&segs[0]);
        let server = configure(TestServer::builder(), &config)
            .heartbeat(Duration::from_millis(1500))
            .start()
            .expect("start");
        let mut b = Bindings::default();

        // 1: every operation.
        let mut c = Client::connect(&server.url()).await;
        replay(&mut c, &segs[0], &mut b, "basic/1").await;
        finish(&mut c, &segs[0]).await;

        // 2: heartbeat 300 ms, pings never answered -> 4001.
        let hb = configure(TestServer::builder(), &config)
            .heartbeat(Duration::from_millis(300))
            .start()
            .expect("start");
        let mut c = Client::connect(&hb.url()).await;
        let seg = &segs[1];
        for (i, e) in seg.entries.iter().enumerate() {
            let Event::Json(v) = c.next_within(Duration::from_secs(2)).await else {
                panic!("basic/2#{i}: expected a frame");
            };
            b.compare(&e.frame, &v, "")
                .unwrap_or_else(|d| panic!("basic/2#{i}: {d}"));
        }
        finish(&mut c, seg).await;

        // 3: graceful shutdown with a 500 ms grace period.
        let seg = &segs[2];
        let mut c = Client::connect(&server.url()).await;
        let Event::Json(w) = c.next_within(Duration::from_secs(2)).await else {
            panic!("welcome")
        };
        b.compare(&seg.entries[0].frame, &w, "")
            .unwrap_or_else(|d| panic!("basic/3: {d}"));
        let started = std::time::Instant::now();
        server.send_shutdown(500);
        let Event::Json(sys) = c.next_within(Duration::from_secs(2)).await else {
            panic!("system")
        };
        b.compare(&seg.entries[1].frame, &sys, "")
            .unwrap_or_else(|d| panic!("basic/3: {d}"));
        finish(&mut c, seg).await;
        assert!(
            started.elapsed() >= Duration::from_millis(450),
            "grace period respected"
        );

        // 4: a binary frame -> 1003.
        let seg = &segs[3];
        let mut c = Client::connect(&server.url()).await;
        let Event::Json(w) = c.next_within(Duration::from_secs(2)).await else {
            panic!("welcome")
        };
        b.compare(&seg.entries[0].frame, &w, "")
            .unwrap_or_else(|d| panic!("basic/4: {d}"));
        c.send_binary(br#"{"id":1,"type":"store.buckets"}"#.to_vec())
            .await;
        finish(&mut c, seg).await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn procedures_audit_transcript() {
    tokio::time::timeout(LIMIT, async {
        let segs = load(PROCEDURES_AUDIT);
        let config = config_note(&segs[0]);
        let sessions: Vec<TokenSession> = config["auth"]["sessions"]
            .as_object()
            .expect("sessions")
            .iter()
            .map(|(token, s)| {
                let roles: Vec<String> = s["roles"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|r| r.as_str().map(str::to_string))
                    .collect();
                TokenSession::new(
                    token.clone(),
                    s["userId"].as_str().unwrap_or_default(),
                    roles,
                )
            })
            .collect();
        let server = configure(TestServer::builder(), &config)
            .auth(AuthMode::Tokens(sessions))
            .audit(true)
            .start()
            .expect("start");
        let mut b = Bindings::default();
        let mut c = Client::connect(&server.url()).await;
        replay(&mut c, &segs[0], &mut b, "procedures-audit").await;
        finish(&mut c, &segs[0]).await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn identity_transcript() {
    tokio::time::timeout(LIMIT, async {
        let segs = load(IDENTITY);
        assert_eq!(segs.len(), 2);
        let config = config_note(&segs[0]);
        let secret = config["auth"]["adminSecret"]
            .as_str()
            .expect("secret")
            .to_string();
        let server = TestServer::builder()
            .auth(AuthMode::Identity {
                admin_secret: secret,
            })
            .start()
            .expect("start");
        let mut b = Bindings::default();
        for (i, seg) in segs.iter().enumerate() {
            let mut c = Client::connect(&server.url()).await;
            replay(&mut c, seg, &mut b, &format!("identity/{}", i + 1)).await;
            finish(&mut c, seg).await;
        }
    })
    .await
    .expect("test timed out");
}
