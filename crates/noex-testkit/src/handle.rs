//! The public handle: start, fault injection, direct data access, stop.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::mpsc;

use crate::config::{Config, TestServerBuilder};
use crate::connection_log::ConnectionLog;
use crate::error::TestkitError;
use crate::faults::{HandshakeFault, Shared};
use crate::protocol;
use crate::server::{self, Cmd};
use crate::state::{Core, Outbound};

/// How long `restart`/`stop` wait for the server thread.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

impl TestServerBuilder {
    /// Start the server on its own thread; returns once it is listening.
    pub fn start(self) -> Result<TestServer, TestkitError> {
        if let Some(e) = self.errors.first() {
            return Err(TestkitError::Config(e.clone()));
        }
        TestServer::start_with(self.config)
    }
}

/// A running test server. Dropping it stops the server.
///
/// Every method is synchronous, takes `&self`, and may be called from any thread, inside
/// or outside any async runtime.
#[derive(Debug)]
pub struct TestServer {
    shared: Arc<Shared>,
    runtime: tokio::runtime::Handle,
    cmds: mpsc::UnboundedSender<Cmd>,
    thread: Mutex<Option<JoinHandle<()>>>,
    port: u16,
    ip: IpAddr,
    stopped: AtomicBool,
}

impl TestServer {
    /// A builder with the defaults (no buckets, rules on, no auth, heartbeat 30 s).
    pub fn builder() -> TestServerBuilder {
        TestServerBuilder::default()
    }

