//! The server's state and request dispatch: connection registry, auth checks, routing of
//! every operation, audit logging, and delivery of answers and pushes in the right order.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use indexmap::IndexMap;
use serde_json::{Map, Value};
use tokio::sync::mpsc::UnboundedSender;

use crate::audit::AuditLog;
use crate::config::{AuthMode, Config, QueryKind};
use crate::error::{OpError, OpResult, TestkitError};
use crate::identity::{self, Identity};
use crate::json::{now_ms, obj, KeyOrder};
use crate::procedures::{Exec, Procedures};
use crate::protocol::{self, Parsed};
use crate::rules::{EventPush, RuleSub, Rules};
use crate::store::Store;
use crate::ConnectionLog;

/// Frames kept per connection in the log; later ones are only counted, so a long-running
/// server's memory stays bounded.
const MAX_LOGGED_FRAMES: usize = 100_000;
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
struct ConnSession {
    user_id: String,
    roles: Vec<String>,
    expires_at: Option<i64>,
    /// Identity session token (built-in identity only).
    token: Option<identity::Secret>,
}

#[derive(Debug)]
pub(crate) struct Conn {
    name: String,
    ip: IpAddr,
    connected_at: i64,
    out: UnboundedSender<Outbound>,
    ctl: UnboundedSender<Ctl>,
    session: Option<ConnSession>,
}

/// What the connection task should do after a text frame.
pub(crate) enum TextOutcome {
    Pong,
    Handled,
}

/// All server state. Lives behind one mutex; every request is handled under it, so
/// operations are atomic and pushes are ordered consistently across connections.
/// Its `Debug` output is a summary (frame logs and sessions may hold secrets).
pub(crate) struct Core {
    pub(crate) cfg: Config,
    store: Store,
    rules: Option<Rules>,
    procedures: Procedures,
    audit: Option<AuditLog>,
    identity: Option<Identity>,
    conns: IndexMap<u64, Conn>,
    next_sub: u64,
    next_conn: u64,
    logs: IndexMap<u64, ConnectionLog>,
    ip_counts: HashMap<IpAddr, usize>,
    /// Set during a `send_shutdown` grace period: new connections get 1001.
    pub(crate) shutting_down: bool,
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

// ── argument helpers (messages exactly as the real server's) ───────

fn req_str(body: &Map<String, Value>, f: &str) -> Result<String, OpError> {
    match body.get(f) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(OpError::validation(format!(
            "Missing or invalid \"{f}\": expected non-empty string"
        ))),
    }
}

fn req_obj(body: &Map<String, Value>, f: &str) -> Result<Map<String, Value>, OpError> {
    match body.get(f) {
        Some(Value::Object(m)) => Ok(m.clone()),
        _ => Err(OpError::validation(format!(
            "Missing or invalid \"{f}\": expected object"
        ))),
    }
}

fn opt_obj(body: &Map<String, Value>, f: &str) -> Result<Option<Map<String, Value>>, OpError> {
    match body.get(f) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m.clone())),
        Some(_) => Err(OpError::validation(format!(
            "Invalid \"{f}\": expected object"
        ))),
    }
}

fn req_pos_int(body: &Map<String, Value>, f: &str) -> Result<usize, OpError> {
    match body.get(f).and_then(Value::as_f64) {
        Some(x) if x.fract() == 0.0 && x >= 1.0 => {
            Ok(if x > 1e15 { usize::MAX } else { x as usize })
        }
        _ => Err(OpError::validation(format!(
            "Missing or invalid \"{f}\": expected positive integer"
        ))),
    }
}

fn req_key(body: &Map<String, Value>) -> Result<Value, OpError> {
    match body.get("key") {
        None | Some(Value::Null) => Err(OpError::validation(
            "Missing \"key\": expected non-null value",
        )),
        Some(k) => Ok(k.clone()),
    }
}

fn roles_value(roles: &[String]) -> Value {
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
    let audit = cfg.audit.then(AuditLog::default);
    let identity = match &cfg.auth {
        AuthMode::Identity { admin_secret } => Some(Identity::new(admin_secret.clone())),
        _ => None,
    };
    Ok((store, rules, Procedures::default(), audit, identity))
}

