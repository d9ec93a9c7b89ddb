//! Subscriptions: a live query as a stream, a count query, the callback form, and what a
//! slow reader sees.
//!
//! ```text
//! cargo run --example subscriptions
//! ```

mod common;

use futures::StreamExt;
use noex_tokio::{ClientOptions, Record};
use serde_json::{json, Value};
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = common::server();
    let client = noex_tokio::connect(&server.url, ClientOptions::new()).await?;
    let (bucket, admins) =
        common::users_and_query(&client, "admins", Some(json!({"role": "admin"}))).await?;
    let users = client.store().bucket(&bucket);

    // A stream of whole query results, initial data first.
    let mut live = client.store().subscribe::<Vec<Record>>(&admins).await?;
    println!(
        "admins at first: {}",
        live.next().await.expect("initial")?.len()
    );

    // The callback form: runs on a background task until the handle is dropped.
    let handle = client
        .store()
        .subscribe::<Vec<Record>>(&admins)
        .await?
        .on_update(|result| match result {
            Ok(admins) => println!("  callback: {} admins", admins.len()),
            Err(e) => println!("  callback: subscription ended: {e}"),
        });

    users
        .insert(json!({"name": "Alice", "role": "admin"}))
        .await?;
    users.insert(json!({"name": "Bob"})).await?;
    println!(
        "stream: {} admins",
        live.next().await.expect("update")?.len()
    );

    // A slow reader never makes memory grow: only the latest result is kept.
    for i in 0..50 {
        users
            .insert(json!({"name": format!("admin-{i}"), "role": "admin"}))
            .await?;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    println!("unread results held: {} (only the latest)", live.unread());
    let latest: Vec<Record<Value>> = live.next().await.expect("latest")?;
    println!("the latest result has {} admins", latest.len());

    drop(handle); // unsubscribes on the server
    live.unsubscribe().await;
    client.store().undefine_query(&admins).await?;
    client.store().drop_bucket(&bucket).await?;
    client.disconnect().await;
    Ok(())
}
