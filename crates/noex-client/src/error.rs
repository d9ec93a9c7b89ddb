//! The client's one error type.

use noex_proto::{Delivery, DisconnectReason, ErrorCode, Payload, RequestError, ServerError};
use std::time::{Duration, SystemTime};

/// Everything a client call can fail with.
///
/// Failures caused by the connection say whether the request may have reached the server:
/// see [`Error::may_have_been_applied`].
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
    /// Too many requests are waiting for the connection
    /// ([`crate::ClientOptions::queue_while_disconnected`]).
    #[error("too many requests queued while disconnected")]
    QueueFull,
    /// The client gave up on the connection for good: a permanent close code (1003, 4002,
    /// 4003), the session revoked, the credentials refused, or reconnect attempts
    /// exhausted. A live subscription ends with this (then `None`).
    #[error("gave up on the connection: {0}")]
    GaveUp(DisconnectReason),
    /// Not a failure: a rules subscription was made again after a reconnect, and events
    /// emitted between `from` (the connection was lost) and `to` (the subscription was
    /// registered again) were not delivered. The stream carries on; reconcile what the
    /// events would have told you (re-read facts or records). See [`crate::Subscription`].
    #[error("events between the disconnect and the restore may have been missed")]
    Gap {
        /// When the connection was lost.
        from: SystemTime,
        /// When the subscription was registered again.
        to: SystemTime,
    },
    /// The transport failed (socket, TLS, WebSocket handshake).
    #[error("transport: {0}")]
    Transport(String),
    /// The server said something this client cannot understand.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// A value could not be turned into JSON, or an answer into the requested type.
    #[error("serialization: {0}")]
    Serde(String),
    /// A slow consumer of a rules subscription missed this many events (its buffer is
    /// bounded; see [`crate::ClientOptions::rules_buffer`]).
    #[error("subscription lagged: {missed} events dropped")]
    Lagged {
        /// How many events were dropped.
        missed: u64,
    },
    /// Configuration or argument problem.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl Error {
    /// The server's error code, for server errors.
    pub fn code(&self) -> Option<&ErrorCode> {
        match self {
            Error::Server { code, .. } => Some(code),
            _ => None,
        }
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
            RequestError::Malformed(m) => Error::Protocol(m),
            other => Error::Protocol(other.to_string()),
        }
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Serde(e.to_string())
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
