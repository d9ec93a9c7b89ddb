//! Why a connection ended.

use crate::error_code::ErrorCode;
use std::fmt;

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The transport closed, with the close frame's code and reason when there was one.
    Closed {
        /// Close code.
        code: Option<u16>,
        /// Close reason.
        reason: String,
    },
    /// Opening the connection failed.
    ConnectFailed(String),
    /// No `welcome` within the connect timeout.
    ConnectTimeout,
    /// The server went silent (liveness watchdog).
    LivenessTimeout,
    /// The configured login did not succeed in time or failed for a passing reason.
    LoginFailed,
    /// A subscription restore got no answer in time; the connection is replaced and every
    /// subscription is restored again (none is given up).
    RestoreTimeout,
    /// The configured credentials were refused; no reconnect.
    AuthRejected {
        /// The server's code (`UNAUTHORIZED`, `FORBIDDEN` or `VALIDATION_ERROR`).
        code: ErrorCode,
        /// The server's message.
        message: String,
    },
    /// The session expired and cannot be renewed (a configured token's session ran out,
    /// or `auth.login` refused the token as expired); no reconnect.
    SessionExpired {
        /// The server's message (`Session expired`, `Token has expired`).
        message: String,
    },
    /// Reconnecting gave up after `attempts` failed attempts in a row
    /// ([`crate::Backoff::max_retries`]); `last` is why the last one failed.
    RetriesExhausted {
        /// The failed attempts.
        attempts: u32,
        /// Why the last attempt failed.
        last: Box<DisconnectReason>,
    },
    /// The client closed on purpose.
    ClientClosed,
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DisconnectReason::Closed {
                code: Some(code),
                reason,
            } => write!(f, "closed by the server with code {code} ({reason:?})"),
            DisconnectReason::Closed { code: None, reason } => {
                write!(f, "connection ended ({reason})")
            }
            DisconnectReason::ConnectFailed(reason) => write!(f, "connect failed: {reason}"),
            DisconnectReason::ConnectTimeout => {
                f.write_str("no welcome within the connect timeout")
            }
            DisconnectReason::LivenessTimeout => f.write_str("the server went silent"),
            DisconnectReason::LoginFailed => f.write_str("login failed"),
            DisconnectReason::RestoreTimeout => f.write_str("restoring subscriptions timed out"),
            DisconnectReason::AuthRejected { code, message } => {
                write!(f, "the credentials were refused ({code}: {message})")
            }
            DisconnectReason::SessionExpired { message } => {
                write!(f, "the session expired and cannot be renewed ({message})")
            }
            DisconnectReason::RetriesExhausted { attempts, last } => {
                write!(
                    f,
                    "gave up after {attempts} failed attempts (the last: {last})"
                )
            }
            DisconnectReason::ClientClosed => f.write_str("closed by the client"),
        }
    }
}
