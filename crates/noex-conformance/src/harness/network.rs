//! [`SimNetwork`]: the client's [`Connector`] onto an in-memory server
//! ([`MemoryServer`]) on the [`SimRuntime`]'s virtual clock, with the faults a hostile
//! network gives.
//!
//! Frames move synchronously when nothing delays them: a frame the client writes is
//! handed to the server at once, and what the server sends is queued on the right
//! connection's stream. A pump task on the runtime runs the server's timers (heartbeat,
//! TTL purge, rule timers) when the clock reaches them and delivers delayed frames.

use super::halves::{SimSink, SimStream};
use super::links::{from_millis, lock, millis, Clock, Filter, Net, NetHandle};
use super::wire::{ConnectFault, FrameEvent, LinkInfo, NetStats, Transfer, Verdict};
use super::SimRuntime;
use futures::future::BoxFuture;
use noex_client::runtime::{Backend, Connector, FrameSink, FrameStream, Runtime};
use noex_client::{TlsOptions, TransportError, TransportErrorKind};
use noex_testkit::memory::{MemoryOutput, MemoryServer};
use noex_testkit::{TestServerBuilder, TestkitError};
use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

/// The server's clock at virtual time zero when [`SimNetwork::start`] makes the server:
/// 2026-01-01T00:00:00Z in milliseconds since the Unix epoch.
pub const START_MS: i64 = 1_767_225_600_000;

/// The URL to give the client (any URL reaches the one server).
pub const URL: &str = "ws://sim.invalid/";

/// The client's [`Connector`] onto a [`MemoryServer`] on a [`SimRuntime`]'s clock, with
/// faults. Cheap to clone (every clone is the same network).
///
/// The server's clock follows the virtual clock: its time is
/// `start_ms + virtual milliseconds elapsed`.
///
/// ```
/// use noex_client::{Client, ClientOptions};
/// use noex_conformance::harness::{SimNetwork, SimRuntime, URL};
/// use noex_testkit::TestServer;
/// use std::time::Duration;
///
/// let rt = SimRuntime::new();
/// let net = SimNetwork::start(&rt, TestServer::builder().heartbeat(Duration::from_secs(30)))
///     .expect("server");
/// let client = Client::new(net.backend());
/// rt.block_on(client.connect(URL, ClientOptions::new())).expect("connects");
/// // A virtual hour of heartbeats, at once.
/// rt.advance(Duration::from_secs(3600));
/// assert!(client.is_connected());
/// let link = net.links().pop().expect("one link");
/// assert_eq!(link.frames_to_client, 1 + 120, "the welcome and 120 pings");
/// rt.block_on(client.disconnect());
/// rt.shutdown();
/// ```
#[derive(Clone)]
pub struct SimNetwork {
    pub(super) inner: Arc<NetInner>,
}

pub(super) struct NetInner {
    pub(super) rt: SimRuntime,
    pub(super) start_ms: i64,
    pub(super) net: Mutex<Net>,
}

impl NetHandle for SimNetwork {
    /// Runs `f` on the network's state and routes what the server sent meanwhile.
    fn with<R>(&self, f: impl FnOnce(&mut Net, Clock) -> R) -> R {
        let clock = self.clock();
        let (r, pump) = {
            let mut net = lock(&self.inner.net);
            let r = f(&mut net, clock);
            net.route(clock);
            (r, net.pump.take())
        };
        if let Some(pump) = pump {
            pump.wake();
        }
        r
    }

    fn net(&self) -> &Mutex<Net> {
        &self.inner.net
    }

    fn elapsed(&self) -> Duration {
        self.inner.rt.elapsed()
    }
}

impl fmt::Debug for SimNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let net = lock(&self.inner.net);
        f.debug_struct("SimNetwork")
            .field("links", &net.links.len())
            .field("stats", &net.stats)
            .finish()
    }
}

impl SimNetwork {
    /// Starts `builder`'s server in memory at [`START_MS`] plus the runtime's virtual
    /// time, and a network onto it.
    pub fn start(rt: &SimRuntime, builder: TestServerBuilder) -> Result<SimNetwork, TestkitError> {
        let now_ms = START_MS.saturating_add(millis(rt.elapsed()));
        Ok(SimNetwork::new(rt, builder.start_in_memory(now_ms)?))
    }

    /// A network onto `server`, whose clock from now on follows `rt`'s (its current time
    /// is taken as the runtime's current virtual time). Spawns the pump task on `rt`.
    pub fn new(rt: &SimRuntime, server: MemoryServer) -> SimNetwork {
        let start_ms = server.now_ms().saturating_sub(millis(rt.elapsed()));
        let network = SimNetwork {
            inner: Arc::new(NetInner {
                rt: rt.clone(),
                start_ms,
                net: Mutex::new(Net::new(server)),
            }),
        };
        rt.spawn(Box::pin(pump(network.inner.clone())));
        network
    }

