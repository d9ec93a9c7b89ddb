//! Chaos over real sockets: a workload of live subscriptions, writes and reads against the
//! embedded server while it drops, stalls and closes connections at random, and stalls,
//! delays or resets the WebSocket handshake of new connections.
//!
//! Written once against [`Backend`]; `noex-tokio/tests/chaos.rs` and
//! `noex-async-std/tests/chaos.rs` run it. The fault schedule and the workload are drawn
//! from one seed ([`ChaosConfig::seed`]); a failure names the seed so the run can be
//! repeated with `CHAOS_SEED=<seed>` (the timing of real sockets still varies, so a replay
//! repeats the schedule, not every interleaving).
//!
//! The faults: abrupt TCP drops; close frames (1000, 1001, 4001); server stalls (nothing
//! read or written for a while, then a resume); and handshake faults: for a short window
//! every new connection gets a stalled, delayed or reset WebSocket handshake
//! ([`HandshakeFault`]) while the current connection is dropped or closed, so the client
//! goes through attempts it must give up at its connect timeout ([`CONNECT_TIMEOUT`]) and
//! retry.
//!
//! The workload drops futures too: some requests (writes and reads) are dropped right
//! after their first poll or after a short random time, and subscribe futures are dropped
//! before they are ready (a few that become ready first are kept as live subscriptions).
//! A dropped write may or may not have been applied (its frame may have been written): no
//! check assumes either, the data check compares against the server's actual data.
//!
//! During the run the server's open sockets are sampled. Outside server stalls they never
//! exceed [`MAX_SOCKETS`]: the client's connection (or attempt) plus one socket it has just
//! closed and the server has not released yet. During a stall the server reads nothing, so
//! sockets the client already closed stay open on the server's side until the resume:
//! those samples (and [`RESUME_MARGIN`] after the resume) are reported, not bounded. A
//! socket the client leaks stays open after the resume and is caught.
//!
//! At the end the run checks: every request resolved (success, server error, disconnected
//! or timeout) or was dropped; every subscription's latest value equals what the server's
//! data says; the client is connected over exactly one connection and one socket; the
//! server holds exactly the subscriptions the workload has live handles for (none left by
//! a dropped subscribe future), and the core counts the same; no subscription buffers more
//! than one unread value; the core's counters agree with the outcomes the callers saw
//! (each dropped request counted once: withdrawn, or however it ended before the drop) and
//! add up (`requests_issued == requests_ended() + requests_pending`, none pending); and
//! after `disconnect()` the server holds no socket and no subscription.

use crate::Ctx;
use futures::future::{select, BoxFuture, Either};
use futures::stream::FuturesUnordered;
use futures::{FutureExt, Stream, StreamExt};
use noex_client::runtime::{Backend, Runtime};
use noex_client::{
    Backoff, Client, ClientOptions, Counters, DisconnectReason, Error, LifecycleEvent,
    RequestOptions, Subscription,
};
use noex_testkit::{BucketDef, HandshakeFault, QueryDef, TestServer, TestServerBuilder};
use serde_json::{json, Value};
use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

const BUCKET: &str = "items";
const BY_GROUP: &str = "items-by-group";
const COUNT: &str = "item-count";
const BIG: &str = "big-items";
/// `value` at or above this is in the `big-items` query.
const BIG_FROM: u64 = 50;
/// The client's default request deadline during the run.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// The client's connect timeout during the run: a connection attempt without a `welcome`
/// by then is given up (its socket closed) and retried. Shorter than the handshake faults'
/// stalls and delays, so those attempts are given up within the run.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(300);
/// Most TCP sockets the server may hold for the client outside server stalls: its current
/// connection (or attempt) and one it has just closed, which the server releases as soon
/// as it reads the close.
pub const MAX_SOCKETS: usize = 2;
/// How long after a server stall's resume the open sockets are not bounded: the server
/// then reads (and releases) the sockets the client closed during the stall.
pub const RESUME_MARGIN: Duration = Duration::from_millis(100);
/// How long the end of the run may take to settle.
const SETTLE: Duration = Duration::from_secs(15);
/// Subscribe futures of the workload in flight at most.
const MAX_SUBSCRIBING: usize = 4;
/// Subscriptions made during the run (by subscribe futures ready before their drop) kept
/// live at most, on top of [`ChaosConfig::subscriptions`].
const MAX_EXTRA_SUBSCRIPTIONS: usize = 10;

/// What a chaos run does.
#[derive(Debug, Clone)]
pub struct ChaosConfig {
    /// Drives the fault schedule, the workload and the client's jitter.
    pub seed: u64,
    /// Faults to inject.
    pub faults: usize,
    /// Live subscriptions.
    pub subscriptions: usize,
    /// Distinct groups the per-group queries are spread over.
    pub groups: u64,
    /// Requests in flight at most.
    pub max_in_flight: usize,
    /// Longest quiet time between two faults.
    pub max_gap: Duration,
    /// Longest stall.
    pub max_stall: Duration,
    /// Longest window of a handshake fault (new connections get it meanwhile).
    pub max_handshake_window: Duration,
    /// Percent of requests whose futures are dropped at a random moment.
    pub dropped_percent: u64,
    /// Percent of requests that come with a subscribe future, dropped at a random moment.
    pub subscribe_percent: u64,
}

