//! Configuration types: buckets, queries, auth mode and the server builder.

use std::fmt;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::json::KeyOrder;

/// A bucket definition for [`TestServerBuilder::bucket`].
///
/// The key field defaults to `"id"`; when the schema has no definition for the key field,
/// `{"type": "string", "generated": "uuid"}` is added in front, so records get a uuid key.
#[derive(Debug, Clone)]
pub struct BucketDef {
    name: String,
    key: String,
    fields: Vec<(String, Value)>,
    indexes: Vec<String>,
}

impl BucketDef {
    /// A bucket called `name` with key field `"id"` and no other fields yet.
    pub fn new(name: impl Into<String>) -> Self {
        BucketDef {
            name: name.into(),
            key: "id".into(),
            fields: Vec::new(),
            indexes: Vec::new(),
        }
    }

    /// Set the key field.
    pub fn key(mut self, field: impl Into<String>) -> Self {
        self.key = field.into();
        self
    }

    /// Add a field with its store definition, e.g. `{"type": "number", "min": 0}`.
    /// Field order is kept (it decides the order of validation issues).
    pub fn field(mut self, name: impl Into<String>, definition: Value) -> Self {
        self.fields.push((name.into(), definition));
        self
    }

    /// Declare an index on a field (reported in `store.stats`; lookups are scans anyway).
    pub fn index(mut self, field: impl Into<String>) -> Self {
        self.indexes.push(field.into());
        self
    }

    pub(crate) fn into_parts(self) -> (String, Map<String, Value>, KeyOrder) {
        let mut fields = self.fields;
        if !fields.iter().any(|(k, _)| *k == self.key) {
            fields.insert(
                0,
                (
                    self.key.clone(),
                    serde_json::json!({"type": "string", "generated": "uuid"}),
                ),
            );
        }
        let order = KeyOrder::Object(vec![(
            "schema".into(),
            KeyOrder::Object(
                fields
                    .iter()
                    .map(|(k, _)| (k.clone(), KeyOrder::Other))
                    .collect(),
            ),
        )]);
        let mut config = Map::new();
        config.insert("key".into(), self.key.into());
        config.insert("schema".into(), Value::Object(fields.into_iter().collect()));
        if !self.indexes.is_empty() {
            config.insert(
                "indexes".into(),
                Value::Array(self.indexes.into_iter().map(Value::from).collect()),
            );
        }
        (self.name, config, order)
    }
}

/// The kinds of query the testkit can run.
#[derive(Debug, Clone)]
pub(crate) enum QueryKind {
    All {
        bucket: String,
    },
    WhereParam {
        bucket: String,
        field: String,
    },
    Count {
        bucket: String,
    },
    Where {
        bucket: String,
        filter: Map<String, Value>,
    },
    Declarative(Map<String, Value>),
}

impl QueryKind {
    /// The bucket the query reads.
    pub(crate) fn bucket(&self) -> Option<&str> {
        match self {
            QueryKind::All { bucket }
            | QueryKind::WhereParam { bucket, .. }
            | QueryKind::Count { bucket }
            | QueryKind::Where { bucket, .. } => Some(bucket),
            QueryKind::Declarative(config) => config.get("bucket").and_then(Value::as_str),
        }
    }
}

/// A named query for [`TestServerBuilder::query`], subscribable with `store.subscribe`.
///
/// Queries defined here are listed by `store.listQueries` as `"programmatic"` (as queries a
/// real server defines in code), except [`QueryDef::declarative`] ones.
#[derive(Debug, Clone)]
pub struct QueryDef {
    pub(crate) kind: QueryKind,
}

impl QueryDef {
    /// Every record of `bucket`, in insertion order.
    pub fn all(bucket: impl Into<String>) -> Self {
        QueryDef {
            kind: QueryKind::All {
                bucket: bucket.into(),
            },
        }
    }

    /// Records of `bucket` whose `field` equals the subscription parameter of the same name
    /// (`params: {"<field>": value}`).
    pub fn where_param(bucket: impl Into<String>, field: impl Into<String>) -> Self {
        QueryDef {
            kind: QueryKind::WhereParam {
                bucket: bucket.into(),
                field: field.into(),
            },
        }
    }

    /// The number of records in `bucket`.
    pub fn count(bucket: impl Into<String>) -> Self {
        QueryDef {
            kind: QueryKind::Count {
                bucket: bucket.into(),
            },
        }
    }

