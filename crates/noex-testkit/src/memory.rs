//! An in-memory server without sockets or threads, on time the caller gives, for
//! deterministic harnesses (simulations, property tests, replaying a run exactly).
//!
//! [`MemoryServer`] is the state of a [`TestServer`](crate::TestServer) (the same request
//! handling: the same answers, pushes in the same order, the same errors) with the
//! transport taken out: the caller opens connections, hands in the text frames a client
//! sends, and takes out what the server sends, each call carrying the time. Nothing
//! happens between calls: the server's timers (heartbeat, TTL purge, rule timers) run
//! when the caller calls [`MemoryServer::handle_timeout`], at the time
//! [`MemoryServer::poll_timeout`] named. Two runs given the same calls produce the same
//! frames, except for the random parts (uuids, event ids' random half).
//!
//! ```
//! use noex_testkit::memory::MemoryOutput;
//! use noex_testkit::{BucketDef, TestServer};
//! use serde_json::{json, Value};
//! use std::time::Duration;
//!
//! let mut server = TestServer::builder()
//!     .bucket(BucketDef::new("users").field("name", json!({"type": "string"})))
//!     .heartbeat(Duration::from_secs(30))
//!     .start_in_memory(1_000_000)
//!     .expect("valid configuration");
//! let conn = server.open(1_000_000);
//! let text = |out: Option<(u64, MemoryOutput)>| match out {
//!     Some((_, MemoryOutput::Text(t))) => serde_json::from_str::<Value>(&t).unwrap(),
//!     other => panic!("expected a text frame, got {other:?}"),
//! };
//! let welcome = text(server.poll_output());
//! assert_eq!(welcome["type"], "welcome");
//! assert_eq!(welcome["serverTime"], 1_000_000);
//!
//! server.receive(conn, 1_000_010, r#"{"id":1,"type":"store.insert","bucket":"users","data":{"name":"Ann"}}"#);
//! let answer = text(server.poll_output());
//! assert_eq!(answer["data"]["_createdAt"], 1_000_010);
//!
//! // The first heartbeat tick is due 30 s after the connection opened.
//! assert_eq!(server.poll_timeout(), Some(1_030_000));
//! server.handle_timeout(1_030_000);
//! assert_eq!(text(server.poll_output())["type"], "ping");
//! // No pong by the next tick: the server closes the connection.
//! server.handle_timeout(1_060_000);
//! match server.poll_output() {
//!     Some((c, MemoryOutput::Close { code, reason })) => {
//!         assert_eq!((c, code, reason.as_str()), (conn, 4001, "heartbeat_timeout"))
//!     }
//!     other => panic!("expected a close, got {other:?}"),
//! }
//! assert_eq!(server.connection_count(), 0);
//! ```
//!
//! # How it differs from the socket server
//!
//! - A connection the server closes (close frame or [`MemoryOutput::Dropped`]) is
//!   forgotten at once, as if the client had answered the close at once; frames received
//!   for it afterwards are ignored.
//! - Every connection comes from `127.0.0.1` (for `maxConnectionsPerIp`, rate limiting by
//!   address, `server.connections`). A connection refused by the per-IP limit gets a
//!   number, no welcome and [`MemoryOutput::Close`] 4003 `too_many_connections`.
//! - There are no binary frames, handshakes, stalls, delays or graceful shutdowns.
//! - Rule timers fire at the time they are due (the socket server checks every 10 ms).
//! - When [`handle_timeout`](MemoryServer::handle_timeout) is called late, each
//!   heartbeat ticks once and its next tick is one interval after the call (as the socket
//!   server's, and as a Node.js interval after a busy event loop).

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr};

use serde_json::Value;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use crate::clock::Clock;
use crate::config::TestServerBuilder;
use crate::connection_log::ConnectionLog;
use crate::error::TestkitError;
use crate::heartbeat::{Beat, Heartbeat};
use crate::protocol;
use crate::state::{Core, MemoryEvent, Outbound, Sink, TextOutcome};

/// The address every in-memory connection comes from.
const MEMORY_PEER: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// What the server sends to one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MemoryOutput {
    /// A text frame (JSON).
    Text(String),
    /// A close frame; the connection is closed and forgotten.
    Close {
        /// The close code (4001 `heartbeat_timeout`, 4002 `session_revoked`, 1009, ...).
        code: u16,
        /// The close reason.
        reason: String,
    },
    /// The connection was dropped without a close frame (as a TCP socket closed or
    /// reset); it is forgotten.
    Dropped,
}