impl ChaosConfig {
    /// The CI-sized run: 200 faults, 60 subscriptions, a seed from the clock.
    pub fn ci() -> ChaosConfig {
        ChaosConfig {
            seed: seed_from_clock(),
            faults: 200,
            subscriptions: 60,
            groups: 12,
            max_in_flight: 16,
            max_gap: Duration::from_millis(60),
            max_stall: Duration::from_millis(700),
            max_handshake_window: Duration::from_millis(350),
            dropped_percent: 10,
            subscribe_percent: 2,
        }
    }

    /// [`ChaosConfig::ci`] with `faults` faults, then overridden by the environment:
    /// `CHAOS_SEED`, `CHAOS_FAULTS`, `CHAOS_SUBS`.
    pub fn from_env(faults: usize) -> ChaosConfig {
        let mut config = ChaosConfig {
            faults,
            ..ChaosConfig::ci()
        };
        if let Some(seed) = env_number("CHAOS_SEED") {
            config.seed = seed;
        }
        if let Some(n) = env_number("CHAOS_FAULTS") {
            config.faults = n as usize;
        }
        if let Some(n) = env_number("CHAOS_SUBS") {
            config.subscriptions = n as usize;
        }
        config
    }

    /// A bound on the run's duration, for the test's own deadline.
    pub fn time_limit(&self) -> Duration {
        let per_fault = self.max_gap / 2
            + self.max_stall / 10
            + (self.max_handshake_window + CONNECT_TIMEOUT) / 10
            + Duration::from_millis(250);
        Duration::from_secs(60) + per_fault * self.faults as u32
    }
}

fn env_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    match text.trim().parse() {
        Ok(n) => Some(n),
        Err(_) => panic!("{name}={text:?} is not a number"),
    }
}

fn seed_from_clock() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
}

/// SplitMix64: a small seeded generator, enough for a fault schedule.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    /// A duration in `0..=max`.
    pub fn duration(&mut self, max: Duration) -> Duration {
        Duration::from_micros(self.below(max.as_micros() as u64 + 1))
    }
    /// `true` with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The embedded server a chaos run uses: an `items` bucket (`group`, `value`) and three
/// queries: `items-by-group` (parameter `group`), `item-count`, and `big-items`
/// (`value >= 50`).
pub fn chaos_server() -> TestServerBuilder {
    TestServer::builder()
        .bucket(
            BucketDef::new(BUCKET)
                .field("group", json!({"type": "number", "required": true}))
                .field("value", json!({"type": "number"})),
        )
        .query(BY_GROUP, QueryDef::where_param(BUCKET, "group"))
        .query(COUNT, QueryDef::count(BUCKET))
        .query(
            BIG,
            QueryDef::where_filter(BUCKET, json!({"value": {"$gte": BIG_FROM}})),
        )
        .heartbeat(Duration::from_millis(100))
        .max_subscriptions_per_connection(10_000)
}

/// Client options for a chaos run: fast reconnects, a connect timeout short enough that
/// stalled handshakes are given up within the run, a liveness watchdog shorter than the
/// request deadline, requests queued while reconnecting.
pub fn chaos_options(seed: u64) -> ClientOptions {
    ClientOptions::new()
        .backoff(Backoff {
            initial: Duration::from_millis(5),
            multiplier: 2.0,
            max: Duration::from_millis(100),
            jitter: Duration::from_millis(10),
            max_retries: None,
        })
        .request_timeout(REQUEST_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .liveness_timeout(Duration::from_millis(500))
        .queue_while_disconnected(true)
        .max_queued(10_000)
        .seed(seed)
}

/// What a subscription watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Watched {
    Group(u64),
    Count,
    Big,
}

impl Watched {
    fn expected(self, records: &[Value]) -> Value {
        let filtered = |keep: &dyn Fn(&Value) -> bool| {
            Value::Array(records.iter().filter(|r| keep(r)).cloned().collect())
        };
        match self {
            Watched::Group(g) => filtered(&|r| r.get("group").and_then(Value::as_u64) == Some(g)),
            Watched::Count => json!(records.len()),
            Watched::Big => filtered(&|r| {
                r.get("value")
                    .and_then(Value::as_f64)
                    .is_some_and(|v| v >= BIG_FROM as f64)
            }),
        }
    }

    fn matches(self, latest: &Value, expected: &Value) -> bool {
        match self {
            Watched::Count => latest.as_f64() == expected.as_f64(),
            _ => latest == expected,
        }
    }

    /// Subscribes to what this watches.
    async fn subscribe(self, client: Client) -> noex_client::Result<Subscription<Value>> {
        let store = client.store();
        match self {
            Watched::Group(g) => store.subscribe(BY_GROUP).params(json!({"group": g})).await,
            Watched::Count => store.subscribe(COUNT).await,
            Watched::Big => store.subscribe(BIG).await,
        }
    }
}

/// The live subscriptions and the latest value each has yielded.
struct Watch {
    subs: Vec<(Watched, Subscription<Value>)>,
    latest: Vec<Option<Value>>,
    updates: u64,
    failures: Vec<String>,
}

