//! Configuration types: buckets, queries, auth mode and the server builder.

use std::fmt;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::error::TestkitError;
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
        }
    }

    /// Give the session an expiry (ms since the epoch); `auth.login` refuses an expired
    /// token with `Token has expired`.
    pub fn expires_at(mut self, ms: i64) -> Self {
        self.expires_at = Some(ms);
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

/// Everything the server needs to (re)build its state.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) buckets: Vec<(String, Map<String, Value>, KeyOrder)>,
    pub(crate) queries: Vec<(String, QueryKind)>,
    pub(crate) rules: bool,
    pub(crate) auth: AuthMode,
    pub(crate) audit: bool,
    pub(crate) heartbeat: Duration,
    pub(crate) max_connections_per_ip: Option<usize>,
    pub(crate) max_subscriptions: usize,
    pub(crate) port: u16,
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
            max_connections_per_ip: None,
            max_subscriptions: 100,
            port: 0,
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

    /// Heartbeat ping interval (default 30 s); a connection whose last ping got no pong
    /// by the next tick is closed with 4001 `heartbeat_timeout`.
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

    /// Start the server on its own thread; returns once it is listening.
    pub fn start(self) -> Result<crate::TestServer, TestkitError> {
        if let Some(e) = self.errors.first() {
            return Err(TestkitError::Config(e.clone()));
        }
        crate::handle::TestServer::start_with(self.config)
    }
}
