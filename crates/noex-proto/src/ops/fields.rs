//! The request fields of every operation, as the real server reads them.
//!
//! The table below is taken from noex-server 0.1.4's request handlers: `src/proxy/store-proxy.ts`
//! (`requireString`, `requireObject`, `requirePositiveInt`, `optionalObject`, the `key` checks,
//! `handleStoreSubscribe`, `validateOperations`), `src/proxy/admin-store-proxy.ts`,
//! `src/proxy/rules-proxy.ts`, `src/proxy/admin-rules-proxy.ts`, `src/auth/auth-handler.ts`,
//! `src/identity/identity-handler.ts`, `src/proxy/audit-proxy.ts`,
//! `src/proxy/procedures-proxy.ts` and `src/connection/connection-server.ts` (`server.*`).
//! A field is *required* when the server answers `VALIDATION_ERROR` without it; an optional
//! field is one the server reads when it is there. Fields the server never reads are not
//! listed (it ignores them).

use std::fmt;

use super::OpKind;

/// What a request field holds, as the server checks it.
///
/// ```
/// use noex_proto::ops::FieldType;
/// assert_eq!(FieldType::Integer.name(), "integer");
/// assert_eq!(FieldType::Object.to_string(), "object");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FieldType {
    /// A string; a required one must not be empty.
    String,
    /// A whole number; the server's required ones (`n`, `limit`) must be at least 1.
    Integer,
    /// Any number (times in ms since the epoch, page numbers).
    Number,
    /// `true` or `false`.
    Boolean,
    /// A JSON object (not an array, not `null`).
    Object,
    /// A JSON array.
    Array,
    /// Any JSON value (a record key, a fact's value, a cursor, query parameters). A required
    /// `key` must not be `null`.
    Any,
}

impl FieldType {
    /// The type's name as shown to people and in JSON: `string`, `integer`, `number`,
    /// `boolean`, `object`, `array` or `any`.
    pub fn name(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Integer => "integer",
            FieldType::Number => "number",
            FieldType::Boolean => "boolean",
            FieldType::Object => "object",
            FieldType::Array => "array",
            FieldType::Any => "any",
        }
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One top-level field of a request (beside `id` and `type`).
///
/// ```
/// use noex_proto::ops::{FieldType, OpKind};
/// let fields = OpKind::StoreCount.fields();
/// assert_eq!(fields.len(), 2);
/// assert_eq!((fields[0].name, fields[0].required, fields[0].ty), ("bucket", true, FieldType::String));
/// assert_eq!((fields[1].name, fields[1].required, fields[1].ty), ("filter", false, FieldType::Object));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpField {
    /// The field's name, as on the wire (`bucket`, `subscriptionId`, ...).
    pub name: &'static str,
    /// Whether the server refuses the request (`VALIDATION_ERROR`) without it.
    pub required: bool,
    /// What it holds.
    pub ty: FieldType,
}

/// `fields!(bucket: String, filter?: Object)`: a `&'static [OpField]`, in the order given;
/// `?` marks an optional field.
macro_rules! fields {
    (@acc [$($out:expr,)*]) => { &[$($out,)*] };
    (@acc [$($out:expr,)*] $name:ident ?: $ty:ident $(, $($rest:tt)*)?) => {
        fields!(@acc [$($out,)* OpField {
            name: stringify!($name),
            required: false,
            ty: FieldType::$ty,
        },] $($($rest)*)?)
    };
    (@acc [$($out:expr,)*] $name:ident : $ty:ident $(, $($rest:tt)*)?) => {
        fields!(@acc [$($out,)* OpField {
            name: stringify!($name),
            required: true,
            ty: FieldType::$ty,
        },] $($($rest)*)?)
    };
    ($($t:tt)*) => { fields!(@acc [] $($t)*) };
}

/// The table: `Variant => [fields];`, one line per operation.
macro_rules! op_fields {
    ($($variant:ident => [$($f:tt)*];)*) => {
        impl OpKind {
            /// The request's fields, in the order the server reads them (required ones
            /// first); `&[]` for an operation that takes none.
            ///
            /// ```
            /// use noex_proto::ops::{FieldType, OpKind};
            /// let names: Vec<&str> = OpKind::StoreInsert.fields().iter().map(|f| f.name).collect();
            /// assert_eq!(names, ["bucket", "data"]);
            /// assert!(OpKind::StoreInsert.fields().iter().all(|f| f.required));
            /// assert!(OpKind::ServerStats.fields().is_empty());
            /// let emit = OpKind::RulesEmit.fields();
            /// assert!(emit.iter().any(|f| f.name == "data" && !f.required && f.ty == FieldType::Object));
            /// ```
            pub fn fields(self) -> &'static [OpField] {
                match self {
                    $(OpKind::$variant => fields!($($f)*),)*
                }
            }
        }
    };
}

