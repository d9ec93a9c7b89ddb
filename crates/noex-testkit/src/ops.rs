//! The routing table: every operation the server knows, with its handler, its tier
//! (`src/auth/operation-tiers.ts`: decides the static-token role check, the identity ACL
//! operation and whether it is audited), whether it is a pure read (no subscribed query
//! can change), the resource it targets (for permission checks) and the request fields
//! recorded as audit details. A new operation is added here, and only here.
//!
//! Domains (`store.`, `rules.`, ...) have a guard that runs before any of their operations,
//! known or not, and the message for an unknown operation of the domain.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::{Map, Value};

use crate::domains::{audit, auth, identity, procedures, rules, server, store};
use crate::error::{OpError, OpResult};
use crate::state::{Core, Req};

/// An operation's tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tier {
    Read,
    Write,
    Admin,
}

impl Tier {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Tier::Read => "read",
            Tier::Write => "write",
            Tier::Admin => "admin",
        }
    }

    /// The level a static-token role must reach (`reader` 0, `writer` 1, `admin` 2).
    pub(crate) fn level(self) -> u8 {
        match self {
            Tier::Read => 0,
            Tier::Write => 1,
            Tier::Admin => 2,
        }
    }
}

/// What an operation targets, for permission checks (`extractResource`) and the ACL
/// resource type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resource {
    /// Nothing in particular (`*`).
    None,
    /// A bucket: the `bucket` field, else `name`.
    Bucket,
    /// A query subscription: the `query` field, else as [`Resource::Bucket`].
    Query,
    /// A subscription id: the `subscriptionId` field, else as [`Resource::Bucket`].
    Subscription,
    /// A rules topic: `topic`, else `key`, else `pattern`.
    Topic,
    /// A procedure (the resource name is always `*`, as the real server's
    /// `extractResource`).
    Procedure,
}

impl Resource {
    /// The ACL resource type.
    pub(crate) fn acl_type(self) -> Option<&'static str> {
        match self {
            Resource::Bucket | Resource::Query | Resource::Subscription => Some("bucket"),
            Resource::Topic => Some("topic"),
            Resource::Procedure => Some("procedure"),
            Resource::None => None,
        }
    }

    /// The resource name of a request.
    pub(crate) fn extract(self, req: &Map<String, Value>) -> String {
        let s = |f: &str| req.get(f).and_then(Value::as_str).map(str::to_string);
        let bucket = || s("bucket").or_else(|| s("name"));
        let found = match self {
            Resource::Bucket => bucket(),
            Resource::Query => s("query").or_else(bucket),
            Resource::Subscription => s("subscriptionId").or_else(bucket),
            Resource::Topic => s("topic").or_else(|| s("key")).or_else(|| s("pattern")),
            Resource::None | Resource::Procedure => None,
        };
        found.unwrap_or_else(|| "*".into())
    }
}

/// An operation handler.
pub(crate) type Handler = fn(&mut Core, &mut Req<'_>) -> OpResult;
/// A domain guard.
pub(crate) type Guard = fn(&mut Core, &Req<'_>) -> Result<(), OpError>;

/// One operation.
#[derive(Debug)]
pub(crate) struct Op {
    pub(crate) name: &'static str,
    pub(crate) tier: Option<Tier>,
    pub(crate) pure_read: bool,
    pub(crate) resource: Resource,
    /// Request fields recorded as the audit entry's `details` (none: no `details`).
    pub(crate) audit_details: &'static [&'static str],
    pub(crate) run: Handler,
}

impl Op {
    const fn new(name: &'static str, tier: Option<Tier>, resource: Resource, run: Handler) -> Op {
        Op {
            name,
            tier,
            pure_read: false,
            resource,
            audit_details: &[],
            run,
        }
    }

    /// Mark as a pure read.
    const fn pure(mut self) -> Op {
        self.pure_read = true;
        self
    }

    const fn details(mut self, fields: &'static [&'static str]) -> Op {
        self.audit_details = fields;
        self
    }

    /// Whether the audit log records it, given the audited tiers.
    pub(crate) fn audited(&self, tiers: &[String]) -> bool {
        self.tier
            .is_some_and(|t| tiers.iter().any(|x| x == t.as_str()))
    }

    /// The ACL operation it needs (`OPERATION_TO_ACL`): identity operations need none.
    pub(crate) fn acl_op(&self) -> Option<&'static str> {
        match self.tier? {
            Tier::Admin if self.name.starts_with("identity.") => None,
            t => Some(t.as_str()),
        }
    }
}

/// One domain: its prefix, the word in its unknown-operation message, the resource of
/// its unknown operations and its guard.
#[derive(Debug)]
pub(crate) struct Domain {
    pub(crate) prefix: &'static str,
    pub(crate) noun: &'static str,
    pub(crate) resource: Resource,
    pub(crate) guard: Option<Guard>,
}

