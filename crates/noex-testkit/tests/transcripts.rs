//! Replays the client side of every recording in `fixtures/transcripts/` against the
//! testkit and compares the answers structurally with the recorded ones.

mod common;

use std::time::Duration;

use common::{config_note, load, replay, Bindings, Client, Event, Segment};
use noex_testkit::{AuthMode, BucketDef, Permissions, QueryDef, TestServer, TestServerBuilder};
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

const TTL_MAXSIZE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fixtures/transcripts/limits-ttl-maxsize.jsonl"
));
const SUBSCRIPTION_LIMITS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fixtures/transcripts/limits-subscriptions.jsonl"
));
const OPTIONAL_AUTH: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fixtures/transcripts/auth-optional-permissions.jsonl"
));

const SHUTDOWN: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fixtures/transcripts/shutdown.jsonl"
));
const LIMITS_MISC: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fixtures/transcripts/limits-misc.jsonl"
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
        let sessions = common::token_sessions(&config);
        let tiers: Vec<String> = config["audit"]["tiers"]
            .as_array()
            .expect("audit tiers")
            .iter()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect();
        let server = configure(TestServer::builder(), &config)
            .auth(AuthMode::Tokens(sessions))
            .audit(true)
            .audit_tiers(tiers)
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

/// The first JSON object in a note (text may follow it).
fn note_json(seg: &Segment) -> Value {
    seg.notes
        .iter()
        .find_map(|n| {
            let i = n.find('{')?;
            serde_json::Deserializer::from_str(&n[i..])
                .into_iter::<Value>()
                .next()?
                .ok()
        })
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn ttl_and_max_size_transcript() {
    tokio::time::timeout(LIMIT, async {
        let mut segs = load(TTL_MAXSIZE);
        assert_eq!(segs.len(), 1);
        // A client-supplied `_expiresAt` was recorded relative to the recording time: move
        // it the same distance into the future.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        for e in &mut segs[0].entries {
            if let Some(old) = e.frame["data"]["_expiresAt"].as_i64() {
                let new = now + 5_000;
                e.text = e.text.replace(&old.to_string(), &new.to_string());
                e.frame["data"]["_expiresAt"] = new.into();
            }
        }
        let server = TestServer::builder()
            .ttl_check_interval(Duration::from_millis(200))
            .start()
            .expect("start");
        let mut b = Bindings::default();
        let mut c = Client::connect(&server.url()).await;
        replay(&mut c, &segs[0], &mut b, "ttl-maxsize").await;
        finish(&mut c, &segs[0]).await;
    })
    .await
    .expect("test timed out");
}

/// Replay a recording of several interleaved connections: the n-th welcome opens
/// connection n; requests with ids from 100 go to the second connection, others to the
/// first; answers and pushes are read from the connection of the latest request.
async fn replay_two(url: &str, seg: &Segment, b: &mut Bindings, label: &str) -> Vec<Client> {
    let mut conns: Vec<Client> = Vec::new();
    let mut current = 0;
    for (i, e) in seg.entries.iter().enumerate() {
        let at = format!("{label}#{i}");
        if e.dir == "c2s" {
            current = usize::from(e.frame["id"].as_u64().is_some_and(|id| id >= 100));
            conns[current].send_text(&b.substitute_text(&e.text)).await;
            continue;
        }
        if e.frame["type"] == "welcome" {
            conns.push(Client::connect(url).await);
            current = conns.len() - 1;
        }
        let actual = conns[current].recv_json().await;
        if let Err(diff) = b.compare(&e.frame, &actual, "") {
            panic!("{at}: {diff}\n expected: {}\n actual:   {actual}", e.frame);
        }
    }
    conns
}