    /// Records of `bucket` matching a fixed store filter (e.g. `{"age": {"$gte": 18}}`).
    /// A filter that is not an object matches everything.
    pub fn where_filter(bucket: impl Into<String>, filter: Value) -> Self {
        let filter = match filter {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        QueryDef {
            kind: QueryKind::Where {
                bucket: bucket.into(),
                filter,
            },
        }
    }

    /// A declarative query, same shape as `store.defineQuery`'s `config`: `bucket`,
    /// `filter` (with `"{{ params.x }}"` placeholders), `sort`, `offset`, `limit`, `fields`,
    /// `aggregate`. A config that is not an object is treated as an empty one.
    pub fn declarative(config: Value) -> Self {
        let config = match config {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        QueryDef {
            kind: QueryKind::Declarative(config),
        }
    }
}

/// A static token accepted by `auth.login` in [`AuthMode::Tokens`].
#[derive(Clone)]
pub struct TokenSession {
    pub(crate) token: String,
    pub(crate) user_id: String,
    pub(crate) roles: Vec<String>,
    pub(crate) expires_at: Option<i64>,
    pub(crate) expires_in: Option<Duration>,
}

impl TokenSession {
    /// `token` logs in as `user_id` with `roles` (the built-in tier roles are `admin`,
    /// `writer` and `reader`; sessions with none of them skip the tier check, as on the
    /// real server).
    pub fn new<I, S>(token: impl Into<String>, user_id: impl Into<String>, roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        TokenSession {
            token: token.into(),
            user_id: user_id.into(),
            roles: roles.into_iter().map(Into::into).collect(),
            expires_at: None,
            expires_in: None,
        }
    }

    /// Give the session an expiry (ms since the epoch); `auth.login` refuses an expired
    /// token with `Token has expired`.
    pub fn expires_at(mut self, ms: i64) -> Self {
        self.expires_at = Some(ms);
        self
    }

    /// Give each session made with this token an expiry `ttl` after its login (as an
    /// `auth.validate` that returns `expiresAt: Date.now() + ttl`); once it has passed,
    /// the next request answers `UNAUTHORIZED` `Session expired` and drops the session.
    pub fn expires_in(mut self, ttl: Duration) -> Self {
        self.expires_in = Some(ttl);
        self
    }
}

impl fmt::Debug for TokenSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSession")
            .field("token", &"<redacted>")
            .field("user_id", &self.user_id)
            .field("roles", &self.roles)
            .field("expires_at", &self.expires_at)
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// How clients authenticate.
#[derive(Clone, Default)]
pub enum AuthMode {
    /// No authentication: `requiresAuth: false`, `auth.*` answers `UNKNOWN_OPERATION`.
    #[default]
    None,
    /// A token validator with fixed sessions; `auth.login {token}`.
    Tokens(Vec<TokenSession>),
    /// The server's built-in identity management with this admin secret
    /// (`identity.loginWithSecret`).
    Identity {
        /// The secret accepted by `identity.loginWithSecret`.
        admin_secret: String,
    },
}

impl AuthMode {
    /// Built-in identity with this admin secret (same as
    /// `AuthMode::Identity { admin_secret: secret.into() }`).
    pub fn identity(admin_secret: impl Into<String>) -> Self {
        AuthMode::Identity {
            admin_secret: admin_secret.into(),
        }
    }

    /// Static tokens (same as `AuthMode::Tokens(sessions.into_iter().collect())`).
    pub fn tokens(sessions: impl IntoIterator<Item = TokenSession>) -> Self {
        AuthMode::Tokens(sessions.into_iter().collect())
    }
}

impl fmt::Debug for AuthMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthMode::None => f.write_str("None"),
            AuthMode::Tokens(t) => f.debug_tuple("Tokens").field(t).finish(),
            AuthMode::Identity { .. } => f
                .debug_struct("Identity")
                .field("admin_secret", &"<redacted>")
                .finish(),
        }
    }
}

/// Request rate limiting (`rateLimit` in the real server's config): a sliding window of
/// `max_requests` per `window_ms`, per user (when authenticated) or per remote address.
/// Requests past the limit get `RATE_LIMITED` with `details.retryAfterMs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// `maxRequests`: requests allowed in a window.
    pub max_requests: u32,
    /// `windowMs`: the window length in milliseconds.
    pub window_ms: u64,
}

impl RateLimit {
    /// `max_requests` per `window_ms`.
    pub fn new(max_requests: u32, window_ms: u64) -> Self {
        RateLimit {
            max_requests,
            window_ms,
        }
    }
}