/// One open connection's timing.
#[derive(Debug)]
struct MemConn {
    /// When its next heartbeat tick is due.
    next_tick: i64,
    heartbeat: Heartbeat,
}

/// An in-memory noex-server on caller-driven time; see the [module docs](self).
///
/// Connections are numbered by the server (`conn-N` in `server.connections` and the audit
/// log). Every method takes the time as milliseconds since the Unix epoch; a time earlier
/// than one given before is taken as the later one (the server's clock never goes
/// backwards). Output waits in a queue until [`MemoryServer::poll_output`] takes it.
#[derive(Debug)]
pub struct MemoryServer {
    core: Core,
    clock: Clock,
    /// What the core sends to connections, in order.
    events: UnboundedReceiver<(u64, MemoryEvent)>,
    sender: UnboundedSender<(u64, MemoryEvent)>,
    /// Output not yet taken by the caller.
    output: VecDeque<(u64, MemoryOutput)>,
    /// Open connections in order of opening.
    conns: BTreeMap<u64, MemConn>,
    /// When the next TTL purge is due (`None`: purging is off).
    next_purge: Option<i64>,
}

impl TestServerBuilder {
    /// Build an in-memory server ([`MemoryServer`]) from this configuration, its clock
    /// standing at `now_ms` (ms since the Unix epoch). Socket settings (`host`, `port`,
    /// `allowedOrigins`) do not apply.
    pub fn start_in_memory(self, now_ms: i64) -> Result<MemoryServer, TestkitError> {
        if let Some(e) = self.errors.first() {
            return Err(TestkitError::Config(e.clone()));
        }
        let clock = Clock::manual(now_ms);
        let core = Core::with_clock(self.config, clock.clone())?;
        let (sender, events) = unbounded_channel();
        let next_purge = core
            .cfg
            .ttl_check_interval
            .map(|every| now_ms.saturating_add(duration_ms(every)));
        Ok(MemoryServer {
            core,
            clock,
            events,
            sender,
            output: VecDeque::new(),
            conns: BTreeMap::new(),
            next_purge,
        })
    }
}

fn duration_ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1)
}

impl MemoryServer {
    /// Move the clock to `now_ms` (never backwards); the time now.
    fn advance(&mut self, now_ms: i64) -> i64 {
        self.clock.advance_to(now_ms)
    }

    fn heartbeat_ms(&self) -> i64 {
        duration_ms(self.core.cfg.heartbeat)
    }

    /// Forget connection `conn`: the server's side and its timing.
    fn forget(&mut self, conn: u64) {
        if self.conns.remove(&conn).is_some() {
            self.core.unregister(conn);
        }
    }

    /// Move what the core sent into the output queue; a close or drop forgets the
    /// connection (later frames for it are not sent, as a socket's).
    fn collect(&mut self) {
        while let Ok((conn, event)) = self.events.try_recv() {
            if !self.conns.contains_key(&conn) {
                continue;
            }
            let out = match event {
                MemoryEvent::Out(Outbound::Text(t)) => MemoryOutput::Text(t),
                // Only `TestServer::send_raw_binary` sends binary frames.
                MemoryEvent::Out(Outbound::Binary(_)) => continue,
                MemoryEvent::Out(Outbound::Close(code, reason)) => {
                    self.forget(conn);
                    MemoryOutput::Close { code, reason }
                }
                MemoryEvent::Drop => {
                    self.forget(conn);
                    MemoryOutput::Dropped
                }
            };
            self.output.push_back((conn, out));
        }
    }

    /// A client connects at `now_ms`: returns the connection's number; its `welcome` is
    /// queued (or, past `maxConnectionsPerIp`, a close 4003 `too_many_connections`).
    pub fn open(&mut self, now_ms: i64) -> u64 {
        let now = self.advance(now_ms);
        let sink = Sink::Memory(self.sender.clone());
        let Some(conn) = self.core.register_sink(MEMORY_PEER, sink) else {
            let conn = self.core.reserve_conn_id();
            tracing::debug!(conn, "per-IP connection limit reached");
            self.output.push_back((
                conn,
                MemoryOutput::Close {
                    code: 4003,
                    reason: "too_many_connections".into(),
                },
            ));
            return conn;
        };
        let next_tick = now.saturating_add(self.heartbeat_ms());
        self.conns.insert(
            conn,
            MemConn {
                next_tick,
                heartbeat: Heartbeat::default(),
            },
        );
        let welcome = self.core.welcome();
        self.core.send(conn, Outbound::Text(welcome));
        self.collect();
        conn
    }

