//! The rule input validator (noex-rules `src/validation/`): required fields, field types,
//! triggers, conditions and actions (recursively), with the real paths and messages.
//! Temporal patterns, lookups and condition values are not checked.

use serde_json::{Map, Value};

use crate::condition_operators::{Operator, RULES};
use crate::json::obj;

const TRIGGER_TYPES: &[&str] = &["event", "fact", "timer", "temporal"];
const SOURCE_TYPES: &[&str] = &["event", "fact", "context", "lookup", "baseline"];
const ACTION_TYPES: &[&str] = &[
    "set_fact",
    "delete_fact",
    "emit_event",
    "set_timer",
    "cancel_timer",
    "call_service",
    "log",
    "conditional",
    "for_each",
    "try_catch",
];
const LOG_LEVELS: &[&str] = &["debug", "info", "warn", "error"];

/// `isValidDuration`: `^\d+(ms|s|m|h|d|w|y)$` or digits only.
pub(crate) fn valid_duration(s: &str) -> bool {
    let digits = s.chars().take_while(char::is_ascii_digit).count();
    digits > 0 && matches!(&s[digits..], "" | "ms" | "s" | "m" | "h" | "d" | "w" | "y")
}

#[derive(Default)]
struct Issues {
    errors: Vec<Value>,
    warnings: Vec<Value>,
}

impl Issues {
    fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(obj([
            ("path", path.into().into()),
            ("message", message.into().into()),
            ("severity", "error".into()),
        ]));
    }

    fn warning(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(obj([
            ("path", path.into().into()),
            ("message", message.into().into()),
            ("severity", "warning".into()),
        ]));
    }
}

fn is_blank(s: &str) -> bool {
    s.trim().is_empty()
}

/// `{valid, errors, warnings}` for a rule input.
pub(crate) fn validate(rule: &Map<String, Value>) -> Value {
    let mut c = Issues::default();
    required_string(rule, "id", &mut c);
    required_string(rule, "name", &mut c);
    if !rule.contains_key("trigger") {
        c.error("trigger", "Required field \"trigger\" is missing");
    }
    optional_fields(rule, &mut c);
    if let Some(t) = rule.get("trigger") {
        trigger(t, "trigger", &mut c);
    }
    if let Some(conds) = rule.get("conditions") {
        conditions(conds, "conditions", &mut c);
    }
    if let Some(a) = rule.get("actions") {
        actions(a, "actions", &mut c);
    }
    obj([
        ("valid", c.errors.is_empty().into()),
        ("errors", Value::Array(c.errors)),
        ("warnings", Value::Array(c.warnings)),
    ])
}

fn required_string(rule: &Map<String, Value>, field: &str, c: &mut Issues) {
    match rule.get(field) {
        None => c.error(field, format!("Required field \"{field}\" is missing")),
        Some(Value::String(s)) if is_blank(s) => {
            c.error(field, format!("Field \"{field}\" cannot be empty"));
        }
        Some(Value::String(_)) => {}
        Some(_) => c.error(field, format!("Field \"{field}\" must be a string")),
    }
}

fn optional_fields(rule: &Map<String, Value>, c: &mut Issues) {
    if rule.get("description").is_some_and(|d| !d.is_string()) {
        c.error("description", "Field \"description\" must be a string");
    }
    match rule.get("priority") {
        None => {}
        Some(Value::Number(n)) if n.as_f64().is_some_and(|f| f.fract() != 0.0) => {
            c.warning("priority", "Field \"priority\" should be an integer");
        }
        Some(Value::Number(_)) => {}
        Some(_) => c.error("priority", "Field \"priority\" must be a number"),
    }
    if rule.get("enabled").is_some_and(|e| !e.is_boolean()) {
        c.error("enabled", "Field \"enabled\" must be a boolean");
    }
    match rule.get("tags") {
        None => {}
        Some(Value::Array(tags)) => {
            for (i, t) in tags.iter().enumerate() {
                if !t.is_string() {
                    c.error(format!("tags[{i}]"), "Tag must be a string");
                }
            }
        }
        Some(_) => c.error("tags", "Field \"tags\" must be an array"),
    }
    match rule.get("group") {
        None => {}
        Some(Value::String(g)) if is_blank(g) => {
            c.error("group", "Field \"group\" cannot be empty")
        }
        Some(Value::String(_)) => {}
        Some(_) => c.error("group", "Field \"group\" must be a string"),
    }
}