    /// The client's backend: the runtime and this network.
    pub fn backend(&self) -> Backend {
        Backend::from_parts(Arc::new(self.inner.rt.clone()), Arc::new(self.clone()))
    }

    /// The runtime the network runs on.
    pub fn runtime(&self) -> &SimRuntime {
        &self.inner.rt
    }

    /// The server's time now (ms since the Unix epoch): the start plus the virtual time.
    pub fn now_ms(&self) -> i64 {
        self.clock().now_ms
    }

    /// Virtual time `at` (since the start) as the server's time.
    pub fn server_ms(&self, at: Duration) -> i64 {
        self.inner.start_ms.saturating_add(millis(at))
    }

    /// The server's time `ms` as virtual time since the start (zero before it).
    pub fn virtual_at(&self, ms: i64) -> Duration {
        from_millis(ms.saturating_sub(self.inner.start_ms))
    }

    fn clock(&self) -> Clock {
        let now = self.inner.rt.elapsed();
        Clock {
            now,
            now_ms: self.inner.start_ms.saturating_add(millis(now)),
        }
    }

    /// Runs `f` on the server (insert records, expire or revoke sessions, close
    /// connections…) and routes what it sent. Give it [`SimNetwork::now_ms`] (read before)
    /// where it takes the time. `f` must not call back into the network.
    pub fn server<R>(&self, f: impl FnOnce(&mut MemoryServer) -> R) -> R {
        self.with(|net, _| f(&mut net.server))
    }

    /// Restarts the server (every connection dropped; the data kept or reset).
    pub fn restart(&self, keep_data: bool) {
        self.server(|s| s.restart(keep_data))
    }

    /// Makes every link a black hole (`true`), current and future, or ends that
    /// (`false`; links silenced one by one stay silent). Connects still succeed: their
    /// welcome is swallowed.
    pub fn set_silent(&self, silent: bool) {
        self.with(|net, _| net.silent = silent)
    }

    /// Makes link `conn` a black hole: frames in both directions are swallowed, nothing
    /// closes. The client has to notice by itself.
    pub fn silence(&self, conn: u64) {
        self.with(|net, clock| net.silence(conn, clock))
    }

    /// Delays every frame (both ways) and every connect by `latency` (zero: none), on
    /// links without a delay of their own.
    pub fn set_delay(&self, latency: Duration) {
        self.with(|net, _| net.delay = latency)
    }

    /// Delays link `conn`'s frames by `latency` (`None`: the global delay).
    pub fn set_link_delay(&self, conn: u64, latency: Option<Duration>) {
        self.with(|net, _| {
            if let Some(link) = net.links.get_mut(&conn) {
                link.delay = latency;
            }
        })
    }

    /// Drops link `conn`: the client's stream ends without a close frame and the server
    /// forgets the connection.
    pub fn drop_link(&self, conn: u64) {
        self.with(|net, clock| net.network_drop(conn, clock))
    }

    /// Drops every link.
    pub fn drop_all(&self) {
        self.with(|net, clock| {
            let conns: Vec<u64> = net.links.keys().copied().collect();
            for conn in conns {
                net.network_drop(conn, clock);
            }
        })
    }

    /// Stops the server: it reads nothing, sends nothing and runs no timer until
    /// [`SimNetwork::resume`]; frames for it wait, in order. Connects still open (their
    /// welcome waits).
    pub fn stall(&self) {
        self.with(|net, _| net.stalled = true)
    }

    /// Ends a [`SimNetwork::stall`]: the server handles what waited, then runs its timers.
    pub fn resume(&self) {
        self.with(|net, clock| {
            net.stalled = false;
            while let Some((conn, wire)) = net.held.pop_front() {
                net.deliver_to_server(conn, wire, clock);
            }
        })
    }

    /// How every connection attempt fails from now on (`None`: they succeed), after the
    /// ones given to [`SimNetwork::fail_next_connects`].
    pub fn set_connect_fault(&self, fault: Option<ConnectFault>) {
        self.with(|net, _| net.connect_fault = fault)
    }

    /// The next `n` connection attempts fail with `fault`.
    pub fn fail_next_connects(&self, fault: ConnectFault, n: usize) {
        self.with(|net, _| net.next_connects.extend(std::iter::repeat_n(fault, n)))
    }

