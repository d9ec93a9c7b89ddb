//! The audit log (`audit.query`).

use crate::client::Client;
use crate::error::Result;
use noex_proto::ops;
pub use noex_proto::ops::audit::AuditFilter;
use noex_proto::RequestOptions;
use serde::Deserialize;

/// The audit domain: `client.audit()`.
#[derive(Debug, Clone)]
pub struct Audit {
    client: Client,
}

/// One audit entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct AuditEntry {
    /// When, ms since the epoch.
    pub timestamp: i64,
    /// Who.
    #[serde(default)]
    pub user_id: Option<String>,
    /// Which connection.
    #[serde(default)]
    pub session_id: Option<String>,
    /// The operation, e.g. `store.insert`.
    pub operation: String,
    /// The resource, e.g. a bucket name or `*`.
    #[serde(default)]
    pub resource: Option<String>,
    /// `success` or `error`.
    pub result: String,
    /// The error message, for failures.
    #[serde(default)]
    pub error: Option<String>,
    /// The client's address.
    #[serde(default)]
    pub remote_address: Option<String>,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

#[derive(Deserialize)]
struct Entries {
    entries: Vec<AuditEntry>,
}

impl Client {
    /// The audit log.
    pub fn audit(&self) -> Audit {
        Audit::new(self.clone())
    }
}

impl Audit {
    pub(crate) fn new(client: Client) -> Audit {
        Audit { client }
    }

    /// Entries matching the filter, newest first.
    pub async fn query(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>> {
        let answer: Entries = self
            .client
            .call(ops::audit::query(filter), RequestOptions::default())
            .await?;
        Ok(answer.entries)
    }
}
