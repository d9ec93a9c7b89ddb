//! The client's one error type.

use crate::transport_error::BoxedSource;
use crate::transport_error::TransportError;
use noex_proto::live::LiveError;
use noex_proto::{Delivery, DisconnectReason, ErrorCode, Payload, RequestError, ServerError};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Everything a client call can fail with.
///
/// Failures caused by the connection say whether the request may have reached the server:
/// see [`Error::may_have_been_applied`].
///
/// # Errors in streams
///
/// In a stream ([`crate::Subscription`], [`crate::RuleSubscription`], [`crate::LiveQuery`])
/// an `Err` is always a failure, and only one of two kinds:
/// - one value that could not be read (e.g. [`Error::Serde`] for a push that does not fit
///   the type): the stream carries on with the next one;
/// - the end: the subscription is over ([`Error::GaveUp`], or the error it could not be
///   made again with after a reconnect), and the next item is `None`.
///
/// Notices that end nothing are items, not errors: a rules subscription yields
/// [`crate::RuleUpdate::Missed`] (events were missed while the connection was down) and
/// [`crate::RuleUpdate::Lagged`] (the application read too slowly and events were
/// dropped) beside its events. Why: a caller handles each `Err` the same way, as a
/// failure (log it, give up, `?` it out of the loop), without first asking which errors
/// are not failures; a notice as an item cannot be dropped by `?` or by
/// `filter_map(Result::ok)` unnoticed, and a match on the item type lists every notice
/// the stream can yield. Store subscriptions have no notices: their fresh data after a
/// reconnect replaces what was missed, and a slow reader gets the latest result.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with an error.
    #[error("{code}: {message}")]
    Server {
        /// The server's code (unknown codes kept as [`ErrorCode::Other`]).
        code: ErrorCode,
        /// The server's message.
        message: String,
        /// Structured details, when sent.
        details: Option<serde_json::Value>,
    },
    /// No answer before the deadline.
    #[error("request timed out")]
    Timeout {
        /// Whether the frame had left the client.
        delivery: Delivery,
    },
    /// Not connected, or the connection was lost before the answer.
    #[error("not connected")]
    Disconnected {
        /// Whether the frame had left the client.
        delivery: Delivery,
    },
    /// The client was closed (disconnect, or every handle dropped).
    #[error("client closed")]
    Closed {
        /// Whether the frame had left the client.
        delivery: Delivery,
    },
    /// The request was refused at once: too many requests wait for the connection
    /// ([`crate::ClientOptions::max_queued`]). (A request past the in-flight cap,
    /// [`crate::ClientOptions::max_in_flight`], waits for a slot instead, its deadline
    /// running.) It was not sent.
    #[error("too many requests queued while disconnected")]
    QueueFull,
    /// The client gave up on the connection for good: a permanent close code (1003, 4002,
    /// 4003: [`DisconnectReason::Closed`] with the code and the server's reason; see
    /// [`Error::close_code`]), the session revoked, the credentials refused
    /// ([`DisconnectReason::AuthRejected`] with the server's code: [`Error::code`]), a
    /// configured token whose session expired ([`DisconnectReason::SessionExpired`]), or
    /// reconnect attempts exhausted. [`crate::Client::connect`] fails with this when the
    /// first connection ends that way, and a live subscription ends with it (then `None`).
    #[error("gave up on the connection: {0}")]
    GaveUp(DisconnectReason),
    /// The transport failed (socket, TLS, WebSocket handshake): see
    /// [`TransportError::kind`]; the underlying error is the [`std::error::Error::source`].
    #[error(transparent)]
    Transport(TransportError),
    /// The server said something this client cannot understand: see
    /// [`ProtocolError::kind`].
    #[error(transparent)]
    Protocol(ProtocolError),
    /// A value could not be turned into JSON, or an answer into the requested type; the
    /// `serde_json` error is the [`std::error::Error::source`].
    #[error(transparent)]
    Serde(SerdeError),
    /// A live query's result is not a list of keyed records (see
    /// [`crate::LiveQuery`]): a count or a scalar ([`LiveError::NotAList`], on the first
    /// item, after which the stream ends: use [`crate::Store::subscribe`] for such
    /// queries), or a result with a record without its key field, or two records with one
    /// key (the view stays as it was, and the stream carries on).
    #[error("live query {query:?}: {error}")]
    Live {
        /// The query.
        query: String,
        /// What is wrong with its result.
        error: LiveError,
    },
    /// Configuration or argument problem.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl Error {
    /// The server's error code: for server errors, and for a login the server refused
    /// ([`Error::GaveUp`] with [`DisconnectReason::AuthRejected`], which is what
    /// [`crate::Client::connect`] fails with for wrong credentials).
    ///
    /// ```
    /// use noex_client::{DisconnectReason, Error, ErrorCode};
    /// let e = Error::GaveUp(DisconnectReason::AuthRejected {
    ///     code: ErrorCode::Unauthorized,
    ///     message: "Invalid credentials".into(),
    /// });
    /// assert_eq!(e.code(), Some(&ErrorCode::Unauthorized));
    /// ```
    pub fn code(&self) -> Option<&ErrorCode> {
        match self {
            Error::Server { code, .. } => Some(code),
            Error::GaveUp(DisconnectReason::AuthRejected { code, .. }) => Some(code),
            _ => None,
        }
    }

    /// The close code the server ended the connection with, when the client gave up
    /// because of it (a permanent code such as 4003).
    pub fn close_code(&self) -> Option<u16> {
        match self {
            Error::GaveUp(DisconnectReason::Closed { code, .. }) => *code,
            _ => None,
        }
    }

    /// A [`Error::Protocol`] for an answer of the wrong shape ([`ProtocolErrorKind::Unexpected`]).
    pub fn protocol(message: impl Into<String>) -> Error {
        Error::Protocol(ProtocolError::new(ProtocolErrorKind::Unexpected, message))
    }

    /// A [`Error::Serde`] with `message` and no `serde_json` error behind it.
    pub fn serde(message: impl Into<String>) -> Error {
        Error::Serde(SerdeError::new(message))
    }

    /// For `RATE_LIMITED`: how long the server asks to wait.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Server {
                details: Some(details),
                ..
            } => {
                let ms = details.get("retryAfterMs")?.as_f64()?;
                // `try_`: a negative, NaN or huge value from the network must not panic.
                Duration::try_from_secs_f64(ms / 1000.0).ok()
            }
            _ => None,
        }
    }

    /// Whether the server may have applied the request although the call failed: the frame
    /// had been handed to the transport and no answer came back (a timeout, or a connection
    /// lost while waiting). For a write, re-read before retrying it. When this is `false`
    /// for a connection failure, the request never left the client and is safe to retry.
    ///
    /// ```
    /// use noex_client::Error;
    /// use noex_proto::Delivery;
    /// let e = Error::Disconnected { delivery: Delivery::OutcomeUnknown };
    /// assert!(e.may_have_been_applied());
    /// assert!(!Error::Disconnected { delivery: Delivery::NotSent }.may_have_been_applied());
    /// ```
    pub fn may_have_been_applied(&self) -> bool {
        self.delivery() == Some(Delivery::OutcomeUnknown)
    }

    /// The delivery state of a connection-caused failure.
    pub fn delivery(&self) -> Option<Delivery> {
        match self {
            Error::Timeout { delivery }
            | Error::Disconnected { delivery }
            | Error::Closed { delivery } => Some(*delivery),
            Error::QueueFull => Some(Delivery::NotSent),
            _ => None,
        }
    }

    /// Whether this is the server's error `code`.
    pub fn is(&self, code: &ErrorCode) -> bool {
        self.code() == Some(code)
    }
}

