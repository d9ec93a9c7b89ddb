//! The shortcuts: `get`, `insert`, `query`, `emit`, `fact ...`, `stats`, `whoami`. Each
//! is one operation of the catalogue with its fields filled in from the arguments.

use noex_tokio::proto::ops::OpKind;
use serde_json::{Map, Value};

use crate::client::args::{
    EmitArgs, FactArgs, FactCommand, GetArgs, InsertArgs, PlainArgs, QueryArgs,
};
use crate::client::call::request_and_print;
use crate::client::failure::Failure;
use crate::client::input::{json_arg, lenient, object_arg};

fn fields<const N: usize>(pairs: [(&str, Value); N]) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// A key: a JSON number as a number, anything else as the string given.
fn key_value(key: &str) -> Value {
    match serde_json::from_str::<Value>(key) {
        Ok(n @ Value::Number(_)) => n,
        _ => Value::String(key.to_string()),
    }
}

/// `noex get BUCKET KEY`.
pub(crate) fn get(a: &GetArgs) -> Result<(), Failure> {
    let f = fields([
        ("bucket", Value::String(a.bucket.clone())),
        ("key", key_value(&a.key)),
    ]);
    request_and_print(&a.conn, &a.out, OpKind::StoreGet, &f, None)
}

/// `noex insert BUCKET JSON`.
pub(crate) fn insert(a: &InsertArgs) -> Result<(), Failure> {
    let data = object_arg(&a.data, "the record")?;
    let f = fields([
        ("bucket", Value::String(a.bucket.clone())),
        ("data", Value::Object(data)),
    ]);
    request_and_print(&a.conn, &a.out, OpKind::StoreInsert, &f, None)
}

/// `noex query BUCKET [FILTER]`.
pub(crate) fn query(a: &QueryArgs) -> Result<(), Failure> {
    let bucket = ("bucket", Value::String(a.bucket.clone()));
    match &a.filter {
        Some(filter) => {
            let filter = object_arg(filter, "the filter")?;
            let f = fields([bucket, ("filter", Value::Object(filter))]);
            request_and_print(&a.conn, &a.out, OpKind::StoreWhere, &f, None)
        }
        None => request_and_print(&a.conn, &a.out, OpKind::StoreAll, &fields([bucket]), None),
    }
}

/// `noex emit TOPIC [JSON]`.
pub(crate) fn emit(a: &EmitArgs) -> Result<(), Failure> {
    let mut f = fields([("topic", Value::String(a.topic.clone()))]);
    if let Some(data) = &a.data {
        f.insert("data".into(), json_arg(data, "the event data")?);
    }
    request_and_print(&a.conn, &a.out, OpKind::RulesEmit, &f, None)
}

/// `noex fact get|set|delete|query`.
pub(crate) fn fact(a: &FactArgs) -> Result<(), Failure> {
    let key = |k: &str| ("key", Value::String(k.to_string()));
    match &a.command {
        FactCommand::Get { key: k, conn, out } => {
            request_and_print(conn, out, OpKind::RulesGetFact, &fields([key(k)]), None)
        }
        FactCommand::Set {
            key: k,
            value,
            conn,
            out,
        } => {
            let value = if value == "-" {
                json_arg(value, "the value")?
            } else {
                lenient(value)
            };
            let f = fields([key(k), ("value", value)]);
            request_and_print(conn, out, OpKind::RulesSetFact, &f, None)
        }
        FactCommand::Delete { key: k, conn, out } => {
            request_and_print(conn, out, OpKind::RulesDeleteFact, &fields([key(k)]), None)
        }
        FactCommand::Query { pattern, conn, out } => match pattern {
            Some(p) => {
                let f = fields([("pattern", Value::String(p.clone()))]);
                request_and_print(conn, out, OpKind::RulesQueryFacts, &f, None)
            }
            None => request_and_print(conn, out, OpKind::RulesGetAllFacts, &Map::new(), None),
        },
    }
}

/// `noex stats`.
pub(crate) fn stats(a: &PlainArgs) -> Result<(), Failure> {
    request_and_print(&a.conn, &a.out, OpKind::ServerStats, &Map::new(), None)
}

/// `noex whoami`: `identity.whoami` when logged in with `--user`, else `auth.whoami`
/// (then `identity.whoami` on a server without `auth.*`).
pub(crate) fn whoami(a: &PlainArgs) -> Result<(), Failure> {
    let empty = Map::new();
    if a.conn.user.is_some() {
        request_and_print(&a.conn, &a.out, OpKind::IdentityWhoami, &empty, None)
    } else {
        request_and_print(
            &a.conn,
            &a.out,
            OpKind::AuthWhoami,
            &empty,
            Some(OpKind::IdentityWhoami),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(key_value("12"), Value::from(12));
        assert_eq!(key_value("u1"), Value::from("u1"));
        assert_eq!(key_value("true"), Value::from("true"));
        assert_eq!(key_value("\"x\""), Value::from("\"x\""));
    }
}
