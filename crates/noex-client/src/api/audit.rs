//! The audit log (`audit.query`).

use super::auth::nullable;
use crate::client::Client;
use crate::error::Result;
use noex_proto::ops;
pub use noex_proto::ops::audit::AuditFilter;
use noex_proto::RequestOptions;
use serde::Deserialize;
use serde_json::{Map, Value};

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
    /// Who; `None` for a connection that was not logged in.
    #[serde(deserialize_with = "nullable")]
    pub user_id: Option<String>,
    /// Which connection, e.g. `conn-1`.
    pub session_id: String,
    /// The operation, e.g. `store.insert`.
    pub operation: String,
    /// The resource: a bucket, procedure, rule or topic name, a key, or `*`.
    pub resource: String,
    /// `success` or `error`.
    pub result: String,
    /// The error message, for failures.
    #[serde(default)]
    pub error: Option<String>,
    /// Details of some identity operations (the user name of a login, the subject and
    /// resource of a grant, …).
    #[serde(default)]
    pub details: Option<Map<String, Value>>,
    /// The client's address.
    pub remote_address: String,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
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

    /// Entries matching the filter, newest first ([`AuditFilter::all`] for every entry).
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> noex_client::Result<()> {
    /// use noex_client::AuditFilter;
    /// let failures = client
    ///     .audit()
    ///     .query(AuditFilter::all().operation("store.insert").result("error").limit(50))
    ///     .await?;
    /// for entry in &failures {
    ///     println!("{} {:?}: {:?}", entry.timestamp, entry.user_id, entry.error);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn query(&self, filter: AuditFilter) -> Result<Vec<AuditEntry>> {
        let answer: Entries = self
            .client
            .call(ops::audit::query(&filter), RequestOptions::default())
            .await?;
        Ok(answer.entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn entries_decode_from_the_recorded_shapes() {
        let answer: Entries = serde_json::from_value(json!({"entries": [
            {"timestamp": 1, "userId": "admin-1", "sessionId": "conn-1",
             "operation": "procedures.unregister", "resource": "calc-total", "result": "error",
             "error": "Procedure \"calc-total\" not found", "remoteAddress": "127.0.0.1"},
            {"timestamp": 2, "userId": null, "sessionId": "conn-2", "operation": "identity.login",
             "resource": "*", "result": "success", "details": {"username": "alice"},
             "remoteAddress": "::1"}
        ]}))
        .unwrap();
        assert_eq!(
            answer.entries[0].error.as_deref(),
            Some("Procedure \"calc-total\" not found")
        );
        assert!(answer.entries[1].user_id.is_none());
        assert_eq!(
            answer.entries[1].details.as_ref().unwrap()["username"],
            "alice"
        );
    }

    #[test]
    fn fields_the_server_always_sends_are_required() {
        let entry = json!({
            "timestamp": 1, "userId": null, "sessionId": "conn-1", "operation": "server.stats",
            "resource": "*", "result": "success", "remoteAddress": "127.0.0.1"
        });
        assert!(serde_json::from_value::<AuditEntry>(entry.clone()).is_ok());
        for field in ["userId", "sessionId", "resource", "remoteAddress"] {
            let mut partial = entry.clone();
            partial.as_object_mut().unwrap().remove(field);
            assert!(
                serde_json::from_value::<AuditEntry>(partial).is_err(),
                "{field}"
            );
        }
    }
}
