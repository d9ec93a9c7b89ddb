//! The rules engine: a rule that reacts to events, a pattern subscription, and facts.
//!
//! ```text
//! cargo run --example rules
//! ```

mod common;

use futures::StreamExt;
use noex_tokio::{ClientOptions, EmitOptions, RuleUpdate};
use serde_json::json;
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = common::server();
    let client = noex_tokio::connect(&server.url, ClientOptions::new()).await?;
    let rules = client.rules();
    let topic = common::unique("order");
    let rule_id = format!("{topic}-ready");

    rules
        .register_rule(json!({
            "id": rule_id, "name": "Paid orders are ready", "priority": 10, "enabled": true,
            "tags": [], // noex-rules needs the field (it fails with "rule.tags is not iterable")
            "trigger": {"type": "event", "topic": format!("{topic}.paid")},
            "conditions": [],
            "actions": [{"type": "emit_event", "topic": format!("{topic}.ready"), "data": {"by": "rule"}}]
        }))
        .await?;

    let mut events = rules.subscribe(&format!("{topic}.*")).await?;
    rules
        .emit_with(
            &format!("{topic}.paid"),
            json!({"orderId": "o-1"}),
            EmitOptions::new().correlation_id("checkout-1"),
        )
        .await?;
    // The paid event, then the one the rule emitted.
    for _ in 0..2 {
        match tokio::time::timeout(Duration::from_secs(2), events.next()).await {
            Ok(Some(Ok(RuleUpdate::Event(message)))) => {
                println!("event {} from {}", message.topic, message.event.source)
            }
            other => println!("no event: {other:?}"),
        }
    }

    let key = format!("{topic}:customer:42:tier");
    rules.set_fact(&key, json!("gold")).await?;
    println!("fact {key} = {:?}", rules.get_fact::<String>(&key).await?);
    println!(
        "facts matching {topic}:customer:*:tier: {}",
        rules
            .query_facts(&format!("{topic}:customer:*:tier"))
            .await?
            .len()
    );
    rules.delete_fact(&key).await?;

    events.unsubscribe().await;
    rules.unregister_rule(&rule_id).await?;
    client.disconnect().await;
    Ok(())
}
