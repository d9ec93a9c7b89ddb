//! Start the embedded noex test server with a demo bucket and queries, print its URL, and
//! serve until Ctrl-C (or for `--seconds N`).
//!
//! ```text
//! cargo run --example testkit_server                 # until Ctrl-C
//! cargo run --example testkit_server -- --seconds 5  # for five seconds
//! cargo run --example testkit_server -- --port 8080  # on a fixed port
//! ```

use std::time::Duration;

use noex_testkit::{BucketDef, QueryDef, TestServer};
use serde_json::json;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seconds: Option<u64> = arg("--seconds").map(|s| s.parse()).transpose()?;
    let port: u16 = arg("--port").map(|s| s.parse()).transpose()?.unwrap_or(0);

    let server = TestServer::builder()
        .bucket(
            BucketDef::new("todos")
                .field("title", json!({"type": "string", "required": true}))
                .field("done", json!({"type": "boolean", "default": false}))
                .field("priority", json!({"type": "number", "min": 1, "max": 5})),
        )
        .query("all-todos", QueryDef::all("todos"))
        .query("todos-by-done", QueryDef::where_param("todos", "done"))
        .query("todo-count", QueryDef::count("todos"))
        .port(port)
        .start()?;
    server.insert(
        "todos",
        json!({"title": "Try the noex test server", "priority": 1}),
    )?;

    println!("noex test server listening on {}", server.url());
    println!("buckets: todos · queries: all-todos, todos-by-done {{done}}, todo-count");

    match seconds {
        Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
        None => {
            println!("press Ctrl-C to stop");
            tokio::signal::ctrl_c().await?;
        }
    }
    println!(
        "stopping; {} todo(s) stored, {} connection(s) open",
        server.records("todos").len(),
        server.connection_count()
    );
    server.stop();
    Ok(())
}
