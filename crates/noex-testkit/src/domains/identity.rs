//! `identity.*`: built-in identity management (login, users, roles, ACL, ownership).
//! Each operation checks its own caller requirements (authenticated, admin, superadmin),
//! as the real server's identity handler does.

use serde_json::Value;

use super::req_str;
use crate::error::{OpError, OpResult};
use crate::identity::{self, Identity, Login};
use crate::json::obj;
use crate::state::{ConnSession, Core, Req};

fn not_configured() -> OpError {
    OpError::unknown("Identity management is not configured")
}

/// Runs before every `identity.*` operation: built-in identity must be configured.
pub(crate) fn guard(c: &mut Core, _r: &Req<'_>) -> Result<(), OpError> {
    if c.identity.is_none() {
        return Err(not_configured());
    }
    Ok(())
}

fn id(c: &mut Core) -> Result<&mut Identity, OpError> {
    c.identity.as_mut().ok_or_else(not_configured)
}

fn require_auth(c: &Core, r: &Req<'_>) -> Result<ConnSession, OpError> {
    c.session(r.conn)
        .cloned()
        .ok_or_else(|| OpError::unauthorized("Authentication required"))
}

fn is_admin(s: &ConnSession) -> bool {
    s.roles.iter().any(|r| r == "admin" || r == "superadmin")
}

fn require_admin(c: &Core, r: &Req<'_>) -> Result<ConnSession, OpError> {
    let s = require_auth(c, r)?;
    if !is_admin(&s) {
        return Err(OpError::forbidden("Admin role required"));
    }
    Ok(s)
}

fn require_super(c: &Core, r: &Req<'_>) -> Result<ConnSession, OpError> {
    let s = require_auth(c, r)?;
    if !s.roles.iter().any(|r| r == "superadmin") {
        return Err(OpError::forbidden("Superadmin role required"));
    }
    Ok(s)
}

/// The connection's session and identity session token after a login or refresh.
fn start_session(c: &mut Core, r: &Req<'_>, l: Login) -> OpResult {
    let s = ConnSession {
        user_id: l.user_id.clone(),
        roles: l.roles.clone(),
        expires_at: Some(l.expires_at),
    };
    if let Some(conn) = c.conns.get_mut(&r.conn) {
        conn.session = Some(s);
        conn.session_token = Some(identity::Secret(l.token.clone()));
    }
    Ok(l.answer)
}

/// The connection's identity session token (`state.sessionToken`).
fn session_token(c: &Core, r: &Req<'_>) -> Option<String> {
    c.conns
        .get(&r.conn)
        .and_then(|conn| conn.session_token.as_ref())
        .map(|t| t.0.clone())
}

// ── sessions ───────────────────────────────────────────────────────

pub(crate) fn login(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    let u = req_str(r.body, "username")?;
    let p = req_str(r.body, "password")?;
    let l = id(c)?.login(&u, &p)?;
    start_session(c, r, l)
}

pub(crate) fn login_with_secret(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    let secret = req_str(r.body, "secret")?;
    let l = id(c)?.login_with_secret(&secret)?;
    start_session(c, r, l)
}

pub(crate) fn logout(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    if let Some(t) = session_token(c, r) {
        id(c)?.logout(&t);
    }
    if let Some(conn) = c.conns.get_mut(&r.conn) {
        conn.session = None;
        conn.session_token = None;
    }
    Ok(obj([("loggedOut", true.into())]))
}

/// `identity.whoami`: the session as it is (`checkAuth` has dropped an expired one).
pub(crate) fn whoami(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    Ok(c.session_info(r.conn))
}

/// `identity.refreshSession`: needs a session token from an identity login and a session
/// (`No active session to refresh`); the stored session must still be valid (`Invalid or
/// expired session`); it is deleted and a new one made.
pub(crate) fn refresh_session(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    let token = session_token(c, r).filter(|_| c.session(r.conn).is_some());
    let Some(token) = token else {
        return Err(OpError::unauthorized("No active session to refresh"));
    };
    let l = id(c)?.refresh(&token)?;
    start_session(c, r, l)
}

// ── users ──────────────────────────────────────────────────────────

pub(crate) fn create_user(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    require_admin(c, r)?;
    req_str(r.body, "username")?;
    req_str(r.body, "password")?;
    id(c)?.create_user(r.body)
}

pub(crate) fn get_user(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    require_admin(c, r)?;
    let user = req_str(r.body, "userId")?;
    id(c)?.get_user(&user)
}

pub(crate) fn update_user(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    let s = require_auth(c, r)?;
    let user = req_str(r.body, "userId")?;
    if s.user_id != user && !is_admin(&s) {
        return Err(OpError::forbidden("Admin role required"));
    }
    id(c)?.update_user(&user, r.body)
}

