//! Built-in identity management: users, roles, sessions, ACL and resource ownership
//! (`src/identity/*` of noex-server). Passwords are kept in memory in plain form (this is a
//! test server) and never appear in `Debug` output or answers.

use std::fmt;

use indexmap::IndexMap;
use serde_json::{Map, Value};

use crate::error::{OpError, OpResult};
use crate::json::{now_ms, obj};

pub(crate) const SUPERADMIN: &str = "__superadmin__";
const SESSION_TTL_MS: i64 = 24 * 60 * 60 * 1000;
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

fn meta_record(mut m: Map<String, Value>) -> Map<String, Value> {
    let now = now_ms();
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

fn wildcard(pattern: &str, value: &str) -> bool {
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

/// The ACL operation an operation needs (`OPERATION_TO_ACL`).
fn acl_op(op: &str) -> Option<&'static str> {
    match crate::audit::tier(op)? {
        "read" => Some("read"),
        "write" => Some("write"),
        "admin" if !op.starts_with("identity.") => Some("admin"),
        _ => None,
    }
}

fn resource_type(op: &str) -> Option<&'static str> {
    if op.starts_with("store.") {
        Some("bucket")
    } else if op.starts_with("rules.") {
        Some("topic")
    } else if op.starts_with("procedures.") {
        Some("procedure")
    } else {
        None
    }
}