op_fields! {
    StoreInsert => [bucket: String, data: Object];
    StoreGet => [bucket: String, key: Any];
    StoreUpdate => [bucket: String, key: Any, data: Object];
    StoreDelete => [bucket: String, key: Any];
    StoreAll => [bucket: String];
    StoreWhere => [bucket: String, filter: Object];
    StoreFindOne => [bucket: String, filter: Object];
    StoreCount => [bucket: String, filter?: Object];
    StoreFirst => [bucket: String, n: Integer];
    StoreLast => [bucket: String, n: Integer];
    StorePaginate => [bucket: String, limit: Integer, after?: Any];
    StoreSum => [bucket: String, field: String, filter?: Object];
    StoreAvg => [bucket: String, field: String, filter?: Object];
    StoreMin => [bucket: String, field: String, filter?: Object];
    StoreMax => [bucket: String, field: String, filter?: Object];
    StoreClear => [bucket: String];
    StoreSubscribe => [query: String, params?: Any];
    StoreUnsubscribe => [subscriptionId: String];
    StoreTransaction => [operations: Array];
    StoreBuckets => [];
    StoreStats => [];
    StoreDefineBucket => [name: String, config: Object];
    StoreUpdateBucket => [name: String, updates: Object];
    StoreGetBucketSchema => [name: String];
    StoreDropBucket => [name: String];
    StoreDefineQuery => [name: String, config: Object];
    StoreUndefineQuery => [name: String];
    StoreListQueries => [];
    RulesEmit => [topic: String, data?: Object, correlationId?: String, causationId?: String];
    RulesSetFact => [key: String, value: Any];
    RulesGetFact => [key: String];
    RulesDeleteFact => [key: String];
    RulesQueryFacts => [pattern: String];
    RulesGetAllFacts => [];
    RulesStats => [];
    RulesSubscribe => [pattern: String];
    RulesUnsubscribe => [subscriptionId: String];
    RulesRegisterRule => [rule: Object];
    RulesUnregisterRule => [ruleId: String];
    RulesUpdateRule => [ruleId: String, updates: Object];
    RulesEnableRule => [ruleId: String];
    RulesDisableRule => [ruleId: String];
    RulesGetRule => [ruleId: String];
    RulesGetRules => [];
    RulesValidateRule => [rule: Object];
    AuthLogin => [token: String];
    AuthLogout => [];
    AuthWhoami => [];
    IdentityLogin => [username: String, password: String];
    IdentityLoginWithSecret => [secret: String];
    IdentityLogout => [];
    IdentityWhoami => [];
    IdentityRefreshSession => [];
    IdentityCreateUser => [username: String, password: String, displayName?: String, email?: String, enabled?: Boolean, metadata?: Object];
    IdentityGetUser => [userId: String];
    IdentityUpdateUser => [userId: String, displayName?: String, email?: String, metadata?: Object];
    IdentityDeleteUser => [userId: String];
    IdentityListUsers => [page?: Number, pageSize?: Number];
    IdentityEnableUser => [userId: String];
    IdentityDisableUser => [userId: String];
    IdentityChangePassword => [userId: String, currentPassword: String, newPassword: String];
    IdentityResetPassword => [userId: String, newPassword: String];
    IdentityCreateRole => [name: String, description?: String, permissions?: Array];
    IdentityUpdateRole => [roleId: String, description?: String, permissions?: Array];
    IdentityDeleteRole => [roleId: String];
    IdentityListRoles => [];
    IdentityAssignRole => [userId: String, roleName: String];
    IdentityRemoveRole => [userId: String, roleName: String];
    IdentityGetUserRoles => [userId: String];
    IdentityGrant => [subjectType: String, subjectId: String, resourceType: String, resourceName: String, operations: Array];
    IdentityRevoke => [subjectType: String, subjectId: String, resourceType: String, resourceName: String, operations?: Array];
    IdentityGetAcl => [resourceType: String, resourceName: String];
    IdentityMyAccess => [];
    IdentityGetOwner => [resourceType: String, resourceName: String];
    IdentityTransferOwner => [resourceType: String, resourceName: String, newOwnerId: String];
    AuditQuery => [userId?: String, operation?: String, result?: String, from?: Number, to?: Number, limit?: Integer];
    ProceduresRegister => [procedure: Object];
    ProceduresUnregister => [name: String];
    ProceduresUpdate => [name: String, updates: Object];
    ProceduresGet => [name: String];
    ProceduresList => [];
    ProceduresCall => [name: String, input?: Object];
    ServerStats => [];
    ServerConnections => [];
}

impl OpKind {
    /// The field named `name`, if the operation has one.
    ///
    /// ```
    /// use noex_proto::ops::OpKind;
    /// assert!(OpKind::StorePaginate.field("limit").is_some_and(|f| f.required));
    /// assert!(OpKind::StorePaginate.field("offset").is_none());
    /// ```
    pub fn field(self, name: &str) -> Option<&'static OpField> {
        self.fields().iter().find(|f| f.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_fields_come_before_optional_ones() {
        for kind in OpKind::ALL {
            let fields = kind.fields();
            let first_optional = fields.iter().position(|f| !f.required);
            if let Some(i) = first_optional {
                assert!(
                    fields[i..].iter().all(|f| !f.required),
                    "{}: a required field after an optional one",
                    kind.name()
                );
            }
        }
    }
}