    /// Decides the fate of every text frame from now on (`None`: no filter). It runs
    /// with the network locked: it must not call the network.
    pub fn set_filter(
        &self,
        filter: Option<impl FnMut(&FrameEvent<'_>) -> Verdict + Send + 'static>,
    ) {
        let filter = filter.map(|f| Box::new(f) as Filter);
        self.with(|net, _| net.filter = filter)
    }

    /// Records every frame's passage for [`SimNetwork::take_log`] (on by default).
    pub fn set_recording(&self, on: bool) {
        self.with(|net, _| net.recording = on)
    }

    /// The frames recorded since the last call, in order.
    pub fn take_log(&self) -> Vec<Transfer> {
        std::mem::take(&mut lock(&self.inner.net).log)
    }

    /// The link the client opened last and still holds.
    pub fn current_link(&self) -> Option<u64> {
        let net = lock(&self.inner.net);
        net.links
            .values()
            .rev()
            .find(|l| l.info.client_gone.is_none())
            .map(|l| l.info.conn)
    }

    /// Links either end still holds, by connection number.
    pub fn open_links(&self) -> Vec<u64> {
        lock(&self.inner.net).links.keys().copied().collect()
    }

    /// One link's history (open or finished).
    pub fn link(&self, conn: u64) -> Option<LinkInfo> {
        let net = lock(&self.inner.net);
        net.links
            .get(&conn)
            .map(|l| l.info.clone())
            .or_else(|| net.finished.iter().rev().find(|l| l.conn == conn).cloned())
    }

    /// Every link's history: the finished ones (in the order they finished) kept since
    /// the last [`SimNetwork::take_finished`], then the open ones.
    pub fn links(&self) -> Vec<LinkInfo> {
        let net = lock(&self.inner.net);
        let open = net.links.values().map(|l| l.info.clone());
        net.finished.iter().cloned().chain(open).collect()
    }

    /// The finished links' history since the last call (both ends let them go).
    pub fn take_finished(&self) -> Vec<LinkInfo> {
        std::mem::take(&mut lock(&self.inner.net).finished)
    }

    /// Connection attempts so far.
    pub fn stats(&self) -> NetStats {
        lock(&self.inner.net).stats
    }

    /// Opens a connection the test drives by hand ([`SimNetwork::raw_send`],
    /// [`SimNetwork::raw_take`]): no faults apply, pings are answered for it.
    pub fn raw_open(&self) -> u64 {
        self.with(|net, clock| {
            let conn = net.server.open(clock.now_ms);
            net.raw.insert(conn, VecDeque::new());
            conn
        })
    }

    /// Sends `text` on a connection opened by [`SimNetwork::raw_open`].
    pub fn raw_send(&self, conn: u64, text: &str) {
        self.with(|net, clock| net.server.receive(conn, clock.now_ms, text))
    }

    /// What the server sent on a [`SimNetwork::raw_open`] connection since the last call
    /// (pings left out).
    pub fn raw_take(&self, conn: u64) -> Vec<MemoryOutput> {
        lock(&self.inner.net)
            .raw
            .get_mut(&conn)
            .map(|q| q.drain(..).collect())
            .unwrap_or_default()
    }
}

/// The pump: runs the server's timers and delivers delayed frames when they are due.
async fn pump(inner: Arc<NetInner>) {
    let mut timer: Option<(Duration, BoxFuture<'static, ()>)> = None;
    poll_fn(|cx| loop {
        let now = inner.rt.elapsed();
        let clock = Clock {
            now,
            now_ms: inner.start_ms.saturating_add(millis(now)),
        };
        let next = {
            let mut net = lock(&inner.net);
            net.pump = Some(cx.waker().clone());
            net.run_due(inner.start_ms, clock)
        };
        match next {
            Some(at) => {
                if timer.as_ref().is_none_or(|(t, _)| *t != at) {
                    timer = Some((at, inner.rt.sleep(at.saturating_sub(now))));
                }
                if let Some((_, sleep)) = timer.as_mut() {
                    if sleep.as_mut().poll(cx).is_ready() {
                        timer = None;
                        continue;
                    }
                }
            }
            None => timer = None,
        }
        return Poll::<()>::Pending;
    })
    .await
}

impl Connector for SimNetwork {
    fn connect(
        &self,
        _url: &str,
        _tls: &TlsOptions,
    ) -> BoxFuture<'static, Result<(FrameSink, FrameStream), TransportError>> {
        let network = self.clone();
        Box::pin(async move {
            let (fault, delay) = network.with(|net, _| {
                net.stats.attempts += 1;
                let fault = net.next_connects.pop_front().or(net.connect_fault);
                match fault {
                    Some(ConnectFault::Refuse) => net.stats.refused += 1,
                    Some(ConnectFault::Hang) => net.stats.hung += 1,
                    None => {}
                }
                (fault, net.delay)
            });
            match fault {
                Some(ConnectFault::Refuse) => {
                    return Err(TransportError::new(
                        TransportErrorKind::Connect,
                        "connection refused (simulated)",
                    ))
                }
                Some(ConnectFault::Hang) => futures::future::pending::<()>().await,
                None => {}
            }
            if !delay.is_zero() {
                network.inner.rt.sleep(delay).await;
            }
            let conn = network.with(|net, clock| net.open(clock));
            let sink: FrameSink = Box::pin(SimSink {
                network: network.clone(),
                conn,
            });
            let stream: FrameStream = Box::pin(SimStream { network, conn });
            Ok((sink, stream))
        })
    }
}
