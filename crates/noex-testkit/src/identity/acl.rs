//! Access control lists and the permission check (`IdentityManager.isAllowed`).

use indexmap::IndexMap;
use serde_json::{Map, Value};

use super::*;
use crate::error::{OpError, OpResult};
use crate::json::obj;

impl Identity {
    // ── ACL and ownership ───────────────────────────────────────

    pub(super) fn require_acl_permission(
        &self,
        caller: &str,
        rtype: &str,
        name: &str,
    ) -> Result<(), OpError> {
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
        let (st, sid, rt, rn) = entry_key(req);
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
        let (st, sid, rt, rn) = entry_key(req);
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

    pub(super) fn subject_name(&self, st: &str, sid: &str) -> String {
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

    /// Whether `user` may run `op` on `resource` (`IdentityManager.isAllowed`).
    ///
    /// `rtype` is the operation's resource type (`bucket`, `topic`, `procedure`) and
    /// `aop` the ACL operation it needs (`read`, `write`, `admin`), both from the
    /// operation table.
    pub(crate) fn is_allowed(
        &self,
        user: &str,
        op: &str,
        rtype: Option<&str>,
        aop: Option<&str>,
        resource: &str,
    ) -> bool {
        let roles = self.role_names(user);
        if roles.iter().any(|r| r == "superadmin") {
            return true;
        }
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

/// An ACL request's subject and resource: `(subjectType, subjectId, resourceType,
/// resourceName)`, empty where missing.
fn entry_key(req: &Map<String, Value>) -> (String, String, String, String) {
    let g = |f: &str| req.get(f).and_then(Value::as_str).unwrap_or("").to_string();
    (
        g("subjectType"),
        g("subjectId"),
        g("resourceType"),
        g("resourceName"),
    )
}
