//! Roles: custom roles and role assignment.

use serde_json::{Map, Value};

use super::*;
use crate::error::{OpError, OpResult};
use crate::json::obj;

impl Identity {
    // ── Roles ───────────────────────────────────────────────────

    pub(super) fn role_by_name(&self, name: &str) -> Option<(String, Map<String, Value>)> {
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
        let m = meta_record(m, self.clock.now_ms());
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
            r.insert("_updatedAt".into(), self.clock.now_ms().into());
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
}
