//! The server's state: configuration, data (store, rules, procedures, audit, identity),
//! the connection registry and the frame logs, and delivery of frames to connections.
//!
//! Request handling lives in [`crate::dispatch`] (framing, auth, audit) and
//! [`crate::domains`] (one module per operation domain), routed by [`crate::ops`].

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use indexmap::IndexMap;
use serde_json::{Map, Value};
use tokio::sync::mpsc::UnboundedSender;

use crate::audit::AuditLog;
use crate::clock::Clock;
use crate::config::{AuthMode, Config};
use crate::connection_log::ConnectionLog;
use crate::error::{OpError, OpResult, TestkitError};
use crate::identity::{self, Identity};
use crate::json::obj;
use crate::limits::RateLimiter;
use crate::procedures::Procedures;
use crate::protocol;
use crate::rules::{EventPush, Rules};
use crate::store::Store;

/// Frames kept per connection in the log; later ones are only counted, so a long-running
/// server's memory stays bounded.
pub(crate) const MAX_LOGGED_FRAMES: usize = 100_000;
/// How long a revoked user stays banned (`revocation.blacklistTtlMs` default, 1 h).
const REVOCATION_TTL_MS: i64 = 3_600_000;
/// Connections whose logs are kept (the oldest are forgotten first).
const MAX_LOGGED_CONNECTIONS: usize = 1_000;

/// What a connection task must write.
#[derive(Debug)]
pub(crate) enum Outbound {
    Text(String),
    Binary(Vec<u8>),
    Close(u16, String),
}

/// Out-of-band control of a connection task.
#[derive(Debug)]
pub(crate) enum Ctl {
    /// Drop the socket now, without a close frame.
    Drop,
}

/// What the in-memory server gets for one of its connections, in the order sent.
#[derive(Debug)]
pub(crate) enum MemoryEvent {
    Out(Outbound),
    /// Drop the connection without a close frame.
    Drop,
}

/// Where a connection's frames go.
#[derive(Debug)]
pub(crate) enum Sink {
    /// A socket's task: frames, and out-of-band control.
    Socket {
        out: UnboundedSender<Outbound>,
        ctl: UnboundedSender<Ctl>,
    },
    /// The in-memory server's one queue for all its connections (keeps the order of
    /// frames across connections).
    Memory(UnboundedSender<(u64, MemoryEvent)>),
}

/// A connection's session (`state.session`; `authenticated` is its presence).
#[derive(Debug, Clone)]
pub(crate) struct ConnSession {
    pub(crate) user_id: String,
    pub(crate) roles: Vec<String>,
    pub(crate) expires_at: Option<i64>,
}

#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) name: String,
    pub(crate) ip: IpAddr,
    pub(crate) connected_at: i64,
    pub(crate) sink: Sink,
    pub(crate) session: Option<ConnSession>,
    /// The built-in identity's session token (`state.sessionToken`): set by
    /// `identity.login`, `identity.loginWithSecret` and `identity.refreshSession`,
    /// cleared by `identity.logout` only (`auth.login` leaves it as it is).
    pub(crate) session_token: Option<identity::Secret>,
}

impl Conn {
    /// Queue `msg` for connection `id` (this one).
    fn deliver(&self, id: u64, msg: Outbound) {
        match &self.sink {
            Sink::Socket { out, .. } => {
                let _ = out.send(msg);
            }
            Sink::Memory(tx) => {
                let _ = tx.send((id, MemoryEvent::Out(msg)));
            }
        }
    }

    /// Drop connection `id` (this one) without a close frame.
    fn drop_now(&self, id: u64) {
        match &self.sink {
            Sink::Socket { ctl, .. } => {
                let _ = ctl.send(Ctl::Drop);
            }
            Sink::Memory(tx) => {
                let _ = tx.send((id, MemoryEvent::Drop));
            }
        }
    }
}

/// What the connection task should do after a text frame.
pub(crate) enum TextOutcome {
    /// A pong with its timestamp.
    Pong(f64),
    Handled,
}

