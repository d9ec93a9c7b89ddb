//! The operation catalogue: one constructor per server operation.
//!
//! Each constructor returns an [`Operation`]: its [`OpKind`] and its payload fields already
//! encoded, flattened beside `id` and `type` exactly as the real server reads them. Values
//! of the caller's types (`impl Serialize`) are serialised straight into the request text,
//! with no `serde_json::Value` in between; when one cannot be serialised, the operation
//! records why ([`Operation::encode_error`]) and the typed client refuses to send it.
//!
//! ```
//! use noex_proto::ops::{self, OpKind};
//! use serde_json::json;
//! let op = ops::store::insert("users", json!({"name": "Alice"}));
//! assert_eq!(op.kind(), OpKind::StoreInsert);
//! assert_eq!(op.encode(7), r#"{"id":7,"type":"store.insert","bucket":"users","data":{"name":"Alice"}}"#);
//! ```

mod fields;
mod filter;
mod kind;

pub use fields::{FieldType, OpField};
pub use filter::{Field, Filter};
pub use kind::{AnswerShape, OpKind};

use crate::secret::Secret;
use serde::Serialize;
use serde_json::{Map, Value};
use std::fmt;

/// The fields buffer an operation starts with: the fields of most operations that carry
/// no record (a bucket and a key, a topic) fit. Every request waiting to be handed to the
/// core holds one, so it stays small.
const FIELDS_CAPACITY: usize = 40;

/// The fields buffer of an operation that carries a record (`store.insert`,
/// `store.update`): a typical record fits without growing the buffer on the way.
const DATA_CAPACITY: usize = 128;

/// A request ready to be sent: which operation, and its encoded fields.
#[derive(Clone)]
pub struct Operation {
    kind: OpKind,
    /// The encoded members, UTF-8 (serde_json writes nothing else), written in place.
    fields: Vec<u8>,
    /// What few operations carry, boxed so that every other operation (and every request
    /// waiting to be sent) stays small.
    rare: Option<Box<Rare>>,
}

/// The rarely set parts of an [`Operation`].
#[derive(Clone, Default)]
struct Rare {
    presented: Option<Presented>,
    encode_error: Option<String>,
}

/// What a login operation presents, kept so the core can present it again on a later
/// connection, or when the session has expired.
#[derive(Clone, PartialEq)]
pub(crate) enum Presented {
    /// `auth.login`'s token.
    Token(Secret),
    /// `identity.login`'s user name and password.
    Credentials {
        /// The user name.
        username: String,
        /// The password.
        password: Secret,
    },
    /// `identity.loginWithSecret`'s secret.
    Secret(Secret),
}

impl Operation {
    /// An operation with no fields yet.
    pub fn new(kind: OpKind) -> Operation {
        Operation::with_room(kind, FIELDS_CAPACITY)
    }

    /// An operation with no fields yet, and room for `capacity` bytes of them.
    fn with_room(kind: OpKind, capacity: usize) -> Operation {
        Operation {
            kind,
            fields: Vec::with_capacity(capacity),
            rare: None,
        }
    }

    /// Adds a top-level field. `id` and `type` are reserved and ignored.
    pub fn with_field(self, name: &str, value: &Value) -> Operation {
        self.field(name, value)
    }

    /// Adds every member of `fields` at the top level (flattening), skipping `id` and `type`.
    pub fn with_fields(mut self, fields: &Map<String, Value>) -> Operation {
        for (name, value) in fields {
            self = self.field(name, value);
        }
        self
    }

    fn field<T: Serialize + ?Sized>(mut self, name: &str, value: &T) -> Operation {
        if name == "id" || name == "type" {
            return self;
        }
        // Written straight into the fields, no buffer in between; taken back on failure.
        let before = self.fields.len();
        if before > 0 {
            self.fields.push(b',');
        }
        let written = serde_json::to_writer(&mut self.fields, name).and_then(|()| {
            self.fields.push(b':');
            serde_json::to_writer(&mut self.fields, value)
        });
        if let Err(e) = written {
            self.fields.truncate(before);
            let rare = self.rare.get_or_insert_with(Box::default);
            if rare.encode_error.is_none() {
                rare.encode_error = Some(format!("field `{name}`: {e}"));
            }
        }
        self
    }