/// The domains, in the real server's routing order.
pub(crate) static DOMAINS: &[Domain] = &[
    Domain {
        prefix: "store.",
        noun: "store",
        resource: Resource::Bucket,
        guard: Some(store::guard),
    },
    Domain {
        prefix: "rules.",
        noun: "rules",
        resource: Resource::Topic,
        guard: Some(rules::guard),
    },
    Domain {
        prefix: "identity.",
        noun: "identity",
        resource: Resource::None,
        guard: Some(identity::guard),
    },
    Domain {
        prefix: "auth.",
        noun: "auth",
        resource: Resource::None,
        guard: Some(auth::guard),
    },
    Domain {
        prefix: "audit.",
        noun: "audit",
        resource: Resource::None,
        guard: Some(audit::guard),
    },
    Domain {
        prefix: "procedures.",
        noun: "procedures",
        resource: Resource::Procedure,
        guard: None,
    },
    Domain {
        prefix: "server.",
        noun: "server",
        resource: Resource::None,
        guard: None,
    },
];

const BUCKET: Resource = Resource::Bucket;
const QUERY: Resource = Resource::Query;
const SUB: Resource = Resource::Subscription;
const TOPIC: Resource = Resource::Topic;
const PROC: Resource = Resource::Procedure;
const R: Option<Tier> = Some(Tier::Read);
const W: Option<Tier> = Some(Tier::Write);
const A: Option<Tier> = Some(Tier::Admin);
const N: Option<Tier> = None;
const NONE: Resource = Resource::None;

/// Every operation.
#[rustfmt::skip]
pub(crate) static OPS: &[Op] = &[
    // store
    Op::new("store.insert", W, BUCKET, store::insert),
    Op::new("store.get", R, BUCKET, store::get).pure(),
    Op::new("store.update", W, BUCKET, store::update),
    Op::new("store.delete", W, BUCKET, store::delete),
    Op::new("store.all", R, BUCKET, store::all).pure(),
    Op::new("store.where", R, BUCKET, store::where_).pure(),
    Op::new("store.findOne", R, BUCKET, store::find_one).pure(),
    Op::new("store.count", R, BUCKET, store::count).pure(),
    Op::new("store.first", R, BUCKET, store::first).pure(),
    Op::new("store.last", R, BUCKET, store::last).pure(),
    Op::new("store.paginate", R, BUCKET, store::paginate).pure(),
    Op::new("store.sum", R, BUCKET, store::aggregate).pure(),
    Op::new("store.avg", R, BUCKET, store::aggregate).pure(),
    Op::new("store.min", R, BUCKET, store::aggregate).pure(),
    Op::new("store.max", R, BUCKET, store::aggregate).pure(),
    Op::new("store.clear", W, BUCKET, store::clear),
    Op::new("store.buckets", R, BUCKET, store::buckets).pure(),
    Op::new("store.stats", R, BUCKET, store::stats).pure(),
    Op::new("store.subscribe", R, QUERY, store::subscribe).pure(),
    Op::new("store.unsubscribe", R, SUB, store::unsubscribe).pure(),
    Op::new("store.transaction", W, BUCKET, store::transaction),
    Op::new("store.defineBucket", A, BUCKET, store::define_bucket),
    Op::new("store.dropBucket", A, BUCKET, store::drop_bucket),
    Op::new("store.updateBucket", A, BUCKET, store::update_bucket),
    Op::new("store.getBucketSchema", A, BUCKET, store::get_bucket_schema).pure(),
    Op::new("store.defineQuery", A, BUCKET, store::define_query),
    Op::new("store.undefineQuery", A, BUCKET, store::undefine_query),
    Op::new("store.listQueries", A, BUCKET, store::list_queries).pure(),
    // rules
    Op::new("rules.subscribe", R, TOPIC, rules::subscribe),
    Op::new("rules.unsubscribe", R, TOPIC, rules::unsubscribe),
    Op::new("rules.emit", W, TOPIC, rules::emit),
    Op::new("rules.setFact", W, TOPIC, rules::set_fact),
    Op::new("rules.getFact", R, TOPIC, rules::get_fact),
    Op::new("rules.deleteFact", W, TOPIC, rules::delete_fact),
    Op::new("rules.queryFacts", R, TOPIC, rules::query_facts),
    Op::new("rules.getAllFacts", R, TOPIC, rules::get_all_facts),
    Op::new("rules.stats", R, TOPIC, rules::stats),
    Op::new("rules.registerRule", A, TOPIC, rules::register_rule),
    Op::new("rules.unregisterRule", A, TOPIC, rules::unregister_rule),
    Op::new("rules.updateRule", A, TOPIC, rules::update_rule),
    Op::new("rules.enableRule", A, TOPIC, rules::set_enabled),
    Op::new("rules.disableRule", A, TOPIC, rules::set_enabled),
    Op::new("rules.getRule", A, TOPIC, rules::get_rule),
    Op::new("rules.getRules", A, TOPIC, rules::get_rules),
    Op::new("rules.validateRule", A, TOPIC, rules::validate_rule),
    // identity
    Op::new("identity.login", A, NONE, identity::login).details(&["username"]),
    Op::new("identity.loginWithSecret", A, NONE, identity::login_with_secret),
    Op::new("identity.logout", A, NONE, identity::logout),
    Op::new("identity.whoami", N, NONE, identity::whoami),
    Op::new("identity.refreshSession", N, NONE, identity::refresh_session),
    Op::new("identity.createUser", A, NONE, identity::create_user).details(&["username"]),
    Op::new("identity.getUser", N, NONE, identity::get_user),
    Op::new("identity.updateUser", N, NONE, identity::update_user),
    Op::new("identity.deleteUser", A, NONE, identity::delete_user),
    Op::new("identity.listUsers", N, NONE, identity::list_users),
    Op::new("identity.enableUser", A, NONE, identity::enable_user),
    Op::new("identity.disableUser", A, NONE, identity::disable_user),
    Op::new("identity.changePassword", A, NONE, identity::change_password),
    Op::new("identity.resetPassword", A, NONE, identity::reset_password),
    Op::new("identity.createRole", A, NONE, identity::create_role),
    Op::new("identity.updateRole", N, NONE, identity::update_role),
    Op::new("identity.deleteRole", A, NONE, identity::delete_role),
    Op::new("identity.listRoles", N, NONE, identity::list_roles),
    Op::new("identity.assignRole", A, NONE, identity::assign_role).details(&["userId", "roleName"]),
    Op::new("identity.removeRole", A, NONE, identity::remove_role).details(&["userId", "roleName"]),
    Op::new("identity.getUserRoles", N, NONE, identity::get_user_roles),
    Op::new("identity.grant", A, NONE, identity::grant)
        .details(&["subjectType", "subjectId", "resourceType", "resourceName", "operations"]),
    Op::new("identity.revoke", A, NONE, identity::revoke)
        .details(&["subjectType", "subjectId", "resourceType", "resourceName", "operations"]),
    Op::new("identity.getAcl", N, NONE, identity::get_acl),
    Op::new("identity.myAccess", N, NONE, identity::my_access),
    Op::new("identity.getOwner", N, NONE, identity::get_owner),
    Op::new("identity.transferOwner", A, NONE, identity::transfer_owner)
        .details(&["resourceType", "resourceName", "newOwnerId"]),
    // auth
    Op::new("auth.login", N, NONE, auth::login),
    Op::new("auth.logout", N, NONE, auth::logout),
    Op::new("auth.whoami", N, NONE, auth::whoami),
    // audit
    Op::new("audit.query", A, NONE, audit::query),
    // procedures
    Op::new("procedures.register", A, PROC, procedures::register),
    Op::new("procedures.unregister", A, PROC, procedures::unregister),
    Op::new("procedures.update", A, PROC, procedures::update),
    Op::new("procedures.get", R, PROC, procedures::get),
    Op::new("procedures.list", A, PROC, procedures::list),
    Op::new("procedures.call", W, PROC, procedures::call),
    // server
    Op::new("server.stats", A, NONE, server::stats),
    Op::new("server.connections", A, NONE, server::connections),
];

