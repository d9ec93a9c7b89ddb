//! Built-in identity (`identity.*`): sessions, users, roles, ACL, ownership.
//!
//! Every change here is a write and is never re-sent automatically; see
//! [`crate::Error::may_have_been_applied`].

use super::auth::WhoAmI;
use super::{checked, to_object};
use crate::client::Client;
use crate::error::Result;
use noex_proto::ops::identity::{self as op, Grant};
use noex_proto::ops::Operation;
use noex_proto::{RequestOptions, Secret};
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

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
    #[serde(default)]
    pub expires_at: Option<i64>,
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
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
#[non_exhaustive]
pub struct SessionUser {
    /// The user's id (`__superadmin__` for the admin secret).
    pub id: String,
    /// The user name.
    pub username: String,
    /// The display name, when set.
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
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The application's own data about the user, when set.
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
    /// `_createdAt`, ms since the epoch.
    #[serde(rename = "_createdAt", default)]
    pub created_at: i64,
    /// `_updatedAt`, ms since the epoch.
    #[serde(rename = "_updatedAt", default)]
    pub updated_at: i64,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn yes() -> bool {
    true
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
    #[serde(default)]
    pub total: u64,
    /// This page's number, from 1.
    #[serde(default)]
    pub page: u64,
    /// The page size.
    #[serde(default)]
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
    #[serde(default)]
    pub system: bool,
    /// What it allows.
    #[serde(default)]
    pub permissions: Vec<Permission>,
    /// `_createdAt`, ms since the epoch.
    #[serde(rename = "_createdAt", default)]
    pub created_at: i64,
    /// `_updatedAt`, ms since the epoch.
    #[serde(rename = "_updatedAt", default)]
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
    /// Its name, when the server resolved it.
    #[serde(default)]
    pub subject_name: Option<String>,
    /// The operations granted (`read`, `write`, `admin`).
    #[serde(default)]
    pub operations: Vec<String>,
    /// Whether the subject owns the resource.
    #[serde(default)]
    pub is_owner: bool,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// What the logged-in user may do (`identity.myAccess`).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
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
    #[serde(default)]
    pub operations: Vec<String>,
    /// Whether the user owns it.
    #[serde(default)]
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
    /// The owner's user name, when the server resolved it.
    #[serde(default)]
    pub username: Option<String>,
    /// e.g. `bucket`.
    #[serde(default)]
    pub resource_type: String,
    /// e.g. the bucket's name.
    #[serde(default)]
    pub resource_name: String,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
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
    #[serde(default)]
    owner: Option<Owner>,
}

/// A new user for `createUser`.
///
/// ```
/// use noex_client::NewUser;
/// use serde_json::json;
/// let user = NewUser::new("alice", "alice-pass-123")
///     .display_name("Alice")
///     .metadata(json!({"team": "ops"}));
/// assert_eq!(user.username, "alice");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
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
    /// Whether the user may log in (the server's default: yes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// The application's own data about the user: a JSON object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
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
    /// Sets the metadata, a JSON object (the server ignores anything else).
    pub fn metadata(mut self, metadata: impl Into<Value>) -> Self {
        self.metadata = Some(metadata.into());
        self
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

    async fn ack(&self, op: Operation) -> Result<()> {
        let _: IgnoredAny = self.call(op).await?;
        Ok(())
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
    pub async fn logout(&self) -> Result<()> {
        self.ack(op::logout()).await
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
    pub async fn delete_user(&self, user_id: &str) -> Result<()> {
        self.ack(op::delete_user(user_id)).await
    }
    /// A page of users (pages count from 1; the server's default page size is 50).
    pub async fn list_users(&self, page: Option<u64>, page_size: Option<u64>) -> Result<UserList> {
        self.call(op::list_users(page, page_size)).await
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
    pub async fn change_password(&self, user_id: &str, current: &str, new: &str) -> Result<()> {
        self.ack(op::change_password(
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
    pub async fn reset_password(&self, user_id: &str, new: &str) -> Result<()> {
        self.ack(op::reset_password(user_id, &Secret::new(new)))
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
    pub async fn delete_role(&self, role_id: &str) -> Result<()> {
        self.ack(op::delete_role(role_id)).await
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
    pub async fn assign_role(&self, user_id: &str, role_name: &str) -> Result<()> {
        self.ack(op::assign_role(user_id, role_name)).await
    }
    /// Takes a role from a user.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn remove_role(&self, user_id: &str, role_name: &str) -> Result<()> {
        self.ack(op::remove_role(user_id, role_name)).await
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
    pub async fn grant(&self, grant: Grant) -> Result<()> {
        self.ack(op::grant(&grant)).await
    }
    /// Revokes operations on a resource from a user or role.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn revoke(&self, grant: Grant) -> Result<()> {
        self.ack(op::revoke(&grant)).await
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
    ) -> Result<()> {
        self.ack(op::transfer_owner(
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
    }
}