pub(crate) fn delete_user(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    require_admin(c, r)?;
    let user = req_str(r.body, "userId")?;
    if user == identity::SUPERADMIN {
        return Err(OpError::forbidden("Cannot delete virtual superadmin"));
    }
    id(c)?.delete_user(&user)?;
    Ok(obj([("deleted", true.into())]))
}

pub(crate) fn list_users(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    require_admin(c, r)?;
    Ok(id(c)?.list_users(r.body))
}

pub(crate) fn enable_user(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    require_admin(c, r)?;
    let user = req_str(r.body, "userId")?;
    id(c)?.set_enabled(&user, true)
}

pub(crate) fn disable_user(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    require_admin(c, r)?;
    let user = req_str(r.body, "userId")?;
    if user == identity::SUPERADMIN {
        return Err(OpError::forbidden("Cannot disable virtual superadmin"));
    }
    id(c)?.set_enabled(&user, false)
}

pub(crate) fn change_password(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    let s = require_auth(c, r)?;
    let user = req_str(r.body, "userId")?;
    let current = req_str(r.body, "currentPassword")?;
    let new = req_str(r.body, "newPassword")?;
    if s.user_id != user {
        return Err(OpError::forbidden(
            "Can only change your own password (use resetPassword for other users)",
        ));
    }
    id(c)?.change_password(&user, &current, &new)?;
    Ok(obj([("changed", true.into())]))
}

pub(crate) fn reset_password(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    require_admin(c, r)?;
    let user = req_str(r.body, "userId")?;
    let new = req_str(r.body, "newPassword")?;
    id(c)?.reset_password(&user, &new)?;
    Ok(obj([("reset", true.into())]))
}

// ── roles ──────────────────────────────────────────────────────────

pub(crate) fn create_role(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    require_super(c, r)?;
    req_str(r.body, "name")?;
    id(c)?.create_role(r.body)
}

pub(crate) fn update_role(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    require_super(c, r)?;
    let role = req_str(r.body, "roleId")?;
    id(c)?.update_role(&role, r.body)
}

pub(crate) fn delete_role(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    require_super(c, r)?;
    let role = req_str(r.body, "roleId")?;
    id(c)?.delete_role(&role)?;
    Ok(obj([("deleted", true.into())]))
}

pub(crate) fn list_roles(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    require_admin(c, r)?;
    Ok(id(c)?.list_roles())
}

pub(crate) fn assign_role(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    require_admin(c, r)?;
    let user = req_str(r.body, "userId")?;
    let role = req_str(r.body, "roleName")?;
    id(c)?.assign_role(&user, &role)?;
    Ok(obj([("assigned", true.into())]))
}

pub(crate) fn remove_role(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    require_admin(c, r)?;
    let user = req_str(r.body, "userId")?;
    let role = req_str(r.body, "roleName")?;
    id(c)?.remove_role(&user, &role)?;
    Ok(obj([("removed", true.into())]))
}

pub(crate) fn get_user_roles(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    require_admin(c, r)?;
    let user = req_str(r.body, "userId")?;
    id(c)?.user_roles(&user)
}

// ── ACL and ownership ──────────────────────────────────────────────

fn acl_target(r: &Req<'_>) -> Result<(), OpError> {
    for f in ["subjectType", "subjectId", "resourceType", "resourceName"] {
        req_str(r.body, f)?;
    }
    Ok(())
}

pub(crate) fn grant(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    let s = require_auth(c, r)?;
    acl_target(r)?;
    if !matches!(r.body.get("operations"), Some(Value::Array(_))) {
        return Err(OpError::validation(
            "Missing or invalid \"operations\": expected non-empty array",
        ));
    }
    id(c)?.grant(&s.user_id, r.body)?;
    Ok(obj([("granted", true.into())]))
}

pub(crate) fn revoke(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    let s = require_auth(c, r)?;
    acl_target(r)?;
    id(c)?.revoke(&s.user_id, r.body)?;
    Ok(obj([("revoked", true.into())]))
}

pub(crate) fn get_acl(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    require_auth(c, r)?;
    let rt = req_str(r.body, "resourceType")?;
    let rn = req_str(r.body, "resourceName")?;
    Ok(id(c)?.get_acl(&rt, &rn))
}

pub(crate) fn my_access(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    let s = require_auth(c, r)?;
    id(c)?.my_access(&s.user_id)
}

pub(crate) fn get_owner(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    require_auth(c, r)?;
    let rt = req_str(r.body, "resourceType")?;
    let rn = req_str(r.body, "resourceName")?;
    Ok(id(c)?.get_owner(&rt, &rn))
}

pub(crate) fn transfer_owner(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    let s = require_auth(c, r)?;
    let rt = req_str(r.body, "resourceType")?;
    let rn = req_str(r.body, "resourceName")?;
    let new = req_str(r.body, "newOwnerId")?;
    id(c)?.transfer_owner(&s.user_id, &rt, &rn, &new)?;
    Ok(obj([("transferred", true.into())]))
}
