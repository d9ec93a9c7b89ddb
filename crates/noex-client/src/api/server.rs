//! Server introspection (`server.*`).

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
    #[serde(default)]
    pub remote_address: Option<String>,
    /// When it connected, ms since the epoch.
    #[serde(default)]
    pub connected_at: i64,
    /// Whether logged in.
    #[serde(default)]
    pub authenticated: bool,
    /// Who, when logged in.
    #[serde(default)]
    pub user_id: Option<String>,
    /// Their roles.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Live store subscriptions.
    #[serde(default)]
    pub store_subscription_count: u64,
    /// Live rules subscriptions.
    #[serde(default)]
    pub rules_subscription_count: u64,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `server.stats`: the server's statistics.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
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
    pub store: Option<StoreStats>,
    /// The rule engine's statistics, when there is one.
    pub rules: Option<RulesStats>,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Connection counts of `server.stats`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
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
