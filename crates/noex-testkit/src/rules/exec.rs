//! Rule execution as noex-rules does it (`evaluateAndExecuteRule`, `ConditionEvaluator`,
//! `ActionExecutor`, `utils/interpolation.ts`).
//!
//! - Refs (`{"ref": "source.path"}`) resolve only as whole values (a top-level value of
//!   `emit_event.data` / timer `onExpire.data`, `set_fact.value`, `call_service.args[i]`,
//!   `for_each.collection`): `event.`/`trigger.` read the trigger data, `fact.<key>` the
//!   value of the fact whose key is the whole (interpolated) rest, `var.`, `matched.`,
//!   `lookup.`; an unresolvable path is `undefined` (the key is dropped); any other source
//!   is an error.
//! - `${ref}` interpolation (topics, fact keys, timer names, log messages, fact-condition
//!   patterns) gives `String(value ?? "")`; data values are never interpolated.
//! - An action that fails is skipped and the next one runs; an error while building an
//!   action's input (a bad ref source) aborts the rest of the rule's actions.

use serde_json::{Map, Value};

use super::{EventPush, Rules, Timer, Trigger, MAX_TIMERS};
use crate::condition_operators::RULES;
use crate::json::{event_id, js_string};

/// What actions and conditions see.
#[derive(Debug)]
pub(super) struct Ctx {
    /// The trigger data: the event's `data`, `{fact}`, or the timer fields.
    data: Value,
    /// The triggering event's data (`matched.0`).
    matched: Option<Value>,
    correlation: Option<String>,
    vars: Map<String, Value>,
}

/// `getNestedValue`: a dotted path through objects and arrays (`length` and indexes).
fn nested(root: Option<&Value>, path: &str) -> Option<Value> {
    let mut cur = root?.clone();
    for part in path.split('.') {
        cur = match &cur {
            Value::Object(m) => m.get(part)?.clone(),
            Value::Array(a) if part == "length" => Value::from(a.len()),
            Value::Array(a) => {
                let i: usize = part
                    .parse()
                    .ok()
                    .filter(|_| part == "0" || !part.starts_with('0'))?;
                a.get(i)?.clone()
            }
            _ => return None,
        };
    }
    Some(cur)
}

/// A JavaScript `typeof` for messages.
fn type_of(v: Option<&Value>) -> &'static str {
    match v {
        None => "undefined",
        Some(Value::String(_)) => "string",
        Some(Value::Number(_)) => "number",
        Some(Value::Bool(_)) => "boolean",
        Some(_) => "object",
    }
}

fn is_ref(v: &Value) -> Option<&Value> {
    v.as_object().and_then(|m| m.get("ref"))
}

/// `Object.entries(x)` of a value given where an object is expected.
fn entries(v: Option<&Value>) -> Result<Map<String, Value>, String> {
    match v {
        None | Some(Value::Null) => Err("Cannot convert undefined or null to object".into()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(Value::Array(a)) => Ok(a
            .iter()
            .enumerate()
            .map(|(i, x)| (i.to_string(), x.clone()))
            .collect()),
        Some(Value::String(s)) => Ok(s
            .chars()
            .enumerate()
            .map(|(i, c)| (i.to_string(), Value::from(c.to_string())))
            .collect()),
        Some(_) => Ok(Map::new()),
    }
}

/// An array field of an action (`x.length` on anything else throws).
fn list<'a>(action: &'a Value, field: &str) -> Result<&'a [Value], String> {
    match action.get(field) {
        Some(Value::Array(a)) => Ok(a),
        Some(Value::String(_)) => Ok(&[]),
        _ => Err(format!(
            "Cannot read properties of undefined (reading '{field}')"
        )),
    }
}

fn str_field<'a>(action: &'a Value, field: &str) -> Result<&'a str, String> {
    action
        .get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| "template.includes is not a function".to_string())
}