/// All server state. Lives behind one mutex; every request is handled under it, so
/// operations are atomic and pushes are ordered consistently across connections.
/// Its `Debug` output is a summary (frame logs and sessions may hold secrets).
pub(crate) struct Core {
    pub(crate) cfg: Config,
    pub(crate) store: Store,
    pub(crate) rules: Option<Rules>,
    pub(crate) procedures: Procedures,
    pub(crate) audit: Option<AuditLog>,
    pub(crate) identity: Option<Identity>,
    pub(crate) conns: IndexMap<u64, Conn>,
    pub(crate) next_sub: u64,
    pub(crate) next_conn: u64,
    pub(crate) logs: IndexMap<u64, ConnectionLog>,
    pub(crate) ip_counts: HashMap<IpAddr, usize>,
    /// Set during a `send_shutdown` grace period: new connections get 1001.
    pub(crate) shutting_down: bool,
    /// Request rate limiter (when configured).
    pub(crate) rate: Option<RateLimiter>,
    /// Users revoked by [`Core::revoke_user`], with the end of their ban (ms).
    pub(crate) revoked: HashMap<String, i64>,
    /// Where time comes from (the engines hold clones of it).
    pub(crate) clock: Clock,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("auth", &self.cfg.auth)
            .field("buckets", &self.store.buckets.len())
            .field("connections", &self.conns.len())
            .field("rules", &self.rules.is_some())
            .field("audit", &self.audit.is_some())
            .finish_non_exhaustive()
    }
}

/// One request being handled: what an operation handler gets besides the state.
#[derive(Debug)]
pub(crate) struct Req<'a> {
    /// The connection that sent it.
    pub(crate) conn: u64,
    /// The operation, e.g. `store.insert`.
    pub(crate) ty: &'a str,
    /// The request object (with `id` and `type`).
    pub(crate) body: &'a Map<String, Value>,
    /// The raw frame (for key order of schemas).
    pub(crate) raw: &'a str,
    /// Rules `event` pushes to send before the answer.
    pub(crate) early: &'a mut Vec<EventPush>,
}

pub(crate) fn roles_value(roles: &[String]) -> Value {
    Value::Array(roles.iter().cloned().map(Value::from).collect())
}

/// Everything that restart may reset.
type State = (
    Store,
    Option<Rules>,
    Procedures,
    Option<AuditLog>,
    Option<Identity>,
);

fn build_state(cfg: &Config, clock: &Clock) -> Result<State, TestkitError> {
    let mut store = Store::new(clock.clone());
    for (name, config, order) in &cfg.buckets {
        store
            .define_bucket(name, config, Some(order))
            .map_err(|e| TestkitError::Config(format!("bucket \"{name}\": {}", e.message)))?;
    }
    for (name, kind) in &cfg.queries {
        store
            .define_query(name, kind.clone())
            .map_err(|e| TestkitError::Config(format!("query \"{name}\": {}", e.message)))?;
    }
    let rules = cfg.rules.then(|| Rules::new(clock.clone()));
    let audit = cfg.audit.then(|| AuditLog::new(cfg.audit_max_entries));
    let identity = match &cfg.auth {
        AuthMode::Identity { admin_secret } => Some(Identity::new(
            admin_secret.clone(),
            cfg.session_ttl_ms,
            clock.clone(),
        )),
        _ => None,
    };
    Ok((store, rules, Procedures::default(), audit, identity))
}

impl Core {
    /// A server state on the OS clock.
    pub(crate) fn new(cfg: Config) -> Result<Core, TestkitError> {
        Core::with_clock(cfg, Clock::system())
    }

    /// A server state reading time from `clock`.
    pub(crate) fn with_clock(cfg: Config, clock: Clock) -> Result<Core, TestkitError> {
        let (store, rules, procedures, audit, identity) = build_state(&cfg, &clock)?;
        let cfg_rate = cfg.rate_limit.map(RateLimiter::new);
        Ok(Core {
            cfg,
            store,
            rules,
            procedures,
            audit,
            identity,
            conns: IndexMap::new(),
            next_sub: 0,
            next_conn: 0,
            logs: IndexMap::new(),
            ip_counts: HashMap::new(),
            shutting_down: false,
            rate: cfg_rate,
            revoked: HashMap::new(),
            clock,
        })
    }

