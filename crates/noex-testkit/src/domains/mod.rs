//! Operation handlers, one module per domain. Each handler is a plain function
//! `fn(&mut Core, &mut Req) -> OpResult`; the routing table in [`crate::ops`] says which
//! handler runs which operation. Domain guards (`guard`) run before any operation of their
//! domain, known or not, as the real server's `handle*Operation` prologues do.

pub(crate) mod audit;
pub(crate) mod auth;
pub(crate) mod identity;
pub(crate) mod procedures;
pub(crate) mod rules;
pub(crate) mod server;
pub(crate) mod store;

use serde_json::{Map, Value};

use crate::error::OpError;

// ── argument helpers (messages exactly as the real server's) ───────

pub(crate) fn req_str(body: &Map<String, Value>, f: &str) -> Result<String, OpError> {
    match body.get(f) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(OpError::validation(format!(
            "Missing or invalid \"{f}\": expected non-empty string"
        ))),
    }
}

pub(crate) fn req_obj(body: &Map<String, Value>, f: &str) -> Result<Map<String, Value>, OpError> {
    match body.get(f) {
        Some(Value::Object(m)) => Ok(m.clone()),
        _ => Err(OpError::validation(format!(
            "Missing or invalid \"{f}\": expected object"
        ))),
    }
}

pub(crate) fn opt_obj(
    body: &Map<String, Value>,
    f: &str,
) -> Result<Option<Map<String, Value>>, OpError> {
    match body.get(f) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m.clone())),
        Some(_) => Err(OpError::validation(format!(
            "Invalid \"{f}\": expected object"
        ))),
    }
}

pub(crate) fn req_pos_int(body: &Map<String, Value>, f: &str) -> Result<usize, OpError> {
    match body.get(f).and_then(Value::as_f64) {
        Some(x) if x.fract() == 0.0 && x >= 1.0 => {
            Ok(if x > 1e15 { usize::MAX } else { x as usize })
        }
        _ => Err(OpError::validation(format!(
            "Missing or invalid \"{f}\": expected positive integer"
        ))),
    }
}

pub(crate) fn req_key(body: &Map<String, Value>) -> Result<Value, OpError> {
    match body.get("key") {
        None | Some(Value::Null) => Err(OpError::validation(
            "Missing \"key\": expected non-null value",
        )),
        Some(k) => Ok(k.clone()),
    }
}