    /// Why a field could not be serialised, if one could not (it is then missing from
    /// [`Operation::fields`]). The typed API checks this before sending; so should a caller
    /// of `Client::request` that builds operations from its own types.
    ///
    /// ```
    /// use noex_proto::ops;
    /// use std::collections::HashMap;
    /// let bad: HashMap<(u8, u8), u8> = [((1, 2), 3)].into();
    /// assert!(ops::store::insert("users", &bad).encode_error().is_some());
    /// assert!(ops::store::insert("users", serde_json::json!({})).encode_error().is_none());
    /// ```
    pub fn encode_error(&self) -> Option<&str> {
        self.rare.as_ref()?.encode_error.as_deref()
    }

    fn opt_field<T: Serialize>(self, name: &str, value: Option<T>) -> Operation {
        match value {
            Some(value) => self.field(name, &value),
            None => self,
        }
    }

    /// The operation.
    pub fn kind(&self) -> OpKind {
        self.kind
    }

    /// The payload members, encoded, without braces.
    pub fn fields(&self) -> &str {
        // serde_json writes UTF-8 only, so this never falls back.
        std::str::from_utf8(&self.fields).unwrap_or_default()
    }

    /// The whole request frame for request id `id`.
    pub fn encode(&self, id: u64) -> String {
        crate::frame::encode_request_bytes(id, self.kind.name(), &self.fields)
    }

    /// [`Operation::encode`], reusing the operation's buffer for the frame (what the core
    /// does with an operation it sends once and does not keep).
    ///
    /// ```
    /// use noex_proto::ops;
    /// let get = ops::store::get("users", "u1");
    /// assert_eq!(get.clone().into_frame(3), get.encode(3));
    /// assert_eq!(get.into_frame(3), r#"{"id":3,"type":"store.get","bucket":"users","key":"u1"}"#);
    /// let stats = ops::server::stats();
    /// assert_eq!(stats.clone().into_frame(4), stats.encode(4));
    /// ```
    pub fn into_frame(self, id: u64) -> String {
        crate::frame::request_frame(id, self.kind.name(), self.fields)
    }

    /// For a login (`auth.login`, `identity.login`, `identity.loginWithSecret`): what it
    /// presents, so the core can present it again.
    pub(crate) fn presented(&self) -> Option<&Presented> {
        self.rare.as_ref()?.presented.as_ref()
    }

    /// Whether it is a login that presents something ([`Operation::presented`]).
    pub(crate) fn is_login(&self) -> bool {
        self.presented().is_some()
    }

    fn presenting(mut self, presented: Presented) -> Operation {
        self.rare.get_or_insert_with(Box::default).presented = Some(presented);
        self
    }
}

/// `Debug` never shows the fields of operations that carry a secret.
impl fmt::Debug for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Operation");
        d.field("kind", &self.kind.name());
        if self.kind.carries_secret() {
            d.field("fields", &"<redacted>");
        } else {
            d.field("fields", &self.fields());
        }
        d.finish()
    }
}

/// Store operations on records.
pub mod store {
    use super::*;

    /// One operation inside `store.transaction`.
    #[derive(Debug, Clone, PartialEq, Serialize)]
    pub struct TxOp {
        /// `get`, `insert`, `update`, `delete`, `where`, `findOne` or `count`.
        pub op: &'static str,
        /// The bucket.
        pub bucket: String,
        /// The record key (`get`, `update`, `delete`).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub key: Option<Value>,
        /// The record data (`insert`, `update`).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub data: Option<Value>,
        /// The filter (`where`, `findOne`, `count`).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub filter: Option<Value>,
    }

