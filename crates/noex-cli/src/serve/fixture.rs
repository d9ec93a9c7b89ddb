//! `--fixture`: the config the Python client's test launcher (`tests/fixtures/
//! start-server.mjs` of the `noex-client` sdist) takes as its only argument, mapped to
//! [`ServerSettings`] the way the launcher maps it onto the real server:
//!
//! - `buckets: [{name, schema}]` → bucket with key `id` (`{type: string, generated:
//!   uuid}` first, then the schema's fields, a schema `id` replacing the default);
//! - `queries: [{name, type: all|where|count, bucket, field?}]`;
//! - `rules: false` turns the rule engine off (anything else leaves it on);
//! - `auth: {builtIn: true, adminSecret}` (secret defaults to `test-secret`), or
//!   `auth: {sessions: {token: {userId, roles, expiresAt?}}, required?, permissions?:
//!   {checkRoles: [...]}}`;
//! - `audit: {tiers?}` (present = on);
//! - `port` (0 or absent: any free port); the host is always 127.0.0.1.
//!
//! Extensions (not read by the launcher): bucket `indexes`, `ttl`, `maxSize`; built-in
//! `auth.sessionTtl` (ms, as the real server's config names it).

use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::error::ServeError;
use super::json_check::Checker;
use super::settings::{Audit, AuditTier, Auth, Bucket, Query, QueryKind, ServerSettings, Session};

/// The admin secret the launcher uses when the fixture gives none.
pub(crate) const DEFAULT_ADMIN_SECRET: &str = "test-secret";

/// Read the `--fixture` argument: JSON text, or `@path` to read it from a file.
pub(crate) fn load(arg: &str) -> Result<ServerSettings, ServeError> {
    let text = match arg.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).map_err(|e| {
            ServeError::Fixture(vec![format!("could not read fixture file '{path}': {e}")])
        })?,
        None => arg.to_string(),
    };
    parse(&text).map_err(ServeError::Fixture)
}