fn trigger(t: &Value, path: &str, c: &mut Issues) {
    let Value::Object(t) = t else {
        return c.error(path, "Trigger must be an object");
    };
    let Some(ty) = t.get("type") else {
        return c.error(format!("{path}.type"), "Trigger must have a \"type\" field");
    };
    let Value::String(ty) = ty else {
        return c.error(format!("{path}.type"), "Trigger type must be a string");
    };
    if !TRIGGER_TYPES.contains(&ty.as_str()) {
        return c.error(
            format!("{path}.type"),
            format!(
                "Invalid trigger type: {ty}. Valid types: {}",
                TRIGGER_TYPES.join(", ")
            ),
        );
    }
    let (field, label) = match ty.as_str() {
        "event" => ("topic", "Event trigger"),
        "fact" => ("pattern", "Fact trigger"),
        "timer" => ("name", "Timer trigger"),
        _ => {
            if !t.contains_key("pattern") {
                c.error(
                    format!("{path}.pattern"),
                    "Temporal trigger must have a \"pattern\" field",
                );
            }
            return;
        }
    };
    match t.get(field) {
        None => c.error(
            format!("{path}.{field}"),
            format!("{label} must have a \"{field}\" field"),
        ),
        Some(Value::String(s)) if is_blank(s) => c.error(
            format!("{path}.{field}"),
            format!("{label} {field} cannot be empty"),
        ),
        Some(Value::String(_)) => {}
        Some(_) => c.error(
            format!("{path}.{field}"),
            format!("{label} {field} must be a string"),
        ),
    }
}

fn conditions(v: &Value, path: &str, c: &mut Issues) {
    let Value::Array(list) = v else {
        return c.error(path, "Conditions must be an array");
    };
    for (i, cond) in list.iter().enumerate() {
        condition(cond, &format!("{path}[{i}]"), c);
    }
}

fn condition(v: &Value, path: &str, c: &mut Issues) {
    let Value::Object(cond) = v else {
        return c.error(path, "Condition must be an object");
    };
    match cond.get("source") {
        None => c.error(
            format!("{path}.source"),
            "Condition must have a \"source\" field",
        ),
        Some(s) => source(s, &format!("{path}.source"), c),
    }
    match cond.get("operator") {
        None => c.error(
            format!("{path}.operator"),
            "Condition must have an \"operator\" field",
        ),
        Some(Value::String(op)) if RULES.operator(op).is_none() => c.error(
            format!("{path}.operator"),
            format!("Invalid operator: {op}. Valid operators: {}", RULES.names()),
        ),
        Some(Value::String(_)) => {}
        Some(_) => c.error(
            format!("{path}.operator"),
            "Condition operator must be a string",
        ),
    }
    if let Some(Value::String(op)) = cond.get("operator") {
        let presence = RULES.operator(op).is_some_and(Operator::tests_presence);
        if !presence && !cond.contains_key("value") {
            c.error(
                format!("{path}.value"),
                "Condition must have a \"value\" field",
            );
        }
    }
}

fn source(v: &Value, path: &str, c: &mut Issues) {
    let Value::Object(s) = v else {
        return c.error(path, "Condition source must be an object");
    };
    let Some(ty) = s.get("type") else {
        return c.error(
            format!("{path}.type"),
            "Condition source must have a \"type\" field",
        );
    };
    let Value::String(ty) = ty else {
        return c.error(
            format!("{path}.type"),
            "Condition source type must be a string",
        );
    };
    if !SOURCE_TYPES.contains(&ty.as_str()) {
        return c.error(
            format!("{path}.type"),
            format!(
                "Invalid source type: {ty}. Valid types: {}",
                SOURCE_TYPES.join(", ")
            ),
        );
    }
    let (field, label) = match ty.as_str() {
        "fact" => ("pattern", "Fact source"),
        "event" => ("field", "Event source"),
        "context" => ("key", "Context source"),
        "lookup" => ("name", "Lookup source"),
        _ => ("metric", "Baseline source"),
    };
    match s.get(field) {
        None => c.error(
            format!("{path}.{field}"),
            format!("{label} must have a \"{field}\" field"),
        ),
        Some(Value::String(_)) => {}
        Some(_) => c.error(
            format!("{path}.{field}"),
            format!("{label} {field} must be a string"),
        ),
    }
}

fn actions(v: &Value, path: &str, c: &mut Issues) {
    let Value::Array(list) = v else {
        return c.error(path, "Actions must be an array");
    };
    if list.is_empty() {
        c.warning(path, "Rule has no actions");
    }
    for (i, a) in list.iter().enumerate() {
        action(a, &format!("{path}[{i}]"), c);
    }
}

