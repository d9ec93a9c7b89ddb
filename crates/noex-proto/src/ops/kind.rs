//! Every server operation: its wire name, whether it is a read, and the shape of its answer.

/// The shape of an operation's answer, as the server sends it in `result.data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerShape {
    /// One record.
    Record,
    /// One record or `null`.
    OptionalRecord,
    /// An array of records.
    Records,
    /// A number.
    Number,
    /// A number or `null` (`store.min`/`store.max` on an empty set).
    OptionalNumber,
    /// `{records, hasMore, nextCursor}`.
    Page,
    /// An object whose fields the operation documents.
    Object,
    /// An array of objects.
    List,
    /// Any JSON value (a fact's value, a procedure's result).
    Any,
}

macro_rules! op_kinds {
    ($($variant:ident => $name:literal, $read:literal, $shape:ident;)*) => {
        /// A server operation.
        ///
        /// ```
        /// use noex_proto::ops::{OpKind, AnswerShape};
        /// assert_eq!(OpKind::StoreGet.name(), "store.get");
        /// assert!(OpKind::StoreGet.is_read());
        /// assert!(!OpKind::StoreInsert.is_read());
        /// assert_eq!(OpKind::StorePaginate.answer(), AnswerShape::Page);
        /// assert_eq!(OpKind::from_name("identity.grant"), Some(OpKind::IdentityGrant));
        /// ```
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum OpKind {
            $(
                #[doc = concat!("`", $name, "`")]
                $variant,
            )*
        }

        impl OpKind {
            /// Every operation, in catalogue order.
            pub const ALL: &'static [OpKind] = &[$(OpKind::$variant,)*];

            /// The wire name (`type` field).
            pub fn name(self) -> &'static str {
                match self { $(OpKind::$variant => $name,)* }
            }

            /// Whether the operation only reads: it changes nothing on the server, so it is
            /// safe to send again after a reconnect.
            pub fn is_read(self) -> bool {
                match self { $(OpKind::$variant => $read,)* }
            }

            /// The shape of the answer.
            pub fn answer(self) -> AnswerShape {
                match self { $(OpKind::$variant => AnswerShape::$shape,)* }
            }

            /// Looks an operation up by its wire name.
            pub fn from_name(name: &str) -> Option<OpKind> {
                match name { $($name => Some(OpKind::$variant),)* _ => None }
            }
        }
    };
}