/// An object's members in the order they were written.
struct Ordered(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Ordered, A::Error> {
                let mut out: Vec<(String, Value)> = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, Value>()? {
                    // A repeated key replaces the earlier value in place (as JSON.parse).
                    match out.iter_mut().find(|(ek, _)| *ek == k) {
                        Some(e) => e.1 = v,
                        None => out.push((k, v)),
                    }
                }
                Ok(Ordered(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// The bucket schemas' field names in written order, per bucket (`None` where the
/// structure is not as expected: the checks then report the problem).
fn schema_orders(text: &str) -> Vec<Option<Vec<String>>> {
    #[derive(Deserialize)]
    struct RawBucket {
        schema: Option<Ordered>,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Item {
        Bucket(RawBucket),
        Other(IgnoredAny),
    }
    #[derive(Deserialize)]
    struct RawFixture {
        #[serde(default)]
        buckets: Vec<Item>,
    }
    match serde_json::from_str::<RawFixture>(text) {
        Ok(f) => f
            .buckets
            .into_iter()
            .map(|b| match b {
                Item::Bucket(RawBucket { schema: Some(s) }) => {
                    Some(s.0.into_iter().map(|(k, _)| k).collect())
                }
                Item::Bucket(_) | Item::Other(_) => None,
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Parse a fixture's JSON text (strict: unknown keys and wrong types are errors).
pub(crate) fn parse(text: &str) -> Result<ServerSettings, Vec<String>> {
    let v: Value = serde_json::from_str(text).map_err(|e| vec![format!("invalid JSON: {e}")])?;
    let orders = schema_orders(text);
    let mut c = Checker::default();
    let top = ["buckets", "queries", "auth", "audit", "rules", "port"];
    let Some(m) = c.object("", &v, &top) else {
        return Err(c.errors);
    };
    let mut s = ServerSettings {
        port: 0,
        host: "127.0.0.1".into(),
        ..ServerSettings::default()
    };
    if let Some(b) = m.get("buckets") {
        s.buckets = buckets(&mut c, b, &orders);
    }
    if let Some(q) = m.get("queries") {
        s.queries = queries(&mut c, q);
    }
    if let Some(r) = m.get("rules") {
        s.rules = c.bool("rules", r).unwrap_or(true);
    }
    if let Some(p) = m.get("port") {
        s.port = c.int_in("port", p, 65535).map_or(0, |p| p as u16);
    }
    if let Some(a) = m.get("audit") {
        s.audit = audit(&mut c, a);
    }
    if let Some(a) = m.get("auth") {
        s.auth = auth(&mut c, a);
    }
    c.finish().map(|()| s)
}

fn array<'a>(c: &mut Checker, path: &str, v: &'a Value) -> &'a [Value] {
    match v {
        Value::Array(a) => a,
        _ => {
            c.error(format!(
                "\"{path}\" must be an array (got {})",
                super::json_check::describe(v)
            ));
            &[]
        }
    }
}

fn buckets(c: &mut Checker, v: &Value, orders: &[Option<Vec<String>>]) -> Vec<Bucket> {
    let mut out = Vec::new();
    for (i, b) in array(c, "buckets", v).iter().enumerate() {
        let path = format!("buckets[{i}]");
        let known = ["name", "schema", "indexes", "ttl", "maxSize"];
        let Some(o) = c.object(&path, b, &known) else {
            continue;
        };
        let name = c
            .required(&path, o, "name")
            .and_then(|n| c.non_empty_string(&format!("{path}.name"), n));
        let mut fields: Vec<(String, Value)> = Vec::new();
        if let Some(schema) = o.get("schema") {
            let spath = format!("{path}.schema");
            if let Some(sm) = object_any(c, &spath, schema) {
                let order = orders.get(i).cloned().flatten();
                let keys: Vec<String> = order.unwrap_or_else(|| sm.keys().cloned().collect());
                for k in keys {
                    let Some(def) = sm.get(&k) else { continue };
                    if !def.is_object() {
                        c.error(format!(
                            "\"{spath}.{k}\" must be an object (a field definition such as \
                             {{\"type\": \"string\"}}; got {})",
                            super::json_check::describe(def)
                        ));
                        continue;
                    }
                    fields.push((k, def.clone()));
                }
            }
        }
        // The launcher puts `id: {type: string, generated: uuid}` first; a schema `id`
        // replaces its definition but keeps the first place.
        let id_def = match fields.iter().position(|(k, _)| k == "id") {
            Some(p) => fields.remove(p).1,
            None => serde_json::json!({"type": "string", "generated": "uuid"}),
        };
        fields.insert(0, ("id".into(), id_def));
        let indexes = o
            .get("indexes")
            .and_then(|v| c.strings(&format!("{path}.indexes"), v))
            .unwrap_or_default();
        let ttl = o.get("ttl").and_then(|t| match t {
            Value::Number(n) if n.as_f64().is_some_and(|f| f > 0.0) => Some(t.clone()),
            Value::String(s) if !s.is_empty() => Some(t.clone()),
            _ => {
                c.error(format!(
                    "\"{path}.ttl\" must be a positive number of milliseconds or a duration \
                     string such as \"1h\" (got {})",
                    super::json_check::describe(t)
                ));
                None
            }
        });
        let max_size = o
            .get("maxSize")
            .and_then(|m| c.positive_int(&format!("{path}.maxSize"), m));
        if let Some(name) = name {
            out.push(Bucket {
                name,
                fields,
                indexes,
                ttl,
                max_size,
            });
        }
    }
    out
}

/// An object whose keys are free (no unknown-key check).
fn object_any<'a>(c: &mut Checker, path: &str, v: &'a Value) -> Option<&'a Map<String, Value>> {
    match v {
        Value::Object(m) => Some(m),
        _ => {
            c.error(format!(
                "\"{path}\" must be an object (got {})",
                super::json_check::describe(v)
            ));
            None
        }
    }
}

fn queries(c: &mut Checker, v: &Value) -> Vec<Query> {
    let mut out = Vec::new();
    for (i, q) in array(c, "queries", v).iter().enumerate() {
        let path = format!("queries[{i}]");
        let Some(o) = c.object(&path, q, &["name", "type", "bucket", "field"]) else {
            continue;
        };
        let name = c
            .required(&path, o, "name")
            .and_then(|n| c.non_empty_string(&format!("{path}.name"), n));
        let bucket = c
            .required(&path, o, "bucket")
            .and_then(|n| c.non_empty_string(&format!("{path}.bucket"), n));
        let ty = c
            .required(&path, o, "type")
            .and_then(|n| c.string(&format!("{path}.type"), n));
        let kind = match ty.as_deref() {
            Some("all") => Some(QueryKind::All),
            Some("count") => Some(QueryKind::Count),
            Some("where") => c
                .required(&path, o, "field")
                .and_then(|f| c.non_empty_string(&format!("{path}.field"), f))
                .map(|field| QueryKind::Where { field }),
            Some(other) => {
                c.error(format!(
                    "\"{path}.type\" must be \"all\", \"where\" or \"count\" (got \"{other}\")"
                ));
                None
            }
            None => None,
        };
        if let (Some(name), Some(bucket), Some(kind)) = (name, bucket, kind) {
            out.push(Query { name, bucket, kind });
        }
    }
    out
}

fn audit(c: &mut Checker, v: &Value) -> Option<Audit> {
    let o = c.object("audit", v, &["tiers"])?;
    let mut a = Audit::default();
    if let Some(t) = o.get("tiers") {
        let names = c.strings("audit.tiers", t)?;
        let mut tiers = Vec::new();
        for (i, n) in names.iter().enumerate() {
            match AuditTier::parse(n) {
                Some(t) => tiers.push(t),
                None => c.error(format!(
                    "\"audit.tiers[{i}]\" must be \"admin\", \"write\" or \"read\" (got \"{n}\")"
                )),
            }
        }
        a.tiers = Some(tiers);
    }
    Some(a)
}

fn auth(c: &mut Checker, v: &Value) -> Auth {
    let known = [
        "builtIn",
        "adminSecret",
        "sessionTtl",
        "sessions",
        "required",
        "permissions",
    ];
    let Some(o) = c.object("auth", v, &known) else {
        return Auth::None;
    };
    let built_in = o
        .get("builtIn")
        .and_then(|b| c.bool("auth.builtIn", b))
        .unwrap_or(false);
    if built_in {
        let admin_secret = o
            .get("adminSecret")
            .and_then(|s| c.string("auth.adminSecret", s))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| DEFAULT_ADMIN_SECRET.into());
        let session_ttl_ms = o
            .get("sessionTtl")
            .and_then(|t| c.milliseconds("auth.sessionTtl", t));
        for k in ["sessions", "required", "permissions"] {
            if o.contains_key(k) {
                c.error(format!(
                    "\"auth.{k}\" cannot be used with \"auth.builtIn\": true"
                ));
            }
        }
        return Auth::BuiltIn {
            admin_secret,
            session_ttl_ms,
        };
    }
    if let Some(s) = o.get("adminSecret") {
        c.string("auth.adminSecret", s);
        c.error("\"auth.adminSecret\" needs \"auth.builtIn\": true".into());
    }
    if let Some(t) = o.get("sessionTtl") {
        c.milliseconds("auth.sessionTtl", t);
        c.error("\"auth.sessionTtl\" needs \"auth.builtIn\": true".into());
    }
    let Some(sessions_v) = o.get("sessions") else {
        // The launcher configures no auth at all without builtIn or sessions.
        for k in ["required", "permissions"] {
            if o.contains_key(k) {
                c.error(format!("\"auth.{k}\" needs \"auth.sessions\""));
            }
        }
        return Auth::None;
    };
    let mut sessions = Vec::new();
    if let Some(sm) = object_any(c, "auth.sessions", sessions_v) {
        for (token, sv) in sm {
            // The token is a secret: name the entry by its user id or position only.
            let path = format!("auth.sessions[#{}]", sessions.len() + 1);
            let Some(so) = c.object(&path, sv, &["userId", "roles", "expiresAt", "metadata"])
            else {
                continue;
            };
            let user_id = c
                .required(&path, so, "userId")
                .and_then(|u| c.non_empty_string(&format!("{path}.userId"), u));
            let roles = match so.get("roles") {
                Some(r) => c.strings(&format!("{path}.roles"), r),
                None => Some(Vec::new()),
            };
            let expires_at = so.get("expiresAt").and_then(|e| match e.as_i64() {
                Some(n) => Some(n),
                None => {
                    c.error(format!(
                        "\"{path}.expiresAt\" must be an integer (ms since the epoch; got {})",
                        super::json_check::describe(e)
                    ));
                    None
                }
            });
            if let (Some(user_id), Some(roles)) = (user_id, roles) {
                sessions.push(Session {
                    token: token.clone(),
                    user_id,
                    roles,
                    expires_at,
                });
            }
        }
    }
    let required = o
        .get("required")
        .and_then(|r| c.bool("auth.required", r))
        .unwrap_or(true);
    let check_roles = o.get("permissions").and_then(|p| {
        let po = c.object("auth.permissions", p, &["checkRoles"])?;
        let r = c.required("auth.permissions", po, "checkRoles")?;
        c.strings("auth.permissions.checkRoles", r)
    });
    Auth::Sessions {
        sessions,
        required,
        check_roles,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(v: Value) -> ServerSettings {
        parse(&v.to_string()).unwrap()
    }
    fn err(v: Value) -> Vec<String> {
        parse(&v.to_string()).unwrap_err()
    }

    #[test]
    fn empty_fixture_is_the_launchers_defaults() {
        let s = parse("{}").unwrap();
        assert_eq!(s.port, 0);
        assert_eq!(s.host, "127.0.0.1");
        assert!(s.rules);
        assert_eq!(s.auth, Auth::None);
        assert_eq!(s.audit, None);
        assert!(s.buckets.is_empty() && s.queries.is_empty());
    }

    #[test]
    fn buckets_keep_field_order_with_id_first() {
        let s = parse(
            r#"{"buckets": [{"name": "users", "schema": {
                "zeta": {"type": "string", "required": true},
                "alpha": {"type": "string", "default": "user"}}}]}"#,
        )
        .unwrap();
        let b = &s.buckets[0];
        assert_eq!(b.name, "users");
        let keys: Vec<_> = b.fields.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["id", "zeta", "alpha"]);
        assert_eq!(
            b.fields[0].1,
            json!({"type": "string", "generated": "uuid"})
        );
        assert_eq!(b.fields[1].1, json!({"type": "string", "required": true}));
    }

    #[test]
    fn schema_id_replaces_the_default_in_first_place() {
        let s = parse(
            r#"{"buckets": [{"name": "b", "schema": {"x": {"type": "number"},
                "id": {"type": "number", "generated": "autoincrement"}}}]}"#,
        )
        .unwrap();
        let keys: Vec<_> = s.buckets[0]
            .fields
            .iter()
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(keys, ["id", "x"]);
        assert_eq!(s.buckets[0].fields[0].1["generated"], "autoincrement");
    }

    #[test]
    fn bucket_extensions() {
        let s =
            ok(json!({"buckets": [{"name": "b", "indexes": ["x"], "ttl": "1h", "maxSize": 5}]}));
        let b = &s.buckets[0];
        assert_eq!(b.indexes, vec!["x"]);
        assert_eq!(b.ttl, Some(json!("1h")));
        assert_eq!(b.max_size, Some(5));
        assert_eq!(b.fields.len(), 1);
    }

    #[test]
    fn queries_of_every_type() {
        let s = ok(json!({"queries": [
            {"name": "a", "type": "all", "bucket": "users"},
            {"name": "w", "type": "where", "bucket": "users", "field": "role"},
            {"name": "c", "type": "count", "bucket": "users"},
        ]}));
        assert_eq!(
            s.queries,
            vec![
                Query {
                    name: "a".into(),
                    bucket: "users".into(),
                    kind: QueryKind::All
                },
                Query {
                    name: "w".into(),
                    bucket: "users".into(),
                    kind: QueryKind::Where {
                        field: "role".into()
                    }
                },
                Query {
                    name: "c".into(),
                    bucket: "users".into(),
                    kind: QueryKind::Count
                },
            ]
        );
    }

    #[test]
    fn rules_port_audit() {
        let s = ok(json!({"rules": false, "port": 4567, "audit": {}}));
        assert!(!s.rules);
        assert_eq!(s.port, 4567);
        assert_eq!(s.audit, Some(Audit { tiers: None }));
        let s = ok(json!({"audit": {"tiers": ["admin", "write", "read"]}}));
        assert_eq!(
            s.audit.unwrap().tiers,
            Some(vec![AuditTier::Admin, AuditTier::Write, AuditTier::Read])
        );
    }

    #[test]
    fn built_in_auth() {
        let s = ok(json!({"auth": {"builtIn": true, "adminSecret": "sec"}}));
        assert_eq!(
            s.auth,
            Auth::BuiltIn {
                admin_secret: "sec".into(),
                session_ttl_ms: None,
            }
        );
        let s = ok(json!({"auth": {"builtIn": true, "sessionTtl": 1500}}));
        assert_eq!(
            s.auth,
            Auth::BuiltIn {
                admin_secret: "test-secret".into(),
                session_ttl_ms: Some(1500),
            }
        );
        let s = ok(json!({"auth": {"builtIn": true}}));
        assert_eq!(
            s.auth,
            Auth::BuiltIn {
                admin_secret: "test-secret".into(),
                session_ttl_ms: None,
            }
        );
        let s = ok(json!({"auth": {"builtIn": true, "adminSecret": ""}}));
        assert_eq!(
            s.auth,
            Auth::BuiltIn {
                admin_secret: "test-secret".into(),
                session_ttl_ms: None,
            }
        );
    }

    #[test]
    fn session_auth() {
        let s = ok(json!({"auth": {
            "sessions": {
                "admin": {"userId": "admin-1", "roles": ["admin"]},
                "old": {"userId": "u", "roles": [], "expiresAt": 1000, "metadata": {"a": 1}},
            },
            "required": false,
            "permissions": {"checkRoles": ["admin"]},
        }}));
        let Auth::Sessions {
            sessions,
            required,
            check_roles,
        } = s.auth
        else {
            panic!("sessions expected");
        };
        assert_eq!(sessions.len(), 2);
        let admin = sessions.iter().find(|s| s.token == "admin").unwrap();
        assert_eq!(admin.user_id, "admin-1");
        assert_eq!(admin.roles, vec!["admin"]);
        let old = sessions.iter().find(|s| s.token == "old").unwrap();
        assert_eq!(old.expires_at, Some(1000));
        assert!(!required);
        assert_eq!(check_roles, Some(vec!["admin".to_string()]));
    }

    #[test]
    fn auth_without_builtin_or_sessions_is_no_auth() {
        assert_eq!(ok(json!({"auth": {}})).auth, Auth::None);
        assert_eq!(ok(json!({"auth": {"builtIn": false}})).auth, Auth::None);
    }

    #[test]
    fn errors_name_the_key() {
        let cases: Vec<(Value, &str)> = vec![
            (json!([]), "the top level must be an object (got an array of 0 items)"),
            (json!({"bucket": []}), "unknown key \"bucket\" (known keys: buckets, queries, auth, audit, rules, port)"),
            (json!({"buckets": {}}), "\"buckets\" must be an array (got an object)"),
            (json!({"buckets": [1]}), "\"buckets[0]\" must be an object (got number 1)"),
            (json!({"buckets": [{}]}), "\"buckets[0].name\" is required"),
            (json!({"buckets": [{"name": 1}]}), "\"buckets[0].name\" must be a non-empty string (got number 1)"),
            (json!({"buckets": [{"name": "b", "schema": 1}]}), "\"buckets[0].schema\" must be an object (got number 1)"),
            (json!({"buckets": [{"name": "b", "schema": {"x": "string"}}]}), "\"buckets[0].schema.x\" must be an object (a field definition such as {\"type\": \"string\"}; got a string of 6 characters)"),
            (json!({"buckets": [{"name": "b", "key": "x"}]}), "unknown key \"buckets[0].key\" (known keys of \"buckets[0]\": name, schema, indexes, ttl, maxSize)"),
            (json!({"buckets": [{"name": "b", "ttl": 0}]}), "\"buckets[0].ttl\" must be a positive number of milliseconds or a duration string such as \"1h\" (got number 0)"),
            (json!({"buckets": [{"name": "b", "maxSize": -1}]}), "\"buckets[0].maxSize\" must be a positive integer (got number -1)"),
            (json!({"queries": [{"name": "q", "bucket": "b"}]}), "\"queries[0].type\" is required"),
            (json!({"queries": [{"name": "q", "type": "sum", "bucket": "b"}]}), "\"queries[0].type\" must be \"all\", \"where\" or \"count\" (got \"sum\")"),
            (json!({"queries": [{"name": "q", "type": "where", "bucket": "b"}]}), "\"queries[0].field\" is required"),
            (json!({"queries": [{"type": "all", "bucket": "b"}]}), "\"queries[0].name\" is required"),
            (json!({"queries": [{"name": "q", "type": "all"}]}), "\"queries[0].bucket\" is required"),
            (json!({"rules": "no"}), "\"rules\" must be a boolean (got a string of 2 characters)"),
            (json!({"port": 70000}), "\"port\" must be an integer from 0 to 65535 (got number 70000)"),
            (json!({"port": "1"}), "\"port\" must be an integer from 0 to 65535 (got a string of 1 characters)"),
            (json!({"audit": true}), "\"audit\" must be an object (got boolean true)"),
            (json!({"audit": {"tiers": ["all"]}}), "\"audit.tiers[0]\" must be \"admin\", \"write\" or \"read\" (got \"all\")"),
            (json!({"audit": {"level": 1}}), "unknown key \"audit.level\" (known keys of \"audit\": tiers)"),
            (json!({"auth": 1}), "\"auth\" must be an object (got number 1)"),
            (json!({"auth": {"builtIn": "yes"}}), "\"auth.builtIn\" must be a boolean (got a string of 3 characters)"),
            (json!({"auth": {"builtIn": true, "sessions": {}}}), "\"auth.sessions\" cannot be used with \"auth.builtIn\": true"),
            (json!({"auth": {"adminSecret": "s"}}), "\"auth.adminSecret\" needs \"auth.builtIn\": true"),
            (json!({"auth": {"sessionTtl": 1000}}), "\"auth.sessionTtl\" needs \"auth.builtIn\": true"),
            (json!({"auth": {"builtIn": true, "sessionTtl": 0}}), "\"auth.sessionTtl\" must be a positive integer of milliseconds (got number 0)"),
            (json!({"auth": {"builtIn": true, "sessionTtl": "1h"}}), "\"auth.sessionTtl\" must be a positive integer of milliseconds (got a string of 2 characters)"),
            (json!({"auth": {"required": false}}), "\"auth.required\" needs \"auth.sessions\""),
            (json!({"auth": {"sessions": []}}), "\"auth.sessions\" must be an object (got an array of 0 items)"),
            (json!({"auth": {"sessions": {"tok": 1}}}), "\"auth.sessions[#1]\" must be an object (got number 1)"),
            (json!({"auth": {"sessions": {"tok": {"roles": []}}}}), "\"auth.sessions[#1].userId\" is required"),
            (json!({"auth": {"sessions": {"tok": {"userId": "u", "roles": "admin"}}}}), "\"auth.sessions[#1].roles\" must be an array of strings (got a string of 5 characters)"),
            (json!({"auth": {"sessions": {"tok": {"userId": "u", "expiresAt": "soon"}}}}), "\"auth.sessions[#1].expiresAt\" must be an integer (ms since the epoch; got a string of 4 characters)"),
            (json!({"auth": {"sessions": {}, "required": 0}}), "\"auth.required\" must be a boolean (got number 0)"),
            (json!({"auth": {"sessions": {}, "permissions": {}}}), "\"auth.permissions.checkRoles\" is required"),
            (json!({"auth": {"sessions": {}, "permissions": {"checkRoles": "admin"}}}), "\"auth.permissions.checkRoles\" must be an array of strings (got a string of 5 characters)"),
            (json!({"auth": {"sessions": {}, "permissions": {"check": 1}}}), "unknown key \"auth.permissions.check\" (known keys of \"auth.permissions\": checkRoles)"),
        ];
        for (input, expected) in cases {
            let e = err(input.clone());
            assert!(e.contains(&expected.to_string()), "{input}: {e:?}");
        }
    }

    #[test]
    fn invalid_json() {
        let e = parse("{").unwrap_err();
        assert!(e[0].starts_with("invalid JSON: "), "{e:?}");
    }

    #[test]
    fn tokens_are_never_in_messages() {
        let e = err(json!({"auth": {"sessions": {"s3cr3t-token": {"roles": 5}}}}));
        assert!(e.iter().all(|m| !m.contains("s3cr3t-token")), "{e:?}");
    }

    #[test]
    fn fixture_from_file() {
        let dir = std::env::temp_dir().join(format!("noex-cli-fixture-{}", std::process::id()));
        std::fs::write(&dir, r#"{"port": 1234}"#).unwrap();
        let s = load(&format!("@{}", dir.display())).unwrap();
        assert_eq!(s.port, 1234);
        let _ = std::fs::remove_file(&dir);
        assert!(matches!(
            load("@/nonexistent/x.json"),
            Err(ServeError::Fixture(_))
        ));
        assert!(matches!(load("not json"), Err(ServeError::Fixture(_))));
    }
}
