//! Schema validation and record preparation with the store's semantics
//! (`schema-validator` of `@hamicek/noex-store` 0.2.0).

use serde_json::{Map, Value};

use crate::error::OpError;
use crate::json::{js_string, ordered_entries, KeyOrder};

/// An ordered schema: field name → field definition, in definition order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Schema {
    pub(crate) fields: Vec<(String, Value)>,
}

impl Schema {
    /// Build from a schema object and (optionally) its document key order.
    pub(crate) fn from_value(schema: &Map<String, Value>, order: Option<&KeyOrder>) -> Schema {
        let keys = order.map(KeyOrder::keys).unwrap_or_default();
        Schema {
            fields: ordered_entries(schema, &keys),
        }
    }

    pub(crate) fn get(&self, field: &str) -> Option<&Value> {
        self.fields.iter().find(|(k, _)| k == field).map(|(_, v)| v)
    }

    pub(crate) fn contains(&self, field: &str) -> bool {
        self.get(field).is_some()
    }

    pub(crate) fn to_map(&self) -> Map<String, Value> {
        self.fields.iter().cloned().collect()
    }
}

fn generate(kind: &str, counter: u64, now: i64) -> Value {
    match kind {
        "uuid" => uuid::Uuid::new_v4().to_string().into(),
        "cuid" => format!("c{}", uuid::Uuid::new_v4().simple()).into(),
        "timestamp" => now.into(),
        "autoincrement" => counter.into(),
        _ => Value::Null,
    }
}

/// Prepare a record for insertion at time `now`: generated values, defaults, metadata,
/// validation.
pub(crate) fn prepare_insert(
    bucket: &str,
    schema: &Schema,
    input: &Map<String, Value>,
    counter: u64,
    now: i64,
) -> Result<Map<String, Value>, OpError> {
    let mut record = input.clone();
    for (field, def) in &schema.fields {
        if let Some(Value::String(kind)) = def.get("generated") {
            if !record.contains_key(field) {
                record.insert(field.clone(), generate(kind, counter, now));
            }
        }
    }
    for (field, def) in &schema.fields {
        if let Some(d) = def.get("default") {
            if !record.contains_key(field) {
                record.insert(field.clone(), d.clone());
            }
        }
    }
    record.insert("_version".into(), 1.into());
    record.insert("_createdAt".into(), now.into());
    record.insert("_updatedAt".into(), now.into());
    validate(bucket, schema, &record)?;
    Ok(record)
}

/// Prepare an update at time `now`: strip metadata, key and generated fields, merge, bump
/// the version.
pub(crate) fn prepare_update(
    bucket: &str,
    schema: &Schema,
    key_field: &str,
    existing: &Map<String, Value>,
    changes: &Map<String, Value>,
    now: i64,
) -> Result<Map<String, Value>, OpError> {
    let mut merged = existing.clone();
    for (k, v) in changes {
        let generated = schema
            .get(k)
            .is_some_and(|d| d.get("generated").is_some_and(|g| !g.is_null()));
        if k == "_version" || k == "_createdAt" || k == "_updatedAt" || k == key_field || generated
        {
            continue;
        }
        merged.insert(k.clone(), v.clone());
    }
    let version = existing
        .get("_version")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    merged.insert("_version".into(), (version + 1).into());
    merged.insert("_updatedAt".into(), now.into());
    validate(bucket, schema, &merged)?;
    Ok(merged)
}

struct Issue {
    field: String,
    message: String,
    code: &'static str,
}

/// Validate a whole record; the error carries `details` as the real server sends them.
pub(crate) fn validate(
    bucket: &str,
    schema: &Schema,
    record: &Map<String, Value>,
) -> Result<(), OpError> {
    let mut issues = Vec::new();
    validate_fields(&schema.fields, record, "", &mut issues, 0);
    if issues.is_empty() {
        return Ok(());
    }
    let summary = issues
        .iter()
        .map(|i| format!("{}: {}", i.field, i.message))
        .collect::<Vec<_>>()
        .join("; ");
    let details: Vec<Value> = issues
        .iter()
        .map(|i| {
            crate::json::obj([
                ("field", i.field.clone().into()),
                ("message", i.message.clone().into()),
                ("code", i.code.into()),
            ])
        })
        .collect();
    Err(OpError::validation(format!(
        "Validation failed for bucket \"{bucket}\": {summary}"
    ))
    .with_details(Value::Array(details)))
}

fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "boolean",
    }
}

