//! What `noex watch` follows and what it sees: the target, and each update as the piped
//! output ([`crate::watch`]) and the live view ([`crate::tui`]) both read it.

use std::time::SystemTime;

use noex_tokio::ConnectionState;
use serde_json::Value;

use crate::exit::Failure;

/// What is being watched.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// A defined query and its parameters.
    Query {
        /// The query's name.
        name: String,
        /// Its parameters.
        params: Option<Value>,
    },
    /// A topic pattern.
    Topic(String),
}

impl Target {
    /// `query NAME {params}` / `topic PATTERN`.
    pub(crate) fn title(&self) -> String {
        match self {
            Target::Query { name, params: None } => format!("query {name}"),
            Target::Query {
                name,
                params: Some(p),
            } => format!("query {name} {p}"),
            Target::Topic(p) => format!("topic {p}"),
        }
    }
}

/// One thing that happened while watching.
#[derive(Debug)]
pub(crate) enum Update {
    /// A query's whole new result.
    Data(Value),
    /// An event on a topic.
    Event {
        /// The topic.
        topic: String,
        /// The event (id, topic, data, timestamp, ...).
        event: Value,
    },
    /// Events between these times may have been missed (after a reconnect).
    Gap {
        /// When the connection was lost.
        from: SystemTime,
        /// When the subscription was made again.
        to: SystemTime,
    },
    /// Too slow a reader: this many events were dropped.
    Lagged(u64),
    /// The connection state changed.
    State(ConnectionState),
    /// A later connection is ready with the subscription restored.
    Reconnected,
    /// The subscription ended (the failure says why).
    End(Failure),
}

/// The state's name in the JSON lines and on the status line.
pub(crate) fn state_name(state: ConnectionState) -> &'static str {
    match state {
        ConnectionState::Connecting => "connecting",
        ConnectionState::Connected => "connected",
        ConnectionState::Reconnecting => "reconnecting",
        ConnectionState::Disconnected => "disconnected",
    }
}
