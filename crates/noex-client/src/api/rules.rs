//! The rules engine: events, facts, rule subscriptions and rule administration.

use super::to_json;
use crate::client::Client;
use crate::error::Result;
use crate::subscription::Subscription;
use noex_proto::{ops, Operation, RequestOptions, SubscriptionSpec};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The rules domain: `client.rules()`.
#[derive(Debug, Clone)]
pub struct Rules {
    client: Client,
}

/// An event as the engine records it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleEvent {
    /// The event's id.
    pub id: String,
    /// Its topic.
    pub topic: String,
    /// Its payload.
    #[serde(default)]
    pub data: Value,
    /// When, ms since the epoch.
    pub timestamp: i64,
    /// `api`, `rule`, …
    #[serde(default)]
    pub source: Option<String>,
    /// Correlation id, when given.
    #[serde(default)]
    pub correlation_id: Option<String>,
    /// Causation id, when given.
    #[serde(default)]
    pub causation_id: Option<String>,
}

/// What a rules subscription yields: the topic and the event.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RuleMessage {
    /// The event's topic.
    pub topic: String,
    /// The event.
    pub event: RuleEvent,
}

/// A fact.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Fact {
    /// The key, e.g. `customer:42:tier`.
    pub key: String,
    /// The value.
    pub value: Value,
    /// When set, ms since the epoch.
    #[serde(default)]
    pub timestamp: i64,
    /// Who set it.
    #[serde(default)]
    pub source: Option<String>,
    /// Version, +1 per change.
    #[serde(default)]
    pub version: u64,
}

/// The verdict of `rules.validateRule`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Validation {
    /// Whether the rule is valid.
    pub valid: bool,
    /// Errors found.
    #[serde(default)]
    pub errors: Vec<Value>,
    /// Warnings found.
    #[serde(default)]
    pub warnings: Vec<Value>,
}

#[derive(Deserialize)]
struct Deleted {
    deleted: bool,
}

#[derive(Deserialize)]
struct RuleList {
    rules: Vec<Value>,
}

/// Ids that tie an event to others.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EmitOptions {
    /// Correlation id.
    pub correlation_id: Option<String>,
    /// Causation id.
    pub causation_id: Option<String>,
}

impl Rules {
    pub(crate) fn new(client: Client) -> Rules {
        Rules { client }
    }

    async fn call<T: DeserializeOwned>(&self, op: Operation) -> Result<T> {
        self.client.call(op, RequestOptions::default()).await
    }

    /// Emits an event.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn emit(&self, topic: &str, data: &(impl Serialize + ?Sized)) -> Result<RuleEvent> {
        self.emit_with(topic, data, EmitOptions::default()).await
    }

    /// Emits an event with correlation and causation ids.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn emit_with(
        &self,
        topic: &str,
        data: &(impl Serialize + ?Sized),
        options: EmitOptions,
    ) -> Result<RuleEvent> {
        let op = ops::rules::emit(
            topic,
            &to_json(data)?,
            options.correlation_id.as_deref(),
            options.causation_id.as_deref(),
        );
        self.call(op).await
    }

    /// Sets a fact.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn set_fact(&self, key: &str, value: &(impl Serialize + ?Sized)) -> Result<Fact> {
        self.call(ops::rules::set_fact(key, &to_json(value)?)).await
    }

    /// A fact's value, `None` when unset.
    pub async fn get_fact<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        self.call(ops::rules::get_fact(key)).await
    }

    /// Deletes a fact; returns whether it existed.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn delete_fact(&self, key: &str) -> Result<bool> {
        let answer: Deleted = self.call(ops::rules::delete_fact(key)).await?;
        Ok(answer.deleted)
    }

    /// Facts whose keys match `pattern` (e.g. `customer:*:tier`).
    pub async fn query_facts(&self, pattern: &str) -> Result<Vec<Fact>> {
        self.call(ops::rules::query_facts(pattern)).await
    }

    /// Every fact.
    pub async fn all_facts(&self) -> Result<Vec<Fact>> {
        self.call(ops::rules::get_all_facts()).await
    }

    /// Subscribes to events whose topic matches `pattern` (e.g. `order.*`). See
    /// [`Subscription`] for the buffering policy.
    pub async fn subscribe(&self, pattern: &str) -> Result<Subscription<RuleMessage>> {
        let policy = self
            .client
            .options()
            .map(|o| o.rules_policy())
            .unwrap_or(crate::slot::BufferPolicy::Queue(4096));
        let raw = self
            .client
            .subscribe_raw(SubscriptionSpec::rules(pattern), policy)
            .await?;
        Ok(Subscription::new(raw, self.client.clone()))
    }

    /// Registers a rule.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn register_rule(&self, rule: &(impl Serialize + ?Sized)) -> Result<Value> {
        self.call(ops::rules::register_rule(&to_json(rule)?)).await
    }
    /// Removes a rule.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn unregister_rule(&self, rule_id: &str) -> Result<Value> {
        self.call(ops::rules::unregister_rule(rule_id)).await
    }
    /// Changes a rule.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn update_rule(
        &self,
        rule_id: &str,
        updates: &(impl Serialize + ?Sized),
    ) -> Result<Value> {
        self.call(ops::rules::update_rule(rule_id, &to_json(updates)?))
            .await
    }
    /// Enables a rule.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn enable_rule(&self, rule_id: &str) -> Result<Value> {
        self.call(ops::rules::enable_rule(rule_id)).await
    }
    /// Disables a rule.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn disable_rule(&self, rule_id: &str) -> Result<Value> {
        self.call(ops::rules::disable_rule(rule_id)).await
    }
    /// One rule's definition.
    pub async fn get_rule(&self, rule_id: &str) -> Result<Value> {
        self.call(ops::rules::get_rule(rule_id)).await
    }
    /// Every rule (summaries).
    pub async fn get_rules(&self) -> Result<Vec<Value>> {
        let list: RuleList = self.call(ops::rules::get_rules()).await?;
        Ok(list.rules)
    }
    /// Checks a rule without registering it.
    pub async fn validate_rule(&self, rule: &(impl Serialize + ?Sized)) -> Result<Validation> {
        self.call(ops::rules::validate_rule(&to_json(rule)?)).await
    }
    /// Engine statistics.
    pub async fn stats(&self) -> Result<Value> {
        self.call(ops::rules::stats()).await
    }
}