fn details_value(details: Option<Payload>) -> Option<serde_json::Value> {
    // Details a JSON tree cannot hold are kept as their text rather than dropped.
    details.map(|d| {
        d.to_value()
            .unwrap_or_else(|_| serde_json::Value::String(d.json().to_owned()))
    })
}

impl From<ServerError> for Error {
    fn from(e: ServerError) -> Self {
        Error::Server {
            code: e.code,
            message: e.message,
            details: details_value(e.details),
        }
    }
}

impl From<RequestError> for Error {
    fn from(e: RequestError) -> Self {
        match e {
            RequestError::Server(e) => e.into(),
            RequestError::Timeout { delivery } => Error::Timeout { delivery },
            RequestError::Disconnected { delivery } => Error::Disconnected { delivery },
            RequestError::Closed { delivery } => Error::Closed { delivery },
            RequestError::QueueFull => Error::QueueFull,
            RequestError::GaveUp(reason) => Error::GaveUp(reason),
            RequestError::Malformed(m) => {
                Error::Protocol(ProtocolError::new(ProtocolErrorKind::Malformed, m))
            }
            other => Error::Protocol(ProtocolError::new(
                ProtocolErrorKind::Other,
                other.to_string(),
            )),
        }
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Serde(e.into())
    }
}

impl From<TransportError> for Error {
    fn from(e: TransportError) -> Self {
        Error::Transport(e)
    }
}

