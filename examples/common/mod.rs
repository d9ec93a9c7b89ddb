//! What every example shares: where the server is, and the demo data it needs.
//!
//! With `NOEX_URL` set the examples talk to that server (no auth, rules enabled) and create
//! what they need through the admin operations. Without it they start the embedded test
//! server, so they run on a fresh machine with no setup.

#![allow(dead_code)]

use noex_testkit::TestServer;
use serde_json::json;

/// The server an example talks to. Keep it alive for the example's duration.
pub(crate) struct Server {
    /// Its URL.
    pub url: String,
    /// The embedded server, when no `NOEX_URL` was given.
    pub embedded: Option<TestServer>,
}

/// `NOEX_URL`, or a fresh embedded server.
pub(crate) fn server() -> Server {
    match std::env::var("NOEX_URL") {
        Ok(url) if !url.is_empty() => {
            println!("using the server at {url}");
            Server {
                url,
                embedded: None,
            }
        }
        _ => {
            let embedded = TestServer::builder()
                .start()
                .expect("the embedded server starts");
            println!("started the embedded test server at {}", embedded.url());
            Server {
                url: embedded.url(),
                embedded: Some(embedded),
            }
        }
    }
}

/// The `users` bucket definition the examples use.
pub(crate) fn users_bucket() -> serde_json::Value {
    json!({"key": "id", "schema": {
        "id": {"type": "string", "generated": "uuid"},
        "name": {"type": "string", "required": true},
        "age": {"type": "number", "min": 0},
        "role": {"type": "string", "default": "user"}
    }})
}

/// A name unique to this run, so examples can run against a shared server.
pub(crate) fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}", nanos % 1_000_000_000)
}

/// Defines a fresh `users` bucket and a query named `{bucket}-{suffix}` over the records
/// matching `filter` (all when `None`); returns both names.
pub(crate) async fn users_and_query(
    client: &noex_tokio::Client,
    suffix: &str,
    filter: Option<serde_json::Value>,
) -> noex_tokio::Result<(String, String)> {
    let bucket = unique("users");
    let query = format!("{bucket}-{suffix}");
    client
        .store()
        .define_bucket(&bucket, &users_bucket())
        .await?;
    let mut config = json!({"bucket": bucket});
    if let Some(filter) = filter {
        config["filter"] = filter;
    }
    client.store().define_query(&query, &config).await?;
    Ok((bucket, query))
}