    pub(crate) fn start_with(config: Config) -> Result<TestServer, TestkitError> {
        let core = Core::new(config)?;
        let listener = server::bind(&core.cfg.host, core.cfg.port)
            .map_err(|e| TestkitError::Start(e.to_string()))?;
        let local = listener
            .local_addr()
            .map_err(|e| TestkitError::Start(e.to_string()))?;
        let port = local.port();
        // Where clients connect: a wildcard address means this machine.
        let ip = match local.ip() {
            IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        let shared = Arc::new(Shared::new(core));
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (rt_tx, rt_rx) = std::sync::mpsc::channel();
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("noex-testkit-{port}"))
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = rt_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let _ = rt_tx.send(Ok(rt.handle().clone()));
                rt.block_on(server::main_loop(thread_shared, listener, cmd_rx));
                rt.shutdown_timeout(Duration::from_millis(200));
            })
            .map_err(|e| TestkitError::Start(e.to_string()))?;
        let runtime = rt_rx
            .recv()
            .map_err(|e| TestkitError::Start(e.to_string()))?
            .map_err(TestkitError::Start)?;
        tracing::debug!(port, "test server listening");
        Ok(TestServer {
            shared,
            runtime,
            cmds: cmd_tx,
            thread: Mutex::new(Some(thread)),
            port,
            ip,
            stopped: AtomicBool::new(false),
        })
    }

    /// `ws://HOST:PORT`: `ws://127.0.0.1:PORT` by default; with a wildcard
    /// [`host`](crate::TestServerBuilder::host) (`0.0.0.0`, `::`) the loopback address.
    pub fn url(&self) -> String {
        format!("ws://{}", SocketAddr::new(self.ip, self.port))
    }

    /// The address the server listens on (the wildcard address when bound to one).
    pub fn local_addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.port)
    }

    /// The listening port (stays the same across [`TestServer::restart`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Number of open (registered) connections.
    pub fn connection_count(&self) -> usize {
        self.shared.core().connection_count()
    }

    /// Live subscriptions (store query subscriptions and rules subscriptions) across all
    /// open connections, as the server sees them. A closed connection's subscriptions are
    /// gone, and a restart ends them all.
    pub fn subscription_count(&self) -> usize {
        self.shared.core().subscription_count()
    }

    /// TCP sockets the server holds open right now: accepted and not yet released,
    /// whatever their state (in a stalled or delayed handshake, served, or closing). A
    /// client that leaks connection attempts makes this grow.
    pub fn open_sockets(&self) -> usize {
        self.shared.sockets.open()
    }

    /// TCP connections accepted since the server started (across restarts; never
    /// decreases): counts connection attempts.
    pub fn accepted_sockets(&self) -> u64 {
        self.shared.sockets.accepted()
    }

    /// Per connection (also closed ones, oldest first; the latest 1 000 connections): the
    /// text frames it received.
    pub fn received_frames(&self) -> Vec<ConnectionLog> {
        self.shared.core().logs()
    }

    /// Every record of `bucket` in insertion order (empty when the bucket does not exist).
    pub fn records(&self, bucket: &str) -> Vec<Value> {
        self.shared.core().records(bucket)
    }

    /// Insert a record as a client's `store.insert` would (same validation, same pushes
    /// to subscribers).
    pub fn insert(&self, bucket: &str, data: Value) -> Result<Value, TestkitError> {
        self.shared.core().insert(bucket, data).map_err(Into::into)
    }

    /// Close every connection abruptly: no close frame, the TCP socket is just closed.
    pub fn drop_connections(&self) {
        self.shared.core().drop_all();
    }

    /// Send a close frame with `code` and `reason` to every client, then close. (While
    /// stalled, this and the raw sends below are queued until [`TestServer::resume`];
    /// [`TestServer::drop_connections`] acts immediately.)
    pub fn close_connections(&self, code: u16, reason: &str) {
        let reason = reason.to_string();
        self.shared
            .core()
            .broadcast(|| Outbound::Close(code, reason.clone()));
    }

    /// Stop reading from and writing to every connection (sockets stay open; frames from
    /// clients wait in the socket and are handled after [`TestServer::resume`]; no pings
    /// while stalled). New connections are accepted but get no welcome until resumed.
    pub fn stall(&self) {
        self.shared.set_stalled(true);
    }

    /// End a [`TestServer::stall`]: queued frames are handled and sent, heartbeat restarts.
    pub fn resume(&self) {
        self.shared.set_stalled(false);
    }

    /// How the server answers the WebSocket handshake of connections accepted from now on
    /// (connections already accepted keep the fault they got). Kept across
    /// [`TestServer::restart`]; [`HandshakeFault::Normal`] turns it off.
    pub fn set_handshake_fault(&self, fault: HandshakeFault) {
        self.shared.set_handshake_fault(fault);
    }

    /// Delay the handling of every request by `delay` (`Duration::ZERO` turns it off).
    pub fn set_delay(&self, delay: Duration) {
        self.shared.set_delay(delay);
    }

    /// Send a raw text frame to every client.
    pub fn send_raw_text(&self, text: &str) {
        let text = text.to_string();
        self.shared
            .core()
            .broadcast(|| Outbound::Text(text.clone()));
    }

    /// Send a raw binary frame to every client.
    pub fn send_raw_binary(&self, data: Vec<u8>) {
        self.shared
            .core()
            .broadcast(|| Outbound::Binary(data.clone()));
    }

    /// Behave like the real server's `stop({gracePeriodMs})`: a `system`/`shutdown` event
    /// (when the grace period is positive), then after the grace period a close 1000
    /// `server_shutdown`. Connections arriving meanwhile are closed with 1001
    /// `server_shutting_down`. Afterwards the server accepts connections again.
    pub fn send_shutdown(&self, grace_period_ms: u64) {
        {
            let mut core = self.shared.core();
            core.shutting_down = true;
            if grace_period_ms > 0 {
                let mut fields = Map::new();
                fields.insert("gracePeriodMs".into(), grace_period_ms.into());
                let frame = protocol::system("shutdown", fields);
                core.broadcast(|| Outbound::Text(frame.clone()));
            }
        }
        let shared = self.shared.clone();
        self.runtime.spawn(async move {
            tokio::time::sleep(Duration::from_millis(grace_period_ms)).await;
            let mut core = shared.core();
            core.broadcast(|| Outbound::Close(1000, "server_shutdown".into()));
            core.shutting_down = false;
        });
    }

    /// Stop the server as the real server's `stop({gracePeriodMs})` (what its CLI does on
    /// SIGTERM/SIGINT): stop accepting connections; when `grace` is positive and clients
    /// are connected, send every connection a `system`/`shutdown` event with
    /// `gracePeriodMs` and wait until they have all disconnected or `grace` has passed;
    /// then close the remaining connections with 1000 `server_shutdown` and stop. Blocks
    /// until the server thread has ended. Afterwards the handle is stopped, as after
    /// [`TestServer::stop`]; calling it on a stopped server does nothing.
    pub fn shutdown(&self, grace: Duration) {
        if self.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        let (tx, rx) = std::sync::mpsc::channel();
        if self.cmds.send(Cmd::Shutdown { grace, done: tx }).is_ok() {
            let _ = rx.recv_timeout(grace.saturating_add(COMMAND_TIMEOUT));
        }
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }

    /// Purge the expired records of TTL buckets now (the store's `purgeTtl`), pushing
    /// changed query results; returns how many records were removed. The server also does
    /// this every [`ttl_check_interval`](crate::TestServerBuilder::ttl_check_interval).
    pub fn purge_expired(&self) -> usize {
        self.shared.core().purge_expired()
    }

    /// Send `system`/`session_revoked` to every client and close them with 4002
    /// `session_revoked`. The real server always sends the reason "Session revoked by
    /// administrator"; `reason` is only logged.
    pub fn revoke_sessions(&self, reason: &str) {
        tracing::debug!(reason, "revoking sessions");
        self.shared.core().revoke_all();
    }

    /// Every session expires now: each connection's session (from a static token or the
    /// built-in identity) and every session the built-in identity keeps. A logged-in
    /// connection's next request (other than `auth.*`, `identity.login` and
    /// `identity.loginWithSecret`) answers `UNAUTHORIZED` `Session expired`, exactly where
    /// the real server would once the session's `expiresAt` has passed; `auth.whoami`
    /// answers `{authenticated: false}`; `auth.login` with an identity session token
    /// answers `Invalid token`. Sessions made afterwards live their full time.
    pub fn expire_sessions(&self) {
        self.shared.core().expire_sessions();
    }

    /// `server.revokeSession(userId)` of the real server: each connection logged in as
    /// `user_id` gets `system`/`session_revoked` and is closed with 4002
    /// `session_revoked`, and `auth.login` as that user answers `SESSION_REVOKED`
    /// `Session has been revoked` for the next hour. Returns how many connections were
    /// closed.
    pub fn revoke_session(&self, user_id: &str) -> usize {
        self.shared.core().revoke_user(user_id)
    }

    /// Stop and start again on the same port, as a new server process: open connections
    /// get close 1000 `server_shutdown`, subscription ids start again at `sub-1`, and the
    /// data (buckets, records, facts, rules, procedures, users) is kept or reset to the
    /// builder's configuration. The listening socket is kept (a port given up and bound
    /// again could be taken meanwhile by another socket): connections made during the
    /// restart are accepted once it is done. Returns once the server serves again; a
    /// failure (the server stopped) is logged, see [`TestServer::try_restart`].
    pub fn restart(&self, keep_data: bool) {
        if let Err(e) = self.try_restart(keep_data) {
            tracing::warn!(error = %e, "test server restart failed");
        }
    }

    /// [`TestServer::restart`], reporting failure.
    pub fn try_restart(&self, keep_data: bool) -> Result<(), TestkitError> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.cmds
            .send(Cmd::Restart {
                keep_data,
                done: tx,
            })
            .map_err(|_| TestkitError::Stopped)?;
        match rx.recv_timeout(COMMAND_TIMEOUT) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(TestkitError::Start(e)),
            Err(_) => Err(TestkitError::Stopped),
        }
    }

    /// Stop the server (close 1000 `server_shutdown` to open connections) and join its
    /// thread. Idempotent; also done on drop.
    pub fn stop(&self) {
        if self.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        let (tx, rx) = std::sync::mpsc::channel();
        if self.cmds.send(Cmd::Stop { done: tx }).is_ok() {
            let _ = rx.recv_timeout(COMMAND_TIMEOUT);
        }
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}