/// `<path>.<field>` must be a string (`<ty> action must have a "<field>" field`).
fn string_field(a: &Map<String, Value>, ty: &str, field: &str, path: &str, c: &mut Issues) {
    match a.get(field) {
        None => c.error(
            format!("{path}.{field}"),
            format!("{ty} action must have a \"{field}\" field"),
        ),
        Some(Value::String(_)) => {}
        Some(_) => c.error(
            format!("{path}.{field}"),
            format!("{ty} action {field} must be a string"),
        ),
    }
}

/// A non-empty array of actions at `<path>.<field>`.
fn action_list(
    a: &Map<String, Value>,
    ty: &str,
    field: &str,
    path: &str,
    empty_is_error: bool,
    c: &mut Issues,
) {
    match a.get(field) {
        None => c.error(
            format!("{path}.{field}"),
            format!("{ty} action must have a \"{field}\" field"),
        ),
        Some(Value::Array(list)) if list.is_empty() => {
            if empty_is_error {
                c.error(
                    format!("{path}.{field}"),
                    format!("{ty} action {field} must not be empty"),
                );
            } else {
                c.warning(
                    format!("{path}.{field}"),
                    format!("{ty} action {field} is empty"),
                );
            }
        }
        Some(Value::Array(list)) => {
            for (i, x) in list.iter().enumerate() {
                action(x, &format!("{path}.{field}[{i}]"), c);
            }
        }
        Some(_) => c.error(
            format!("{path}.{field}"),
            format!("{ty} action {field} must be an array"),
        ),
    }
}

fn action(v: &Value, path: &str, c: &mut Issues) {
    let Value::Object(a) = v else {
        return c.error(path, "Action must be an object");
    };
    let Some(ty) = a.get("type") else {
        return c.error(format!("{path}.type"), "Action must have a \"type\" field");
    };
    let Value::String(ty) = ty else {
        return c.error(format!("{path}.type"), "Action type must be a string");
    };
    if !ACTION_TYPES.contains(&ty.as_str()) {
        return c.error(
            format!("{path}.type"),
            format!(
                "Invalid action type: {ty}. Valid types: {}",
                ACTION_TYPES.join(", ")
            ),
        );
    }
    match ty.as_str() {
        "set_fact" => {
            string_field(a, ty, "key", path, c);
            if !a.contains_key("value") {
                c.error(
                    format!("{path}.value"),
                    "set_fact action must have a \"value\" field",
                );
            }
        }
        "delete_fact" => string_field(a, ty, "key", path, c),
        "emit_event" => {
            string_field(a, ty, "topic", path, c);
            match a.get("data") {
                None => c.error(
                    format!("{path}.data"),
                    "emit_event action must have a \"data\" field",
                ),
                Some(Value::Object(_)) => {}
                Some(_) => c.error(
                    format!("{path}.data"),
                    "emit_event action data must be an object",
                ),
            }
        }
        "set_timer" => set_timer(a, path, c),
        "cancel_timer" => string_field(a, ty, "name", path, c),
        "call_service" => {
            string_field(a, ty, "service", path, c);
            string_field(a, ty, "method", path, c);
            if a.get("args").is_some_and(|x| !x.is_array()) {
                c.error(
                    format!("{path}.args"),
                    "call_service action args must be an array",
                );
            }
        }
        "log" => {
            match a.get("level") {
                None => c.error(
                    format!("{path}.level"),
                    "log action must have a \"level\" field",
                ),
                Some(Value::String(l)) if LOG_LEVELS.contains(&l.as_str()) => {}
                Some(l) => c.error(
                    format!("{path}.level"),
                    format!(
                        "Invalid log level: {}. Valid levels: {}",
                        crate::json::js_string(l),
                        LOG_LEVELS.join(", ")
                    ),
                ),
            }
            string_field(a, ty, "message", path, c);
        }
        "conditional" => {
            match a.get("conditions") {
                None => c.error(
                    format!("{path}.conditions"),
                    "conditional action must have a \"conditions\" field",
                ),
                Some(Value::Array(l)) if l.is_empty() => c.error(
                    format!("{path}.conditions"),
                    "conditional action conditions must not be empty",
                ),
                Some(l @ Value::Array(_)) => conditions(l, &format!("{path}.conditions"), c),
                Some(_) => c.error(
                    format!("{path}.conditions"),
                    "conditional action conditions must be an array",
                ),
            }
            action_list(a, ty, "then", path, true, c);
            if a.contains_key("else") {
                action_list(a, ty, "else", path, false, c);
            }
        }
        "try_catch" => try_catch(a, path, c),
        _ => {}
    }
}

