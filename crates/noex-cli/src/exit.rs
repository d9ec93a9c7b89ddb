//! Failures of the client commands and their exit statuses.
//!
//! | status | class |
//! |---|---|
//! | 0 | success |
//! | 1 | anything else (the server's answer could not be understood, internal errors) |
//! | 2 | usage: bad arguments, bad JSON, unknown operation, missing password |
//! | 3 | the server answered with an error (including a refused login) |
//! | 4 | timeout: no connection or no answer within `--timeout` |
//! | 5 | connection: refused, closed, lost, handshake failed |

use noex_tokio::{Delivery, Error, TransportErrorKind};
use serde_json::Value;

/// Why a client command failed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Failure {
    /// Bad command line or input (status 2).
    Usage(String),
    /// An error answer from the server (status 3).
    Server {
        /// The server's code (`NOT_FOUND`, ...).
        code: String,
        /// The server's message.
        message: String,
        /// The server's details, when sent.
        details: Option<Value>,
    },
    /// No connection or answer in time (status 4).
    Timeout(String),
    /// The connection failed (status 5).
    Connection(String),
    /// Anything else (status 1).
    Other(String),
}

impl Failure {
    /// The process exit status.
    pub(crate) fn exit_code(&self) -> i32 {
        match self {
            Failure::Usage(_) => 2,
            Failure::Server { .. } => 3,
            Failure::Timeout(_) => 4,
            Failure::Connection(_) => 5,
            Failure::Other(_) => 1,
        }
    }

    /// The lines printed on stderr.
    pub(crate) fn lines(&self) -> Vec<String> {
        match self {
            Failure::Usage(m) => m
                .lines()
                .enumerate()
                .map(|(i, l)| {
                    if i == 0 {
                        format!("error: {l}")
                    } else {
                        l.to_string()
                    }
                })
                .collect(),
            Failure::Server {
                code,
                message,
                details,
            } => {
                let mut lines = vec![format!("error: {code}: {message}")];
                if let Some(d) = details {
                    lines.push(format!("details: {d}"));
                }
                lines
            }
            Failure::Timeout(m) => vec![format!("error: timeout: {m}")],
            Failure::Connection(m) => vec![format!("error: connection: {m}")],
            Failure::Other(m) => vec![format!("error: {m}")],
        }
    }

    /// Classifies an SDK error. `timeout` is the deadline that applied, for the message.
    pub(crate) fn from_sdk(e: &Error, timeout: &str) -> Failure {
        match e {
            Error::Server {
                code,
                message,
                details,
            } => Failure::Server {
                code: code.as_str().to_string(),
                message: message.clone(),
                details: details.clone(),
            },
            Error::Timeout { delivery } => Failure::Timeout(match delivery {
                Delivery::OutcomeUnknown => {
                    format!("no answer within {timeout} (the request was sent: it may have been applied)")
                }
                _ => format!("no answer within {timeout}"),
            }),
            Error::Transport(t) if t.kind() == TransportErrorKind::InvalidUrl => {
                Failure::Usage(format!("invalid --url: {t}"))
            }
            Error::InvalidArgument(m) => Failure::Usage(m.clone()),
            Error::Transport(_)
            | Error::Disconnected { .. }
            | Error::Closed { .. }
            | Error::QueueFull => Failure::Connection(e.to_string()),
            Error::GaveUp(_) => match e.code() {
                Some(code) => Failure::Server {
                    code: code.as_str().to_string(),
                    message: e.to_string(),
                    details: None,
                },
                None => Failure::Connection(e.to_string()),
            },
            _ => Failure::Other(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use noex_tokio::ErrorCode;

    #[test]
    fn classes_and_statuses() {
        let server = Failure::from_sdk(
            &Error::Server {
                code: ErrorCode::NotFound,
                message: "no".into(),
                details: None,
            },
            "5s",
        );
        assert_eq!(server.exit_code(), 3);
        assert_eq!(server.lines(), vec!["error: NOT_FOUND: no".to_string()]);
        let timeout = Failure::from_sdk(
            &Error::Timeout {
                delivery: Delivery::OutcomeUnknown,
            },
            "5s",
        );
        assert_eq!(timeout.exit_code(), 4);
        assert_eq!(Failure::Usage("x".into()).exit_code(), 2);
        assert_eq!(Failure::Connection("x".into()).exit_code(), 5);
    }
}
