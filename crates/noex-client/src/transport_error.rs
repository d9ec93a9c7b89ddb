//! Transport failures, typed by kind and keeping their cause.

use std::fmt;
use std::sync::Arc;

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
pub(crate) type BoxedSource = Arc<dyn std::error::Error + Send + Sync + 'static>;

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

crate::kinded::kinded_error!(TransportError, TransportErrorKind);

impl TransportError {
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

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}
