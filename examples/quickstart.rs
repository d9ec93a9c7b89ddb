//! The quick start: connect, insert, list, subscribe, emit, clean up (tokio).
//!
//! ```text
//! cargo run --example quickstart                      # against the embedded server
//! NOEX_URL=ws://127.0.0.1:8080 cargo run --example quickstart
//! ```

mod common;

use futures::StreamExt;
use noex_tokio::{ClientOptions, Filter, Record};
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Deserialize)]
struct User {
    name: String,
    age: f64,
    role: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = common::server();
    let client = noex_tokio::connect(&server.url, ClientOptions::new()).await?;
    println!("connected: {:?}", client.state());

    // A bucket and a live query, created through the admin operations.
    let (bucket, query) = common::users_and_query(&client, "all", None).await?;
    let users = client.store().bucket(&bucket).typed::<User>();

    // Insert (two at once: arguments are owned, so futures over temporaries compose).
    let (alice, bob) = tokio::join!(
        users.insert(json!({"name": "Alice", "age": 30, "role": "admin"})),
        users.insert(json!({"name": "Bob", "age": 25})),
    );
    let (alice, _bob) = (alice?, bob?);
    println!(
        "inserted Alice with key {} (version {})",
        alice.key, alice.version
    );
    for user in users.all().await? {
        println!(
            "  {} ({}), {}",
            user.data.name, user.data.age, user.data.role
        );
    }
    // Filters: the typed builder (or raw JSON such as `json!({"age": {"$gte": 30}})`).
    let thirty_plus = users
        .find(
            Filter::field("age")
                .gte(30)
                .and(Filter::field("role").eq("admin")),
        )
        .await?;
    println!("admins aged 30 or more: {}", thirty_plus.len());

    // Subscribe: the initial result first, then every change.
    let mut live = client
        .store()
        .subscribe::<Vec<Record<User>>>(&query)
        .await?;
    let initial = live.next().await.expect("initial result")?;
    println!("subscription starts with {} users", initial.len());
    users.insert(json!({"name": "Carol", "age": 35})).await?;
    let update = live.next().await.expect("an update")?;
    println!("subscription now sees {} users", update.len());

    // Rules: subscribe to a topic pattern and emit an event.
    let mut orders = client.rules().subscribe("order.*").await?;
    let event = client
        .rules()
        .emit("order.created", json!({"orderId": "o-1", "total": 99}))
        .await?;
    // The first item is the event (a notice of missed events comes only after a reconnect).
    let delivered = orders
        .next()
        .await
        .expect("an item")?
        .into_event()
        .expect("an event");
    println!(
        "emitted {} and received {} on {}",
        event.id, delivered.event.id, delivered.topic
    );

    // Clean up.
    live.unsubscribe().await;
    client.rules().unsubscribe(orders.id()).await;
    client.store().undefine_query(&query).await?;
    client.store().drop_bucket(&bucket).await?;
    client.disconnect().await;
    println!("done");
    Ok(())
}