    impl TxOp {
        fn new(op: &'static str, bucket: &str) -> TxOp {
            TxOp {
                op,
                bucket: bucket.to_owned(),
                key: None,
                data: None,
                filter: None,
            }
        }
        /// `get`.
        pub fn get(bucket: &str, key: impl Into<Value>) -> TxOp {
            TxOp {
                key: Some(key.into()),
                ..TxOp::new("get", bucket)
            }
        }
        /// `insert`.
        pub fn insert(bucket: &str, data: Value) -> TxOp {
            TxOp {
                data: Some(data),
                ..TxOp::new("insert", bucket)
            }
        }
        /// `update`.
        pub fn update(bucket: &str, key: impl Into<Value>, data: Value) -> TxOp {
            TxOp {
                key: Some(key.into()),
                data: Some(data),
                ..TxOp::new("update", bucket)
            }
        }
        /// `delete`.
        pub fn delete(bucket: &str, key: impl Into<Value>) -> TxOp {
            TxOp {
                key: Some(key.into()),
                ..TxOp::new("delete", bucket)
            }
        }
        /// `where`: the records matching `filter`.
        pub fn find(bucket: &str, filter: Filter) -> TxOp {
            TxOp {
                filter: Some(filter.into_value()),
                ..TxOp::new("where", bucket)
            }
        }
        /// `findOne`.
        pub fn find_one(bucket: &str, filter: Filter) -> TxOp {
            TxOp {
                filter: Some(filter.into_value()),
                ..TxOp::new("findOne", bucket)
            }
        }
        /// `count`; an empty filter is left out.
        pub fn count(bucket: &str, filter: Filter) -> TxOp {
            TxOp {
                filter: (!filter.is_empty()).then(|| filter.into_value()),
                ..TxOp::new("count", bucket)
            }
        }
    }

    fn on(kind: OpKind, bucket: &str) -> Operation {
        Operation::new(kind).field("bucket", bucket)
    }

    /// [`on`], for an operation that carries a record.
    fn with_record(kind: OpKind, bucket: &str) -> Operation {
        Operation::with_room(kind, DATA_CAPACITY).field("bucket", bucket)
    }