    /// Called on restart: a "new process". Data is rebuilt from the configuration unless
    /// kept; subscription ids start again at `sub-1`.
    pub(crate) fn restart(&mut self, keep_data: bool) {
        self.next_sub = 0;
        self.shutting_down = false;
        // A new process: the rate limiter starts empty.
        self.rate = self.cfg.rate_limit.map(RateLimiter::new);
        self.store.subs.clear();
        if let Some(r) = &mut self.rules {
            r.clear_subs();
        }
        if !keep_data {
            if let Ok((store, rules, procedures, audit, identity)) =
                build_state(&self.cfg, &self.clock)
            {
                self.store = store;
                self.rules = rules;
                self.procedures = procedures;
                self.audit = audit;
                self.identity = identity;
            }
        }
    }

    /// Whether the welcome says `requiresAuth` and unauthenticated requests are refused.
    pub(crate) fn requires_auth(&self) -> bool {
        match self.cfg.auth {
            AuthMode::None => false,
            AuthMode::Tokens(_) => self.cfg.auth_required,
            AuthMode::Identity { .. } => true,
        }
    }

    /// The `welcome` frame for a connection opening now.
    pub(crate) fn welcome(&self) -> String {
        protocol::welcome(self.requires_auth(), self.clock.now_ms())
    }

    /// Whether any authentication is configured (required or not).
    pub(crate) fn auth_configured(&self) -> bool {
        !matches!(self.cfg.auth, AuthMode::None)
    }

    // ── connections ─────────────────────────────────────────────

    /// Register a new socket connection; `None` when the per-IP limit is reached.
    pub(crate) fn register(
        &mut self,
        addr: SocketAddr,
        out: UnboundedSender<Outbound>,
        ctl: UnboundedSender<Ctl>,
    ) -> Option<u64> {
        self.register_sink(addr.ip(), Sink::Socket { out, ctl })
    }

    /// Register a new connection from `ip` whose frames go to `sink`; `None` when the
    /// per-IP limit is reached.
    pub(crate) fn register_sink(&mut self, ip: IpAddr, sink: Sink) -> Option<u64> {
        let count = self.ip_counts.get(&ip).copied().unwrap_or(0);
        if self
            .cfg
            .max_connections_per_ip
            .is_some_and(|max| count >= max)
        {
            return None;
        }
        self.ip_counts.insert(ip, count + 1);
        self.next_conn += 1;
        let id = self.next_conn;
        let name = format!("conn-{id}");
        if self.logs.len() >= MAX_LOGGED_CONNECTIONS {
            self.logs.shift_remove_index(0);
        }
        self.logs.insert(
            id,
            ConnectionLog {
                id: name.clone(),
                frames: Vec::new(),
                frames_not_logged: 0,
            },
        );
        self.conns.insert(
            id,
            Conn {
                name,
                ip,
                connected_at: self.clock.now_ms(),
                sink,
                session: None,
                session_token: None,
            },
        );
        Some(id)
    }