impl Watch {
    /// Reads every value that is ready, without waiting.
    fn poll_drain(&mut self, cx: &mut Context<'_>) {
        for (i, (watched, sub)) in self.subs.iter_mut().enumerate() {
            if self.latest.len() <= i {
                self.latest.push(None);
            }
            loop {
                match Pin::new(&mut *sub).poll_next(cx) {
                    Poll::Ready(Some(Ok(value))) => {
                        self.updates += 1;
                        self.latest[i] = Some(value);
                    }
                    Poll::Ready(Some(Err(e))) => {
                        self.failures
                            .push(format!("subscription {i} ({watched:?}) failed: {e:?}"));
                    }
                    Poll::Ready(None) => {
                        self.failures
                            .push(format!("subscription {i} ({watched:?}) ended"));
                        break;
                    }
                    Poll::Pending => break,
                }
            }
        }
    }

    /// The subscriptions whose latest value differs from the server's data.
    fn mismatches(&self, records: &[Value]) -> Vec<String> {
        let mut wrong = Vec::new();
        for (i, (watched, _)) in self.subs.iter().enumerate() {
            let expected = watched.expected(records);
            match self.latest.get(i).and_then(Option::as_ref) {
                Some(latest) if watched.matches(latest, &expected) => {}
                latest => wrong.push(format!(
                    "subscription {i} ({watched:?}): latest {} but the server has {}",
                    short(latest),
                    short(Some(&expected))
                )),
            }
        }
        wrong
    }
}

fn short(value: Option<&Value>) -> String {
    match value {
        None => "nothing".into(),
        Some(Value::Array(a)) => format!("{} records", a.len()),
        Some(v) => v.to_string(),
    }
}

/// How a request ended.
#[derive(Debug)]
enum Outcome {
    Ok,
    Server,
    Disconnected,
    Timeout,
    /// Its future was dropped before it ended.
    Dropped,
    Unexpected(String),
}

fn outcome<T>(result: noex_client::Result<T>) -> Outcome {
    match result {
        Ok(_) => Outcome::Ok,
        Err(Error::Server { .. }) => Outcome::Server,
        Err(Error::Disconnected { .. }) => Outcome::Disconnected,
        Err(Error::Timeout { .. }) => Outcome::Timeout,
        Err(e) => Outcome::Unexpected(format!("{e:?}")),
    }
}

/// When the workload drops a future it started.
enum DropAt {
    /// Right after its first poll (a request's command is then on its way to the driver).
    FirstPoll,
    /// When this sleep ends, unless the future ended first.
    After(BoxFuture<'static, ()>),
}

impl DropAt {
    /// A random moment: right after the first poll, or within 3 ms, 40 ms or 400 ms
    /// (while it waits for the connection, for a slow answer, or for a stalled server).
    fn random(rng: &mut Rng, runtime: &Arc<dyn Runtime>) -> DropAt {
        let within = match rng.below(4) {
            0 => return DropAt::FirstPoll,
            1 => Duration::from_millis(3),
            2 => Duration::from_millis(40),
            _ => Duration::from_millis(400),
        };
        DropAt::After(runtime.sleep(rng.duration(within)))
    }

    /// Runs `fut` until this moment: its output if it ended first, `None` when it was
    /// dropped.
    async fn race<F: Future>(self, fut: F) -> Option<F::Output> {
        let mut fut = pin!(fut);
        match self {
            DropAt::FirstPoll => {
                poll_fn(|cx| match fut.as_mut().poll(cx) {
                    Poll::Ready(output) => Poll::Ready(Some(output)),
                    Poll::Pending => Poll::Ready(None),
                })
                .await
            }
            DropAt::After(sleep) => match select(fut, sleep).await {
                Either::Left((output, _)) => Some(output),
                Either::Right(_) => None,
            },
        }
    }
}

/// Counts by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Answered with a result.
    pub ok: u64,
    /// Answered with a server error (e.g. an update of a record deleted meanwhile).
    pub server_error: u64,
    /// Failed by a lost connection (or refused while none was coming).
    pub disconnected: u64,
    /// Reached their deadline.
    pub timeout: u64,
    /// Futures dropped by the workload before they ended (the request withdrawn, or ended
    /// in the client unseen).
    pub dropped: u64,
}

impl Tally {
    fn total(&self) -> u64 {
        self.ok + self.server_error + self.disconnected + self.timeout + self.dropped
    }
}

/// Subscribe futures the workload started during the run, by how they ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscribeTally {
    /// Dropped before they were ready.
    pub dropped: u64,
    /// Ready before their drop; the subscription then kept live.
    pub kept: u64,
    /// Ready before their drop; the subscription then dropped (unsubscribed).
    pub released: u64,
    /// Failed (disconnected or timed out).
    pub failed: u64,
}

/// Faults injected, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultTally {
    /// Abrupt TCP drops.
    pub drops: u64,
    /// Close frames with code 1000, 1001 or 4001.
    pub closes: u64,
    /// Stalls (followed by a resume).
    pub stalls: u64,
    /// Handshake-fault windows with [`HandshakeFault::Stall`].
    pub handshake_stalls: u64,
    /// Handshake-fault windows with [`HandshakeFault::Delay`] (mostly past the connect
    /// timeout, some within it).
    pub handshake_delays: u64,
    /// Handshake-fault windows with [`HandshakeFault::Reset`].
    pub handshake_resets: u64,
    /// Connection attempts the server accepted during handshake-fault windows.
    pub handshake_attempts: u64,
    /// Faults injected while the client had a connection open on the server.
    pub while_connected: u64,
}

