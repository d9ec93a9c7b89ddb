//! What a subscription listens to.

use crate::ops::{self, Operation};
use serde_json::Value;

/// What to subscribe to.
///
/// ```
/// use noex_proto::SubscriptionSpec;
/// use serde_json::json;
/// let spec = SubscriptionSpec::query("users-by-role", Some(json!({"role": "admin"})));
/// assert_eq!(
///     spec.operation().encode(1),
///     r#"{"id":1,"type":"store.subscribe","query":"users-by-role","params":{"role":"admin"}}"#
/// );
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum SubscriptionSpec {
    /// A store query (`store.subscribe`): pushes carry the whole new result.
    Query {
        /// The query's name.
        query: String,
        /// Its parameters.
        params: Option<Value>,
    },
    /// A rules topic pattern (`rules.subscribe`): pushes carry `{topic, event}`.
    Rules {
        /// The pattern, e.g. `order.*`.
        pattern: String,
    },
}

impl SubscriptionSpec {
    /// A store query subscription.
    pub fn query(query: impl Into<String>, params: Option<Value>) -> SubscriptionSpec {
        SubscriptionSpec::Query {
            query: query.into(),
            params,
        }
    }

    /// A rules pattern subscription.
    pub fn rules(pattern: impl Into<String>) -> SubscriptionSpec {
        SubscriptionSpec::Rules {
            pattern: pattern.into(),
        }
    }

    /// The subscribe request.
    pub fn operation(&self) -> Operation {
        match self {
            SubscriptionSpec::Query { query, params } => {
                ops::store::subscribe(query, params.as_ref())
            }
            SubscriptionSpec::Rules { pattern } => ops::rules::subscribe(pattern),
        }
    }

    /// The unsubscribe request for the server's id `server_id`.
    pub fn unsubscribe_operation(&self, server_id: &str) -> Operation {
        match self {
            SubscriptionSpec::Query { .. } => ops::store::unsubscribe(server_id),
            SubscriptionSpec::Rules { .. } => ops::rules::unsubscribe(server_id),
        }
    }

    /// Whether the subscribe answer carries initial data.
    pub fn has_initial_data(&self) -> bool {
        matches!(self, SubscriptionSpec::Query { .. })
    }
}
