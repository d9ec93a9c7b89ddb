//! How the core behaves: timeouts, reconnect policy, authentication, liveness.

use crate::secret::Secret;
use std::time::Duration;

/// How the core authenticates after each `welcome` that says `requiresAuth`, and keeps
/// the session alive while connected.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Auth {
    /// Present this token with `auth.login`. It cannot be renewed: when its session
    /// expires the connection ends for good ([`crate::DisconnectReason::SessionExpired`]).
    Token(Secret),
    /// Log in with `identity.login`, keep the returned session token, and present it with
    /// `auth.login` on the next connection (falling back to the credentials when refused).
    /// The session is renewed (`identity.refreshSession`, or a new login on a connection
    /// that resumed it) before it expires, and when the server says it expired anyway,
    /// the core logs in again and sends the refused requests again.
    Credentials {
        /// The user name.
        username: String,
        /// The password.
        password: Secret,
    },
    /// Ask the caller for a token ([`crate::Output::FetchToken`]) for every login, and
    /// present it with `auth.login`: on every connection, again with `refresh` set when
    /// the server refuses the token or the session expires, and before the session
    /// expires (when the server says when). Answer with
    /// [`crate::ClientCore::provide_token`].
    Provider,
}

/// Exponential backoff between reconnect attempts.
///
/// The delay before attempt `n` (1-based) is `min(initial × multiplier^(n-1), max)` plus a
/// uniformly random jitter in `0..=jitter`, drawn from the core's seeded RNG.
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    /// Delay before the first attempt. Default 1 000 ms.
    pub initial: Duration,
    /// Growth factor per attempt. Default 2.
    pub multiplier: f64,
    /// Upper bound of the delay before jitter. Default 30 000 ms.
    pub max: Duration,
    /// Largest random addition. Default 500 ms.
    pub jitter: Duration,
    /// Give up after this many failed attempts in a row; `None` = never. Default `None`.
    pub max_retries: Option<u32>,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(1_000),
            multiplier: 2.0,
            max: Duration::from_millis(30_000),
            jitter: Duration::from_millis(500),
            max_retries: None,
        }
    }
}

impl Backoff {
    /// The delay before attempt `attempt` (1-based), without jitter.
    pub fn base_delay(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(64) as i32;
        let factor = if self.multiplier.is_finite() && self.multiplier >= 1.0 {
            self.multiplier
        } else {
            1.0
        };
        let millis = self.initial.as_secs_f64() * 1000.0 * factor.powi(exp);
        let capped = millis.min(self.max.as_secs_f64() * 1000.0).max(0.0);
        Duration::from_micros((capped * 1000.0) as u64)
    }
}

/// How a silently dead connection is noticed.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Liveness {
    /// Close and reconnect when the server stays silent for longer than two and a quarter
    /// ping intervals, from the link's first frame on, so a silent link is noticed within
    /// 2.5 intervals of its last frame whatever the interval. The interval is measured
    /// from the pings seen on the link; before its first ping, the one measured on an
    /// earlier link; before any, `initial_interval`. The quarter interval of slack is
    /// never less than `min_margin`, which keeps very short intervals from turning
    /// scheduling noise into reconnects. A link that had its `welcome` and is given up
    /// before its first ping doubles the interval assumed for the next one (the server
    /// may have been reconfigured to ping less often), until a ping is seen again, at
    /// most three times in a row (eight times the interval).
    Auto {
        /// The least slack on top of two ping intervals. Default 100 ms.
        min_margin: Duration,
        /// The ping interval assumed before any link has seen two pings (or a ping after
        /// its open). Default 30 s, noex-server's default.
        initial_interval: Duration,
    },
    /// Close and reconnect when nothing arrives for this long, pings or not.
    Fixed(Duration),
    /// Never; rely on the transport.
    Off,
}

impl Default for Liveness {
    fn default() -> Self {
        Liveness::Auto {
            min_margin: Duration::from_millis(100),
            initial_interval: Duration::from_secs(30),
        }
    }
}

