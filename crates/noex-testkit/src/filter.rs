//! Record filters with the store's semantics (`@hamicek/noex-store` 0.2.0
//! `dist/core/filter-matcher.js`): a field's value is an operator object when it is a
//! non-empty object whose every key starts with `$`, else it is compared with `===`.
//! Operators (checked in this order, ANDed): `$eq $neq $gt $gte $lt $lte $in $nin
//! $contains $startsWith $endsWith $exists $between`; any other `$` key is ignored (the
//! field condition passes). Top level: `$or` / `$and` (arrays of filters).
//!
//! JavaScript behaviour kept on purpose: relational operators coerce (`"10" > 5`), a
//! string given to `$in`/`$nin` does substring matching, `$contains` is case-insensitive
//! and for strings only, and malformed operator values raise the same `TypeError`s
//! (`INTERNAL_ERROR`) as the store.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use crate::error::OpError;
use crate::json::{js_string, strict_eq};

/// Stands for JavaScript's `undefined` inside a filter (a `{{params.x}}` placeholder
/// without a value): a field compared with it matches records lacking the field, an
/// operator given it is skipped.
pub(crate) const UNDEFINED: &str = "\u{0}noex-testkit:undefined\u{0}";

fn is_undefined(v: &Value) -> bool {
    v.as_str() == Some(UNDEFINED)
}

/// Whether `value` is an operator object (non-empty, every key starts with `$`).
fn is_operators(value: &Value) -> Option<&Map<String, Value>> {
    match value {
        Value::Object(m) if !m.is_empty() && m.keys().all(|k| k.starts_with('$')) => Some(m),
        _ => None,
    }
}

/// JavaScript `ToPrimitive` for relational comparison: what is left is a string, a
/// number (`f64`) or `undefined` (NaN).
enum Prim {
    Str(String),
    Num(f64),
}

fn to_prim(v: Option<&Value>) -> Prim {
    match v {
        None => Prim::Num(f64::NAN),
        Some(Value::Null) => Prim::Num(0.0),
        Some(Value::Bool(b)) => Prim::Num(if *b { 1.0 } else { 0.0 }),
        Some(Value::Number(n)) => Prim::Num(n.as_f64().unwrap_or(f64::NAN)),
        Some(Value::String(s)) => Prim::Str(s.clone()),
        Some(other) => Prim::Str(js_string(other)),
    }
}

/// JavaScript `ToNumber` of a string.
fn str_to_num(s: &str) -> f64 {
    let t = s.trim();
    if t.is_empty() {
        return 0.0;
    }
    if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        return u64::from_str_radix(hex, 16).map_or(f64::NAN, |n| n as f64);
    }
    match t {
        "Infinity" | "+Infinity" => f64::INFINITY,
        "-Infinity" => f64::NEG_INFINITY,
        _ if t
            .chars()
            .any(|c| c.is_ascii_alphabetic() && c != 'e' && c != 'E') =>
        {
            f64::NAN
        }
        _ => t.parse::<f64>().unwrap_or(f64::NAN),
    }
}

/// JavaScript's abstract relational comparison (`a < b` and friends); `None` when the
/// comparison is false both ways (NaN involved).
pub(crate) fn js_loose_cmp(a: Option<&Value>, b: Option<&Value>) -> Option<Ordering> {
    match (to_prim(a), to_prim(b)) {
        (Prim::Str(x), Prim::Str(y)) => {
            let xs: Vec<u16> = x.encode_utf16().collect();
            let ys: Vec<u16> = y.encode_utf16().collect();
            Some(xs.cmp(&ys))
        }
        (x, y) => {
            let n = |p: Prim| match p {
                Prim::Num(n) => n,
                Prim::Str(s) => str_to_num(&s),
            };
            n(x).partial_cmp(&n(y))
        }
    }
}

/// `value.includes(record)` for `$in`/`$nin`: arrays by strict equality, strings by
/// substring (the record value converted to a string), anything else is a `TypeError`.
fn includes(list: &Value, record: Option<&Value>, op: &str) -> Result<bool, OpError> {
    match list {
        Value::Array(items) => Ok(items.iter().any(|i| strict_eq(Some(i), record))),
        Value::String(s) => {
            let needle = record.map_or_else(|| "undefined".to_string(), js_string);
            Ok(s.contains(needle.as_str()))
        }
        _ => Err(OpError::internal(format!(
            "ops.{op}.includes is not a function"
        ))),
    }
}

