//! A small rule engine: events with subscriptions, facts, a rule registry, and execution of
//! a documented subset of rules (see the crate docs).

use indexmap::IndexMap;
use serde_json::{Map, Value};

use crate::error::{OpError, OpResult};
use crate::json::{event_id, js_cmp, now_ms, obj, strict_eq};

/// How deep rule-emitted events may cascade before the engine stops.
const MAX_CASCADE: usize = 16;

/// A pattern subscription of one connection.
#[derive(Debug, Clone)]
pub(crate) struct RuleSub {
    pub(crate) id: String,
    pub(crate) conn: u64,
    pub(crate) pattern: String,
}

/// An `event` push to deliver: `(conn, subscriptionId, data)`.
pub(crate) type EventPush = (u64, String, Value);

/// Engine state.
#[derive(Debug, Clone, Default)]
pub(crate) struct Rules {
    facts: IndexMap<String, Value>,
    rules: IndexMap<String, Map<String, Value>>,
    pub(crate) subs: Vec<RuleSub>,
    events_processed: u64,
    rules_executed: u64,
}

/// Segment-wise wildcard match: `*` matches exactly one segment.
pub(crate) fn pattern_matches(pattern: &str, subject: &str, sep: char) -> bool {
    let p: Vec<&str> = pattern.split(sep).collect();
    let s: Vec<&str> = subject.split(sep).collect();
    p.len() == s.len() && p.iter().zip(&s).all(|(p, s)| *p == "*" || p == s)
}

