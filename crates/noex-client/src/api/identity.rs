//! Built-in identity (`identity.*`): sessions, users, roles, ACL, ownership.
//!
//! Every change here is a write and is never re-sent automatically; see
//! [`crate::Error::may_have_been_applied`].

use super::auth::WhoAmI;
use super::{to_json, to_object};
use crate::client::Client;
use crate::error::Result;
use noex_proto::ops::identity::{self as op, Grant};
use noex_proto::{Operation, RequestOptions, Secret};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The identity domain: `client.identity()`.
#[derive(Debug, Clone)]
pub struct Identity {
    client: Client,
}

/// A session from `identity.login`, `loginWithSecret` or `refreshSession`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentitySession {
    /// The session token (never shown by `Debug`). The client presents it again after a
    /// reconnect on its own.
    #[serde(deserialize_with = "secret")]
    pub token: Secret,
    /// When it ends, ms since the epoch.
    #[serde(default)]
    pub expires_at: Option<i64>,
    /// The user: `{id, username, roles, …}`.
    #[serde(default)]
    pub user: Value,
}

fn secret<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Secret, D::Error> {
    String::deserialize(d).map(Secret::new)
}

/// A new user for `createUser`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewUser {
    /// Unique user name.
    pub username: String,
    /// At least 8 characters.
    #[serde(skip)]
    pub password: Secret,
    /// Display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// E-mail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

impl NewUser {
    /// A user with a name and a password.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> NewUser {
        NewUser {
            username: username.into(),
            password: Secret::new(password),
            display_name: None,
            email: None,
        }
    }
    /// Sets the display name.
    pub fn display_name(mut self, name: impl Into<String>) -> Self {
        self.display_name = Some(name.into());
        self
    }
    /// Sets the e-mail.
    pub fn email(mut self, email: impl Into<String>) -> Self {
        self.email = Some(email.into());
        self
    }
}

impl Identity {
    pub(crate) fn new(client: Client) -> Identity {
        Identity { client }
    }

    async fn call<T: DeserializeOwned>(&self, op: Operation) -> Result<T> {
        self.client.call(op, RequestOptions::default()).await
    }

    /// Logs in with a user name and password.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn login(&self, username: &str, password: &str) -> Result<IdentitySession> {
        self.call(op::login(username, &Secret::new(password))).await
    }
    /// Logs in as the superadmin with the server's admin secret.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn login_with_secret(&self, secret: &str) -> Result<IdentitySession> {
        self.call(op::login_with_secret(&Secret::new(secret))).await
    }
    /// Logs out.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn logout(&self) -> Result<Value> {
        self.call(op::logout()).await
    }
    /// Who the connection is logged in as.
    pub async fn whoami(&self) -> Result<WhoAmI> {
        self.call(op::whoami()).await
    }
    /// A fresh session token (the old one stops working).
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn refresh_session(&self) -> Result<IdentitySession> {
        self.call(op::refresh_session()).await
    }
    /// Creates a user; returns it.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn create_user(&self, user: &NewUser) -> Result<Value> {
        let mut extra = to_object(user)?;
        extra.remove("username");
        self.call(op::create_user(&user.username, &user.password, &extra))
            .await
    }
    /// One user.
    pub async fn get_user(&self, user_id: &str) -> Result<Value> {
        self.call(op::get_user(user_id)).await
    }
    /// Changes a user's fields (e.g. `{"displayName": "…"}`); returns the user.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn update_user(
        &self,
        user_id: &str,
        fields: &(impl Serialize + ?Sized),
    ) -> Result<Value> {
        self.call(op::update_user(user_id, &to_object(fields)?))
            .await
    }
    /// Deletes a user.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn delete_user(&self, user_id: &str) -> Result<Value> {
        self.call(op::delete_user(user_id)).await
    }
    /// A page of users: `{users, total, page, pageSize}`.
    pub async fn list_users(&self, page: Option<u64>, page_size: Option<u64>) -> Result<Value> {
        self.call(op::list_users(page, page_size)).await
    }
    /// Enables a user.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn enable_user(&self, user_id: &str) -> Result<Value> {
        self.call(op::enable_user(user_id)).await
    }
    /// Disables a user.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn disable_user(&self, user_id: &str) -> Result<Value> {
        self.call(op::disable_user(user_id)).await
    }
    /// Changes a password, given the current one.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn change_password(&self, user_id: &str, current: &str, new: &str) -> Result<Value> {
        self.call(op::change_password(
            user_id,
            &Secret::new(current),
            &Secret::new(new),
        ))
        .await
    }
    /// Sets a new password (admin).
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn reset_password(&self, user_id: &str, new: &str) -> Result<Value> {
        self.call(op::reset_password(user_id, &Secret::new(new)))
            .await
    }
    /// Creates a role with permissions (e.g. `[{"allow": ["store.get"], "buckets": ["docs"]}]`).
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn create_role(
        &self,
        name: &str,
        description: Option<&str>,
        permissions: &(impl Serialize + ?Sized),
    ) -> Result<Value> {
        self.call(op::create_role(name, description, &to_json(permissions)?))
            .await
    }
    /// Changes a role's fields.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn update_role(
        &self,
        role_id: &str,
        fields: &(impl Serialize + ?Sized),
    ) -> Result<Value> {
        self.call(op::update_role(role_id, &to_object(fields)?))
            .await
    }
    /// Deletes a role.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn delete_role(&self, role_id: &str) -> Result<Value> {
        self.call(op::delete_role(role_id)).await
    }
    /// Every role: `{roles}`.
    pub async fn list_roles(&self) -> Result<Value> {
        self.call(op::list_roles()).await
    }
    /// Gives a user a role.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn assign_role(&self, user_id: &str, role_name: &str) -> Result<Value> {
        self.call(op::assign_role(user_id, role_name)).await
    }
    /// Takes a role from a user.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn remove_role(&self, user_id: &str, role_name: &str) -> Result<Value> {
        self.call(op::remove_role(user_id, role_name)).await
    }
    /// A user's roles: `{roles}`.
    pub async fn get_user_roles(&self, user_id: &str) -> Result<Value> {
        self.call(op::get_user_roles(user_id)).await
    }
    /// Grants operations on a resource to a user or role.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn grant(&self, grant: &Grant) -> Result<Value> {
        self.call(op::grant(grant)).await
    }
    /// Revokes operations on a resource from a user or role.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn revoke(&self, grant: &Grant) -> Result<Value> {
        self.call(op::revoke(grant)).await
    }
    /// A resource's access list: `{entries}`.
    pub async fn get_acl(&self, resource_type: &str, resource_name: &str) -> Result<Value> {
        self.call(op::get_acl(resource_type, resource_name)).await
    }
    /// What the logged-in user may do: `{user, resources}`.
    pub async fn my_access(&self) -> Result<Value> {
        self.call(op::my_access()).await
    }
    /// A resource's owner: `{owner}`.
    pub async fn get_owner(&self, resource_type: &str, resource_name: &str) -> Result<Value> {
        self.call(op::get_owner(resource_type, resource_name)).await
    }
    /// Hands a resource to another user.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn transfer_owner(
        &self,
        resource_type: &str,
        resource_name: &str,
        new_owner_id: &str,
    ) -> Result<Value> {
        self.call(op::transfer_owner(
            resource_type,
            resource_name,
            new_owner_id,
        ))
        .await
    }
}