    /// `store.insert` bucket, data → record.
    pub fn insert(bucket: &str, data: impl Serialize) -> Operation {
        with_record(OpKind::StoreInsert, bucket).field("data", &data)
    }
    /// `store.get` bucket, key → record or null.
    pub fn get(bucket: &str, key: impl Serialize) -> Operation {
        on(OpKind::StoreGet, bucket).field("key", &key)
    }
    /// `store.update` bucket, key, data → record.
    pub fn update(bucket: &str, key: impl Serialize, data: impl Serialize) -> Operation {
        with_record(OpKind::StoreUpdate, bucket)
            .field("key", &key)
            .field("data", &data)
    }
    /// `store.delete` bucket, key → `{deleted}`.
    pub fn delete(bucket: &str, key: impl Serialize) -> Operation {
        on(OpKind::StoreDelete, bucket).field("key", &key)
    }
    /// `store.all` bucket → records.
    pub fn all(bucket: &str) -> Operation {
        on(OpKind::StoreAll, bucket)
    }
    /// `store.where` bucket, filter → records.
    pub fn find(bucket: &str, filter: &Filter) -> Operation {
        on(OpKind::StoreWhere, bucket).field("filter", filter)
    }
    /// `store.findOne` bucket, filter → record or null.
    pub fn find_one(bucket: &str, filter: &Filter) -> Operation {
        on(OpKind::StoreFindOne, bucket).field("filter", filter)
    }
    /// `store.count` bucket, filter? → number. An empty filter is left out.
    pub fn count(bucket: &str, filter: Option<&Filter>) -> Operation {
        on(OpKind::StoreCount, bucket).opt_field("filter", Filter::optional(filter))
    }
    /// `store.first` bucket, n → records.
    pub fn first(bucket: &str, n: u64) -> Operation {
        on(OpKind::StoreFirst, bucket).field("n", &n)
    }
    /// `store.last` bucket, n → records.
    pub fn last(bucket: &str, n: u64) -> Operation {
        on(OpKind::StoreLast, bucket).field("n", &n)
    }
    /// `store.paginate` bucket, limit, after? → `{records, hasMore, nextCursor}`.
    pub fn paginate(bucket: &str, limit: u64, after: Option<&Value>) -> Operation {
        on(OpKind::StorePaginate, bucket)
            .field("limit", &limit)
            .opt_field("after", after)
    }
    fn aggregate(kind: OpKind, bucket: &str, field: &str, filter: Option<&Filter>) -> Operation {
        on(kind, bucket)
            .field("field", field)
            .opt_field("filter", Filter::optional(filter))
    }
    /// `store.sum` bucket, field, filter? → number.
    pub fn sum(bucket: &str, field: &str, filter: Option<&Filter>) -> Operation {
        aggregate(OpKind::StoreSum, bucket, field, filter)
    }
    /// `store.avg` bucket, field, filter? → number.
    pub fn avg(bucket: &str, field: &str, filter: Option<&Filter>) -> Operation {
        aggregate(OpKind::StoreAvg, bucket, field, filter)
    }
    /// `store.min` bucket, field, filter? → number or null.
    pub fn min(bucket: &str, field: &str, filter: Option<&Filter>) -> Operation {
        aggregate(OpKind::StoreMin, bucket, field, filter)
    }
    /// `store.max` bucket, field, filter? → number or null.
    pub fn max(bucket: &str, field: &str, filter: Option<&Filter>) -> Operation {
        aggregate(OpKind::StoreMax, bucket, field, filter)
    }
    /// `store.clear` bucket → `{cleared}`.
    pub fn clear(bucket: &str) -> Operation {
        on(OpKind::StoreClear, bucket)
    }
    /// `store.subscribe` query, params? → `{subscriptionId, data}`.
    pub fn subscribe(query: &str, params: Option<&Value>) -> Operation {
        Operation::new(OpKind::StoreSubscribe)
            .field("query", query)
            .opt_field("params", params)
    }
    /// `store.unsubscribe` subscriptionId → `{unsubscribed}`.
    pub fn unsubscribe(subscription_id: &str) -> Operation {
        Operation::new(OpKind::StoreUnsubscribe).field("subscriptionId", subscription_id)
    }
    /// `store.transaction` operations → `{results: [{index, data}]}`.
    pub fn transaction(operations: &[TxOp]) -> Operation {
        Operation::new(OpKind::StoreTransaction).field("operations", operations)
    }
    /// `store.buckets` → `{count, names}`.
    pub fn buckets() -> Operation {
        Operation::new(OpKind::StoreBuckets)
    }
    /// `store.stats` → object.
    pub fn stats() -> Operation {
        Operation::new(OpKind::StoreStats)
    }
    /// `store.defineBucket` name, config.
    pub fn define_bucket(name: &str, config: impl Serialize) -> Operation {
        Operation::new(OpKind::StoreDefineBucket)
            .field("name", name)
            .field("config", &config)
    }
    /// `store.updateBucket` name, updates (`addFields`, …).
    pub fn update_bucket(name: &str, updates: impl Serialize) -> Operation {
        Operation::new(OpKind::StoreUpdateBucket)
            .field("name", name)
            .field("updates", &updates)
    }
    /// `store.getBucketSchema` name.
    pub fn get_bucket_schema(name: &str) -> Operation {
        Operation::new(OpKind::StoreGetBucketSchema).field("name", name)
    }
    /// `store.dropBucket` name.
    pub fn drop_bucket(name: &str) -> Operation {
        Operation::new(OpKind::StoreDropBucket).field("name", name)
    }
    /// `store.defineQuery` name, config (`bucket`, `filter`, `sort`, `limit`, …).
    pub fn define_query(name: &str, config: impl Serialize) -> Operation {
        Operation::new(OpKind::StoreDefineQuery)
            .field("name", name)
            .field("config", &config)
    }
    /// `store.undefineQuery` name.
    pub fn undefine_query(name: &str) -> Operation {
        Operation::new(OpKind::StoreUndefineQuery).field("name", name)
    }
    /// `store.listQueries` → `{queries}`.
    pub fn list_queries() -> Operation {
        Operation::new(OpKind::StoreListQueries)
    }
}

/// Rules engine operations.
pub mod rules {
    use super::*;