fn get_path<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = root;
    for part in path.split('.') {
        cur = match cur {
            Value::Object(m) => m.get(part)?,
            Value::Array(a) => a.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

impl Rules {
    fn resolve(&self, v: &Value, event: Option<&Value>) -> Value {
        match v {
            Value::Object(m) if m.len() == 1 && m.get("ref").is_some_and(Value::is_string) => {
                let r = m.get("ref").and_then(Value::as_str).unwrap_or("");
                if let Some(path) = r.strip_prefix("event.") {
                    event
                        .and_then(|e| e.get("data"))
                        .and_then(|d| get_path(d, path))
                        .cloned()
                        .unwrap_or(Value::Null)
                } else if let Some(key) = r.strip_prefix("fact.") {
                    self.facts
                        .get(key)
                        .and_then(|f| f.get("value"))
                        .cloned()
                        .unwrap_or(Value::Null)
                } else {
                    Value::Null
                }
            }
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), self.resolve(v, event)))
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.iter().map(|x| self.resolve(x, event)).collect()),
            other => other.clone(),
        }
    }

    fn condition_holds(&self, cond: &Value, event: Option<&Value>) -> bool {
        let source = cond.get("source").cloned().unwrap_or(Value::Null);
        let actual: Option<Value> = match source.get("type").and_then(Value::as_str) {
            Some("event") => event
                .and_then(|e| e.get("data"))
                .and_then(|d| get_path(d, source.get("field").and_then(Value::as_str)?))
                .cloned(),
            Some("fact") => source
                .get("pattern")
                .and_then(Value::as_str)
                .and_then(|k| self.facts.get(k))
                .and_then(|f| f.get("value"))
                .cloned(),
            _ => return false,
        };
        let expected = cond.get("value").map(|v| self.resolve(v, event));
        let a = actual.as_ref();
        let e = expected.as_ref();
        let rel = |f: fn(std::cmp::Ordering) -> bool| match (a, e) {
            (Some(a), Some(e)) => js_cmp(a, e).is_some_and(f),
            _ => false,
        };
        match cond.get("operator").and_then(Value::as_str).unwrap_or("") {
            "eq" => strict_eq(a, e),
            "neq" => !strict_eq(a, e),
            "gt" => rel(|o| o.is_gt()),
            "gte" => rel(|o| o.is_ge()),
            "lt" => rel(|o| o.is_lt()),
            "lte" => rel(|o| o.is_le()),
            "in" => e
                .and_then(Value::as_array)
                .is_some_and(|l| l.iter().any(|x| strict_eq(Some(x), a))),
            "not_in" => !e
                .and_then(Value::as_array)
                .is_some_and(|l| l.iter().any(|x| strict_eq(Some(x), a))),
            "contains" => match (a, e) {
                (Some(Value::String(s)), Some(Value::String(x))) => s.contains(x.as_str()),
                (Some(Value::Array(l)), x) => l.iter().any(|i| strict_eq(Some(i), x)),
                _ => false,
            },
            "exists" => !matches!(a, None | Some(Value::Null)),
            "not_exists" => matches!(a, None | Some(Value::Null)),
            _ => false,
        }
    }

    /// Rules whose trigger matches, enabled, highest priority first.
    fn triggered(&self, kind: &str, subject: &str) -> Vec<Map<String, Value>> {
        let mut list: Vec<Map<String, Value>> = self
            .rules
            .values()
            .filter(|r| r.get("enabled") != Some(&Value::Bool(false)))
            .filter(|r| {
                let t = r.get("trigger");
                let ty = t.and_then(|t| t.get("type")).and_then(Value::as_str);
                match (kind, ty) {
                    ("event", Some("event")) => t
                        .and_then(|t| t.get("topic"))
                        .and_then(Value::as_str)
                        .is_some_and(|p| pattern_matches(p, subject, '.')),
                    ("fact", Some("fact")) => t
                        .and_then(|t| t.get("pattern"))
                        .and_then(Value::as_str)
                        .is_some_and(|p| pattern_matches(p, subject, ':')),
                    _ => false,
                }
            })
            .cloned()
            .collect();
        list.sort_by(|a, b| {
            let pa = a.get("priority").and_then(Value::as_f64).unwrap_or(0.0);
            let pb = b.get("priority").and_then(Value::as_f64).unwrap_or(0.0);
            pb.partial_cmp(&pa).unwrap_or(std::cmp::Ordering::Equal)
        });
        list
    }

    fn run_rules(
        &mut self,
        rules: Vec<Map<String, Value>>,
        event: Option<&Value>,
        depth: usize,
        pushes: &mut Vec<EventPush>,
    ) {
        for rule in rules {
            let conditions = rule
                .get("conditions")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if !conditions.iter().all(|c| self.condition_holds(c, event)) {
                continue;
            }
            self.rules_executed += 1;
            let actions = rule
                .get("actions")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for action in actions {
                let ty = action.get("type").and_then(Value::as_str).unwrap_or("");
                match ty {
                    "emit_event" => {
                        let topic = action
                            .get("topic")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string();
                        let data = action
                            .get("data")
                            .map(|d| self.resolve(d, event))
                            .unwrap_or_else(|| Value::Object(Map::new()));
                        let corr = event
                            .and_then(|e| e.get("correlationId"))
                            .and_then(Value::as_str)
                            .map(str::to_string);
                        if depth < MAX_CASCADE && !topic.is_empty() {
                            self.emit_inner(&topic, data, corr, None, "rule", depth + 1, pushes);
                        }
                    }
                    "set_fact" => {
                        if let Some(key) = action.get("key").and_then(Value::as_str) {
                            let value = action
                                .get("value")
                                .map(|v| self.resolve(v, event))
                                .unwrap_or(Value::Null);
                            self.set_fact_inner(key, value, "rule", depth + 1, pushes);
                        }
                    }
                    "delete_fact" => {
                        if let Some(key) = action.get("key").and_then(Value::as_str) {
                            self.facts.shift_remove(key);
                        }
                    }
                    _ => {
                        tracing::debug!(action = ty, "rule action not executed by the testkit");
                    }
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn emit_inner(
        &mut self,
        topic: &str,
        data: Value,
        correlation: Option<String>,
        causation: Option<String>,
        source: &str,
        depth: usize,
        pushes: &mut Vec<EventPush>,
    ) -> Value {
        let mut e = Map::new();
        e.insert("id".into(), event_id().into());
        e.insert("topic".into(), topic.into());
        e.insert("data".into(), data);
        e.insert("timestamp".into(), now_ms().into());
        if let Some(c) = correlation {
            e.insert("correlationId".into(), c.into());
        }
        if let Some(c) = causation {
            e.insert("causationId".into(), c.into());
        }
        e.insert("source".into(), source.into());
        let event = Value::Object(e);
        self.events_processed += 1;
        for s in &self.subs {
            if pattern_matches(&s.pattern, topic, '.') {
                pushes.push((
                    s.conn,
                    s.id.clone(),
                    obj([("topic", topic.into()), ("event", event.clone())]),
                ));
            }
        }
        let rules = self.triggered("event", topic);
        self.run_rules(rules, Some(&event), depth, pushes);
        event
    }

    /// `rules.emit`: returns the event; matching subscribers get pushes in `pushes`.
    pub(crate) fn emit(
        &mut self,
        topic: &str,
        data: Value,
        correlation: Option<String>,
        causation: Option<String>,
        pushes: &mut Vec<EventPush>,
    ) -> Value {
        self.emit_inner(topic, data, correlation, causation, "api", 0, pushes)
    }

    fn set_fact_inner(
        &mut self,
        key: &str,
        value: Value,
        source: &str,
        depth: usize,
        pushes: &mut Vec<EventPush>,
    ) -> Value {
        let version = self
            .facts
            .get(key)
            .and_then(|f| f.get("version"))
            .and_then(Value::as_i64)
            .unwrap_or(0)
            + 1;
        let fact = obj([
            ("key", key.into()),
            ("value", value),
            ("timestamp", now_ms().into()),
            ("source", source.into()),
            ("version", version.into()),
        ]);
        self.facts.insert(key.to_string(), fact.clone());
        if depth < MAX_CASCADE {
            let rules = self.triggered("fact", key);
            self.run_rules(rules, None, depth, pushes);
        }
        fact
    }

    pub(crate) fn set_fact(
        &mut self,
        key: &str,
        value: Value,
        pushes: &mut Vec<EventPush>,
    ) -> Value {
        self.set_fact_inner(key, value, "api", 0, pushes)
    }

    pub(crate) fn get_fact(&self, key: &str) -> Value {
        self.facts
            .get(key)
            .and_then(|f| f.get("value"))
            .cloned()
            .unwrap_or(Value::Null)
    }

    pub(crate) fn delete_fact(&mut self, key: &str) -> bool {
        self.facts.shift_remove(key).is_some()
    }

    pub(crate) fn query_facts(&self, pattern: &str) -> Value {
        Value::Array(
            self.facts
                .iter()
                .filter(|(k, _)| pattern_matches(pattern, k, ':'))
                .map(|(_, f)| f.clone())
                .collect(),
        )
    }

    pub(crate) fn all_facts(&self) -> Value {
        Value::Array(self.facts.values().cloned().collect())
    }

    pub(crate) fn stats(&self) -> Value {
        obj([
            ("rulesCount", self.rules.len().into()),
            ("factsCount", self.facts.len().into()),
            ("timersCount", 0.into()),
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

    // ── Registry ────────────────────────────────────────────────

    /// `rules.validateRule`: `{valid, errors, warnings}`.
    pub(crate) fn validate(rule: &Map<String, Value>) -> Value {
        let mut errors = Vec::new();
        for field in ["id", "name", "trigger"] {
            if !rule.contains_key(field) {
                errors.push(obj([
                    ("path", field.into()),
                    (
                        "message",
                        format!("Required field \"{field}\" is missing").into(),
                    ),
                    ("severity", "error".into()),
                ]));
            }
        }
        if let Some(t) = rule.get("trigger") {
            let ty = t.get("type").and_then(Value::as_str);
            if !matches!(ty, Some("event" | "fact" | "timer" | "temporal")) {
                errors.push(obj([
                    ("path", "trigger.type".into()),
                    (
                        "message",
                        "Invalid trigger type: expected one of event, fact, timer, temporal".into(),
                    ),
                    ("severity", "error".into()),
                ]));
            }
        }
        obj([
            ("valid", errors.is_empty().into()),
            ("errors", Value::Array(errors)),
            ("warnings", Value::Array(Vec::new())),
        ])
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
        let v = Self::validate(input);
        if v.get("valid") != Some(&Value::Bool(true)) {
            let errors = v.get("errors").cloned().unwrap_or(Value::Null);
            // As the real server: the issues are only in `details`.
            return Err(OpError::validation("Rule validation failed").with_details(errors));
        }
        let mut rule = input.clone();
        for (k, d) in [
            ("priority", Value::from(0)),
            ("enabled", Value::Bool(true)),
            ("tags", Value::Array(Vec::new())),
            ("conditions", Value::Array(Vec::new())),
            ("actions", Value::Array(Vec::new())),
        ] {
            rule.entry(k).or_insert(d);
        }
        let now = now_ms();
        rule.insert("version".into(), 1.into());
        rule.insert("createdAt".into(), now.into());
        rule.insert("updatedAt".into(), now.into());
        self.rules.insert(id.clone(), rule);
        Ok(obj([
            ("id", id.into()),
            ("name", input.get("name").cloned().unwrap_or(Value::Null)),
            ("version", 1.into()),
            ("createdAt", now.into()),
            ("updatedAt", now.into()),
        ]))
    }

    fn not_found(id: &str) -> OpError {
        OpError::not_found(format!("Rule \"{id}\" not found"))
    }

    pub(crate) fn unregister(&mut self, id: &str) -> bool {
        self.rules.shift_remove(id).is_some()
    }

    pub(crate) fn update(&mut self, id: &str, updates: &Map<String, Value>) -> OpResult {
        let rule = self.rules.get_mut(id).ok_or_else(|| Self::not_found(id))?;
        for (k, v) in updates {
            if k != "id" && k != "version" && k != "createdAt" && k != "updatedAt" {
                rule.insert(k.clone(), v.clone());
            }
        }
        let version = rule.get("version").and_then(Value::as_i64).unwrap_or(0) + 1;
        let now = now_ms();
        rule.insert("version".into(), version.into());
        rule.insert("updatedAt".into(), now.into());
        Ok(obj([
            ("id", id.into()),
            ("version", version.into()),
            ("updatedAt", now.into()),
        ]))
    }

    pub(crate) fn set_enabled(&mut self, id: &str, enabled: bool) -> bool {
        match self.rules.get_mut(id) {
            Some(r) => {
                r.insert("enabled".into(), enabled.into());
                true
            }
            None => false,
        }
    }

    pub(crate) fn get_rule(&self, id: &str) -> OpResult {
        self.rules
            .get(id)
            .map(|r| Value::Object(r.clone()))
            .ok_or_else(|| Self::not_found(id))
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

    pub(crate) fn drop_connection(&mut self, conn: u64) {
        self.subs.retain(|s| s.conn != conn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_one_segment() {
        assert!(pattern_matches("order.*", "order.created", '.'));
        assert!(!pattern_matches("order.*", "order.item.added", '.'));
        assert!(pattern_matches("*", "login", '.'));
        assert!(!pattern_matches("*", "order.created", '.'));
        assert!(pattern_matches("customer:*:tier", "customer:42:tier", ':'));
    }
}
