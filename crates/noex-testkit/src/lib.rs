//! An embedded noex-server for tests, examples and users' own test suites.
//!
//! [`TestServer`] is a real WebSocket server, in process, speaking the noex-server 0.1.4
//! protocol (JSON text frames, `welcome`, `result`/`error`, `push`, `ping`/`pong`,
//! `system`) with real in-memory semantics, plus fault injection a real server cannot
//! offer. It runs on its own thread with its own tokio runtime, so tests on any runtime
//! (or none) can use it. It shares no code with the client crates: its wire handling is
//! its own, so it can catch the client's parsing bugs instead of hiding them.
//!
//! ```
//! use noex_testkit::{BucketDef, QueryDef, TestServer};
//! use serde_json::json;
//!
//! let server = TestServer::builder()
//!     .bucket(
//!         BucketDef::new("users")
//!             .field("name", json!({"type": "string", "required": true}))
//!             .field("age", json!({"type": "number"})),
//!     )
//!     .query("all-users", QueryDef::all("users"))
//!     .start()
//!     .expect("server starts");
//! assert!(server.url().starts_with("ws://127.0.0.1:"));
//!
//! // Direct access for assertions; a client's subscribers would get a push.
//! let alice = server.insert("users", json!({"name": "Alice", "age": 30})).unwrap();
//! assert_eq!(alice["_version"], 1);
//! assert_eq!(server.records("users").len(), 1);
//! assert!(server.insert("users", json!({"age": 1})).is_err()); // name is required
//! server.stop();
//! ```
//!
//! # What is implemented
//!
//! - **Framing and errors** exactly as the real server: `PARSE_ERROR`/`INVALID_REQUEST`
//!   with id 0, binary frame → close 1003 `binary_not_supported`, max payload
//!   (`maxPayloadBytes`, default 1 MiB; larger frames close the connection with 1009),
//!   `UNKNOWN_OPERATION` for anything unknown (with the real per-domain messages);
//!   `exposeErrorDetails: false` leaves `details` out of every error answer.
//! - **Store** (`store.*`): schemas with key field, `generated` (`uuid`, `cuid`,
//!   `timestamp`, `autoincrement`), `required`, `default`, type checks, `enum`, `min`,
//!   `max`, `minLength`, `maxLength`, `format` (simple email/url/iso-date checks),
//!   `unique`, nested `properties`/`items`; `_version`, `_createdAt`, `_updatedAt`;
//!   insert/get/update/delete/all/where/findOne/count/first/last/paginate/sum/avg/min/max/
//!   clear/buckets/stats; filters with `$eq $neq $ne $gt $gte $lt $lte $in $nin $contains
//!   $startsWith $endsWith $exists $between $or $and`; atomic `store.transaction`;
//!   admin operations (defineBucket, updateBucket, getBucketSchema, dropBucket,
//!   defineQuery, undefineQuery, listQueries). `pattern` (with the `regex` crate: an
//!   unanchored search like JavaScript's `RegExp.test`; syntax the crate lacks, such as
//!   lookaround and backreferences, matches nothing). TTL buckets (`ttl` as milliseconds
//!   or `"30s"`/`"5m"`/`"1h"`/`"7d"`; records get `_expiresAt`, a timer in the server
//!   purges expired records every second by default and subscribers get the new result)
//!   and `maxSize` buckets (inserting into a full bucket evicts the oldest records by
//!   `_createdAt`). Not implemented: custom validators.
//! - **Reactive queries**: after every change each subscribed query is re-run and, when
//!   its result changed, the whole new result is pushed on channel `subscription`
//!   (after the answer to the request that caused it, as the real server does).
//! - **Rules** (`rules.*`): emit with event ids, timestamps, correlation/causation ids;
//!   `event` pushes to subscribers whose pattern matches (`.`-separated segments, `*`
//!   matches exactly one segment), sent before the emit's answer; facts with versions and
//!   `:`-segment patterns; the rule registry with the real answer shapes. **Rule
//!   execution is a subset**: rules with an `event` trigger (topic pattern) or a `fact`
//!   trigger (key pattern) run in priority order; conditions with `source` of type
//!   `event` (field) or `fact` (key) and operators `eq neq gt gte lt lte in not_in
//!   contains exists not_exists`; actions `emit_event`, `set_fact`, `delete_fact`
//!   (values may be `{"ref": "event.<field>"}` or `{"ref": "fact.<key>"}`). Timer and
//!   temporal triggers, other actions (`call_service`, `log`, timers) and rule tracing
//!   are not executed. `rules.validateRule` checks only the required fields (`id`, `name`,
//!   `trigger`) and the trigger type.
//! - **Auth**: static tokens ([`AuthMode::Tokens`]) with the real tier check
//!   (`reader` < `writer` < `admin`), optional auth (`auth.required: false`,
//!   [`TestServerBuilder::auth_required`]), permission checks ([`Permissions`]: declarative
//!   rules with buckets/topics and a default, or `checkRoles`), and built-in identity
//!   ([`AuthMode::Identity`]):
//!   login, loginWithSecret, logout, whoami, refreshSession, users, roles, role
//!   assignment, ACL grant/revoke/getAcl/myAccess, ownership, permission checks with the
//!   system roles, and identity session tokens accepted by `auth.login` on a new
//!   connection. No login rate limiting.
//! - **Audit** (when on): entries for the operations of the audited tiers (default `admin`
//!   and `write`, see [`TestServerBuilder::audit_tiers`]; the real server's default is
//!   `admin`), `maxEntries`, `audit.query` filters (`userId`, `operation`, `result`,
//!   `from`, `to`, `limit`).
//! - **Procedures**: register/get/list/update/unregister/call with every step action of
//!   the real server (`store.get/where/findOne/insert/update/delete/count`, `aggregate`,
//!   `rules.emit/setFact/getFact`, `if`, `transform`, `return`) and `transaction: true`;
//!   `timeoutMs` (or the default, 30 s): the steps run to the end (they are synchronous
//!   here) and a call that took longer answers `INTERNAL_ERROR` `Procedure "x" timed out
//!   after Nms`, its effects kept, as on the real server where the execution goes on.
//! - **server.stats**, **server.connections**, heartbeat (`intervalMs`; a connection
//!   that did not answer the previous ping by the next tick is closed with 4001
//!   `heartbeat_timeout`; `timeoutMs` is accepted but, as on the real server 0.1.4, not
//!   used), per-IP limit with close 4003, subscription limits per connection and
//!   server-wide (`RATE_LIMITED`), request rate limiting (`rateLimit`: sliding window per
//!   user or remote address, `RATE_LIMITED` with `details.retryAfterMs`), `allowedOrigins`
//!   (a handshake with another `Origin` gets `403 Forbidden`), host and port binding, and
//!   graceful shutdown ([`TestServer::shutdown`]: `system`/`shutdown` notice with
//!   `gracePeriodMs`, wait, close 1000 `server_shutdown`). Not implemented: `path`,
//!   `backpressure`, session revocation config, the built-in identity's options
//!   (`sessionTtl`, `passwordMinLength`, `maxSessionsPerUser`, `loginRateLimit`).
//!
//! # Configuration for a command-line server
//!
//! Every key of the real server's config file that applies in memory has a builder
//! method: `port` → [`TestServerBuilder::port`], `host` → [`TestServerBuilder::host`],
//! `name` → [`TestServerBuilder::name`], `auth` + `adminSecret` →
//! [`TestServerBuilder::auth`] with [`AuthMode::identity`], `rules` →
//! [`TestServerBuilder::rules`], `audit` → [`TestServerBuilder::audit`], `rateLimit` →
//! [`TestServerBuilder::rate_limit`] ([`RateLimit`]), `heartbeat` →
//! [`TestServerBuilder::heartbeat_config`] ([`HeartbeatConfig`]), `connectionLimits` →
//! [`TestServerBuilder::max_subscriptions_per_connection`] and
//! [`TestServerBuilder::max_total_subscriptions`], `exposeErrorDetails` →
//! [`TestServerBuilder::expose_error_details`], `allowedOrigins` →
//! [`TestServerBuilder::allowed_origins`], `maxConnectionsPerIp` →
//! [`TestServerBuilder::max_connections_per_ip`], `maxPayloadBytes` →
//! [`TestServerBuilder::max_payload_bytes`]. On SIGTERM a CLI calls
//! [`TestServer::shutdown`] with its grace period.
//!
//! # Fault injection
//!
//! See the methods of [`TestServer`]: [`TestServer::drop_connections`],
//! [`TestServer::close_connections`], [`TestServer::stall`]/[`TestServer::resume`],
//! [`TestServer::set_delay`], [`TestServer::set_handshake_fault`] (a stalled, delayed or
//! reset WebSocket handshake, see [`HandshakeFault`]), [`TestServer::send_raw_text`],
//! [`TestServer::send_raw_binary`], [`TestServer::send_shutdown`],
//! [`TestServer::revoke_sessions`], [`TestServer::restart`]; and for assertions
//! [`TestServer::received_frames`], [`TestServer::connection_count`],
//! [`TestServer::subscription_count`], [`TestServer::open_sockets`] (TCP sockets held,
//! whatever their state: counts the sockets a client leaks) and
//! [`TestServer::accepted_sockets`] (connection attempts).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

// Layout: `handle` (the public handle) → `server` (thread, accept loop) → `connection`
// (one socket) → `dispatch` (one frame: auth, rate limit, routing, audit, pushes) → `ops`
// (the routing table: every operation with its tier, pure-read flag, resource and
// handler) → `domains::*` (one handler module per domain) → `state` (the data and the
// connection registry) and the engines (`store`, `rules`, `identity`, `procedures`,
// `audit`, `limits`).
mod audit;
mod config;
mod connection;
mod connection_log;
mod dispatch;
mod domains;
mod error;
mod faults;
mod filter;
#[doc(hidden)]
pub mod fuzzing;
mod handle;
mod handshake;
mod identity;
mod json;
mod limits;
mod ops;
mod procedures;
mod protocol;
mod rules;
mod server;
mod sockets;
mod state;
mod store;

pub use config::{
    AuthMode, BucketDef, HeartbeatConfig, PermissionDefault, PermissionRule, Permissions, QueryDef,
    RateLimit, TestServerBuilder, TokenSession,
};
pub use connection_log::ConnectionLog;
pub use error::TestkitError;
pub use faults::HandshakeFault;
pub use handle::TestServer;