/// The core's configuration. Build it with [`Config::new`] and the builder methods.
///
/// ```
/// use noex_proto::{Config, Auth, Secret};
/// use std::time::Duration;
/// let config = Config::new("ws://127.0.0.1:8080")
///     .auth(Auth::Token(Secret::new("t0ken")))
///     .request_timeout(Duration::from_secs(5))
///     .retry_reads(true);
/// assert_eq!(config.request_timeout, Duration::from_secs(5));
/// assert!(format!("{config:?}").contains("<redacted>"));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Config {
    /// The server's URL (`ws://` or `wss://`).
    pub url: String,
    /// Automatic login; `None` = none.
    pub auth: Option<Auth>,
    /// Reconnect after a lost connection. Default on.
    pub reconnect: bool,
    /// Reconnect timing.
    pub backoff: Backoff,
    /// Deadline of a request unless the request says otherwise. Default 10 s.
    pub request_timeout: Duration,
    /// Time allowed from opening a connection to its `welcome`. Default 10 s.
    pub connect_timeout: Duration,
    /// Dead-connection detection.
    pub liveness: Liveness,
    /// Treat every read as retry-safe: re-send it after a reconnect within its deadline.
    /// Default off (a request can opt in on its own).
    pub retry_reads: bool,
    /// Hold requests made while a connection is being made (or waited for) until it is
    /// ready, bounded by their own deadline, [`Config::max_queued`] and
    /// [`Config::max_in_flight`], instead of failing them at once. A request that was never
    /// sent can safely wait. Requests still fail at once when no connection is coming.
    /// Default on.
    pub queue_while_disconnected: bool,
    /// Most requests held while not connected. Default 4 096.
    pub max_queued: usize,
    /// Most of the caller's requests not yet ended (queued, sent, or waiting for their
    /// answer). A request past it is refused with [`crate::RequestError::QueueFull`];
    /// an async client makes its caller wait for a slot instead. Default 4 096.
    pub max_in_flight: usize,
    /// Most pushes held for subscriptions whose subscribe answer is still in flight.
    /// Default 10 000.
    pub max_held_pushes: usize,
    /// Keep retrying (with backoff) when the very first connection attempt fails, instead of
    /// reporting the failure. Default off.
    pub retry_initial_connect: bool,
}

impl Config {
    /// Defaults for `url`.
    pub fn new(url: impl Into<String>) -> Config {
        Config {
            url: url.into(),
            auth: None,
            reconnect: true,
            backoff: Backoff::default(),
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            liveness: Liveness::default(),
            retry_reads: false,
            queue_while_disconnected: true,
            max_queued: 4_096,
            max_in_flight: 4_096,
            max_held_pushes: 10_000,
            retry_initial_connect: false,
        }
    }
    /// Sets automatic login.
    pub fn auth(mut self, auth: Auth) -> Config {
        self.auth = Some(auth);
        self
    }
    /// Turns reconnecting on or off.
    pub fn reconnect(mut self, on: bool) -> Config {
        self.reconnect = on;
        self
    }
    /// Sets the backoff.
    pub fn backoff(mut self, backoff: Backoff) -> Config {
        self.backoff = backoff;
        self
    }
    /// Sets the default request deadline.
    pub fn request_timeout(mut self, timeout: Duration) -> Config {
        self.request_timeout = timeout;
        self
    }
    /// Sets the connect timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> Config {
        self.connect_timeout = timeout;
        self
    }
    /// Sets dead-connection detection.
    pub fn liveness(mut self, liveness: Liveness) -> Config {
        self.liveness = liveness;
        self
    }
    /// Makes every read retry-safe.
    pub fn retry_reads(mut self, on: bool) -> Config {
        self.retry_reads = on;
        self
    }
    /// Queues requests made while not connected.
    pub fn queue_while_disconnected(mut self, on: bool) -> Config {
        self.queue_while_disconnected = on;
        self
    }
    /// Bounds the queue of requests made while not connected.
    pub fn max_queued(mut self, max: usize) -> Config {
        self.max_queued = max;
        self
    }
    /// Bounds the caller's requests not yet ended (at least 1).
    pub fn max_in_flight(mut self, max: usize) -> Config {
        self.max_in_flight = max.max(1);
        self
    }
    /// Bounds the pushes held for subscriptions not yet registered.
    pub fn max_held_pushes(mut self, max: usize) -> Config {
        self.max_held_pushes = max;
        self
    }
    /// Retries the first connection too.
    pub fn retry_initial_connect(mut self, on: bool) -> Config {
        self.retry_initial_connect = on;
        self
    }
}