/// The resource an operation targets, for permission checks (`extractResource`).
pub(crate) fn extract_resource(ty: &str, req: &Map<String, Value>) -> String {
    let s = |f: &str| req.get(f).and_then(Value::as_str).map(str::to_string);
    if ty.starts_with("store.") {
        if ty == "store.subscribe" {
            if let Some(q) = s("query") {
                return q;
            }
        }
        if ty == "store.unsubscribe" {
            if let Some(q) = s("subscriptionId") {
                return q;
            }
        }
        return s("bucket")
            .or_else(|| s("name"))
            .unwrap_or_else(|| "*".into());
    }
    if ty.starts_with("rules.") {
        return s("topic")
            .or_else(|| s("key"))
            .or_else(|| s("pattern"))
            .unwrap_or_else(|| "*".into());
    }
    "*".into()
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
    pub(crate) fn new(admin_secret: String) -> Identity {
        let mut roles = IndexMap::new();
        for (name, description, permissions) in system_roles() {
            let mut m = Map::new();
            m.insert("name".into(), name.into());
            m.insert("description".into(), description.into());
            m.insert("system".into(), true.into());
            m.insert("permissions".into(), permissions);
            let m = meta_record(m);
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

    fn new_session(&mut self, user_id: &str) -> (String, i64) {
        let token = uuid::Uuid::new_v4().to_string();
        let expires_at = now_ms() + SESSION_TTL_MS;
        self.sessions.insert(
            token.clone(),
            Session {
                user_id: user_id.to_string(),
                expires_at,
            },
        );
        (token, expires_at)
    }

    fn login_answer(&self, token: &str, expires_at: i64, user_id: &str) -> Login {
        let roles = self.role_names(user_id);
        let mut user = Map::new();
        user.insert("id".into(), user_id.into());
        if user_id == SUPERADMIN {
            user.insert("username".into(), SUPERADMIN.into());
        } else if let Some(u) = self.users.get(user_id) {
            user.insert(
                "username".into(),
                u.record.get("username").cloned().unwrap_or(Value::Null),
            );
            if let Some(d) = u.record.get("displayName") {
                user.insert("displayName".into(), d.clone());
            }
        }
        user.insert(
            "roles".into(),
            Value::Array(roles.iter().cloned().map(Value::from).collect()),
        );
        Login {
            answer: obj([
                ("token", token.into()),
                ("expiresAt", expires_at.into()),
                ("user", Value::Object(user)),
            ]),
            token: token.to_string(),
            user_id: user_id.to_string(),
            roles,
            expires_at,
        }
    }

    pub(crate) fn login(&mut self, username: &str, password: &str) -> Result<Login, OpError> {
        let found = self
            .users
            .values()
            .find(|u| u.record.get("username").and_then(Value::as_str) == Some(username))
            .cloned();
        let Some(user) = found else {
            return Err(OpError::unauthorized("Invalid credentials"));
        };
        if user.record.get("enabled") == Some(&Value::Bool(false)) {
            return Err(OpError::unauthorized("Account disabled"));
        }
        if user.password.0 != password {
            return Err(OpError::unauthorized("Invalid credentials"));
        }
        let id = user
            .record
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let (token, exp) = self.new_session(&id);
        Ok(self.login_answer(&token, exp, &id))
    }

    pub(crate) fn login_with_secret(&mut self, secret: &str) -> Result<Login, OpError> {
        if secret != self.admin_secret.0 {
            return Err(OpError::unauthorized("Invalid secret"));
        }
        let (token, exp) = self.new_session(SUPERADMIN);
        Ok(self.login_answer(&token, exp, SUPERADMIN))
    }

    pub(crate) fn logout(&mut self, token: &str) {
        self.sessions.shift_remove(token);
    }

    /// Validate a session token (for `auth.login`): `(userId, roles, expiresAt)`.
    pub(crate) fn validate_session(&mut self, token: &str) -> Option<(String, Vec<String>, i64)> {
        let s = self.sessions.get(token)?.clone();
        if s.expires_at < now_ms() {
            self.sessions.shift_remove(token);
            return None;
        }
        Some((s.user_id.clone(), self.role_names(&s.user_id), s.expires_at))
    }

    pub(crate) fn refresh(&mut self, token: &str) -> Result<Login, OpError> {
        let Some((user_id, _, _)) = self.validate_session(token) else {
            return Err(OpError::unauthorized("Invalid or expired session"));
        };
        self.sessions.shift_remove(token);
        if user_id != SUPERADMIN {
            let ok = self
                .users
                .get(&user_id)
                .is_some_and(|u| u.record.get("enabled") != Some(&Value::Bool(false)));
            if !ok {
                return Err(OpError::unauthorized("User not found or disabled"));
            }
        }
        let (t, exp) = self.new_session(&user_id);
        Ok(self.login_answer(&t, exp, &user_id))
    }

    fn delete_user_sessions(&mut self, user_id: &str) {
        self.sessions.retain(|_, s| s.user_id != user_id);
    }

    // ── Users ───────────────────────────────────────────────────

    pub(crate) fn create_user(&mut self, req: &Map<String, Value>) -> OpResult {
        let username = req.get("username").and_then(Value::as_str).unwrap_or("");
        let password = req.get("password").and_then(Value::as_str).unwrap_or("");
        let len = username.chars().count();
        if !(3..=64).contains(&len) {
            return Err(OpError::validation(
                "Username must be between 3 and 64 characters",
            ));
        }
        check_password(password)?;
        if self
            .users
            .values()
            .any(|u| u.record.get("username").and_then(Value::as_str) == Some(username))
        {
            return Err(OpError::already_exists(format!(
                "User \"{username}\" already exists"
            )));
        }
        let mut m = Map::new();
        m.insert("username".into(), username.into());
        m.insert(
            "enabled".into(),
            req.get("enabled")
                .filter(|v| v.is_boolean())
                .cloned()
                .unwrap_or(Value::Bool(true)),
        );
        for f in ["displayName", "email"] {
            if let Some(Value::String(s)) = req.get(f) {
                m.insert(f.into(), s.clone().into());
            }
        }
        if let Some(Value::Object(md)) = req.get("metadata") {
            m.insert("metadata".into(), Value::Object(md.clone()));
        }
        let record = meta_record(m);
        let id = record
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let user = User {
            record,
            password: Secret(password.to_string()),
        };
        let out = Self::user_info(&user);
        self.users.insert(id, user);
        Ok(out)
    }

    pub(crate) fn get_user(&self, id: &str) -> OpResult {
        self.users
            .get(id)
            .map(Self::user_info)
            .ok_or_else(user_not_found)
    }

    fn touch(u: &mut User) {
        u.record.insert("_updatedAt".into(), now_ms().into());
    }

    pub(crate) fn update_user(&mut self, id: &str, req: &Map<String, Value>) -> OpResult {
        let u = self.users.get_mut(id).ok_or_else(user_not_found)?;
        let mut changed = false;
        if let Some(v) = req.get("displayName") {
            u.record.insert(
                "displayName".into(),
                if v.is_string() {
                    v.clone()
                } else {
                    Value::Null
                },
            );
            changed = true;
        }
        if let Some(v) = req.get("email") {
            u.record.insert(
                "email".into(),
                if v.is_string() { v.clone() } else { "".into() },
            );
            changed = true;
        }
        if let Some(v) = req.get("metadata") {
            u.record.insert(
                "metadata".into(),
                if v.is_object() {
                    v.clone()
                } else {
                    Value::Object(Map::new())
                },
            );
            changed = true;
        }
        if changed {
            Self::touch(u);
        }
        Ok(Self::user_info(u))
    }

    pub(crate) fn delete_user(&mut self, id: &str) -> Result<(), OpError> {
        if !self.users.contains_key(id) {
            return Err(user_not_found());
        }
        self.delete_user_sessions(id);
        self.user_roles.retain(|(u, _)| u != id);
        self.acl.retain(|a| a.subject_id != id);
        self.owners.retain(|_, o| o != id);
        self.users.shift_remove(id);
        Ok(())
    }

    pub(crate) fn list_users(&self, req: &Map<String, Value>) -> Value {
        let page = req
            .get("page")
            .and_then(Value::as_f64)
            .unwrap_or(1.0)
            .max(1.0) as usize;
        let size = req
            .get("pageSize")
            .and_then(Value::as_f64)
            .unwrap_or(50.0)
            .clamp(1.0, 200.0) as usize;
        let users: Vec<Value> = self
            .users
            .values()
            .skip((page - 1).saturating_mul(size))
            .take(size)
            .map(Self::user_info)
            .collect();
        obj([
            ("users", Value::Array(users)),
            ("total", self.users.len().into()),
            ("page", page.into()),
            ("pageSize", size.into()),
        ])
    }

    pub(crate) fn set_enabled(&mut self, id: &str, enabled: bool) -> OpResult {
        let u = self.users.get_mut(id).ok_or_else(user_not_found)?;
        u.record.insert("enabled".into(), enabled.into());
        Self::touch(u);
        let out = Self::user_info(u);
        if !enabled {
            self.delete_user_sessions(id);
        }
        Ok(out)
    }

    pub(crate) fn change_password(
        &mut self,
        id: &str,
        current: &str,
        new: &str,
    ) -> Result<(), OpError> {
        check_password(new)?;
        let u = self.users.get_mut(id).ok_or_else(user_not_found)?;
        if u.password.0 != current {
            return Err(OpError::unauthorized("Current password is incorrect"));
        }
        u.password = Secret(new.to_string());
        Self::touch(u);
        self.delete_user_sessions(id);
        Ok(())
    }

    pub(crate) fn reset_password(&mut self, id: &str, new: &str) -> Result<(), OpError> {
        check_password(new)?;
        let u = self.users.get_mut(id).ok_or_else(user_not_found)?;
        u.password = Secret(new.to_string());
        Self::touch(u);
        self.delete_user_sessions(id);
        Ok(())
    }

    // ── Roles ───────────────────────────────────────────────────

    fn role_by_name(&self, name: &str) -> Option<(String, Map<String, Value>)> {
        self.roles
            .iter()
            .find(|(_, r)| r.get("name").and_then(Value::as_str) == Some(name))
            .map(|(id, r)| (id.clone(), r.clone()))
    }

    pub(crate) fn create_role(&mut self, req: &Map<String, Value>) -> OpResult {
        let name = req.get("name").and_then(Value::as_str).unwrap_or("");
        if !(1..=64).contains(&name.chars().count()) {
            return Err(OpError::validation(
                "Role name must be between 1 and 64 characters",
            ));
        }
        if self.role_by_name(name).is_some() {
            return Err(OpError::already_exists(format!(
                "Role \"{name}\" already exists"
            )));
        }
        let mut m = Map::new();
        m.insert("name".into(), name.into());
        m.insert("system".into(), false.into());
        m.insert(
            "permissions".into(),
            req.get("permissions")
                .filter(|p| p.is_array())
                .cloned()
                .unwrap_or(Value::Array(Vec::new())),
        );
        if let Some(Value::String(d)) = req.get("description") {
            m.insert("description".into(), d.clone().into());
        }
        let m = meta_record(m);
        let id = m
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        self.roles.insert(id, m.clone());
        Ok(Value::Object(m))
    }

    pub(crate) fn update_role(&mut self, id: &str, req: &Map<String, Value>) -> OpResult {
        let r = self
            .roles
            .get_mut(id)
            .ok_or_else(|| OpError::not_found("Role not found"))?;
        let mut changed = false;
        if let Some(Value::String(d)) = req.get("description") {
            r.insert("description".into(), d.clone().into());
            changed = true;
        }
        if let Some(p @ Value::Array(_)) = req.get("permissions") {
            r.insert("permissions".into(), p.clone());
            changed = true;
        }
        if changed {
            r.insert("_updatedAt".into(), now_ms().into());
        }
        Ok(Value::Object(r.clone()))
    }

    pub(crate) fn delete_role(&mut self, id: &str) -> Result<(), OpError> {
        let r = self
            .roles
            .get(id)
            .ok_or_else(|| OpError::not_found("Role not found"))?;
        if r.get("system") == Some(&Value::Bool(true)) {
            return Err(OpError::forbidden("Cannot delete system role"));
        }
        self.user_roles.retain(|(_, rid)| rid != id);
        self.roles.shift_remove(id);
        Ok(())
    }

    pub(crate) fn list_roles(&self) -> Value {
        obj([(
            "roles",
            Value::Array(self.roles.values().cloned().map(Value::Object).collect()),
        )])
    }

    pub(crate) fn assign_role(&mut self, user_id: &str, role: &str) -> Result<(), OpError> {
        if user_id != SUPERADMIN && !self.users.contains_key(user_id) {
            return Err(user_not_found());
        }
        let (rid, _) = self
            .role_by_name(role)
            .ok_or_else(|| OpError::not_found(format!("Role \"{role}\" not found")))?;
        if self
            .user_roles
            .iter()
            .any(|(u, r)| u == user_id && *r == rid)
        {
            return Err(OpError::already_exists(format!(
                "User already has role \"{role}\""
            )));
        }
        self.user_roles.push((user_id.to_string(), rid));
        Ok(())
    }

    pub(crate) fn remove_role(&mut self, user_id: &str, role: &str) -> Result<(), OpError> {
        let (rid, _) = self
            .role_by_name(role)
            .ok_or_else(|| OpError::not_found(format!("Role \"{role}\" not found")))?;
        let before = self.user_roles.len();
        self.user_roles
            .retain(|(u, r)| !(u == user_id && *r == rid));
        if before == self.user_roles.len() {
            return Err(OpError::not_found(format!(
                "User does not have role \"{role}\""
            )));
        }
        Ok(())
    }

    pub(crate) fn user_roles(&self, user_id: &str) -> OpResult {
        if user_id != SUPERADMIN && !self.users.contains_key(user_id) {
            return Err(user_not_found());
        }
        let ids = self.role_ids_of(user_id);
        Ok(obj([(
            "roles",
            Value::Array(
                self.roles
                    .iter()
                    .filter(|(id, _)| ids.contains(id))
                    .map(|(_, r)| Value::Object(r.clone()))
                    .collect(),
            ),
        )]))
    }

    // ── ACL and ownership ───────────────────────────────────────

    fn is_owner(&self, user: &str, rtype: &str, name: &str) -> bool {
        self.owners
            .get(&(rtype.to_string(), name.to_string()))
            .is_some_and(|o| o == user)
    }

    fn require_acl_permission(&self, caller: &str, rtype: &str, name: &str) -> Result<(), OpError> {
        let roles = self.role_names(caller);
        if roles.iter().any(|r| r == "superadmin" || r == "admin")
            || self.is_owner(caller, rtype, name)
            || self.acl.iter().any(|a| {
                a.subject_type == "user"
                    && a.subject_id == caller
                    && a.resource_type == rtype
                    && a.resource_name == name
                    && a.operations.iter().any(|o| o == "admin")
            })
        {
            return Ok(());
        }
        Err(OpError::forbidden(
            "Must be the resource owner, admin, or have admin ACL to manage permissions",
        ))
    }

    pub(crate) fn grant(&mut self, caller: &str, req: &Map<String, Value>) -> Result<(), OpError> {
        let g = |f: &str| req.get(f).and_then(Value::as_str).unwrap_or("").to_string();
        let (st, sid, rt, rn) = (
            g("subjectType"),
            g("subjectId"),
            g("resourceType"),
            g("resourceName"),
        );
        let ops = strs(req.get("operations").unwrap_or(&Value::Null));
        if ops.is_empty() {
            return Err(OpError::validation("Operations must be a non-empty array"));
        }
        for op in &ops {
            if !ACL_OPS.contains(&op.as_str()) {
                return Err(OpError::validation(format!(
                    "Invalid ACL operation \"{op}\". Valid operations: read, write, admin"
                )));
            }
        }
        match st.as_str() {
            "user" => {
                if sid != SUPERADMIN && !self.users.contains_key(&sid) {
                    return Err(OpError::not_found("Subject user not found"));
                }
            }
            "role" => {
                if !self.roles.contains_key(&sid) {
                    return Err(OpError::not_found("Subject role not found"));
                }
            }
            _ => {
                return Err(OpError::validation(format!(
                    "Invalid subject type \"{st}\". Must be \"user\" or \"role\""
                )))
            }
        }
        self.require_acl_permission(caller, &rt, &rn)?;
        if let Some(a) = self.acl.iter_mut().find(|a| {
            a.subject_type == st
                && a.subject_id == sid
                && a.resource_type == rt
                && a.resource_name == rn
        }) {
            for op in ops {
                if !a.operations.contains(&op) {
                    a.operations.push(op);
                }
            }
        } else {
            let mut dedup: Vec<String> = Vec::new();
            for op in ops {
                if !dedup.contains(&op) {
                    dedup.push(op);
                }
            }
            self.acl.push(Acl {
                subject_type: st,
                subject_id: sid,
                resource_type: rt,
                resource_name: rn,
                operations: dedup,
            });
        }
        Ok(())
    }

    pub(crate) fn revoke(&mut self, caller: &str, req: &Map<String, Value>) -> Result<(), OpError> {
        let g = |f: &str| req.get(f).and_then(Value::as_str).unwrap_or("").to_string();
        let (st, sid, rt, rn) = (
            g("subjectType"),
            g("subjectId"),
            g("resourceType"),
            g("resourceName"),
        );
        self.require_acl_permission(caller, &rt, &rn)?;
        let Some(idx) = self.acl.iter().position(|a| {
            a.subject_type == st
                && a.subject_id == sid
                && a.resource_type == rt
                && a.resource_name == rn
        }) else {
            return Err(OpError::not_found("ACL entry not found"));
        };
        let ops = req.get("operations").filter(|v| v.is_array()).map(strs);
        match ops {
            Some(ops) if !ops.is_empty() => {
                self.acl[idx].operations.retain(|o| !ops.contains(o));
                if self.acl[idx].operations.is_empty() {
                    self.acl.remove(idx);
                }
            }
            _ => {
                self.acl.remove(idx);
            }
        }
        Ok(())
    }

    fn subject_name(&self, st: &str, sid: &str) -> String {
        if st == "user" {
            if sid == SUPERADMIN {
                return SUPERADMIN.into();
            }
            return self
                .users
                .get(sid)
                .and_then(|u| u.record.get("username").and_then(Value::as_str))
                .unwrap_or(sid)
                .to_string();
        }
        self.roles
            .get(sid)
            .and_then(|r| r.get("name").and_then(Value::as_str))
            .unwrap_or(sid)
            .to_string()
    }

    pub(crate) fn get_acl(&self, rt: &str, rn: &str) -> Value {
        let owner = self.owners.get(&(rt.to_string(), rn.to_string())).cloned();
        let mut entries: Vec<Value> = self
            .acl
            .iter()
            .filter(|a| a.resource_type == rt && a.resource_name == rn)
            .map(|a| {
                obj([
                    ("subjectType", a.subject_type.clone().into()),
                    ("subjectId", a.subject_id.clone().into()),
                    (
                        "subjectName",
                        self.subject_name(&a.subject_type, &a.subject_id).into(),
                    ),
                    (
                        "operations",
                        Value::Array(a.operations.iter().cloned().map(Value::from).collect()),
                    ),
                    (
                        "isOwner",
                        (a.subject_type == "user" && Some(&a.subject_id) == owner.as_ref()).into(),
                    ),
                ])
            })
            .collect();
        if let Some(o) = owner {
            let listed = self.acl.iter().any(|a| {
                a.resource_type == rt
                    && a.resource_name == rn
                    && a.subject_type == "user"
                    && a.subject_id == o
            });
            if !listed {
                entries.insert(
                    0,
                    obj([
                        ("subjectType", "user".into()),
                        ("subjectId", o.clone().into()),
                        ("subjectName", self.subject_name("user", &o).into()),
                        ("operations", Value::Array(Vec::new())),
                        ("isOwner", true.into()),
                    ]),
                );
            }
        }
        obj([("entries", Value::Array(entries))])
    }

    pub(crate) fn my_access(&self, user_id: &str) -> OpResult {
        let username = if user_id == SUPERADMIN {
            SUPERADMIN.to_string()
        } else {
            self.users
                .get(user_id)
                .and_then(|u| u.record.get("username").and_then(Value::as_str))
                .ok_or_else(user_not_found)?
                .to_string()
        };
        let role_ids = self.role_ids_of(user_id);
        let mut map: IndexMap<(String, String), (Vec<String>, bool)> = IndexMap::new();
        let mut add = |rt: &str, rn: &str, ops: &[String], owner: bool| {
            let e = map.entry((rt.to_string(), rn.to_string())).or_default();
            for o in ops {
                if !e.0.contains(o) {
                    e.0.push(o.clone());
                }
            }
            e.1 |= owner;
        };
        for a in self
            .acl
            .iter()
            .filter(|a| a.subject_type == "user" && a.subject_id == user_id)
        {
            add(&a.resource_type, &a.resource_name, &a.operations, false);
        }
        for a in self
            .acl
            .iter()
            .filter(|a| a.subject_type == "role" && role_ids.contains(&a.subject_id))
        {
            add(&a.resource_type, &a.resource_name, &a.operations, false);
        }
        let all: Vec<String> = ACL_OPS.iter().map(|s| s.to_string()).collect();
        for ((rt, rn), o) in &self.owners {
            if o == user_id {
                add(rt, rn, &all, true);
            }
        }
        let resources: Vec<Value> = map
            .into_iter()
            .map(|((rt, rn), (mut ops, owner))| {
                ops.sort();
                obj([
                    ("resourceType", rt.into()),
                    ("resourceName", rn.into()),
                    (
                        "operations",
                        Value::Array(ops.into_iter().map(Value::from).collect()),
                    ),
                    ("isOwner", owner.into()),
                ])
            })
            .collect();
        let roles = self.role_names(user_id);
        Ok(obj([
            (
                "user",
                obj([
                    ("id", user_id.into()),
                    ("username", username.into()),
                    (
                        "roles",
                        Value::Array(roles.into_iter().map(Value::from).collect()),
                    ),
                ]),
            ),
            ("resources", Value::Array(resources)),
        ]))
    }

    pub(crate) fn set_owner(&mut self, user: &str, rt: &str, rn: &str) {
        self.owners
            .insert((rt.to_string(), rn.to_string()), user.to_string());
    }

    pub(crate) fn remove_ownership(&mut self, rt: &str, rn: &str) {
        self.owners.shift_remove(&(rt.to_string(), rn.to_string()));
        self.acl
            .retain(|a| !(a.resource_type == rt && a.resource_name == rn));
    }

    pub(crate) fn get_owner(&self, rt: &str, rn: &str) -> Value {
        match self.owners.get(&(rt.to_string(), rn.to_string())) {
            None => obj([("owner", Value::Null)]),
            Some(o) => obj([(
                "owner",
                obj([
                    ("userId", o.clone().into()),
                    ("username", self.subject_name("user", o).into()),
                    ("resourceType", rt.into()),
                    ("resourceName", rn.into()),
                ]),
            )]),
        }
    }

    pub(crate) fn transfer_owner(
        &mut self,
        caller: &str,
        rt: &str,
        rn: &str,
        new_owner: &str,
    ) -> Result<(), OpError> {
        let key = (rt.to_string(), rn.to_string());
        let Some(current) = self.owners.get(&key).cloned() else {
            return Err(OpError::not_found("Resource has no owner"));
        };
        let superadmin = self.role_names(caller).iter().any(|r| r == "superadmin");
        if !superadmin && current != caller {
            return Err(OpError::forbidden(
                "Only the owner or superadmin can transfer ownership",
            ));
        }
        if new_owner != SUPERADMIN && !self.users.contains_key(new_owner) {
            return Err(OpError::not_found("New owner not found"));
        }
        self.owners.insert(key, new_owner.to_string());
        Ok(())
    }

    /// Whether `user` may run `op` on `resource` (`IdentityManager.isAllowed`).
    pub(crate) fn is_allowed(&self, user: &str, op: &str, resource: &str) -> bool {
        let roles = self.role_names(user);
        if roles.iter().any(|r| r == "superadmin") {
            return true;
        }
        let rtype = resource_type(op);
        let aop = acl_op(op);
        if let (Some(rt), Some(aop)) = (rtype, aop) {
            if resource != "*" {
                let role_ids = self.role_ids_of(user);
                let granted = self.acl.iter().any(|a| {
                    a.resource_type == rt
                        && a.resource_name == resource
                        && a.operations.iter().any(|o| o == aop)
                        && ((a.subject_type == "user" && a.subject_id == user)
                            || (a.subject_type == "role" && role_ids.contains(&a.subject_id)))
                });
                if granted {
                    return true;
                }
            }
        }
        if let Some(rt) = rtype {
            if resource != "*" && self.is_owner(user, rt, resource) {
                return true;
            }
        }
        for rid in self.role_ids_of(user) {
            let Some(role) = self.roles.get(&rid) else {
                continue;
            };
            let perms = role
                .get("permissions")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for p in perms {
                let allow = strs(p.get("allow").unwrap_or(&Value::Null));
                if !allow.iter().any(|a| wildcard(a, op)) {
                    continue;
                }
                if rtype == Some("bucket") {
                    if let Some(b) = p.get("buckets") {
                        if !strs(b).iter().any(|x| x == resource) {
                            continue;
                        }
                    }
                }
                if rtype == Some("topic") {
                    if let Some(t) = p.get("topics") {
                        if !strs(t).iter().any(|x| wildcard(x, resource)) {
                            continue;
                        }
                    }
                }
                return true;
            }
        }
        false
    }
}
