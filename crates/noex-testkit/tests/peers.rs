//! How a connection shares its socket between the peer's requests and the answers: answers
//! go out while a burst of requests is still arriving (as the real server sends each one
//! when it has it), and a peer that does not read never stops the server reading.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use noex_testkit::{BucketDef, TestServer};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const LIMIT: Duration = Duration::from_secs(120);

fn server() -> TestServer {
    TestServer::builder()
        .bucket(BucketDef::new("docs").field("body", json!({"type": "string"})))
        .start()
        .expect("start")
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(server: &TestServer) -> Ws {
    let (mut ws, _) = tokio_tungstenite::connect_async(server.url())
        .await
        .expect("connect");
    let welcome = next_json(&mut ws).await;
    assert_eq!(welcome["type"], "welcome");
    ws
}

async fn next_json(ws: &mut Ws) -> Value {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(t.as_str()).expect("json"),
            Some(Ok(_)) => continue,
            other => panic!("connection ended: {other:?}"),
        }
    }
}

fn insert(id: u64, body: &str) -> Message {
    let request = json!({"id": id, "type": "store.insert", "bucket": "docs",
        "data": {"id": format!("d{id}"), "body": body}});
    Message::text(request.to_string())
}

/// A peer that writes 24 MB of requests before it reads any answer: were the server to
/// wait for its answers to be read before reading on, both sides would wait on each
/// other's full socket buffers for ever. Every request is handled, and every answer then
/// arrives, in order.
#[tokio::test]
async fn a_peer_that_does_not_read_never_stops_the_server_reading() {
    let server = server();
    let mut ws = open(&server).await;
    let body = "x".repeat(8 * 1024);
    let n = 3_000u64;
    tokio::time::timeout(LIMIT, async {
        for id in 1..=n {
            ws.feed(insert(id, &body)).await.expect("send");
        }
        ws.flush().await.expect("flush");
    })
    .await
    .expect("the server stopped reading while its answers were unread");
    tokio::time::timeout(LIMIT, async {
        for id in 1..=n {
            let answer = next_json(&mut ws).await;
            assert_eq!(answer["id"], id, "{}", answer["type"]);
            assert_eq!(answer["type"], "result");
        }
    })
    .await
    .expect("every answer arrives");
    assert_eq!(server.records("docs").len(), n as usize);
}

/// With every request held up for a while (the `delay` fault), the first answer of a
/// burst sent in one write arrives while later requests of the burst are still waiting
/// to be handled, not after the whole burst.
#[tokio::test]
async fn a_burst_is_answered_while_it_arrives() {
    let server = server();
    let mut ws = open(&server).await;
    server.set_delay(Duration::from_millis(50));
    let n = 20u64;
    for id in 1..=n {
        ws.feed(insert(id, "b")).await.expect("send");
    }
    ws.flush().await.expect("flush");
    let first = tokio::time::timeout(LIMIT, next_json(&mut ws))
        .await
        .expect("an answer");
    assert_eq!(first["id"], 1);
    let handled = server.records("docs").len();
    assert!(
        handled < n as usize,
        "the first answer came only after all {handled} requests were handled"
    );
    for id in 2..=n {
        let answer = tokio::time::timeout(LIMIT, next_json(&mut ws))
            .await
            .expect("an answer");
        assert_eq!(answer["id"], id);
    }
}
