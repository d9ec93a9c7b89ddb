//! Server introspection (`server.*`).

use crate::client::Client;
use crate::error::Result;
use noex_proto::{ops, RequestOptions};
use serde::Deserialize;
use serde_json::Value;

/// The server domain: `client.server()`.
#[derive(Debug, Clone)]
pub struct ServerApi {
    client: Client,
}

/// One connection as `server.connections` describes it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
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
}

impl ServerApi {
    pub(crate) fn new(client: Client) -> ServerApi {
        ServerApi { client }
    }
    /// Server statistics.
    pub async fn stats(&self) -> Result<Value> {
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
