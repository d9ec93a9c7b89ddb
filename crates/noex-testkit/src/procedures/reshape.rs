//! The steps that compute a value from an earlier result (noex-server
//! `executeAggregate`, `executeTransform`): `aggregate` (`sum`, `avg`, `min`, `max`,
//! `count` over an array of records) and `transform` (`map`, `filter`, `pick`, `pluck`).
//! A source of the wrong shape is the step's `INTERNAL_ERROR`.

use serde_json::{Map, Value};

use super::scope::Scope;
use crate::error::OpError;
use crate::json::{js_string, num, strict_eq};

/// An `aggregate` step's value: records without a numeric `field` are left out of `sum`,
/// `min` and `max` (0 when none has one) but `avg` divides by every record.
pub(super) fn aggregate(s: &Map<String, Value>, scope: &Scope) -> Result<Value, OpError> {
    let source = s.get("source").and_then(Value::as_str).unwrap_or("");
    let Some(Value::Array(items)) = scope.result(source) else {
        return Err(OpError::internal(format!(
            "aggregate: source \"{source}\" is not an array"
        )));
    };
    let field = s.get("field").and_then(Value::as_str).unwrap_or("");
    let nums: Vec<f64> = items
        .iter()
        .filter_map(|i| i.get(field).and_then(Value::as_f64))
        .collect();
    let op = s.get("op").and_then(Value::as_str).unwrap_or("");
    Ok(match op {
        "count" => items.len().into(),
        "sum" => num(nums.iter().sum()),
        "avg" if items.is_empty() => 0.into(),
        "avg" => num(nums.iter().sum::<f64>() / items.len() as f64),
        "min" => nums.iter().copied().reduce(f64::min).map_or(0.into(), num),
        _ => nums.iter().copied().reduce(f64::max).map_or(0.into(), num),
    })
}

/// A `transform` step's value: `pluck` a field of each record and `pick` fields of an
/// object (both with `args` as given); `filter` records strictly equal on every field of
/// `args`, and `map` each record merged with `args` (both with `args` resolved).
pub(super) fn transform(s: &Map<String, Value>, scope: &Scope) -> Result<Value, OpError> {
    let source_name = s.get("source").and_then(Value::as_str).unwrap_or("");
    let source = scope.result(source_name).cloned();
    let op = s.get("operation").and_then(Value::as_str).unwrap_or("");
    let args = s.get("args").cloned().unwrap_or(Value::Null);
    let not_array = || {
        OpError::internal(format!(
            "transform.{op}: source \"{source_name}\" is not an array"
        ))
    };
    Ok(match op {
        "pluck" => {
            let Some(Value::Array(items)) = source else {
                return Err(not_array());
            };
            let field = js_string(&args);
            Value::Array(
                items
                    .iter()
                    .map(|i| i.get(&field).cloned().unwrap_or(Value::Null))
                    .collect(),
            )
        }
        "pick" => {
            let Some(Value::Object(m)) = source else {
                return Err(OpError::internal(format!(
                    "transform.pick: source \"{source_name}\" is not an object"
                )));
            };
            let mut out = Map::new();
            for f in args.as_array().cloned().unwrap_or_default() {
                let f = js_string(&f);
                if let Some(v) = m.get(&f) {
                    out.insert(f, v.clone());
                }
            }
            Value::Object(out)
        }
        "filter" => {
            let Some(Value::Array(items)) = source else {
                return Err(not_array());
            };
            let f = match scope.resolve(&args) {
                Value::Object(m) => m,
                _ => Map::new(),
            };
            Value::Array(
                items
                    .into_iter()
                    .filter(|i| match i {
                        Value::Object(r) => f.iter().all(|(k, v)| strict_eq(r.get(k), Some(v))),
                        _ => false,
                    })
                    .collect(),
            )
        }
        _ => {
            let Some(Value::Array(items)) = source else {
                return Err(not_array());
            };
            let patch = match scope.resolve(&args) {
                Value::Object(m) => m,
                _ => Map::new(),
            };
            Value::Array(
                items
                    .into_iter()
                    .map(|i| match i {
                        Value::Object(mut r) => {
                            r.extend(patch.clone());
                            Value::Object(r)
                        }
                        other => other,
                    })
                    .collect(),
            )
        }
    })
}