    /// Connection `conn` sent the text frame `text` at `now_ms`: the server handles it as
    /// the socket server does (a `pong` counts for the heartbeat; a frame longer than
    /// `maxPayloadBytes` closes the connection with 1009). Ignored when `conn` is not open.
    pub fn receive(&mut self, conn: u64, now_ms: i64, text: &str) {
        self.advance(now_ms);
        if !self.conns.contains_key(&conn) {
            tracing::debug!(conn, "frame for a connection that is not open");
            return;
        }
        if text.len() > self.core.cfg.max_payload_bytes {
            tracing::debug!(conn, len = text.len(), "frame too large");
            self.core.send(conn, Outbound::Close(1009, String::new()));
        } else if let TextOutcome::Pong(ts) = self.core.on_text(conn, text) {
            if let Some(c) = self.conns.get_mut(&conn) {
                c.heartbeat.pong(ts);
            }
        }
        self.collect();
    }

    /// Connection `conn` closed or went away at `now_ms`: the server forgets it (its
    /// subscriptions end). Nothing is sent. Ignored when `conn` is not open.
    pub fn receive_close(&mut self, conn: u64, now_ms: i64) {
        self.advance(now_ms);
        self.forget(conn);
        self.collect();
    }

    /// The next frame for a connection, in the order the server sent them (across
    /// connections); `None` when there is none.
    pub fn poll_output(&mut self) -> Option<(u64, MemoryOutput)> {
        self.output.pop_front()
    }

    /// When [`MemoryServer::handle_timeout`] should next be called: the earliest of the
    /// connections' heartbeat ticks, the next TTL purge (while a bucket has a TTL) and
    /// the earliest rule timer. It may be earlier than [`MemoryServer::now_ms`] (overdue).
    /// `None` when nothing is scheduled.
    pub fn poll_timeout(&self) -> Option<i64> {
        let ticks = self.conns.values().map(|c| c.next_tick).min();
        let purge = self
            .next_purge
            .filter(|_| self.core.store.has_ttl_buckets());
        let timers = self.core.rules.as_ref().and_then(|r| r.next_timer_due());
        [ticks, purge, timers].into_iter().flatten().min()
    }

    /// Run what is due at `now_ms`, in order of due time: each connection's heartbeat
    /// tick (a `ping` with `timestamp` = now, or, when the previous ping got no pong,
    /// close 4001 `heartbeat_timeout`), the TTL purge (pushing changed query results) and
    /// the rule engine's timers (pushing their events).
    pub fn handle_timeout(&mut self, now_ms: i64) {
        let now = self.advance(now_ms);
        #[derive(PartialEq, Eq, PartialOrd, Ord)]
        enum Due {
            Purge,
            Timers,
            Tick(u64),
        }
        let mut due: Vec<(i64, Due)> = self
            .conns
            .iter()
            .filter(|(_, c)| c.next_tick <= now)
            .map(|(id, c)| (c.next_tick, Due::Tick(*id)))
            .collect();
        if let Some(at) = self.next_purge.filter(|at| *at <= now) {
            due.push((at, Due::Purge));
        }
        if let Some(at) = self
            .core
            .rules
            .as_ref()
            .and_then(|r| r.next_timer_due())
            .filter(|at| *at <= now)
        {
            due.push((at, Due::Timers));
        }
        due.sort();
        let heartbeat = self.heartbeat_ms();
        for (_, what) in due {
            match what {
                Due::Purge => {
                    if let Some(every) = self.core.cfg.ttl_check_interval {
                        self.next_purge = Some(now.saturating_add(duration_ms(every)));
                    }
                    self.core.purge_expired();
                }
                Due::Timers => self.core.fire_timers(),
                Due::Tick(conn) => {
                    // Closed meanwhile (by an earlier tick's output)? Then nothing.
                    let Some(c) = self.conns.get_mut(&conn) else {
                        continue;
                    };
                    c.next_tick = now.saturating_add(heartbeat);
                    match c.heartbeat.tick(now) {
                        Beat::Timeout => {
                            tracing::debug!(conn, "heartbeat timeout");
                            self.core
                                .send(conn, Outbound::Close(4001, "heartbeat_timeout".into()));
                        }
                        Beat::Ping(at) => self.core.send(conn, Outbound::Text(protocol::ping(at))),
                    }
                }
            }
            self.collect();
        }
        self.collect();
    }

