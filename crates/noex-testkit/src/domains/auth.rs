//! `auth.*`: token login (static tokens or identity session tokens), logout, whoami.

use serde_json::Value;

use super::req_str;
use crate::config::AuthMode;
use crate::error::{OpError, OpResult};
use crate::json::obj;
use crate::state::{roles_value, ConnSession, Core, Req};

/// Runs before every `auth.*` operation: authentication must be configured.
pub(crate) fn guard(c: &mut Core, _r: &Req<'_>) -> Result<(), OpError> {
    if !c.auth_configured() {
        return Err(OpError::unknown("Authentication is not configured"));
    }
    Ok(())
}

/// `auth.login`: the token validated (a static token's session, or a built-in identity
/// session: `validateSession` deletes an expired one, so it is `Invalid token`), then the
/// expiry checked (`Token has expired`). As on the real server it sets the connection's
/// session but not its identity session token.
pub(crate) fn login(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    let token = req_str(r.body, "token")?;
    let now = c.clock.now_ms();
    let session = match &c.cfg.auth {
        AuthMode::Tokens(list) => list.iter().find(|t| t.token == token).map(|t| ConnSession {
            user_id: t.user_id.clone(),
            roles: t.roles.clone(),
            expires_at: t.expires_at.or_else(|| {
                t.expires_in
                    .map(|d| now.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
            }),
        }),
        AuthMode::Identity { .. } => c
            .identity
            .as_mut()
            .and_then(|i| i.validate_session(&token))
            .map(|(user_id, roles, exp)| ConnSession {
                user_id,
                roles,
                expires_at: Some(exp),
            }),
        AuthMode::None => None,
    };
    let Some(s) = session else {
        return Err(OpError::unauthorized("Invalid token"));
    };
    if s.expires_at.is_some_and(|e| e < now) {
        return Err(OpError::unauthorized("Token has expired"));
    }
    // Login replaces the session, then the blacklist of revoked users is checked.
    if c.is_revoked(&s.user_id) {
        c.set_session(r.conn, None);
        return Err(OpError::new("SESSION_REVOKED", "Session has been revoked"));
    }
    let answer = obj([
        ("userId", s.user_id.clone().into()),
        ("roles", roles_value(&s.roles)),
        ("expiresAt", s.expires_at.map_or(Value::Null, Value::from)),
    ]);
    c.set_session(r.conn, Some(s));
    Ok(answer)
}

pub(crate) fn logout(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    c.set_session(r.conn, None);
    Ok(obj([("loggedOut", true.into())]))
}

pub(crate) fn whoami(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    Ok(c.whoami(r.conn))
}
