//! Record filters with the store's semantics (`@hamicek/noex-store` 0.2.0 `filter-matcher`):
//! equality, `$eq $neq $ne $gt $gte $lt $lte $in $nin $contains $startsWith $endsWith
//! $exists $between`, and `$or` / `$and`.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use crate::json::{js_cmp, strict_eq};

/// Whether `value` is an operator object (non-empty, every key starts with `$`).
fn is_operators(value: &Value) -> Option<&Map<String, Value>> {
    match value {
        Value::Object(m) if !m.is_empty() && m.keys().all(|k| k.starts_with('$')) => Some(m),
        _ => None,
    }
}

fn relational(record: Option<&Value>, bound: &Value, ok: fn(Ordering) -> bool) -> bool {
    match record {
        None | Some(Value::Null) => false,
        Some(r) => js_cmp(r, bound).is_some_and(ok),
    }
}

fn includes(list: &Value, v: Option<&Value>) -> bool {
    match list {
        Value::Array(items) => items.iter().any(|i| strict_eq(Some(i), v)),
        _ => false,
    }
}

fn str_op(record: Option<&Value>, arg: &Value, f: fn(&str, &str) -> bool) -> bool {
    match (record, arg) {
        (Some(Value::String(r)), Value::String(a)) => f(r, a),
        _ => false,
    }
}

fn match_field(record: Option<&Value>, filter: &Value) -> bool {
    let Some(ops) = is_operators(filter) else {
        return strict_eq(record, Some(filter));
    };
    for (op, arg) in ops {
        let ok = match op.as_str() {
            "$eq" => strict_eq(record, Some(arg)),
            "$neq" | "$ne" => !strict_eq(record, Some(arg)),
            "$gt" => relational(record, arg, |o| o == Ordering::Greater),
            "$gte" => relational(record, arg, |o| o != Ordering::Less),
            "$lt" => relational(record, arg, |o| o == Ordering::Less),
            "$lte" => relational(record, arg, |o| o != Ordering::Greater),
            "$in" => includes(arg, record),
            "$nin" => !includes(arg, record),
            "$contains" => str_op(record, arg, |r, a| {
                r.to_lowercase().contains(&a.to_lowercase())
            }),
            "$startsWith" => str_op(record, arg, |r, a| r.starts_with(a)),
            "$endsWith" => str_op(record, arg, |r, a| r.ends_with(a)),
            "$exists" => {
                let exists = !matches!(record, None | Some(Value::Null));
                match arg {
                    Value::Bool(b) => *b == exists,
                    _ => false,
                }
            }
            "$between" => match (record, arg.as_array().map(Vec::as_slice)) {
                (Some(r), Some([lo, hi])) if !r.is_null() => {
                    js_cmp(r, lo).is_some_and(|o| o != Ordering::Less)
                        && js_cmp(r, hi).is_some_and(|o| o != Ordering::Greater)
                }
                _ => false,
            },
            // Unknown operators are ignored by the store.
            _ => true,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// Whether `record` satisfies `filter`.
pub(crate) fn matches(record: &Map<String, Value>, filter: &Map<String, Value>) -> bool {
    if let Some(or) = filter.get("$or") {
        let any = match or {
            Value::Array(items) => items.iter().any(|f| match f {
                Value::Object(f) => matches(record, f),
                _ => false,
            }),
            _ => false,
        };
        if !any {
            return false;
        }
    }
    if let Some(and) = filter.get("$and") {
        let all = match and {
            Value::Array(items) => items.iter().all(|f| match f {
                Value::Object(f) => matches(record, f),
                _ => false,
            }),
            _ => false,
        };
        if !all {
            return false;
        }
    }
    filter
        .iter()
        .filter(|(k, _)| k.as_str() != "$or" && k.as_str() != "$and")
        .all(|(field, value)| match_field(record.get(field), value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn operators() {
        let r = m(json!({"age": 30, "name": "Alice", "role": null}));
        assert!(matches(&r, &m(json!({"age": {"$gte": 30}}))));
        assert!(!matches(&r, &m(json!({"age": {"$gt": 30}}))));
        assert!(matches(&r, &m(json!({"age": {"$lt": 31, "$gt": 29}}))));
        assert!(matches(&r, &m(json!({"name": {"$neq": "Bob"}}))));
        assert!(matches(&r, &m(json!({"name": {"$ne": "Bob"}}))));
        assert!(matches(&r, &m(json!({"name": {"$in": ["Alice", "Bob"]}}))));
        assert!(!matches(&r, &m(json!({"name": {"$nin": ["Alice"]}}))));
        assert!(matches(&r, &m(json!({"name": {"$contains": "LIC"}}))));
        assert!(matches(&r, &m(json!({"role": {"$exists": false}}))));
        assert!(matches(&r, &m(json!({"role": null}))));
        assert!(!matches(&r, &m(json!({"missing": null}))));
        assert!(matches(&r, &m(json!({"age": {"$between": [30, 40]}}))));
        assert!(matches(
            &r,
            &m(json!({"$or": [{"age": 1}, {"name": "Alice"}]}))
        ));
        assert!(!matches(
            &r,
            &m(json!({"$and": [{"age": 30}, {"name": "Bob"}]}))
        ));
        assert!(!matches(&r, &m(json!({"age": "30"}))));
    }
}
