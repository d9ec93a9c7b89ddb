//! Transactions: several operations applied atomically, and a failing one that changes
//! nothing.
//!
//! ```text
//! cargo run --example transactions
//! ```

mod common;

use noex_tokio::{ClientOptions, Filter, Transaction, TxOutcome, TxResult};
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = common::server();
    let client = noex_tokio::connect(&server.url, ClientOptions::new()).await?;
    let bucket = common::unique("accounts");
    client
        .store()
        .define_bucket(&bucket, common::users_bucket())
        .await?;
    let accounts = client.store().bucket(&bucket);
    let alice = accounts.insert(json!({"name": "Alice", "age": 30})).await?;

    // Building never fails; a value that cannot be serialised fails `transaction` unsent.
    let tx = Transaction::new()
        .insert(&bucket, json!({"name": "Eve", "age": 22}))
        .update(&bucket, &alice.key, json!({"age": 31}))
        .get(&bucket, &alice.key)
        .count(&bucket, Filter::field("age").gte(30));
    let results: Vec<TxResult> = client.store().transaction(tx).await?;
    for result in &results {
        let index = result.index;
        match &result.outcome {
            TxOutcome::Written(record) => println!("op {index}: wrote version {}", record.version),
            TxOutcome::Found(record) => {
                println!("op {index}: found {:?}", record.as_ref().map(|r| &r.data))
            }
            TxOutcome::Count(n) => println!("op {index}: {n} records aged 30 or more"),
            TxOutcome::Records(records) => println!("op {index}: {} records", records.len()),
            TxOutcome::Deleted(deleted) => println!("op {index}: deleted {deleted}"),
        }
    }

    // The second insert is invalid (no name): nothing of this transaction is applied.
    let failing = Transaction::new()
        .insert(&bucket, json!({"name": "Mallory"}))
        .insert(&bucket, json!({"age": 5}));
    match client.store().transaction::<Value>(failing).await {
        Ok(_) => println!("unexpected success"),
        Err(e) => println!(
            "failed as expected: {e} (may have been applied: {})",
            e.may_have_been_applied()
        ),
    }
    println!("records now: {}", accounts.count(Filter::all()).await?);

    client.store().drop_bucket(&bucket).await?;
    client.disconnect().await;
    Ok(())
}
