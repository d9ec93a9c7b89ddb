//! Built-in identity (`identity.*`): sessions, users, roles, ACL, ownership.
//!
//! Every change here is a write and is never re-sent automatically; see
//! [`crate::Error::may_have_been_applied`].

use super::auth::{nullable, LoggedOut, WhoAmI};
use super::{checked, to_object};
use crate::client::Client;
use crate::error::Result;
use futures::future::BoxFuture;
use futures::FutureExt;
use noex_proto::ops::identity::{self as op, Grant};
use noex_proto::ops::Operation;
use noex_proto::{RequestOptions, Secret};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::future::IntoFuture;

/// The identity domain: `client.identity()`.
#[derive(Debug, Clone)]
pub struct Identity {
    client: Client,
}

/// A session from `identity.login`, `loginWithSecret` or `refreshSession`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct IdentitySession {
    /// The session token (never shown by `Debug`). The client presents it again after a
    /// reconnect on its own.
    #[serde(deserialize_with = "secret")]
    pub token: Secret,
    /// When it ends, ms since the epoch.
    pub expires_at: i64,
    /// The user.
    pub user: SessionUser,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn secret<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Secret, D::Error> {
    String::deserialize(d).map(Secret::new)
}

/// The user of a session (`identity.login`, `myAccess`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct SessionUser {
    /// The user's id (`__superadmin__` for the admin secret).
    pub id: String,
    /// The user name.
    pub username: String,
    /// The display name, when set (never in `myAccess`).
    #[serde(default)]
    pub display_name: Option<String>,
    /// The names of the user's roles.
    pub roles: Vec<String>,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A user as the identity operations return it (never with a password hash).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct User {
    /// The user's id; pass it to the `user_id` parameters.
    pub id: String,
    /// The unique user name.
    pub username: String,
    /// The display name, when set.
    #[serde(default)]
    pub display_name: Option<String>,
    /// The e-mail, when set.
    #[serde(default)]
    pub email: Option<String>,
    /// Whether the user may log in.
    pub enabled: bool,
    /// The application's own data about the user, when set.
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
    /// `_createdAt`, ms since the epoch.
    #[serde(rename = "_createdAt")]
    pub created_at: i64,
    /// `_updatedAt`, ms since the epoch.
    #[serde(rename = "_updatedAt")]
    pub updated_at: i64,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One page of `identity.listUsers`: the users plus the total. Iterating it iterates the
/// users.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct UserList {
    /// The users of this page.
    pub users: Vec<User>,
    /// How many users there are in all.
    pub total: u64,
    /// This page's number, from 1.
    pub page: u64,
    /// The page size.
    pub page_size: u64,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl IntoIterator for UserList {
    type Item = User;
    type IntoIter = std::vec::IntoIter<User>;
    fn into_iter(self) -> Self::IntoIter {
        self.users.into_iter()
    }
}

impl<'a> IntoIterator for &'a UserList {
    type Item = &'a User;
    type IntoIter = std::slice::Iter<'a, User>;
    fn into_iter(self) -> Self::IntoIter {
        self.users.iter()
    }
}

/// A role.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Role {
    /// The role's id; pass it to `update_role` and `delete_role`.
    pub id: String,
    /// The role's name; pass it to `assign_role` and `remove_role`.
    pub name: String,
    /// What it is for.
    #[serde(default)]
    pub description: Option<String>,
    /// Whether it is one of the built-in roles (`superadmin`, `admin`, `writer`, `reader`).
    pub system: bool,
    /// What it allows.
    pub permissions: Vec<Permission>,
    /// `_createdAt`, ms since the epoch.
    #[serde(rename = "_createdAt")]
    pub created_at: i64,
    /// `_updatedAt`, ms since the epoch.
    #[serde(rename = "_updatedAt")]
    pub updated_at: i64,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One permission of a role.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Permission {
    /// The operations allowed (`store.get`, …); `["*"]` for everything. The server writes
    /// a single entry as a plain string; both forms land here.
    #[serde(deserialize_with = "one_or_many")]
    pub allow: Vec<String>,
    /// Only on these buckets, when given.
    #[serde(default)]
    pub buckets: Option<Vec<String>>,
    /// Only on these topics, when given.
    #[serde(default)]
    pub topics: Option<Vec<String>>,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    })
}