/// `parseDuration`: milliseconds, or `<digits><ms|s|m|h|d|w|y>`.
fn parse_duration(d: Option<&Value>) -> Result<i64, String> {
    match d {
        Some(Value::Number(n)) => Ok(n.as_f64().map_or(0, |f| f as i64)),
        Some(Value::String(s)) => {
            let digits = s.chars().take_while(char::is_ascii_digit).count();
            let mult: i64 = match &s[digits..] {
                "ms" => 1,
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                "w" => 604_800_000,
                "y" => 31_536_000_000,
                _ => 0,
            };
            match s[..digits].parse::<i64>() {
                Ok(n) if digits > 0 && mult > 0 => Ok(n.saturating_mul(mult)),
                _ => Err(format!("Invalid duration: {s}")),
            }
        }
        _ => Err("Invalid duration: undefined".into()),
    }
}

impl Rules {
    /// `resolveRef`.
    fn resolve_ref(&self, r: &Value, ctx: &Ctx) -> Result<Option<Value>, String> {
        let Value::String(r) = r else {
            return Err("ref.split is not a function".into());
        };
        let mut parts = r.split('.');
        let source = parts.next().unwrap_or("");
        let path: Vec<&str> = parts.collect();
        let (root, rest): (Option<Value>, &[&str]) = match source {
            "event" | "trigger" => (Some(ctx.data.clone()), &path),
            "fact" => {
                let key = self.interpolate(&path.join("."), ctx)?;
                return Ok(self.facts.get(&key).and_then(|f| f.get("value")).cloned());
            }
            "var" => match path.first() {
                None => return Ok(None),
                Some(name) => (ctx.vars.get(*name).cloned(), &path[1..]),
            },
            "matched" => match path.first() {
                None => return Ok(None),
                Some(i) => {
                    let digits: String = i.chars().take_while(char::is_ascii_digit).collect();
                    let root = if digits == "0" {
                        ctx.matched.clone()
                    } else {
                        None
                    };
                    (root, &path[1..])
                }
            },
            "lookup" => match path.first() {
                None => return Ok(None),
                Some(_) => (None, &path[1..]),
            },
            other => return Err(format!("Unknown reference source: {other}")),
        };
        if rest.is_empty() {
            return Ok(root);
        }
        Ok(nested(root.as_ref(), &rest.join(".")))
    }

