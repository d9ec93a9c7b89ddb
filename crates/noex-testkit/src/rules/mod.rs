//! The rule engine (noex-rules as the real server runs it): events with pattern
//! subscriptions, facts, the rule registry with one version counter, timers, and rule
//! execution (event, fact and timer triggers; conditions; every action type) with the
//! engine's reference resolution, interpolation and failure semantics.

mod exec;
mod patterns;
mod validate;

use indexmap::IndexMap;
use serde_json::{Map, Value};

use crate::clock::Clock;
use crate::error::{OpError, OpResult};
use crate::json::{event_id, obj};
use crate::subscriptions::SubRegistry;
use patterns::{fact_matches, fact_prefix, subscription_matches, topic_matches};

/// `maxForwardDepth`: how deep rule-triggered processing may nest.
const MAX_FORWARD_DEPTH: usize = 10;
/// Timers alive at once (names are unique; a rule can mint names without end).
const MAX_TIMERS: usize = 100_000;

/// A pattern subscription of one connection.
#[derive(Debug, Clone)]
pub(crate) struct RuleSub {
    pub(crate) id: String,
    pub(crate) conn: u64,
    pub(crate) pattern: String,
}

/// An `event` push to deliver: `(conn, subscriptionId, data)`.
pub(crate) type EventPush = (u64, String, Value);

/// What a trigger index is keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Event,
    Fact,
    Timer,
}

impl Kind {
    fn of(rule: &Map<String, Value>) -> Option<(Kind, String)> {
        let t = rule.get("trigger")?;
        let (kind, field) = match t.get("type")?.as_str()? {
            "event" => (Kind::Event, "topic"),
            "fact" => (Kind::Fact, "pattern"),
            "timer" => (Kind::Timer, "name"),
            _ => return None,
        };
        Some((kind, t.get(field)?.as_str()?.to_string()))
    }

    fn idx(self) -> usize {
        match self {
            Kind::Event => 0,
            Kind::Fact => 1,
            Kind::Timer => 2,
        }
    }
}

/// A running timer (`TimerManager`, in-memory mode).
#[derive(Debug, Clone)]
struct Timer {
    id: String,
    name: String,
    expires_at: i64,
    topic: String,
    data: Map<String, Value>,
    repeat_ms: Option<i64>,
    correlation: Option<String>,
}

/// What fired a rule.
#[derive(Debug, Clone)]
pub(crate) enum Trigger {
    Event(Value),
    Fact(Value),
    Timer(Value),
}

/// Engine state.
#[derive(Debug, Clone, Default)]
pub(crate) struct Rules {
    facts: IndexMap<String, Map<String, Value>>,
    rules: IndexMap<String, Map<String, Value>>,
    next_version: u64,
    /// Trigger indexes per kind: exact keys and wildcard patterns, each with its rule
    /// ids in indexing order (the order matching rules are found in).
    exact: [IndexMap<String, Vec<String>>; 3],
    wild: [IndexMap<String, Vec<String>>; 3],
    /// Pattern subscriptions in registration order, counted per connection.
    subs: SubRegistry<RuleSub>,
    /// Wildcard subscription patterns in order of (first) registration, with counts.
    sub_patterns: IndexMap<String, usize>,
    timers: IndexMap<String, Timer>,
    events_processed: u64,
    rules_executed: u64,
    /// The server's clock (event and fact timestamps, timers).
    clock: Clock,
}

fn fact_value(f: &Map<String, Value>) -> Option<&Value> {
    f.get("value")
}

impl Rules {
    /// An empty engine reading time from `clock`.
    pub(crate) fn new(clock: Clock) -> Rules {
        Rules {
            clock,
            ..Rules::default()
        }
    }

    /// When the earliest pending timer is due (ms since the epoch).
    pub(crate) fn next_timer_due(&self) -> Option<i64> {
        self.timers.values().map(|t| t.expires_at).min()
    }

    // ── subscriptions ───────────────────────────────────────────

