//! Handling one text frame: parsing, the auth and permission checks, routing through the
//! operation table, the answer, audit logging, and pushes in the real server's order
//! (rules `event` pushes before the answer, query `subscription` pushes after it).

use serde_json::{Map, Value};

use crate::config::{AuthMode, PermissionDefault, Permissions};
use crate::error::{OpError, OpResult};
use crate::ops::{self, Op};
use crate::protocol::{self, Parsed};
use crate::rules::EventPush;
use crate::state::{Core, Outbound, Req, TextOutcome, MAX_LOGGED_FRAMES};

impl Core {
    /// Handle one text frame of connection `conn`.
    pub(crate) fn on_text(&mut self, conn: u64, raw: &str) -> TextOutcome {
        if let Some(l) = self.logs.get_mut(&conn) {
            if l.frames.len() < MAX_LOGGED_FRAMES {
                l.frames.push(raw.to_string());
            } else {
                l.frames_not_logged += 1;
            }
        }
        let (id, ty, body) = match protocol::parse(raw) {
            Parsed::Pong(ts) => return TextOutcome::Pong(ts),
            Parsed::Failure { code, message } => {
                self.send(
                    conn,
                    Outbound::Text(protocol::error(&Value::from(0), code, message, None)),
                );
                return TextOutcome::Handled;
            }
            Parsed::Request { id, ty, body } => (id, ty, body),
        };
        let op = ops::find(&ty);
        let mut early: Vec<EventPush> = Vec::new();
        let result = {
            let mut req = Req {
                conn,
                ty: &ty,
                body: &body,
                raw,
                early: &mut early,
            };
            self.check_auth(&req)
                .and_then(|()| self.check_rate_limit(conn))
                .and_then(|()| self.route(op, &mut req))
        };
        self.deliver_events(early);
        let frame = match &result {
            Ok(data) => protocol::result(&id, data.clone()),
            Err(e) => {
                let details = e.details.as_ref().filter(|_| self.cfg.expose_error_details);
                protocol::error(&id, e.code, &e.message, details)
            }
        };
        self.send(conn, Outbound::Text(frame));
        if let Some(op) = op {
            self.log_audit(conn, op, &body, &result);
        }
        // A read cannot change a query result; re-running every subscribed query after
        // each one made N subscribes cost O(N²) query runs.
        if !op.is_some_and(|o| o.pure_read) {
            self.refresh_subscriptions();
        }
        TextOutcome::Handled
    }

    fn route(&mut self, op: Option<&'static Op>, req: &mut Req<'_>) -> OpResult {
        let ty = req.ty;
        let Some(domain) = ops::domain(ty) else {
            return Err(OpError::unknown(format!("Unknown operation \"{ty}\"")));
        };
        if let Some(guard) = domain.guard {
            guard(self, req)?;
        }
        match op {
            Some(op) => (op.run)(self, req),
            None => Err(OpError::unknown(format!(
                "Unknown {} operation \"{ty}\"",
                domain.noun
            ))),
        }
    }

    /// `checkRateLimit`: one token per request, keyed by user id or remote address.
    fn check_rate_limit(&mut self, conn: u64) -> Result<(), OpError> {
        if self.rate.is_none() {
            return Ok(());
        }
        let key = match self.conns.get(&conn) {
            Some(c) => match &c.session {
                Some(s) => s.user_id.clone(),
                None => c.ip.to_string(),
            },
            None => return Ok(()),
        };
        let Some(rate) = &mut self.rate else {
            return Ok(());
        };
        match rate.consume(&key, self.clock.now_ms()) {
            Ok(()) => Ok(()),
            Err(retry) => Err(OpError::new(
                "RATE_LIMITED",
                format!("Rate limit exceeded. Retry after {retry}ms"),
            )
            .with_details(crate::json::obj([("retryAfterMs", retry.into())]))),
        }
    }