fn type_matches(v: &Value, ty: &str) -> bool {
    match ty {
        "string" => v.is_string(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "object" => v.is_object(),
        "array" => v.is_array(),
        "date" => v.is_number() || v.is_string(),
        _ => true,
    }
}

fn validate_fields(
    fields: &[(String, Value)],
    record: &Map<String, Value>,
    prefix: &str,
    issues: &mut Vec<Issue>,
    depth: usize,
) {
    if depth > 10 {
        return;
    }
    for (field, def) in fields {
        let path = if prefix.is_empty() {
            field.clone()
        } else {
            format!("{prefix}.{field}")
        };
        let value = record.get(field);
        let required = def.get("required") == Some(&Value::Bool(true));
        match value {
            None | Some(Value::Null) => {
                if required {
                    issues.push(Issue {
                        field: path,
                        message: "Field is required".into(),
                        code: "required",
                    });
                }
                continue;
            }
            Some(v) => validate_value(&path, v, def, issues, depth),
        }
    }
}

fn validate_value(path: &str, v: &Value, def: &Value, issues: &mut Vec<Issue>, depth: usize) {
    let ty = def.get("type").and_then(Value::as_str).unwrap_or("");
    if !type_matches(v, ty) {
        issues.push(Issue {
            field: path.to_string(),
            message: format!("Expected type \"{ty}\", got {}", describe(v)),
            code: "type",
        });
        return;
    }
    constraints(path, v, def, issues);
    if ty == "object" {
        if let (Some(Value::Object(props)), Value::Object(inner)) = (def.get("properties"), v) {
            let props: Vec<(String, Value)> =
                props.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            validate_fields(&props, inner, path, issues, depth + 1);
        }
    }
    if ty == "array" {
        if let (Some(items_def), Value::Array(items)) = (def.get("items"), v) {
            for (i, item) in items.iter().enumerate() {
                if item.is_null() || depth > 10 {
                    continue;
                }
                validate_value(&format!("{path}[{i}]"), item, items_def, issues, depth + 1);
            }
        }
    }
}

fn constraints(path: &str, v: &Value, def: &Value, issues: &mut Vec<Issue>) {
    let mut push = |message: String, code: &'static str| {
        issues.push(Issue {
            field: path.to_string(),
            message,
            code,
        })
    };
    if let Some(Value::Array(allowed)) = def.get("enum") {
        if !allowed
            .iter()
            .any(|a| crate::json::strict_eq(Some(a), Some(v)))
        {
            let list = allowed.iter().map(js_string).collect::<Vec<_>>().join(", ");
            push(format!("Value must be one of: {list}"), "enum");
        }
    }
    if let Value::String(s) = v {
        let len = s.encode_utf16().count() as f64;
        if let Some(min) = def.get("minLength").and_then(Value::as_f64) {
            if len < min {
                push(
                    format!("Minimum length is {}", js_string(&def["minLength"])),
                    "minLength",
                );
            }
        }
        if let Some(max) = def.get("maxLength").and_then(Value::as_f64) {
            if len > max {
                push(
                    format!("Maximum length is {}", js_string(&def["maxLength"])),
                    "maxLength",
                );
            }
        }
        if let Some(Value::String(pattern)) = def.get("pattern") {
            if !pattern_matches(pattern, s) {
                push(format!("Value must match pattern \"{pattern}\""), "pattern");
            }
        }
        if let Some(Value::String(format)) = def.get("format") {
            let ok = match format.as_str() {
                "email" => {
                    let mut parts = s.splitn(2, '@');
                    let local = parts.next().unwrap_or("");
                    let domain = parts.next().unwrap_or("");
                    !local.is_empty()
                        && domain.contains('.')
                        && !domain.starts_with('.')
                        && !domain.ends_with('.')
                        && !s.contains(char::is_whitespace)
                }
                "url" => s.starts_with("http://") || s.starts_with("https://"),
                "iso-date" => {
                    s.len() >= 10
                        && s.as_bytes().get(4) == Some(&b'-')
                        && s.as_bytes().get(7) == Some(&b'-')
                }
                _ => true,
            };
            if !ok {
                push(format!("Invalid {format} format"), "format");
            }
        }
    }
    if let Value::Number(n) = v {
        let x = n.as_f64().unwrap_or(0.0);
        if let Some(min) = def.get("min").and_then(Value::as_f64) {
            if x < min {
                push(
                    format!("Minimum value is {}", js_string(&def["min"])),
                    "min",
                );
            }
        }
        if let Some(max) = def.get("max").and_then(Value::as_f64) {
            if x > max {
                push(
                    format!("Maximum value is {}", js_string(&def["max"])),
                    "max",
                );
            }
        }
    }
}

/// Compiled `pattern` constraints, by source (bounded: cleared when full).
static PATTERNS: std::sync::Mutex<Option<std::collections::HashMap<String, Option<regex::Regex>>>> =
    std::sync::Mutex::new(None);
const MAX_PATTERNS: usize = 256;

/// `new RegExp(pattern).test(value)`, with the `regex` crate: unanchored search, as in
/// JavaScript. Syntax the crate does not support (lookaround, backreferences) makes the
/// pattern match nothing, so such values fail the constraint.
fn pattern_matches(pattern: &str, value: &str) -> bool {
    let mut cache = PATTERNS.lock().unwrap_or_else(|e| e.into_inner());
    let cache = cache.get_or_insert_with(Default::default);
    if !cache.contains_key(pattern) {
        if cache.len() >= MAX_PATTERNS {
            cache.clear();
        }
        let re = regex::RegexBuilder::new(pattern)
            .size_limit(1 << 20)
            .build()
            .map_err(|e| tracing::debug!(pattern, error = %e, "unsupported pattern"))
            .ok();
        cache.insert(pattern.to_string(), re);
    }
    cache
        .get(pattern)
        .and_then(Option::as_ref)
        .is_some_and(|re| re.is_match(value))
}
