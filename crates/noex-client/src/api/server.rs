//! Server introspection (`server.*`).

use super::auth::nullable;
use super::rules::RulesStats;
use super::store::StoreStats;
use crate::client::Client;
use crate::error::Result;
use noex_proto::{ops, RequestOptions};
use serde::Deserialize;
use serde_json::{Map, Value};

/// The server domain: `client.server()`.
#[derive(Debug, Clone)]
pub struct ServerApi {
    client: Client,
}

/// One connection as `server.connections` describes it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ConnectionInfo {
    /// e.g. `conn-1`.
    pub connection_id: String,
    /// The client's address.
    pub remote_address: String,
    /// When it connected, ms since the epoch.
    pub connected_at: i64,
    /// Whether logged in.
    pub authenticated: bool,
    /// Who, when logged in.
    #[serde(deserialize_with = "nullable")]
    pub user_id: Option<String>,
    /// Their roles (none when not logged in).
    pub roles: Vec<String>,
    /// Live store subscriptions.
    pub store_subscription_count: u64,
    /// Live rules subscriptions.
    pub rules_subscription_count: u64,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `server.stats`: the server's statistics.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ServerStats {
    /// The server's name.
    pub name: String,
    /// Open connections.
    pub connection_count: u64,
    /// Whether authentication is on.
    pub auth_enabled: bool,
    /// Whether rate limiting is on.
    pub rate_limit_enabled: bool,
    /// Whether a rule engine is attached.
    pub rules_enabled: bool,
    /// Connections and their subscriptions.
    pub connections: ConnectionStats,
    /// The store's statistics.
    pub store: StoreStats,
    /// The rule engine's statistics; `None` when there is no rule engine.
    #[serde(deserialize_with = "nullable")]
    pub rules: Option<RulesStats>,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Connection counts of `server.stats`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ConnectionStats {
    /// Open connections.
    pub active: u64,
    /// Of them logged in.
    pub authenticated: u64,
    /// Live store subscriptions, all connections.
    pub total_store_subscriptions: u64,
    /// Live rules subscriptions, all connections.
    pub total_rules_subscriptions: u64,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Client {
    /// Server introspection.
    pub fn server(&self) -> ServerApi {
        ServerApi::new(self.clone())
    }
}

impl ServerApi {
    pub(crate) fn new(client: Client) -> ServerApi {
        ServerApi { client }
    }
    /// Server statistics.
    pub async fn stats(&self) -> Result<ServerStats> {
        self.client
            .call(ops::server::stats(), RequestOptions::default())
            .await
    }
    /// Every open connection.
    pub async fn connections(&self) -> Result<Vec<ConnectionInfo>> {
        self.client
            .call(ops::server::connections(), RequestOptions::default())
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_decode_from_the_recorded_shapes() {
        let connections: Vec<ConnectionInfo> = serde_json::from_value(json!([{
            "connectionId": "conn-1", "remoteAddress": "127.0.0.1", "connectedAt": 1,
            "authenticated": false, "userId": null, "roles": [],
            "storeSubscriptionCount": 0, "rulesSubscriptionCount": 2
        }]))
        .unwrap();
        assert_eq!(connections[0].rules_subscription_count, 2);
        assert!(connections[0].user_id.is_none());
        let counts: ConnectionStats = serde_json::from_value(json!({
            "active": 1, "authenticated": 0, "totalStoreSubscriptions": 0,
            "totalRulesSubscriptions": 0
        }))
        .unwrap();
        assert_eq!(counts.active, 1);
    }

    /// The answer recorded from the real server.
    fn recorded_stats() -> Value {
        json!({"name": "noex-server", "connectionCount": 1, "authEnabled": false,
            "rateLimitEnabled": false, "rulesEnabled": true,
            "connections": {"active": 1, "authenticated": 0, "totalStoreSubscriptions": 0,
                            "totalRulesSubscriptions": 0},
            "store": {"name": "reference-store-1795739063853",
                      "buckets": {"count": 1, "names": ["users"]},
                      "records": {"total": 3, "perBucket": {"users": 3}},
                      "indexes": {"total": 0, "perBucket": {"users": 0}},
                      "queries": {"defined": 3, "activeSubscriptions": 0},
                      "persistence": {"enabled": false},
                      "ttl": {"enabled": true, "checkIntervalMs": 1000}},
            "rules": {"rulesCount": 0, "factsCount": 1, "timersCount": 0, "eventsProcessed": 4,
                      "rulesExecuted": 1, "avgProcessingTimeMs": 2,
                      "tracing": {"enabled": false, "entriesCount": 0, "maxEntries": 10000}}})
    }

    #[test]
    fn stats_decode_with_and_without_a_rule_engine() {
        let stats: ServerStats = serde_json::from_value(recorded_stats()).unwrap();
        assert_eq!(stats.rules.as_ref().map(|r| r.facts_count), Some(1));
        let mut without = recorded_stats();
        without["rulesEnabled"] = json!(false);
        without["rules"] = Value::Null;
        let stats: ServerStats = serde_json::from_value(without).unwrap();
        assert!(stats.rules.is_none());
        for field in ["rules", "store", "connections", "authEnabled"] {
            let mut partial = recorded_stats();
            partial.as_object_mut().unwrap().remove(field);
            assert!(
                serde_json::from_value::<ServerStats>(partial).is_err(),
                "{field}"
            );
        }
    }

    #[test]
    fn fields_the_server_always_sends_are_required() {
        let connection = json!({
            "connectionId": "conn-1", "remoteAddress": "127.0.0.1", "connectedAt": 1,
            "authenticated": false, "userId": null, "roles": [],
            "storeSubscriptionCount": 0, "rulesSubscriptionCount": 0
        });
        for field in [
            "userId",
            "connectedAt",
            "authenticated",
            "storeSubscriptionCount",
        ] {
            let mut partial = connection.clone();
            partial.as_object_mut().unwrap().remove(field);
            assert!(
                serde_json::from_value::<ConnectionInfo>(partial).is_err(),
                "{field}"
            );
        }
        assert!(serde_json::from_value::<ConnectionStats>(json!({"active": 1})).is_err());
    }
}