fn set_timer(a: &Map<String, Value>, path: &str, c: &mut Issues) {
    let Some(timer) = a.get("timer") else {
        return c.error(
            format!("{path}.timer"),
            "set_timer action must have a \"timer\" field",
        );
    };
    let Value::Object(timer) = timer else {
        return c.error(
            format!("{path}.timer"),
            "set_timer action timer must be an object",
        );
    };
    match timer.get("name") {
        None => c.error(
            format!("{path}.timer.name"),
            "Timer must have a \"name\" field",
        ),
        Some(Value::String(_)) => {}
        Some(_) => c.error(format!("{path}.timer.name"), "Timer name must be a string"),
    }
    match timer.get("duration") {
        None => c.error(
            format!("{path}.timer.duration"),
            "Timer must have a \"duration\" field",
        ),
        Some(Value::String(d)) if !valid_duration(d) => c.error(
            format!("{path}.timer.duration"),
            format!("Invalid duration format: {d}"),
        ),
        Some(Value::String(_)) => {}
        Some(Value::Number(n)) if n.as_f64().is_some_and(|f| f <= 0.0) => c.error(
            format!("{path}.timer.duration"),
            "Timer duration must be positive",
        ),
        Some(Value::Number(_)) => {}
        Some(_) => c.error(
            format!("{path}.timer.duration"),
            "Timer duration must be a string or number",
        ),
    }
    match timer.get("onExpire") {
        None => c.error(
            format!("{path}.timer.onExpire"),
            "Timer must have an \"onExpire\" field",
        ),
        Some(Value::Object(o)) => {
            if !o.contains_key("topic") {
                c.error(
                    format!("{path}.timer.onExpire.topic"),
                    "Timer onExpire must have a \"topic\" field",
                );
            }
            if !o.contains_key("data") {
                c.error(
                    format!("{path}.timer.onExpire.data"),
                    "Timer onExpire must have a \"data\" field",
                );
            }
        }
        Some(_) => c.error(
            format!("{path}.timer.onExpire"),
            "Timer onExpire must be an object",
        ),
    }
}

fn try_catch(a: &Map<String, Value>, path: &str, c: &mut Issues) {
    action_list(a, "try_catch", "try", path, true, c);
    let has_catch = a.contains_key("catch");
    let has_finally = a.contains_key("finally");
    if !has_catch && !has_finally {
        c.error(
            path,
            "try_catch action must have at least \"catch\" or \"finally\"",
        );
    }
    if let Some(catch) = a.get("catch") {
        match catch {
            Value::Object(k) => {
                match k.get("actions") {
                    None => c.error(
                        format!("{path}.catch.actions"),
                        "try_catch catch must have an \"actions\" field",
                    ),
                    Some(Value::Array(l)) if l.is_empty() => c.error(
                        format!("{path}.catch.actions"),
                        "try_catch catch actions must not be empty",
                    ),
                    Some(Value::Array(l)) => {
                        for (i, x) in l.iter().enumerate() {
                            action(x, &format!("{path}.catch.actions[{i}]"), c);
                        }
                    }
                    Some(_) => c.error(
                        format!("{path}.catch.actions"),
                        "try_catch catch actions must be an array",
                    ),
                }
                if k.get("as").is_some_and(|x| !x.is_string()) {
                    c.error(
                        format!("{path}.catch.as"),
                        "try_catch catch as must be a string",
                    );
                }
            }
            _ => c.error(
                format!("{path}.catch"),
                "try_catch action catch must be an object",
            ),
        }
    }
    if has_finally {
        action_list(a, "try_catch", "finally", path, false, c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors(v: Value) -> Vec<String> {
        let Value::Object(m) = v else {
            return Vec::new();
        };
        validate(&m)["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                format!(
                    "{}: {}",
                    e["path"].as_str().unwrap_or(""),
                    e["message"].as_str().unwrap_or("")
                )
            })
            .collect()
    }

    #[test]
    fn messages() {
        assert_eq!(
            errors(json!({"id": "x"})),
            [
                "name: Required field \"name\" is missing",
                "trigger: Required field \"trigger\" is missing"
            ]
        );
        assert_eq!(
            errors(json!({"id": "x", "name": "n", "trigger": {"type": "event", "topic": ""}})),
            ["trigger.topic: Event trigger topic cannot be empty"]
        );
        assert!(valid_duration("200ms"));
        assert!(valid_duration("5"));
        assert!(!valid_duration("5 seconds"));
        assert!(!valid_duration("ms"));
    }
}
