//! Reconnects: prints the lifecycle events while the embedded server drops every
//! connection, closes them with codes, and goes silent; the subscription keeps delivering.
//!
//! ```text
//! cargo run --example reconnect
//! ```

use futures::StreamExt;
use noex_testkit::{QueryDef, TestServer};
use noex_tokio::{Backoff, ClientOptions, LifecycleEvent};
use serde_json::json;
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = TestServer::builder()
        .bucket_json(
            "users",
            json!({"key": "id", "schema": {"id": {"type": "string", "generated": "uuid"}}}),
        )
        .query("user-count", QueryDef::count("users"))
        .heartbeat(Duration::from_millis(300))
        .start()?;
    println!("embedded test server at {}", server.url());

    let options = ClientOptions::new()
        .backoff(Backoff {
            initial: Duration::from_millis(100),
            jitter: Duration::from_millis(50),
            ..Default::default()
        })
        .liveness_timeout(Duration::from_secs(1));
    let client = noex_tokio::connect(&server.url(), options).await?;
    let _events = client.on(|event| match event {
        LifecycleEvent::StateChanged(state) => println!("  state: {state:?}"),
        LifecycleEvent::Disconnected(reason) => println!("  disconnected: {reason:?}"),
        LifecycleEvent::Reconnecting { attempt, delay } => {
            println!("  reconnecting: attempt {attempt} in {delay:?}")
        }
        LifecycleEvent::Reconnected => println!("  reconnected, subscriptions restored"),
        _ => {}
    });
    let mut count = client.store().subscribe::<u64>("user-count").await?;
    println!("count: {}", count.next().await.expect("initial")?);

    println!("-- the server drops every connection (no close frame)");
    server.drop_connections();
    server.insert("users", json!({}))?;
    println!(
        "count after restore: {}",
        count.next().await.expect("fresh data")?
    );

    println!("-- the server closes with 4001 (heartbeat timeout)");
    server.close_connections(4001, "heartbeat_timeout");
    server.insert("users", json!({}))?;
    println!(
        "count after restore: {}",
        count.next().await.expect("fresh data")?
    );

    println!("-- the server goes silent (stall); the watchdog notices");
    server.stall();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.resume();
    server.insert("users", json!({}))?;
    while let Some(value) = count.next().await {
        let value = value?;
        println!("count: {value}");
        if value == 3 {
            break;
        }
    }
    println!("counters: {:?}", client.counters().await?);
    client.disconnect().await;
    Ok(())
}