/// Heartbeat (`heartbeat` in the real server's config).
///
/// As the real server 0.1.4 does: every `interval_ms` the server checks whether the
/// client answered the previous ping; if not it closes the connection with 4001
/// `heartbeat_timeout`, otherwise it sends a new ping. `timeout_ms` is accepted and kept
/// (it is part of the real config), but, as on the real server, the deadline for the pong
/// is the next tick, not `timeout_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatConfig {
    /// `intervalMs` (default 30 000).
    pub interval_ms: u64,
    /// `timeoutMs` (default 10 000; see above).
    pub timeout_ms: u64,
}

impl Default for HeartbeatConfig {
    fn default() -> Self {
        HeartbeatConfig {
            interval_ms: 30_000,
            timeout_ms: 10_000,
        }
    }
}

/// What a permission check decides when no rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PermissionDefault {
    /// Allow (the real server's default).
    #[default]
    Allow,
    /// Deny.
    Deny,
}

/// One declarative permission rule (`PermissionRule`): sessions with `role` may run the
/// operations matching `allow` (`*`, `domain.*` or exact names), optionally only on some
/// buckets (checked for `store.*`) or topics (checked for `rules.*`, with wildcards).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionRule {
    /// The role the rule applies to.
    pub role: String,
    /// Allowed operation patterns.
    pub allow: Vec<String>,
    /// Restrict to these buckets.
    pub buckets: Option<Vec<String>>,
    /// Restrict to these topic patterns.
    pub topics: Option<Vec<String>>,
}

impl PermissionRule {
    /// Sessions with `role` may run operations matching `allow`.
    pub fn new<I, S>(role: impl Into<String>, allow: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        PermissionRule {
            role: role.into(),
            allow: allow.into_iter().map(Into::into).collect(),
            buckets: None,
            topics: None,
        }
    }

    /// Only on these buckets (for `store.*` operations).
    pub fn buckets<I: IntoIterator<Item = S>, S: Into<String>>(mut self, buckets: I) -> Self {
        self.buckets = Some(buckets.into_iter().map(Into::into).collect());
        self
    }

    /// Only on topics matching these patterns (for `rules.*` operations).
    pub fn topics<I: IntoIterator<Item = S>, S: Into<String>>(mut self, topics: I) -> Self {
        self.topics = Some(topics.into_iter().map(Into::into).collect());
        self
    }
}

/// Permission checks for [`AuthMode::Tokens`] (`auth.permissions` of the real server),
/// run after the tier check for authenticated sessions. A refusal is `FORBIDDEN`
/// `No permission for <op> on <resource>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permissions {
    /// When no rule matches.
    pub default: PermissionDefault,
    /// Declarative rules, first match wins.
    pub rules: Vec<PermissionRule>,
    /// Stands for the real server's custom `check` function as the test launchers of the
    /// client SDKs configure it (`permissions.checkRoles`): when set, a session is allowed
    /// exactly when it has one of these roles, and `rules`/`default` are not consulted.
    pub check_roles: Option<Vec<String>>,
}

impl Permissions {
    /// Allowed exactly for sessions with one of `roles` (`checkRoles`).
    pub fn check_roles<I: IntoIterator<Item = S>, S: Into<String>>(roles: I) -> Self {
        Permissions {
            check_roles: Some(roles.into_iter().map(Into::into).collect()),
            ..Permissions::default()
        }
    }

    /// Declarative rules with a default.
    pub fn rules(default: PermissionDefault, rules: Vec<PermissionRule>) -> Self {
        Permissions {
            default,
            rules,
            check_roles: None,
        }
    }
}

/// Everything the server needs to (re)build its state.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) buckets: Vec<(String, Map<String, Value>, KeyOrder)>,
    pub(crate) queries: Vec<(String, QueryKind)>,
    pub(crate) rules: bool,
    pub(crate) auth: AuthMode,
    pub(crate) audit: bool,
    pub(crate) heartbeat: Duration,
    pub(crate) heartbeat_timeout: Duration,
    pub(crate) max_connections_per_ip: Option<usize>,
    pub(crate) max_subscriptions: usize,
    pub(crate) max_total_subscriptions: usize,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) rate_limit: Option<RateLimit>,
    pub(crate) auth_required: bool,
    pub(crate) permissions: Option<Permissions>,
    pub(crate) allowed_origins: Option<Vec<String>>,
    pub(crate) max_payload_bytes: usize,
    pub(crate) expose_error_details: bool,
    pub(crate) procedure_timeout_ms: u64,
    pub(crate) ttl_check_interval: Option<Duration>,
    pub(crate) audit_tiers: Vec<String>,
    pub(crate) audit_max_entries: usize,
    pub(crate) name: String,
    /// `auth.sessionTtl` of the built-in identity, ms.
    pub(crate) session_ttl_ms: i64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            buckets: Vec::new(),
            queries: Vec::new(),
            rules: true,
            auth: AuthMode::None,
            audit: false,
            heartbeat: Duration::from_secs(30),
            heartbeat_timeout: Duration::from_secs(10),
            max_connections_per_ip: None,
            max_subscriptions: 100,
            max_total_subscriptions: 10_000,
            host: "127.0.0.1".into(),
            port: 0,
            rate_limit: None,
            auth_required: true,
            permissions: None,
            allowed_origins: None,
            max_payload_bytes: 1024 * 1024,
            expose_error_details: true,
            procedure_timeout_ms: 30_000,
            ttl_check_interval: Some(Duration::from_secs(1)),
            audit_tiers: vec!["admin".into(), "write".into()],
            audit_max_entries: 10_000,
            name: "noex-server".into(),
            session_ttl_ms: crate::identity::DEFAULT_SESSION_TTL_MS,
        }
    }
}

