//! The procedure definition validator (noex-server `procedure-validator.ts`): name,
//! description, input schema, transaction flag, timeout and the steps (recursively, at
//! most 100 in all and `if` nested at most 5 deep), with the real paths and messages, all
//! issues in one `VALIDATION_ERROR`.

use serde_json::{Map, Value};

use crate::condition_operators::PROCEDURES;
use crate::error::OpError;
use crate::json::obj;

const MAX_STEPS: usize = 100;
const MAX_DEPTH: usize = 5;
const ACTIONS: &[&str] = &[
    "store.get",
    "store.where",
    "store.findOne",
    "store.insert",
    "store.update",
    "store.delete",
    "store.count",
    "aggregate",
    "rules.emit",
    "rules.setFact",
    "rules.getFact",
    "if",
    "transform",
    "return",
];

/// The procedure definition `c`: every issue found, in one `VALIDATION_ERROR`.
pub(super) fn validate(c: &Map<String, Value>) -> Result<(), OpError> {
    let mut issues = Vec::new();
    if !matches!(c.get("name"), Some(Value::String(n)) if !n.is_empty()) {
        issues.push("Missing or invalid \"name\": expected non-empty string".to_string());
    }
    if c.get("description").is_some_and(|d| !d.is_string()) {
        issues.push("\"description\" must be a string".into());
    }
    if let Some(input) = c.get("input") {
        match input {
            Value::Object(m) => {
                for (k, def) in m {
                    match def {
                        Value::Object(d) => {
                            let t = d.get("type").and_then(Value::as_str).unwrap_or("");
                            if !["string", "number", "boolean", "object", "array"].contains(&t) {
                                issues.push(format!("input.{k}.type: expected one of: string, number, boolean, object, array"));
                            }
                        }
                        _ => issues.push(format!("input.{k}: expected field definition object")),
                    }
                }
            }
            _ => issues.push("\"input\" must be an object".into()),
        }
    }
    if c.get("transaction").is_some_and(|t| !t.is_boolean()) {
        issues.push("\"transaction\" must be a boolean".into());
    }
    if let Some(t) = c.get("timeoutMs") {
        if !t.as_f64().is_some_and(|x| x > 0.0) {
            issues.push("\"timeoutMs\" must be a positive number".into());
        }
    }
    match c.get("steps") {
        Some(Value::Array(steps)) if steps.is_empty() => {
            issues.push("\"steps\" must contain at least one step".into())
        }
        Some(Value::Array(steps)) => {
            let total = count_steps(steps);
            if total > MAX_STEPS {
                issues.push(format!(
                    "Total step count ({total}) exceeds maximum ({MAX_STEPS})"
                ));
            }
            validate_steps(steps, "steps", 0, &mut issues);
        }
        _ => issues.push("Missing or invalid \"steps\": expected array".into()),
    }
    if issues.is_empty() {
        Ok(())
    } else {
        Err(validation_failed(issues))
    }
}

fn validation_failed(issues: Vec<String>) -> OpError {
    OpError::validation(format!(
        "Procedure validation failed: {}",
        issues.join("; ")
    ))
    .with_details(obj([(
        "issues",
        Value::Array(issues.into_iter().map(Value::from).collect()),
    )]))
}

fn req_str(s: &Map<String, Value>, f: &str, path: &str, issues: &mut Vec<String>) {
    if !matches!(s.get(f), Some(Value::String(x)) if !x.is_empty()) {
        issues.push(format!("{path}.{f}: expected non-empty string"));
    }
}

fn req_obj(s: &Map<String, Value>, f: &str, path: &str, issues: &mut Vec<String>) {
    if !matches!(s.get(f), Some(Value::Object(_))) {
        issues.push(format!("{path}.{f}: expected object"));
    }
}

fn count_steps(steps: &[Value]) -> usize {
    steps
        .iter()
        .map(|s| {
            let mut n = 1;
            if s.get("action").and_then(Value::as_str) == Some("if") {
                for b in ["then", "else"] {
                    if let Some(Value::Array(a)) = s.get(b) {
                        n += count_steps(a);
                    }
                }
            }
            n
        })
        .sum()
}