fn op<'a>(ops: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    ops.get(name).filter(|v| !is_undefined(v))
}

fn match_field(record: Option<&Value>, filter: &Value) -> Result<bool, OpError> {
    let Some(ops) = is_operators(filter) else {
        if is_undefined(filter) {
            return Ok(record.is_none());
        }
        return Ok(strict_eq(record, Some(filter)));
    };
    let missing = matches!(record, None | Some(Value::Null));
    if let Some(v) = op(ops, "$eq") {
        if !strict_eq(record, Some(v)) {
            return Ok(false);
        }
    }
    if let Some(v) = op(ops, "$neq") {
        if strict_eq(record, Some(v)) {
            return Ok(false);
        }
    }
    type Rel = fn(Ordering) -> bool;
    let rel: [(&str, Rel); 4] = [
        ("$gt", Ordering::is_gt),
        ("$gte", Ordering::is_ge),
        ("$lt", Ordering::is_lt),
        ("$lte", Ordering::is_le),
    ];
    for (name, ok) in rel {
        if let Some(v) = op(ops, name) {
            if missing || !js_loose_cmp(record, Some(v)).is_some_and(ok) {
                return Ok(false);
            }
        }
    }
    if let Some(v) = op(ops, "$in") {
        if !includes(v, record, "$in")? {
            return Ok(false);
        }
    }
    if let Some(v) = op(ops, "$nin") {
        if includes(v, record, "$nin")? {
            return Ok(false);
        }
    }
    if let Some(v) = op(ops, "$contains") {
        let Some(Value::String(r)) = record else {
            return Ok(false);
        };
        let Value::String(needle) = v else {
            return Err(OpError::internal(
                "ops.$contains.toLowerCase is not a function",
            ));
        };
        if !r.to_lowercase().contains(&needle.to_lowercase()) {
            return Ok(false);
        }
    }
    if let Some(v) = op(ops, "$startsWith") {
        let Some(Value::String(r)) = record else {
            return Ok(false);
        };
        if !r.starts_with(js_string(v).as_str()) {
            return Ok(false);
        }
    }
    if let Some(v) = op(ops, "$endsWith") {
        let Some(Value::String(r)) = record else {
            return Ok(false);
        };
        if !r.ends_with(js_string(v).as_str()) {
            return Ok(false);
        }
    }
    if let Some(v) = op(ops, "$exists") {
        if *v != Value::Bool(!missing) {
            return Ok(false);
        }
    }
    if let Some(v) = op(ops, "$between") {
        if missing {
            return Ok(false);
        }
        // `ops.$between[0]`: an array's items, a string's characters, else undefined.
        let bound = |i: usize| -> Option<Value> {
            match v {
                Value::Array(a) => a.get(i).cloned(),
                Value::String(s) => s.chars().nth(i).map(|c| Value::from(c.to_string())),
                _ => None,
            }
        };
        let (lo, hi) = (bound(0), bound(1));
        let ge = js_loose_cmp(record, lo.as_ref()).is_some_and(Ordering::is_ge);
        let le = js_loose_cmp(record, hi.as_ref()).is_some_and(Ordering::is_le);
        if !(ge && le) {
            return Ok(false);
        }
    }
    // Any other `$` key is not an operator the store knows: ignored.
    Ok(true)
}

/// `Object.entries(filter)` of a sub-filter that is not an object.
fn entries_of(v: &Value) -> Result<Map<String, Value>, OpError> {
    match v {
        Value::Object(m) => Ok(m.clone()),
        Value::Null => Err(OpError::internal(
            "Cannot read properties of null (reading '$or')",
        )),
        Value::Array(a) => Ok(a
            .iter()
            .enumerate()
            .map(|(i, x)| (i.to_string(), x.clone()))
            .collect()),
        Value::String(s) => Ok(s
            .chars()
            .enumerate()
            .map(|(i, c)| (i.to_string(), Value::from(c.to_string())))
            .collect()),
        _ => Ok(Map::new()),
    }
}