    /// `interpolate`: every `${ref}` becomes `String(value ?? "")`.
    pub(super) fn interpolate(&self, template: &str, ctx: &Ctx) -> Result<String, String> {
        let mut out = String::new();
        let mut rest = template;
        while let Some(start) = rest.find("${") {
            let after = &rest[start + 2..];
            match after.find('}') {
                Some(end) if end > 0 => {
                    out.push_str(&rest[..start]);
                    let v = self.resolve_ref(&Value::from(&after[..end]), ctx)?;
                    if let Some(v) = v.filter(|v| !v.is_null()) {
                        out.push_str(&js_string(&v));
                    }
                    rest = &after[end + 1..];
                }
                _ => {
                    out.push_str(&rest[..start + 2]);
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        Ok(out)
    }

    /// `resolve`: a `{ref}` object becomes its value, anything else stays.
    fn resolve(&self, v: Option<&Value>, ctx: &Ctx) -> Result<Option<Value>, String> {
        match v {
            Some(x) => match is_ref(x) {
                Some(r) => self.resolve_ref(r, ctx),
                None => Ok(Some(x.clone())),
            },
            None => Ok(None),
        }
    }

    /// `resolveObject`: refs resolved one level deep; undefined values are dropped.
    fn resolve_object(&self, v: Option<&Value>, ctx: &Ctx) -> Result<Map<String, Value>, String> {
        let mut out = Map::new();
        for (k, x) in entries(v)? {
            if let Some(val) = self.resolve(Some(&x), ctx)? {
                out.insert(k, val);
            }
        }
        Ok(out)
    }

    /// `ConditionEvaluator.evaluateAll`.
    fn conditions_hold(&self, conds: Option<&Value>, ctx: &Ctx) -> Result<bool, String> {
        let Some(Value::Array(conds)) = conds else {
            return Err("Cannot read properties of undefined (reading 'length')".into());
        };
        for c in conds {
            if !self.condition_holds(c, ctx)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn condition_holds(&self, cond: &Value, ctx: &Ctx) -> Result<bool, String> {
        let Some(source) = cond.get("source").filter(|s| s.is_object()) else {
            return Err("Cannot read properties of undefined (reading 'type')".into());
        };
        let text = |f: &str| source.get(f).and_then(Value::as_str).unwrap_or("");
        let actual: Option<Value> = match source.get("type").and_then(Value::as_str) {
            Some("fact") => {
                let pattern = self.interpolate(text("pattern"), ctx)?;
                self.query(&pattern)
                    .first()
                    .and_then(|f| f.get("value"))
                    .cloned()
            }
            Some("event") => nested(Some(&ctx.data), text("field")),
            Some("context") => {
                let key = text("key");
                match key.split_once('.') {
                    None => ctx.vars.get(key).cloned(),
                    Some((name, path)) => nested(ctx.vars.get(name), path),
                }
            }
            _ => None,
        };
        let expected = self.compare_value(cond.get("value"), ctx)?;
        let operator = cond.get("operator").and_then(Value::as_str).unwrap_or("");
        Ok(RULES.holds(operator, actual.as_ref(), expected.as_ref()))
    }

    /// `resolveCompareValue`.
    fn compare_value(&self, v: Option<&Value>, ctx: &Ctx) -> Result<Option<Value>, String> {
        let Some(v) = v else { return Ok(None) };
        let Some(Value::String(r)) = is_ref(v) else {
            return Ok(Some(v.clone()));
        };
        let (source, path) = r.split_once('.').unwrap_or((r.as_str(), ""));
        Ok(match source {
            "fact" => {
                let key = self.interpolate(path, ctx)?;
                self.facts.get(&key).and_then(|f| f.get("value")).cloned()
            }
            "event" | "trigger" => nested(Some(&ctx.data), path),
            "var" => ctx.vars.get(path.split('.').next().unwrap_or("")).cloned(),
            "lookup" | "baseline" => None,
            _ => Some(v.clone()),
        })
    }

    /// `evaluateAndExecuteRule`: an error is the rule's failure (logged by the engine).
    pub(super) fn run_rule(
        &mut self,
        rule: &Map<String, Value>,
        trigger: &Trigger,
        depth: usize,
        pushes: &mut Vec<EventPush>,
    ) -> Result<(), String> {
        let (data, matched, correlation) = match trigger {
            Trigger::Event(e) => {
                let data = e.get("data").cloned().unwrap_or(Value::Object(Map::new()));
                let corr = e
                    .get("correlationId")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                (data.clone(), Some(data), corr)
            }
            Trigger::Fact(f) => {
                let mut m = Map::new();
                m.insert("fact".into(), f.clone());
                (Value::Object(m), None, None)
            }
            Trigger::Timer(t) => {
                let mut m = Map::new();
                for k in ["id", "name", "expiresAt", "correlationId"] {
                    let key = match k {
                        "id" => "timerId",
                        "name" => "timerName",
                        other => other,
                    };
                    if let Some(v) = t.get(k).filter(|v| !v.is_null()) {
                        m.insert(key.into(), v.clone());
                    }
                }
                if let Some(Value::Object(d)) = t.get("data") {
                    m.extend(d.clone());
                }
                let corr = t
                    .get("correlationId")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                (Value::Object(m), None, corr)
            }
        };
        let mut ctx = Ctx {
            data,
            matched,
            correlation,
            vars: Map::new(),
        };
        if !self.conditions_hold(rule.get("conditions"), &ctx)? {
            return Ok(());
        }
        let actions = rule.get("actions").cloned().unwrap_or(Value::Null);
        self.execute(&actions, &mut ctx, depth + 1, pushes)?;
        self.rules_executed += 1;
        Ok(())
    }

    /// `ActionExecutor.execute`: `Err` aborts the caller (an input could not be built).
    fn execute(
        &mut self,
        actions: &Value,
        ctx: &mut Ctx,
        depth: usize,
        pushes: &mut Vec<EventPush>,
    ) -> Result<(), String> {
        let Value::Array(actions) = actions else {
            return Err("Cannot read properties of undefined (reading 'length')".into());
        };
        for action in actions {
            self.build_input(action, ctx)?;
            if let Err(e) = self.execute_action(action, ctx, depth, pushes) {
                tracing::debug!(error = %e, "rule action failed");
            }
        }
        Ok(())
    }

    /// `buildActionInput` (what the trace records): its errors abort the rule.
    fn build_input(&self, a: &Value, ctx: &Ctx) -> Result<(), String> {
        match a.get("type").and_then(Value::as_str).unwrap_or("") {
            "set_fact" => {
                self.interpolate(str_field(a, "key")?, ctx)?;
                self.resolve(a.get("value"), ctx)?;
            }
            "delete_fact" => {
                self.interpolate(str_field(a, "key")?, ctx)?;
            }
            "emit_event" => {
                self.interpolate(str_field(a, "topic")?, ctx)?;
                self.resolve_object(a.get("data"), ctx)?;
            }
            "set_timer" => {
                let t = a.get("timer").cloned().unwrap_or(Value::Null);
                self.interpolate(str_field(&t, "name")?, ctx)?;
                let on = t.get("onExpire").cloned().unwrap_or(Value::Null);
                self.interpolate(str_field(&on, "topic")?, ctx)?;
                self.resolve_object(on.get("data"), ctx)?;
            }
            "cancel_timer" => {
                self.interpolate(str_field(a, "name")?, ctx)?;
            }
            "call_service" => {
                for arg in list(a, "args")? {
                    self.resolve(Some(arg), ctx)?;
                }
            }
            "log" => {
                self.interpolate(str_field(a, "message")?, ctx)?;
            }
            "conditional" => {
                list(a, "conditions")?;
                list(a, "then")?;
            }
            "try_catch" => {
                list(a, "try")?;
            }
            _ => {}
        }
        Ok(())
    }

    /// `executeAction`: `Err` is this action's failure.
    fn execute_action(
        &mut self,
        a: &Value,
        ctx: &mut Ctx,
        depth: usize,
        pushes: &mut Vec<EventPush>,
    ) -> Result<(), String> {
        match a.get("type").and_then(Value::as_str).unwrap_or("") {
            "set_fact" => {
                let key = self.interpolate(str_field(a, "key")?, ctx)?;
                let value = self.resolve(a.get("value"), ctx)?;
                // The executor writes the fact store directly: no fact trigger.
                self.store_fact(&key, value, "rule");
            }
            "delete_fact" => {
                let key = self.interpolate(str_field(a, "key")?, ctx)?;
                self.facts.shift_remove(&key);
            }
            "emit_event" => {
                let topic = self.interpolate(str_field(a, "topic")?, ctx)?;
                let data = self.resolve_object(a.get("data"), ctx)?;
                let event = self.new_event(
                    &topic,
                    Value::Object(data),
                    ctx.correlation.clone(),
                    None,
                    "rule",
                );
                self.handle_event(event, depth, pushes);
            }
            "set_timer" => {
                let t = a.get("timer").cloned().unwrap_or(Value::Null);
                let name = self.interpolate(str_field(&t, "name")?, ctx)?;
                let on = t.get("onExpire").cloned().unwrap_or(Value::Null);
                let topic = self.interpolate(str_field(&on, "topic")?, ctx)?;
                let data = self.resolve_object(on.get("data"), ctx)?;
                self.timers.shift_remove(&name);
                let duration = parse_duration(t.get("duration"))?;
                let repeat_ms = match t.get("repeat") {
                    Some(r) if !r.is_null() => Some(parse_duration(r.get("interval"))?),
                    _ => None,
                };
                if self.timers.len() >= MAX_TIMERS {
                    return Err("Too many timers".into());
                }
                let now = self.clock.now_ms();
                self.timers.insert(
                    name.clone(),
                    Timer {
                        id: event_id(now),
                        name,
                        expires_at: now.saturating_add(duration),
                        topic,
                        data,
                        repeat_ms,
                        correlation: ctx.correlation.clone(),
                    },
                );
            }
            "cancel_timer" => {
                let name = self.interpolate(str_field(a, "name")?, ctx)?;
                self.timers.shift_remove(&name);
            }
            "call_service" => {
                // The server starts its engine without services.
                let service = a.get("service").map(js_string).unwrap_or_default();
                return Err(format!("Service not found: {service}"));
            }
            "log" => {
                let message = self.interpolate(str_field(a, "message")?, ctx)?;
                tracing::info!(message, "rule log action");
            }
            "conditional" => {
                let branch = if self.conditions_hold(a.get("conditions"), ctx)? {
                    a.get("then")
                } else {
                    a.get("else")
                };
                if let Some(actions) = branch {
                    self.execute(&actions.clone(), ctx, depth, pushes)?;
                }
            }
            "for_each" => {
                let raw = self.resolve(a.get("collection"), ctx)?;
                let Some(Value::Array(items)) = raw else {
                    return Err(format!(
                        "for_each: collection must be an array, got {}",
                        type_of(raw.as_ref())
                    ));
                };
                let as_ = a
                    .get("as")
                    .map(js_string)
                    .unwrap_or_else(|| "undefined".into());
                let limit = a
                    .get("maxIterations")
                    .and_then(Value::as_f64)
                    .map_or(1000, |m| if m > 0.0 { m as usize } else { 0 });
                let actions = a.get("actions").cloned().unwrap_or(Value::Null);
                for (i, item) in items.into_iter().take(limit).enumerate() {
                    ctx.vars.insert(as_.clone(), item);
                    ctx.vars.insert(format!("{as_}_index"), i.into());
                    self.execute(&actions, ctx, depth, pushes)?;
                }
                ctx.vars.remove(&as_);
                ctx.vars.remove(&format!("{as_}_index"));
            }
            "try_catch" => {
                let mut caught: Option<String> = None;
                for t in list(a, "try")?.to_vec() {
                    self.build_input(&t, ctx)?;
                    if let Err(e) = self.execute_action(&t, ctx, depth, pushes) {
                        caught = Some(e);
                        break;
                    }
                }
                if let (Some(err), Some(catch)) = (&caught, a.get("catch")) {
                    let as_ = catch.get("as").and_then(Value::as_str).map(str::to_string);
                    if let Some(name) = &as_ {
                        let mut m = Map::new();
                        m.insert("message".into(), err.clone().into());
                        ctx.vars.insert(name.clone(), Value::Object(m));
                    }
                    let actions = catch.get("actions").cloned().unwrap_or(Value::Null);
                    self.execute(&actions, ctx, depth, pushes)?;
                    if let Some(name) = &as_ {
                        ctx.vars.remove(name);
                    }
                }
                if let Some(f) = a.get("finally") {
                    self.execute(&f.clone(), ctx, depth, pushes)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx(data: Value) -> Ctx {
        Ctx {
            data,
            matched: None,
            correlation: None,
            vars: Map::new(),
        }
    }

    #[test]
    fn refs_and_interpolation() {
        let mut r = Rules::default();
        let mut pushes = Vec::new();
        r.set_fact("cfg:1", json!({"limit": 7}), &mut pushes);
        let c = ctx(json!({"a": "A", "obj": {"x": 1}, "arr": [10, 20], "n": 1}));
        let get = |s: &str| r.resolve_ref(&Value::from(s), &c);
        assert_eq!(get("event.a"), Ok(Some(json!("A"))));
        assert_eq!(get("trigger.arr.1"), Ok(Some(json!(20))));
        assert_eq!(get("event.nope"), Ok(None));
        assert_eq!(get("fact.cfg:1"), Ok(Some(json!({"limit": 7}))));
        assert_eq!(get("fact.cfg:${event.n}"), Ok(Some(json!({"limit": 7}))));
        assert_eq!(get("fact.cfg:1.limit"), Ok(None));
        assert!(get("foo.bar").is_err());
        assert_eq!(
            r.interpolate("res:${event.a}:${event.obj}:${event.nope}", &c),
            Ok("res:A:[object Object]:".to_string())
        );
        assert_eq!(parse_duration(Some(&json!("200ms"))), Ok(200));
        assert!(parse_duration(Some(&json!("5"))).is_err());
    }
}