impl From<ProtocolError> for Error {
    fn from(e: ProtocolError) -> Self {
        Error::Protocol(e)
    }
}

impl From<SerdeError> for Error {
    fn from(e: SerdeError) -> Self {
        Error::Serde(e)
    }
}

/// What kind of protocol problem a [`ProtocolError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProtocolErrorKind {
    /// An answer could not be read at all (not the JSON shape the protocol defines).
    Malformed,
    /// An answer was readable but not what the operation answers (a missing field, a
    /// value of the wrong type, an answer in the wrong state).
    Unexpected,
    /// Anything else.
    Other,
}

/// The server said something this client cannot understand.
///
/// `Display` shows the message; the underlying error, when there is one, is the
/// [`std::error::Error::source`].
#[derive(Clone)]
pub struct ProtocolError {
    kind: ProtocolErrorKind,
    message: String,
    source: Option<BoxedSource>,
}

crate::kinded::kinded_error!(ProtocolError, ProtocolErrorKind);

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "protocol violation: {}", self.message)
    }
}

/// A value could not be turned into JSON, or JSON into the requested type.
///
/// `Display` says what was being done; the `serde_json` error (with the field, line and
/// column) is the [`std::error::Error::source`], also reachable with
/// [`SerdeError::json_error`], and its [`category`](SerdeError::category) tells syntax
/// errors from type mismatches.
///
/// ```
/// use noex_client::Error;
/// use std::error::Error as _;
/// let e: Error = serde_json::from_str::<u32>("\"x\"").unwrap_err().into();
/// let Error::Serde(serde) = &e else { panic!() };
/// assert_eq!(serde.category(), Some(serde_json::error::Category::Data));
/// assert!(e.source().unwrap().to_string().contains("expected u32"));
/// ```
#[derive(Clone)]
pub struct SerdeError {
    message: String,
    source: Option<Arc<serde_json::Error>>,
}

impl SerdeError {
    /// A serialization error with `message` and no `serde_json` error behind it.
    pub fn new(message: impl Into<String>) -> SerdeError {
        SerdeError {
            message: message.into(),
            source: None,
        }
    }

    /// The same error, caused by `source`.
    pub fn with_source(mut self, source: serde_json::Error) -> SerdeError {
        self.source = Some(Arc::new(source));
        self
    }

    /// What was being done, without the cause.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The `serde_json` error behind it, when there is one.
    pub fn json_error(&self) -> Option<&serde_json::Error> {
        self.source.as_deref()
    }

    /// The kind of `serde_json` failure (syntax, data, end of input, I/O), when there is
    /// a `serde_json` error behind it.
    pub fn category(&self) -> Option<serde_json::error::Category> {
        self.source.as_deref().map(serde_json::Error::classify)
    }
}