    /// `rules.emit` topic, data (a JSON object), correlationId?, causationId? → event.
    pub fn emit(
        topic: &str,
        data: impl Serialize,
        correlation_id: Option<&str>,
        causation_id: Option<&str>,
    ) -> Operation {
        Operation::new(OpKind::RulesEmit)
            .field("topic", topic)
            .field("data", &data)
            .opt_field("correlationId", correlation_id)
            .opt_field("causationId", causation_id)
    }
    /// `rules.emit` topic, correlationId?, causationId? without `data` (the server uses
    /// `{}`) → event.
    ///
    /// ```
    /// let op = noex_proto::ops::rules::emit_bare("tick", None, None);
    /// assert_eq!(op.encode(1), r#"{"id":1,"type":"rules.emit","topic":"tick"}"#);
    /// ```
    pub fn emit_bare(
        topic: &str,
        correlation_id: Option<&str>,
        causation_id: Option<&str>,
    ) -> Operation {
        Operation::new(OpKind::RulesEmit)
            .field("topic", topic)
            .opt_field("correlationId", correlation_id)
            .opt_field("causationId", causation_id)
    }
    /// `rules.setFact` key, value → fact.
    pub fn set_fact(key: &str, value: impl Serialize) -> Operation {
        Operation::new(OpKind::RulesSetFact)
            .field("key", key)
            .field("value", &value)
    }
    /// `rules.getFact` key → value or null.
    pub fn get_fact(key: &str) -> Operation {
        Operation::new(OpKind::RulesGetFact).field("key", key)
    }
    /// `rules.deleteFact` key → `{deleted}`.
    pub fn delete_fact(key: &str) -> Operation {
        Operation::new(OpKind::RulesDeleteFact).field("key", key)
    }
    /// `rules.queryFacts` pattern → facts.
    pub fn query_facts(pattern: &str) -> Operation {
        Operation::new(OpKind::RulesQueryFacts).field("pattern", pattern)
    }
    /// `rules.getAllFacts` → facts.
    pub fn get_all_facts() -> Operation {
        Operation::new(OpKind::RulesGetAllFacts)
    }
    /// `rules.stats` → object.
    pub fn stats() -> Operation {
        Operation::new(OpKind::RulesStats)
    }
    /// `rules.subscribe` pattern → `{subscriptionId}`.
    pub fn subscribe(pattern: &str) -> Operation {
        Operation::new(OpKind::RulesSubscribe).field("pattern", pattern)
    }
    /// `rules.unsubscribe` subscriptionId.
    pub fn unsubscribe(subscription_id: &str) -> Operation {
        Operation::new(OpKind::RulesUnsubscribe).field("subscriptionId", subscription_id)
    }
    /// `rules.registerRule` rule.
    pub fn register_rule(rule: impl Serialize) -> Operation {
        Operation::new(OpKind::RulesRegisterRule).field("rule", &rule)
    }
    /// `rules.unregisterRule` ruleId.
    pub fn unregister_rule(rule_id: &str) -> Operation {
        Operation::new(OpKind::RulesUnregisterRule).field("ruleId", rule_id)
    }
    /// `rules.updateRule` ruleId, updates.
    pub fn update_rule(rule_id: &str, updates: impl Serialize) -> Operation {
        Operation::new(OpKind::RulesUpdateRule)
            .field("ruleId", rule_id)
            .field("updates", &updates)
    }
    /// `rules.enableRule` ruleId.
    pub fn enable_rule(rule_id: &str) -> Operation {
        Operation::new(OpKind::RulesEnableRule).field("ruleId", rule_id)
    }
    /// `rules.disableRule` ruleId.
    pub fn disable_rule(rule_id: &str) -> Operation {
        Operation::new(OpKind::RulesDisableRule).field("ruleId", rule_id)
    }
    /// `rules.getRule` ruleId.
    pub fn get_rule(rule_id: &str) -> Operation {
        Operation::new(OpKind::RulesGetRule).field("ruleId", rule_id)
    }
    /// `rules.getRules` → `{rules}`.
    pub fn get_rules() -> Operation {
        Operation::new(OpKind::RulesGetRules)
    }
    /// `rules.validateRule` rule → `{valid, errors, warnings}`.
    pub fn validate_rule(rule: impl Serialize) -> Operation {
        Operation::new(OpKind::RulesValidateRule).field("rule", &rule)
    }
}

