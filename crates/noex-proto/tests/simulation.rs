//! Deterministic simulation: the client core against a simulated server and network, in
//! virtual time, from a seed.
//!
//! The simulated server answers requests, pushes query results and rules events, and
//! pings; the network delays frames, drops connections, stalls, closes with codes, refuses
//! reconnects and goes silent at random. Each seed draws a [`Profile`]: how the server
//! authenticates (not at all; built-in identity with a session TTL from seconds to a day;
//! a token provider whose tokens expire), the server's clock (its epoch ms are not the
//! client's, and it may drift), how it pings (every second to every five minutes, starting
//! late, or never; behind two backends that ping differently; changing when it restarts),
//! whether links go silent and whether the server restarts (keeping or losing its
//! sessions). One seed in a hundred is a long one: two to ten days of sparse traffic, for
//! which virtual time jumps from event to event.
//!
//! The simulated server keeps noex-server 0.1.4's session rules: `checkAuth` runs before
//! every request but `auth.*`, `identity.login` and `identity.loginWithSecret` and refuses
//! with UNAUTHORIZED "Authentication required" on a connection without a session, or
//! "Session expired" once when the session has expired (clearing it); a refused request is
//! not run. `identity.login` makes a session of the configured TTL; `identity.refreshSession`
//! replaces the connection's identity session (deleting the old token) and refuses with "No
//! active session to refresh" on a connection whose session came from `auth.login`;
//! `auth.login` with a session token answers "Invalid token" when the session is unknown or
//! expired; with a provider's token, "Invalid token" or "Token has expired".
//!
//! After the faults stop and the system settles, the invariants are checked:
//! - every accepted request resolved exactly once, with an outcome that fits what the
//!   server saw (a request reported "not sent" was never run by the server; a success was
//!   run; a server error reached it); no write was run twice;
//! - every live subscription's last delivered value equals the server's truth;
//! - a cancelled request gets no answer, and one cancelled before its frame was written
//!   never reaches the server (the transport drops frames the core no longer wants);
//! - no server-side subscription exists without a live handle in the core (subscriptions
//!   dropped before their `Ready` are undone on the server, or never made);
//! - nothing pending leaked (the pending table, internal requests included, is empty), and
//!   the core is connected and idle;
//! - the counters add up at every step: `requests_issued == requests_ended() +
//!   requests_pending`;
//! - the same seed gives the same run.
//!
//! And, as the run goes, about time:
//! - no UNAUTHORIZED error reaches the application (as a request's result or a
//!   subscription's failure) and the core never gives up on its login: the credentials
//!   and the provider stay valid for the whole run;
//! - `identity.refreshSession` is only sent on a link whose session an identity login or
//!   refresh made;
//! - the liveness watchdog fires exactly 2 × I + max(I / 4, `min_margin`) after the link's
//!   last frame, and never on a link that had pings and whose frames were never held
//!   back. I is the interval the documented rule says the core assumes, which the
//!   simulation keeps from what it handed the core ([`Heartbeat`]): the interval measured on
//!   the link (between its last two pings, or its `Opened` and its first ping); before the
//!   link's first ping, the interval measured last on any link (30 s before any), doubled
//!   once for every link in a row that the watchdog gave up after its `welcome` and before
//!   its first ping; a ping on any link resets that count. Links given up otherwise (the
//!   connect timeout, a login or restore deadline) do not count, as in the core;
//! - every silent link (one that stops delivering in both directions without closing: before
//!   `Opened`, before its `welcome`, at its login, during its restore, right after it is
//!   ready, or mid-life) is closed by the core within 2.5 × I of its last frame (2 × I +
//!   `min_margin` when I is under twice the margin), the watchdog's bound (a connect
//!   timeout, login or restore deadline may notice it sooner), or within the connect
//!   timeout when it never opened;
//! - every `Restored` gap starts exactly at the last frame received on the link the
//!   subscription was registered on, and ends at its new registration;
//! - every rules event the server emitted for a live rules subscription after its `Ready`
//!   was delivered exactly once, or lies inside a reported gap: it was emitted after the
//!   server sent the frame the gap starts at and before the registration the gap ends at
//!   (events are ordered by the server's own sequence, so ties cannot blur the check).
//!
//! What the simulation found in the core is kept as tests at the end: an unsubscribe the
//! session check refused, a provider's token that expired on its way, a renewal answered
//! while a new login waited for its token, pings a stall bunched.
//!
//! The workload also withdraws things at random moments: some requests are cancelled a
//! little after they are made (before the frame is written, while in flight, or after the
//! answer), and some subscriptions are dropped a little after they are made (mostly before
//! their `Ready`).
//!
//! `cargo test -p noex-proto --test simulation` runs 2 000 seeds (twenty long ones; about 115
//! simulated days in all, at least 30 asserted). More:
//! `SIM_SEEDS=100000 cargo test --release -p noex-proto --test simulation -- --ignored many_seeds`.
//! Replay one (with its trace): `SIM_SEED=1234 SIM_TRACE=1 cargo test -p noex-proto --test simulation -- --ignored replay`.

use noex_proto::{
    ops, Auth, Backoff, ClientCore, Config, ConnectionId, ConnectionState, Delivery,
    DisconnectReason, ErrorCode, Event, Gap, Input, LifecycleEvent, Liveness, Output, RequestError,
    RequestId, RequestOptions, Secret, SubscriptionEvent, SubscriptionId, SubscriptionSpec,
    TokenFetchId,
};
use rand::{RngExt, SeedableRng};

/// The simulation's generator: ChaCha8, whose output a seed fixes for good, so a seed
/// printed by a failing run replays the same after any dependency upgrade.
type StdRng = chacha20::ChaCha8Rng;

/// A generator from a `u64` seed, expanded here (not by a library's `seed_from_u64`,
/// whose expansion may change).
fn rng_from(seed: u64) -> StdRng {
    let mut bytes = [0u8; 32];
    let mut word = seed;
    for chunk in bytes.chunks_exact_mut(8) {
        chunk.copy_from_slice(&word.to_le_bytes());
        word = word.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
    }
    StdRng::from_seed(bytes)
}
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

const LATENCY_MS: u64 = 20;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const MIN_MARGIN: Duration = Duration::from_millis(250);
const INITIAL_INTERVAL: Duration = Duration::from_secs(30);
const USERNAME: &str = "app";
const PASSWORD: &str = "correct horse battery staple";
const DAY: Duration = Duration::from_secs(86_400);
/// Why the core may close a silent link.
const SILENCE_NOTICED: [&str; 4] = [
    "liveness_timeout",
    "connect_timeout",
    "login_failed",
    "restore_timeout",
];

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// A duration between `lo` and `hi`, uniform on a log scale.
fn log_uniform(rng: &mut StdRng, lo: Duration, hi: Duration) -> Duration {
    let (lo, hi) = (lo.as_secs_f64().ln(), hi.as_secs_f64().ln());
    Duration::from_millis((rng.random_range(lo..hi).exp() * 1000.0) as u64)
}

/// How the server authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuthMode {
    /// No authentication.
    Open,
    /// Built-in identity; the core logs in with `Auth::Credentials`.
    Credentials,
    /// External tokens with an expiry; the core asks its provider (`Auth::Provider`).
    Provider,
}

/// How a server pings the connections made to it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct PingPlan {
    /// `None`: never.
    every: Option<Duration>,
    /// The first ping comes after this many intervals (late when more than one).
    first_after: u32,
}

impl PingPlan {
    fn draw(rng: &mut StdRng, long: bool) -> PingPlan {
        let every = if rng.random_bool(0.05) {
            None
        } else if long {
            Some(secs([30, 60, 120, 300][rng.random_range(0..4)]))
        } else {
            Some(match rng.random_range(0..20) {
                0..=9 => secs(1),
                10..=12 => secs(2),
                13..=15 => secs(5),
                16..=17 => secs(15),
                _ => secs(30),
            })
        };
        let first_after = if rng.random_bool(0.2) {
            rng.random_range(2..=4)
        } else {
            1
        };
        PingPlan { every, first_after }
    }

    /// One server, or two backends (each connection lands on one of them at random).
    fn draw_set(rng: &mut StdRng, long: bool) -> Vec<PingPlan> {
        let count = if rng.random_bool(0.2) { 2 } else { 1 };
        (0..count).map(|_| PingPlan::draw(rng, long)).collect()
    }
}

/// What a seed simulates.
#[derive(Debug, Clone)]
struct Profile {
    auth: AuthMode,
    /// The lifetime of a session (or of a provider's token).
    ttl: Duration,
    /// The server's clock at the start (ms since the epoch), and how fast it drifts.
    epoch_ms: i64,
    drift_ppm: i64,
    /// A long run: this much virtual time with sparse traffic.
    long: Option<Duration>,
    /// How the server pings at first.
    plans: Vec<PingPlan>,
    /// Links go silent at some point of their life.
    silences: bool,
    /// The server restarts now and then.
    restarts: bool,
}

impl Profile {
    fn for_seed(seed: u64) -> Profile {
        let mut rng = rng_from(seed ^ 0x7072_6f66_696c_6521);
        let long = (seed % 100 == 99).then(|| secs(rng.random_range(2 * 86_400..=10 * 86_400)));
        let auth = match rng.random_range(0..20) {
            0..=6 => AuthMode::Open,
            7..=13 => AuthMode::Credentials,
            _ => AuthMode::Provider,
        };
        let ttl = if long.is_some() {
            log_uniform(&mut rng, secs(120), DAY)
        } else {
            match rng.random_range(0..10) {
                0..=4 => log_uniform(&mut rng, secs(2), secs(20)),
                5..=7 => log_uniform(&mut rng, secs(20), secs(300)),
                _ => log_uniform(&mut rng, secs(300), secs(7_200)),
            }
        };
        let epoch_ms = rng.random_range(1_000_000_000_000..2_000_000_000_000i64);
        let drift_ppm = if rng.random_bool(0.3) {
            rng.random_range(-500..=500)
        } else {
            0
        };
        let plans = PingPlan::draw_set(&mut rng, long.is_some());
        let silences = long.is_some() || rng.random_bool(0.4);
        let restarts = long.is_some() || rng.random_bool(0.3);
        Profile {
            auth,
            ttl,
            epoch_ms,
            drift_ppm,
            long,
            plans,
            silences,
            restarts,
        }
    }

    fn config(&self) -> Config {
        let config = Config::new("ws://sim")
            .request_timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .liveness(Liveness::Auto {
                min_margin: MIN_MARGIN,
                initial_interval: INITIAL_INTERVAL,
            })
            .backoff(Backoff {
                initial: millis(100),
                multiplier: 2.0,
                max: secs(2),
                jitter: millis(50),
                max_retries: None,
            })
            .retry_initial_connect(true);
        match self.auth {
            AuthMode::Open => config,
            AuthMode::Credentials => config.auth(Auth::Credentials {
                username: USERNAME.into(),
                password: Secret::new(PASSWORD),
            }),
            AuthMode::Provider => config.auth(Auth::Provider),
        }
    }
}

/// Where in its life a link goes silent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SilenceAt {
    /// Neither `Opened` nor a refusal ever comes.
    BeforeOpened,
    /// Open, but the `welcome` never comes.
    BeforeWelcome,
    /// When the server gets the login (before or after running it).
    DuringLogin,
    /// When the server gets a subscribe before the link is ready.
    DuringRestore,
    /// Right when the core says it is connected (before the first ping, unless the server
    /// pings faster than the restore); also where a planned silence whose moment never
    /// came falls through to.
    AfterReady,
    /// At any moment (a fault).
    MidLife,
}

impl SilenceAt {
    const PLANNED: [SilenceAt; 5] = [
        SilenceAt::BeforeOpened,
        SilenceAt::BeforeWelcome,
        SilenceAt::DuringLogin,
        SilenceAt::DuringRestore,
        SilenceAt::AfterReady,
    ];
}

