//! The audit log: a ring buffer of entries for operations of the audited tiers, queried
//! newest first (`src/audit/audit-log.ts`). Which operations are audited, and their
//! `details`, is in the operation table ([`crate::ops`]).

use std::collections::VecDeque;

use serde_json::{Map, Value};

use crate::error::{OpError, OpResult};
use crate::json::obj;

const MAX_ENTRIES: usize = 10_000;

/// The resource an entry is about (`extractAuditResource`).
pub(crate) fn resource(req: &Map<String, Value>) -> String {
    for f in ["bucket", "name", "ruleId", "topic", "key", "pattern"] {
        if let Some(Value::String(s)) = req.get(f) {
            return s.clone();
        }
    }
    if let Some(Value::String(s)) = req.get("username") {
        return format!("user:{s}");
    }
    if let Some(Value::String(s)) = req.get("userId") {
        return format!("user:{s}");
    }
    if let Some(Value::String(s)) = req.get("roleId") {
        return format!("role:{s}");
    }
    if let (Some(Value::String(t)), Some(Value::String(n))) =
        (req.get("resourceType"), req.get("resourceName"))
    {
        return format!("{t}:{n}");
    }
    "*".into()
}

/// An absent filter matches everything; a present one must equal the entry's value.
fn wanted(filter: Option<&str>, actual: Option<&str>) -> bool {
    match filter {
        None => true,
        Some(f) => actual == Some(f),
    }
}

/// The log.
#[derive(Debug, Clone)]
pub(crate) struct AuditLog {
    entries: VecDeque<Value>,
    max_entries: usize,
}

impl Default for AuditLog {
    fn default() -> Self {
        AuditLog::new(MAX_ENTRIES)
    }
}

impl AuditLog {
    /// A log keeping the newest `max_entries` entries (at least one).
    pub(crate) fn new(max_entries: usize) -> Self {
        AuditLog {
            entries: VecDeque::new(),
            max_entries: max_entries.max(1),
        }
    }

    pub(crate) fn append(&mut self, entry: Value) {
        if self.entries.len() >= self.max_entries {
            self.entries.pop_front();
        }
        self.entries.push_back(entry);
    }

    /// `audit.query` with the real validation messages.
    pub(crate) fn query(&self, req: &Map<String, Value>) -> OpResult {
        let user = match req.get("userId") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(OpError::validation("Invalid \"userId\": expected string")),
        };
        let operation = match req.get("operation") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                return Err(OpError::validation(
                    "Invalid \"operation\": expected string",
                ))
            }
        };
        let result = match req.get("result") {
            None => None,
            Some(Value::String(s)) if s == "success" || s == "error" => Some(s.clone()),
            Some(_) => {
                return Err(OpError::validation(
                    "Invalid \"result\": expected \"success\" or \"error\"",
                ))
            }
        };
        let from = match req.get("from") {
            None => None,
            Some(Value::Number(n)) => n.as_f64(),
            Some(_) => return Err(OpError::validation("Invalid \"from\": expected number")),
        };
        let to = match req.get("to") {
            None => None,
            Some(Value::Number(n)) => n.as_f64(),
            Some(_) => return Err(OpError::validation("Invalid \"to\": expected number")),
        };
        let limit = match req.get("limit") {
            None => usize::MAX,
            Some(Value::Number(n)) => match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f >= 1.0 => f as usize,
                _ => {
                    return Err(OpError::validation(
                        "Invalid \"limit\": expected positive integer",
                    ))
                }
            },
            Some(_) => {
                return Err(OpError::validation(
                    "Invalid \"limit\": expected positive integer",
                ))
            }
        };
        let entries: Vec<Value> = self
            .entries
            .iter()
            .rev()
            .filter(|e| {
                let ts = e.get("timestamp").and_then(Value::as_f64).unwrap_or(0.0);
                let field = |k: &str| e.get(k).and_then(Value::as_str);
                wanted(user.as_deref(), field("userId"))
                    && wanted(operation.as_deref(), field("operation"))
                    && wanted(result.as_deref(), field("result"))
                    && !from.is_some_and(|f| ts < f)
                    && !to.is_some_and(|t| ts > t)
            })
            .take(limit)
            .cloned()
            .collect();
        Ok(obj([("entries", Value::Array(entries))]))
    }
}