    pub(crate) fn unregister(&mut self, id: u64) {
        if let Some(c) = self.conns.shift_remove(&id) {
            if let Some(n) = self.ip_counts.get_mut(&c.ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.ip_counts.remove(&c.ip);
                }
            }
        }
        self.store.drop_connection(id);
        if let Some(r) = &mut self.rules {
            r.drop_connection(id);
        }
    }

    pub(crate) fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Store query and rules subscriptions of open connections.
    ///
    /// Costs one lookup per connection holding subscriptions, not one per subscription.
    pub(crate) fn subscription_count(&self) -> usize {
        let open = |(conn, n): (u64, usize)| if self.conns.contains_key(&conn) { n } else { 0 };
        let store: usize = self.store.subs.conn_counts().map(open).sum();
        let rules: usize = self
            .rules
            .as_ref()
            .map_or(0, |r| r.subs().conn_counts().map(open).sum());
        store + rules
    }

    /// Store query subscriptions and rules subscriptions of connection `conn`.
    fn conn_subscription_counts(&self, conn: u64) -> (usize, usize) {
        let store = self.store.subs.conn_count(conn);
        let rules = self.rules.as_ref().map_or(0, |r| r.subs().conn_count(conn));
        (store, rules)
    }

    pub(crate) fn logs(&self) -> Vec<ConnectionLog> {
        self.logs.values().cloned().collect()
    }

    /// A number no connection has (nor will get): the in-memory server names a
    /// connection it refused with it.
    pub(crate) fn reserve_conn_id(&mut self) -> u64 {
        self.next_conn += 1;
        self.next_conn
    }

    pub(crate) fn send(&self, conn: u64, msg: Outbound) {
        if let Some(c) = self.conns.get(&conn) {
            c.deliver(conn, msg);
        }
    }

    pub(crate) fn broadcast(&self, make: impl Fn() -> Outbound) {
        for (id, c) in &self.conns {
            c.deliver(*id, make());
        }
    }

    pub(crate) fn drop_all(&self) {
        for (id, c) in &self.conns {
            c.drop_now(*id);
        }
    }

    pub(crate) fn deliver_events(&self, pushes: Vec<EventPush>) {
        for (conn, sub, data) in pushes {
            self.send(conn, Outbound::Text(protocol::push(&sub, "event", data)));
        }
    }

    /// Re-run subscribed queries and push changed results.
    pub(crate) fn refresh_subscriptions(&mut self) {
        for (conn, sub, data) in self.store.refresh() {
            self.send(
                conn,
                Outbound::Text(protocol::push(&sub, "subscription", data)),
            );
        }
    }

    // ── direct access for the handle ────────────────────────────

    pub(crate) fn records(&self, bucket: &str) -> Vec<Value> {
        match self.store.all(bucket) {
            Ok(Value::Array(a)) => a,
            _ => Vec::new(),
        }
    }

    pub(crate) fn insert(&mut self, bucket: &str, data: Value) -> OpResult {
        let data = match data {
            Value::Object(m) => m,
            _ => {
                return Err(OpError::validation(
                    "Missing or invalid \"data\": expected object",
                ))
            }
        };
        let r = self.store.insert(bucket, &data)?;
        self.refresh_subscriptions();
        Ok(r)
    }

    /// Fire the rule engine's due timers (their events are pushed to subscribers).
    pub(crate) fn fire_timers(&mut self) {
        let mut pushes = Vec::new();
        if let Some(r) = self.rules.as_mut().filter(|r| r.has_timers()) {
            r.fire_timers(self.clock.now_ms(), &mut pushes);
        }
        self.deliver_events(pushes);
    }

    /// Purge expired records of TTL buckets (pushing changed query results); returns how
    /// many were removed.
    pub(crate) fn purge_expired(&mut self) -> usize {
        let n = self.store.purge_expired(self.clock.now_ms());
        if n > 0 {
            self.refresh_subscriptions();
        }
        n
    }

    pub(crate) fn revoke_all(&self) {
        let mut fields = Map::new();
        fields.insert("reason".into(), "Session revoked by administrator".into());
        let sys = protocol::system("session_revoked", fields);
        for (id, c) in &self.conns {
            c.deliver(*id, Outbound::Text(sys.clone()));
            c.deliver(*id, Outbound::Close(4002, "session_revoked".into()));
        }
    }

    /// Every session expires now: each connection's (token or identity session) and every
    /// session the built-in identity keeps, so the next request of a logged-in
    /// connection answers `Session expired` and `auth.login` with an identity token
    /// `Invalid token`. Sessions made afterwards are not affected.
    pub(crate) fn expire_sessions(&mut self) {
        let expired = self.clock.now_ms().saturating_sub(1);
        for c in self.conns.values_mut() {
            if let Some(s) = &mut c.session {
                s.expires_at = Some(s.expires_at.map_or(expired, |e| e.min(expired)));
            }
        }
        if let Some(i) = &mut self.identity {
            i.expire_sessions(expired);
        }
    }

    /// `server.revokeSession(userId)`: ban the user from logging in for an hour (the
    /// real `revocation.blacklistTtlMs` default) and close each of their connections
    /// with `system`/`session_revoked` and 4002. Returns how many were closed.
    pub(crate) fn revoke_user(&mut self, user_id: &str) -> usize {
        let now = self.clock.now_ms();
        self.revoked.retain(|_, until| *until > now);
        self.revoked
            .insert(user_id.to_string(), now.saturating_add(REVOCATION_TTL_MS));
        let mut fields = Map::new();
        fields.insert("reason".into(), "Session revoked by administrator".into());
        let sys = protocol::system("session_revoked", fields);
        let mut n = 0;
        for (id, c) in &mut self.conns {
            if c.session.as_ref().is_some_and(|s| s.user_id == user_id) {
                c.session = None;
                c.deliver(*id, Outbound::Text(sys.clone()));
                c.deliver(*id, Outbound::Close(4002, "session_revoked".into()));
                n += 1;
            }
        }
        n
    }

    /// Whether `user_id` was revoked less than an hour ago.
    pub(crate) fn is_revoked(&self, user_id: &str) -> bool {
        self.revoked
            .get(user_id)
            .is_some_and(|until| *until > self.clock.now_ms())
    }

    // ── sessions and helpers for the handlers ───────────────────

    pub(crate) fn session(&self, conn: u64) -> Option<&ConnSession> {
        self.conns.get(&conn).and_then(|c| c.session.as_ref())
    }

    pub(crate) fn set_session(&mut self, conn: u64, s: Option<ConnSession>) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.session = s;
        }
    }

    /// Whether connection `conn` may subscribe once more: first its own limit (its store
    /// and rules subscriptions), then the server-wide one (those of open connections).
    pub(crate) fn check_sub_limit(&self, conn: u64) -> Result<(), OpError> {
        let max = self.cfg.max_subscriptions;
        let (store, rules) = self.conn_subscription_counts(conn);
        if store + rules >= max {
            return Err(OpError::new(
                "RATE_LIMITED",
                // As the real server: no `details` (no `retryAfterMs`) for this limit.
                format!("Subscription limit reached (max {max} per connection)"),
            ));
        }
        let total_max = self.cfg.max_total_subscriptions;
        if self.subscription_count() >= total_max {
            return Err(OpError::new(
                "RATE_LIMITED",
                format!("Global subscription limit reached (max {total_max})"),
            ));
        }
        Ok(())
    }

    pub(crate) fn next_sub_id(&mut self) -> String {
        self.next_sub += 1;
        format!("sub-{}", self.next_sub)
    }

    pub(crate) fn own(&mut self, conn: u64, rtype: &str, name: &str) {
        let user = self.session(conn).map(|s| s.user_id.clone());
        if let (Some(i), Some(u)) = (&mut self.identity, user) {
            i.set_owner(&u, rtype, name);
        }
    }

    /// `server.connections`: each open connection with its subscription counts.
    pub(crate) fn connections_info(&self) -> Vec<Value> {
        self.conns
            .iter()
            .map(|(id, c)| {
                let (store_subs, rules_subs) = self.conn_subscription_counts(*id);
                obj([
                    ("connectionId", c.name.clone().into()),
                    ("remoteAddress", c.ip.to_string().into()),
                    ("connectedAt", c.connected_at.into()),
                    ("authenticated", c.session.is_some().into()),
                    (
                        "userId",
                        c.session
                            .as_ref()
                            .map_or(Value::Null, |s| s.user_id.clone().into()),
                    ),
                    (
                        "roles",
                        c.session
                            .as_ref()
                            .map_or(Value::Array(Vec::new()), |s| roles_value(&s.roles)),
                    ),
                    ("storeSubscriptionCount", store_subs.into()),
                    ("rulesSubscriptionCount", rules_subs.into()),
                ])
            })
            .collect()
    }

    /// `auth.whoami`: an expired session is dropped and reported as none.
    pub(crate) fn whoami(&mut self, conn: u64) -> Value {
        let now = self.clock.now_ms();
        if self
            .session(conn)
            .is_some_and(|s| s.expires_at.is_some_and(|e| e < now))
        {
            self.set_session(conn, None);
        }
        self.session_info(conn)
    }

    /// The connection's session as `auth.whoami` and `identity.whoami` report it (no
    /// expiry check: `identity.whoami` relies on `checkAuth`'s).
    pub(crate) fn session_info(&self, conn: u64) -> Value {
        match self.session(conn) {
            None => obj([("authenticated", false.into())]),
            Some(s) => obj([
                ("authenticated", true.into()),
                ("userId", s.user_id.clone().into()),
                ("roles", roles_value(&s.roles)),
                ("expiresAt", s.expires_at.map_or(Value::Null, Value::from)),
            ]),
        }
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