impl FaultTally {
    fn handshakes(&self) -> u64 {
        self.handshake_stalls + self.handshake_delays + self.handshake_resets
    }

    fn total(&self) -> u64 {
        self.drops + self.closes + self.stalls + self.handshakes()
    }
}

/// The server's open sockets, sampled during the run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SocketTally {
    /// Samples taken.
    pub samples: u64,
    /// Most open at once outside server stalls (bounded by [`MAX_SOCKETS`]).
    pub most: usize,
    /// Most open at once during server stalls and [`RESUME_MARGIN`] after (not bounded:
    /// the stalled server does not release the sockets the client closes).
    pub most_in_stalls: usize,
}

/// What a chaos run did.
#[derive(Debug, Clone)]
pub struct ChaosReport {
    /// The seed.
    pub seed: u64,
    /// Faults injected.
    pub faults: FaultTally,
    /// Live subscriptions at the end.
    pub subscriptions: usize,
    /// Subscription values read.
    pub updates: u64,
    /// Request outcomes.
    pub requests: Tally,
    /// Subscribe futures started during the run.
    pub subscribes: SubscribeTally,
    /// The server's open sockets.
    pub sockets: SocketTally,
    /// Connection attempts the client gave up at its connect timeout.
    pub connect_timeouts: u64,
    /// Connections the client gave up by its liveness watchdog.
    pub liveness_timeouts: u64,
    /// The core's counters at the end.
    pub counters: Counters,
    /// Records in the bucket at the end.
    pub records: usize,
    /// Resident memory of the process halfway and at the end, bytes (0 if unknown).
    pub rss: (u64, u64),
    /// Wall time.
    pub duration: Duration,
}

impl fmt::Display for ChaosReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let f_ = &self.faults;
        let r = &self.requests;
        let s = &self.subscribes;
        write!(
            f,
            "chaos seed {}: {} faults ({} drops, {} closes, {} stalls, {} handshake faults \
             [{} stalled, {} delayed, {} reset; {} connection attempts]; {} while connected) \
             in {:.1?}; {} subscriptions, {} values read; requests: {} ok, {} server errors, \
             {} disconnected, {} timed out, {} futures dropped ({} withdrawn); subscribe \
             futures: {} dropped before ready, {} ready first ({} kept), {} failed; \
             {} reconnects ({} attempts given up at the connect timeout, {} connections by \
             the liveness watchdog), {} pushes, {} retried reads; max {} open sockets ({} \
             during stalls; {} samples); {} records at the end; RSS {:.1} MiB halfway, {:.1} MiB at \
             the end",
            self.seed,
            f_.total(),
            f_.drops,
            f_.closes,
            f_.stalls,
            f_.handshakes(),
            f_.handshake_stalls,
            f_.handshake_delays,
            f_.handshake_resets,
            f_.handshake_attempts,
            f_.while_connected,
            self.duration,
            self.subscriptions,
            self.updates,
            r.ok,
            r.server_error,
            r.disconnected,
            r.timeout,
            r.dropped,
            self.counters.requests_cancelled,
            s.dropped,
            s.kept + s.released,
            s.kept,
            s.failed,
            self.counters.reconnects,
            self.connect_timeouts,
            self.liveness_timeouts,
            self.counters.pushes_delivered,
            self.counters.requests_resent,
            self.sockets.most,
            self.sockets.most_in_stalls,
            self.sockets.samples,
            self.records,
            self.rss.0 as f64 / 1048576.0,
            self.rss.1 as f64 / 1048576.0,
        )
    }
}

/// Resident memory of this process, from `/proc/self/statm` (0 where unavailable).
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}

/// Samples the server's open sockets.
struct Sockets {
    server: Arc<TestServer>,
    tally: SocketTally,
    /// The server is stalled: samples are not bounded.
    stalled: bool,
    /// Samples are not bounded until then (after a resume).
    unbounded_until: Option<Instant>,
    /// What the run is doing, to say when a sample was over the bound.
    phase: String,
    /// Samples over [`MAX_SOCKETS`] (the first few).
    over: Vec<String>,
}

impl Sockets {
    fn sample(&mut self) {
        let open = self.server.open_sockets();
        self.tally.samples += 1;
        let bounded = !self.stalled
            && self
                .unbounded_until
                .is_none_or(|until| Instant::now() >= until);
        if bounded {
            self.tally.most = self.tally.most.max(open);
            if open > MAX_SOCKETS && self.over.len() < 5 {
                self.over
                    .push(format!("{open} open sockets {}", self.phase));
            }
        } else {
            self.tally.most_in_stalls = self.tally.most_in_stalls.max(open);
        }
    }

    fn stall(&mut self) {
        self.stalled = true;
    }

    fn resume(&mut self) {
        self.stalled = false;
        self.unbounded_until = Some(Instant::now() + RESUME_MARGIN);
    }
}