/// What travels from the server to the client.
#[derive(Debug, Clone)]
enum Down {
    Opened,
    Frame(String),
    Closed(Option<u16>),
    ConnectFailed,
}

/// A subscription as the simulation knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SimSub {
    /// A store query by name.
    Query(String),
    /// A rules pattern `t{k}.*`: every rules subscription has a topic of its own.
    Rules(u64),
}

impl SimSub {
    fn key(&self) -> String {
        match self {
            SimSub::Query(query) => query.clone(),
            SimSub::Rules(k) => format!("rules t{k}"),
        }
    }
}

/// One simulated connection: the network and the server's side of it.
struct Conn {
    /// Frames the client handed out, not yet on the wire: (seq, text, request).
    outbox: VecDeque<(u64, String, Option<RequestId>)>,
    /// Frames on the wire towards the server: (arrival, text).
    up: VecDeque<(Instant, String)>,
    /// Frames on the wire towards the client: (arrival, server sequence at sending, what).
    down: VecDeque<(Instant, u64, Down)>,
    /// The server side exists (after the open handshake).
    server_open: bool,
    /// Server-side subscriptions: server id → what.
    subs: BTreeMap<String, SimSub>,
    /// Nothing moves in either direction until then.
    stalled_until: Option<Instant>,
    /// The server's ping interval on this connection, and its next ping.
    ping_every: Option<Duration>,
    next_ping: Option<Instant>,
    /// The client side has closed it; only leftovers remain.
    dead: bool,
    /// Nothing arrives in either direction any more, and nothing says so.
    silent: bool,
    /// The moment this link is to go silent, if it is.
    silence_plan: Option<SilenceAt>,
    /// The server's session state of the connection (noex-server's `ConnectionState`).
    authenticated: bool,
    session_expires: Option<i64>,
    session_token: Option<String>,
    /// The core said it is connected on this link.
    ready: bool,
}

/// What the client observed of one link, kept for the whole run.
struct LinkRec {
    /// When the core asked for it.
    opened_at: Instant,
    /// When `Opened` was handed to the core.
    opened: Option<Instant>,
    welcomed: bool,
    /// The last `Opened` or frame handed to the core: when, and the server sequence at which
    /// it was sent.
    last_rx: Option<(Instant, u64)>,
    last_ping: Option<Instant>,
    /// The last ping's `timestamp` (the server's clock, ms).
    last_ping_stamp: Option<f64>,
    /// The welcome's `serverTime`.
    welcome_stamp: Option<f64>,
    /// The ping interval measured on the link (as the core measures it).
    interval: Option<Duration>,
    /// Since when it is silent, and at what point of its life it went silent.
    silent_since: Option<(Instant, SilenceAt)>,
    /// A stall held its frames back at some point.
    delayed: bool,
    /// When and why the core closed it.
    closed: Option<(Instant, String)>,
}

/// The liveness rule, as documented: the interval a link is assumed to have is the one
/// measured on it (between its last two pings, the larger of their arrivals' distance and
/// their timestamps', or its open and first ping); before its first ping, the one
/// measured last on any link (`initial_interval` before any), doubled for every link in a
/// row (at most three) that the watchdog gave up after its `welcome` and before its first
/// ping (a ping resets the count). The watchdog fires 2 × I + max(I / 4,
/// `min_margin`) after the last frame.
#[derive(Debug, Default)]
struct Heartbeat {
    learned: Option<Duration>,
    silent_starts: u32,
}

impl Heartbeat {
    fn assumed_before_ping(&self) -> Duration {
        self.learned
            .unwrap_or(INITIAL_INTERVAL)
            .saturating_mul(1u32 << self.silent_starts.min(3))
    }

    fn assumed(&self, link: &LinkRec) -> Duration {
        link.interval.unwrap_or_else(|| self.assumed_before_ping())
    }

    fn watchdog(&self, link: &LinkRec) -> Duration {
        let interval = self.assumed(link);
        interval
            .saturating_mul(2)
            .saturating_add((interval / 4).max(MIN_MARGIN))
    }
}

/// What the simulation follows of one subscription.
struct Watch {
    sub: SimSub,
    /// The link its last `Ready` or `Restored` came on.
    registered_on: Option<ConnectionId>,
    /// Rules: the server sequence of the registration its `Ready` answered.
    ready_reg: Option<u64>,
    /// Rules: every reported gap, in server sequence: (the frame it starts at was sent,
    /// the registration it ends at).
    gaps: Vec<(u64, u64)>,
    /// Rules: the events delivered.
    delivered: BTreeSet<u64>,
}

/// What the token provider was asked and will answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProviderAnswer {
    Token,
    /// A fresh token the server refuses once ("Invalid token").
    RefusedOnce,
    Fail,
}

struct Sim {
    profile: Profile,
    rng: StdRng,
    t0: Instant,
    now: Instant,
    core: ClientCore,
    conns: BTreeMap<ConnectionId, Conn>,
    links: BTreeMap<ConnectionId, LinkRec>,
    /// The link the core asked for last (its current one, while it lasts).
    current: Option<ConnectionId>,
    hb: Heartbeat,
    /// The server's data: key → value.
    items: BTreeMap<u64, i64>,
    next_sub: u64,
    /// Every server action (a frame sent, an event emitted, a subscription made) in order.
    server_seq: u64,
    /// Identity sessions: token → expiry (server ms).
    sessions: BTreeMap<String, i64>,
    /// Provider tokens: token → (expiry, still to be refused once).
    tokens: BTreeMap<String, (i64, bool)>,
    next_token: u64,
    /// The provider's cached token, given when a token is asked for without `refresh`.
    cached_token: Option<String>,
    /// Token requests to answer: (when, fetch id, refresh, how).
    token_due: Vec<(Instant, u64, bool, ProviderAnswer)>,
    /// How the server pings now (changes when it restarts).
    plans: Vec<PingPlan>,
    /// The server is down (restarting) until then.
    down_until: Option<Instant>,
    /// Rules events: topic → (event, server sequence of its emission).
    events: BTreeMap<u64, Vec<(u64, u64)>>,
    next_event: u64,
    next_emit: Option<Instant>,
    /// Rules registrations: (connection, topic) → server sequence.
    rules_regs: BTreeMap<(ConnectionId, u64), u64>,
    next_topic: u64,
    /// Unsubscribes the session check refused: (connection, server id).
    unsubscribes_refused: BTreeSet<(ConnectionId, String)>,
    /// Request ids that reached the server, and how often the server ran each.
    received: BTreeSet<u64>,
    executed: BTreeMap<u64, u32>,
    refuse_opens: u32,
    faults: bool,
    /// The final close is under way: what it closes is not checked.
    closing: bool,
    /// Request ids whose frame the transport wrote (it may reach the server).
    written: BTreeSet<u64>,
    /// Frames the transport dropped unwritten because the core no longer wanted them.
    frames_dropped: u64,
    /// Withdrawals scheduled by the workload.
    cancels_due: Vec<(Instant, RequestId)>,
    drops_due: Vec<(Instant, SubscriptionId)>,
    // What the client reported.
    outcomes: HashMap<RequestId, Vec<Result<Value, RequestError>>>,
    /// Every `request_with` call, accepted or refused.
    issued: u64,
    accepted: BTreeSet<RequestId>,
    /// Requests cancelled before they ended, and whether their frame was written by then.
    cancelled: BTreeMap<RequestId, bool>,
    live_subs: BTreeMap<SubscriptionId, SimSub>,
    watches: BTreeMap<SubscriptionId, Watch>,
    /// Subscriptions that reported `Ready`.
    ready: BTreeSet<SubscriptionId>,
    /// Subscriptions dropped before their `Ready`.
    dropped_before_ready: u64,
    last_value: HashMap<SubscriptionId, Value>,
    /// Broken invariants, noticed as they happen.
    violations: Vec<String>,
    stats: Stats,
    trace: Vec<String>,
}

/// What a run went through, beyond the core's counters.
#[derive(Debug, Default, Clone)]
struct Stats {
    session_refusals: u64,
    restarts: u64,
    silences: [u64; 6],
    silences_noticed: BTreeMap<String, u64>,
    liveness_timeouts: u64,
    /// Links given up by the watchdog while their server was pinging, less than two of its
    /// intervals after their last frame.
    early_liveness: u64,
    /// Server-side subscriptions left behind by an unsubscribe the session check refused.
    unsubscribes_refused: u64,
    rules_events: u64,
    rules_delivered: u64,
    rules_lost_in_gaps: u64,
    gaps: u64,
    provider_failures: u64,
    provider_refused_once: u64,
}

fn truth(items: &BTreeMap<u64, i64>, query: &str) -> Value {
    match query {
        "count" => json!(items.len()),
        _ => Value::Array(
            items
                .iter()
                .map(|(k, v)| json!({"id": k, "v": v}))
                .collect(),
        ),
    }
}

