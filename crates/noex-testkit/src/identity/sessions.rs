//! Sessions: login, logout, validation and refresh of session tokens.

use serde_json::{Map, Value};

use super::*;
use crate::error::OpError;
use crate::json::obj;

impl Identity {
    pub(super) fn new_session(&mut self, user_id: &str) -> (String, i64) {
        let token = uuid::Uuid::new_v4().to_string();
        let expires_at = self.clock.now_ms().saturating_add(self.session_ttl_ms);
        self.sessions.insert(
            token.clone(),
            Session {
                user_id: user_id.to_string(),
                expires_at,
            },
        );
        (token, expires_at)
    }

    pub(super) fn login_answer(&self, token: &str, expires_at: i64, user_id: &str) -> Login {
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
        if s.expires_at < self.clock.now_ms() {
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

    /// Make every stored session expired at `expired_at` (or earlier, when it already
    /// was): the next validation deletes it.
    pub(crate) fn expire_sessions(&mut self, expired_at: i64) {
        for s in self.sessions.values_mut() {
            s.expires_at = s.expires_at.min(expired_at);
        }
    }

    pub(super) fn delete_user_sessions(&mut self, user_id: &str) {
        self.sessions.retain(|_, s| s.user_id != user_id);
    }
}
