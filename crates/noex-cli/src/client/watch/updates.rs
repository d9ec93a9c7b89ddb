//! What `noex watch` follows and what it sees: the target, and each update as the piped
//! output ([`super`]) and the live view ([`super::tui`]) both read it.

use std::time::SystemTime;

use noex_tokio::{Changes, ConnectionState, Record};
use serde_json::{Map, Value};

use crate::client::failure::Failure;

/// What is being watched.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// A defined query and its parameters.
    Query {
        /// The query's name.
        name: String,
        /// Its parameters.
        params: Option<Value>,
        /// The records' key field.
        key: String,
    },
    /// A topic pattern.
    Topic(String),
}

impl Target {
    /// `query NAME {params}` / `topic PATTERN`.
    pub(crate) fn title(&self) -> String {
        match self {
            Target::Query {
                name, params: None, ..
            } => format!("query {name}"),
            Target::Query {
                name,
                params: Some(p),
                ..
            } => format!("query {name} {p}"),
            Target::Topic(p) => format!("topic {p}"),
        }
    }
}

/// One thing that happened while watching.
#[derive(Debug)]
pub(crate) enum Update {
    /// A query's whole new result (a query watched without its changes, or whose result
    /// is not a list of records).
    Data(Value),
    /// What changed in a query's list of records (the first: the initial result, all
    /// added; after a reconnect: what was missed while away).
    Changes {
        /// Added, updated and removed records.
        changes: Changes<Value>,
        /// The whole result after them, when the live view asked for it.
        view: Option<Vec<Record<Value>>>,
    },
    /// The query's result is not a list of records (this says why): whole results
    /// ([`Update::Data`]) follow.
    Whole(String),
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

/// A record as the server sent it: its data (the key field among it) and the store's
/// metadata, `_version`, `_createdAt` and `_updatedAt`.
pub(crate) fn record_json(record: &Record<Value>) -> Value {
    let mut object = match &record.data {
        Value::Object(fields) => fields.clone(),
        // A record's data is an object; anything else is kept under `data`.
        other => Map::from_iter([("data".to_string(), other.clone())]),
    };
    object.insert("_version".into(), Value::from(record.version));
    object.insert("_createdAt".into(), Value::from(record.created_at));
    object.insert("_updatedAt".into(), Value::from(record.updated_at));
    Value::Object(object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_record_as_json_has_its_data_and_metadata() {
        let json =
            json!({"id": "u1", "name": "Alice", "_version": 2, "_createdAt": 10, "_updatedAt": 20});
        let record: Record<Value> = Record::from_value(json.clone(), "id").unwrap();
        assert_eq!(record_json(&record), json);
    }
}