/// One start time for every run in the process, so runs of one seed (whose traces show
/// instants, e.g. a restored subscription's gap) can be compared.
fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn is_login(kind: &str) -> bool {
    matches!(
        kind,
        "identity.login" | "identity.refreshSession" | "auth.login"
    )
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let profile = Profile::for_seed(seed);
        let t0 = epoch();
        let core = ClientCore::new(profile.config(), seed);
        let plans = profile.plans.clone();
        Sim {
            profile,
            rng: rng_from(seed),
            t0,
            now: t0,
            core,
            conns: BTreeMap::new(),
            links: BTreeMap::new(),
            current: None,
            hb: Heartbeat::default(),
            items: BTreeMap::new(),
            next_sub: 1,
            server_seq: 0,
            sessions: BTreeMap::new(),
            tokens: BTreeMap::new(),
            next_token: 1,
            cached_token: None,
            token_due: Vec::new(),
            plans,
            down_until: None,
            events: BTreeMap::new(),
            next_event: 1,
            next_emit: Some(t0),
            rules_regs: BTreeMap::new(),
            next_topic: 1,
            unsubscribes_refused: BTreeSet::new(),
            received: BTreeSet::new(),
            executed: BTreeMap::new(),
            refuse_opens: 0,
            faults: true,
            closing: false,
            written: BTreeSet::new(),
            frames_dropped: 0,
            cancels_due: Vec::new(),
            drops_due: Vec::new(),
            outcomes: HashMap::new(),
            issued: 0,
            accepted: BTreeSet::new(),
            cancelled: BTreeMap::new(),
            live_subs: BTreeMap::new(),
            watches: BTreeMap::new(),
            ready: BTreeSet::new(),
            dropped_before_ready: 0,
            last_value: HashMap::new(),
            violations: Vec::new(),
            stats: Stats::default(),
            trace: Vec::new(),
        }
    }

    fn long(&self) -> bool {
        self.profile.long.is_some()
    }

    fn violation(&mut self, what: String) {
        self.trace.push(format!("VIOLATION: {what}"));
        self.violations.push(what);
    }

    /// The server's clock (ms since the epoch): its own epoch, drifting.
    fn server_ms(&self) -> i64 {
        let elapsed = self.now.saturating_duration_since(self.t0).as_millis() as i64;
        self.profile.epoch_ms + elapsed + elapsed * self.profile.drift_ppm / 1_000_000
    }

    fn next_server_seq(&mut self) -> u64 {
        self.server_seq += 1;
        self.server_seq
    }

    fn latency(&mut self) -> Duration {
        millis(self.rng.random_range(1..=LATENCY_MS))
    }

    /// When something may travel on `conn` at the earliest.
    fn ready_at(&self, conn: &Conn, at: Instant) -> Instant {
        conn.stalled_until.map_or(at, |s| s.max(at))
    }

    fn send_down(&mut self, id: ConnectionId, what: Down) {
        let lat = self.latency();
        let now = self.now;
        let seq = self.next_server_seq();
        if let Some(conn) = self.conns.get_mut(&id) {
            let last = conn.down.back().map_or(now, |(t, _, _)| *t);
            conn.down.push_back((last.max(now + lat), seq, what));
        }
    }

    /// Drains the core's outputs into the network and the records.
    fn pump(&mut self) {
        while let Some(output) = self.core.poll_output() {
            self.trace
                .push(format!("{:?} {output:?}", self.now - self.t0));
            match output {
                Output::Open { connection, .. } => self.open(connection),
                Output::Send {
                    connection,
                    seq,
                    text,
                    request,
                } => {
                    if let Some(conn) = self.conns.get_mut(&connection) {
                        if !conn.dead {
                            conn.outbox.push_back((seq, text, request));
                        }
                    }
                }
                Output::Close {
                    connection, reason, ..
                } => self.client_closed(connection, &reason),
                Output::FetchToken { id, refresh } => self.fetch_token(id, refresh),
                Output::Event(event) => self.record(event),
                other => panic!("an output the simulation does not know: {other:?}"),
            }
        }
    }

    /// The core opens a link: the server accepts it (and says welcome), refuses it, or the
    /// link is silent from the start.
    fn open(&mut self, connection: ConnectionId) {
        let now = self.now;
        self.current = Some(connection);
        let plan = self.plans[self.rng.random_range(0..self.plans.len())];
        let silence_plan = (self.faults
            && self.profile.silences
            && self.rng.random_bool(if self.long() { 0.03 } else { 0.06 }))
        .then(|| SilenceAt::PLANNED[self.rng.random_range(0..SilenceAt::PLANNED.len())]);
        self.links.insert(
            connection,
            LinkRec {
                opened_at: now,
                opened: None,
                welcomed: false,
                last_rx: None,
                last_ping: None,
                last_ping_stamp: None,
                welcome_stamp: None,
                interval: None,
                silent_since: None,
                delayed: false,
                closed: None,
            },
        );
        self.conns.insert(
            connection,
            Conn {
                outbox: VecDeque::new(),
                up: VecDeque::new(),
                down: VecDeque::new(),
                server_open: false,
                subs: BTreeMap::new(),
                stalled_until: None,
                ping_every: plan.every,
                next_ping: None,
                dead: false,
                silent: false,
                silence_plan,
                authenticated: false,
                session_expires: None,
                session_token: None,
                ready: false,
            },
        );
        if silence_plan == Some(SilenceAt::BeforeOpened) {
            self.silence(connection, SilenceAt::BeforeOpened);
            return;
        }
        let down = self.down_until.is_some_and(|t| t > now);
        if down || self.refuse_opens > 0 {
            if !down {
                self.refuse_opens -= 1;
            }
            self.send_down(connection, Down::ConnectFailed);
            return;
        }
        self.send_down(connection, Down::Opened);
        if let Some(conn) = self.conns.get_mut(&connection) {
            conn.server_open = true;
            conn.next_ping = plan
                .every
                .map(|every| now + every.saturating_mul(plan.first_after));
        }
        let welcome = json!({"type": "welcome", "version": "1.0.0",
                             "serverTime": self.server_ms(),
                             "requiresAuth": self.profile.auth != AuthMode::Open});
        self.send_down(connection, Down::Frame(welcome.to_string()));
    }

    /// `id` goes silent: nothing moves on it any more, in either direction.
    fn silence(&mut self, id: ConnectionId, at: SilenceAt) {
        let now = self.now;
        if let Some(conn) = self.conns.get_mut(&id) {
            if conn.silent || conn.dead {
                return;
            }
            conn.silent = true;
            conn.silence_plan = None;
        }
        if let Some(link) = self.links.get_mut(&id) {
            link.silent_since = Some((now, at));
        }
        self.stats.silences[at as usize] += 1;
        self.trace.push(format!("sim: {id:?} goes silent ({at:?})"));
    }

    /// The core closed `id`: check how soon it noticed a silence, and whether the watchdog
    /// fired when the liveness rule says.
    fn client_closed(&mut self, id: ConnectionId, reason: &str) {
        // How the server was pinging the link, and whether a stall holds it up now.
        let server_pings = self
            .conns
            .get(&id)
            .filter(|c| c.server_open && !c.silent && c.stalled_until.is_none_or(|s| s <= self.now))
            .and_then(|c| c.ping_every);
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.dead = true;
            conn.outbox.clear();
            conn.down.clear();
            conn.server_open = false;
            conn.subs.clear();
            if conn.silent {
                // Nothing on a silent link ever arrives.
                conn.up.clear();
            }
        }
        let now = self.now;
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        link.closed = Some((now, reason.to_owned()));
        if self.closing {
            return;
        }
        let link = &self.links[&id];
        let interval = self.hb.assumed(link);
        let watchdog = link
            .opened
            .and(link.last_rx)
            .map(|(at, _)| at + self.hb.watchdog(link));
        let mut broken = Vec::new();
        let liveness = reason == "liveness_timeout";
        if liveness {
            if watchdog != Some(now) {
                broken.push(format!(
                    "{id:?}: the watchdog fired at {:?}, the rule says {:?} (last frame {:?}, \
                     interval {interval:?}, learned {:?}, silent starts {})",
                    now - self.t0,
                    watchdog.map(|w| w - self.t0),
                    link.last_rx.map(|(at, _)| at - self.t0),
                    self.hb.learned,
                    self.hb.silent_starts
                ));
            }
            if link.last_ping.is_some() && !link.delayed && link.silent_since.is_none() {
                broken.push(format!(
                    "{id:?}: a link whose pings came in time was given up by the watchdog"
                ));
            }
            // Given up although the server pings and has been quiet for less than two of
            // its intervals (pings a stall bunched must not shorten the interval).
            let quiet = link.last_rx.map(|(at, _)| now - at);
            if let (Some(every), Some(quiet)) = (server_pings, quiet) {
                if link.last_ping.is_some() && quiet < every.saturating_mul(2) {
                    broken.push(format!(
                        "{id:?}: given up {quiet:?} after its last frame, pinged every {every:?}"
                    ));
                }
            }
        }
        if let Some((_, at)) = link.silent_since {
            let bound = match link.last_rx {
                Some((last, _)) if link.opened.is_some() => {
                    // 2.5 intervals; 2 and `min_margin` when that is more (an interval
                    // under twice the margin, e.g. measured between pings a stall bunched).
                    let within = (interval.saturating_mul(5) / 2)
                        .max(interval.saturating_mul(2) + MIN_MARGIN);
                    if now > last + within {
                        broken.push(format!(
                            "{id:?}: silent ({at:?}) and noticed {:?} after its last frame, \
                             more than {within:?} (interval {interval:?})",
                            now - last
                        ));
                    }
                    let bound = last + self.hb.watchdog(link);
                    if link.welcomed {
                        bound
                    } else {
                        bound.min(link.opened_at + CONNECT_TIMEOUT)
                    }
                }
                _ => link.opened_at + CONNECT_TIMEOUT,
            };
            if now > bound {
                broken.push(format!(
                    "{id:?}: silent ({at:?}), noticed at {:?}, due by {:?}",
                    now - self.t0,
                    bound - self.t0
                ));
            }
            if !SILENCE_NOTICED.contains(&reason) {
                broken.push(format!("{id:?}: silent ({at:?}), closed for {reason}"));
            }
            *self
                .stats
                .silences_noticed
                .entry(reason.to_owned())
                .or_default() += 1;
        }
        if liveness {
            self.stats.liveness_timeouts += 1;
            if link.last_ping.is_none() && link.welcomed {
                self.hb.silent_starts += 1;
            }
        }
        for what in broken {
            self.violation(what);
        }
    }

    /// The core asks its provider for a token: the provider answers soon, late (maybe
    /// after the core stopped waiting), not at all usefully, or with a token the server
    /// refuses once.
    fn fetch_token(&mut self, id: TokenFetchId, refresh: bool) {
        let (delay, answer) = if self.faults {
            let delay = match self.rng.random_range(0..10) {
                0..=6 => millis(self.rng.random_range(0..50)),
                7..=8 => millis(self.rng.random_range(50..1_000)),
                _ => millis(self.rng.random_range(2_000..5_000)),
            };
            let answer = match self.rng.random_range(0..100) {
                0..=7 => ProviderAnswer::Fail,
                8..=17 if !refresh => ProviderAnswer::RefusedOnce,
                _ => ProviderAnswer::Token,
            };
            (delay, answer)
        } else {
            (millis(self.rng.random_range(0..50)), ProviderAnswer::Token)
        };
        self.token_due
            .push((self.now + delay, id.0, refresh, answer));
    }

    fn next_token_due(&self) -> Option<Instant> {
        self.token_due.iter().map(|(t, ..)| *t).min()
    }

    /// The provider answers what is due.
    fn provide_due(&mut self) {
        let now = self.now;
        let (due, later): (Vec<_>, Vec<_>) =
            self.token_due.drain(..).partition(|(t, ..)| *t <= now);
        self.token_due = later;
        for (_, id, refresh, answer) in due {
            let token = match answer {
                ProviderAnswer::Fail => {
                    self.stats.provider_failures += 1;
                    Err("the provider is unavailable".to_owned())
                }
                ProviderAnswer::Token if !refresh && self.cached_token.is_some() => {
                    Ok(self.cached_token.clone().unwrap_or_default())
                }
                ProviderAnswer::Token | ProviderAnswer::RefusedOnce => {
                    let refused = answer == ProviderAnswer::RefusedOnce;
                    if refused {
                        self.stats.provider_refused_once += 1;
                    }
                    let token = format!("p{}", self.next_token);
                    self.next_token += 1;
                    let expires = self.server_ms() + self.profile.ttl.as_millis() as i64;
                    self.tokens.insert(token.clone(), (expires, refused));
                    self.cached_token = Some(token.clone());
                    Ok(token)
                }
            };
            self.core
                .provide_token(now, TokenFetchId(id), token.map(Secret::new));
            self.pump();
        }
    }

    fn record(&mut self, event: Event) {
        match event {
            Event::Response { id, result } => {
                if let Err(RequestError::Server(e)) = &result {
                    if e.code == ErrorCode::Unauthorized {
                        self.violation(format!(
                            "request {id:?} ended UNAUTHORIZED \"{}\" with valid credentials",
                            e.message
                        ));
                    }
                }
                let result = result.map(|p| p.to_value().expect("JSON value"));
                self.outcomes.entry(id).or_default().push(result);
            }
            Event::Subscription(SubscriptionEvent::Ready { id, data }) => {
                self.ready.insert(id);
                if let Some(data) = data {
                    self.last_value
                        .insert(id, data.to_value().expect("JSON value"));
                }
                self.registered(id, None);
            }
            Event::Subscription(SubscriptionEvent::Restored { id, data, gap }) => {
                self.ready.insert(id);
                if let Some(data) = data {
                    self.last_value
                        .insert(id, data.to_value().expect("JSON value"));
                }
                self.registered(id, Some(gap));
            }
            Event::Subscription(SubscriptionEvent::Update { id, data }) => {
                let data = data.to_value().expect("JSON value");
                match self.watches.get(&id).map(|w| w.sub.clone()) {
                    Some(SimSub::Rules(k)) => self.rules_update(id, k, &data),
                    _ => {
                        self.last_value.insert(id, data);
                    }
                }
            }
            Event::Subscription(SubscriptionEvent::Failed { id, error }) => {
                if let RequestError::Server(e) = &error {
                    if e.code == ErrorCode::Unauthorized {
                        self.violation(format!(
                            "subscription {id:?} failed UNAUTHORIZED \"{}\" with valid credentials",
                            e.message
                        ));
                    }
                }
                self.live_subs.remove(&id);
                self.last_value.remove(&id);
            }
            Event::Subscription(SubscriptionEvent::Ended { id }) => {
                self.live_subs.remove(&id);
                self.last_value.remove(&id);
            }
            Event::Lifecycle(LifecycleEvent::Connected | LifecycleEvent::Reconnected) => {
                self.link_ready();
            }
            Event::Lifecycle(LifecycleEvent::Disconnected(
                reason @ (DisconnectReason::AuthRejected { .. }
                | DisconnectReason::SessionExpired { .. }),
            )) => {
                self.violation(format!(
                    "the core gave up its login with valid credentials: {reason:?}"
                ));
            }
            Event::Lifecycle(_) => {}
            other => panic!("an event the simulation does not know: {other:?}"),
        }
    }

    /// The core says it is connected on its current link: a silence planned for a moment
    /// that did not come (no login, no restore) happens now.
    fn link_ready(&mut self) {
        let Some(id) = self.current else { return };
        let planned = match self.conns.get_mut(&id) {
            Some(conn) => {
                conn.ready = true;
                conn.silence_plan.is_some()
            }
            None => false,
        };
        if planned {
            self.silence(id, SilenceAt::AfterReady);
        }
    }

    /// A subscription was registered on the current link (`Ready`, or `Restored` with
    /// `gap`): check the gap against what the link it was lost with received.
    fn registered(&mut self, id: SubscriptionId, gap: Option<Gap>) {
        let now = self.now;
        let Some(conn) = self.current else {
            self.violation(format!("{id:?} registered with no link"));
            return;
        };
        let Some(watch) = self.watches.get(&id) else {
            return;
        };
        let mut broken = Vec::new();
        let mut from_seq = None;
        match gap {
            None => {
                if watch.registered_on.is_some() {
                    broken.push(format!("{id:?}: a second Ready"));
                }
            }
            Some(gap) => {
                self.stats.gaps += 1;
                match watch.registered_on {
                    None => broken.push(format!("{id:?}: Restored before its Ready")),
                    Some(lost) => {
                        let last = self.links.get(&lost).and_then(|l| l.last_rx);
                        match last {
                            Some((at, seq)) if at == gap.from => from_seq = Some(seq),
                            other => broken.push(format!(
                                "{id:?}: its gap starts at {:?}, but the last frame on {lost:?} \
                                 (where it was registered) came at {:?}",
                                gap.from - self.t0,
                                other.map(|(at, _)| at - self.t0)
                            )),
                        }
                    }
                }
                if gap.to != now {
                    broken.push(format!(
                        "{id:?}: its gap ends at {:?}, it was registered at {:?}",
                        gap.to - self.t0,
                        now - self.t0
                    ));
                }
            }
        }
        if let SimSub::Rules(k) = watch.sub {
            match self.rules_regs.get(&(conn, k)).copied() {
                None => broken.push(format!(
                    "{id:?}: registered on {conn:?}, where the server never made it"
                )),
                Some(reg) => {
                    if let Some(watch) = self.watches.get_mut(&id) {
                        match (gap, from_seq) {
                            (None, _) => watch.ready_reg = Some(reg),
                            (Some(_), Some(from)) => watch.gaps.push((from, reg)),
                            (Some(_), None) => {}
                        }
                    }
                }
            }
        }
        if let Some(watch) = self.watches.get_mut(&id) {
            watch.registered_on = Some(conn);
        }
        for what in broken {
            self.violation(what);
        }
    }

    /// A rules event delivered to subscription `id` (topic `k`).
    fn rules_update(&mut self, id: SubscriptionId, k: u64, data: &Value) {
        let topic = data["topic"].as_str().unwrap_or_default();
        let event = data["event"]["id"]
            .as_str()
            .and_then(|e| e.strip_prefix('e'))
            .and_then(|n| n.parse::<u64>().ok());
        let Some(n) = event.filter(|_| topic == format!("t{k}.x")) else {
            self.violation(format!(
                "{id:?} (topic t{k}) got an event it did not ask for: {data}"
            ));
            return;
        };
        let twice = self
            .watches
            .get_mut(&id)
            .is_some_and(|w| !w.delivered.insert(n));
        if twice {
            self.violation(format!("{id:?} got event {n} twice"));
        }
        self.stats.rules_delivered += 1;
    }

    /// Whether the frame of `kind` the server just got on `id` starts a planned silence:
    /// `Some(true)` when the server runs it first (its answer is lost), `Some(false)` when
    /// it is lost itself.
    fn silence_on_receipt(&mut self, id: ConnectionId, kind: &str) -> Option<bool> {
        let conn = self.conns.get(&id)?;
        let at = match conn.silence_plan? {
            SilenceAt::DuringLogin if is_login(kind) && !conn.ready => SilenceAt::DuringLogin,
            SilenceAt::DuringRestore
                if matches!(kind, "store.subscribe" | "rules.subscribe") && !conn.ready =>
            {
                SilenceAt::DuringRestore
            }
            _ => return None,
        };
        let run_first = self.rng.random_bool(0.5);
        if !run_first {
            self.silence(id, at);
        } else if let Some(conn) = self.conns.get_mut(&id) {
            // Run it, then fall silent (below, once it is answered).
            conn.silence_plan = Some(at);
        }
        Some(run_first)
    }

    /// noex-server's `checkAuth`: the refusal of a request the connection's session does
    /// not allow, before anything runs.
    fn check_auth(&mut self, id: ConnectionId, kind: &str) -> Option<&'static str> {
        if self.profile.auth == AuthMode::Open
            || kind.starts_with("auth.")
            || kind == "identity.login"
            || kind == "identity.loginWithSecret"
        {
            return None;
        }
        let now_ms = self.server_ms();
        let conn = self.conns.get_mut(&id)?;
        if !conn.authenticated {
            return Some("Authentication required");
        }
        if conn.session_expires.is_some_and(|at| at < now_ms) {
            conn.authenticated = false;
            conn.session_expires = None;
            return Some("Session expired");
        }
        None
    }

    /// A new identity session for the connection `id`.
    fn make_session(&mut self, id: ConnectionId) -> Value {
        let token = format!("s{}", self.next_token);
        self.next_token += 1;
        let expires = self.server_ms() + self.profile.ttl.as_millis() as i64;
        self.sessions.insert(token.clone(), expires);
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.authenticated = true;
            conn.session_expires = Some(expires);
            conn.session_token = Some(token.clone());
        }
        json!({"token": token, "expiresAt": expires,
               "user": {"id": "u-1", "username": USERNAME, "roles": ["writer"]}})
    }

    /// `auth.login` with `token`: a session token (built-in identity) or a provider's.
    fn auth_login(
        &mut self,
        id: ConnectionId,
        token: &str,
    ) -> Result<Value, (&'static str, String)> {
        let now_ms = self.server_ms();
        let expires = match self.profile.auth {
            AuthMode::Open => {
                return Err((
                    "UNKNOWN_OPERATION",
                    "Authentication is not configured".into(),
                ))
            }
            AuthMode::Credentials => match self.sessions.get(token).copied() {
                Some(at) if at >= now_ms => at,
                Some(_) => {
                    self.sessions.remove(token);
                    return Err(("UNAUTHORIZED", "Invalid token".into()));
                }
                None => return Err(("UNAUTHORIZED", "Invalid token".into())),
            },
            AuthMode::Provider => match self.tokens.get_mut(token) {
                Some((_, refused)) if *refused => {
                    *refused = false;
                    return Err(("UNAUTHORIZED", "Invalid token".into()));
                }
                Some((at, _)) if *at < now_ms => {
                    return Err(("UNAUTHORIZED", "Token has expired".into()))
                }
                Some((at, _)) => *at,
                None => return Err(("UNAUTHORIZED", "Invalid token".into())),
            },
        };
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.authenticated = true;
            conn.session_expires = Some(expires);
        }
        Ok(json!({"userId": "u-1", "roles": ["writer"], "expiresAt": expires}))
    }

    /// `identity.refreshSession` (after `checkAuth` let it through).
    fn refresh_session(&mut self, id: ConnectionId) -> Result<Value, (&'static str, String)> {
        let (token, authenticated) = match self.conns.get(&id) {
            Some(conn) => (conn.session_token.clone(), conn.authenticated),
            None => (None, false),
        };
        let Some(token) = token.filter(|_| authenticated) else {
            self.violation(format!(
                "identity.refreshSession on {id:?}, whose session no identity login made"
            ));
            return Err(("UNAUTHORIZED", "No active session to refresh".into()));
        };
        let now_ms = self.server_ms();
        match self.sessions.remove(&token) {
            Some(at) if at >= now_ms => Ok(self.make_session(id)),
            _ => Err(("UNAUTHORIZED", "Invalid or expired session".into())),
        }
    }

    fn reply(&mut self, id: ConnectionId, req: u64, answer: Result<Value, (&str, String)>) {
        let reply = match answer {
            Ok(data) => json!({"id": req, "type": "result", "data": data}),
            Err((code, message)) => {
                json!({"id": req, "type": "error", "code": code, "message": message})
            }
        };
        self.send_down(id, Down::Frame(reply.to_string()));
    }

    /// The server handles one request frame on `id`.
    fn serve(&mut self, id: ConnectionId, text: &str) {
        let Ok(frame) = serde_json::from_str::<Value>(text) else {
            return;
        };
        let kind = frame["type"].as_str().unwrap_or_default().to_owned();
        if kind == "pong" {
            return;
        }
        let Some(req) = frame["id"].as_u64() else {
            return;
        };
        let silence_after = match self.silence_on_receipt(id, &kind) {
            Some(false) => return,
            Some(true) => true,
            None => false,
        };
        self.received.insert(req);
        if let Some(message) = self.check_auth(id, &kind) {
            self.stats.session_refusals += 1;
            if kind.ends_with(".unsubscribe") {
                let sid = frame["subscriptionId"].as_str().unwrap_or_default();
                self.unsubscribes_refused.insert((id, sid.to_owned()));
            }
            self.trace.push(format!(
                "server {id:?}: request {req} ({kind}) refused: {message}"
            ));
            self.reply(id, req, Err(("UNAUTHORIZED", message.into())));
        } else {
            self.run(id, req, &kind, &frame);
        }
        if silence_after {
            let at = self.conns.get(&id).and_then(|c| c.silence_plan);
            self.silence(id, at.unwrap_or(SilenceAt::MidLife));
        }
    }

    /// The server runs request `req` of `kind` on `id`.
    fn run(&mut self, id: ConnectionId, req: u64, kind: &str, frame: &Value) {
        let runs = self.executed.entry(req).or_default();
        *runs += 1;
        if *runs > 1 && matches!(kind, "store.insert" | "store.delete") {
            self.violation(format!("write {req} ({kind}) was run twice"));
        }
        let mut changed = false;
        let answer: Result<Value, (&str, String)> = match kind {
            "identity.login" => {
                if self.profile.auth != AuthMode::Credentials {
                    Err(("UNKNOWN_OPERATION", "Identity is not configured".into()))
                } else if frame["username"] == USERNAME && frame["password"] == PASSWORD {
                    Ok(self.make_session(id))
                } else {
                    Err(("UNAUTHORIZED", "Invalid credentials".into()))
                }
            }
            "identity.refreshSession" => self.refresh_session(id),
            "auth.login" => {
                let token = frame["token"].as_str().unwrap_or_default().to_owned();
                self.auth_login(id, &token)
            }
            "store.get" => Ok(frame["key"]
                .as_u64()
                .and_then(|k| self.items.get(&k).map(|v| json!({"id": k, "v": v})))
                .unwrap_or(Value::Null)),
            "store.insert" => {
                let k = frame["data"]["id"].as_u64().unwrap_or(0);
                let v = frame["data"]["v"].as_i64().unwrap_or(0);
                match self.items.entry(k) {
                    std::collections::btree_map::Entry::Occupied(_) => {
                        Err(("ALREADY_EXISTS", "exists".into()))
                    }
                    std::collections::btree_map::Entry::Vacant(slot) => {
                        slot.insert(v);
                        changed = true;
                        Ok(json!({"id": k, "v": v}))
                    }
                }
            }
            "store.delete" => {
                let k = frame["key"].as_u64().unwrap_or(0);
                changed = self.items.remove(&k).is_some();
                Ok(json!({"deleted": true}))
            }
            "store.count" => Ok(json!(self.items.len())),
            "store.subscribe" => {
                let query = frame["query"].as_str().unwrap_or_default().to_owned();
                if query == "missing" {
                    Err(("QUERY_NOT_DEFINED", "no such query".into()))
                } else {
                    let sid = format!("sub-{}", self.next_sub);
                    self.next_sub += 1;
                    let data = truth(&self.items, &query);
                    self.trace
                        .push(format!("server {id:?}: request {req} made {sid} ({query})"));
                    // A reactive query may push its first result before the subscribe
                    // answer is out: the client holds it until the answer.
                    if self.rng.random_bool(0.2) {
                        let push = json!({"type": "push", "channel": "subscription",
                                          "subscriptionId": sid, "data": data});
                        self.send_down(id, Down::Frame(push.to_string()));
                    }
                    if let Some(conn) = self.conns.get_mut(&id) {
                        conn.subs.insert(sid.clone(), SimSub::Query(query));
                    }
                    Ok(json!({"subscriptionId": sid, "data": data}))
                }
            }
            "rules.subscribe" => {
                let topic = frame["pattern"]
                    .as_str()
                    .and_then(|p| p.strip_prefix('t'))
                    .and_then(|p| p.strip_suffix(".*"))
                    .and_then(|k| k.parse::<u64>().ok());
                match topic {
                    Some(k) => {
                        let sid = format!("sub-{}", self.next_sub);
                        self.next_sub += 1;
                        let seq = self.next_server_seq();
                        self.rules_regs.insert((id, k), seq);
                        self.trace
                            .push(format!("server {id:?}: request {req} made {sid} (t{k}.*)"));
                        if let Some(conn) = self.conns.get_mut(&id) {
                            conn.subs.insert(sid.clone(), SimSub::Rules(k));
                        }
                        Ok(json!({"subscriptionId": sid}))
                    }
                    None => Err(("VALIDATION_ERROR", "bad pattern".into())),
                }
            }
            "store.unsubscribe" | "rules.unsubscribe" => {
                let sid = frame["subscriptionId"].as_str().unwrap_or_default();
                self.trace
                    .push(format!("server {id:?}: request {req} removes {sid}"));
                match self.conns.get_mut(&id).and_then(|c| c.subs.remove(sid)) {
                    Some(_) => Ok(json!({"unsubscribed": true})),
                    None => Err(("NOT_FOUND", "no such subscription".into())),
                }
            }
            _ => Err(("UNKNOWN_OPERATION", "unknown".into())),
        };
        self.reply(id, req, answer);
        if changed {
            self.push_all();
        }
    }

    /// Every server-side store subscription gets the whole new result.
    fn push_all(&mut self) {
        let mut pushes = Vec::new();
        for (cid, conn) in &self.conns {
            if conn.server_open && !conn.silent {
                for (sid, sub) in &conn.subs {
                    if let SimSub::Query(query) = sub {
                        let data = truth(&self.items, query);
                        let push = json!({"type": "push", "channel": "subscription", "subscriptionId": sid, "data": data});
                        pushes.push((*cid, push.to_string()));
                    }
                }
            }
        }
        for (cid, push) in pushes {
            self.send_down(cid, Down::Frame(push));
        }
    }

    /// The server's rules engine emits an event on one of the topics clients asked for,
    /// pushed to every subscription of its topic on every open connection.
    fn emit_due(&mut self) {
        let Some(at) = self.next_emit.filter(|t| *t <= self.now) else {
            return;
        };
        let gap = if self.long() {
            secs(self.rng.random_range(60..1_800))
        } else {
            millis(self.rng.random_range(50..1_000))
        };
        self.next_emit = Some(at.max(self.now) + gap);
        if self.next_topic == 1 {
            return;
        }
        let k = self.rng.random_range(1..self.next_topic);
        let n = self.next_event;
        self.next_event += 1;
        let seq = self.next_server_seq();
        self.events.entry(k).or_default().push((n, seq));
        self.stats.rules_events += 1;
        let topic = format!("t{k}.x");
        let mut pushes = Vec::new();
        for (cid, conn) in &self.conns {
            if conn.server_open && !conn.silent {
                for (sid, sub) in &conn.subs {
                    if *sub == SimSub::Rules(k) {
                        let push = json!({"type": "push", "channel": "event", "subscriptionId": sid,
                                          "data": {"topic": topic, "event": {"id": format!("e{n}"),
                                          "topic": topic, "data": {}, "timestamp": self.server_ms()}}});
                        pushes.push((*cid, push.to_string()));
                    }
                }
            }
        }
        for (cid, push) in pushes {
            self.send_down(cid, Down::Frame(push));
        }
    }

    /// The next moment the network has something to do.
    fn next_network_time(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n: Instant| n.min(t)));
        for conn in self.conns.values() {
            if !conn.outbox.is_empty() && !conn.dead {
                consider(self.ready_at(conn, self.now));
            }
            if conn.silent {
                continue;
            }
            if let Some((t, _)) = conn.up.front() {
                consider(self.ready_at(conn, *t));
            }
            if let Some((t, _, _)) = conn.down.front() {
                if !conn.dead {
                    consider(self.ready_at(conn, *t));
                }
            }
            if let (true, false, Some(ping)) = (conn.server_open, conn.dead, conn.next_ping) {
                consider(self.ready_at(conn, ping));
            }
        }
        next
    }

    /// Hands `what` (sent at server sequence `seq`) to the core on `id`, with the records
    /// the liveness rule is checked against.
    fn deliver(&mut self, id: ConnectionId, seq: u64, what: Down) {
        let now = self.now;
        match what {
            Down::Opened => {
                if let Some(link) = self.links.get_mut(&id) {
                    link.opened = Some(now);
                    link.last_rx = Some((now, seq));
                }
                self.core.handle_input(now, id, Input::Opened);
                let plan = self.conns.get(&id).and_then(|c| c.silence_plan);
                if plan == Some(SilenceAt::BeforeWelcome) {
                    self.silence(id, SilenceAt::BeforeWelcome);
                }
            }
            Down::Frame(text) => {
                if let Some(link) = self.links.get_mut(&id) {
                    link.last_rx = Some((now, seq));
                    if text.starts_with(r#"{"type":"ping""#) {
                        // The core takes the larger of the time between arrivals and
                        // the time between the server's timestamps (between pings).
                        let stamp = serde_json::from_str::<Value>(&text)
                            .ok()
                            .and_then(|v| v["timestamp"].as_f64());
                        let sent_before = link.last_ping_stamp.or(link.welcome_stamp);
                        let by_server = match (sent_before, stamp) {
                            (Some(before), Some(after)) => Some(after - before)
                                .filter(|d| (1.0..=3_600_000.0).contains(d))
                                .map(|d| Duration::from_micros((d * 1000.0) as u64)),
                            _ => None,
                        };
                        if let Some(previous) = link.last_ping.or(link.opened) {
                            let arrived = now.saturating_duration_since(previous);
                            let interval = by_server.map_or(arrived, |sent| sent.max(arrived));
                            if !interval.is_zero() {
                                link.interval = Some(interval);
                                self.hb.learned = link.interval;
                            }
                        }
                        link.last_ping = Some(now);
                        link.last_ping_stamp = stamp;
                        self.hb.silent_starts = 0;
                    } else if text.contains(r#""type":"welcome""#) {
                        link.welcomed = true;
                        link.welcome_stamp = serde_json::from_str::<Value>(&text)
                            .ok()
                            .and_then(|v| v["serverTime"].as_f64());
                    }
                }
                self.core.handle_input(now, id, Input::Frame(&text));
            }
            Down::ConnectFailed => {
                if let Some(conn) = self.conns.get_mut(&id) {
                    conn.dead = true;
                }
                self.core
                    .handle_input(now, id, Input::ConnectFailed { reason: "refused" });
            }
            Down::Closed(code) => {
                if let Some(conn) = self.conns.get_mut(&id) {
                    conn.dead = true;
                }
                self.core.handle_input(
                    now,
                    id,
                    Input::Closed {
                        code,
                        reason: "sim",
                    },
                );
            }
        }
        self.pump();
    }

    /// Moves everything the network has due at `self.now`.
    fn run_network(&mut self) {
        let ids: Vec<ConnectionId> = self.conns.keys().copied().collect();
        for id in ids {
            loop {
                let now = self.now;
                let Some(conn) = self.conns.get_mut(&id) else {
                    break;
                };
                if conn.stalled_until.is_some_and(|s| s > now) {
                    break;
                }
                // The transport writes what the client handed out, dropping the frames of
                // requests that ended meanwhile: those never reach the server. On a silent
                // link the socket still takes them.
                if !conn.dead && !conn.outbox.is_empty() {
                    let batch: Vec<_> = conn.outbox.drain(..).collect();
                    let last_seq = batch.last().map(|(s, _, _)| *s).unwrap_or(0);
                    for (_, text, request) in batch {
                        if !self.core.wants_frame(request) {
                            self.frames_dropped += 1;
                            continue;
                        }
                        if let Some(request) = request {
                            self.written.insert(request.0);
                        }
                        let lat = millis(1 + (last_seq % LATENCY_MS));
                        let last = conn.up.back().map_or(now, |(t, _)| *t);
                        conn.up.push_back((last.max(now + lat), text));
                    }
                    self.core
                        .handle_input(now, id, Input::Written { seq: last_seq });
                    self.pump();
                    continue;
                }
                if conn.silent {
                    break;
                }
                if conn.up.front().is_some_and(|(t, _)| *t <= now) {
                    let (_, text) = conn.up.pop_front().unwrap_or((now, String::new()));
                    if conn.server_open {
                        self.serve(id, &text);
                    }
                    continue;
                }
                if !conn.dead && conn.down.front().is_some_and(|(t, _, _)| *t <= now) {
                    let Some((_, seq, what)) = conn.down.pop_front() else {
                        break;
                    };
                    self.deliver(id, seq, what);
                    continue;
                }
                if conn.server_open && !conn.dead && conn.next_ping.is_some_and(|t| t <= now) {
                    conn.next_ping = conn.ping_every.map(|every| now + every);
                    let ping = format!(r#"{{"type":"ping","timestamp":{}}}"#, self.server_ms());
                    self.send_down(id, Down::Frame(ping));
                    continue;
                }
                break;
            }
        }
        // Forget connections with nothing left.
        self.conns.retain(|_, c| !(c.dead && c.up.is_empty()));
    }

    fn live_connection(&self) -> Option<ConnectionId> {
        self.conns
            .iter()
            .rev()
            .find(|(_, c)| c.server_open && !c.dead && !c.silent)
            .map(|(id, _)| *id)
    }

    /// One random thing: a request, a (un)subscription, a fault, or nothing.
    fn act(&mut self) {
        let roll = self.rng.random_range(0..100);
        let now = self.now;
        match roll {
            0..=34 => {
                let key = self.rng.random_range(0..20u64);
                let op = match self.rng.random_range(0..4) {
                    0 => ops::store::insert(
                        "items",
                        json!({"id": key, "v": self.rng.random_range(-100..100)}),
                    ),
                    1 => ops::store::delete("items", json!(key)),
                    2 => ops::store::count("items", None),
                    _ => ops::store::get("items", json!(key)),
                };
                let retry = self.rng.random_bool(0.5);
                let options = RequestOptions::default().retry_safe(retry);
                self.issued += 1;
                let made = self.core.request_with(now, op, options);
                self.trace.push(format!("sim: request -> {made:?}"));
                if let Ok(id) = made {
                    self.accepted.insert(id);
                    // Some callers go away: before the frame is written, while it is in
                    // flight, or after the answer.
                    if self.rng.random_bool(0.15) {
                        let after = millis(self.rng.random_range(0..60));
                        self.cancels_due.push((now + after, id));
                    }
                }
            }
            35..=44 => {
                let sub = match self.rng.random_range(0..13) {
                    0 => SimSub::Query("missing".into()),
                    1..=4 => SimSub::Query("count".into()),
                    5..=9 => SimSub::Query("all".into()),
                    _ => {
                        let k = self.next_topic;
                        self.next_topic += 1;
                        SimSub::Rules(k)
                    }
                };
                let spec = match &sub {
                    SimSub::Query(query) => SubscriptionSpec::query(query.clone(), None),
                    SimSub::Rules(k) => SubscriptionSpec::rules(format!("t{k}.*")),
                };
                let made = self.core.subscribe(now, spec);
                self.trace
                    .push(format!("sim: subscribe {} -> {made:?}", sub.key()));
                if let Ok(id) = made {
                    self.live_subs.insert(id, sub.clone());
                    self.watches.insert(
                        id,
                        Watch {
                            sub,
                            registered_on: None,
                            ready_reg: None,
                            gaps: Vec::new(),
                            delivered: BTreeSet::new(),
                        },
                    );
                    // Some are dropped again soon, mostly before their `Ready`.
                    if self.rng.random_bool(0.25) {
                        let after = millis(self.rng.random_range(0..40));
                        self.drops_due.push((now + after, id));
                    }
                }
            }
            45..=49 => {
                if let Some(&id) = self.live_subs.keys().next() {
                    self.core.unsubscribe(now, id);
                    self.live_subs.remove(&id);
                    self.last_value.remove(&id);
                }
            }
            50..=55 if self.faults => self.fault(),
            _ => {}
        }
        self.pump();
    }

    /// The caller of `id` goes away.
    fn cancel(&mut self, id: RequestId) {
        if !self.outcomes.contains_key(&id) && !self.cancelled.contains_key(&id) {
            self.cancelled.insert(id, self.written.contains(&id.0));
        }
        self.core.cancel(id);
        self.pump();
    }

    /// The holder of subscription `id` drops it.
    fn drop_subscription(&mut self, id: SubscriptionId) {
        if !self.live_subs.contains_key(&id) {
            return;
        }
        if !self.ready.contains(&id) {
            self.dropped_before_ready += 1;
        }
        let now = self.now;
        assert!(self.core.unsubscribe(now, id), "live handle {id:?} unknown");
        self.live_subs.remove(&id);
        self.last_value.remove(&id);
        self.pump();
    }

    /// Runs the withdrawals due at `self.now`, in the order they were scheduled.
    fn withdraw_due(&mut self) {
        let now = self.now;
        let (due, later): (Vec<_>, Vec<_>) =
            self.cancels_due.drain(..).partition(|(t, _)| *t <= now);
        self.cancels_due = later;
        for (_, id) in due {
            self.cancel(id);
        }
        let (due, later): (Vec<_>, Vec<_>) = self.drops_due.drain(..).partition(|(t, _)| *t <= now);
        self.drops_due = later;
        for (_, id) in due {
            self.drop_subscription(id);
        }
    }

    fn next_withdrawal(&self) -> Option<Instant> {
        let cancels = self.cancels_due.iter().map(|(t, _)| *t);
        let drops = self.drops_due.iter().map(|(t, _)| *t);
        cancels.chain(drops).min()
    }

    /// The counters add up, and the gauges match the core's own accounting.
    fn check_counters(&self) -> Result<(), String> {
        let c = self.core.counters();
        if c.requests_issued != c.requests_ended() + c.requests_pending {
            return Err(format!(
                "counters do not add up: issued {} != ended {} + pending {} ({c:?})",
                c.requests_issued,
                c.requests_ended(),
                c.requests_pending
            ));
        }
        if c.requests_issued != self.issued {
            return Err(format!(
                "issued {} requests, counted {}",
                self.issued, c.requests_issued
            ));
        }
        if c.requests_pending != self.core.pending_requests() as u64
            || c.subscriptions_live != self.core.subscription_count() as u64
        {
            return Err(format!("gauges disagree with the core: {c:?}"));
        }
        Ok(())
    }

    /// The server restarts: every connection is closed (1001, after a shutdown notice),
    /// it is down for a while, it may have lost its sessions, and it may ping differently
    /// when it is back.
    fn restart(&mut self) {
        self.stats.restarts += 1;
        let open: Vec<ConnectionId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.server_open)
            .map(|(id, _)| *id)
            .collect();
        for id in open {
            let silent = self.conns.get(&id).is_some_and(|c| c.silent);
            if !silent {
                let notice = r#"{"type":"system","event":"shutdown","gracePeriodMs":0}"#;
                self.send_down(id, Down::Frame(notice.into()));
                self.send_down(id, Down::Closed(Some(1001)));
            }
            if let Some(conn) = self.conns.get_mut(&id) {
                conn.server_open = false;
                conn.subs.clear();
                conn.authenticated = false;
                conn.session_expires = None;
                conn.session_token = None;
            }
        }
        let down = if self.long() {
            secs(self.rng.random_range(5..1_200))
        } else {
            millis(self.rng.random_range(200..10_000))
        };
        self.down_until = Some(self.now + down);
        let keeps_sessions = self.rng.random_bool(0.5);
        if !keeps_sessions {
            self.sessions.clear();
        }
        if self.rng.random_bool(0.5) {
            let long = self.long();
            self.plans = PingPlan::draw_set(&mut self.rng, long);
        }
        self.trace.push(format!(
            "sim: the server restarts, down for {down:?}, sessions kept: {keeps_sessions}, pings {:?}",
            self.plans
        ));
    }

    fn fault(&mut self) {
        if self.profile.restarts && self.rng.random_bool(0.1) {
            self.restart();
            return;
        }
        let Some(id) = self.live_connection() else {
            self.refuse_opens = self.rng.random_range(0..3);
            return;
        };
        let now = self.now;
        match self.rng.random_range(0..5) {
            // Abrupt drop: everything in flight is lost; the client hears of it later.
            0 => {
                let lat = self.latency();
                let seq = self.next_server_seq();
                if let Some(conn) = self.conns.get_mut(&id) {
                    conn.server_open = false;
                    conn.subs.clear();
                    conn.up.clear();
                    conn.down.clear();
                    conn.down.push_back((now + lat, seq, Down::Closed(None)));
                }
            }
            // A close frame with a code that reconnects.
            1 => {
                let code = [1000u16, 1001, 4001][self.rng.random_range(0..3)];
                if let Some(conn) = self.conns.get_mut(&id) {
                    conn.server_open = false;
                    conn.subs.clear();
                }
                self.send_down(id, Down::Closed(Some(code)));
            }
            // A stall: nothing moves for a while.
            2 => {
                let pause = millis(self.rng.random_range(500..6_000));
                if let Some(conn) = self.conns.get_mut(&id) {
                    conn.stalled_until = Some(now + pause);
                }
                if let Some(link) = self.links.get_mut(&id) {
                    link.delayed = true;
                }
            }
            // The link goes silent for good, mid-life.
            3 if self.profile.silences => self.silence(id, SilenceAt::MidLife),
            // The next reconnects are refused.
            _ => self.refuse_opens = self.rng.random_range(1..4),
        }
    }

    fn step(&mut self, act_at: Option<Instant>) {
        let mut next = [
            self.core.poll_timeout(),
            self.next_network_time(),
            self.next_withdrawal(),
            self.next_token_due(),
            self.next_emit,
            act_at,
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(self.now + millis(100));
        if next < self.now {
            next = self.now;
        }
        self.now = next;
        self.core.handle_timeout(self.now);
        self.pump();
        self.provide_due();
        self.emit_due();
        self.run_network();
        self.withdraw_due();
        if act_at.is_some_and(|a| a <= self.now) {
            self.act();
        }
    }

    fn settled(&self) -> bool {
        self.core.state() == ConnectionState::Connected
            && self.core.pending_entries() == 0
            && self.core.held_pushes() == 0
            && self.cancels_due.is_empty()
            && self.drops_due.is_empty()
            && self.token_due.is_empty()
            && self
                .live_subs
                .keys()
                .all(|id| self.core.is_subscription_active(*id))
            && self.conns.values().all(|c| {
                c.up.iter().all(|(_, f)| f.contains("\"pong\""))
                    && c.outbox.iter().all(|(_, f, _)| f.contains("\"pong\""))
                    && c.stalled_until.is_none_or(|s| s <= self.now)
                    && (!c.silent || c.dead)
            })
            && self.conns.values().filter(|c| !c.dead).all(|c| {
                c.down
                    .iter()
                    .all(|(_, _, d)| matches!(d, Down::Frame(f) if f.contains("\"ping\"")))
            })
    }

    /// The rules events of each live rules subscription: delivered once, or inside a gap.
    fn check_rules_events(&mut self) -> Result<(), String> {
        for (id, sub) in &self.live_subs {
            let SimSub::Rules(k) = sub else { continue };
            let Some(watch) = self.watches.get(id) else {
                continue;
            };
            let Some(ready_reg) = watch.ready_reg else {
                return Err(format!("live rules subscription {id:?} never became Ready"));
            };
            let events = self.events.get(k).map(Vec::as_slice).unwrap_or_default();
            for &(n, at) in events {
                if watch.delivered.contains(&n) {
                    if at < ready_reg {
                        return Err(format!(
                            "{id:?} got event {n}, emitted before its registration"
                        ));
                    }
                    continue;
                }
                if at < ready_reg {
                    continue;
                }
                if watch.gaps.iter().any(|&(from, to)| from < at && at < to) {
                    self.stats.rules_lost_in_gaps += 1;
                    continue;
                }
                return Err(format!(
                    "{id:?} (t{k}) missed event {n} (server sequence {at}), in none of its gaps \
                     {:?} (registered at {ready_reg})",
                    watch.gaps
                ));
            }
        }
        Ok(())
    }
}