type Op = Pin<Box<dyn Future<Output = (Outcome, Option<String>)> + Send>>;
type SubscribeOp = Pin<
    Box<dyn Future<Output = (Watched, Option<noex_client::Result<Subscription<Value>>>)> + Send>,
>;

/// The workload's state: the client, the keys it knows, the requests and subscribes in
/// flight, the socket samples.
struct Load {
    client: Client,
    runtime: Arc<dyn Runtime>,
    rng: Rng,
    groups: u64,
    max_in_flight: usize,
    /// Live subscriptions at most (kept from subscribe futures ready before their drop).
    max_subscriptions: usize,
    dropped_percent: u64,
    subscribe_percent: u64,
    keys: Vec<String>,
    in_flight: FuturesUnordered<Op>,
    subscribing: FuturesUnordered<SubscribeOp>,
    issued: u64,
    tally: Tally,
    subscribes: SubscribeTally,
    sockets: Sockets,
    unexpected: Vec<String>,
}

impl Load {
    fn issue(&mut self) {
        let items = self.client.store().bucket(BUCKET);
        let group = self.rng.below(self.groups);
        let value = self.rng.below(100);
        let roll = self.rng.below(100);
        let pick = if self.keys.is_empty() {
            None
        } else {
            Some(self.rng.below(self.keys.len() as u64) as usize)
        };
        // Keep the bucket small: prefer deletes once it has grown.
        let roll = if self.keys.len() > 60 && roll < 15 {
            32
        } else {
            roll
        };
        let op: Op = match (roll, pick) {
            (0..15, _) | (_, None) => async move {
                match items.insert(&json!({"group": group, "value": value})).await {
                    Ok(record) => (Outcome::Ok, record.key.as_str().map(str::to_owned)),
                    Err(e) => (outcome::<()>(Err(e)), None),
                }
            }
            .boxed(),
            (15..30, Some(i)) => {
                let key = self.keys[i].clone();
                let change = if self.rng.chance(30) {
                    json!({"group": group, "value": value})
                } else {
                    json!({"value": value})
                };
                async move { (outcome(items.update(&key, &change).await), None) }.boxed()
            }
            (30..35, Some(i)) => {
                let key = self.keys.swap_remove(i);
                async move { (outcome(items.delete(&key).await), None) }.boxed()
            }
            (35..75, Some(i)) => {
                let key = self.keys[i].clone();
                let mut options = RequestOptions::default().retry_safe(self.rng.chance(50));
                if self.rng.chance(10) {
                    options = options.timeout(Duration::from_millis(200));
                }
                let items = items.with_options(options);
                async move { (outcome(items.get(&key).await), None) }.boxed()
            }
            (75..90, _) => {
                async move { (outcome(items.count(noex_client::Filter::all()).await), None) }
                    .boxed()
            }
            _ => async move {
                let filter = json!({"group": group});
                (outcome(items.find(filter).await), None)
            }
            .boxed(),
        };
        // Some futures are dropped at a random moment: a write may or may not have been
        // applied then, and no check assumes either.
        let op = if self.rng.chance(self.dropped_percent) {
            let at = DropAt::random(&mut self.rng, &self.runtime);
            async move { at.race(op).await.unwrap_or((Outcome::Dropped, None)) }.boxed()
        } else {
            op
        };
        self.issued += 1;
        self.in_flight.push(op);
        if self.subscribing.len() < MAX_SUBSCRIBING && self.rng.chance(self.subscribe_percent) {
            self.issue_subscribe();
        }
    }

    /// Starts a subscribe future that is dropped at a random moment.
    fn issue_subscribe(&mut self) {
        let watched = match self.rng.below(4) {
            0 => Watched::Count,
            1 => Watched::Big,
            _ => Watched::Group(self.rng.below(self.groups)),
        };
        let at = DropAt::random(&mut self.rng, &self.runtime);
        let subscribe = watched.subscribe(self.client.clone());
        self.subscribing
            .push(async move { (watched, at.race(subscribe).await) }.boxed());
    }

    fn record(&mut self, (result, key): (Outcome, Option<String>)) {
        match result {
            Outcome::Ok => self.tally.ok += 1,
            Outcome::Server => self.tally.server_error += 1,
            Outcome::Disconnected => self.tally.disconnected += 1,
            Outcome::Timeout => self.tally.timeout += 1,
            Outcome::Dropped => self.tally.dropped += 1,
            Outcome::Unexpected(e) => self.unexpected.push(e),
        }
        if let Some(key) = key {
            self.keys.push(key);
        }
    }

    /// A subscribe future ended: dropped, failed, or ready (then kept live while there is
    /// room, half the time, else dropped, which unsubscribes).
    fn subscribed(
        &mut self,
        watch: &mut Watch,
        (watched, result): (Watched, Option<noex_client::Result<Subscription<Value>>>),
    ) {
        match result {
            None => self.subscribes.dropped += 1,
            Some(Ok(sub)) => {
                if watch.subs.len() < self.max_subscriptions && self.rng.chance(50) {
                    self.subscribes.kept += 1;
                    watch.subs.push((watched, sub));
                } else {
                    self.subscribes.released += 1;
                    drop(sub);
                }
            }
            Some(Err(Error::Disconnected { .. } | Error::Timeout { .. })) => {
                self.subscribes.failed += 1
            }
            Some(Err(e)) => self
                .unexpected
                .push(format!("subscribe ({watched:?}): {e:?}")),
        }
    }
}