    pub(crate) fn subscribe(&mut self, conn: u64, id: String, pattern: String) {
        if pattern.contains('*') {
            *self.sub_patterns.entry(pattern.clone()).or_insert(0) += 1;
        }
        self.subs
            .insert(conn, id.clone(), RuleSub { id, conn, pattern });
    }

    /// The pattern subscriptions, in registration order, counted per connection.
    pub(crate) fn subs(&self) -> &SubRegistry<RuleSub> {
        &self.subs
    }

    fn forget_pattern(&mut self, pattern: &str) {
        if let Some(n) = self.sub_patterns.get_mut(pattern) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.sub_patterns.shift_remove(pattern);
            }
        }
    }

    /// Remove subscription `id` of `conn`; false when there is none.
    pub(crate) fn unsubscribe(&mut self, conn: u64, id: &str) -> bool {
        let Some(s) = self.subs.remove_first(conn, id) else {
            return false;
        };
        self.forget_pattern(&s.pattern);
        true
    }

    /// Remove all subscriptions of `conn` (it closed).
    pub(crate) fn drop_connection(&mut self, conn: u64) {
        for s in self.subs.remove_conn(conn) {
            self.forget_pattern(&s.pattern);
        }
    }

    /// Remove every subscription (a restart).
    pub(crate) fn clear_subs(&mut self) {
        self.subs.clear();
        self.sub_patterns.clear();
    }

    /// `notifySubscribers`: exact-pattern subscribers first, then wildcard ones by
    /// pattern in order of registration.
    fn notify(&self, topic: &str, event: &Value, pushes: &mut Vec<EventPush>) {
        let data = || obj([("topic", topic.into()), ("event", event.clone())]);
        for s in self
            .subs
            .iter()
            .filter(|s| s.pattern == topic && !s.pattern.contains('*'))
        {
            pushes.push((s.conn, s.id.clone(), data()));
        }
        for pattern in self.sub_patterns.keys() {
            if !subscription_matches(pattern, topic) {
                continue;
            }
            for s in self.subs.iter().filter(|s| &s.pattern == pattern) {
                pushes.push((s.conn, s.id.clone(), data()));
            }
        }
    }

    // ── events and facts ────────────────────────────────────────

    /// `handleInternalEvent`: count, push to subscribers, run the triggered rules.
    fn handle_event(&mut self, event: Value, depth: usize, pushes: &mut Vec<EventPush>) {
        self.events_processed += 1;
        let topic = event
            .get("topic")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        self.notify(&topic, &event, pushes);
        self.process(Trigger::Event(event), depth, pushes);
    }

    fn new_event(
        &self,
        topic: &str,
        data: Value,
        correlation: Option<String>,
        causation: Option<String>,
        source: &str,
    ) -> Value {
        let mut e = Map::new();
        let now = self.clock.now_ms();
        e.insert("id".into(), event_id(now).into());
        e.insert("topic".into(), topic.into());
        e.insert("data".into(), data);
        e.insert("timestamp".into(), now.into());
        if let Some(c) = correlation {
            e.insert("correlationId".into(), c.into());
        }
        if let Some(c) = causation {
            e.insert("causationId".into(), c.into());
        }
        e.insert("source".into(), source.into());
        Value::Object(e)
    }

    /// `rules.emit`: returns the event; subscribers' pushes (also those of events rules
    /// emitted) go to `pushes`.
    pub(crate) fn emit(
        &mut self,
        topic: &str,
        data: Value,
        correlation: Option<String>,
        causation: Option<String>,
        pushes: &mut Vec<EventPush>,
    ) -> Value {
        let event = self.new_event(topic, data, correlation, causation, "api");
        self.handle_event(event.clone(), 0, pushes);
        event
    }

    /// `FactStore.set`: the new fact (`value` absent when undefined).
    fn store_fact(&mut self, key: &str, value: Option<Value>, source: &str) -> Value {
        let version = self
            .facts
            .get(key)
            .and_then(|f| f.get("version"))
            .and_then(Value::as_i64)
            .unwrap_or(0)
            + 1;
        let mut f = Map::new();
        f.insert("key".into(), key.into());
        if let Some(v) = value {
            f.insert("value".into(), v);
        }
        f.insert("timestamp".into(), self.clock.now_ms().into());
        f.insert("source".into(), source.into());
        f.insert("version".into(), version.into());
        self.facts.insert(key.to_string(), f.clone());
        Value::Object(f)
    }

    /// `rules.setFact` (the engine's `setFact`): stores and runs fact-triggered rules.
    pub(crate) fn set_fact(
        &mut self,
        key: &str,
        value: Value,
        pushes: &mut Vec<EventPush>,
    ) -> Value {
        let fact = self.store_fact(key, Some(value), "api");
        self.process(Trigger::Fact(fact.clone()), 0, pushes);
        fact
    }

    pub(crate) fn get_fact(&self, key: &str) -> Value {
        self.facts
            .get(key)
            .and_then(fact_value)
            .cloned()
            .unwrap_or(Value::Null)
    }

    pub(crate) fn delete_fact(&mut self, key: &str) -> bool {
        self.facts.shift_remove(key).is_some()
    }

    /// `FactStore.query`: exact lookup without `*`; else keys with the pattern's prefix
    /// (literally; a pattern starting with `*` scans all) that match the fact pattern.
    fn query(&self, pattern: &str) -> Vec<&Map<String, Value>> {
        if !pattern.contains('*') {
            return self.facts.get(pattern).into_iter().collect();
        }
        let prefix = fact_prefix(pattern);
        self.facts
            .iter()
            .filter(|(k, _)| prefix == "*" || fact_prefix(k) == prefix)
            .filter(|(k, _)| fact_matches(k, pattern))
            .map(|(_, f)| f)
            .collect()
    }

    pub(crate) fn query_facts(&self, pattern: &str) -> Value {
        Value::Array(
            self.query(pattern)
                .into_iter()
                .map(|f| Value::Object(f.clone()))
                .collect(),
        )
    }

    pub(crate) fn all_facts(&self) -> Value {
        Value::Array(self.facts.values().cloned().map(Value::Object).collect())
    }

    pub(crate) fn stats(&self) -> Value {
        obj([
            ("rulesCount", self.rules.len().into()),
            ("factsCount", self.facts.len().into()),
            ("timersCount", self.timers.len().into()),
            ("eventsProcessed", self.events_processed.into()),
            ("rulesExecuted", self.rules_executed.into()),
            ("avgProcessingTimeMs", 0.into()),
            (
                "tracing",
                obj([
                    ("enabled", false.into()),
                    ("entriesCount", 0.into()),
                    ("maxEntries", 10000.into()),
                ]),
            ),
        ])
    }

    // ── rule processing ─────────────────────────────────────────

    /// Active rules for a trigger, highest priority first (stable: exact keys first,
    /// then wildcard patterns, each in indexing order).
    fn matching(&self, kind: Kind, subject: &str) -> Vec<Map<String, Value>> {
        let k = kind.idx();
        let mut ids: Vec<&String> = self.exact[k].get(subject).into_iter().flatten().collect();
        for (pattern, list) in &self.wild[k] {
            let hit = match kind {
                Kind::Event => topic_matches(subject, pattern),
                Kind::Fact | Kind::Timer => fact_matches(subject, pattern),
            };
            if hit {
                ids.extend(list);
            }
        }
        let mut rules: Vec<Map<String, Value>> = ids
            .into_iter()
            .filter_map(|id| self.rules.get(id))
            // `isRuleActive`: `enabled` must be truthy.
            .filter(|r| r.get("enabled") == Some(&Value::Bool(true)))
            .cloned()
            .collect();
        let prio =
            |r: &Map<String, Value>| r.get("priority").and_then(Value::as_f64).unwrap_or(0.0);
        rules.sort_by(|a, b| prio(b).total_cmp(&prio(a)));
        rules
    }

    /// `processTrigger`: nested processing stops at the forward-chaining limit.
    fn process(&mut self, trigger: Trigger, depth: usize, pushes: &mut Vec<EventPush>) {
        // (Top-level triggers have depth 0 and always run.)
        if depth >= MAX_FORWARD_DEPTH {
            return;
        }
        let (kind, subject) = match &trigger {
            Trigger::Event(e) => (Kind::Event, e.get("topic")),
            Trigger::Fact(f) => (Kind::Fact, f.get("key")),
            Trigger::Timer(t) => (Kind::Timer, t.get("name")),
        };
        let subject = subject.and_then(Value::as_str).unwrap_or("").to_string();
        for rule in self.matching(kind, &subject) {
            if let Err(e) = self.run_rule(&rule, &trigger, depth, pushes) {
                // The real engine logs it on the server console.
                tracing::debug!(rule = ?rule.get("id"), error = %e, "rule failed");
            }
        }
    }

    /// Stop timers that are due and fire them (timer rules, then the `onExpire` event).
    pub(crate) fn fire_timers(&mut self, now: i64, pushes: &mut Vec<EventPush>) {
        let due: Vec<String> = self
            .timers
            .values()
            .filter(|t| t.expires_at <= now)
            .map(|t| t.name.clone())
            .collect();
        for name in due {
            let Some(timer) = self.timers.get(&name).cloned() else {
                continue;
            };
            let tv = obj([
                ("id", timer.id.clone().into()),
                ("name", timer.name.clone().into()),
                ("expiresAt", timer.expires_at.into()),
                ("data", Value::Object(timer.data.clone())),
                (
                    "correlationId",
                    timer.correlation.clone().map_or(Value::Null, Value::from),
                ),
            ]);
            self.process(Trigger::Timer(tv), 0, pushes);
            let event = self.new_event(
                &timer.topic,
                Value::Object(timer.data.clone()),
                timer.correlation.clone(),
                Some(timer.id.clone()),
                "timer",
            );
            self.handle_event(event, 0, pushes);
            match timer.repeat_ms {
                Some(every) => {
                    if let Some(t) = self.timers.get_mut(&name) {
                        t.expires_at = now.saturating_add(every.max(1));
                    }
                }
                None => {
                    self.timers.shift_remove(&name);
                }
            }
        }
    }

    /// Whether a timer is pending.
    pub(crate) fn has_timers(&self) -> bool {
        !self.timers.is_empty()
    }

    // ── registry ────────────────────────────────────────────────

    /// `rules.validateRule`: `{valid, errors, warnings}`.
    pub(crate) fn validate(rule: &Map<String, Value>) -> Value {
        validate::validate(rule)
    }

    /// Validation as `registerRule`/`updateRule` do it: the issues, then the group.
    fn check(input: &Map<String, Value>) -> Result<(), OpError> {
        let v = validate::validate(input);
        if v.get("valid") != Some(&Value::Bool(true)) {
            let errors = v.get("errors").cloned().unwrap_or(Value::Null);
            return Err(OpError::validation("Rule validation failed").with_details(errors));
        }
        // The testkit has no rule groups: every group is unknown.
        if let Some(g) = input
            .get("group")
            .and_then(Value::as_str)
            .filter(|g| !g.is_empty())
        {
            return Err(OpError::validation(format!(
                "Rule references non-existent group: \"{g}\""
            ))
            .with_details(Value::Array(vec![obj([
                ("path", "group".into()),
                ("message", format!("Group \"{g}\" does not exist").into()),
                ("severity", "error".into()),
            ])])));
        }
        Ok(())
    }

    /// `RuleManager.register`: store with the next version, index the trigger; a rule
    /// without `tags` is stored and indexed, then the tag indexing throws.
    fn insert_rule(&mut self, input: &Map<String, Value>) -> Result<Map<String, Value>, OpError> {
        let id = input
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        self.next_version += 1;
        let now = self.clock.now_ms();
        let mut rule = input.clone();
        rule.insert("version".into(), self.next_version.into());
        rule.insert("createdAt".into(), now.into());
        rule.insert("updatedAt".into(), now.into());
        self.rules.insert(id.clone(), rule.clone());
        if let Some((kind, key)) = Kind::of(&rule) {
            let index = if key.contains('*') {
                &mut self.wild[kind.idx()]
            } else {
                &mut self.exact[kind.idx()]
            };
            index.entry(key).or_default().push(id);
        }
        if !rule.get("tags").is_some_and(Value::is_array) {
            return Err(OpError::internal("rule.tags is not iterable"));
        }
        Ok(rule)
    }

    fn remove_rule(&mut self, id: &str) -> bool {
        let Some(rule) = self.rules.shift_remove(id) else {
            return false;
        };
        if let Some((kind, key)) = Kind::of(&rule) {
            for index in [&mut self.wild[kind.idx()], &mut self.exact[kind.idx()]] {
                if let Some(list) = index.get_mut(&key) {
                    list.retain(|x| x != id);
                    if list.is_empty() {
                        index.shift_remove(&key);
                    }
                }
            }
        }
        true
    }

    pub(crate) fn register(&mut self, input: &Map<String, Value>) -> OpResult {
        let id = input
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if self.rules.contains_key(&id) {
            return Err(OpError::already_exists(format!(
                "Rule \"{id}\" already exists"
            )));
        }
        Self::check(input)?;
        let rule = self.insert_rule(input)?;
        Ok(obj([
            ("id", id.into()),
            ("name", input.get("name").cloned().unwrap_or(Value::Null)),
            (
                "version",
                rule.get("version").cloned().unwrap_or(Value::Null),
            ),
            (
                "createdAt",
                rule.get("createdAt").cloned().unwrap_or(Value::Null),
            ),
            (
                "updatedAt",
                rule.get("updatedAt").cloned().unwrap_or(Value::Null),
            ),
        ]))
    }

    pub(crate) fn unregister(&mut self, id: &str) -> bool {
        self.remove_rule(id)
    }

    /// `RuleEngine.updateRule`: merge, validate, unregister and register again (next
    /// version, `createdAt` reset).
    pub(crate) fn update(&mut self, id: &str, updates: &Map<String, Value>) -> OpResult {
        let Some(existing) = self.rules.get(id) else {
            // A plain `Error` in the engine.
            return Err(OpError::internal(format!("Rule '{id}' not found")));
        };
        let mut input = existing.clone();
        for k in ["version", "createdAt", "updatedAt"] {
            input.remove(k);
        }
        for (k, v) in updates {
            input.insert(k.clone(), v.clone());
        }
        input.insert("id".into(), id.into());
        Self::check(&input)?;
        self.remove_rule(id);
        let rule = self.insert_rule(&input)?;
        Ok(obj([
            ("id", id.into()),
            (
                "version",
                rule.get("version").cloned().unwrap_or(Value::Null),
            ),
            (
                "updatedAt",
                rule.get("updatedAt").cloned().unwrap_or(Value::Null),
            ),
        ]))
    }

    pub(crate) fn set_enabled(&mut self, id: &str, enabled: bool) -> bool {
        match self.rules.get_mut(id) {
            Some(r) => {
                r.insert("enabled".into(), enabled.into());
                r.insert("updatedAt".into(), self.clock.now_ms().into());
                true
            }
            None => false,
        }
    }

    pub(crate) fn get_rule(&self, id: &str) -> OpResult {
        self.rules
            .get(id)
            .map(|r| Value::Object(r.clone()))
            .ok_or_else(|| OpError::not_found(format!("Rule \"{id}\" not found")))
    }

    pub(crate) fn list_rules(&self) -> Value {
        let rules: Vec<Value> = self
            .rules
            .values()
            .map(|r| {
                let mut m = Map::new();
                for k in [
                    "id", "name", "enabled", "priority", "version", "tags", "group",
                ] {
                    if let Some(v) = r.get(k) {
                        m.insert(k.into(), v.clone());
                    }
                }
                Value::Object(m)
            })
            .collect();
        obj([("rules", Value::Array(rules))])
    }
}
