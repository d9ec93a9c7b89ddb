//! The typed API, one module per server domain.

pub mod audit;
pub mod auth;
pub mod bucket;
pub mod identity;
pub mod procedures;
pub mod record;
pub mod rules;
pub mod server;
pub mod store;

use crate::error::Result;
use serde::Serialize;
use serde_json::Value;

/// Turns a caller's value into JSON.
pub(crate) fn to_json(value: &(impl Serialize + ?Sized)) -> Result<Value> {
    Ok(serde_json::to_value(value)?)
}

/// Turns a caller's value into a JSON object (for flattened fields).
pub(crate) fn to_object(
    value: &(impl Serialize + ?Sized),
) -> Result<serde_json::Map<String, Value>> {
    match to_json(value)? {
        Value::Object(map) => Ok(map),
        Value::Null => Ok(serde_json::Map::new()),
        other => Err(crate::Error::InvalidArgument(format!(
            "expected a JSON object of fields, got {other}"
        ))),
    }
}
