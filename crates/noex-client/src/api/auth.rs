//! Token authentication (`auth.*`).

use crate::client::Client;
use crate::error::Result;
use noex_proto::{ops, RequestOptions, Secret};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// The auth domain: `client.auth()`.
#[derive(Debug, Clone)]
pub struct AuthApi {
    client: Client,
}

/// The session a login established (`auth.login`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct AuthSession {
    /// The user.
    pub user_id: String,
    /// Their roles.
    pub roles: Vec<String>,
    /// When the session ends, ms since the epoch; `None` = never.
    #[serde(deserialize_with = "nullable")]
    pub expires_at: Option<i64>,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Who the connection is logged in as (`auth.whoami`, `identity.whoami`). The server sends
/// only `authenticated` when not logged in, so the other fields are `None` then.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct WhoAmI {
    /// Whether logged in.
    pub authenticated: bool,
    /// The user, when logged in.
    #[serde(default)]
    pub user_id: Option<String>,
    /// Their roles, when logged in.
    #[serde(default)]
    pub roles: Option<Vec<String>>,
    /// When the session ends, ms since the epoch; `None` when not logged in or when it
    /// never ends.
    #[serde(default)]
    pub expires_at: Option<i64>,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The answer of `auth.logout` and `identity.logout`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct LoggedOut {
    /// `true`.
    pub logged_out: bool,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A field the server always sends, possibly `null`: missing, it fails the decoding (a
/// plain `Option` field would read a missing one as `None`).
pub(crate) fn nullable<'de, D, T>(d: D) -> std::result::Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d)
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
    pub async fn logout(&self) -> Result<LoggedOut> {
        self.client
            .call(ops::auth::logout(), RequestOptions::default())
            .await
    }

    /// Who the connection is logged in as.
    pub async fn whoami(&self) -> Result<WhoAmI> {
        self.client
            .call(ops::auth::whoami(), RequestOptions::default())
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_decode_from_the_recorded_shapes() {
        let session: AuthSession = serde_json::from_value(json!({
            "userId": "reader-1", "roles": ["reader"], "expiresAt": null
        }))
        .unwrap();
        assert_eq!(
            (session.user_id.as_str(), session.expires_at),
            ("reader-1", None)
        );
        let out: LoggedOut = serde_json::from_value(json!({"loggedOut": true})).unwrap();
        assert!(out.logged_out);
        let anonymous: WhoAmI = serde_json::from_value(json!({"authenticated": false})).unwrap();
        assert!(!anonymous.authenticated && anonymous.roles.is_none());
        let who: WhoAmI = serde_json::from_value(json!({
            "authenticated": true, "userId": "u", "roles": ["superadmin"], "expiresAt": 5
        }))
        .unwrap();
        assert_eq!(who.expires_at, Some(5));
    }

    #[test]
    fn fields_the_server_always_sends_are_required() {
        // `expiresAt` is always there (null when the session never ends).
        let missing = json!({"userId": "u", "roles": []});
        assert!(serde_json::from_value::<AuthSession>(missing).is_err());
        assert!(serde_json::from_value::<AuthSession>(json!({"userId": "u"})).is_err());
        assert!(serde_json::from_value::<WhoAmI>(json!({})).is_err());
        assert!(serde_json::from_value::<LoggedOut>(json!({})).is_err());
    }
}
