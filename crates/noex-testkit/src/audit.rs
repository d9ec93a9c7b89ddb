//! The audit log: a ring buffer of entries for operations of the audited tiers, queried
//! newest first (`src/audit/audit-log.ts`).

use std::collections::VecDeque;

use serde_json::{Map, Value};

use crate::error::{OpError, OpResult};
use crate::json::obj;

const MAX_ENTRIES: usize = 10_000;

/// The tier of an operation (`src/auth/operation-tiers.ts`), `None` for untiered ones.
pub(crate) fn tier(op: &str) -> Option<&'static str> {
    const ADMIN: &[&str] = &[
        "store.defineBucket",
        "store.dropBucket",
        "store.updateBucket",
        "store.getBucketSchema",
        "store.defineQuery",
        "store.undefineQuery",
        "store.listQueries",
        "rules.registerRule",
        "rules.unregisterRule",
        "rules.updateRule",
        "rules.enableRule",
        "rules.disableRule",
        "rules.getRule",
        "rules.getRules",
        "rules.validateRule",
        "procedures.register",
        "procedures.unregister",
        "procedures.update",
        "procedures.list",
        "server.stats",
        "server.connections",
        "audit.query",
        "identity.login",
        "identity.loginWithSecret",
        "identity.logout",
        "identity.createUser",
        "identity.deleteUser",
        "identity.enableUser",
        "identity.disableUser",
        "identity.changePassword",
        "identity.resetPassword",
        "identity.assignRole",
        "identity.removeRole",
        "identity.createRole",
        "identity.deleteRole",
        "identity.grant",
        "identity.revoke",
        "identity.transferOwner",
    ];
    const WRITE: &[&str] = &[
        "store.insert",
        "store.update",
        "store.delete",
        "store.clear",
        "store.transaction",
        "rules.emit",
        "rules.setFact",
        "rules.deleteFact",
        "procedures.call",
    ];
    const READ: &[&str] = &[
        "store.get",
        "store.all",
        "store.where",
        "store.findOne",
        "store.count",
        "store.first",
        "store.last",
        "store.paginate",
        "store.sum",
        "store.avg",
        "store.min",
        "store.max",
        "store.subscribe",
        "store.unsubscribe",
        "store.buckets",
        "store.stats",
        "rules.getFact",
        "rules.queryFacts",
        "rules.getAllFacts",
        "rules.subscribe",
        "rules.unsubscribe",
        "rules.stats",
        "procedures.get",
    ];
    if ADMIN.contains(&op) {
        Some("admin")
    } else if WRITE.contains(&op) {
        Some("write")
    } else if READ.contains(&op) {
        Some("read")
    } else {
        None
    }
}

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

/// Extra details recorded for some identity operations (never passwords).
pub(crate) fn details(ty: &str, req: &Map<String, Value>) -> Option<Value> {
    let pick = |fields: &[&str]| {
        let mut m = Map::new();
        for f in fields {
            if let Some(v) = req.get(*f) {
                m.insert((*f).to_string(), v.clone());
            }
        }
        Some(Value::Object(m))
    };
    match ty {
        "identity.login" | "identity.createUser" => pick(&["username"]),
        "identity.assignRole" | "identity.removeRole" => pick(&["userId", "roleName"]),
        "identity.grant" | "identity.revoke" => pick(&[
            "subjectType",
            "subjectId",
            "resourceType",
            "resourceName",
            "operations",
        ]),
        "identity.transferOwner" => pick(&["resourceType", "resourceName", "newOwnerId"]),
        _ => None,
    }
}

/// An absent filter matches everything; a present one must equal the entry's value.
fn wanted(filter: Option<&str>, actual: Option<&str>) -> bool {
    match filter {
        None => true,
        Some(f) => actual == Some(f),
    }
}

/// The log.
#[derive(Debug, Clone, Default)]
pub(crate) struct AuditLog {
    entries: VecDeque<Value>,
}

impl AuditLog {
    pub(crate) fn should_log(op: &str) -> bool {
        matches!(tier(op), Some("admin" | "write"))
    }

    pub(crate) fn append(&mut self, entry: Value) {
        if self.entries.len() >= MAX_ENTRIES {
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
