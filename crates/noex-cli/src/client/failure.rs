//! Why a client command failed, from the SDK's errors, and what it prints for it (the
//! exit status of each class is decided in `crate::exit`).

use noex_tokio::{Delivery, Error, TransportErrorKind};
use serde_json::Value;

/// Why a client command failed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Failure {
    /// Bad command line or input.
    Usage(String),
    /// An error answer from the server.
    Server {
        /// The server's code (`NOT_FOUND`, ...).
        code: String,
        /// The server's message.
        message: String,
        /// The server's details, when sent.
        details: Option<Value>,
    },
    /// No connection or answer in time.
    Timeout(String),
    /// The connection failed.
    Connection(String),
    /// Anything else.
    Other(String),
}

impl Failure {
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
    fn classes_and_lines() {
        let server = Failure::from_sdk(
            &Error::Server {
                code: ErrorCode::NotFound,
                message: "no".into(),
                details: None,
            },
            "5s",
        );
        assert!(matches!(server, Failure::Server { .. }));
        assert_eq!(server.lines(), vec!["error: NOT_FOUND: no".to_string()]);
        let timeout = Failure::from_sdk(
            &Error::Timeout {
                delivery: Delivery::OutcomeUnknown,
            },
            "5s",
        );
        assert_eq!(
            timeout.lines(),
            vec![
                "error: timeout: no answer within 5s (the request was sent: it may have been \
                 applied)"
                    .to_string()
            ]
        );
        assert_eq!(
            Failure::Usage("bad\n  ^".into()).lines(),
            vec!["error: bad".to_string(), "  ^".to_string()]
        );
    }
}