/// Token authentication (`auth.*`).
pub mod auth {
    use super::*;

    /// `auth.login` token → `{userId, roles, expiresAt}`.
    pub fn login(token: &Secret) -> Operation {
        Operation::new(OpKind::AuthLogin)
            .field("token", token.expose())
            .presenting(Presented::Token(token.clone()))
    }
    /// `auth.logout` → `{loggedOut}`.
    pub fn logout() -> Operation {
        Operation::new(OpKind::AuthLogout)
    }
    /// `auth.whoami` → `{authenticated, userId, roles, expiresAt}`.
    pub fn whoami() -> Operation {
        Operation::new(OpKind::AuthWhoami)
    }
}

/// Built-in identity (`identity.*`). Fields are flattened into the request.
pub mod identity {
    use super::*;

    /// An ACL grant or revocation, with the field names the server reads.
    #[derive(Debug, Clone, PartialEq, Serialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Grant {
        /// `user` or `role`.
        pub subject_type: String,
        /// The user's or role's id.
        pub subject_id: String,
        /// e.g. `bucket`.
        pub resource_type: String,
        /// e.g. the bucket's name.
        pub resource_name: String,
        /// e.g. `["read", "write"]`.
        pub operations: Vec<String>,
    }

    fn access(kind: OpKind, grant: &Grant) -> Operation {
        Operation::new(kind)
            .field("subjectType", &grant.subject_type)
            .field("subjectId", &grant.subject_id)
            .field("resourceType", &grant.resource_type)
            .field("resourceName", &grant.resource_name)
            .field("operations", &grant.operations)
    }

    fn user(kind: OpKind, user_id: &str) -> Operation {
        Operation::new(kind).field("userId", user_id)
    }

    fn resource(kind: OpKind, resource_type: &str, resource_name: &str) -> Operation {
        Operation::new(kind)
            .field("resourceType", resource_type)
            .field("resourceName", resource_name)
    }

    /// `identity.login` username, password → `{token, expiresAt, user}`.
    pub fn login(username: &str, password: &Secret) -> Operation {
        Operation::new(OpKind::IdentityLogin)
            .field("username", username)
            .field("password", password.expose())
            .presenting(Presented::Credentials {
                username: username.to_owned(),
                password: password.clone(),
            })
    }
    /// `identity.loginWithSecret` secret → `{token, expiresAt, user}`.
    pub fn login_with_secret(secret: &Secret) -> Operation {
        Operation::new(OpKind::IdentityLoginWithSecret)
            .field("secret", secret.expose())
            .presenting(Presented::Secret(secret.clone()))
    }
    /// `identity.logout`.
    pub fn logout() -> Operation {
        Operation::new(OpKind::IdentityLogout)
    }
    /// `identity.whoami`.
    pub fn whoami() -> Operation {
        Operation::new(OpKind::IdentityWhoami)
    }
    /// `identity.refreshSession` → a new `{token, expiresAt, user}`.
    pub fn refresh_session() -> Operation {
        Operation::new(OpKind::IdentityRefreshSession)
    }
    /// `identity.createUser` username, password (≥ 8 chars), displayName?, email?,
    /// enabled?, metadata?, and any further fields in `extra`.
    pub fn create_user(username: &str, password: &Secret, extra: &Map<String, Value>) -> Operation {
        Operation::new(OpKind::IdentityCreateUser)
            .field("username", username)
            .field("password", password.expose())
            .with_fields(extra)
    }
    /// `identity.getUser` userId.
    pub fn get_user(user_id: &str) -> Operation {
        user(OpKind::IdentityGetUser, user_id)
    }
    /// `identity.updateUser` userId + the fields to change.
    pub fn update_user(user_id: &str, fields: &Map<String, Value>) -> Operation {
        user(OpKind::IdentityUpdateUser, user_id).with_fields(fields)
    }
    /// `identity.deleteUser` userId.
    pub fn delete_user(user_id: &str) -> Operation {
        user(OpKind::IdentityDeleteUser, user_id)
    }
    /// `identity.listUsers` page?, pageSize?.
    pub fn list_users(page: Option<u64>, page_size: Option<u64>) -> Operation {
        Operation::new(OpKind::IdentityListUsers)
            .opt_field("page", page)
            .opt_field("pageSize", page_size)
    }
    /// `identity.enableUser` userId.
    pub fn enable_user(user_id: &str) -> Operation {
        user(OpKind::IdentityEnableUser, user_id)
    }
    /// `identity.disableUser` userId.
    pub fn disable_user(user_id: &str) -> Operation {
        user(OpKind::IdentityDisableUser, user_id)
    }
    /// `identity.changePassword` userId, currentPassword, newPassword.
    pub fn change_password(user_id: &str, current: &Secret, new: &Secret) -> Operation {
        user(OpKind::IdentityChangePassword, user_id)
            .field("currentPassword", current.expose())
            .field("newPassword", new.expose())
    }
    /// `identity.resetPassword` userId, newPassword.
    pub fn reset_password(user_id: &str, new: &Secret) -> Operation {
        user(OpKind::IdentityResetPassword, user_id).field("newPassword", new.expose())
    }
    /// `identity.createRole` name, description?, permissions? (the server's default: none).
    pub fn create_role(
        name: &str,
        description: Option<&str>,
        permissions: Option<&Value>,
    ) -> Operation {
        Operation::new(OpKind::IdentityCreateRole)
            .field("name", name)
            .opt_field("description", description)
            .opt_field("permissions", permissions)
    }
    /// `identity.updateRole` roleId + the fields to change.
    pub fn update_role(role_id: &str, fields: &Map<String, Value>) -> Operation {
        Operation::new(OpKind::IdentityUpdateRole)
            .field("roleId", role_id)
            .with_fields(fields)
    }
    /// `identity.deleteRole` roleId.
    pub fn delete_role(role_id: &str) -> Operation {
        Operation::new(OpKind::IdentityDeleteRole).field("roleId", role_id)
    }
    /// `identity.listRoles`.
    pub fn list_roles() -> Operation {
        Operation::new(OpKind::IdentityListRoles)
    }
    /// `identity.assignRole` userId, roleName.
    pub fn assign_role(user_id: &str, role_name: &str) -> Operation {
        user(OpKind::IdentityAssignRole, user_id).field("roleName", role_name)
    }
    /// `identity.removeRole` userId, roleName.
    pub fn remove_role(user_id: &str, role_name: &str) -> Operation {
        user(OpKind::IdentityRemoveRole, user_id).field("roleName", role_name)
    }
    /// `identity.getUserRoles` userId.
    pub fn get_user_roles(user_id: &str) -> Operation {
        user(OpKind::IdentityGetUserRoles, user_id)
    }
    /// `identity.grant` subjectType, subjectId, resourceType, resourceName, operations.
    pub fn grant(grant: &Grant) -> Operation {
        access(OpKind::IdentityGrant, grant)
    }
    /// `identity.revoke` subjectType, subjectId, resourceType, resourceName, operations.
    pub fn revoke(grant: &Grant) -> Operation {
        access(OpKind::IdentityRevoke, grant)
    }
    /// `identity.getAcl` resourceType, resourceName → `{entries}`.
    pub fn get_acl(resource_type: &str, resource_name: &str) -> Operation {
        resource(OpKind::IdentityGetAcl, resource_type, resource_name)
    }
    /// `identity.myAccess` → `{user, resources}`.
    pub fn my_access() -> Operation {
        Operation::new(OpKind::IdentityMyAccess)
    }
    /// `identity.getOwner` resourceType, resourceName → `{owner}`.
    pub fn get_owner(resource_type: &str, resource_name: &str) -> Operation {
        resource(OpKind::IdentityGetOwner, resource_type, resource_name)
    }
    /// `identity.transferOwner` resourceType, resourceName, newOwnerId.
    pub fn transfer_owner(
        resource_type: &str,
        resource_name: &str,
        new_owner_id: &str,
    ) -> Operation {
        resource(OpKind::IdentityTransferOwner, resource_type, resource_name)
            .field("newOwnerId", new_owner_id)
    }
}