#[tokio::test]
async fn subscription_limits_transcript() {
    tokio::time::timeout(LIMIT, async {
        let segs = load(SUBSCRIPTION_LIMITS);
        // The note's configuration (JavaScript literal, not JSON):
        // `{connectionLimits: {maxSubscriptionsPerConnection: 2, maxTotalSubscriptions: 3}}`.
        assert!(
            segs[0].notes[0].contains("maxSubscriptionsPerConnection: 2, maxTotalSubscriptions: 3")
        );
        let server = TestServer::builder()
            .bucket(BucketDef::new("users"))
            .query("all", QueryDef::all("users"))
            .max_subscriptions_per_connection(2)
            .max_total_subscriptions(3)
            .start()
            .expect("start");
        let mut b = Bindings::default();
        let conns = replay_two(&server.url(), &segs[0], &mut b, "limits-subscriptions").await;
        assert_eq!(conns.len(), 2);
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn optional_auth_and_permissions_transcript() {
    tokio::time::timeout(LIMIT, async {
        let segs = load(OPTIONAL_AUTH);
        let config = note_json(&segs[0]);
        let auth = &config["auth"];
        let sessions = common::token_sessions(&config);
        let check: Vec<String> = auth["permissions"]["checkRoles"]
            .as_array()
            .expect("checkRoles")
            .iter()
            .filter_map(|r| r.as_str().map(str::to_string))
            .collect();
        let server = TestServer::builder()
            .bucket(BucketDef::new("users").field("name", serde_json::json!({"type": "string"})))
            .auth(AuthMode::Tokens(sessions))
            .auth_required(auth["required"].as_bool().unwrap_or(true))
            .permissions(Permissions::check_roles(check))
            .start()
            .expect("start");
        let mut b = Bindings::default();
        let mut c = Client::connect(&server.url()).await;
        replay(&mut c, &segs[0], &mut b, "auth-optional-permissions").await;
        finish(&mut c, &segs[0]).await;
    })
    .await
    .expect("test timed out");
}

/// Replay `seg` up to (not including) its first frame of `ty`; returns that frame's index.
async fn replay_until(
    c: &mut Client,
    seg: &Segment,
    ty: &str,
    b: &mut Bindings,
    label: &str,
) -> usize {
    let at = seg
        .entries
        .iter()
        .position(|e| e.frame["type"] == ty)
        .expect("frame type in the segment");
    let head = Segment {
        notes: Vec::new(),
        entries: seg.entries[..at].to_vec(),
        close: None,
    };
    replay(c, &head, b, label).await;
    at
}

#[tokio::test]
async fn shutdown_transcript() {
    tokio::time::timeout(LIMIT, async {
        let segs = load(SHUTDOWN);
        let mut b = Bindings::default();
        // 1: stop with 400 ms grace, the client stays: notice, then close 1000 after 400 ms.
        // 2: stop with 5 s grace, the client leaves on the notice: stop returns early.
        // 3: stop without grace (what the CLI does on SIGTERM): no notice.
        for (i, grace) in [(0, 400u64), (1, 5_000), (2, 0)] {
            let seg = &segs[i];
            let label = format!("shutdown/{}", i + 1);
            let server = std::sync::Arc::new(TestServer::builder().start().expect("start"));
            let mut c = Client::connect(&server.url()).await;
            let system = seg.entries.iter().position(|e| e.frame["type"] == "system");
            let upto = match system {
                Some(_) => replay_until(&mut c, seg, "system", &mut b, &label).await,
                None => {
                    replay(&mut c, seg, &mut b, &label).await;
                    seg.entries.len()
                }
            };
            let s = server.clone();
            let started = std::time::Instant::now();
            let stop =
                tokio::task::spawn_blocking(move || s.shutdown(Duration::from_millis(grace)));
            if upto < seg.entries.len() {
                let rest = Segment {
                    notes: Vec::new(),
                    entries: seg.entries[upto..].to_vec(),
                    close: None,
                };
                replay(&mut c, &rest, &mut b, &label).await;
            }
            finish(&mut c, seg).await;
            stop.await.expect("shutdown returns");
            let took = started.elapsed();
            match i {
                0 => assert!(took >= Duration::from_millis(350), "{label}: {took:?}"),
                _ => assert!(took < Duration::from_secs(3), "{label}: {took:?}"),
            }
        }
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn error_details_payload_and_origins_transcript() {
    tokio::time::timeout(LIMIT, async {
        let segs = load(LIMITS_MISC);
        let server = TestServer::builder()
            .bucket(
                BucketDef::new("users")
                    .field(
                        "name",
                        serde_json::json!({"type": "string", "required": true}),
                    )
                    .field(
                        "email",
                        serde_json::json!({"type": "string", "format": "email", "unique": true}),
                    ),
            )
            .expose_error_details(false)
            .max_payload_bytes(300)
            .allowed_origins(["http://good.example"])
            .start()
            .expect("start");
        let mut b = Bindings::default();
        // 1: errors without details, then a frame over the payload limit -> 1009.
        let mut c = Client::connect(&server.url()).await;
        replay(&mut c, &segs[0], &mut b, "limits-misc/1").await;
        finish(&mut c, &segs[0]).await;
        // 2: a disallowed Origin is refused with 403.
        assert!(segs[1].notes.iter().any(|n| n.contains("403 Forbidden")));
        let mut req =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
                server.url(),
            )
            .expect("request");
        req.headers_mut().insert(
            "origin",
            tokio_tungstenite::tungstenite::http::HeaderValue::from_static("http://evil.example"),
        );
        let refused = tokio_tungstenite::connect_async(req).await;
        assert!(
            refused
                .as_ref()
                .err()
                .is_some_and(|e| e.to_string().contains("403")),
            "{:?}",
            refused.err()
        );
        // 3: no Origin header is allowed.
        let seg = segs
            .iter()
            .find(|s| s.notes.iter().any(|n| n.contains("without Origin")))
            .expect("segment");
        let mut c = Client::connect(&server.url()).await;
        replay(&mut c, seg, &mut b, "limits-misc/3").await;
        finish(&mut c, seg).await;
    })
    .await
    .expect("test timed out");
}