/// What a run did, summed over seeds for the report.
#[derive(Debug, Default)]
struct Tally {
    seeds: u64,
    long_seeds: u64,
    simulated: Duration,
    longest: Duration,
    credentials_seeds: u64,
    provider_seeds: u64,
    requests: u64,
    ok: u64,
    timed_out: u64,
    disconnected: u64,
    not_sent: u64,
    outcome_unknown: u64,
    reconnects: u64,
    pushes: u64,
    held: u64,
    resent: u64,
    cancelled: u64,
    cancelled_unwritten: u64,
    frames_dropped: u64,
    dropped_before_ready: u64,
    late_answers: u64,
    sessions_renewed: u64,
    sessions_expired: u64,
    reauthorized: u64,
    tokens_fetched: u64,
    stats: Stats,
}

impl Tally {
    fn add(&mut self, sim: &Sim) {
        let c = sim.core.counters();
        let simulated = sim.now - sim.t0;
        self.seeds += 1;
        self.long_seeds += u64::from(sim.long());
        self.simulated += simulated;
        self.longest = self.longest.max(simulated);
        self.credentials_seeds += u64::from(sim.profile.auth == AuthMode::Credentials);
        self.provider_seeds += u64::from(sim.profile.auth == AuthMode::Provider);
        self.requests += sim.accepted.len() as u64;
        self.ok += c.requests_ok;
        self.timed_out += c.requests_timed_out;
        self.disconnected += c.requests_disconnected;
        self.reconnects += c.reconnects;
        self.pushes += c.pushes_delivered;
        self.held += c.pushes_held;
        self.resent += c.requests_resent;
        self.cancelled += c.requests_cancelled;
        self.cancelled_unwritten += sim.cancelled.values().filter(|w| !**w).count() as u64;
        self.frames_dropped += sim.frames_dropped;
        self.dropped_before_ready += sim.dropped_before_ready;
        self.late_answers += c.late_answers;
        self.sessions_renewed += c.sessions_renewed;
        self.sessions_expired += c.sessions_expired;
        self.reauthorized += c.requests_reauthorized;
        self.tokens_fetched += c.tokens_fetched;
        for outcomes in sim.outcomes.values() {
            match outcomes
                .first()
                .and_then(|r| r.as_ref().err())
                .and_then(RequestError::delivery)
            {
                Some(Delivery::NotSent) => self.not_sent += 1,
                Some(Delivery::OutcomeUnknown) => self.outcome_unknown += 1,
                None => {}
            }
        }
        let s = &sim.stats;
        let t = &mut self.stats;
        t.session_refusals += s.session_refusals;
        t.restarts += s.restarts;
        for (total, n) in t.silences.iter_mut().zip(s.silences) {
            *total += n;
        }
        for (reason, n) in &s.silences_noticed {
            *t.silences_noticed.entry(reason.clone()).or_default() += n;
        }
        t.liveness_timeouts += s.liveness_timeouts;
        t.early_liveness += s.early_liveness;
        t.unsubscribes_refused += s.unsubscribes_refused;
        t.rules_events += s.rules_events;
        t.rules_delivered += s.rules_delivered;
        t.rules_lost_in_gaps += s.rules_lost_in_gaps;
        t.gaps += s.gaps;
        t.provider_failures += s.provider_failures;
        t.provider_refused_once += s.provider_refused_once;
    }