/// Audit log (`audit.query`).
pub mod audit {
    use super::*;

    /// Which audit entries `audit.query` returns: [`AuditFilter::all`] for every entry, then
    /// narrowed with the setters. Passed by value, like [`Filter`].
    ///
    /// ```
    /// use noex_proto::ops::audit::AuditFilter;
    /// let recent_inserts = AuditFilter::all()
    ///     .user("u1")
    ///     .operation("store.insert")
    ///     .result("error")
    ///     .from(1_700_000_000_000)
    ///     .limit(50);
    /// assert_ne!(recent_inserts, AuditFilter::all());
    /// ```
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct AuditFilter {
        user_id: Option<String>,
        operation: Option<String>,
        result: Option<String>,
        from: Option<i64>,
        to: Option<i64>,
        limit: Option<u64>,
    }

    impl AuditFilter {
        /// Every entry the server keeps, newest first.
        pub fn all() -> AuditFilter {
            AuditFilter::default()
        }
        /// Only entries of this user (their id).
        pub fn user(mut self, user_id: impl Into<String>) -> Self {
            self.user_id = Some(user_id.into());
            self
        }
        /// Only entries of this operation, e.g. `store.insert`.
        pub fn operation(mut self, operation: impl Into<String>) -> Self {
            self.operation = Some(operation.into());
            self
        }
        /// Only entries with this result: `success` or `error` (anything else is refused
        /// by the server with `VALIDATION_ERROR`).
        pub fn result(mut self, result: impl Into<String>) -> Self {
            self.result = Some(result.into());
            self
        }
        /// Only entries from this time on (ms since the epoch, inclusive).
        pub fn from(mut self, ms: i64) -> Self {
            self.from = Some(ms);
            self
        }
        /// Only entries up to this time (ms since the epoch, inclusive).
        pub fn to(mut self, ms: i64) -> Self {
            self.to = Some(ms);
            self
        }
        /// At most this many entries (at least 1; 0 is refused by the server with
        /// `VALIDATION_ERROR`).
        pub fn limit(mut self, limit: u64) -> Self {
            self.limit = Some(limit);
            self
        }
    }