fn record_keys(server: &TestServer) -> Vec<String> {
    server
        .records(BUCKET)
        .iter()
        .filter_map(|r| r.get("id")?.as_str().map(str::to_owned))
        .collect()
}

/// Runs the workload (reads the subscriptions, samples the open sockets) for `duration`;
/// with `issue` off, only waits for what is in flight and reads.
async fn run_for(
    backend: &Backend,
    load: &mut Load,
    watch: &mut Watch,
    duration: Duration,
    issue: bool,
) {
    let mut until = backend.runtime.sleep(duration);
    let mut tick = backend.runtime.sleep(Duration::from_millis(2));
    load.sockets.sample();
    poll_fn(|cx| loop {
        watch.poll_drain(cx);
        let mut progress = false;
        while let Poll::Ready(Some(done)) = load.in_flight.poll_next_unpin(cx) {
            load.record(done);
            progress = true;
        }
        while let Poll::Ready(Some(done)) = load.subscribing.poll_next_unpin(cx) {
            load.subscribed(watch, done);
            progress = true;
        }
        if tick.poll_unpin(cx).is_ready() {
            tick = backend.runtime.sleep(Duration::from_millis(2));
            load.sockets.sample();
            if issue {
                for _ in 0..4 {
                    if load.in_flight.len() < load.max_in_flight {
                        load.issue();
                    }
                }
            }
            progress = true;
        }
        if until.poll_unpin(cx).is_ready() {
            return Poll::Ready(());
        }
        if !progress {
            return Poll::Pending;
        }
    })
    .await
}

/// Polls `check` (running the workload's reads meanwhile, issuing nothing) until it holds
/// or `SETTLE` has passed; returns the last `Err` (what did not hold) if it never held.
async fn settle<F, Fut>(
    backend: &Backend,
    load: &mut Load,
    watch: &mut Watch,
    mut check: F,
) -> Result<(), String>
where
    F: FnMut(&Watch) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let deadline = Instant::now() + SETTLE;
    loop {
        let result = check(watch).await;
        if result.is_ok() || Instant::now() >= deadline {
            return result;
        }
        let wait = Duration::from_millis(20);
        run_for(backend, load, watch, wait, false).await;
    }
}

/// Picks the handshake fault of a window: a stall, a delay past the connect timeout (the
/// client gives the attempt up), a delay within it (the attempt connects, late) or a reset.
fn pick_handshake_fault(rng: &mut Rng, faults: &mut FaultTally) -> HandshakeFault {
    match rng.below(10) {
        0..5 => {
            faults.handshake_stalls += 1;
            HandshakeFault::Stall
        }
        5..7 => {
            faults.handshake_delays += 1;
            let past = Duration::from_millis(20) + rng.duration(Duration::from_millis(300));
            HandshakeFault::Delay(CONNECT_TIMEOUT + past)
        }
        7 => {
            faults.handshake_delays += 1;
            HandshakeFault::Delay(rng.duration(CONNECT_TIMEOUT / 3))
        }
        _ => {
            faults.handshake_resets += 1;
            HandshakeFault::Reset
        }
    }
}

