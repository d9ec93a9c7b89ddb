//! The rules engine: events, facts, rule subscriptions and rule administration.

use super::checked;
use crate::client::Client;
use crate::error::Result;
use crate::rule_events::RuleEvent;
use crate::subscription::RuleSubscription;
use noex_proto::ops::{self, Operation};
use noex_proto::{RequestOptions, SubscriptionId, SubscriptionSpec};
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The rules domain: `client.rules()`.
#[derive(Debug, Clone)]
pub struct Rules {
    client: Client,
}

/// A fact.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Fact {
    /// The key, e.g. `customer:42:tier`.
    pub key: String,
    /// The value; `None` when a rule set the fact to nothing (the server then leaves the
    /// field out), `Some(Value::Null)` for `null`.
    #[serde(default, deserialize_with = "present")]
    pub value: Option<Value>,
    /// When set, ms since the epoch.
    pub timestamp: i64,
    /// Who set it: `api`, `rule`, …
    pub source: String,
    /// Version, +1 per change.
    pub version: u64,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A field that is there, `null` included (a missing one is `None` by `default`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// The verdict of `rules.validateRule`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Validation {
    /// Whether the rule is valid.
    pub valid: bool,
    /// Errors found.
    pub errors: Vec<ValidationIssue>,
    /// Warnings found.
    pub warnings: Vec<ValidationIssue>,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One finding of `rules.validateRule`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
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

/// A rule's full definition (`rules.getRule`): the rule as it was registered, plus its
/// version and times. The engine requires only `id`, `name` and `trigger`; the other
/// fields of the definition are `None` when the rule was registered without them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Rule {
    /// The rule's id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// What it does.
    #[serde(default)]
    pub description: Option<String>,
    /// Higher runs first.
    #[serde(default)]
    pub priority: Option<i64>,
    /// Whether it runs.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Its tags.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// The group it belongs to.
    #[serde(default)]
    pub group: Option<String>,
    /// What starts it (`{type: "event", topic}`, `{type: "fact", pattern}`, …).
    pub trigger: Value,
    /// What must hold for it to act.
    #[serde(default)]
    pub conditions: Option<Vec<Value>>,
    /// What it does.
    #[serde(default)]
    pub actions: Option<Vec<Value>>,
    /// +1 per change (the engine counts across its rules).
    pub version: u64,
    /// When registered, ms since the epoch.
    pub created_at: i64,
    /// When last changed, ms since the epoch.
    pub updated_at: i64,
    /// Fields this version does not know (`lookups`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A rule's summary, an item of `rules.getRules`. `enabled`, `priority`, `tags` and
/// `group` are `None` when the rule was registered without them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct RuleInfo {
    /// The rule's id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Whether it runs.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Higher runs first.
    #[serde(default)]
    pub priority: Option<i64>,
    /// +1 per change.
    pub version: u64,
    /// Its tags.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// The group it belongs to.
    #[serde(default)]
    pub group: Option<String>,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The answer of `rules.registerRule`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct RuleRegistered {
    /// The rule's id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: u64,
    /// When registered, ms since the epoch.
    pub created_at: i64,
    /// The same time, ms since the epoch.
    pub updated_at: i64,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The answer of `rules.updateRule`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct RuleUpdated {
    /// The rule's id.
    pub id: String,
    /// Its new version.
    pub version: u64,
    /// When changed, ms since the epoch.
    pub updated_at: i64,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The answer of `rules.unregisterRule` (a rule that did not exist is `NOT_FOUND`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct RuleUnregistered {
    /// The rule's id.
    pub rule_id: String,
    /// `true`.
    pub unregistered: bool,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The answer of `rules.enableRule` and `rules.disableRule` (a rule that does not exist is
/// `NOT_FOUND`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct RuleEnabled {
    /// The rule's id.
    pub rule_id: String,
    /// Whether it runs now: `true` after `enable_rule`, `false` after `disable_rule`.
    pub enabled: bool,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `rules.stats`: the engine's statistics.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
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
    /// Mean processing time per rule run, ms.
    pub avg_processing_time_ms: f64,
    /// The engine's tracing.
    pub tracing: TracingStats,
    /// Fields this version does not know, and the sections of engines configured with
    /// them (`profiling`, `audit`, `versioning`, `baseline`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The rule engine's tracing, in [`RulesStats`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct TracingStats {
    /// Whether tracing is on.
    pub enabled: bool,
    /// Trace entries held.
    pub entries_count: u64,
    /// The most entries held (a ring buffer).
    pub max_entries: u64,
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
#[non_exhaustive]
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

    /// A fact's value decoded as `T` (`serde_json::Value` when untyped), `None` when the
    /// fact is unset (or its value is `null`).
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> noex_client::Result<()> {
    /// let tier: Option<String> = client.rules().get_fact("customer:42:tier").await?;
    /// let raw: Option<serde_json::Value> = client.rules().get_fact("customer:42:limits").await?;
    /// # let _ = (tier, raw);
    /// # Ok(())
    /// # }
    /// ```
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
    /// [`RuleSubscription`] for what it yields, how it buffers and how it ends.
    pub async fn subscribe(&self, pattern: &str) -> Result<RuleSubscription> {
        let policy = self
            .client
            .options()
            .map(|o| o.rules_policy())
            .unwrap_or(crate::slot::BufferPolicy::Queue(4096));
        let raw = self
            .client
            .subscribe_raw(SubscriptionSpec::rules(pattern), policy)
            .await?;
        Ok(RuleSubscription::new(raw, self.client.clone(), pattern))
    }

    /// Ends a rules subscription by its client-side handle ([`RuleSubscription::id`]), as
    /// dropping the [`RuleSubscription`] (or [`RuleSubscription::unsubscribe`]) does, and
    /// waits until the client has processed it. Nothing is sent when disconnected, and an
    /// id that is not live any more is nothing to end.
    pub async fn unsubscribe(&self, id: SubscriptionId) {
        if let Err(error) = self.client.unsubscribe_id(id).await {
            tracing::debug!(%id, %error, "rules unsubscribe: nothing to end");
        }
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
    pub async fn register_rule(&self, rule: impl Serialize) -> Result<RuleRegistered> {
        self.call(ops::rules::register_rule(rule)).await
    }
    /// Removes a rule.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn unregister_rule(&self, rule_id: &str) -> Result<RuleUnregistered> {
        self.call(ops::rules::unregister_rule(rule_id)).await
    }
    /// Changes a rule.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn update_rule(&self, rule_id: &str, updates: impl Serialize) -> Result<RuleUpdated> {
        self.call(ops::rules::update_rule(rule_id, updates)).await
    }
    /// Enables a rule.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn enable_rule(&self, rule_id: &str) -> Result<RuleEnabled> {
        self.call(ops::rules::enable_rule(rule_id)).await
    }
    /// Disables a rule.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn disable_rule(&self, rule_id: &str) -> Result<RuleEnabled> {
        self.call(ops::rules::disable_rule(rule_id)).await
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule_events::RuleMessage;
    use serde_json::json;

    fn recorded_stats() -> Value {
        json!({"rulesCount": 5, "factsCount": 0, "timersCount": 0, "eventsProcessed": 32,
               "rulesExecuted": 16, "avgProcessingTimeMs": 0.9375,
               "tracing": {"enabled": false, "entriesCount": 0, "maxEntries": 10000}})
    }

    #[test]
    fn answers_decode_from_the_recorded_shapes() {
        let stats: RulesStats = serde_json::from_value(recorded_stats()).unwrap();
        assert_eq!((stats.rules_count, stats.events_processed), (5, 32));
        assert_eq!(stats.tracing.max_entries, 10_000);
        let event: RuleEvent = serde_json::from_value(json!({
            "id": "e1", "topic": "go", "data": {"kind": "k2"}, "timestamp": 1,
            "correlationId": "corr-1", "causationId": "cause-1", "source": "api"
        }))
        .unwrap();
        assert_eq!(event.causation_id.as_deref(), Some("cause-1"));
        let facts: Vec<Fact> = serde_json::from_value(json!([
            {"key": "cfg:1", "value": {"limit": 7}, "timestamp": 1, "source": "api", "version": 1},
            {"key": "res:missing:", "timestamp": 1, "source": "rule", "version": 1},
            {"key": "n", "value": null, "timestamp": 1, "source": "api", "version": 1}
        ]))
        .unwrap();
        assert_eq!(facts[0].value, Some(json!({"limit": 7})));
        assert_eq!(facts[1].value, None);
        assert_eq!(facts[2].value, Some(Value::Null));
        let rule: Rule = serde_json::from_value(json!({
            "id": "noenabled", "name": "rule noenabled", "tags": [], "priority": 0,
            "trigger": {"type": "event", "topic": "t"}, "conditions": [],
            "actions": [{"type": "emit_event", "topic": "fired", "data": {}}],
            "version": 8, "createdAt": 1, "updatedAt": 2
        }))
        .unwrap();
        assert_eq!((rule.enabled, rule.priority), (None, Some(0)));
        let list: RuleList = serde_json::from_value(json!({"rules": [
            {"id": "a", "name": "renamed a", "enabled": true, "priority": 5, "version": 4,
             "tags": []},
            {"id": "g", "name": "grouped", "version": 1, "group": "billing"}
        ]}))
        .unwrap();
        assert_eq!(list.rules[0].priority, Some(5));
        assert_eq!(list.rules[1].group.as_deref(), Some("billing"));
        assert!(list.rules[1].tags.is_none());
        let registered: RuleRegistered = serde_json::from_value(json!({
            "id": "ship-notify", "name": "Ship notify", "version": 1, "createdAt": 1,
            "updatedAt": 1
        }))
        .unwrap();
        assert_eq!(registered.version, 1);
        let updated: RuleUpdated =
            serde_json::from_value(json!({"id": "ship-notify", "version": 2, "updatedAt": 3}))
                .unwrap();
        assert_eq!(updated.version, 2);
        let gone: RuleUnregistered =
            serde_json::from_value(json!({"ruleId": "ship-notify", "unregistered": true})).unwrap();
        assert!(gone.unregistered);
        let off: RuleEnabled =
            serde_json::from_value(json!({"ruleId": "ship-notify", "enabled": false})).unwrap();
        assert!(!off.enabled);
        let verdict: Validation = serde_json::from_value(json!({
            "valid": false, "warnings": [],
            "errors": [{"path": "name", "message": "Required field", "severity": "error"}]
        }))
        .unwrap();
        assert_eq!(verdict.errors[0].path, "name");
        let message: RuleMessage = serde_json::from_value(json!({"topic": "go", "event": {
            "id": "e", "topic": "go", "data": {}, "timestamp": 1, "source": "rule"
        }}))
        .unwrap();
        assert_eq!(message.event.source, "rule");
    }

    /// A field the server always sends fails the decoding when it is missing, instead of
    /// reading as a made-up `0`, `""` or `false`.
    #[test]
    fn fields_the_server_always_sends_are_required() {
        for field in [
            "rulesCount",
            "factsCount",
            "timersCount",
            "eventsProcessed",
            "rulesExecuted",
            "avgProcessingTimeMs",
            "tracing",
        ] {
            let mut partial = recorded_stats();
            partial.as_object_mut().unwrap().remove(field);
            assert!(
                serde_json::from_value::<RulesStats>(partial).is_err(),
                "{field}"
            );
        }
        let fact = json!({"key": "k", "value": 1, "timestamp": 1, "source": "api", "version": 1});
        for field in ["key", "timestamp", "source", "version"] {
            let mut partial = fact.clone();
            partial.as_object_mut().unwrap().remove(field);
            assert!(serde_json::from_value::<Fact>(partial).is_err(), "{field}");
        }
        let event = json!({"id": "e", "topic": "t", "data": {}, "timestamp": 1, "source": "api"});
        for field in ["data", "source", "timestamp"] {
            let mut partial = event.clone();
            partial.as_object_mut().unwrap().remove(field);
            assert!(
                serde_json::from_value::<RuleEvent>(partial).is_err(),
                "{field}"
            );
        }
        let issue = json!({"path": "name", "severity": "error"});
        assert!(serde_json::from_value::<ValidationIssue>(issue).is_err());
        assert!(serde_json::from_value::<Validation>(json!({"valid": true})).is_err());
        assert!(serde_json::from_value::<RuleInfo>(json!({"id": "a", "name": "a"})).is_err());
        let rule = json!({"id": "a", "name": "a", "trigger": {}, "version": 1, "createdAt": 1});
        assert!(serde_json::from_value::<Rule>(rule).is_err());
    }
}