op_kinds! {
    StoreInsert => "store.insert", false, Record;
    StoreGet => "store.get", true, OptionalRecord;
    StoreUpdate => "store.update", false, Record;
    StoreDelete => "store.delete", false, Object;
    StoreAll => "store.all", true, Records;
    StoreWhere => "store.where", true, Records;
    StoreFindOne => "store.findOne", true, OptionalRecord;
    StoreCount => "store.count", true, Number;
    StoreFirst => "store.first", true, Records;
    StoreLast => "store.last", true, Records;
    StorePaginate => "store.paginate", true, Page;
    StoreSum => "store.sum", true, Number;
    StoreAvg => "store.avg", true, Number;
    StoreMin => "store.min", true, OptionalNumber;
    StoreMax => "store.max", true, OptionalNumber;
    StoreClear => "store.clear", false, Object;
    StoreSubscribe => "store.subscribe", false, Object;
    StoreUnsubscribe => "store.unsubscribe", false, Object;
    StoreTransaction => "store.transaction", false, Object;
    StoreBuckets => "store.buckets", true, Object;
    StoreStats => "store.stats", true, Object;
    StoreDefineBucket => "store.defineBucket", false, Object;
    StoreUpdateBucket => "store.updateBucket", false, Object;
    StoreGetBucketSchema => "store.getBucketSchema", true, Object;
    StoreDropBucket => "store.dropBucket", false, Object;
    StoreDefineQuery => "store.defineQuery", false, Object;
    StoreUndefineQuery => "store.undefineQuery", false, Object;
    StoreListQueries => "store.listQueries", true, Object;
    RulesEmit => "rules.emit", false, Object;
    RulesSetFact => "rules.setFact", false, Object;
    RulesGetFact => "rules.getFact", true, Any;
    RulesDeleteFact => "rules.deleteFact", false, Object;
    RulesQueryFacts => "rules.queryFacts", true, List;
    RulesGetAllFacts => "rules.getAllFacts", true, List;
    RulesStats => "rules.stats", true, Object;
    RulesSubscribe => "rules.subscribe", false, Object;
    RulesUnsubscribe => "rules.unsubscribe", false, Object;
    RulesRegisterRule => "rules.registerRule", false, Object;
    RulesUnregisterRule => "rules.unregisterRule", false, Object;
    RulesUpdateRule => "rules.updateRule", false, Object;
    RulesEnableRule => "rules.enableRule", false, Object;
    RulesDisableRule => "rules.disableRule", false, Object;
    RulesGetRule => "rules.getRule", true, Object;
    RulesGetRules => "rules.getRules", true, Object;
    RulesValidateRule => "rules.validateRule", true, Object;
    AuthLogin => "auth.login", false, Object;
    AuthLogout => "auth.logout", false, Object;
    AuthWhoami => "auth.whoami", true, Object;
    IdentityLogin => "identity.login", false, Object;
    IdentityLoginWithSecret => "identity.loginWithSecret", false, Object;
    IdentityLogout => "identity.logout", false, Object;
    IdentityWhoami => "identity.whoami", true, Object;
    IdentityRefreshSession => "identity.refreshSession", false, Object;
    IdentityCreateUser => "identity.createUser", false, Object;
    IdentityGetUser => "identity.getUser", true, Object;
    IdentityUpdateUser => "identity.updateUser", false, Object;
    IdentityDeleteUser => "identity.deleteUser", false, Object;
    IdentityListUsers => "identity.listUsers", true, Object;
    IdentityEnableUser => "identity.enableUser", false, Object;
    IdentityDisableUser => "identity.disableUser", false, Object;
    IdentityChangePassword => "identity.changePassword", false, Object;
    IdentityResetPassword => "identity.resetPassword", false, Object;
    IdentityCreateRole => "identity.createRole", false, Object;
    IdentityUpdateRole => "identity.updateRole", false, Object;
    IdentityDeleteRole => "identity.deleteRole", false, Object;
    IdentityListRoles => "identity.listRoles", true, Object;
    IdentityAssignRole => "identity.assignRole", false, Object;
    IdentityRemoveRole => "identity.removeRole", false, Object;
    IdentityGetUserRoles => "identity.getUserRoles", true, Object;
    IdentityGrant => "identity.grant", false, Object;
    IdentityRevoke => "identity.revoke", false, Object;
    IdentityGetAcl => "identity.getAcl", true, Object;
    IdentityMyAccess => "identity.myAccess", true, Object;
    IdentityGetOwner => "identity.getOwner", true, Object;
    IdentityTransferOwner => "identity.transferOwner", false, Object;
    AuditQuery => "audit.query", true, Object;
    ProceduresRegister => "procedures.register", false, Object;
    ProceduresUnregister => "procedures.unregister", false, Object;
    ProceduresUpdate => "procedures.update", false, Object;
    ProceduresGet => "procedures.get", true, Object;
    ProceduresList => "procedures.list", true, Object;
    ProceduresCall => "procedures.call", false, Object;
    ServerStats => "server.stats", true, Object;
    ServerConnections => "server.connections", true, List;
}

impl OpKind {
    /// Whether the request carries a secret (a token or a password), so that its encoded
    /// form must never be logged.
    pub fn carries_secret(self) -> bool {
        matches!(
            self,
            OpKind::AuthLogin
                | OpKind::IdentityLogin
                | OpKind::IdentityLoginWithSecret
                | OpKind::IdentityCreateUser
                | OpKind::IdentityChangePassword
                | OpKind::IdentityResetPassword
        )
    }
}
