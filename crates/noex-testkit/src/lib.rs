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
//! For deterministic harnesses there is also an in-memory server without sockets or
//! threads, on time the caller drives: [`memory::MemoryServer`]
//! ([`TestServerBuilder::start_in_memory`]), with the same request handling. Every
//! timestamp the server writes and every expiry it checks reads the server's own clock:
//! the OS clock for [`TestServer`], the caller's time in memory.
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
//!   clear/buckets/stats; filters exactly as the store's `filter-matcher`: operators
//!   `$eq $neq $gt $gte $lt $lte $in $nin $contains $startsWith $endsWith $exists
//!   $between` (ANDed) and top-level `$or`/`$and`; any other `$` key (`$ne`, `$regex`, ...)
//!   is ignored, so the field matches every record; relational operators coerce as
//!   JavaScript does (`"10" > 5`); a string `$in`/`$nin` does substring matching;
//!   `$contains` is case-insensitive and for strings only (never arrays); plain object or
//!   array values never match (`===`); malformed operator values give the store's
//!   `INTERNAL_ERROR`s (`ops.$in.includes is not a function`, ...). `store.insert` with an
//!   existing key replaces the record silently. Atomic `store.transaction`, committed as
//!   the store commits: each bucket's net writes checked against the records as they were
//!   (an update then a delete of one record, or a delete then an insert of its key, is a
//!   `CONFLICT`);
//!   admin operations (defineBucket, updateBucket, getBucketSchema, dropBucket,
//!   defineQuery, undefineQuery, listQueries). `pattern` (with the `regex` crate: an
//!   unanchored search like JavaScript's `RegExp.test`; syntax the crate lacks, such as
//!   lookaround and backreferences, matches nothing). TTL buckets (`ttl` as milliseconds
//!   or `"30s"`/`"5m"`/`"1h"`/`"7d"`; records get `_expiresAt`, a timer in the server
//!   purges expired records every second by default and subscribers get the new result)
//!   and `maxSize` buckets (inserting into a full bucket evicts the oldest records by
//!   `_createdAt`). Not implemented: custom validators.
//! - **Reactive queries**: after a change to a bucket (insert, update, delete of an
//!   existing key, transaction, TTL purge, `maxSize` eviction) each live subscription on
//!   it is re-run and, when its result is not deep-equal to the last one, the whole new
//!   result is pushed on channel `subscription`, after the answer to the request that
//!   caused it. `store.clear` and `updateBucket` push nothing (the last result goes stale,
//!   as on the real server). `undefineQuery` and `dropBucket` silently stop the
//!   subscriptions concerned (re-defining does not revive them; `store.unsubscribe` still
//!   answers `{unsubscribed: true}` once). Subscription ids (`sub-N`, shared with rules)
//!   are taken before the query runs, so a failed `store.subscribe` uses one up.
//!   `{{params.x}}` without a value is `undefined` (matches records lacking the field); a
//!   builder [`QueryDef::where_param`] query subscribed without `params` fails as the
//!   launcher's does (`INTERNAL_ERROR` `Cannot read properties of undefined (reading
//!   'role')`).
//! - **Rules** (`rules.*`), as noex-rules runs them: emit with event ids, timestamps,
//!   correlation/causation ids; `event` pushes sent before the emit's (or setFact's)
//!   answer, exact-pattern subscribers first. Two topic matchers, as the engine has:
//!   `rules.subscribe` patterns (`*` = everything, a trailing `.*` = the prefix at any
//!   depth including the bare prefix, an inner `*` = one possibly empty segment, `**` and
//!   `ord*` literal) and rule event triggers (a trailing `.*` = deeper topics only, else
//!   each `*` = one or more non-dot characters). Fact patterns (`*` = one or more non-colon
//!   characters, `prefix:*` = exactly one more segment); `rules.queryFacts` only looks at
//!   keys whose first segment equals the pattern's literally (unless the pattern starts
//!   with `*`). The registry with one version counter for all rules (`updateRule`
//!   registers again: next number, `createdAt` reset; unknown id → `INTERNAL_ERROR`
//!   `Rule 'x' not found`), the real validator messages, and its quirks: a rule without
//!   `tags` answers `INTERNAL_ERROR` `rule.tags is not iterable` yet is stored and fires; a
//!   rule without `enabled` never fires; one without `conditions` fails when triggered. No
//!   rule groups (every `group` is unknown). Execution: event, fact (on `rules.setFact`,
//!   not on deletes nor on facts set by rules, as the engine) and timer triggers in
//!   priority order; conditions with sources `event`, `fact`, `context` and every
//!   operator; actions `emit_event`, `set_fact`, `delete_fact`, `set_timer`,
//!   `cancel_timer`, `log` (to `tracing`), `conditional`, `for_each`, `try_catch`, and
//!   `call_service` (fails: `Service not found`). `{"ref"}` values resolve only as whole
//!   values (`event.`/`trigger.` into the trigger data, `fact.<key>` with the rest as the
//!   key, `var.`, `matched.`; unresolvable → the key is dropped); `${…}` interpolation in
//!   topics, fact keys, timer names and log messages only (missing → empty string). A
//!   failing action is skipped, a bad ref source aborts the rule's remaining actions;
//!   forward chaining stops at depth 10. Not implemented: temporal triggers, lookups,
//!   baselines, rule groups, tracing.
//! - **Auth**: static tokens ([`AuthMode::Tokens`]) with the real tier check
//!   (`reader` < `writer` < `admin`), optional auth (`auth.required: false`,
//!   [`TestServerBuilder::auth_required`]), permission checks ([`Permissions`]: declarative
//!   rules with buckets/topics and a default, or `checkRoles`), revocation
//!   ([`TestServer::revoke_session`]: close 4002 and `SESSION_REVOKED` at the next login
//!   for an hour), and built-in identity ([`AuthMode::Identity`]):
//!   login, loginWithSecret, logout, whoami, refreshSession, users, roles, role
//!   assignment, ACL grant/revoke/getAcl/myAccess, ownership, permission checks with the
//!   system roles, and identity session tokens accepted by `auth.login` on a new
//!   connection. No login rate limiting.
//! - **Session lifetimes**, where the real server checks them: a static token's session
//!   ([`TokenSession::expires_at`], [`TokenSession::expires_in`]) or a built-in identity
//!   session (lifetime [`TestServerBuilder::session_ttl`], `auth.sessionTtl`, default 24
//!   hours; `expiresAt < now` means expired) is refused by the check before every request
//!   but `auth.*`, `identity.login` and `identity.loginWithSecret`: `UNAUTHORIZED`
//!   `Session expired` once (the session is dropped), then `Authentication required`.
//!   `auth.login` answers `Token has expired` for a static token past its `expiresAt` and
//!   `Invalid token` for an expired identity token (validation deletes it);
//!   `auth.whoami` drops an expired session and answers `{authenticated: false}`;
//!   `identity.refreshSession` deletes the old session and makes a new one (new token
//!   and expiry), answers `No active session to refresh` unless the connection logged in
//!   through `identity.login`/`loginWithSecret` (not `auth.login`), and `Invalid or
//!   expired session` when the stored session is gone. [`TestServer::expire_sessions`]
//!   (and the same on the in-memory server) makes every session expire at once.
//! - **Audit** (when on): entries for the operations of the audited tiers (default `admin`
//!   and `write`, see [`TestServerBuilder::audit_tiers`]; the real server's default is
//!   `admin`), `maxEntries`, `audit.query` filters (`userId`, `operation`, `result`,
//!   `from`, `to`, `limit`).
//! - **Procedures**: register/get/list/update/unregister/call with every step action of
//!   the real server (`store.get/where/findOne/insert/update/delete/count`, `aggregate`,
//!   `rules.emit/setFact/getFact`, `if`, `transform`, `return`) and `transaction: true`;
//!   `timeoutMs` is validated but never fires: the real server races the call against
//!   a timer its in-memory steps always beat (they settle in microtasks), and the steps
//!   here are synchronous.
//! - **server.stats**, **server.connections**, heartbeat (`intervalMs`; a connection
//!   that did not answer the previous ping by the next tick is closed with 4001
//!   `heartbeat_timeout`; `timeoutMs` is accepted but, as on the real server 0.1.4, not
//!   used), per-IP limit with close 4003, subscription limits per connection and
//!   server-wide (`RATE_LIMITED`), request rate limiting (`rateLimit`: sliding window per
//!   user or remote address, `RATE_LIMITED` with `details.retryAfterMs`), `allowedOrigins`
//!   (a handshake with another `Origin` gets `403 Forbidden`), host and port binding, and
//!   graceful shutdown ([`TestServer::shutdown`]: `system`/`shutdown` notice with
//!   `gracePeriodMs`, wait, close 1000 `server_shutdown`). Not implemented: `path`,
//!   `backpressure`, session revocation config, the built-in identity's options other
//!   than `sessionTtl` (`passwordMinLength`, `maxSessionsPerUser`, `loginRateLimit`).
//!
//! # Configuration for a command-line server
//!
//! Every key of the real server's config file that applies in memory has a builder
//! method: `port` → [`TestServerBuilder::port`], `host` → [`TestServerBuilder::host`],
//! `name` → [`TestServerBuilder::name`], `auth` + `adminSecret` →
//! [`TestServerBuilder::auth`] with [`AuthMode::identity`], `auth.sessionTtl` →
//! [`TestServerBuilder::session_ttl`], `rules` →
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
//! [`TestServer::revoke_sessions`], [`TestServer::revoke_session`],
//! [`TestServer::expire_sessions`], [`TestServer::restart`]; and for assertions
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
// `audit`, `limits`); `subscriptions` keeps the store's and the rule engine's
// subscriptions, counted per connection; `condition_operators` is the one list of
// condition operators that rule conditions and procedure `if` steps evaluate.
mod audit;
mod clock;
mod condition_operators;
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
mod heartbeat;
mod identity;
mod json;
mod limits;
pub mod memory;
mod ops;
mod procedures;
mod protocol;
mod rules;
mod server;
mod sockets;
mod state;
mod store;
mod subscriptions;

pub use config::{
    AuthMode, BucketDef, HeartbeatConfig, PermissionDefault, PermissionRule, Permissions, QueryDef,
    RateLimit, TestServerBuilder, TokenSession,
};
pub use connection_log::ConnectionLog;
pub use error::TestkitError;
pub use faults::HandshakeFault;
pub use handle::TestServer;
