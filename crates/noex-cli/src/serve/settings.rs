//! The typed server configuration both inputs (`--config`/flags and `--fixture`) end up
//! in, before it is mapped onto the testkit builder by [`super::testkit_builder::apply`].

use std::fmt;

use serde_json::Value;

/// `rateLimit`: at most `max_requests` requests per `window_ms` per client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RateLimit {
    pub(crate) max_requests: u64,
    pub(crate) window_ms: u64,
}

/// `heartbeat`: ping every `interval_ms`, close when no pong within `timeout_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Heartbeat {
    pub(crate) interval_ms: u64,
    pub(crate) timeout_ms: u64,
}

/// `backpressure`: write buffer limit and the fraction at which pushes are paused.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Backpressure {
    pub(crate) max_buffered_bytes: u64,
    pub(crate) high_water_mark: f64,
}

/// `connectionLimits` (each field optional, the server's defaults fill the rest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct ConnectionLimits {
    pub(crate) max_subscriptions_per_connection: Option<u64>,
    pub(crate) max_total_subscriptions: Option<u64>,
}

/// The audit tiers the real server knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum AuditTier {
    Admin,
    Write,
    Read,
}

impl AuditTier {
    pub(crate) fn parse(s: &str) -> Option<AuditTier> {
        match s {
            "admin" => Some(AuditTier::Admin),
            "write" => Some(AuditTier::Write),
            "read" => Some(AuditTier::Read),
            _ => None,
        }
    }

    /// The tier's name on the wire and in config files.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            AuditTier::Admin => "admin",
            AuditTier::Write => "write",
            AuditTier::Read => "read",
        }
    }
}

/// Audit log settings (present = on).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Audit {
    /// `None`: the server's default tiers (`admin` only).
    pub(crate) tiers: Option<Vec<AuditTier>>,
}

/// One static session of the fixture's token validator.
#[derive(Clone, PartialEq)]
pub(crate) struct Session {
    pub(crate) token: String,
    pub(crate) user_id: String,
    pub(crate) roles: Vec<String>,
    pub(crate) expires_at: Option<i64>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("token", &"<redacted>")
            .field("user_id", &self.user_id)
            .field("roles", &self.roles)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// How clients authenticate.
#[derive(Clone, PartialEq, Default)]
pub(crate) enum Auth {
    /// No authentication.
    #[default]
    None,
    /// Built-in identity management with this admin secret.
    BuiltIn {
        admin_secret: String,
        /// `auth.sessionTtl`: how long a session lives, in ms (`None`: the server's
        /// default, 24 hours).
        session_ttl_ms: Option<u64>,
    },
    /// A token validator with fixed sessions.
    Sessions {
        sessions: Vec<Session>,
        /// `auth.required` (the server's default is `true`).
        required: bool,
        /// `auth.permissions.checkRoles`: only sessions with one of these roles may
        /// do anything.
        check_roles: Option<Vec<String>>,
    },
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::BuiltIn { session_ttl_ms, .. } => f
                .debug_struct("BuiltIn")
                .field("admin_secret", &"<redacted>")
                .field("session_ttl_ms", session_ttl_ms)
                .finish(),
            Auth::Sessions {
                sessions,
                required,
                check_roles,
            } => f
                .debug_struct("Sessions")
                .field("sessions", sessions)
                .field("required", required)
                .field("check_roles", check_roles)
                .finish(),
        }
    }
}

/// A bucket of the fixture: key `id` (a generated uuid unless the schema defines it).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Bucket {
    pub(crate) name: String,
    /// Field definitions in the order they were written.
    pub(crate) fields: Vec<(String, Value)>,
    pub(crate) indexes: Vec<String>,
    /// `ttl` (ms or a duration string such as `"1h"`), kept as written.
    pub(crate) ttl: Option<Value>,
    pub(crate) max_size: Option<u64>,
}

/// A named query of the fixture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum QueryKind {
    All,
    Where { field: String },
    Count,
}

/// A named query of the fixture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Query {
    pub(crate) name: String,
    pub(crate) bucket: String,
    pub(crate) kind: QueryKind,
}

/// Everything the server is started with.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ServerSettings {
    pub(crate) port: u16,
    pub(crate) host: String,
    pub(crate) name: String,
    pub(crate) rules: bool,
    pub(crate) audit: Option<Audit>,
    pub(crate) auth: Auth,
    pub(crate) buckets: Vec<Bucket>,
    pub(crate) queries: Vec<Query>,
    pub(crate) rate_limit: Option<RateLimit>,
    pub(crate) heartbeat: Option<Heartbeat>,
    pub(crate) backpressure: Option<Backpressure>,
    pub(crate) connection_limits: Option<ConnectionLimits>,
    pub(crate) expose_error_details: bool,
    pub(crate) allowed_origins: Option<Vec<String>>,
    pub(crate) max_connections_per_ip: Option<u64>,
    /// `maxPayloadBytes` (a `noex serve` config-file extension; the real CLI ignores it).
    pub(crate) max_payload_bytes: Option<u64>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            port: 8080,
            host: "0.0.0.0".into(),
            name: "noex-server".into(),
            rules: true,
            audit: None,
            auth: Auth::None,
            buckets: Vec::new(),
            queries: Vec::new(),
            rate_limit: None,
            heartbeat: None,
            backpressure: None,
            connection_limits: None,
            expose_error_details: true,
            allowed_origins: None,
            max_connections_per_ip: None,
            max_payload_bytes: None,
        }
    }
}
