//! The rules engine: events, facts, rule subscriptions and rule administration.

use super::checked;
use super::store::Feature;
use crate::client::Client;
use crate::error::Result;
use crate::subscription::Subscription;
use noex_proto::ops::{self, Operation};
use noex_proto::{RequestOptions, SubscriptionSpec};
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The rules domain: `client.rules()`.
#[derive(Debug, Clone)]
pub struct Rules {
    client: Client,
}

/// An event as the engine records it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
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
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
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
#[non_exhaustive]
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
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The verdict of `rules.validateRule`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Validation {
    /// Whether the rule is valid.
    pub valid: bool,
    /// Errors found.
    #[serde(default)]
    pub errors: Vec<ValidationIssue>,
    /// Warnings found.
    #[serde(default)]
    pub warnings: Vec<ValidationIssue>,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One finding of `rules.validateRule`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ValidationIssue {
    /// Where in the rule, e.g. `trigger`.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// `error` or `warning`.
    pub severity: String,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A rule's full definition (`rules.getRule`).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
#[non_exhaustive]
pub struct Rule {
    /// The rule's id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// What it does.
    pub description: Option<String>,
    /// Higher runs first.
    pub priority: i64,
    /// Whether it runs.
    pub enabled: bool,
    /// Its tags.
    pub tags: Vec<String>,
    /// What starts it (`{type: "event", topic}`, `{type: "fact", pattern}`, …).
    pub trigger: Value,
    /// What must hold for it to act.
    pub conditions: Vec<Value>,
    /// What it does.
    pub actions: Vec<Value>,
    /// +1 per change.
    pub version: u64,
    /// When registered, ms since the epoch.
    pub created_at: i64,
    /// When last changed, ms since the epoch.
    pub updated_at: i64,
    /// Fields this version does not know (`group`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A rule's summary: `rules.getRules` items, and the answers of `registerRule` and
/// `updateRule` (which carry only some of the fields).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
#[non_exhaustive]
pub struct RuleInfo {
    /// The rule's id.
    pub id: String,
    /// Its name.
    pub name: Option<String>,
    /// Whether it runs.
    pub enabled: Option<bool>,
    /// Higher runs first.
    pub priority: Option<i64>,
    /// +1 per change.
    pub version: u64,
    /// Its tags.
    pub tags: Vec<String>,
    /// When registered, ms since the epoch.
    pub created_at: Option<i64>,
    /// When last changed, ms since the epoch.
    pub updated_at: Option<i64>,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `rules.stats`: the engine's statistics.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
#[non_exhaustive]
pub struct RulesStats {
    /// Registered rules.
    pub rules_count: u64,
    /// Facts held.
    pub facts_count: u64,
    /// Pending timers.
    pub timers_count: u64,
    /// Events processed since start.
    pub events_processed: u64,
    /// Rule runs since start.
    pub rules_executed: u64,
    /// Mean processing time per event, ms.
    pub avg_processing_time_ms: f64,
    /// Whether tracing is on (`entriesCount`, `maxEntries` in its `extra`).
    pub tracing: Feature,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Deserialize)]
struct Deleted {
    deleted: bool,
}

#[derive(Deserialize)]
struct RuleList {
    rules: Vec<RuleInfo>,
}

/// Ids that tie an event to others.
///
/// ```
/// use noex_client::EmitOptions;
/// let options = EmitOptions::new().correlation_id("order-7").causation_id("evt-1");
/// assert_eq!(options.correlation_id.as_deref(), Some("order-7"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EmitOptions {
    /// Correlation id (non-empty). The server keeps a causation id only beside one.
    pub correlation_id: Option<String>,
    /// Causation id.
    pub causation_id: Option<String>,
}

impl EmitOptions {
    /// No ids.
    pub fn new() -> EmitOptions {
        EmitOptions::default()
    }
    /// Sets the correlation id.
    pub fn correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }
    /// Sets the causation id.
    pub fn causation_id(mut self, id: impl Into<String>) -> Self {
        self.causation_id = Some(id.into());
        self
    }
}

impl Client {
    /// The rules engine: events, facts, rule subscriptions, rule administration.
    pub fn rules(&self) -> Rules {
        Rules::new(self.clone())
    }
}

impl Rules {
    pub(crate) fn new(client: Client) -> Rules {
        Rules { client }
    }

    async fn call<T: DeserializeOwned>(&self, op: Operation) -> Result<T> {
        self.client
            .call(checked(op)?, RequestOptions::default())
            .await
    }

    async fn ack(&self, op: Operation) -> Result<()> {
        let _: IgnoredAny = self.call(op).await?;
        Ok(())
    }

    /// Emits an event; `data` must serialise to a JSON object.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn emit(&self, topic: &str, data: impl Serialize) -> Result<RuleEvent> {
        self.emit_with(topic, data, EmitOptions::default()).await
    }

    /// Emits an event with no data (the server records `{}`).
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn emit_without_data(&self, topic: &str) -> Result<RuleEvent> {
        self.call(ops::rules::emit_bare(topic, None, None)).await
    }

    /// Emits an event with correlation and causation ids.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn emit_with(
        &self,
        topic: &str,
        data: impl Serialize,
        options: EmitOptions,
    ) -> Result<RuleEvent> {
        let op = ops::rules::emit(
            topic,
            data,
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
    pub async fn set_fact(&self, key: &str, value: impl Serialize) -> Result<Fact> {
        self.call(ops::rules::set_fact(key, value)).await
    }

    /// A fact's value, `None` when unset. [`Rules::get_fact_as`] decodes it as your type.
    pub async fn get_fact(&self, key: &str) -> Result<Option<Value>> {
        self.get_fact_as(key).await
    }

    /// A fact's value decoded as `T`, `None` when unset.
    pub async fn get_fact_as<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
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

    /// Ends a rules subscription and waits until the client has processed it (as
    /// [`Subscription::unsubscribe`] does).
    pub async fn unsubscribe(&self, subscription: Subscription<RuleMessage>) -> Result<()> {
        subscription.unsubscribe().await;
        Ok(())
    }

    /// Sends `rules.unsubscribe` for a subscription id the server gave (`sub-N`), for
    /// subscriptions made with raw requests ([`crate::Client::request`]). The server
    /// answers `NOT_FOUND` for an id it does not know. Subscriptions made through
    /// [`Rules::subscribe`] are ended with [`Rules::unsubscribe`].
    ///
    /// A write: never re-sent automatically.
    pub async fn unsubscribe_server_id(&self, server_id: &str) -> Result<()> {
        self.ack(ops::rules::unsubscribe(server_id)).await
    }

    /// Registers a rule.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn register_rule(&self, rule: impl Serialize) -> Result<RuleInfo> {
        self.call(ops::rules::register_rule(rule)).await
    }
    /// Removes a rule.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn unregister_rule(&self, rule_id: &str) -> Result<()> {
        self.ack(ops::rules::unregister_rule(rule_id)).await
    }
    /// Changes a rule.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn update_rule(&self, rule_id: &str, updates: impl Serialize) -> Result<RuleInfo> {
        self.call(ops::rules::update_rule(rule_id, updates)).await
    }
    /// Enables a rule.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn enable_rule(&self, rule_id: &str) -> Result<()> {
        self.ack(ops::rules::enable_rule(rule_id)).await
    }
    /// Disables a rule.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn disable_rule(&self, rule_id: &str) -> Result<()> {
        self.ack(ops::rules::disable_rule(rule_id)).await
    }
    /// One rule's definition.
    pub async fn get_rule(&self, rule_id: &str) -> Result<Rule> {
        self.call(ops::rules::get_rule(rule_id)).await
    }
    /// Every rule (summaries).
    pub async fn get_rules(&self) -> Result<Vec<RuleInfo>> {
        let list: RuleList = self.call(ops::rules::get_rules()).await?;
        Ok(list.rules)
    }
    /// Checks a rule without registering it.
    pub async fn validate_rule(&self, rule: impl Serialize) -> Result<Validation> {
        self.call(ops::rules::validate_rule(rule)).await
    }
    /// Engine statistics.
    pub async fn stats(&self) -> Result<RulesStats> {
        self.call(ops::rules::stats()).await
    }
}