    fn log_audit(&mut self, conn: u64, op: &Op, body: &Map<String, Value>, result: &OpResult) {
        if self.audit.is_none() || !op.audited(&self.cfg.audit_tiers) {
            return;
        }
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let mut e = Map::new();
        e.insert("timestamp".into(), self.clock.now_ms().into());
        e.insert(
            "userId".into(),
            c.session
                .as_ref()
                .map(|s| Value::from(s.user_id.clone()))
                .unwrap_or(Value::Null),
        );
        e.insert("sessionId".into(), c.name.clone().into());
        e.insert("operation".into(), op.name.into());
        e.insert("resource".into(), crate::audit::resource(body).into());
        match result {
            Ok(_) => {
                e.insert("result".into(), "success".into());
            }
            Err(err) => {
                e.insert("result".into(), "error".into());
                e.insert("error".into(), err.message.clone().into());
            }
        }
        if !op.audit_details.is_empty() {
            let mut d = Map::new();
            for f in op.audit_details {
                if let Some(v) = body.get(*f) {
                    d.insert((*f).to_string(), v.clone());
                }
            }
            e.insert("details".into(), Value::Object(d));
        }
        e.insert("remoteAddress".into(), c.ip.to_string().into());
        if let Some(a) = &mut self.audit {
            a.append(Value::Object(e));
        }
    }

    /// `checkAuth` of the real server.
    fn check_auth(&mut self, req: &Req<'_>) -> Result<(), OpError> {
        let (conn, ty) = (req.conn, req.ty);
        if ty.starts_with("auth.") || ty == "ping" {
            return Ok(());
        }
        if ty == "identity.login" || ty == "identity.loginWithSecret" {
            return Ok(());
        }
        let session = self.session(conn).cloned();
        if self.requires_auth() && session.is_none() {
            return Err(OpError::unauthorized("Authentication required"));
        }
        let Some(s) = session else { return Ok(()) };
        if s.expires_at.is_some_and(|e| e < self.clock.now_ms()) {
            self.set_session(conn, None);
            return Err(OpError::unauthorized("Session expired"));
        }
        if let Some(id) = &self.identity {
            if !ty.starts_with("identity.") {
                let kind = ops::resource(ty);
                let resource = kind.extract(req.body);
                let aop = ops::find(ty).and_then(Op::acl_op);
                if !id.is_allowed(&s.user_id, ty, kind.acl_type(), aop, &resource) {
                    return Err(OpError::forbidden(format!(
                        "No access to {ty} on {resource}"
                    )));
                }
            }
            return Ok(());
        }
        if matches!(self.cfg.auth, AuthMode::None) {
            return Ok(());
        }
        self.check_tier(&s.roles, ty)?;
        if let Some(p) = &self.cfg.permissions {
            let resource = ops::resource(ty).extract(req.body);
            if !permission_allowed(p, &s.roles, ty, &resource) {
                return Err(OpError::forbidden(format!(
                    "No permission for {ty} on {resource}"
                )));
            }
        }
        Ok(())
    }

    /// The static-token tier check (`hasAccessForTier`).
    fn check_tier(&self, roles: &[String], ty: &str) -> Result<(), OpError> {
        if let Some(tier) = ops::tier(ty) {
            let level = |r: &str| match r {
                "reader" => Some(0),
                "writer" => Some(1),
                "admin" => Some(2),
                _ => None,
            };
            let max = roles.iter().filter_map(|r| level(r)).max();
            if max.is_some_and(|m| m < tier.level()) {
                return Err(OpError::forbidden(format!(
                    "Role level insufficient for {ty} (requires {})",
                    tier.as_str()
                )));
            }
        }
        Ok(())
    }
}

/// `isAllowed` of the real server's permissions (`src/auth/permissions.ts`).
fn permission_allowed(p: &Permissions, roles: &[String], op: &str, resource: &str) -> bool {
    if let Some(allowed) = &p.check_roles {
        return roles.iter().any(|r| allowed.contains(r));
    }
    for rule in &p.rules {
        if !roles.contains(&rule.role)
            || !rule.allow.iter().any(|a| crate::identity::wildcard(a, op))
        {
            continue;
        }
        let resource_ok = if let (Some(b), true) = (&rule.buckets, op.starts_with("store.")) {
            b.iter().any(|x| x == resource)
        } else if let (Some(t), true) = (&rule.topics, op.starts_with("rules.")) {
            t.iter().any(|x| crate::identity::wildcard(x, resource))
        } else {
            true
        };
        if resource_ok {
            return true;
        }
    }
    p.default == PermissionDefault::Allow
}