/// Builder for [`crate::TestServer`]; get one with [`crate::TestServer::builder`].
#[derive(Debug, Default)]
pub struct TestServerBuilder {
    pub(crate) config: Config,
    pub(crate) errors: Vec<String>,
}

impl TestServerBuilder {
    /// Define a bucket.
    pub fn bucket(mut self, def: BucketDef) -> Self {
        self.config.buckets.push(def.into_parts());
        self
    }

    /// Define a bucket from a JSON config, same shape as `store.defineBucket`'s `config`
    /// (`key`, `schema`, `indexes`, ...). A missing key field definition is added as a
    /// generated uuid. A config that is not an object makes `start` fail.
    pub fn bucket_json(mut self, name: impl Into<String>, config: Value) -> Self {
        let name = name.into();
        let Value::Object(mut config) = config else {
            self.errors
                .push(format!("bucket \"{name}\": config must be a JSON object"));
            return self;
        };
        let key = config
            .get("key")
            .and_then(Value::as_str)
            .unwrap_or("id")
            .to_string();
        config.insert("key".into(), key.clone().into());
        let schema = config
            .entry("schema")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(s) = schema {
            if !s.contains_key(&key) {
                s.insert(
                    key,
                    serde_json::json!({"type": "string", "generated": "uuid"}),
                );
            }
        }
        self.config.buckets.push((name, config, KeyOrder::Other));
        self
    }

    /// Define a named query.
    pub fn query(mut self, name: impl Into<String>, def: QueryDef) -> Self {
        self.config.queries.push((name.into(), def.kind));
        self
    }

    /// Enable the rule engine (default `true`); when off, `rules.*` answers
    /// `RULES_NOT_AVAILABLE`.
    pub fn rules(mut self, enabled: bool) -> Self {
        self.config.rules = enabled;
        self
    }

    /// Authentication mode (default [`AuthMode::None`]).
    pub fn auth(mut self, mode: AuthMode) -> Self {
        self.config.auth = mode;
        self
    }

    /// Audit log (default off). When on, operations of the `admin` and `write` tiers are
    /// recorded and `audit.query` is available.
    pub fn audit(mut self, enabled: bool) -> Self {
        self.config.audit = enabled;
        self
    }

    /// Which operation tiers the audit log records (`audit.tiers`: `"admin"`, `"write"`,
    /// `"read"`; others are ignored). The testkit's default is `admin` and `write`; note
    /// that the real server's default (`audit: {}`, as its CLI's `--audit` configures it)
    /// is `admin` only.
    pub fn audit_tiers<I, S>(mut self, tiers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.config.audit_tiers = tiers.into_iter().map(Into::into).collect();
        self
    }

    /// Entries the audit log keeps (`audit.maxEntries`, default 10 000); older ones are
    /// dropped.
    pub fn audit_max_entries(mut self, n: usize) -> Self {
        self.config.audit_max_entries = n.max(1);
        self
    }

