//! Chaos over real sockets: a workload of live subscriptions, writes and reads against the
//! embedded server while it drops, stalls and closes connections at random.
//!
//! Written once against [`Backend`]; `noex-tokio/tests/chaos.rs` and
//! `noex-async-std/tests/chaos.rs` run it. The fault schedule and the workload are drawn
//! from one seed ([`ChaosConfig::seed`]); a failure names the seed so the run can be
//! repeated with `CHAOS_SEED=<seed>` (the timing of real sockets still varies, so a replay
//! repeats the schedule, not every interleaving).
//!
//! At the end the run checks: every subscription's latest value equals what the server's
//! data says, every request resolved (success, server error, disconnected or timeout), the
//! client is connected over exactly one connection, no subscription buffers more than one
//! unread value, and the core's counters agree with the outcomes the callers saw.

use crate::Ctx;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, Stream, StreamExt};
use noex_client::{
    Backend, Backoff, Client, ClientOptions, Counters, Error, RequestOptions, Subscription,
};
use noex_testkit::{BucketDef, QueryDef, TestServer, TestServerBuilder};
use serde_json::{json, Value};
use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::Pin;
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
/// How long the end of the run may take to settle.
const SETTLE: Duration = Duration::from_secs(15);

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
        let per_fault = self.max_gap / 2 + self.max_stall / 10 + Duration::from_millis(250);
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

/// Client options for a chaos run: fast reconnects, a liveness watchdog shorter than the
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
        .connect_timeout(Duration::from_secs(1))
        .liveness_timeout(Duration::from_millis(500))
        .queue_while_disconnected(true, 10_000)
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
}

impl Tally {
    fn total(&self) -> u64 {
        self.ok + self.server_error + self.disconnected + self.timeout
    }
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
    /// Faults injected while the client had a connection open on the server.
    pub while_connected: u64,
}

impl FaultTally {
    fn total(&self) -> u64 {
        self.drops + self.closes + self.stalls
    }
}

/// What a chaos run did.
#[derive(Debug, Clone)]
pub struct ChaosReport {
    /// The seed.
    pub seed: u64,
    /// Faults injected.
    pub faults: FaultTally,
    /// Live subscriptions.
    pub subscriptions: usize,
    /// Subscription values read.
    pub updates: u64,
    /// Request outcomes.
    pub requests: Tally,
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
        write!(
            f,
            "chaos seed {}: {} faults ({} drops, {} closes, {} stalls; {} while connected) in {:.1?}; \
             {} subscriptions, {} values read; requests: {} ok, {} server errors, {} disconnected, \
             {} timed out; {} reconnects, {} pushes, {} retried reads; {} records at the end; \
             RSS {:.1} MiB halfway, {:.1} MiB at the end",
            self.seed,
            f_.total(),
            f_.drops,
            f_.closes,
            f_.stalls,
            f_.while_connected,
            self.duration,
            self.subscriptions,
            self.updates,
            r.ok,
            r.server_error,
            r.disconnected,
            r.timeout,
            self.counters.reconnects,
            self.counters.pushes_delivered,
            self.counters.requests_resent,
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

type Op = Pin<Box<dyn Future<Output = (Outcome, Option<String>)> + Send>>;

/// The workload's state: the client, the keys it knows, the requests in flight.
struct Load {
    client: Client,
    rng: Rng,
    groups: u64,
    max_in_flight: usize,
    keys: Vec<String>,
    in_flight: FuturesUnordered<Op>,
    issued: u64,
    tally: Tally,
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
            (75..90, _) => async move { (outcome(items.count(None).await), None) }.boxed(),
            _ => async move {
                let filter = json!({"group": group});
                (outcome(items.where_(filter).await), None)
            }
            .boxed(),
        };
        self.issued += 1;
        self.in_flight.push(op);
    }

