//! Live views, in the style of Firestore's `docChanges()`: a query's result kept for you,
//! and on every change exactly which records were added, updated and removed.
//!
//! ```text
//! cargo run --example live_view
//! ```

mod common;

use futures::StreamExt;
use noex_tokio::{Changes, ClientOptions, LiveQuery, Record};
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;

/// An admin as the application reads it.
#[derive(Debug, Clone, Deserialize)]
struct Admin {
    name: String,
    #[serde(default)]
    age: Option<f64>,
}

fn describe(record: &Record<Admin>) -> String {
    match record.data.age {
        Some(age) => format!("{} ({age}), version {}", record.data.name, record.version),
        None => format!("{}, version {}", record.data.name, record.version),
    }
}

/// Reads the next item and reacts to each change.
async fn react(live: &mut LiveQuery<Admin>) -> Result<Changes<Admin>, Box<dyn std::error::Error>> {
    let changes = live.next().await.ok_or("the live view ended")??;
    for admin in &changes.added {
        println!("  added    {}", describe(admin));
    }
    for admin in &changes.updated {
        println!("  updated  {}", describe(admin));
    }
    for admin in &changes.removed {
        println!("  removed  {}", describe(admin));
    }
    let names: Vec<&str> = live.view().iter().map(|a| a.data.name.as_str()).collect();
    println!("  {} admins now: {names:?}", live.view().len());
    Ok(changes)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = common::server();
    let client = noex_tokio::connect(&server.url, ClientOptions::new()).await?;
    let (bucket, admins) =
        common::users_and_query(&client, "admins", Some(json!({"role": "admin"}))).await?;
    let users = client.store().bucket(&bucket);
    let ada = users
        .insert(json!({"name": "Ada", "role": "admin", "age": 36}))
        .await?;

    let mut live = client.store().live::<Admin>(&admins).await?;
    println!("the initial result, all added:");
    react(&mut live).await?;

    println!("Bob becomes an admin:");
    let bob = users
        .insert(json!({"name": "Bob", "role": "admin", "age": 41}))
        .await?;
    let changes = react(&mut live).await?;
    assert_eq!(changes.added.len(), 1);

    println!("Bob has a birthday:");
    users.update(&bob.key, json!({"age": 42})).await?;
    let changes = react(&mut live).await?;
    assert_eq!(changes.updated.len(), 1);

    println!("Ada is no longer an admin (her record stays in the bucket):");
    users.update(&ada.key, json!({"role": "user"})).await?;
    let changes = react(&mut live).await?;
    assert_eq!(changes.removed.len(), 1);

    println!("Cy joins, not as an admin:");
    users.insert(json!({"name": "Cy", "age": 20})).await?;
    match tokio::time::timeout(Duration::from_millis(300), live.next()).await {
        Err(_) => println!("  nothing changed for the admins: no item"),
        Ok(item) => println!("  unexpected: {item:?}"),
    }

    // Dropping the live view (or `unsubscribe()`) ends it on the server.
    live.unsubscribe().await;
    client.store().undefine_query(&admins).await?;
    client.store().drop_bucket(&bucket).await?;
    client.disconnect().await;
    Ok(())
}