/// Runs one chaos workload on `backend` and checks the invariants; panics (naming the
/// seed) when one does not hold.
pub async fn run(backend: Backend, config: ChaosConfig) -> ChaosReport {
    let seed = config.seed;
    let started = Instant::now();
    let ctx = Ctx::with_server(&backend, chaos_server());
    let server = ctx.server.clone().expect("embedded server");
    let mut rng = Rng::new(seed);
    for _ in 0..40 {
        let group = rng.below(config.groups);
        let value = rng.below(100);
        server
            .insert(BUCKET, json!({"group": group, "value": value}))
            .expect("seed record");
    }
    let keys = record_keys(&server);
    let client = ctx.connect(chaos_options(seed)).await;
    // Connection attempts given up at the connect timeout, connections at the liveness
    // watchdog.
    let timeouts = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    let _timeouts_guard = {
        let timeouts = timeouts.clone();
        client.on(move |event| {
            let i = match event {
                LifecycleEvent::Disconnected(DisconnectReason::ConnectTimeout) => 0,
                LifecycleEvent::Disconnected(DisconnectReason::LivenessTimeout) => 1,
                _ => return,
            };
            timeouts[i].fetch_add(1, Ordering::Relaxed);
        })
    };

    let mut watch = Watch {
        subs: Vec::new(),
        latest: Vec::new(),
        updates: 0,
        failures: Vec::new(),
    };
    for i in 0..config.subscriptions {
        let watched = match i % 10 {
            3 | 8 => Watched::Count,
            4 => Watched::Big,
            _ => Watched::Group(i as u64 % config.groups),
        };
        let sub = watched
            .subscribe(client.clone())
            .await
            .unwrap_or_else(|e| panic!("seed {seed}: subscribe {i}: {e:?}"));
        watch.subs.push((watched, sub));
    }

    let mut load = Load {
        client: client.clone(),
        runtime: backend.runtime.clone(),
        rng: Rng::new(seed ^ 0x5EED),
        groups: config.groups,
        max_in_flight: config.max_in_flight,
        max_subscriptions: config.subscriptions + MAX_EXTRA_SUBSCRIPTIONS,
        dropped_percent: config.dropped_percent,
        subscribe_percent: config.subscribe_percent,
        keys,
        in_flight: FuturesUnordered::new(),
        subscribing: FuturesUnordered::new(),
        issued: 0,
        tally: Tally::default(),
        subscribes: SubscribeTally::default(),
        sockets: Sockets {
            server: server.clone(),
            tally: SocketTally::default(),
            stalled: false,
            unbounded_until: None,
            phase: "before the first fault".into(),
            over: Vec::new(),
        },
        unexpected: Vec::new(),
    };

    let mut faults = FaultTally::default();
    let mut rss_mid = 0;
    for n in 0..config.faults {
        if n == config.faults / 2 {
            rss_mid = rss_bytes();
        }
        // Most faults hit a connected client under load; the rest land wherever the
        // previous one left it (backoff, handshake, login, restore).
        if rng.chance(75) {
            let limit = Instant::now() + SETTLE;
            while !client.is_connected() && Instant::now() < limit {
                let wait = Duration::from_millis(5);
                run_for(&backend, &mut load, &mut watch, wait, true).await;
            }
        }
        let gap = rng.duration(config.max_gap);
        run_for(&backend, &mut load, &mut watch, gap, true).await;
        if server.connection_count() > 0 {
            faults.while_connected += 1;
        }
        // Learn the keys of inserts whose answers were lost, so the bucket stays small.
        load.keys = record_keys(&server);
        let what = match rng.below(100) {
            0..38 => {
                faults.drops += 1;
                server.drop_connections();
                "drop".to_owned()
            }
            38..82 => {
                faults.closes += 1;
                let code = [1000, 1001, 4001][rng.below(3) as usize];
                server.close_connections(code, "chaos");
                format!("close {code}")
            }
            82..93 => {
                faults.stalls += 1;
                let stall = rng.duration(config.max_stall);
                load.sockets.phase = format!("in fault {n} (stall of {stall:?})");
                load.sockets.stall();
                server.stall();
                run_for(&backend, &mut load, &mut watch, stall, true).await;
                server.resume();
                load.sockets.resume();
                format!("stall of {stall:?}")
            }
            _ => {
                // For a window, new connections get the fault; the current one is dropped or
                // closed, so the client goes through such attempts.
                let fault = pick_handshake_fault(&mut rng, &mut faults);
                let what = format!("handshake fault {fault:?}");
                load.sockets.phase = format!("in fault {n} ({what})");
                let accepted = server.accepted_sockets();
                server.set_handshake_fault(fault);
                if rng.chance(50) {
                    server.drop_connections();
                } else {
                    server.close_connections(1001, "chaos");
                }
                let window = Duration::from_millis(30) + rng.duration(config.max_handshake_window);
                run_for(&backend, &mut load, &mut watch, window, true).await;
                server.set_handshake_fault(HandshakeFault::Normal);
                faults.handshake_attempts += server.accepted_sockets() - accepted;
                what
            }
        };
        load.sockets.phase = format!("after fault {n} ({what})");
    }
    server.resume();
    server.set_handshake_fault(HandshakeFault::Normal);
    load.sockets.phase = "after the faults".into();

    // Everything in flight must end, within its deadline (plus reconnect time).
    let deadline = Instant::now() + REQUEST_TIMEOUT + SETTLE;
    while !(load.in_flight.is_empty() && load.subscribing.is_empty()) && Instant::now() < deadline {
        let wait = Duration::from_millis(20);
        run_for(&backend, &mut load, &mut watch, wait, false).await;
    }
    assert!(
        load.in_flight.is_empty(),
        "seed {seed}: {} of {} requests never resolved",
        load.in_flight.len(),
        load.issued
    );
    assert!(
        load.subscribing.is_empty(),
        "seed {seed}: {} subscribe futures never ended",
        load.subscribing.len()
    );
    assert!(
        load.unexpected.is_empty(),
        "seed {seed}: requests ended unexpectedly: {:?}",
        &load.unexpected[..load.unexpected.len().min(10)]
    );
    assert_eq!(load.tally.total(), load.issued, "seed {seed}: outcomes");

    ctx.eventually(SETTLE, &format!("seed {seed}: client connected"), || {
        let connected = client.is_connected();
        async move { connected }
    })
    .await;
    // One more write after the faults: its push must reach the subscriptions too.
    client
        .store()
        .bucket(BUCKET)
        .insert(&json!({"group": 0, "value": 99}))
        .await
        .unwrap_or_else(|e| panic!("seed {seed}: final insert: {e:?}"));
    load.tally.ok += 1;
    load.issued += 1;

    // Subscriptions converge on the server's data, which holds whatever the dropped
    // writes applied.
    let converged = settle(&backend, &mut load, &mut watch, |watch| {
        let wrong = watch.mismatches(&server.records(BUCKET));
        std::future::ready(match wrong.len() {
            0 => Ok(()),
            n => Err(format!(
                "{n} of {} subscriptions disagree with the server, e.g. {:?}",
                watch.subs.len(),
                &wrong[..n.min(5)]
            )),
        })
    })
    .await;
    assert!(
        watch.failures.is_empty(),
        "seed {seed}: subscriptions lost: {:?}",
        watch.failures
    );
    if let Err(e) = converged {
        panic!("seed {seed}: {e}");
    }
    for (i, (_, sub)) in watch.subs.iter().enumerate() {
        assert!(sub.unread() <= 1, "seed {seed}: subscription {i} buffers");
    }

    // The client holds one connection, over one socket.
    let one_socket = settle(&backend, &mut load, &mut watch, |_| {
        let (connections, open) = (server.connection_count(), server.open_sockets());
        std::future::ready(match (connections, open) {
            (1, 1) => Ok(()),
            _ => Err(format!(
                "{connections} connections and {open} open sockets on the server at the end"
            )),
        })
    })
    .await;
    if let Err(e) = one_socket {
        panic!("seed {seed}: {e}");
    }
    assert!(client.is_connected(), "seed {seed}: connected at the end");
    assert!(
        load.sockets.over.is_empty(),
        "seed {seed}: more than {MAX_SOCKETS} open sockets outside server stalls: {:?}",
        load.sockets.over
    );

    // The server holds exactly the subscriptions the workload has live handles for (none
    // left by a dropped subscribe future or a dropped handle), and the core agrees.
    let agree = settle(&backend, &mut load, &mut watch, |watch| {
        let live = watch.subs.len();
        let on_server = server.subscription_count();
        let counters = client.counters();
        async move {
            let in_core = counters.await.ok().map(|c| c.subscriptions_live);
            if on_server == live && in_core == Some(live as u64) {
                Ok(())
            } else {
                Err(format!(
                    "{live} live subscription handles, but the server holds {on_server} \
                     and the core counts {in_core:?}"
                ))
            }
        }
    })
    .await;
    if let Err(e) = agree {
        panic!("seed {seed}: {e}");
    }

    // The core saw exactly the outcomes the callers saw; a dropped request is counted once,
    // withdrawn or however it ended before the drop.
    let counters = client
        .counters()
        .await
        .unwrap_or_else(|e| panic!("seed {seed}: counters: {e:?}"));
    let t = &load.tally;
    let c = &counters;
    assert_eq!(c.requests_pending, 0, "seed {seed}: pending: {c:?}");
    assert_eq!(
        c.requests_issued,
        c.requests_ended() + c.requests_pending,
        "seed {seed}: issued != ended + pending: {c:?}"
    );
    assert_eq!(
        c.requests_issued, load.issued,
        "seed {seed}: requests issued: {c:?}"
    );
    let within = |counted: u64, seen: u64| (seen..=seen + t.dropped).contains(&counted);
    assert!(
        within(c.requests_ok, t.ok),
        "seed {seed}: ok count: {c:?} {t:?}"
    );
    assert!(
        within(c.requests_server_error, t.server_error),
        "seed {seed}: server errors: {c:?} {t:?}"
    );
    assert!(
        within(c.requests_timed_out, t.timeout),
        "seed {seed}: timeouts: {c:?} {t:?}"
    );
    assert!(
        within(c.requests_disconnected, t.disconnected),
        "seed {seed}: disconnects: {c:?} {t:?}"
    );
    assert!(
        c.requests_cancelled <= t.dropped,
        "seed {seed}: cancelled: {c:?} {t:?}"
    );
    assert_eq!(c.requests_closed, 0, "seed {seed}: closed: {c:?}");
    assert_eq!(c.requests_rejected, 0, "seed {seed}: rejected: {c:?}");
    assert_eq!(
        c.requests_ended(),
        t.total(),
        "seed {seed}: ended requests: {c:?} {t:?}"
    );

    let report = ChaosReport {
        seed,
        faults,
        subscriptions: watch.subs.len(),
        updates: watch.updates,
        requests: load.tally.clone(),
        subscribes: load.subscribes.clone(),
        sockets: load.sockets.tally.clone(),
        connect_timeouts: timeouts[0].load(Ordering::Relaxed),
        liveness_timeouts: timeouts[1].load(Ordering::Relaxed),
        counters,
        records: server.records(BUCKET).len(),
        rss: (rss_mid, rss_bytes()),
        duration: started.elapsed(),
    };

    // After `disconnect()` the server holds no socket and no subscription of the client.
    drop(watch);
    drop(load);
    client.disconnect().await;
    ctx.eventually(
        SETTLE,
        &format!("seed {seed}: no open socket after disconnect"),
        || {
            let open = server.open_sockets();
            async move { open == 0 }
        },
    )
    .await;
    assert_eq!(
        server.subscription_count(),
        0,
        "seed {seed}: subscriptions after disconnect"
    );
    report
}

/// [`run`] with a deadline of [`ChaosConfig::time_limit`]: a hang fails instead of
/// blocking the test run.
pub async fn run_with_deadline(backend: Backend, config: ChaosConfig) -> ChaosReport {
    let limit = config.time_limit();
    let seed = config.seed;
    let ctx = Ctx {
        backend: backend.clone(),
        url: String::new(),
        server: None,
    };
    match ctx.within(limit, run(backend, config)).await {
        Some(report) => report,
        None => panic!("seed {seed}: chaos run did not finish within {limit:?}"),
    }
}