/// The operation called `ty`, if known.
pub(crate) fn find(ty: &str) -> Option<&'static Op> {
    static INDEX: OnceLock<HashMap<&'static str, &'static Op>> = OnceLock::new();
    INDEX
        .get_or_init(|| OPS.iter().map(|op| (op.name, op)).collect())
        .get(ty)
        .copied()
}

/// The domain of `ty`, if any.
pub(crate) fn domain(ty: &str) -> Option<&'static Domain> {
    DOMAINS.iter().find(|d| ty.starts_with(d.prefix))
}

/// The tier of `ty` (`None` for unknown and untiered operations).
pub(crate) fn tier(ty: &str) -> Option<Tier> {
    find(ty).and_then(|op| op.tier)
}

/// The resource kind of `ty`: the operation's, else its domain's.
pub(crate) fn resource(ty: &str) -> Resource {
    find(ty)
        .map(|op| op.resource)
        .or_else(|| domain(ty).map(|d| d.resource))
        .unwrap_or(Resource::None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_is_listed_once_under_its_domain() {
        let mut seen = std::collections::HashSet::new();
        for op in OPS {
            assert!(seen.insert(op.name), "{} listed twice", op.name);
            assert!(domain(op.name).is_some(), "{} has no domain", op.name);
        }
    }

    #[test]
    fn pure_reads_are_read_tier_store_operations() {
        for op in OPS.iter().filter(|o| o.pure_read) {
            assert!(op.name.starts_with("store."), "{}", op.name);
            assert_ne!(op.tier, Some(Tier::Write), "{}", op.name);
        }
        assert!(find("store.get").is_some_and(|o| o.pure_read));
        assert!(find("store.insert").is_some_and(|o| !o.pure_read));
    }

    #[test]
    fn acl_operations_follow_tiers() {
        assert_eq!(find("store.get").and_then(Op::acl_op), Some("read"));
        assert_eq!(find("store.insert").and_then(Op::acl_op), Some("write"));
        assert_eq!(
            find("store.defineBucket").and_then(Op::acl_op),
            Some("admin")
        );
        assert_eq!(find("identity.createUser").and_then(Op::acl_op), None);
        assert_eq!(resource("store.nope"), Resource::Bucket);
        assert_eq!(resource("nope"), Resource::None);
    }
}