fn validate_steps(steps: &[Value], prefix: &str, depth: usize, issues: &mut Vec<String>) {
    for (i, step) in steps.iter().enumerate() {
        let path = format!("{prefix}[{i}]");
        let Value::Object(s) = step else {
            issues.push(format!("{path}: expected step object"));
            continue;
        };
        let action = s.get("action").and_then(Value::as_str).unwrap_or("");
        if !ACTIONS.contains(&action) {
            issues.push(format!(
                "{path}.action: expected one of: {}",
                ACTIONS.join(", ")
            ));
            continue;
        }
        match action {
            "store.get" => {
                req_str(s, "bucket", &path, issues);
                req_str(s, "key", &path, issues);
                req_str(s, "as", &path, issues);
            }
            "store.where" | "store.findOne" => {
                req_str(s, "bucket", &path, issues);
                req_obj(s, "filter", &path, issues);
                req_str(s, "as", &path, issues);
            }
            "store.insert" => {
                req_str(s, "bucket", &path, issues);
                req_obj(s, "data", &path, issues);
                if s.contains_key("as") {
                    req_str(s, "as", &path, issues);
                }
            }
            "store.update" => {
                req_str(s, "bucket", &path, issues);
                req_str(s, "key", &path, issues);
                req_obj(s, "data", &path, issues);
                if s.contains_key("as") {
                    req_str(s, "as", &path, issues);
                }
            }
            "store.delete" => {
                req_str(s, "bucket", &path, issues);
                req_str(s, "key", &path, issues);
            }
            "store.count" => {
                req_str(s, "bucket", &path, issues);
                if s.contains_key("filter") {
                    req_obj(s, "filter", &path, issues);
                }
                req_str(s, "as", &path, issues);
            }
            "aggregate" => {
                req_str(s, "source", &path, issues);
                req_str(s, "as", &path, issues);
                let op = s.get("op").and_then(Value::as_str).unwrap_or("");
                if !["sum", "avg", "min", "max", "count"].contains(&op) {
                    issues.push(format!(
                        "{path}.op: expected one of: sum, avg, min, max, count"
                    ));
                }
                if op != "count" {
                    req_str(s, "field", &path, issues);
                }
            }
            "rules.emit" => {
                req_str(s, "topic", &path, issues);
                if s.contains_key("data") {
                    req_obj(s, "data", &path, issues);
                }
            }
            "rules.setFact" => {
                req_str(s, "key", &path, issues);
                if !s.contains_key("value") {
                    issues.push(format!("{path}.value: required"));
                }
            }
            "rules.getFact" => {
                req_str(s, "key", &path, issues);
                req_str(s, "as", &path, issues);
            }
            "if" => {
                if depth >= MAX_DEPTH {
                    issues.push(format!(
                        "{path}: condition nesting depth exceeds maximum ({MAX_DEPTH})"
                    ));
                    continue;
                }
                match s.get("condition") {
                    Some(Value::Object(c)) => {
                        if !matches!(c.get("ref"), Some(Value::String(r)) if !r.is_empty()) {
                            issues.push(format!("{path}.condition.ref: expected non-empty string"));
                        }
                        let op = c.get("operator").and_then(Value::as_str).unwrap_or("");
                        if PROCEDURES.operator(op).is_none() {
                            issues.push(format!(
                                "{path}.condition.operator: expected one of: {}",
                                PROCEDURES.names()
                            ));
                        }
                    }
                    _ => issues.push(format!("{path}.condition: expected object")),
                }
                match s.get("then") {
                    Some(Value::Array(a)) if !a.is_empty() => {
                        validate_steps(a, &format!("{path}.then"), depth + 1, issues)
                    }
                    _ => issues.push(format!("{path}.then: expected non-empty array of steps")),
                }
                match s.get("else") {
                    None => {}
                    Some(Value::Array(a)) if !a.is_empty() => {
                        validate_steps(a, &format!("{path}.else"), depth + 1, issues)
                    }
                    _ => issues.push(format!("{path}.else: expected non-empty array of steps")),
                }
            }
            "transform" => {
                req_str(s, "source", &path, issues);
                req_str(s, "as", &path, issues);
                let op = s.get("operation").and_then(Value::as_str).unwrap_or("");
                if !["map", "filter", "pick", "pluck"].contains(&op) {
                    issues.push(format!(
                        "{path}.operation: expected one of: map, filter, pick, pluck"
                    ));
                }
                if !s.contains_key("args") {
                    issues.push(format!("{path}.args: required"));
                }
            }
            _ => {
                if !s.contains_key("value") {
                    issues.push(format!("{path}.value: required"));
                }
            }
        }
    }
}