impl Core {
    pub(crate) fn new(cfg: Config) -> Result<Core, TestkitError> {
        let (store, rules, procedures, audit, identity) = build_state(&cfg)?;
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
        })
    }

    /// Called on restart: a "new process". Data is rebuilt from the configuration unless
    /// kept; subscription ids start again at `sub-1`.
    pub(crate) fn restart(&mut self, keep_data: bool) {
        self.next_sub = 0;
        self.shutting_down = false;
        self.store.subs.clear();
        if let Some(r) = &mut self.rules {
            r.subs.clear();
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

    pub(crate) fn requires_auth(&self) -> bool {
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
    pub(crate) fn subscription_count(&self) -> usize {
        let open = |conn: &u64| self.conns.contains_key(conn);
        let store = self.store.subs.iter().filter(|s| open(&s.conn)).count();
        let rules = self
            .rules
            .as_ref()
            .map_or(0, |r| r.subs.iter().filter(|s| open(&s.conn)).count());
        store + rules
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

    fn deliver_events(&self, pushes: Vec<EventPush>) {
        for (conn, sub, data) in pushes {
            self.send(conn, Outbound::Text(protocol::push(&sub, "event", data)));
        }
    }

    /// Re-run subscribed queries and push changed results.
    fn refresh_subscriptions(&mut self) {
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

    pub(crate) fn revoke_all(&self) {
        let mut fields = Map::new();
        fields.insert("reason".into(), "Session revoked by administrator".into());
        let sys = protocol::system("session_revoked", fields);
        for c in self.conns.values() {
            let _ = c.out.send(Outbound::Text(sys.clone()));
            let _ = c.out.send(Outbound::Close(4002, "session_revoked".into()));
        }
    }

    // ── frames ──────────────────────────────────────────────────

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
            Parsed::Pong => return TextOutcome::Pong,
            Parsed::Failure { code, message } => {
                self.send(
                    conn,
                    Outbound::Text(protocol::error(&Value::from(0), code, message, None)),
                );
                return TextOutcome::Handled;
            }
            Parsed::Request { id, ty, body } => (id, ty, body),
        };
        let mut early: Vec<EventPush> = Vec::new();
        let result = self
            .check_auth(conn, &ty, &body)
            .and_then(|()| self.route(conn, &ty, &body, raw, &mut early));
        self.deliver_events(early);
        let frame = match &result {
            Ok(data) => protocol::result(&id, data.clone()),
            Err(e) => protocol::error(&id, e.code, &e.message, e.details.as_ref()),
        };
        self.send(conn, Outbound::Text(frame));
        self.log_audit(conn, &ty, &body, &result);
        // A read cannot change a query result; re-running every subscribed query after
        // each one made N subscribes cost O(N²) query runs.
        if !is_pure_read(&ty) {
            self.refresh_subscriptions();
        }
        TextOutcome::Handled
    }

    fn session(&self, conn: u64) -> Option<&ConnSession> {
        self.conns.get(&conn).and_then(|c| c.session.as_ref())
    }

    fn set_session(&mut self, conn: u64, s: Option<ConnSession>) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.session = s;
        }
    }

    fn log_audit(&mut self, conn: u64, ty: &str, body: &Map<String, Value>, result: &OpResult) {
        if self.audit.is_none() || !AuditLog::should_log(ty) {
            return;
        }
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let mut e = Map::new();
        e.insert("timestamp".into(), now_ms().into());
        e.insert(
            "userId".into(),
            c.session
                .as_ref()
                .map(|s| Value::from(s.user_id.clone()))
                .unwrap_or(Value::Null),
        );
        e.insert("sessionId".into(), c.name.clone().into());
        e.insert("operation".into(), ty.into());
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
        if let Some(d) = crate::audit::details(ty, body) {
            e.insert("details".into(), d);
        }
        e.insert("remoteAddress".into(), c.ip.to_string().into());
        if let Some(a) = &mut self.audit {
            a.append(Value::Object(e));
        }
    }

    fn check_auth(
        &mut self,
        conn: u64,
        ty: &str,
        body: &Map<String, Value>,
    ) -> Result<(), OpError> {
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
        if s.expires_at.is_some_and(|e| e < now_ms()) {
            self.set_session(conn, None);
            return Err(OpError::unauthorized("Session expired"));
        }
        if let Some(id) = &self.identity {
            if !ty.starts_with("identity.") {
                let resource = identity::extract_resource(ty, body);
                if !id.is_allowed(&s.user_id, ty, &resource) {
                    return Err(OpError::forbidden(format!(
                        "No access to {ty} on {resource}"
                    )));
                }
            }
            return Ok(());
        }
        if let Some(tier) = crate::audit::tier(ty) {
            let level = |r: &str| match r {
                "reader" => Some(0),
                "writer" => Some(1),
                "admin" => Some(2),
                _ => None,
            };
            let max = s.roles.iter().filter_map(|r| level(r)).max();
            let need = match tier {
                "read" => 0,
                "write" => 1,
                _ => 2,
            };
            if max.is_some_and(|m| m < need) {
                return Err(OpError::forbidden(format!(
                    "Role level insufficient for {ty} (requires {tier})"
                )));
            }
        }
        Ok(())
    }

    fn route(
        &mut self,
        conn: u64,
        ty: &str,
        body: &Map<String, Value>,
        raw: &str,
        early: &mut Vec<EventPush>,
    ) -> OpResult {
        if ty.starts_with("store.") {
            self.store_op(conn, ty, body, raw)
        } else if ty.starts_with("rules.") {
            self.rules_op(conn, ty, body, early)
        } else if ty.starts_with("identity.") {
            self.identity_op(conn, ty, body)
        } else if ty.starts_with("auth.") {
            self.auth_op(conn, ty, body)
        } else if ty.starts_with("audit.") {
            let Some(a) = &self.audit else {
                return Err(OpError::unknown("Audit log is not configured"));
            };
            match ty {
                "audit.query" => a.query(body),
                _ => Err(OpError::unknown(format!(
                    "Unknown audit operation \"{ty}\""
                ))),
            }
        } else if ty.starts_with("procedures.") {
            self.procedures_op(ty, body, early)
        } else if ty.starts_with("server.") {
            self.server_op(ty)
        } else {
            Err(OpError::unknown(format!("Unknown operation \"{ty}\"")))
        }
    }

    fn check_sub_limit(&self, conn: u64) -> Result<(), OpError> {
        let max = self.cfg.max_subscriptions;
        let store = self.store.subs.iter().filter(|s| s.conn == conn).count();
        let rules = self
            .rules
            .as_ref()
            .map_or(0, |r| r.subs.iter().filter(|s| s.conn == conn).count());
        if store + rules >= max {
            return Err(OpError::new(
                "RATE_LIMITED",
                // As the real server: no `details` (no `retryAfterMs`) for this limit.
                format!("Subscription limit reached (max {max} per connection)"),
            ));
        }
        Ok(())
    }

    fn next_sub_id(&mut self) -> String {
        self.next_sub += 1;
        format!("sub-{}", self.next_sub)
    }

    fn store_op(&mut self, conn: u64, ty: &str, body: &Map<String, Value>, raw: &str) -> OpResult {
        let identity_mode = self.identity.is_some();
        if identity_mode {
            for f in ["bucket", "name"] {
                if let Some(Value::String(b)) = body.get(f) {
                    if b.starts_with('_') {
                        return Err(OpError::forbidden(format!(
                            "Cannot access system bucket \"{b}\" directly"
                        )));
                    }
                }
            }
            if ty == "store.transaction" {
                if let Some(Value::Array(ops)) = body.get("operations") {
                    for op in ops {
                        if let Some(Value::String(b)) = op.get("bucket") {
                            if b.starts_with('_') {
                                return Err(OpError::forbidden(format!(
                                    "Cannot access system bucket \"{b}\" in transaction"
                                )));
                            }
                        }
                    }
                }
            }
        }
        let s = &mut self.store;
        match ty {
            "store.insert" => {
                let b = req_str(body, "bucket")?;
                let d = req_obj(body, "data")?;
                s.insert(&b, &d)
            }
            "store.get" => {
                let b = req_str(body, "bucket")?;
                let k = req_key(body)?;
                s.get(&b, &k)
            }
            "store.update" => {
                let b = req_str(body, "bucket")?;
                let k = req_key(body)?;
                let d = req_obj(body, "data")?;
                s.update(&b, &k, &d)
            }
            "store.delete" => {
                let b = req_str(body, "bucket")?;
                let k = req_key(body)?;
                s.delete(&b, &k)?;
                Ok(obj([("deleted", true.into())]))
            }
            "store.all" => s.all(&req_str(body, "bucket")?),
            "store.where" => {
                let b = req_str(body, "bucket")?;
                let f = req_obj(body, "filter")?;
                s.where_(&b, &f)
            }
            "store.findOne" => {
                let b = req_str(body, "bucket")?;
                let f = req_obj(body, "filter")?;
                s.find_one(&b, &f)
            }
            "store.count" => {
                let b = req_str(body, "bucket")?;
                let f = opt_obj(body, "filter")?;
                s.count(&b, f.as_ref())
            }
            "store.first" | "store.last" => {
                let b = req_str(body, "bucket")?;
                let n = req_pos_int(body, "n")?;
                if ty == "store.first" {
                    s.first(&b, n)
                } else {
                    s.last(&b, n)
                }
            }
            "store.paginate" => {
                let b = req_str(body, "bucket")?;
                let limit = req_pos_int(body, "limit")?;
                s.paginate(&b, limit, body.get("after"))
            }
            "store.clear" => {
                s.clear(&req_str(body, "bucket")?)?;
                Ok(obj([("cleared", true.into())]))
            }
            "store.sum" | "store.avg" | "store.min" | "store.max" => {
                let b = req_str(body, "bucket")?;
                let field = req_str(body, "field")?;
                let f = opt_obj(body, "filter")?;
                s.aggregate(&ty[6..], &b, &field, f.as_ref())
            }
            "store.buckets" => Ok(s.buckets_info(identity_mode)),
            "store.stats" => Ok(s.stats()),
            "store.subscribe" => {
                self.check_sub_limit(conn)?;
                let query = req_str(body, "query")?;
                let id = self.next_sub_id();
                let params = body.get("params").filter(|p| !p.is_null()).cloned();
                let data = self.store.subscribe(conn, id.clone(), &query, params)?;
                Ok(obj([("subscriptionId", id.into()), ("data", data)]))
            }
            "store.unsubscribe" => {
                let id = req_str(body, "subscriptionId")?;
                if self.store.unsubscribe(conn, &id) {
                    Ok(obj([("unsubscribed", true.into())]))
                } else {
                    Err(OpError::not_found(format!(
                        "Subscription \"{id}\" not found"
                    )))
                }
            }
            "store.transaction" => self.transaction(body),
            "store.defineBucket" => {
                let name = req_str(body, "name")?;
                let config = req_obj(body, "config")?;
                let order = KeyOrder::parse(raw);
                s.define_bucket(&name, &config, order.at(&["config"]))?;
                self.own(conn, "bucket", &name);
                Ok(obj([("name", name.into()), ("created", true.into())]))
            }
            "store.dropBucket" => {
                let name = req_str(body, "name")?;
                if !s.drop_bucket(&name) {
                    return Err(OpError::new(
                        "BUCKET_NOT_DEFINED",
                        format!("Bucket \"{name}\" does not exist"),
                    ));
                }
                if let Some(i) = &mut self.identity {
                    i.remove_ownership("bucket", &name);
                }
                Ok(obj([("name", name.into()), ("dropped", true.into())]))
            }
            "store.updateBucket" => {
                let name = req_str(body, "name")?;
                let updates = req_obj(body, "updates")?;
                let order = KeyOrder::parse(raw);
                s.update_bucket(&name, &updates, order.at(&["updates"]))?;
                Ok(obj([("name", name.into()), ("updated", true.into())]))
            }
            "store.getBucketSchema" => {
                let name = req_str(body, "name")?;
                let config = s.bucket_schema(&name).ok_or_else(|| {
                    OpError::new(
                        "BUCKET_NOT_DEFINED",
                        format!("Bucket \"{name}\" does not exist"),
                    )
                })?;
                Ok(obj([("name", name.into()), ("config", config)]))
            }
            "store.defineQuery" => {
                let name = req_str(body, "name")?;
                let config = req_obj(body, "config")?;
                s.define_query(&name, QueryKind::Declarative(config))?;
                self.own(conn, "query", &name);
                Ok(obj([("name", name.into()), ("defined", true.into())]))
            }
            "store.undefineQuery" => {
                let name = req_str(body, "name")?;
                if !s.undefine_query(&name) {
                    return Err(OpError::new(
                        "QUERY_NOT_DEFINED",
                        format!("Query \"{name}\" is not defined"),
                    ));
                }
                if let Some(i) = &mut self.identity {
                    i.remove_ownership("query", &name);
                }
                Ok(obj([("name", name.into()), ("undefined", true.into())]))
            }
            "store.listQueries" => Ok(s.list_queries()),
            _ => Err(OpError::unknown(format!(
                "Unknown store operation \"{ty}\""
            ))),
        }
    }

    fn own(&mut self, conn: u64, rtype: &str, name: &str) {
        let user = self.session(conn).map(|s| s.user_id.clone());
        if let (Some(i), Some(u)) = (&mut self.identity, user) {
            i.set_owner(&u, rtype, name);
        }
    }

    fn transaction(&mut self, body: &Map<String, Value>) -> OpResult {
        const OPS: [&str; 7] = [
            "get", "insert", "update", "delete", "where", "findOne", "count",
        ];
        let Some(Value::Array(ops)) = body.get("operations") else {
            return Err(OpError::validation(
                "Missing or invalid \"operations\": expected array",
            ));
        };
        if ops.is_empty() {
            return Err(OpError::validation(
                "\"operations\" must contain at least one operation",
            ));
        }
        let mut parsed = Vec::new();
        for (i, raw) in ops.iter().enumerate() {
            let Value::Object(o) = raw else {
                return Err(OpError::validation(format!(
                    "operations[{i}]: expected object"
                )));
            };
            let op = o.get("op").and_then(Value::as_str).unwrap_or("");
            if !OPS.contains(&op) {
                return Err(OpError::validation(format!(
                    "operations[{i}]: invalid \"op\" \u{2014} expected one of: {}",
                    OPS.join(", ")
                )));
            }
            if !matches!(o.get("bucket"), Some(Value::String(b)) if !b.is_empty()) {
                return Err(OpError::validation(format!(
                    "operations[{i}]: missing or invalid \"bucket\""
                )));
            }
            if matches!(op, "get" | "update" | "delete")
                && matches!(o.get("key"), None | Some(Value::Null))
            {
                return Err(OpError::validation(format!(
                    "operations[{i}]: \"{op}\" requires \"key\""
                )));
            }
            if matches!(op, "insert" | "update") && !matches!(o.get("data"), Some(Value::Object(_)))
            {
                return Err(OpError::validation(format!(
                    "operations[{i}]: \"{op}\" requires \"data\" object"
                )));
            }
            if matches!(op, "where" | "findOne")
                && !matches!(o.get("filter"), Some(Value::Object(_)))
            {
                return Err(OpError::validation(format!(
                    "operations[{i}]: \"{op}\" requires \"filter\" object"
                )));
            }
            parsed.push(o.clone());
        }
        let backup = self.store.buckets.clone();
        let mut results = Vec::new();
        for (i, o) in parsed.iter().enumerate() {
            let op = o.get("op").and_then(Value::as_str).unwrap_or("");
            let b = o.get("bucket").and_then(Value::as_str).unwrap_or("");
            let key = o.get("key").cloned().unwrap_or(Value::Null);
            let data = o
                .get("data")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            let filter = o.get("filter").and_then(Value::as_object).cloned();
            let s = &mut self.store;
            let r = match op {
                "get" => s.get(b, &key),
                "insert" => {
                    let kf = s.bucket(b).map(|bk| bk.key.clone());
                    match kf {
                        Ok(kf) => match data.get(&kf) {
                            Some(k) if s.get(b, k).is_ok_and(|v| !v.is_null()) => Err(OpError::new(
                                "CONFLICT",
                                format!(
                                    "Transaction conflict in bucket \"{b}\" for key \"{}\": Record with key \"{}\" already exists",
                                    crate::json::js_string(k),
                                    crate::json::js_string(k)
                                ),
                            )
                            .with_details(obj([("bucket", b.into()), ("key", k.clone())]))),
                            _ => s.insert(b, &data),
                        },
                        Err(e) => Err(e),
                    }
                }
                "update" => s.update(b, &key, &data),
                "delete" => s.delete(b, &key).map(|_| obj([("deleted", true.into())])),
                "where" => s.where_(b, &filter.unwrap_or_default()),
                "findOne" => s.find_one(b, &filter.unwrap_or_default()),
                _ => s.count(b, filter.as_ref()),
            };
            match r {
                Ok(data) => results.push(obj([("index", i.into()), ("data", data)])),
                Err(e) => {
                    self.store.buckets = backup;
                    return Err(e);
                }
            }
        }
        Ok(obj([("results", Value::Array(results))]))
    }

    fn rules_op(
        &mut self,
        conn: u64,
        ty: &str,
        body: &Map<String, Value>,
        early: &mut Vec<EventPush>,
    ) -> OpResult {
        if self.rules.is_none() {
            return Err(OpError::new(
                "RULES_NOT_AVAILABLE",
                "Rule engine is not configured",
            ));
        }
        if ty == "rules.subscribe" {
            self.check_sub_limit(conn)?;
            let pattern = req_str(body, "pattern")?;
            let id = self.next_sub_id();
            if let Some(r) = &mut self.rules {
                r.subs.push(RuleSub {
                    id: id.clone(),
                    conn,
                    pattern,
                });
            }
            return Ok(obj([("subscriptionId", id.into())]));
        }
        let Some(r) = &mut self.rules else {
            return Err(OpError::new(
                "RULES_NOT_AVAILABLE",
                "Rule engine is not configured",
            ));
        };
        match ty {
            "rules.unsubscribe" => {
                let id = req_str(body, "subscriptionId")?;
                let before = r.subs.len();
                r.subs.retain(|s| !(s.conn == conn && s.id == id));
                if before == r.subs.len() {
                    return Err(OpError::not_found(format!(
                        "Subscription \"{id}\" not found"
                    )));
                }
                Ok(obj([("unsubscribed", true.into())]))
            }
            "rules.emit" => {
                let topic = req_str(body, "topic")?;
                let data = match body.get("data") {
                    None | Some(Value::Null) => Value::Object(Map::new()),
                    Some(d @ Value::Object(_)) => d.clone(),
                    Some(_) => {
                        return Err(OpError::validation("Invalid \"data\": expected object"))
                    }
                };
                let corr = match body.get("correlationId") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(c)) if !c.is_empty() => Some(c.clone()),
                    Some(_) => {
                        return Err(OpError::validation(
                            "Invalid \"correlationId\": expected non-empty string",
                        ))
                    }
                };
                let causation = corr.as_ref().and_then(|_| {
                    body.get("causationId")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                });
                Ok(r.emit(&topic, data, corr, causation, early))
            }
            "rules.setFact" => {
                let key = req_str(body, "key")?;
                let Some(value) = body.get("value") else {
                    return Err(OpError::validation("Missing \"value\": expected a value"));
                };
                Ok(r.set_fact(&key, value.clone(), early))
            }
            "rules.getFact" => Ok(r.get_fact(&req_str(body, "key")?)),
            "rules.deleteFact" => Ok(obj([(
                "deleted",
                r.delete_fact(&req_str(body, "key")?).into(),
            )])),
            "rules.queryFacts" => Ok(r.query_facts(&req_str(body, "pattern")?)),
            "rules.getAllFacts" => Ok(r.all_facts()),
            "rules.stats" => Ok(r.stats()),
            "rules.registerRule" => r.register(&req_obj(body, "rule")?),
            "rules.unregisterRule" => {
                let id = req_str(body, "ruleId")?;
                if !r.unregister(&id) {
                    return Err(OpError::not_found(format!("Rule \"{id}\" not found")));
                }
                Ok(obj([("ruleId", id.into()), ("unregistered", true.into())]))
            }
            "rules.updateRule" => {
                let id = req_str(body, "ruleId")?;
                let updates = req_obj(body, "updates")?;
                r.update(&id, &updates)
            }
            "rules.enableRule" | "rules.disableRule" => {
                let id = req_str(body, "ruleId")?;
                let enabled = ty == "rules.enableRule";
                if !r.set_enabled(&id, enabled) {
                    return Err(OpError::not_found(format!("Rule \"{id}\" not found")));
                }
                Ok(obj([("ruleId", id.into()), ("enabled", enabled.into())]))
            }
            "rules.getRule" => r.get_rule(&req_str(body, "ruleId")?),
            "rules.getRules" => Ok(r.list_rules()),
            "rules.validateRule" => Ok(Rules::validate(&req_obj(body, "rule")?)),
            _ => Err(OpError::unknown(format!(
                "Unknown rules operation \"{ty}\""
            ))),
        }
    }

    fn procedures_op(
        &mut self,
        ty: &str,
        body: &Map<String, Value>,
        early: &mut Vec<EventPush>,
    ) -> OpResult {
        match ty {
            "procedures.register" => self.procedures.register(&req_obj(body, "procedure")?),
            "procedures.unregister" => self.procedures.unregister(&req_str(body, "name")?),
            "procedures.update" => {
                let name = req_str(body, "name")?;
                self.procedures.update(&name, &req_obj(body, "updates")?)
            }
            "procedures.get" => self.procedures.get(&req_str(body, "name")?),
            "procedures.list" => Ok(self.procedures.list()),
            "procedures.call" => {
                let name = req_str(body, "name")?;
                let input = body
                    .get("input")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                let (proc_cfg, input) = self.procedures.prepare_call(&name, &input)?;
                let steps = proc_cfg
                    .get("steps")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let tx = proc_cfg.get("transaction") == Some(&Value::Bool(true));
                let backup = tx.then(|| (self.store.buckets.clone(), self.rules.clone()));
                let mut pushes = Vec::new();
                let outcome = {
                    let mut exec =
                        Exec::new(&mut self.store, self.rules.as_mut(), &mut pushes, input);
                    exec.run(&steps).map(|()| exec.finish())
                };
                match outcome {
                    Ok(v) => {
                        early.extend(pushes);
                        Ok(v)
                    }
                    Err(e) => {
                        if let Some((buckets, rules)) = backup {
                            self.store.buckets = buckets;
                            self.rules = rules;
                        } else {
                            early.extend(pushes);
                        }
                        Err(e)
                    }
                }
            }
            _ => Err(OpError::unknown(format!(
                "Unknown procedures operation \"{ty}\""
            ))),
        }
    }

    fn server_op(&self, ty: &str) -> OpResult {
        match ty {
            "server.stats" => {
                let conns = self.connections_info();
                let authenticated = self.conns.values().filter(|c| c.session.is_some()).count();
                let store_subs = self.store.subs.len();
                let rules_subs = self.rules.as_ref().map_or(0, |r| r.subs.len());
                Ok(obj([
                    ("name", "noex-server".into()),
                    ("connectionCount", conns.len().into()),
                    ("authEnabled", self.requires_auth().into()),
                    ("rateLimitEnabled", false.into()),
                    ("rulesEnabled", self.rules.is_some().into()),
                    (
                        "connections",
                        obj([
                            ("active", conns.len().into()),
                            ("authenticated", authenticated.into()),
                            ("totalStoreSubscriptions", store_subs.into()),
                            ("totalRulesSubscriptions", rules_subs.into()),
                        ]),
                    ),
                    ("store", self.store.stats()),
                    (
                        "rules",
                        self.rules.as_ref().map_or(Value::Null, Rules::stats),
                    ),
                ]))
            }
            "server.connections" => Ok(Value::Array(self.connections_info())),
            _ => Err(OpError::unknown(format!(
                "Unknown server operation \"{ty}\""
            ))),
        }
    }

    fn connections_info(&self) -> Vec<Value> {
        self.conns
            .iter()
            .map(|(id, c)| {
                let store_subs = self.store.subs.iter().filter(|s| s.conn == *id).count();
                let rules_subs = self
                    .rules
                    .as_ref()
                    .map_or(0, |r| r.subs.iter().filter(|s| s.conn == *id).count());
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

    fn auth_op(&mut self, conn: u64, ty: &str, body: &Map<String, Value>) -> OpResult {
        if !self.requires_auth() {
            return Err(OpError::unknown("Authentication is not configured"));
        }
        match ty {
            "auth.login" => {
                let token = req_str(body, "token")?;
                let session = match &self.cfg.auth {
                    AuthMode::Tokens(list) => {
                        list.iter().find(|t| t.token == token).map(|t| ConnSession {
                            user_id: t.user_id.clone(),
                            roles: t.roles.clone(),
                            expires_at: t.expires_at,
                            token: None,
                        })
                    }
                    AuthMode::Identity { .. } => self
                        .identity
                        .as_mut()
                        .and_then(|i| i.validate_session(&token))
                        .map(|(user_id, roles, exp)| ConnSession {
                            user_id,
                            roles,
                            expires_at: Some(exp),
                            token: Some(identity::Secret(token.clone())),
                        }),
                    AuthMode::None => None,
                };
                let Some(s) = session else {
                    return Err(OpError::unauthorized("Invalid token"));
                };
                if s.expires_at.is_some_and(|e| e < now_ms()) {
                    return Err(OpError::unauthorized("Token has expired"));
                }
                let answer = obj([
                    ("userId", s.user_id.clone().into()),
                    ("roles", roles_value(&s.roles)),
                    ("expiresAt", s.expires_at.map_or(Value::Null, Value::from)),
                ]);
                self.set_session(conn, Some(s));
                Ok(answer)
            }
            "auth.logout" => {
                self.set_session(conn, None);
                Ok(obj([("loggedOut", true.into())]))
            }
            "auth.whoami" => Ok(self.whoami(conn)),
            _ => Err(OpError::unknown(format!("Unknown auth operation \"{ty}\""))),
        }
    }

    fn whoami(&mut self, conn: u64) -> Value {
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

    fn identity_op(&mut self, conn: u64, ty: &str, body: &Map<String, Value>) -> OpResult {
        if self.identity.is_none() {
            return Err(OpError::unknown("Identity management is not configured"));
        }
        let session = self.session(conn).cloned();
        let require_auth = || {
            session
                .clone()
                .ok_or_else(|| OpError::unauthorized("Authentication required"))
        };
        let is_admin = |s: &ConnSession| s.roles.iter().any(|r| r == "admin" || r == "superadmin");
        let require_admin = || {
            let s = require_auth()?;
            if !is_admin(&s) {
                return Err(OpError::forbidden("Admin role required"));
            }
            Ok(s)
        };
        let require_super = || {
            let s = require_auth()?;
            if !s.roles.iter().any(|r| r == "superadmin") {
                return Err(OpError::forbidden("Superadmin role required"));
            }
            Ok(s)
        };
        let Some(id) = &mut self.identity else {
            return Err(OpError::unknown("Identity management is not configured"));
        };
        let login_session = |l: &identity::Login| ConnSession {
            user_id: l.user_id.clone(),
            roles: l.roles.clone(),
            expires_at: Some(l.expires_at),
            token: Some(identity::Secret(l.token.clone())),
        };
        match ty {
            "identity.login" => {
                let u = req_str(body, "username")?;
                let p = req_str(body, "password")?;
                let l = id.login(&u, &p)?;
                let s = login_session(&l);
                self.set_session(conn, Some(s));
                Ok(l.answer)
            }
            "identity.loginWithSecret" => {
                let secret = req_str(body, "secret")?;
                let l = id.login_with_secret(&secret)?;
                let s = login_session(&l);
                self.set_session(conn, Some(s));
                Ok(l.answer)
            }
            "identity.logout" => {
                if let Some(t) = session.as_ref().and_then(|s| s.token.as_ref()) {
                    id.logout(&t.0);
                }
                self.set_session(conn, None);
                Ok(obj([("loggedOut", true.into())]))
            }
            "identity.whoami" => Ok(self.whoami(conn)),
            "identity.refreshSession" => {
                let Some(token) = session
                    .as_ref()
                    .and_then(|s| s.token.as_ref().map(|t| t.0.clone()))
                else {
                    return Err(OpError::unauthorized("No active session to refresh"));
                };
                let l = id.refresh(&token)?;
                let s = login_session(&l);
                self.set_session(conn, Some(s));
                Ok(l.answer)
            }
            "identity.createUser" => {
                require_admin()?;
                req_str(body, "username")?;
                req_str(body, "password")?;
                id.create_user(body)
            }
            "identity.getUser" => {
                require_admin()?;
                id.get_user(&req_str(body, "userId")?)
            }
            "identity.updateUser" => {
                let s = require_auth()?;
                let user = req_str(body, "userId")?;
                if s.user_id != user && !is_admin(&s) {
                    return Err(OpError::forbidden("Admin role required"));
                }
                id.update_user(&user, body)
            }
            "identity.deleteUser" => {
                require_admin()?;
                let user = req_str(body, "userId")?;
                if user == identity::SUPERADMIN {
                    return Err(OpError::forbidden("Cannot delete virtual superadmin"));
                }
                id.delete_user(&user)?;
                Ok(obj([("deleted", true.into())]))
            }
            "identity.listUsers" => {
                require_admin()?;
                Ok(id.list_users(body))
            }
            "identity.enableUser" => {
                require_admin()?;
                id.set_enabled(&req_str(body, "userId")?, true)
            }
            "identity.disableUser" => {
                require_admin()?;
                let user = req_str(body, "userId")?;
                if user == identity::SUPERADMIN {
                    return Err(OpError::forbidden("Cannot disable virtual superadmin"));
                }
                id.set_enabled(&user, false)
            }
            "identity.changePassword" => {
                let s = require_auth()?;
                let user = req_str(body, "userId")?;
                let current = req_str(body, "currentPassword")?;
                let new = req_str(body, "newPassword")?;
                if s.user_id != user {
                    return Err(OpError::forbidden(
                        "Can only change your own password (use resetPassword for other users)",
                    ));
                }
                id.change_password(&user, &current, &new)?;
                Ok(obj([("changed", true.into())]))
            }
            "identity.resetPassword" => {
                require_admin()?;
                let user = req_str(body, "userId")?;
                let new = req_str(body, "newPassword")?;
                id.reset_password(&user, &new)?;
                Ok(obj([("reset", true.into())]))
            }
            "identity.createRole" => {
                require_super()?;
                req_str(body, "name")?;
                id.create_role(body)
            }
            "identity.updateRole" => {
                require_super()?;
                id.update_role(&req_str(body, "roleId")?, body)
            }
            "identity.deleteRole" => {
                require_super()?;
                id.delete_role(&req_str(body, "roleId")?)?;
                Ok(obj([("deleted", true.into())]))
            }
            "identity.listRoles" => {
                require_admin()?;
                Ok(id.list_roles())
            }
            "identity.assignRole" => {
                require_admin()?;
                let user = req_str(body, "userId")?;
                let role = req_str(body, "roleName")?;
                id.assign_role(&user, &role)?;
                Ok(obj([("assigned", true.into())]))
            }
            "identity.removeRole" => {
                require_admin()?;
                let user = req_str(body, "userId")?;
                let role = req_str(body, "roleName")?;
                id.remove_role(&user, &role)?;
                Ok(obj([("removed", true.into())]))
            }
            "identity.getUserRoles" => {
                require_admin()?;
                id.user_roles(&req_str(body, "userId")?)
            }
            "identity.grant" | "identity.revoke" => {
                let s = require_auth()?;
                for f in ["subjectType", "subjectId", "resourceType", "resourceName"] {
                    req_str(body, f)?;
                }
                if ty == "identity.grant" {
                    if !matches!(body.get("operations"), Some(Value::Array(_))) {
                        return Err(OpError::validation(
                            "Missing or invalid \"operations\": expected non-empty array",
                        ));
                    }
                    id.grant(&s.user_id, body)?;
                    Ok(obj([("granted", true.into())]))
                } else {
                    id.revoke(&s.user_id, body)?;
                    Ok(obj([("revoked", true.into())]))
                }
            }
            "identity.getAcl" => {
                require_auth()?;
                let rt = req_str(body, "resourceType")?;
                let rn = req_str(body, "resourceName")?;
                Ok(id.get_acl(&rt, &rn))
            }
            "identity.myAccess" => {
                let s = require_auth()?;
                id.my_access(&s.user_id)
            }
            "identity.getOwner" => {
                require_auth()?;
                let rt = req_str(body, "resourceType")?;
                let rn = req_str(body, "resourceName")?;
                Ok(id.get_owner(&rt, &rn))
            }
            "identity.transferOwner" => {
                let s = require_auth()?;
                let rt = req_str(body, "resourceType")?;
                let rn = req_str(body, "resourceName")?;
                let new = req_str(body, "newOwnerId")?;
                id.transfer_owner(&s.user_id, &rt, &rn, &new)?;
                Ok(obj([("transferred", true.into())]))
            }
            _ => Err(OpError::unknown(format!(
                "Unknown identity operation \"{ty}\""
            ))),
        }
    }
}

/// Operations that never change the store (so no subscribed query can change).
fn is_pure_read(ty: &str) -> bool {
    matches!(
        ty,
        "store.get"
            | "store.all"
            | "store.where"
            | "store.findOne"
            | "store.count"
            | "store.first"
            | "store.last"
            | "store.paginate"
            | "store.sum"
            | "store.avg"
            | "store.min"
            | "store.max"
            | "store.subscribe"
            | "store.unsubscribe"
            | "store.buckets"
            | "store.stats"
            | "store.listQueries"
            | "store.getBucketSchema"
    )
}
