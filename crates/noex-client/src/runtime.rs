//! The few things the client needs from an async runtime and a transport.
//!
//! An adapter (`noex-tokio`, `noex-async-std`, or your own) implements [`Runtime`] (spawn a
//! task, sleep) and [`Connector`] (open a WebSocket and hand back a text-frame
//! `Sink` + `Stream`). Everything else — the driver loop, the typed API, subscriptions — is
//! written once in this crate.

use futures::future::BoxFuture;
use futures::{Sink, Stream};
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Spawning, sleeping and the time.
pub trait Runtime: Send + Sync + 'static {
    /// Runs `task` in the background.
    fn spawn(&self, task: BoxFuture<'static, ()>);
    /// Completes after `duration`.
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;
    /// The current time, on the clock `sleep` runs on. The client reads time only from
    /// here, so a runtime with a virtual clock (tokio's paused time, a simulation) drives
    /// the whole client. The default is the OS clock.
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A frame from the transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A text frame.
    Text(String),
    /// A binary frame (the protocol does not use them; the core reports it).
    Binary(Vec<u8>),
    /// The connection closed, with the close frame's code and reason when one came.
    Closed {
        /// The close code.
        code: Option<u16>,
        /// The close reason.
        reason: String,
    },
}

/// A frame for the transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// A text frame.
    Text(String),
    /// A close frame, after which the transport shuts down.
    Close {
        /// The close code.
        code: u16,
        /// The close reason.
        reason: String,
    },
}

/// What kind of transport failure a [`TransportError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransportErrorKind {
    /// The URL is not a usable `ws://` or `wss://` URL.
    InvalidUrl,
    /// The TCP connection could not be made (refused, unreachable, name not resolved).
    Connect,
    /// TLS setup or the TLS handshake failed (e.g. an untrusted certificate).
    Tls,
    /// The WebSocket handshake failed (e.g. the server answered with an HTTP error).
    Handshake,
    /// Reading or writing the socket failed.
    Io,
    /// The connection was already closed.
    Closed,
    /// Anything else.
    Other,
}

impl TransportErrorKind {
    /// A short lowercase name (`"connect"`, `"tls"`, …), as used in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportErrorKind::InvalidUrl => "invalid_url",
            TransportErrorKind::Connect => "connect",
            TransportErrorKind::Tls => "tls",
            TransportErrorKind::Handshake => "handshake",
            TransportErrorKind::Io => "io",
            TransportErrorKind::Closed => "closed",
            TransportErrorKind::Other => "other",
        }
    }
}

impl fmt::Display for TransportErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The underlying error of a [`TransportError`], shared so that errors stay `Clone`.
pub type BoxedSource = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// A transport failure: its [kind](TransportError::kind), a message saying what was being
/// done, and the underlying error as its [`source`](std::error::Error::source) (an
/// `io::Error`, a rustls or tungstenite error), when there is one.
///
/// Following the Rust API guidelines, `Display` shows the message only; walk
/// [`std::error::Error::source`] (or print with `{:#}` in `anyhow`) for the cause.
///
/// ```
/// use noex_client::{TransportError, TransportErrorKind};
/// use std::error::Error as _;
/// let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
/// let e = TransportError::new(TransportErrorKind::Connect, "connecting to 127.0.0.1:1").with_source(io);
/// assert_eq!(e.kind(), TransportErrorKind::Connect);
/// assert_eq!(e.to_string(), "connecting to 127.0.0.1:1");
/// assert!(e.source().is_some());
/// assert_eq!(e.chain_text(), "connecting to 127.0.0.1:1: connection refused");
/// ```
#[derive(Clone)]
pub struct TransportError {
    kind: TransportErrorKind,
    message: String,
    source: Option<BoxedSource>,
}

impl TransportError {
    /// A failure of `kind`, described by `message` (what was being done).
    pub fn new(kind: TransportErrorKind, message: impl Into<String>) -> TransportError {
        TransportError {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// The same failure, caused by `source`.
    pub fn with_source(
        mut self,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> TransportError {
        self.source = Some(Arc::from(source.into()));
        self
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> TransportErrorKind {
        self.kind
    }

    /// What was being done, without the cause.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The message followed by every cause in the chain, `: `-separated.
    pub fn chain_text(&self) -> String {
        use std::fmt::Write;
        let mut text = self.message.clone();
        let mut next = std::error::Error::source(self);
        while let Some(cause) = next {
            let _ = write!(text, ": {cause}");
            next = cause.source();
        }
        text
    }
}

impl fmt::Debug for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportError")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TransportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// The sending half of an open connection.
pub type FrameSink = Pin<Box<dyn Sink<Outgoing, Error = TransportError> + Send>>;
/// The receiving half of an open connection. It ends after [`Incoming::Closed`] (or without
/// it when the socket just ended).
pub type FrameStream = Pin<Box<dyn Stream<Item = Incoming> + Send>>;

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

/// Opens WebSocket connections.
pub trait Connector: Send + Sync + 'static {
    /// Opens `url` (`ws://` or `wss://`) and returns its two halves.
    fn connect(
        &self,
        url: &str,
        tls: &TlsOptions,
    ) -> BoxFuture<'static, Result<(FrameSink, FrameStream), TransportError>>;
}

/// What a [`crate::Client`] runs on: a runtime and a connector.
#[derive(Clone)]
pub struct Backend {
    /// Spawning and sleeping.
    pub runtime: Arc<dyn Runtime>,
    /// Opening connections.
    pub connector: Arc<dyn Connector>,
}

impl Backend {
    /// A backend whose runtime and connector are the same value (what adapters provide).
    pub fn new<B: Runtime + Connector + Clone>(both: B) -> Backend {
        Backend {
            runtime: Arc::new(both.clone()),
            connector: Arc::new(both),
        }
    }
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Backend")
    }
}