    /// The server name reported by `server.stats` (`name`, default `noex-server`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.config.name = name.into();
        self
    }

    /// Heartbeat ping interval (default 30 s); a connection whose last ping got no pong
    /// by the next tick is closed with 4001 `heartbeat_timeout`. As on the real server, a
    /// pong counts by the timestamp it carries: one older than the last ping does not.
    pub fn heartbeat(mut self, interval: Duration) -> Self {
        self.config.heartbeat = interval.max(Duration::from_millis(1));
        self
    }

    /// Limit simultaneous connections from one IP (default unlimited); connections past
    /// the limit are closed with 4003 `too_many_connections`.
    pub fn max_connections_per_ip(mut self, n: usize) -> Self {
        self.config.max_connections_per_ip = Some(n);
        self
    }

    /// Limit subscriptions (store + rules) per connection (default 100).
    pub fn max_subscriptions_per_connection(mut self, n: usize) -> Self {
        self.config.max_subscriptions = n;
        self
    }

    /// Listen on this port (default 0: an ephemeral port).
    pub fn port(mut self, port: u16) -> Self {
        self.config.port = port;
        self
    }

    /// Listen on this host: an IP address or a name that resolves (default `127.0.0.1`;
    /// the real server's default is `0.0.0.0`). `start` fails when it does not resolve.
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.config.host = host.into();
        self
    }

    /// Heartbeat from the real config's `heartbeat` (`intervalMs`, `timeoutMs`); see
    /// [`HeartbeatConfig`] for how the timeout behaves.
    pub fn heartbeat_config(mut self, heartbeat: HeartbeatConfig) -> Self {
        self.config.heartbeat = Duration::from_millis(heartbeat.interval_ms.max(1));
        self.config.heartbeat_timeout = Duration::from_millis(heartbeat.timeout_ms);
        self
    }

    /// Server-wide subscription limit (`connectionLimits.maxTotalSubscriptions`, default
    /// 10 000): a subscribe past it gets `RATE_LIMITED` `Global subscription limit reached
    /// (max N)`.
    pub fn max_total_subscriptions(mut self, n: usize) -> Self {
        self.config.max_total_subscriptions = n;
        self
    }

    /// Request rate limiting (`rateLimit`, default off).
    pub fn rate_limit(mut self, limit: RateLimit) -> Self {
        self.config.rate_limit = Some(limit);
        self
    }

    /// Whether authentication is required when auth is configured (`auth.required`,
    /// default `true`). With `false` and [`AuthMode::Tokens`], the welcome says
    /// `requiresAuth: false` and unauthenticated requests are served; `auth.login` still
    /// works. Built-in identity always requires authentication, as on the real server.
    pub fn auth_required(mut self, required: bool) -> Self {
        self.config.auth_required = required;
        self
    }

    /// Permission checks for [`AuthMode::Tokens`] (`auth.permissions`).
    pub fn permissions(mut self, permissions: Permissions) -> Self {
        self.config.permissions = Some(permissions);
        self
    }

    /// Accept WebSocket handshakes only from these `Origin`s (`allowedOrigins`); others
    /// are answered `403 Forbidden`. Handshakes without an `Origin` header are always
    /// accepted, as on the real server.
    pub fn allowed_origins<I, S>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.config.allowed_origins = Some(origins.into_iter().map(Into::into).collect());
        self
    }

    /// Maximum incoming message size (`maxPayloadBytes`, default 1 MiB); larger messages
    /// close the connection with 1009.
    pub fn max_payload_bytes(mut self, n: usize) -> Self {
        self.config.max_payload_bytes = n.max(1);
        self
    }

    /// Whether error answers carry `details` (`exposeErrorDetails`, default `true`).
    /// With `false` every error's `details` is left out (the message stays).
    pub fn expose_error_details(mut self, expose: bool) -> Self {
        self.config.expose_error_details = expose;
        self
    }

    /// How often expired records of TTL buckets are purged (the store's
    /// `ttlCheckIntervalMs`, default 1 s); `Duration::ZERO` turns automatic purging off
    /// (see [`crate::TestServer::purge_expired`]).
    pub fn ttl_check_interval(mut self, every: Duration) -> Self {
        self.config.ttl_check_interval = (!every.is_zero()).then_some(every);
        self
    }

    /// Lifetime of the built-in identity's sessions ([`AuthMode::Identity`]; the real
    /// server's `auth.sessionTtl`, default 24 hours): `identity.login`,
    /// `identity.loginWithSecret` and `identity.refreshSession` answer `expiresAt` = now +
    /// `ttl`. Once that has passed, the connection's next request answers `UNAUTHORIZED`
    /// `Session expired` and `auth.login` with the token answers `Invalid token`.
    /// Millisecond precision; at most `i64::MAX` ms.
    pub fn session_ttl(mut self, ttl: Duration) -> Self {
        self.config.session_ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        self
    }

    /// Timeout of a procedure call when the procedure has no `timeoutMs`
    /// (`procedures.defaultTimeoutMs`, default 30 000). Accepted for the configuration's
    /// sake: as on the real server, whose in-memory steps settle before any timer can
    /// fire, a call never times out.
    pub fn procedure_default_timeout_ms(mut self, ms: u64) -> Self {
        self.config.procedure_timeout_ms = ms;
        self
    }
}