/// One entry of a resource's access list (`identity.getAcl`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct AclEntry {
    /// `user` or `role`.
    pub subject_type: String,
    /// The user's or role's id.
    pub subject_id: String,
    /// Its name (the id when the user or role no longer exists).
    pub subject_name: String,
    /// The operations granted (`read`, `write`, `admin`); none for an owner without an
    /// entry of its own.
    pub operations: Vec<String>,
    /// Whether the subject owns the resource.
    pub is_owner: bool,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// What the logged-in user may do (`identity.myAccess`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Access {
    /// Who.
    pub user: SessionUser,
    /// The resources they have access to.
    pub resources: Vec<ResourceAccess>,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Access to one resource.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ResourceAccess {
    /// e.g. `bucket`.
    pub resource_type: String,
    /// e.g. the bucket's name.
    pub resource_name: String,
    /// The operations allowed (`read`, `write`, `admin`).
    pub operations: Vec<String>,
    /// Whether the user owns it.
    pub is_owner: bool,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A resource's owner (`identity.getOwner`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Owner {
    /// The owner's user id.
    pub user_id: String,
    /// The owner's user name (the id when the user no longer exists).
    pub username: String,
    /// e.g. `bucket`.
    pub resource_type: String,
    /// e.g. the bucket's name.
    pub resource_name: String,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Declares the answer of an identity change that confirms it with one flag (the server
/// answers an error when it did not do it).
macro_rules! confirmation {
    ($(#[$doc:meta])* $name:ident { $field:ident: $wire:literal }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Deserialize)]
        #[non_exhaustive]
        pub struct $name {
            #[doc = concat!("`", $wire, "`: `true`.")]
            #[serde(rename = $wire)]
            pub $field: bool,
            /// Fields this version does not know.
            #[serde(flatten)]
            pub extra: Map<String, Value>,
        }
    };
}

confirmation! {
    /// The answer of `identity.deleteUser`.
    UserDeleted { deleted: "deleted" }
}
confirmation! {
    /// The answer of `identity.changePassword`.
    PasswordChanged { changed: "changed" }
}
confirmation! {
    /// The answer of `identity.resetPassword`.
    PasswordReset { reset: "reset" }
}
confirmation! {
    /// The answer of `identity.deleteRole`.
    RoleDeleted { deleted: "deleted" }
}
confirmation! {
    /// The answer of `identity.assignRole`.
    RoleAssigned { assigned: "assigned" }
}
confirmation! {
    /// The answer of `identity.removeRole`.
    RoleRemoved { removed: "removed" }
}
confirmation! {
    /// The answer of `identity.grant`.
    AccessGranted { granted: "granted" }
}
confirmation! {
    /// The answer of `identity.revoke`.
    AccessRevoked { revoked: "revoked" }
}
confirmation! {
    /// The answer of `identity.transferOwner`.
    OwnerTransferred { transferred: "transferred" }
}

#[derive(Deserialize)]
struct Roles {
    roles: Vec<Role>,
}

#[derive(Deserialize)]
struct Entries {
    entries: Vec<AclEntry>,
}

#[derive(Deserialize)]
struct OwnerAnswer {
    #[serde(deserialize_with = "nullable")]
    owner: Option<Owner>,
}

/// A new user for `createUser`.
///
/// ```
/// use noex_client::NewUser;
/// use serde_json::json;
/// let user = NewUser::new("alice", "alice-pass-123")
///     .display_name("Alice")
///     .metadata([("team", json!("ops")), ("level", json!(3))]);
/// assert_eq!(user.metadata.unwrap()["level"], 3);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct NewUser {
    /// Unique user name (3 to 64 characters).
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
    /// Whether the user may log in (the server's default: yes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// The application's own data about the user ([`User::metadata`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

impl NewUser {
    /// A user with a name and a password.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> NewUser {
        NewUser {
            username: username.into(),
            password: Secret::new(password),
            display_name: None,
            email: None,
            enabled: None,
            metadata: None,
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
    /// Creates the user enabled (`true`) or disabled (`false`).
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = Some(enabled);
        self
    }
    /// Sets the metadata: its fields, as pairs (`[("team", "ops")]`) or a
    /// `serde_json::Map`.
    pub fn metadata<K, V>(mut self, metadata: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<Value>,
    {
        let fields = metadata.into_iter().map(|(k, v)| (k.into(), v.into()));
        self.metadata = Some(fields.collect());
        self
    }
}

/// A page of users about to be read ([`Identity::list_users`]): choose the page and its
/// size, then `.await` it.
///
/// ```no_run
/// # async fn demo(client: noex_client::Client) -> noex_client::Result<()> {
/// let first = client.identity().list_users().await?;
/// let third = client.identity().list_users().page(3).page_size(20).await?;
/// println!("{} users in all; page 3 has {}", first.total, third.users.len());
/// # Ok(())
/// # }
/// ```
#[must_use = "the users are read when it is awaited"]
#[derive(Debug)]
pub struct ListUsersBuilder {
    identity: Identity,
    page: Option<u64>,
    page_size: Option<u64>,
}

impl ListUsersBuilder {
    /// The page, from 1 (the server's default: 1).
    pub fn page(mut self, page: u64) -> Self {
        self.page = Some(page);
        self
    }

    /// Users per page (the server's default: 50; it caps it).
    pub fn page_size(mut self, page_size: u64) -> Self {
        self.page_size = Some(page_size);
        self
    }
}

impl IntoFuture for ListUsersBuilder {
    type Output = Result<UserList>;
    type IntoFuture = BoxFuture<'static, Result<UserList>>;

    fn into_future(self) -> Self::IntoFuture {
        async move {
            let op = op::list_users(self.page, self.page_size);
            self.identity.call(op).await
        }
        .boxed()
    }
}

/// A new role for `createRole`.
///
/// ```
/// use noex_client::NewRole;
/// use serde_json::json;
/// let bare = NewRole::new("auditor");
/// let reader = NewRole::new("doc-reader")
///     .description("Reads docs")
///     .permissions(json!([{"allow": ["store.get", "store.all"], "buckets": ["docs"]}]));
/// # let _ = (bare, reader);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct NewRole {
    /// Unique role name.
    pub name: String,
    /// What it is for.
    pub description: Option<String>,
    /// What it allows: a JSON array of `{allow, buckets?, topics?}`; `None` sends none
    /// (the server starts the role with no permissions).
    pub permissions: Option<Value>,
}

impl NewRole {
    /// A role with a name and no permissions.
    pub fn new(name: impl Into<String>) -> NewRole {
        NewRole {
            name: name.into(),
            description: None,
            permissions: None,
        }
    }
    /// Sets the description.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }
    /// Sets the permissions.
    pub fn permissions(mut self, permissions: impl Into<Value>) -> Self {
        self.permissions = Some(permissions.into());
        self
    }
}

impl Client {
    /// Built-in identity: sessions, users, roles, ACL, ownership.
    pub fn identity(&self) -> Identity {
        Identity::new(self.clone())
    }
}

impl Identity {
    pub(crate) fn new(client: Client) -> Identity {
        Identity { client }
    }

    async fn call<T: DeserializeOwned>(&self, op: Operation) -> Result<T> {
        self.client
            .call(checked(op)?, RequestOptions::default())
            .await
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
    pub async fn logout(&self) -> Result<LoggedOut> {
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
    pub async fn create_user(&self, user: NewUser) -> Result<User> {
        let mut extra = to_object(&user)?;
        extra.remove("username");
        self.call(op::create_user(&user.username, &user.password, &extra))
            .await
    }
    /// One user.
    pub async fn get_user(&self, user_id: &str) -> Result<User> {
        self.call(op::get_user(user_id)).await
    }
    /// Changes a user's fields (e.g. `{"displayName": "…"}`); returns the user.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn update_user(&self, user_id: &str, fields: impl Serialize) -> Result<User> {
        self.call(op::update_user(user_id, &to_object(fields)?))
            .await
    }
    /// Deletes a user.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn delete_user(&self, user_id: &str) -> Result<UserDeleted> {
        self.call(op::delete_user(user_id)).await
    }
    /// A page of users: the first 50 by default; `.page(n)` (from 1) and `.page_size(n)`
    /// before `.await` choose another (see [`ListUsersBuilder`]).
    pub fn list_users(&self) -> ListUsersBuilder {
        ListUsersBuilder {
            identity: self.clone(),
            page: None,
            page_size: None,
        }
    }
    /// Enables a user.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn enable_user(&self, user_id: &str) -> Result<User> {
        self.call(op::enable_user(user_id)).await
    }
    /// Disables a user.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn disable_user(&self, user_id: &str) -> Result<User> {
        self.call(op::disable_user(user_id)).await
    }
    /// Changes a password, given the current one.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn change_password(
        &self,
        user_id: &str,
        current: &str,
        new: &str,
    ) -> Result<PasswordChanged> {
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
    pub async fn reset_password(&self, user_id: &str, new: &str) -> Result<PasswordReset> {
        self.call(op::reset_password(user_id, &Secret::new(new)))
            .await
    }
    /// Creates a role; see [`NewRole`] (permissions are optional).
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn create_role(&self, role: NewRole) -> Result<Role> {
        self.call(op::create_role(
            &role.name,
            role.description.as_deref(),
            role.permissions.as_ref(),
        ))
        .await
    }
    /// Changes a role's fields.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn update_role(&self, role_id: &str, fields: impl Serialize) -> Result<Role> {
        self.call(op::update_role(role_id, &to_object(fields)?))
            .await
    }
    /// Deletes a role.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn delete_role(&self, role_id: &str) -> Result<RoleDeleted> {
        self.call(op::delete_role(role_id)).await
    }
    /// Every role.
    pub async fn list_roles(&self) -> Result<Vec<Role>> {
        let list: Roles = self.call(op::list_roles()).await?;
        Ok(list.roles)
    }
    /// Gives a user a role.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn assign_role(&self, user_id: &str, role_name: &str) -> Result<RoleAssigned> {
        self.call(op::assign_role(user_id, role_name)).await
    }
    /// Takes a role from a user.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn remove_role(&self, user_id: &str, role_name: &str) -> Result<RoleRemoved> {
        self.call(op::remove_role(user_id, role_name)).await
    }
    /// A user's roles.
    pub async fn get_user_roles(&self, user_id: &str) -> Result<Vec<Role>> {
        let list: Roles = self.call(op::get_user_roles(user_id)).await?;
        Ok(list.roles)
    }
    /// Grants operations on a resource to a user or role.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn grant(&self, grant: Grant) -> Result<AccessGranted> {
        self.call(op::grant(&grant)).await
    }
    /// Revokes operations on a resource from a user or role.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn revoke(&self, grant: Grant) -> Result<AccessRevoked> {
        self.call(op::revoke(&grant)).await
    }
    /// A resource's access list.
    pub async fn get_acl(&self, resource_type: &str, resource_name: &str) -> Result<Vec<AclEntry>> {
        let list: Entries = self.call(op::get_acl(resource_type, resource_name)).await?;
        Ok(list.entries)
    }
    /// What the logged-in user may do.
    pub async fn my_access(&self) -> Result<Access> {
        self.call(op::my_access()).await
    }
    /// A resource's owner, `None` when it has none.
    pub async fn get_owner(
        &self,
        resource_type: &str,
        resource_name: &str,
    ) -> Result<Option<Owner>> {
        let answer: OwnerAnswer = self
            .call(op::get_owner(resource_type, resource_name))
            .await?;
        Ok(answer.owner)
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
    ) -> Result<OwnerTransferred> {
        self.call(op::transfer_owner(
            resource_type,
            resource_name,
            new_owner_id,
        ))
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_decode_from_the_recorded_shapes() {
        let session: IdentitySession = serde_json::from_value(json!({
            "token": "t", "expiresAt": 5,
            "user": {"id": "u", "username": "alice", "displayName": "A", "roles": ["r"]}
        }))
        .unwrap();
        assert_eq!(session.user.roles, ["r"]);
        assert!(!format!("{session:?}").contains("\"t\""));
        let user: User = serde_json::from_value(json!({
            "username": "alice", "enabled": true, "displayName": "Alice",
            "email": "a@x", "id": "u1", "_createdAt": 1, "_updatedAt": 2, "later": true
        }))
        .unwrap();
        assert_eq!((user.id.as_str(), user.created_at), ("u1", 1));
        assert_eq!(user.extra["later"], true);
        let role: Role = serde_json::from_value(json!({
            "name": "superadmin", "description": "all", "system": true,
            "permissions": [{"allow": "*"}, {"allow": ["store.get"], "buckets": ["docs"]}],
            "id": "r1", "_createdAt": 1, "_updatedAt": 1
        }))
        .unwrap();
        assert_eq!(role.permissions[0].allow, ["*"]);
        assert_eq!(
            role.permissions[1].buckets.as_deref(),
            Some(&["docs".to_owned()][..])
        );
        let acl: Entries = serde_json::from_value(json!({"entries": [{
            "subjectType": "user", "subjectId": "u", "subjectName": "alice",
            "operations": ["read"], "isOwner": false
        }]}))
        .unwrap();
        assert_eq!(acl.entries[0].operations, ["read"]);
        let owner: OwnerAnswer = serde_json::from_value(json!({"owner": {
            "userId": "u", "username": "alice", "resourceType": "bucket", "resourceName": "docs"
        }}))
        .unwrap();
        assert_eq!(owner.owner.unwrap().resource_name, "docs");
        let none: OwnerAnswer = serde_json::from_value(json!({"owner": null})).unwrap();
        assert!(none.owner.is_none());
        let access: Access = serde_json::from_value(json!({
            "user": {"id": "__superadmin__", "username": "__superadmin__", "roles": ["superadmin"]},
            "resources": [{"resourceType": "bucket", "resourceName": "docs",
                           "operations": ["admin", "read", "write"], "isOwner": true}]
        }))
        .unwrap();
        assert!(access.resources[0].is_owner && access.user.display_name.is_none());
        let list: UserList = serde_json::from_value(json!({
            "users": [], "total": 1, "page": 2, "pageSize": 50
        }))
        .unwrap();
        assert_eq!((list.total, list.page, list.page_size), (1, 2, 50));
        let metadata: User = serde_json::from_value(json!({
            "username": "bob", "enabled": false, "metadata": {"team": "ops"},
            "id": "u2", "_createdAt": 1, "_updatedAt": 2
        }))
        .unwrap();
        assert_eq!(metadata.metadata.unwrap()["team"], "ops");
        assert!(!metadata.enabled);
    }

    #[test]
    fn confirmations_decode_and_require_their_flag() {
        let deleted: UserDeleted = serde_json::from_value(json!({"deleted": true})).unwrap();
        assert!(deleted.deleted);
        let granted: AccessGranted = serde_json::from_value(json!({"granted": true})).unwrap();
        assert!(granted.granted);
        let moved: OwnerTransferred =
            serde_json::from_value(json!({"transferred": true, "later": 1})).unwrap();
        assert_eq!(moved.extra["later"], 1);
        assert!(serde_json::from_value::<PasswordChanged>(json!({"reset": true})).is_err());
        assert!(serde_json::from_value::<RoleAssigned>(json!({})).is_err());
    }

    /// A field the server always sends fails the decoding when it is missing, instead of
    /// reading as a made-up `true`, `false`, `0` or `""`.
    #[test]
    fn fields_the_server_always_sends_are_required() {
        let user = json!({
            "username": "alice", "enabled": true, "id": "u1", "_createdAt": 1, "_updatedAt": 2
        });
        assert!(serde_json::from_value::<User>(user.clone()).is_ok());
        for field in ["enabled", "_createdAt", "_updatedAt", "username", "id"] {
            let mut partial = user.clone();
            partial.as_object_mut().unwrap().remove(field);
            assert!(serde_json::from_value::<User>(partial).is_err(), "{field}");
        }
        let role = json!({
            "name": "r", "system": false, "permissions": [], "id": "r1",
            "_createdAt": 1, "_updatedAt": 1
        });
        assert!(serde_json::from_value::<Role>(role.clone()).is_ok());
        for field in ["system", "permissions", "_createdAt"] {
            let mut partial = role.clone();
            partial.as_object_mut().unwrap().remove(field);
            assert!(serde_json::from_value::<Role>(partial).is_err(), "{field}");
        }
        let session_user = json!({"id": "u", "username": "alice", "roles": []});
        assert!(serde_json::from_value::<SessionUser>(session_user).is_ok());
        for partial in [
            json!({"username": "alice", "roles": []}),
            json!({"id": "u", "roles": []}),
            json!({"id": "u", "username": "alice"}),
        ] {
            assert!(serde_json::from_value::<SessionUser>(partial).is_err());
        }
        assert!(serde_json::from_value::<UserList>(json!({"users": []})).is_err());
        assert!(serde_json::from_value::<OwnerAnswer>(json!({})).is_err());
        let session = json!({"token": "t", "user": {"id": "u", "username": "a", "roles": []}});
        assert!(serde_json::from_value::<IdentitySession>(session).is_err());
        let acl =
            json!({"subjectType": "user", "subjectId": "u", "operations": [], "isOwner": true});
        assert!(serde_json::from_value::<AclEntry>(acl).is_err());
    }
}