/// Whether `record` satisfies `filter` (`matchesFilter`); malformed operator values give
/// the store's `INTERNAL_ERROR`s.
pub(crate) fn matches(
    record: &Map<String, Value>,
    filter: &Map<String, Value>,
) -> Result<bool, OpError> {
    if let Some(or) = filter.get("$or").filter(|v| !is_undefined(v)) {
        let Value::Array(items) = or else {
            return Err(OpError::internal("orFilters.some is not a function"));
        };
        let mut any = false;
        for f in items {
            if matches(record, &entries_of(f)?)? {
                any = true;
                break;
            }
        }
        if !any {
            return Ok(false);
        }
    }
    if let Some(and) = filter.get("$and").filter(|v| !is_undefined(v)) {
        let Value::Array(items) = and else {
            return Err(OpError::internal("andFilters.every is not a function"));
        };
        for f in items {
            if !matches(record, &entries_of(f)?)? {
                return Ok(false);
            }
        }
    }
    for (field, value) in filter {
        if field == "$or" || field == "$and" {
            continue;
        }
        if !match_field(record.get(field), value)? {
            return Ok(false);
        }
    }
    Ok(true)
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

    fn ok(r: &Map<String, Value>, f: Value) -> bool {
        matches(r, &m(f)).unwrap_or(false)
    }

    #[test]
    fn operators() {
        let r = m(json!({"age": 30, "name": "Alice", "role": null}));
        assert!(ok(&r, json!({"age": {"$gte": 30}})));
        assert!(!ok(&r, json!({"age": {"$gt": 30}})));
        assert!(ok(&r, json!({"age": {"$lt": 31, "$gt": 29}})));
        assert!(ok(&r, json!({"name": {"$neq": "Bob"}})));
        assert!(ok(&r, json!({"name": {"$in": ["Alice", "Bob"]}})));
        assert!(!ok(&r, json!({"name": {"$nin": ["Alice"]}})));
        assert!(ok(&r, json!({"name": {"$contains": "LIC"}})));
        assert!(ok(&r, json!({"role": {"$exists": false}})));
        assert!(ok(&r, json!({"role": null})));
        assert!(!ok(&r, json!({"missing": null})));
        assert!(ok(&r, json!({"age": {"$between": [30, 40]}})));
        assert!(ok(&r, json!({"$or": [{"age": 1}, {"name": "Alice"}]})));
        assert!(!ok(&r, json!({"$and": [{"age": 30}, {"name": "Bob"}]})));
        assert!(!ok(&r, json!({"age": "30"})));
    }

    #[test]
    fn javascript_quirks() {
        let r = m(json!({"n": 5, "s": "10", "t": "hello", "tags": ["x"]}));
        // Unknown operators are ignored: `$ne` is not an operator of the store.
        assert!(ok(&r, json!({"n": {"$ne": 5}})));
        assert!(ok(&r, json!({"t": {"$regex": "^z"}})));
        // Coercion in relational operators.
        assert!(ok(&r, json!({"s": {"$gt": 5}})));
        // A string `$in` matches substrings.
        assert!(ok(&r, json!({"t": {"$in": "xx hello xx"}})));
        // `$contains` never matches arrays.
        assert!(!ok(&r, json!({"tags": {"$contains": "x"}})));
        // Plain objects and arrays compare by identity.
        assert!(!ok(&r, json!({"tags": ["x"]})));
        assert!(!ok(&r, json!({"n": {}})));
        assert!(!ok(&r, json!({"$not": {"n": 5}})));
        assert_eq!(
            matches(&r, &m(json!({"n": {"$in": 5}})))
                .map_err(|e| e.message)
                .err(),
            Some("ops.$in.includes is not a function".to_string())
        );
        assert!(matches(&r, &m(json!({"$or": {"n": 5}}))).is_err());
        assert!(!ok(&r, json!({"$or": []})));
        assert!(ok(&r, json!({"$and": []})));
        // `undefined` matches a missing field only.
        assert!(ok(&r, json!({"nope": UNDEFINED})));
        assert!(!ok(&r, json!({"n": UNDEFINED})));
    }
}
