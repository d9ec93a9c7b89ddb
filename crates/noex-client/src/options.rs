//! Client options, with builders.

use crate::slot::BufferPolicy;
use futures::future::BoxFuture;
use futures::FutureExt;
use noex_proto::{Auth, Backoff, Config, Liveness, Secret};
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// What the client asks of a token provider ([`ClientOptions::token_provider`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenRequest {
    /// A new token is wanted: the server refused the last one, its session expired, or
    /// it is about to. When `false`, a cached token will do.
    pub refresh: bool,
}

/// The token provider's answer: a token, or why there is none (logged, never the token).
pub(crate) type TokenFuture = BoxFuture<'static, Result<Secret, String>>;

/// A token provider, shared by the options and the driver.
#[derive(Clone)]
pub(crate) struct TokenProvider(Arc<dyn Fn(TokenRequest) -> TokenFuture + Send + Sync>);

impl TokenProvider {
    pub(crate) fn fetch(&self, request: TokenRequest) -> TokenFuture {
        (self.0)(request)
    }
}

impl fmt::Debug for TokenProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenProvider")
    }
}

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
    pub(crate) token_provider: Option<TokenProvider>,
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
            token_provider: None,
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
    /// Logs in with `auth.login` and this token on every connection. A token cannot be
    /// renewed: when its session expires (the server refuses a request with "Session
    /// expired", or the token itself on a reconnect) the client gives up, with
    /// [`crate::Error::GaveUp`] and [`crate::DisconnectReason::SessionExpired`]. For tokens
    /// that expire, use [`ClientOptions::token_provider`].
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.auth = Some(Auth::Token(Secret::new(token)));
        self.token_provider = None;
        self
    }
    /// Logs in with `identity.login` and keeps the user logged in for the life of the
    /// client: the session is resumed on reconnects (`auth.login` with its token, falling
    /// back to the credentials), renewed before it expires (`identity.refreshSession`),
    /// and when the server says it expired anyway (clock skew, a machine that slept), the
    /// client logs in again on the same connection and sends the refused requests again
    /// within their deadlines. The server checks the session before it runs a request,
    /// so a request refused that way was not executed: sending it again is safe for
    /// writes too, and it is never reported as "outcome unknown" for the refused copy.
    pub fn credentials(mut self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.auth = Some(Auth::Credentials {
            username: username.into(),
            password: Secret::new(password),
        });
        self.token_provider = None;
        self
    }
    /// Logs in with `auth.login` and a token asked of `provider`, for servers with their
    /// own `auth.validate` (JWTs from an identity provider, say). The provider is asked on
    /// every connection (with [`TokenRequest::refresh`] `false`: a cached token will do),
    /// again with `refresh` `true` when the server refuses the token or the session
    /// expires, and before the session expires when the server said when (`expiresAt`).
    /// Requests refused because the session expired are sent again after the new login,
    /// as with [`ClientOptions::credentials`]. A provider that fails, panics or takes
    /// longer than the request timeout counts as a failed login: the connection is made
    /// again with backoff. The token never appears in logs or `Debug` output.
    ///
    /// ```
    /// use noex_client::{ClientOptions, TokenRequest};
    /// let options = ClientOptions::new().token_provider(|request: TokenRequest| async move {
    ///     // Ask the identity provider for a new token when `request.refresh` is set.
    ///     let _fresh = request.refresh;
    ///     Ok::<_, std::io::Error>("eyJhbGciOi...".to_owned())
    /// });
    /// assert!(!format!("{options:?}").contains("eyJ"));
    /// ```
    pub fn token_provider<F, Fut, E>(mut self, provider: F) -> Self
    where
        F: Fn(TokenRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, E>> + Send + 'static,
        E: fmt::Display,
    {
        let provider = move |request: TokenRequest| -> TokenFuture {
            provider(request)
                .map(|answer| answer.map(Secret::new).map_err(|e| e.to_string()))
                .boxed()
        };
        self.token_provider = Some(TokenProvider(Arc::new(provider)));
        self.auth = Some(Auth::Provider);
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
    /// The server's ping interval to assume before any connection has seen a ping (the
    /// watchdog watches every connection from its first frame). Default 30 s, the
    /// server's default; after the first pings, the interval measured is used.
    pub fn ping_interval_hint(mut self, interval: Duration) -> Self {
        if let Liveness::Auto { min_margin, .. } = self.liveness {
            self.liveness = Liveness::Auto {
                min_margin,
                initial_interval: interval,
            };
        }
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
    /// it, bounded by their own deadline, [`ClientOptions::max_queued`] and
    /// [`ClientOptions::max_in_flight`]. On by default: a request that was never sent can
    /// safely wait. `false` fails such requests at once with [`crate::Error::Disconnected`]
    /// (not sent). Requests always fail at once when no connection is coming.
    pub fn queue_while_disconnected(mut self, on: bool) -> Self {
        self.queue_while_disconnected = on;
        self
    }
    /// Most requests waiting for the connection; one more is refused at once with
    /// [`crate::Error::QueueFull`] (not sent). Default 4 096.
    pub fn max_queued(mut self, max: usize) -> Self {
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
    /// How many rules events an unread rules subscription keeps: beyond it the oldest are
    /// dropped and the subscription reports how many it missed. Default 4 096.
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