    /// The server's time: the latest time given (ms since the Unix epoch).
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    // ── controls, as on TestServer ──────────────────────────────

    /// Number of open connections.
    pub fn connection_count(&self) -> usize {
        self.core.connection_count()
    }

    /// Live subscriptions (store query and rules subscriptions) of open connections.
    pub fn subscription_count(&self) -> usize {
        self.core.subscription_count()
    }

    /// Per connection (also closed ones, oldest first; the latest 1 000 connections): the
    /// text frames it received.
    pub fn received_frames(&self) -> Vec<ConnectionLog> {
        self.core.logs()
    }

    /// Every record of `bucket` in insertion order (empty when the bucket does not exist).
    pub fn records(&self, bucket: &str) -> Vec<Value> {
        self.core.records(bucket)
    }

    /// Insert a record as a client's `store.insert` would, at the server's time (same
    /// validation, same pushes to subscribers).
    pub fn insert(&mut self, bucket: &str, data: Value) -> Result<Value, TestkitError> {
        let r = self.core.insert(bucket, data).map_err(Into::into);
        self.collect();
        r
    }

    /// Purge the expired records of TTL buckets now, pushing changed query results;
    /// returns how many records were removed.
    pub fn purge_expired(&mut self) -> usize {
        let n = self.core.purge_expired();
        self.collect();
        n
    }

    /// Every session expires now: each connection's (static token or identity session)
    /// and every session the built-in identity keeps. A logged-in connection's next
    /// request (other than `auth.*`, `identity.login`, `identity.loginWithSecret`)
    /// answers `UNAUTHORIZED` `Session expired`; `auth.login` with an identity session
    /// token answers `Invalid token`. Sessions made afterwards live their full time.
    pub fn expire_sessions(&mut self) {
        self.core.expire_sessions();
    }

    /// Send `system`/`session_revoked` to every connection and close it with 4002
    /// `session_revoked` (the real server always sends the reason "Session revoked by
    /// administrator"; `reason` is only logged).
    pub fn revoke_sessions(&mut self, reason: &str) {
        tracing::debug!(reason, "revoking sessions");
        self.core.revoke_all();
        self.collect();
    }

    /// `server.revokeSession(userId)`: each connection logged in as `user_id` gets
    /// `system`/`session_revoked` and close 4002, and `auth.login` as that user answers
    /// `SESSION_REVOKED` for the next hour of the server's time. Returns how many
    /// connections were closed.
    pub fn revoke_session(&mut self, user_id: &str) -> usize {
        let n = self.core.revoke_user(user_id);
        self.collect();
        n
    }

    /// Drop every open connection without a close frame: each gets
    /// [`MemoryOutput::Dropped`].
    pub fn drop_connections(&mut self) {
        self.core.drop_all();
        self.collect();
    }

    /// Close every open connection with `code` and `reason`.
    pub fn close_connections(&mut self, code: u16, reason: &str) {
        let reason = reason.to_string();
        self.core
            .broadcast(|| Outbound::Close(code, reason.clone()));
        self.collect();
    }

    /// Restart as a new server process at the server's time: every open connection is
    /// [`MemoryOutput::Dropped`], subscription ids start again at `sub-1`, the rate
    /// limiter and timers start afresh, and the data (buckets, records, facts, rules,
    /// procedures, users, sessions) is kept or reset to the builder's configuration.
    pub fn restart(&mut self, keep_data: bool) {
        self.core.drop_all();
        self.collect();
        self.core.restart(keep_data);
        let now = self.clock.now_ms();
        self.next_purge = self
            .core
            .cfg
            .ttl_check_interval
            .map(|every| now.saturating_add(duration_ms(every)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_server_is_send_and_static() {
        fn check<T: Send + 'static>() {}
        check::<MemoryServer>();
        check::<MemoryOutput>();
    }
}
