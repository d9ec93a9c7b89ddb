//! How a request can fail.

use crate::disconnect::DisconnectReason;
use crate::frame::ServerError;

/// Whether a request that failed because of the connection may have reached the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Delivery {
    /// The frame never left the client: the server did not see it. Safe to retry.
    NotSent,
    /// The frame was handed to the transport and no answer came: the server may or may not
    /// have applied it. Re-read before retrying a write.
    OutcomeUnknown,
}

/// Why a request did not succeed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The server answered with an error.
    #[error("server error {}: {}", .0.code, .0.message)]
    Server(ServerError),
    /// No answer before the deadline.
    #[error("request timed out ({delivery:?})")]
    Timeout {
        /// Whether the frame had been handed to the transport.
        delivery: Delivery,
    },
    /// The connection was lost, or there was none.
    #[error("not connected ({delivery:?})")]
    Disconnected {
        /// Whether the frame had been handed to the transport.
        delivery: Delivery,
    },
    /// The client was closed on purpose.
    #[error("client closed ({delivery:?})")]
    Closed {
        /// Whether the frame had been handed to the transport.
        delivery: Delivery,
    },
    /// Too many requests are queued or in flight.
    #[error("too many requests queued or in flight")]
    QueueFull,
    /// The client gave up on the connection for good (a permanent close code, the session
    /// revoked, credentials refused, or reconnect attempts exhausted): what a live
    /// subscription ends with.
    #[error("gave up on the connection: {0}")]
    GaveUp(DisconnectReason),
    /// The server's answer could not be understood.
    #[error("malformed answer: {0}")]
    Malformed(String),
}

impl RequestError {
    /// Whether the server may have applied the request: `true` only when the frame was
    /// handed to the transport and no answer came back.
    ///
    /// ```
    /// use noex_proto::{Delivery, RequestError};
    /// assert!(RequestError::Timeout { delivery: Delivery::OutcomeUnknown }.may_have_been_applied());
    /// assert!(!RequestError::Disconnected { delivery: Delivery::NotSent }.may_have_been_applied());
    /// ```
    pub fn may_have_been_applied(&self) -> bool {
        self.delivery() == Some(Delivery::OutcomeUnknown)
    }

    /// The delivery state for connection-caused failures.
    pub fn delivery(&self) -> Option<Delivery> {
        match self {
            RequestError::Timeout { delivery }
            | RequestError::Disconnected { delivery }
            | RequestError::Closed { delivery } => Some(*delivery),
            RequestError::QueueFull => Some(Delivery::NotSent),
            RequestError::Server(_) | RequestError::Malformed(_) | RequestError::GaveUp(_) => None,
        }
    }
}