    /// `audit.query` with filters → `{entries}`.
    pub fn query(filter: &AuditFilter) -> Operation {
        Operation::new(OpKind::AuditQuery)
            .opt_field("userId", filter.user_id.as_deref())
            .opt_field("operation", filter.operation.as_deref())
            .opt_field("result", filter.result.as_deref())
            .opt_field("from", filter.from)
            .opt_field("to", filter.to)
            .opt_field("limit", filter.limit)
    }
}

/// Server-side procedures (`procedures.*`).
pub mod procedures {
    use super::*;

    /// `procedures.register` procedure.
    pub fn register(procedure: impl Serialize) -> Operation {
        Operation::new(OpKind::ProceduresRegister).field("procedure", &procedure)
    }
    /// `procedures.unregister` name.
    pub fn unregister(name: &str) -> Operation {
        Operation::new(OpKind::ProceduresUnregister).field("name", name)
    }
    /// `procedures.update` name, updates.
    pub fn update(name: &str, updates: impl Serialize) -> Operation {
        Operation::new(OpKind::ProceduresUpdate)
            .field("name", name)
            .field("updates", &updates)
    }
    /// `procedures.get` name.
    pub fn get(name: &str) -> Operation {
        Operation::new(OpKind::ProceduresGet).field("name", name)
    }
    /// `procedures.list` → `{procedures}`.
    pub fn list() -> Operation {
        Operation::new(OpKind::ProceduresList)
    }
    /// `procedures.call` name, input → `{success, result, …}`.
    pub fn call(name: &str, input: impl Serialize) -> Operation {
        Operation::new(OpKind::ProceduresCall)
            .field("name", name)
            .field("input", &input)
    }
}

/// Server introspection (`server.*`).
pub mod server {
    use super::*;

    /// `server.stats` → object.
    pub fn stats() -> Operation {
        Operation::new(OpKind::ServerStats)
    }
    /// `server.connections` → connection infos.
    pub fn connections() -> Operation {
        Operation::new(OpKind::ServerConnections)
    }
}
