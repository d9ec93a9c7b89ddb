//! The typed API, one module per server domain. Its conventions are the crate's (see
//! "API conventions" in the crate docs).

pub(crate) mod audit;
pub(crate) mod auth;
pub(crate) mod bucket;
pub(crate) mod identity;
pub(crate) mod live;
pub(crate) mod procedures;
pub(crate) mod record;
pub(crate) mod rules;
pub(crate) mod server;
pub(crate) mod store;

use crate::error::{Error, Result};
use noex_proto::ops::Operation;
use serde::Serialize;
use serde_json::Value;

/// Turns a caller's value into JSON.
pub(crate) fn to_json(value: impl Serialize) -> Result<Value> {
    serde_json::to_value(value).map_err(Error::from)
}

/// Turns the value a builder's setter was given into JSON; the error names `what` it was
/// (the builder keeps it, and fails with it when awaited, before anything is sent).
pub(crate) fn argument(what: &str, value: impl Serialize) -> Result<Value> {
    serde_json::to_value(value).map_err(|e| Error::serde(format!("cannot serialise {what}: {e}")))
}

/// Turns a caller's value into a JSON object (for flattened fields).
pub(crate) fn to_object(value: impl Serialize) -> Result<serde_json::Map<String, Value>> {
    match to_json(value)? {
        Value::Object(map) => Ok(map),
        Value::Null => Ok(serde_json::Map::new()),
        other => Err(Error::InvalidArgument(format!(
            "expected a JSON object of fields, got {other}"
        ))),
    }
}

/// Refuses an operation one of whose fields could not be serialised.
pub(crate) fn checked(op: Operation) -> Result<Operation> {
    match op.encode_error() {
        Some(reason) => Err(Error::serde(format!(
            "cannot serialise the {} request: {reason}",
            op.kind().name()
        ))),
        None => Ok(op),
    }
}
