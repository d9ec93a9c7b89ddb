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
use crate::config::{AuthMode, Config};
use crate::connection_log::ConnectionLog;
use crate::error::{OpError, OpResult, TestkitError};
use crate::identity::{self, Identity};
use crate::json::{now_ms, obj};
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

#[derive(Debug, Clone)]
pub(crate) struct ConnSession {
    pub(crate) user_id: String,
    pub(crate) roles: Vec<String>,
    pub(crate) expires_at: Option<i64>,
    /// Identity session token (built-in identity only).
    pub(crate) token: Option<identity::Secret>,
}

#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) name: String,
    pub(crate) ip: IpAddr,
    pub(crate) connected_at: i64,
    pub(crate) out: UnboundedSender<Outbound>,
    pub(crate) ctl: UnboundedSender<Ctl>,
    pub(crate) session: Option<ConnSession>,
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

fn build_state(cfg: &Config) -> Result<State, TestkitError> {
    let mut store = Store::new();
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
    let rules = cfg.rules.then(Rules::default);
    let audit = cfg.audit.then(|| AuditLog::new(cfg.audit_max_entries));
    let identity = match &cfg.auth {
        AuthMode::Identity { admin_secret } => Some(Identity::new(admin_secret.clone())),
        _ => None,
    };
    Ok((store, rules, Procedures::default(), audit, identity))
}

