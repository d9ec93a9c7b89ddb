//! Token authentication (`auth.*`).

use crate::client::Client;
use crate::error::Result;
use noex_proto::{ops, RequestOptions, Secret};
use serde::Deserialize;

/// The auth domain: `client.auth()`.
#[derive(Debug, Clone)]
pub struct AuthApi {
    client: Client,
}

/// The session a login established.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct AuthSession {
    /// The user.
    pub user_id: String,
    /// Their roles.
    #[serde(default)]
    pub roles: Vec<String>,
    /// When the session ends, ms since the epoch; `None` = never.
    #[serde(default)]
    pub expires_at: Option<i64>,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Who the connection is logged in as.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct WhoAmI {
    /// Whether logged in.
    pub authenticated: bool,
    /// The user, when logged in.
    #[serde(default)]
    pub user_id: Option<String>,
    /// Their roles.
    #[serde(default)]
    pub roles: Vec<String>,
    /// When the session ends.
    #[serde(default)]
    pub expires_at: Option<i64>,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Client {
    /// Token authentication.
    pub fn auth(&self) -> AuthApi {
        AuthApi::new(self.clone())
    }
}

impl AuthApi {
    pub(crate) fn new(client: Client) -> AuthApi {
        AuthApi { client }
    }

    /// Logs in with a token. The client remembers it and presents it again after a
    /// reconnect.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn login(&self, token: impl Into<String>) -> Result<AuthSession> {
        let token = Secret::new(token);
        self.client
            .call(ops::auth::login(&token), RequestOptions::default())
            .await
    }

    /// Logs out (and forgets the remembered token).
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn logout(&self) -> Result<()> {
        let _: serde_json::Value = self
            .client
            .call(ops::auth::logout(), RequestOptions::default())
            .await?;
        Ok(())
    }

    /// Who the connection is logged in as.
    pub async fn whoami(&self) -> Result<WhoAmI> {
        self.client
            .call(ops::auth::whoami(), RequestOptions::default())
            .await
    }
}