impl From<serde_json::Error> for SerdeError {
    fn from(e: serde_json::Error) -> Self {
        use serde_json::error::Category;
        let message = match e.classify() {
            Category::Syntax => "invalid JSON",
            Category::Eof => "JSON ended unexpectedly",
            Category::Data => "JSON does not match the expected type",
            Category::Io => "JSON I/O failed",
        };
        SerdeError::new(message).with_source(e)
    }
}

impl fmt::Debug for SerdeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SerdeError")
            .field("message", &self.message)
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for SerdeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "serialization: {}", self.message)
    }
}

impl std::error::Error for SerdeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// The client's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use noex_proto::Payload;

    fn rate_limited(details: &str) -> Error {
        ServerError {
            code: ErrorCode::RateLimited,
            message: "slow down".into(),
            details: Some(Payload::from_json(details).expect("JSON")),
        }
        .into()
    }

    #[test]
    fn rate_limited_exposes_retry_after() {
        assert_eq!(
            rate_limited(r#"{"retryAfterMs":1500}"#).retry_after(),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(rate_limited(r#"{"retryAfterMs":-1}"#).retry_after(), None);
        assert_eq!(
            rate_limited(r#"{"retryAfterMs":1e308}"#).retry_after(),
            None
        );
        assert_eq!(rate_limited(r#"{}"#).retry_after(), None);
    }

    #[test]
    fn sources_are_kept_through_the_chain() {
        use crate::transport_error::TransportErrorKind;
        use std::error::Error as _;
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let e = Error::from(
            TransportError::new(TransportErrorKind::Connect, "connecting to h:1 failed")
                .with_source(io),
        );
        let copy = e.clone();
        let Error::Transport(t) = &copy else {
            panic!("{copy:?}")
        };
        assert_eq!(t.kind(), TransportErrorKind::Connect);
        assert_eq!(e.to_string(), "connecting to h:1 failed");
        let source = e.source().expect("source");
        let io = source
            .downcast_ref::<std::io::Error>()
            .expect("the io::Error itself");
        assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);

        let e: Error = serde_json::from_str::<u32>("").unwrap_err().into();
        assert!(e.source().is_some_and(|s| s.is::<serde_json::Error>()));
        assert_eq!(e.to_string(), "serialization: JSON ended unexpectedly");
        assert!(Error::serde("no").source().is_none());

        let e = Error::Protocol(
            ProtocolError::new(ProtocolErrorKind::Malformed, "bad answer")
                .with_source(serde_json::from_str::<u32>("x").unwrap_err()),
        );
        assert!(e.source().is_some());
        assert_eq!(e.to_string(), "protocol violation: bad answer");
        let Error::Protocol(p) = Error::from(RequestError::Malformed("m".into())) else {
            panic!()
        };
        assert_eq!(p.kind(), ProtocolErrorKind::Malformed);
        assert_eq!(Error::protocol("x").to_string(), "protocol violation: x");
    }

    #[test]
    fn codes_and_close_codes_of_giving_up() {
        let refused = Error::GaveUp(DisconnectReason::AuthRejected {
            code: ErrorCode::Unauthorized,
            message: "Invalid credentials".into(),
        });
        assert_eq!(refused.code(), Some(&ErrorCode::Unauthorized));
        assert!(refused.is(&ErrorCode::Unauthorized));
        assert!(!refused.may_have_been_applied());
        assert_eq!(refused.close_code(), None);
        let closed = Error::GaveUp(DisconnectReason::Closed {
            code: Some(4003),
            reason: "too_many_connections".into(),
        });
        assert_eq!(closed.close_code(), Some(4003));
        assert_eq!(closed.code(), None);
        assert!(closed.to_string().contains("4003"), "{closed}");
    }

    #[test]
    fn details_a_json_tree_cannot_hold_are_kept_as_text() {
        match rate_limited("1e400") {
            Error::Server {
                details: Some(serde_json::Value::String(text)),
                ..
            } => assert_eq!(text, "1e400"),
            other => panic!("{other:?}"),
        }
    }
}