impl Core {
    pub(crate) fn new(cfg: Config) -> Result<Core, TestkitError> {
        let (store, rules, procedures, audit, identity) = build_state(&cfg)?;
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
            if let Ok((store, rules, procedures, audit, identity)) = build_state(&self.cfg) {
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

    /// Whether any authentication is configured (required or not).
    pub(crate) fn auth_configured(&self) -> bool {
        !matches!(self.cfg.auth, AuthMode::None)
    }

    // ── connections ─────────────────────────────────────────────

    /// Register a new connection; `None` when the per-IP limit is reached.
    pub(crate) fn register(
        &mut self,
        addr: SocketAddr,
        out: UnboundedSender<Outbound>,
        ctl: UnboundedSender<Ctl>,
    ) -> Option<u64> {
        let ip = addr.ip();
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
                connected_at: now_ms(),
                out,
                ctl,
                session: None,
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

    pub(crate) fn send(&self, conn: u64, msg: Outbound) {
        if let Some(c) = self.conns.get(&conn) {
            let _ = c.out.send(msg);
        }
    }

    pub(crate) fn broadcast(&self, make: impl Fn() -> Outbound) {
        for c in self.conns.values() {
            let _ = c.out.send(make());
        }
    }

    pub(crate) fn drop_all(&self) {
        for c in self.conns.values() {
            let _ = c.ctl.send(Ctl::Drop);
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
            r.fire_timers(now_ms(), &mut pushes);
        }
        self.deliver_events(pushes);
    }

    /// Purge expired records of TTL buckets (pushing changed query results); returns how
    /// many were removed.
    pub(crate) fn purge_expired(&mut self) -> usize {
        let n = self.store.purge_expired(now_ms());
        if n > 0 {
            self.refresh_subscriptions();
        }
        n
    }

    pub(crate) fn revoke_all(&self) {
        let mut fields = Map::new();
        fields.insert("reason".into(), "Session revoked by administrator".into());
        let sys = protocol::system("session_revoked", fields);
        for c in self.conns.values() {
            let _ = c.out.send(Outbound::Text(sys.clone()));
            let _ = c.out.send(Outbound::Close(4002, "session_revoked".into()));
        }
    }

    /// `server.revokeSession(userId)`: ban the user from logging in for an hour (the
    /// real `revocation.blacklistTtlMs` default) and close each of their connections
    /// with `system`/`session_revoked` and 4002. Returns how many were closed.
    pub(crate) fn revoke_user(&mut self, user_id: &str) -> usize {
        let now = now_ms();
        self.revoked.retain(|_, until| *until > now);
        self.revoked
            .insert(user_id.to_string(), now.saturating_add(REVOCATION_TTL_MS));
        let mut fields = Map::new();
        fields.insert("reason".into(), "Session revoked by administrator".into());
        let sys = protocol::system("session_revoked", fields);
        let mut n = 0;
        for c in self.conns.values_mut() {
            if c.session.as_ref().is_some_and(|s| s.user_id == user_id) {
                c.session = None;
                let _ = c.out.send(Outbound::Text(sys.clone()));
                let _ = c.out.send(Outbound::Close(4002, "session_revoked".into()));
                n += 1;
            }
        }
        n
    }

    /// Whether `user_id` was revoked less than an hour ago.
    pub(crate) fn is_revoked(&self, user_id: &str) -> bool {
        self.revoked
            .get(user_id)
            .is_some_and(|until| *until > now_ms())
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

    pub(crate) fn whoami(&mut self, conn: u64) -> Value {
        match self.session(conn).cloned() {
            None => obj([("authenticated", false.into())]),
            Some(s) if s.expires_at.is_some_and(|e| e < now_ms()) => {
                self.set_session(conn, None);
                obj([("authenticated", false.into())])
            }
            Some(s) => obj([
                ("authenticated", true.into()),
                ("userId", s.user_id.into()),
                ("roles", roles_value(&s.roles)),
                ("expiresAt", s.expires_at.map_or(Value::Null, Value::from)),
            ]),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::{json, Value};
    use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

    use super::{Core, Outbound};
    use crate::config::{BucketDef, QueryDef, TestServerBuilder};

    /// A connection id the server never registered.
    const NEVER_OPEN: u64 = 1_000_000;

    /// A server without sockets: connections registered by hand, requests fed to
    /// `on_text`, answers read from each connection's queue.
    struct Harness {
        core: Core,
        out: HashMap<u64, UnboundedReceiver<Outbound>>,
        next_id: u64,
    }

    impl Harness {
        fn new(per_conn: usize, total: usize) -> Harness {
            let builder = TestServerBuilder::default()
                .bucket(BucketDef::new("users"))
                .query("all", QueryDef::all("users"))
                .max_subscriptions_per_connection(per_conn)
                .max_total_subscriptions(total);
            Harness {
                core: Core::new(builder.config).expect("core"),
                out: HashMap::new(),
                next_id: 0,
            }
        }

        fn open(&mut self) -> u64 {
            let (out, rx) = unbounded_channel();
            let (ctl, _ctl) = unbounded_channel();
            let conn = self
                .core
                .register(([127, 0, 0, 1], 9).into(), out, ctl)
                .expect("registered");
            self.out.insert(conn, rx);
            conn
        }

        fn close(&mut self, conn: u64) {
            self.core.unregister(conn);
            self.out.remove(&conn);
        }

        /// Send `req` on `conn`; its answer (`None` on a connection that is not open).
        fn ask(&mut self, conn: u64, mut req: Value) -> Option<Value> {
            self.next_id += 1;
            req["id"] = self.next_id.into();
            self.core.on_text(conn, &req.to_string());
            let rx = self.out.get_mut(&conn)?;
            let mut answer = None;
            while let Ok(frame) = rx.try_recv() {
                if let Outbound::Text(t) = frame {
                    let v: Value = serde_json::from_str(&t).expect("json frame");
                    if v["id"] == self.next_id {
                        answer = Some(v);
                    }
                }
            }
            answer
        }

        /// The data of a successful answer.
        fn ok(&mut self, conn: u64, req: Value) -> Value {
            let a = self.ask(conn, req.clone()).expect("an answer");
            assert_eq!(a["type"], "result", "{req} → {a}");
            a["data"].clone()
        }

        /// The message of an error answer.
        fn err(&mut self, conn: u64, req: Value) -> String {
            let a = self.ask(conn, req.clone()).expect("an answer");
            assert_eq!(a["type"], "error", "{req} → {a}");
            a["message"].as_str().unwrap_or_default().to_string()
        }

        /// Subscription id of a new store subscription.
        fn store_sub(&mut self, conn: u64) -> Value {
            self.ok(conn, json!({"type": "store.subscribe", "query": "all"}))["subscriptionId"]
                .clone()
        }

        /// Subscription id of a new rules subscription.
        fn rules_sub(&mut self, conn: u64) -> Value {
            self.ok(conn, json!({"type": "rules.subscribe", "pattern": "a.*"}))["subscriptionId"]
                .clone()
        }

        fn unsub(&mut self, conn: u64, kind: &str, id: &Value) -> Value {
            self.ok(
                conn,
                json!({"type": format!("{kind}.unsubscribe"), "subscriptionId": id}),
            )
        }

        /// `(storeSubscriptionCount, rulesSubscriptionCount)` of each open connection, by
        /// connection id, as `server.connections` reports them.
        fn reported(&mut self, asker: u64) -> Vec<(String, u64, u64)> {
            let list = self.ok(asker, json!({"type": "server.connections"}));
            list.as_array()
                .expect("array")
                .iter()
                .map(|c| {
                    (
                        c["connectionId"].as_str().unwrap_or_default().to_string(),
                        c["storeSubscriptionCount"].as_u64().unwrap_or(u64::MAX),
                        c["rulesSubscriptionCount"].as_u64().unwrap_or(u64::MAX),
                    )
                })
                .collect()
        }
    }

    fn per_conn_message(max: usize) -> String {
        format!("Subscription limit reached (max {max} per connection)")
    }

    #[test]
    fn per_connection_limit_is_reached_exactly_at_max() {
        let mut h = Harness::new(3, 1_000);
        let (a, b) = (h.open(), h.open());
        let a1 = h.store_sub(a);
        let a2 = h.rules_sub(a);
        h.store_sub(a);
        for req in [
            json!({"type": "store.subscribe", "query": "all"}),
            json!({"type": "rules.subscribe", "pattern": "b"}),
        ] {
            assert_eq!(h.err(a, req), per_conn_message(3));
        }
        // Another connection has its own budget, and filling it leaves `a` at its limit.
        let b1 = h.rules_sub(b);
        h.rules_sub(b);
        h.store_sub(b);
        assert_eq!(
            h.err(b, json!({"type": "rules.subscribe", "pattern": "c"})),
            per_conn_message(3)
        );
        // Unsubscribing another connection's subscription, an unknown one, or one of the
        // other kind fails and frees nothing.
        let other = json!({"type": "store.unsubscribe", "subscriptionId": b1});
        h.err(a, other);
        h.err(
            a,
            json!({"type": "store.unsubscribe", "subscriptionId": "sub-999"}),
        );
        h.err(
            a,
            json!({"type": "store.unsubscribe", "subscriptionId": a2}),
        );
        h.err(
            a,
            json!({"type": "rules.unsubscribe", "subscriptionId": a1}),
        );
        assert_eq!(
            h.err(a, json!({"type": "store.subscribe", "query": "all"})),
            per_conn_message(3)
        );
        // One rules unsubscribe frees exactly one place, for either kind.
        h.unsub(a, "rules", &a2);
        h.err(
            a,
            json!({"type": "rules.unsubscribe", "subscriptionId": a2}),
        );
        h.store_sub(a);
        assert_eq!(
            h.err(a, json!({"type": "rules.subscribe", "pattern": "d"})),
            per_conn_message(3)
        );
        // One store unsubscribe, likewise.
        h.unsub(a, "store", &a1);
        let a4 = h.rules_sub(a);
        assert_eq!(
            h.err(a, json!({"type": "store.subscribe", "query": "all"})),
            per_conn_message(3)
        );
        // Closing `b` frees nothing of `a`'s budget; a new connection starts at zero.
        h.close(b);
        assert_eq!(
            h.err(a, json!({"type": "store.subscribe", "query": "all"})),
            per_conn_message(3)
        );
        let c = h.open();
        for _ in 0..3 {
            h.rules_sub(c);
        }
        assert_eq!(
            h.err(c, json!({"type": "store.subscribe", "query": "all"})),
            per_conn_message(3)
        );
        // Freeing two places allows exactly two more.
        h.unsub(a, "rules", &a4);
        let a3_store = h
            .core
            .store
            .subs
            .iter()
            .find(|s| s.conn == a)
            .map(|s| s.id.clone());
        h.unsub(
            a,
            "store",
            &Value::from(a3_store.expect("a store subscription")),
        );
        h.rules_sub(a);
        h.store_sub(a);
        assert_eq!(
            h.err(a, json!({"type": "rules.subscribe", "pattern": "e"})),
            per_conn_message(3)
        );
        assert_eq!(h.core.subscription_count(), 6);
    }

    #[test]
    fn dead_store_subscriptions_still_count_until_unsubscribed() {
        let mut h = Harness::new(2, 1_000);
        let a = h.open();
        h.ok(
            a,
            json!({"type": "store.defineQuery", "name": "q", "config": {"bucket": "users"}}),
        );
        let q = h.ok(a, json!({"type": "store.subscribe", "query": "q"}))["subscriptionId"].clone();
        h.rules_sub(a);
        h.ok(a, json!({"type": "store.undefineQuery", "name": "q"}));
        // The server still holds the dead subscription: the connection is at its limit.
        assert_eq!(
            h.err(a, json!({"type": "rules.subscribe", "pattern": "x"})),
            per_conn_message(2)
        );
        assert_eq!(h.reported(a), [(format!("conn-{a}"), 1, 1)]);
        assert_eq!(h.core.subscription_count(), 2);
        assert_eq!(h.unsub(a, "store", &q), json!({"unsubscribed": true}));
        assert_eq!(h.reported(a), [(format!("conn-{a}"), 0, 1)]);
        h.store_sub(a);
    }

    #[test]
    fn global_limit_counts_only_open_connections() {
        let mut h = Harness::new(100, 4);
        // Subscriptions held for a connection that is not open (requests handled for an
        // id never registered) are not counted server-wide, only against that id's limit.
        h.core.on_text(
            NEVER_OPEN,
            r#"{"id":1,"type":"store.subscribe","query":"all"}"#,
        );
        h.core.on_text(
            NEVER_OPEN,
            r#"{"id":2,"type":"rules.subscribe","pattern":"z"}"#,
        );
        assert_eq!(h.core.store.subs.conn_count(NEVER_OPEN), 1);
        assert_eq!(h.core.subscription_count(), 0);
        let global = "Global subscription limit reached (max 4)";
        let (a, b) = (h.open(), h.open());
        h.store_sub(a);
        let a2 = h.rules_sub(a);
        h.rules_sub(b);
        let b2 = h.store_sub(b);
        assert_eq!(h.core.subscription_count(), 4);
        assert_eq!(
            h.err(a, json!({"type": "store.subscribe", "query": "all"})),
            global
        );
        assert_eq!(
            h.err(b, json!({"type": "rules.subscribe", "pattern": "q"})),
            global
        );
        // The per-connection limit is checked first.
        h.core.cfg.max_subscriptions = 2;
        assert_eq!(
            h.err(a, json!({"type": "rules.subscribe", "pattern": "q"})),
            per_conn_message(2)
        );
        h.core.cfg.max_subscriptions = 100;
        // One unsubscribe frees one place server-wide.
        h.unsub(b, "store", &b2);
        assert_eq!(h.core.subscription_count(), 3);
        let c = h.open();
        h.store_sub(c);
        assert_eq!(
            h.err(c, json!({"type": "store.subscribe", "query": "all"})),
            global
        );
        // A connection closing frees its places.
        h.close(a);
        assert_eq!(h.core.subscription_count(), 2);
        h.err(
            c,
            json!({"type": "rules.unsubscribe", "subscriptionId": a2}),
        );
        h.rules_sub(c);
        h.store_sub(b);
        assert_eq!(
            h.err(b, json!({"type": "store.subscribe", "query": "all"})),
            global
        );
        assert_eq!(h.core.subscription_count(), 4);
        // `server.stats` totals are every subscription held, as before.
        let stats = h.ok(b, json!({"type": "server.stats"}));
        assert_eq!(stats["connections"]["totalStoreSubscriptions"], 3);
        assert_eq!(stats["connections"]["totalRulesSubscriptions"], 3);
    }

    #[test]
    fn server_connections_reports_each_connections_counts() {
        let mut h = Harness::new(100, 1_000);
        let (a, b, c) = (h.open(), h.open(), h.open());
        let name = |id: u64| format!("conn-{id}");
        let a1 = h.store_sub(a);
        let b1 = h.rules_sub(b);
        let a2 = h.rules_sub(a);
        h.store_sub(a);
        h.store_sub(b);
        h.rules_sub(b);
        assert_eq!(
            h.reported(c),
            [(name(a), 2, 1), (name(b), 1, 2), (name(c), 0, 0)]
        );
        h.unsub(a, "store", &a1);
        assert_eq!(
            h.reported(c),
            [(name(a), 1, 1), (name(b), 1, 2), (name(c), 0, 0)]
        );
        h.unsub(a, "rules", &a2);
        h.unsub(b, "rules", &b1);
        assert_eq!(
            h.reported(a),
            [(name(a), 1, 0), (name(b), 1, 1), (name(c), 0, 0)]
        );
        h.close(b);
        assert_eq!(h.reported(c), [(name(a), 1, 0), (name(c), 0, 0)]);
        let d = h.open();
        h.rules_sub(d);
        assert_eq!(
            h.reported(d),
            [(name(a), 1, 0), (name(c), 0, 0), (name(d), 0, 1)]
        );
        // A restart ends every subscription.
        h.core.restart(true);
        assert_eq!(
            h.reported(d),
            [(name(a), 0, 0), (name(c), 0, 0), (name(d), 0, 0)]
        );
        assert_eq!(h.core.subscription_count(), 0);
    }

    /// The counts as the old code computed them: by scanning every subscription.
    fn recount(core: &Core, conn: u64) -> (usize, usize) {
        let store = core.store.subs.iter().filter(|s| s.conn == conn).count();
        let rules = core
            .rules
            .as_ref()
            .map_or(0, |r| r.subs().iter().filter(|s| s.conn == conn).count());
        (store, rules)
    }

    /// Random subscribes, unsubscribes (right and wrong connection, kind and id),
    /// closes, opens and restarts: after each step every count agrees with a scan of the
    /// subscriptions, and the limits answer as the scan says they should.
    #[test]
    fn counts_agree_with_a_scan_after_random_operations() {
        let (per_conn, total) = (4, 9);
        let mut h = Harness::new(per_conn, total);
        let mut open: Vec<u64> = (0..3).map(|_| h.open()).collect();
        let mut closed: Vec<u64> = Vec::new();
        let mut ids: Vec<(&str, Value)> = Vec::new();
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move |n: u64| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            usize::try_from((seed >> 33) % n).unwrap_or(0)
        };
        for step in 0..3_000 {
            let conn = open[next(open.len() as u64)];
            let (store, rules) = recount(&h.core, conn);
            let everyone: usize = open
                .iter()
                .map(|c| {
                    let (s, r) = recount(&h.core, *c);
                    s + r
                })
                .sum();
            let expected = if store + rules >= per_conn {
                Some(per_conn_message(per_conn))
            } else if everyone >= total {
                Some(format!("Global subscription limit reached (max {total})"))
            } else {
                None
            };
            match next(12) {
                0..=5 => {
                    let (kind, req) = if next(2) == 0 {
                        ("store", json!({"type": "store.subscribe", "query": "all"}))
                    } else {
                        (
                            "rules",
                            json!({"type": "rules.subscribe", "pattern": "t.*"}),
                        )
                    };
                    match &expected {
                        Some(message) => assert_eq!(&h.err(conn, req), message, "step {step}"),
                        None => {
                            let id = h.ok(conn, req)["subscriptionId"].clone();
                            ids.push((kind, id));
                        }
                    }
                }
                6..=8 if !ids.is_empty() => {
                    let (kind, id) = ids[next(ids.len() as u64)].clone();
                    let kind = if next(5) == 0 {
                        if kind == "store" {
                            "rules"
                        } else {
                            "store"
                        }
                    } else {
                        kind
                    };
                    let req = json!({"type": format!("{kind}.unsubscribe"), "subscriptionId": id});
                    let _ = h.ask(conn, req);
                }
                9 => {
                    if open.len() > 1 {
                        let i = next(open.len() as u64);
                        let c = open.remove(i);
                        h.close(c);
                        closed.push(c);
                    }
                    open.push(h.open());
                }
                10 if next(30) == 0 => h.core.restart(true),
                _ => {
                    // A request for a connection that is not open (a closed one).
                    if let Some(c) = closed.last() {
                        let req = r#"{"id":0,"type":"rules.subscribe","pattern":"t.*"}"#;
                        h.core.on_text(*c, req);
                    }
                }
            }
            let scanned: usize = open
                .iter()
                .map(|c| {
                    let (s, r) = recount(&h.core, *c);
                    s + r
                })
                .sum();
            assert_eq!(h.core.subscription_count(), scanned, "step {step}");
            let reported = h.reported(open[0]);
            assert_eq!(reported.len(), open.len());
            for (c, (name, s, r)) in open.iter().zip(reported) {
                assert_eq!(name, format!("conn-{c}"));
                let (store, rules) = recount(&h.core, *c);
                assert_eq!(
                    (s, r),
                    (store as u64, rules as u64),
                    "step {step}, conn {c}"
                );
            }
            for c in &closed {
                let (s, r) = recount(&h.core, *c);
                assert_eq!(h.core.store.subs.conn_count(*c), s, "step {step}");
                let rules = h.core.rules.as_ref().map_or(0, |x| x.subs().conn_count(*c));
                assert_eq!(rules, r, "step {step}");
            }
        }
    }
}