    fn simulated_days(&self) -> f64 {
        self.simulated.as_secs_f64() / DAY.as_secs_f64()
    }
}

/// Runs one seed; returns the trace, or panics with the seed in the message.
fn run(seed: u64) -> Vec<String> {
    run_tallied(seed, &mut Tally::default())
}

/// Reports a broken invariant with the seed; when replaying (`SIM_TRACE=1`), the whole
/// trace first.
fn fail(sim: &Sim, seed: u64, what: String) -> ! {
    if std::env::var_os("SIM_TRACE").is_some() {
        for line in &sim.trace {
            eprintln!("{line}");
        }
    }
    panic!(
        "seed {seed}: {what}\nprofile: {:?}\nreplay: SIM_SEED={seed} SIM_TRACE=1 cargo test -p noex-proto --test simulation -- --ignored replay",
        sim.profile
    )
}

/// Fails on the first broken invariant noticed so far.
fn check_step(sim: &Sim, seed: u64) {
    if let Some(what) = sim.violations.first() {
        fail(sim, seed, what.clone());
    }
    if let Err(e) = sim.check_counters() {
        fail(sim, seed, e);
    }
}

fn run_tallied(seed: u64, tally: &mut Tally) -> Vec<String> {
    let mut sim = Sim::new(seed);
    sim.core.connect(sim.now);
    sim.pump();
    let mut next_act = sim.now;
    // Busy: requests, subscriptions and faults; 400 actions a few hundred ms apart, or
    // sparse ones (minutes apart) for days.
    let end = sim.profile.long.map(|long| sim.t0 + long);
    let mut acts = 0;
    while end.map_or(acts < 400, |end| sim.now < end) {
        sim.step(Some(next_act));
        check_step(&sim, seed);
        if next_act <= sim.now {
            acts += 1;
            let gap = if end.is_some() {
                secs(sim.rng.random_range(0..1_200))
            } else {
                millis(sim.rng.random_range(0..300))
            };
            next_act = sim.now + gap;
        }
    }
    // Calm: no more faults, actions or events; let everything finish. A silent link must
    // be noticed meanwhile, and a restarted server come back.
    sim.faults = false;
    sim.refuse_opens = 0;
    sim.next_emit = None;
    let current = sim
        .current
        .and_then(|id| sim.links.get(&id))
        .map_or(Duration::ZERO, |l| sim.hb.assumed(l));
    let slowest = current.max(sim.hb.assumed_before_ping());
    let downtime = sim
        .down_until
        .map_or(Duration::ZERO, |t| t.saturating_duration_since(sim.now));
    let deadline = sim.now + secs(120) + slowest.saturating_mul(3) + downtime;
    // Settled once nothing is in flight (a server that never pings, or a renewal every
    // second, leave no longer quiet time).
    while sim.now < deadline {
        sim.step(None);
        check_step(&sim, seed);
        if sim.settled() {
            break;
        }
    }
    if !sim.settled() {
        fail(&sim, seed, format!(
            "did not settle: state {:?}, pending {} ({} entries), held {}, inactive subs {:?}, connections {:?}",
            sim.core.state(),
            sim.core.pending_requests(),
            sim.core.pending_entries(),
            sim.core.held_pushes(),
            sim.live_subs
                .keys()
                .filter(|id| !sim.core.is_subscription_active(**id))
                .collect::<Vec<_>>(),
            sim.conns
                .iter()
                .map(|(id, c)| format!(
                    "{id:?} dead={} open={} silent={} up={} out={} down={:?} stall={:?}",
                    c.dead,
                    c.server_open,
                    c.silent,
                    c.up.len(),
                    c.outbox.len(),
                    c.down,
                    c.stalled_until
                        .map(|s| s.saturating_duration_since(sim.now))
                ))
                .collect::<Vec<_>>()
        ));
    }

    // Every accepted request ended exactly once (a cancelled one: never), with a fitting
    // outcome.
    for id in &sim.accepted {
        let outcomes = sim.outcomes.get(id).map(Vec::as_slice).unwrap_or_default();
        let seen = sim.received.contains(&id.0);
        let ran = sim.executed.contains_key(&id.0);
        if let Some(written) = sim.cancelled.get(id) {
            if !outcomes.is_empty() {
                fail(
                    &sim,
                    seed,
                    format!("cancelled request {id:?} answered: {outcomes:?}"),
                );
            }
            if !written && seen {
                fail(
                    &sim,
                    seed,
                    format!(
                        "request {id:?} cancelled before its frame was written reached the server"
                    ),
                );
            }
            continue;
        }
        if outcomes.len() != 1 {
            fail(
                &sim,
                seed,
                format!("request {id:?} resolved {} times", outcomes.len()),
            );
        }
        match &outcomes[0] {
            Ok(_) if !ran => fail(
                &sim,
                seed,
                format!("request {id:?} succeeded but the server never ran it"),
            ),
            Err(RequestError::Server(_)) if !seen => fail(
                &sim,
                seed,
                format!("request {id:?} answered but never reached the server"),
            ),
            Err(e) if e.delivery() == Some(Delivery::NotSent) && ran => fail(
                &sim,
                seed,
                format!("request {id:?} reported not sent ({e:?}) but the server ran it"),
            ),
            _ => {}
        }
    }
    if sim.outcomes.keys().any(|id| !sim.accepted.contains(id)) {
        fail(
            &sim,
            seed,
            "a response for a request that was never accepted".into(),
        );
    }
    // The core and the server agree on the subscriptions: none is left on the server
    // without a live handle (dropped ones were undone or never made), none is missing.
    if sim.core.subscription_count() != sim.live_subs.len() {
        fail(
            &sim,
            seed,
            format!(
                "the core has {} subscriptions, the caller holds {}",
                sim.core.subscription_count(),
                sim.live_subs.len()
            ),
        );
    }
    // Every server-side subscription has a live handle (an unsubscribe the session check
    // refused is sent again after the new login).
    let mut on_server = Vec::new();
    for conn in sim.conns.values() {
        if !conn.server_open || conn.dead {
            continue;
        }
        for sub in conn.subs.values() {
            on_server.push(sub.key());
        }
    }
    on_server.sort_unstable();
    let mut held: Vec<String> = sim.live_subs.values().map(SimSub::key).collect();
    held.sort_unstable();
    if on_server != held {
        fail(
            &sim,
            seed,
            format!(
                "server-side subscriptions {on_server:?} differ from the live handles {held:?}"
            ),
        );
    }
    // Every live store subscription shows the server's truth.
    for (id, sub) in &sim.live_subs {
        let SimSub::Query(query) = sub else { continue };
        let want = truth(&sim.items, query);
        let got = sim.last_value.get(id);
        if got != Some(&want) {
            fail(
                &sim,
                seed,
                format!("subscription {id:?} ({query}) shows {got:?}, server has {want}"),
            );
        }
    }
    // Every rules event was delivered, or lost inside a gap.
    if let Err(e) = sim.check_rules_events() {
        fail(&sim, seed, e);
    }
    // Every silent link was noticed.
    let unnoticed: Vec<ConnectionId> = sim
        .links
        .iter()
        .filter(|(_, l)| l.silent_since.is_some() && l.closed.is_none())
        .map(|(id, _)| *id)
        .collect();
    if !unnoticed.is_empty() {
        fail(
            &sim,
            seed,
            format!("silent links never noticed: {unnoticed:?}"),
        );
    }
    tally.add(&sim);
    // Closing leaves nothing behind and nothing comes out afterwards.
    sim.closing = true;
    sim.core.close(sim.now);
    sim.pump();
    if sim.core.pending_entries() != 0 {
        fail(
            &sim,
            seed,
            format!("{} pending entries after close", sim.core.pending_entries()),
        );
    }
    sim.core.handle_timeout(sim.now + secs(60));
    if let Some(out) = sim.core.poll_output() {
        fail(&sim, seed, format!("output after close: {out:?}"));
    }
    if sim.core.poll_timeout().is_some() {
        fail(&sim, seed, "a timer survived close".into());
    }
    sim.trace
}

