//! Users: create, read, update, delete, enable/disable, passwords.

use serde_json::{Map, Value};

use super::*;
use crate::error::{OpError, OpResult};
use crate::json::obj;

impl Identity {
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
        let record = meta_record(m, self.clock.now_ms());
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

    pub(super) fn touch(u: &mut User, now: i64) {
        u.record.insert("_updatedAt".into(), now.into());
    }

    pub(crate) fn update_user(&mut self, id: &str, req: &Map<String, Value>) -> OpResult {
        let now = self.clock.now_ms();
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
            Self::touch(u, now);
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
        let now = self.clock.now_ms();
        let u = self.users.get_mut(id).ok_or_else(user_not_found)?;
        u.record.insert("enabled".into(), enabled.into());
        Self::touch(u, now);
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
        let now = self.clock.now_ms();
        let u = self.users.get_mut(id).ok_or_else(user_not_found)?;
        if u.password.0 != current {
            return Err(OpError::unauthorized("Current password is incorrect"));
        }
        u.password = Secret(new.to_string());
        Self::touch(u, now);
        self.delete_user_sessions(id);
        Ok(())
    }

    pub(crate) fn reset_password(&mut self, id: &str, new: &str) -> Result<(), OpError> {
        check_password(new)?;
        let now = self.clock.now_ms();
        let u = self.users.get_mut(id).ok_or_else(user_not_found)?;
        u.password = Secret(new.to_string());
        Self::touch(u, now);
        self.delete_user_sessions(id);
        Ok(())
    }
}
