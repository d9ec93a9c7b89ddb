//! The quick start on async-std: connect, insert, count, subscribe to a count, clean up.
//!
//! ```text
//! cargo run --example quickstart_async_std
//! ```

// noex-async-std is deprecated in favour of noex-smol (as async-std is); it still works.
#![allow(deprecated)]

mod common;

use futures::StreamExt;
use noex_async_std::{ClientOptions, Filter};
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    async_std::task::block_on(async {
        let server = common::server();
        let client = noex_async_std::connect(&server.url, ClientOptions::new()).await?;
        let (bucket, query) = common::users_and_query(&client, "all", None).await?;

        let mut live = client
            .store()
            .subscribe::<Vec<serde_json::Value>>(&query)
            .await?;
        println!(
            "initially {} users",
            live.next().await.expect("initial")?.len()
        );
        let users = client.store().bucket(&bucket);
        users.insert(json!({"name": "Alice", "age": 30})).await?;
        println!(
            "after an insert: {} users",
            live.next().await.expect("update")?.len()
        );
        println!("count(): {}", users.count(Filter::all()).await?);

        live.unsubscribe().await;
        client.store().undefine_query(&query).await?;
        client.store().drop_bucket(&bucket).await?;
        client.disconnect().await;
        Ok(())
    })
}