fn seeds_from_env(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn two_thousand_seeds() {
    let started = Instant::now();
    let mut tally = Tally::default();
    for seed in 0..2_000 {
        let trace = run_tallied(seed, &mut tally);
        // Determinism, checked on a sample of seeds (a long one among them).
        if seed % 50 == 0 || seed == 99 {
            assert_eq!(trace, run(seed), "seed {seed}: same seed, different run");
        }
    }
    eprintln!(
        "2000 seeds in {:?}: {:.1} simulated days ({} long seeds, longest {:.1} h): {tally:?}",
        started.elapsed(),
        tally.simulated_days(),
        tally.long_seeds,
        tally.longest.as_secs_f64() / 3600.0
    );
    assert!(
        tally.simulated_days() >= 30.0,
        "only {:.1} simulated days",
        tally.simulated_days()
    );
    // The runs must actually exercise the faults they claim to.
    assert!(
        tally.reconnects > 2_000
            && tally.timed_out > 0
            && tally.not_sent > 0
            && tally.outcome_unknown > 0
    );
    assert!(tally.held > 0 && tally.resent > 0, "{tally:?}");
    // And the withdrawals: requests cancelled before their frame was written (dropped by
    // the transport) and after (a late answer), subscriptions dropped before their Ready.
    assert!(
        tally.cancelled > 0
            && tally.cancelled_unwritten > 0
            && tally.frames_dropped > 0
            && tally.late_answers > 0
            && tally.dropped_before_ready > 0,
        "{tally:?}"
    );
    // And time: sessions renewed and expired, refused requests sent again, tokens fetched,
    // restarts, silences at every point of a link's life (each noticed), rules events lost
    // inside gaps.
    let s = &tally.stats;
    assert!(
        tally.sessions_renewed > 0
            && tally.sessions_expired > 0
            && tally.reauthorized > 0
            && tally.tokens_fetched > 0
            && s.session_refusals > 0
            && s.provider_failures > 0
            && s.provider_refused_once > 0
            && s.restarts > 0
            && s.liveness_timeouts > 0,
        "{tally:?}"
    );
    assert!(s.silences.iter().all(|n| *n > 0), "{tally:?}");
    assert!(
        s.rules_delivered > 0 && s.rules_lost_in_gaps > 0 && s.gaps > 0,
        "{tally:?}"
    );
}

#[test]
#[ignore = "long run: SIM_SEEDS=N cargo test --release -p noex-proto --test simulation -- --ignored many_seeds"]
fn many_seeds() {
    let count = seeds_from_env("SIM_SEEDS", 100_000);
    let first = seeds_from_env("SIM_FIRST_SEED", 2_000);
    let started = Instant::now();
    let mut tally = Tally::default();
    for seed in first..first + count {
        run_tallied(seed, &mut tally);
    }
    eprintln!(
        "{count} seeds from {first} in {:?}: {:.1} simulated days: {tally:?}",
        started.elapsed(),
        tally.simulated_days()
    );
}

#[test]
#[ignore = "replays one seed: SIM_SEED=N SIM_TRACE=1 cargo test -p noex-proto --test simulation -- --ignored replay"]
fn replay() {
    let seed = seeds_from_env("SIM_SEED", 0);
    let trace = run(seed);
    for line in trace {
        eprintln!("{line}");
    }
}

/// A bare driver for the minimal reproductions of what the simulation found: the core, a
/// clock that only moves when told, and everything that came out.
struct Bare {
    core: ClientCore,
    now: Instant,
    conn: ConnectionId,
    out: Vec<Output>,
}

/// The server's clock at the bare driver's start (ms since the epoch).
const BARE_SERVER_MS: i64 = 1_700_000_000_000;

impl Bare {
    /// A core connected as far as its `welcome` (sent at the start).
    fn welcomed(config: Config, requires_auth: bool) -> Bare {
        let now = epoch();
        let mut core = ClientCore::new(config, 7);
        core.connect(now);
        let mut bare = Bare {
            core,
            now,
            conn: ConnectionId(0),
            out: Vec::new(),
        };
        bare.drain();
        bare.conn = bare
            .out
            .iter()
            .find_map(|o| match o {
                Output::Open { connection, .. } => Some(*connection),
                _ => None,
            })
            .expect("the core opens a connection");
        bare.core.handle_input(now, bare.conn, Input::Opened);
        bare.frame(json!({"type": "welcome", "version": "1.0.0",
                          "serverTime": BARE_SERVER_MS, "requiresAuth": requires_auth}));
        bare
    }

    fn drain(&mut self) {
        while let Some(output) = self.core.poll_output() {
            self.out.push(output);
        }
    }

    fn frame(&mut self, frame: Value) {
        self.core
            .handle_input(self.now, self.conn, Input::Frame(&frame.to_string()));
        self.drain();
    }

    fn result(&mut self, id: u64, data: Value) {
        self.frame(json!({"id": id, "type": "result", "data": data}));
    }

    fn unauthorized(&mut self, id: u64, message: &str) {
        self.frame(json!({"id": id, "type": "error", "code": "UNAUTHORIZED", "message": message}));
    }

    /// Moves the clock by `by`, firing every timer due on the way.
    fn advance(&mut self, by: Duration) {
        let target = self.now + by;
        while let Some(at) = self.core.poll_timeout().filter(|at| *at <= target) {
            self.now = self.now.max(at);
            self.core.handle_timeout(self.now);
            self.drain();
        }
        self.now = target;
    }

    /// The ids of the frames of `kind` sent so far, in order.
    fn sent(&self, kind: &str) -> Vec<u64> {
        self.out
            .iter()
            .filter_map(|o| match o {
                Output::Send { text, .. } => serde_json::from_str::<Value>(text).ok(),
                _ => None,
            })
            .filter(|f| f["type"] == kind)
            .filter_map(|f| f["id"].as_u64())
            .collect()
    }

    fn last_sent(&self, kind: &str) -> u64 {
        *self
            .sent(kind)
            .last()
            .unwrap_or_else(|| panic!("no {kind} sent"))
    }

    /// The frames sent so far whose text contains `part`.
    fn sent_containing(&self, part: &str) -> usize {
        self.out
            .iter()
            .filter(|o| matches!(o, Output::Send { text, .. } if text.contains(part)))
            .count()
    }

    /// The token requests so far: (id, refresh).
    fn fetches(&self) -> Vec<(TokenFetchId, bool)> {
        self.out
            .iter()
            .filter_map(|o| match o {
                Output::FetchToken { id, refresh } => Some((*id, *refresh)),
                _ => None,
            })
            .collect()
    }

    fn provide(&mut self, id: TokenFetchId, token: &str) {
        self.core
            .provide_token(self.now, id, Ok(Secret::new(token)));
        self.drain();
    }

    fn closes(&self) -> Vec<&str> {
        self.out
            .iter()
            .filter_map(|o| match o {
                Output::Close { reason, .. } => Some(reason.as_str()),
                _ => None,
            })
            .collect()
    }

    /// A ping the server sent at `sent_ms` on its clock (ms after the bare start).
    fn ping_sent_at(&mut self, sent_ms: i64) {
        self.frame(json!({"type": "ping", "timestamp": BARE_SERVER_MS + sent_ms}));
    }
}

fn identity_login_answer(token: &str, expires_at: i64) -> Value {
    json!({"token": token, "expiresAt": expires_at,
           "user": {"id": "u-1", "username": USERNAME, "roles": ["writer"]}})
}

/// Found by the simulation (a short session TTL and an unsubscribe sent as it expired):
/// noex-server's session check refuses an `unsubscribe` like any request; the core sends
/// it again after its new login, or the subscription would stay on the server for the
/// rest of the connection.
#[test]
fn an_unsubscribe_refused_by_the_session_check_is_sent_again_after_the_new_login() {
    let config = Config::new("ws://bare").auth(Auth::Credentials {
        username: USERNAME.into(),
        password: Secret::new(PASSWORD),
    });
    let mut bare = Bare::welcomed(config, true);
    let login = bare.last_sent("identity.login");
    bare.result(login, identity_login_answer("s1", BARE_SERVER_MS + 60_000));
    assert!(bare.core.is_connected());
    let sub = bare
        .core
        .subscribe(bare.now, SubscriptionSpec::query("all", None))
        .expect("subscribed");
    bare.drain();
    let subscribe = bare.last_sent("store.subscribe");
    bare.result(subscribe, json!({"subscriptionId": "sub-1", "data": []}));
    assert!(bare.core.is_subscription_active(sub));

    // The session expires on the server; the unsubscribe is the first request it refuses.
    assert!(bare.core.unsubscribe(bare.now, sub));
    bare.drain();
    let unsubscribe = bare.last_sent("store.unsubscribe");
    bare.unauthorized(unsubscribe, "Session expired");
    let relogin = bare.last_sent("identity.login");
    assert_ne!(relogin, login, "a new login");
    // A request made meanwhile waits for the new login.
    let get = bare
        .core
        .request(bare.now, ops::store::get("items", json!(1)))
        .expect("accepted");
    bare.drain();
    assert!(bare.sent("store.get").is_empty());
    bare.result(
        relogin,
        identity_login_answer("s2", BARE_SERVER_MS + 120_000),
    );
    assert_eq!(
        bare.sent("store.get"),
        vec![get.0],
        "sent after the new login"
    );
    assert_eq!(
        bare.sent_containing(r#""subscriptionId":"sub-1""#),
        2,
        "the refused unsubscribe went out again: sub-1 stays on the server otherwise"
    );
}

/// Found by the simulation (a token provider whose tokens live 2 s, and a stall of a few
/// seconds): a fresh token that expires on its way to the server is refused with "Token
/// has expired"; the core must not stop for good (its provider can give another token),
/// but log in again on a new connection.
#[test]
fn a_provider_token_expired_on_its_way_is_followed_by_another() {
    let config = Config::new("ws://bare").auth(Auth::Provider);
    let mut bare = Bare::welcomed(config, true);
    let (first, _) = bare.fetches()[0];
    bare.provide(first, "t1");
    let login = bare.last_sent("auth.login");
    bare.result(
        login,
        json!({"userId": "u-1", "roles": [], "expiresAt": BARE_SERVER_MS + 60_000}),
    );
    assert!(bare.core.is_connected());
    // The session expired early on the server: the core asks for a fresh token…
    let get = bare
        .core
        .request(bare.now, ops::store::get("items", json!(1)))
        .expect("accepted");
    bare.drain();
    bare.unauthorized(get.0, "Session expired");
    let (fresh, refresh) = *bare.fetches().last().expect("a token asked for");
    assert!(refresh);
    bare.provide(fresh, "t2");
    // …which a stall longer than its life held back until it had expired.
    let relogin = bare.last_sent("auth.login");
    bare.unauthorized(relogin, "Token has expired");
    assert_ne!(
        bare.core.state(),
        ConnectionState::Disconnected,
        "the core gave up although its provider can give another token"
    );
}

/// Found by the simulation (a token provider whose tokens live a few seconds, and a
/// stall): a renewal in flight when a subscribe is refused because the session expired
/// answers first, while the core's new login waits for its token. The session is fresh
/// then: the held subscribe must go out (it was stranded: never made again, never failed),
/// and the next renewal must not take the place of a token another login waits for.
#[test]
fn a_renewal_answered_while_a_new_login_waits_sends_the_held_subscribe() {
    let config = Config::new("ws://bare").auth(Auth::Provider);
    let mut bare = Bare::welcomed(config, true);
    let (first, _) = bare.fetches()[0];
    bare.provide(first, "t1");
    let login = bare.last_sent("auth.login");
    bare.result(
        login,
        json!({"userId": "u-1", "roles": [], "expiresAt": BARE_SERVER_MS + 4_000}),
    );
    assert!(bare.core.is_connected());
    // The renewal, at three quarters of the session's life.
    bare.advance(secs(3));
    let (renew, _) = *bare.fetches().last().expect("the renewal asks for a token");
    bare.provide(renew, "t2");
    let renewal = bare.last_sent("auth.login");
    // A subscribe goes out meanwhile and is refused: the session expired on the server
    // before the renewal got there. The core starts a new login (and asks for a token).
    let sub = bare
        .core
        .subscribe(bare.now, SubscriptionSpec::query("all", None))
        .expect("subscribed");
    bare.drain();
    let subscribe = bare.last_sent("store.subscribe");
    bare.unauthorized(subscribe, "Session expired");
    let fetches = bare.fetches().len();
    // The renewal answers, with a session that has 400 ms left.
    bare.result(
        renewal,
        json!({"userId": "u-1", "roles": [], "expiresAt": BARE_SERVER_MS + 3_400}),
    );
    bare.advance(millis(300));
    // Tokens for the new login and the next renewal come; the second renewal answers.
    let asked: Vec<TokenFetchId> = bare.fetches()[fetches - 1..].iter().map(|f| f.0).collect();
    for (n, id) in asked.into_iter().enumerate() {
        bare.provide(id, &format!("t{}", n + 3));
    }
    for id in bare.sent("auth.login") {
        if id > renewal {
            bare.result(
                id,
                json!({"userId": "u-1", "roles": [], "expiresAt": BARE_SERVER_MS + 60_000}),
            );
        }
    }
    bare.advance(secs(10));
    let failed = bare.out.iter().any(|o| {
        matches!(o, Output::Event(Event::Subscription(SubscriptionEvent::Failed { id, .. })) if *id == sub)
    });
    assert!(
        bare.sent("store.subscribe").len() > 1 || failed,
        "the refused subscribe was neither made again nor failed"
    );
}

/// Found by the simulation (a stall, then regular pings every second): two pings that a
/// stall held back arrive a few ms apart; measured by their arrivals the interval is a few
/// ms, and the watchdog would give the link up long before the server's next ping. Their
/// timestamps say they were sent a second apart.
#[test]
fn pings_bunched_by_a_stall_keep_the_interval_their_timestamps_tell() {
    let config = Config::new("ws://bare").liveness(Liveness::Auto {
        min_margin: MIN_MARGIN,
        initial_interval: INITIAL_INTERVAL,
    });
    let mut bare = Bare::welcomed(config, false);
    assert!(bare.core.is_connected());
    // The server pings every second.
    bare.advance(secs(1));
    bare.ping_sent_at(1_000);
    bare.advance(secs(1));
    bare.ping_sent_at(2_000);
    // The pings of 3 s and 4 s are held back by a stall and arrive together at 4 s.
    bare.advance(secs(2));
    bare.ping_sent_at(3_000);
    bare.advance(millis(5));
    bare.ping_sent_at(4_000);
    // The next ping is due at 5 s.
    bare.advance(millis(995));
    assert!(
        bare.closes().is_empty(),
        "the link was given up ({:?}) though the server pings every second",
        bare.closes()
    );
}
