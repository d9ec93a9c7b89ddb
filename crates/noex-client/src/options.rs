//! Client options, with builders.

use crate::slot::BufferPolicy;
use noex_proto::{Auth, Backoff, Config, Liveness, Secret};
use std::fmt;
use std::time::Duration;

/// How the client connects, logs in, reconnects and times out.
///
/// ```
/// use noex_client::ClientOptions;
/// use std::time::Duration;
/// let options = ClientOptions::new()
///     .credentials("alice", "alice-pass-123")
///     .request_timeout(Duration::from_secs(5))
///     .retry_reads(true);
/// assert!(!format!("{options:?}").contains("alice-pass-123"));
/// ```
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub(crate) auth: Option<Auth>,
    pub(crate) reconnect: bool,
    pub(crate) backoff: Backoff,
    pub(crate) request_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) liveness: Liveness,
    pub(crate) retry_reads: bool,
    pub(crate) queue_while_disconnected: bool,
    pub(crate) max_queued: usize,
    pub(crate) max_in_flight: usize,
    pub(crate) retry_initial_connect: bool,
    pub(crate) tls: TlsOptions,
    pub(crate) seed: Option<u64>,
    pub(crate) event_buffer: usize,
    pub(crate) rules_buffer: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        let defaults = Config::new("");
        ClientOptions {
            auth: None,
            reconnect: defaults.reconnect,
            backoff: defaults.backoff,
            request_timeout: defaults.request_timeout,
            connect_timeout: defaults.connect_timeout,
            liveness: defaults.liveness,
            retry_reads: defaults.retry_reads,
            queue_while_disconnected: defaults.queue_while_disconnected,
            max_queued: defaults.max_queued,
            max_in_flight: defaults.max_in_flight,
            retry_initial_connect: defaults.retry_initial_connect,
            tls: TlsOptions::default(),
            seed: None,
            event_buffer: 1024,
            rules_buffer: 4096,
        }
    }
}

impl ClientOptions {
    /// The defaults: no login, reconnect with backoff 1 s ×2 up to 30 s (+0–500 ms jitter,
    /// unlimited), 10 s request and connect timeouts, liveness watchdog on.
    pub fn new() -> ClientOptions {
        ClientOptions::default()
    }
    /// Logs in with `auth.login` and this token on every connection.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.auth = Some(Auth::Token(Secret::new(token)));
        self
    }
    /// Logs in with `identity.login`, then resumes the returned session on reconnects.
    pub fn credentials(mut self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.auth = Some(Auth::Credentials {
            username: username.into(),
            password: Secret::new(password),
        });
        self
    }
    /// Turns reconnecting on or off.
    pub fn reconnect(mut self, on: bool) -> Self {
        self.reconnect = on;
        self
    }
    /// Sets the reconnect backoff (turns reconnecting on).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.reconnect = true;
        self.backoff = backoff;
        self
    }
    /// Default deadline of every request.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }
    /// Time allowed from opening the socket to the server's `welcome`.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }
    /// Heartbeat watchdog on (the default: reconnect when the server misses about two pings)
    /// or off.
    pub fn heartbeat(mut self, on: bool) -> Self {
        self.liveness = if on {
            Liveness::default()
        } else {
            Liveness::Off
        };
        self
    }
    /// Reconnect when nothing at all arrives for `timeout`, pings or not.
    pub fn liveness_timeout(mut self, timeout: Duration) -> Self {
        self.liveness = Liveness::Fixed(timeout);
        self
    }
    /// Re-send every read after a reconnect (within its deadline). Writes are never re-sent.
    pub fn retry_reads(mut self, on: bool) -> Self {
        self.retry_reads = on;
        self
    }
    /// Whether requests made while a connection is being made (or waited for) wait for
    /// it, bounded by their own deadline, `max` queued requests and
    /// [`ClientOptions::max_in_flight`]. On by default (with `max` 4 096): a request that
    /// was never sent can safely wait. `false` fails such requests at once with
    /// [`crate::Error::Disconnected`] (not sent). Requests always fail at once when no
    /// connection is coming.
    pub fn queue_while_disconnected(mut self, on: bool, max: usize) -> Self {
        self.queue_while_disconnected = on;
        self.max_queued = max;
        self
    }
    /// Most requests in flight (sent or waiting for the connection, not yet answered). A
    /// caller past it waits for a slot, its deadline running, instead of failing or
    /// growing memory. Default 4 096; at least 1.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }
    /// Keep trying when the very first connection fails, instead of failing `connect`.
    pub fn retry_initial_connect(mut self, on: bool) -> Self {
        self.retry_initial_connect = on;
        self
    }
    /// Trusts an extra root certificate (DER) for `wss://`.
    pub fn add_root_certificate(mut self, der: Vec<u8>) -> Self {
        self.tls.root_certificates.push(der);
        self
    }
    /// Seeds the reconnect jitter (for reproducible tests).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }
    /// How many lifecycle events an unread event stream keeps (oldest dropped beyond).
    pub fn event_buffer(mut self, n: usize) -> Self {
        self.event_buffer = n.max(1);
        self
    }
    /// How many rules events an unread rules subscription keeps (oldest dropped beyond,
    /// reported as [`crate::Error::Protocol`]-free `Lagged` items).
    pub fn rules_buffer(mut self, n: usize) -> Self {
        self.rules_buffer = n.max(1);
        self
    }

    pub(crate) fn core_config(&self, url: &str) -> Config {
        let mut config = Config::new(url)
            .reconnect(self.reconnect)
            .backoff(self.backoff.clone())
            .request_timeout(self.request_timeout)
            .connect_timeout(self.connect_timeout)
            .liveness(self.liveness.clone())
            .retry_reads(self.retry_reads)
            .queue_while_disconnected(self.queue_while_disconnected)
            .max_queued(self.max_queued)
            .max_in_flight(self.max_in_flight)
            .retry_initial_connect(self.retry_initial_connect);
        if let Some(auth) = &self.auth {
            config = config.auth(auth.clone());
        }
        config
    }

    pub(crate) fn rules_policy(&self) -> BufferPolicy {
        BufferPolicy::Queue(self.rules_buffer)
    }
}

/// TLS settings for `wss://` URLs.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// Extra trusted root certificates, DER-encoded, on top of the public web roots.
    pub root_certificates: Vec<Vec<u8>>,
}

impl fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsOptions")
            .field("root_certificates", &self.root_certificates.len())
            .finish()
    }
}
