//! Built-in identity management: users, roles, sessions, ACL and resource ownership
//! (`src/identity/*` of noex-server). Passwords are kept in memory in plain form (this is a
//! test server) and never appear in `Debug` output or answers.

use std::fmt;

use indexmap::IndexMap;
use serde_json::{Map, Value};

use crate::clock::Clock;
use crate::error::OpError;

mod acl;
mod ownership;
mod roles;
mod sessions;
mod users;

pub(crate) const SUPERADMIN: &str = "__superadmin__";
/// `auth.sessionTtl` default: 24 hours.
pub(crate) const DEFAULT_SESSION_TTL_MS: i64 = 24 * 60 * 60 * 1000;
const ACL_OPS: [&str; 3] = ["read", "write", "admin"];

/// A secret string whose `Debug` output is redacted.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(pub(crate) String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, Clone)]
struct User {
    record: Map<String, Value>,
    password: Secret,
}

#[derive(Debug, Clone)]
struct Session {
    user_id: String,
    expires_at: i64,
}

#[derive(Debug, Clone)]
struct Acl {
    subject_type: String,
    subject_id: String,
    resource_type: String,
    resource_name: String,
    operations: Vec<String>,
}

/// Identity state.
#[derive(Clone)]
pub(crate) struct Identity {
    admin_secret: Secret,
    users: IndexMap<String, User>,
    roles: IndexMap<String, Map<String, Value>>,
    /// (userId, roleId) in assignment order.
    user_roles: Vec<(String, String)>,
    sessions: IndexMap<String, Session>,
    acl: Vec<Acl>,
    /// (resourceType, resourceName) → owner user id.
    owners: IndexMap<(String, String), String>,
    /// Lifetime of a new session (`auth.sessionTtl`), ms.
    session_ttl_ms: i64,
    /// The server's clock.
    clock: Clock,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("users", &self.users.len())
            .field("roles", &self.roles.len())
            .field("sessions", &self.sessions.len())
            .finish_non_exhaustive()
    }
}

/// A successful login: the answer and the session to put on the connection.
pub(crate) struct Login {
    pub(crate) answer: Value,
    pub(crate) token: String,
    pub(crate) user_id: String,
    pub(crate) roles: Vec<String>,
    pub(crate) expires_at: i64,
}

fn meta_record(mut m: Map<String, Value>, now: i64) -> Map<String, Value> {
    m.insert("id".into(), uuid::Uuid::new_v4().to_string().into());
    m.insert("_createdAt".into(), now.into());
    m.insert("_updatedAt".into(), now.into());
    m
}

fn strs(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// `matchPattern` of the real server's permissions: `*`, `prefix.*` or exact.
pub(crate) fn wildcard(pattern: &str, value: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    if let Some(prefix) = pattern.strip_suffix('*') {
        if pattern.ends_with(".*") {
            return value.starts_with(prefix);
        }
    }
    pattern == value
}

fn system_roles() -> Vec<(&'static str, &'static str, Value)> {
    use serde_json::json;
    vec![
        (
            "superadmin",
            "Full access to everything including identity management",
            json!([{"allow": "*"}]),
        ),
        (
            "admin",
            "Structural operations, data mutations, and reads",
            json!([
                {"allow": ["store.*", "rules.*", "procedures.*", "server.*", "audit.*"]},
                {"allow": ["identity.createUser", "identity.getUser", "identity.updateUser", "identity.deleteUser", "identity.listUsers"]},
                {"allow": ["identity.enableUser", "identity.disableUser", "identity.resetPassword"]},
                {"allow": ["identity.listRoles", "identity.assignRole", "identity.removeRole", "identity.getUserRoles"]},
                {"allow": ["identity.grant", "identity.revoke", "identity.getAcl"]}
            ]),
        ),
        (
            "writer",
            "Data mutations and reads",
            json!([
                {"allow": ["store.insert", "store.update", "store.delete", "store.clear", "store.transaction"]},
                {"allow": ["store.get", "store.all", "store.where", "store.findOne", "store.count"]},
                {"allow": ["store.first", "store.last", "store.paginate"]},
                {"allow": ["store.sum", "store.avg", "store.min", "store.max"]},
                {"allow": ["store.subscribe", "store.unsubscribe", "store.buckets", "store.stats"]},
                {"allow": ["rules.emit", "rules.setFact", "rules.deleteFact"]},
                {"allow": ["rules.getFact", "rules.queryFacts", "rules.getAllFacts"]},
                {"allow": ["rules.subscribe", "rules.unsubscribe", "rules.stats"]},
                {"allow": ["procedures.call", "procedures.get"]}
            ]),
        ),
        (
            "reader",
            "Read-only access",
            json!([
                {"allow": ["store.get", "store.all", "store.where", "store.findOne", "store.count"]},
                {"allow": ["store.first", "store.last", "store.paginate"]},
                {"allow": ["store.sum", "store.avg", "store.min", "store.max"]},
                {"allow": ["store.subscribe", "store.unsubscribe", "store.buckets", "store.stats"]},
                {"allow": ["rules.getFact", "rules.queryFacts", "rules.getAllFacts"]},
                {"allow": ["rules.subscribe", "rules.unsubscribe", "rules.stats"]},
                {"allow": ["procedures.get"]}
            ]),
        ),
    ]
}

fn user_not_found() -> OpError {
    OpError::not_found("User not found")
}

fn check_password(p: &str) -> Result<(), OpError> {
    if p.chars().count() < 8 {
        return Err(OpError::validation(
            "Password must be at least 8 characters",
        ));
    }
    Ok(())
}

impl Identity {
    /// Identity with the system roles; sessions live `session_ttl_ms`.
    pub(crate) fn new(admin_secret: String, session_ttl_ms: i64, clock: Clock) -> Identity {
        let now = clock.now_ms();
        let mut roles = IndexMap::new();
        for (name, description, permissions) in system_roles() {
            let mut m = Map::new();
            m.insert("name".into(), name.into());
            m.insert("description".into(), description.into());
            m.insert("system".into(), true.into());
            m.insert("permissions".into(), permissions);
            let m = meta_record(m, now);
            let id = m
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            roles.insert(id, m);
        }
        Identity {
            admin_secret: Secret(admin_secret),
            users: IndexMap::new(),
            roles,
            user_roles: Vec::new(),
            sessions: IndexMap::new(),
            acl: Vec::new(),
            owners: IndexMap::new(),
            session_ttl_ms,
            clock,
        }
    }

    fn role_ids_of(&self, user_id: &str) -> Vec<String> {
        if user_id == SUPERADMIN {
            return self
                .roles
                .iter()
                .filter(|(_, r)| r.get("name").and_then(Value::as_str) == Some("superadmin"))
                .map(|(id, _)| id.clone())
                .collect();
        }
        self.user_roles
            .iter()
            .filter(|(u, _)| u == user_id)
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// Role names of a user, in role-definition order.
    pub(crate) fn role_names(&self, user_id: &str) -> Vec<String> {
        if user_id == SUPERADMIN {
            return vec!["superadmin".into()];
        }
        let ids = self.role_ids_of(user_id);
        self.roles
            .iter()
            .filter(|(id, _)| ids.contains(id))
            .filter_map(|(_, r)| r.get("name").and_then(Value::as_str).map(str::to_string))
            .collect()
    }

    fn user_info(u: &User) -> Value {
        Value::Object(u.record.clone())
    }
}