    fn record(&mut self, (result, key): (Outcome, Option<String>)) {
        match result {
            Outcome::Ok => self.tally.ok += 1,
            Outcome::Server => self.tally.server_error += 1,
            Outcome::Disconnected => self.tally.disconnected += 1,
            Outcome::Timeout => self.tally.timeout += 1,
            Outcome::Unexpected(e) => self.unexpected.push(e),
        }
        if let Some(key) = key {
            self.keys.push(key);
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

/// Runs the workload (and reads the subscriptions) for `duration`; with `issue` off, only
/// waits for what is in flight and reads.
async fn run_for(
    backend: &Backend,
    load: &mut Load,
    watch: &mut Watch,
    duration: Duration,
    issue: bool,
) {
    let mut until = backend.runtime.sleep(duration);
    let mut tick = backend.runtime.sleep(Duration::from_millis(2));
    poll_fn(|cx| loop {
        watch.poll_drain(cx);
        let mut progress = false;
        while let Poll::Ready(Some(done)) = load.in_flight.poll_next_unpin(cx) {
            load.record(done);
            progress = true;
        }
        if tick.poll_unpin(cx).is_ready() {
            tick = backend.runtime.sleep(Duration::from_millis(2));
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
        let store = client.store();
        let sub = match watched {
            Watched::Group(g) => store.subscribe(BY_GROUP, Some(json!({"group": g}))).await,
            Watched::Count => store.subscribe(COUNT, None).await,
            Watched::Big => store.subscribe(BIG, None).await,
        }
        .unwrap_or_else(|e| panic!("seed {seed}: subscribe {i}: {e:?}"));
        watch.subs.push((watched, sub));
    }

    let mut load = Load {
        client: client.clone(),
        rng: Rng::new(seed ^ 0x5EED),
        groups: config.groups,
        max_in_flight: config.max_in_flight,
        keys,
        in_flight: FuturesUnordered::new(),
        issued: 0,
        tally: Tally::default(),
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
                run_for(
                    &backend,
                    &mut load,
                    &mut watch,
                    Duration::from_millis(5),
                    true,
                )
                .await;
            }
        }
        let gap = rng.duration(config.max_gap);
        run_for(&backend, &mut load, &mut watch, gap, true).await;
        if server.connection_count() > 0 {
            faults.while_connected += 1;
        }
        // Learn the keys of inserts whose answers were lost, so the bucket stays small.
        load.keys = record_keys(&server);
        match rng.below(100) {
            0..40 => {
                faults.drops += 1;
                server.drop_connections();
            }
            40..85 => {
                faults.closes += 1;
                let code = [1000, 1001, 4001][rng.below(3) as usize];
                server.close_connections(code, "chaos");
            }
            _ => {
                faults.stalls += 1;
                let stall = rng.duration(config.max_stall);
                server.stall();
                run_for(&backend, &mut load, &mut watch, stall, true).await;
                server.resume();
            }
        }
    }
    server.resume();

    // Everything in flight must end, within its deadline (plus reconnect time).
    let deadline = Instant::now() + REQUEST_TIMEOUT + SETTLE;
    while !load.in_flight.is_empty() && Instant::now() < deadline {
        run_for(
            &backend,
            &mut load,
            &mut watch,
            Duration::from_millis(20),
            false,
        )
        .await;
    }
    assert!(
        load.in_flight.is_empty(),
        "seed {seed}: {} of {} requests never resolved",
        load.in_flight.len(),
        load.issued
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

    // Subscriptions converge on the server's data.
    let deadline = Instant::now() + SETTLE;
    let mut wrong;
    loop {
        run_for(
            &backend,
            &mut load,
            &mut watch,
            Duration::from_millis(20),
            false,
        )
        .await;
        wrong = watch.mismatches(&server.records(BUCKET));
        if wrong.is_empty() || Instant::now() >= deadline {
            break;
        }
    }
    assert!(
        watch.failures.is_empty(),
        "seed {seed}: subscriptions lost: {:?}",
        watch.failures
    );
    assert!(
        wrong.is_empty(),
        "seed {seed}: {} of {} subscriptions disagree with the server, e.g. {:?}",
        wrong.len(),
        watch.subs.len(),
        &wrong[..wrong.len().min(5)]
    );
    for (i, (_, sub)) in watch.subs.iter().enumerate() {
        assert!(sub.unread() <= 1, "seed {seed}: subscription {i} buffers");
    }
    ctx.eventually(
        SETTLE,
        &format!("seed {seed}: one connection on the server"),
        || {
            let n = server.connection_count();
            async move { n == 1 }
        },
    )
    .await;
    assert!(client.is_connected(), "seed {seed}: connected at the end");

    // The core saw exactly the outcomes the callers saw.
    let counters = client
        .counters()
        .await
        .unwrap_or_else(|e| panic!("seed {seed}: counters: {e:?}"));
    let t = &load.tally;
    assert_eq!(counters.requests_ok, t.ok, "seed {seed}: ok count");
    assert_eq!(
        counters.requests_server_error, t.server_error,
        "seed {seed}: server errors"
    );
    assert_eq!(
        counters.requests_timed_out, t.timeout,
        "seed {seed}: timeouts"
    );
    assert!(
        counters.requests_disconnected <= t.disconnected,
        "seed {seed}: disconnects"
    );
    assert_eq!(counters.requests_cancelled, 0, "seed {seed}: cancelled");
    assert_eq!(counters.requests_closed, 0, "seed {seed}: closed");

    let report = ChaosReport {
        seed,
        faults,
        subscriptions: watch.subs.len(),
        updates: watch.updates,
        requests: load.tally.clone(),
        counters,
        records: server.records(BUCKET).len(),
        rss: (rss_mid, rss_bytes()),
        duration: started.elapsed(),
    };
    drop(watch);
    client.disconnect().await;
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
