//! `store.*`: records, queries, subscriptions, transactions and bucket/query admin.

use serde_json::Value;

use super::{opt_obj, req_key, req_obj, req_pos_int, req_str};
use crate::config::QueryKind;
use crate::error::{OpError, OpResult};
use crate::json::{obj, KeyOrder};
use crate::state::{Core, Req};
use crate::store::tx_commit::{self, TxWrites};

/// Runs before every `store.*` operation: with built-in identity, system buckets (`_*`)
/// are out of reach.
pub(crate) fn guard(c: &mut Core, r: &Req<'_>) -> Result<(), OpError> {
    if c.identity.is_none() {
        return Ok(());
    }
    let body = r.body;
    for f in ["bucket", "name"] {
        if let Some(Value::String(b)) = body.get(f) {
            if b.starts_with('_') {
                return Err(OpError::forbidden(format!(
                    "Cannot access system bucket \"{b}\" directly"
                )));
            }
        }
    }
    if r.ty == "store.transaction" {
        if let Some(Value::Array(ops)) = body.get("operations") {
            for op in ops {
                if let Some(Value::String(b)) = op.get("bucket") {
                    if b.starts_with('_') {
                        return Err(OpError::forbidden(format!(
                            "Cannot access system bucket \"{b}\" in transaction"
                        )));
                    }
                }
            }
        }
    }
    Ok(())
}

fn bucket_not_defined(name: &str) -> OpError {
    OpError::new(
        "BUCKET_NOT_DEFINED",
        format!("Bucket \"{name}\" does not exist"),
    )
}

pub(crate) fn insert(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    let b = req_str(r.body, "bucket")?;
    let d = req_obj(r.body, "data")?;
    c.store.insert(&b, &d)
}

pub(crate) fn get(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    let b = req_str(r.body, "bucket")?;
    let k = req_key(r.body)?;
    c.store.get(&b, &k)
}

pub(crate) fn update(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    let b = req_str(r.body, "bucket")?;
    let k = req_key(r.body)?;
    let d = req_obj(r.body, "data")?;
    c.store.update(&b, &k, &d)
}

pub(crate) fn delete(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    let b = req_str(r.body, "bucket")?;
    let k = req_key(r.body)?;
    c.store.delete(&b, &k)?;
    Ok(obj([("deleted", true.into())]))
}

pub(crate) fn all(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    c.store.all(&req_str(r.body, "bucket")?)
}

pub(crate) fn where_(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    let b = req_str(r.body, "bucket")?;
    let f = req_obj(r.body, "filter")?;
    c.store.where_(&b, &f)
}

pub(crate) fn find_one(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    let b = req_str(r.body, "bucket")?;
    let f = req_obj(r.body, "filter")?;
    c.store.find_one(&b, &f)
}

pub(crate) fn count(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    let b = req_str(r.body, "bucket")?;
    let f = opt_obj(r.body, "filter")?;
    c.store.count(&b, f.as_ref())
}

pub(crate) fn first(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    let b = req_str(r.body, "bucket")?;
    let n = req_pos_int(r.body, "n")?;
    c.store.first(&b, n)
}

pub(crate) fn last(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    let b = req_str(r.body, "bucket")?;
    let n = req_pos_int(r.body, "n")?;
    c.store.last(&b, n)
}

pub(crate) fn paginate(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    let b = req_str(r.body, "bucket")?;
    let limit = req_pos_int(r.body, "limit")?;
    c.store.paginate(&b, limit, r.body.get("after"))
}

pub(crate) fn clear(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    c.store.clear(&req_str(r.body, "bucket")?)?;
    Ok(obj([("cleared", true.into())]))
}

/// `store.sum`, `store.avg`, `store.min`, `store.max`.
pub(crate) fn aggregate(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    let b = req_str(r.body, "bucket")?;
    let field = req_str(r.body, "field")?;
    let f = opt_obj(r.body, "filter")?;
    let op = r.ty.strip_prefix("store.").unwrap_or(r.ty);
    c.store.aggregate(op, &b, &field, f.as_ref())
}

pub(crate) fn buckets(c: &mut Core, _r: &mut Req<'_>) -> OpResult {
    Ok(c.store.buckets_info(c.identity.is_some()))
}

pub(crate) fn stats(c: &mut Core, _r: &mut Req<'_>) -> OpResult {
    Ok(c.store.stats())
}

pub(crate) fn subscribe(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    c.check_sub_limit(r.conn)?;
    let query = req_str(r.body, "query")?;
    let id = c.next_sub_id();
    let params = r.body.get("params").filter(|p| !p.is_null()).cloned();
    let data = c.store.subscribe(r.conn, id.clone(), &query, params)?;
    Ok(obj([("subscriptionId", id.into()), ("data", data)]))
}

pub(crate) fn unsubscribe(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    let id = req_str(r.body, "subscriptionId")?;
    if c.store.unsubscribe(r.conn, &id) {
        Ok(obj([("unsubscribed", true.into())]))
    } else {
        Err(OpError::not_found(format!(
            "Subscription \"{id}\" not found"
        )))
    }
}

pub(crate) fn define_bucket(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    let name = req_str(r.body, "name")?;
    let config = req_obj(r.body, "config")?;
    let order = KeyOrder::parse(r.raw);
    c.store
        .define_bucket(&name, &config, order.at(&["config"]))?;
    c.own(r.conn, "bucket", &name);
    Ok(obj([("name", name.into()), ("created", true.into())]))
}

pub(crate) fn drop_bucket(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    let name = req_str(r.body, "name")?;
    if !c.store.drop_bucket(&name) {
        return Err(bucket_not_defined(&name));
    }
    if let Some(i) = &mut c.identity {
        i.remove_ownership("bucket", &name);
    }
    Ok(obj([("name", name.into()), ("dropped", true.into())]))
}

pub(crate) fn update_bucket(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    let name = req_str(r.body, "name")?;
    let updates = req_obj(r.body, "updates")?;
    let order = KeyOrder::parse(r.raw);
    c.store
        .update_bucket(&name, &updates, order.at(&["updates"]))?;
    Ok(obj([("name", name.into()), ("updated", true.into())]))
}

pub(crate) fn get_bucket_schema(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    let name = req_str(r.body, "name")?;
    let config = c
        .store
        .bucket_schema(&name)
        .ok_or_else(|| bucket_not_defined(&name))?;
    Ok(obj([("name", name.into()), ("config", config)]))
}

pub(crate) fn define_query(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    let name = req_str(r.body, "name")?;
    let config = req_obj(r.body, "config")?;
    c.store
        .define_query(&name, QueryKind::Declarative(config))?;
    c.own(r.conn, "query", &name);
    Ok(obj([("name", name.into()), ("defined", true.into())]))
}

pub(crate) fn undefine_query(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    let name = req_str(r.body, "name")?;
    if !c.store.undefine_query(&name) {
        return Err(OpError::new(
            "QUERY_NOT_DEFINED",
            format!("Query \"{name}\" is not defined"),
        ));
    }
    if let Some(i) = &mut c.identity {
        i.remove_ownership("query", &name);
    }
    Ok(obj([("name", name.into()), ("undefined", true.into())]))
}

pub(crate) fn list_queries(c: &mut Core, _r: &mut Req<'_>) -> OpResult {
    Ok(c.store.list_queries())
}

pub(crate) fn transaction(c: &mut Core, r: &mut Req<'_>) -> OpResult {
    let body = r.body;
    const OPS: [&str; 7] = [
        "get", "insert", "update", "delete", "where", "findOne", "count",
    ];
    let Some(Value::Array(ops)) = body.get("operations") else {
        return Err(OpError::validation(
            "Missing or invalid \"operations\": expected array",
        ));
    };
    if ops.is_empty() {
        return Err(OpError::validation(
            "\"operations\" must contain at least one operation",
        ));
    }
    let mut parsed = Vec::new();
    for (i, raw) in ops.iter().enumerate() {
        let Value::Object(o) = raw else {
            return Err(OpError::validation(format!(
                "operations[{i}]: expected object"
            )));
        };
        let op = o.get("op").and_then(Value::as_str).unwrap_or("");
        if !OPS.contains(&op) {
            return Err(OpError::validation(format!(
                "operations[{i}]: invalid \"op\" \u{2014} expected one of: {}",
                OPS.join(", ")
            )));
        }
        if !matches!(o.get("bucket"), Some(Value::String(b)) if !b.is_empty()) {
            return Err(OpError::validation(format!(
                "operations[{i}]: missing or invalid \"bucket\""
            )));
        }
        if matches!(op, "get" | "update" | "delete")
            && matches!(o.get("key"), None | Some(Value::Null))
        {
            return Err(OpError::validation(format!(
                "operations[{i}]: \"{op}\" requires \"key\""
            )));
        }
        if matches!(op, "insert" | "update") && !matches!(o.get("data"), Some(Value::Object(_))) {
            return Err(OpError::validation(format!(
                "operations[{i}]: \"{op}\" requires \"data\" object"
            )));
        }
        if matches!(op, "where" | "findOne") && !matches!(o.get("filter"), Some(Value::Object(_))) {
            return Err(OpError::validation(format!(
                "operations[{i}]: \"{op}\" requires \"filter\" object"
            )));
        }
        parsed.push(o.clone());
    }
    let backup = c.store.buckets.clone();
    let mut writes = TxWrites::default();
    let mut results = Vec::new();
    for (i, o) in parsed.iter().enumerate() {
        let op = o.get("op").and_then(Value::as_str).unwrap_or("");
        let b = o.get("bucket").and_then(Value::as_str).unwrap_or("");
        let key = o.get("key").cloned().unwrap_or(Value::Null);
        let data = o
            .get("data")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let filter = o.get("filter").and_then(Value::as_object).cloned();
        let s = &mut c.store;
        // The record the operation reads (for the commit's version check).
        let current = match op {
            "update" | "delete" => s.get(b, &key).unwrap_or(Value::Null),
            _ => Value::Null,
        };
        if matches!(op, "update" | "delete") {
            writes.touch(b, &key, &current);
        }
        let r = match op {
            "get" => s.get(b, &key),
            "insert" => {
                let kf = s.bucket(b).map(|bk| bk.key.clone());
                match kf {
                    Ok(kf) => match data.get(&kf) {
                        Some(k) if s.get(b, k).is_ok_and(|v| !v.is_null()) => {
                            Err(tx_commit::already_exists(b, k))
                        }
                        _ => {
                            let inserted = s.insert(b, &data);
                            if let Some(k) = inserted.as_ref().ok().and_then(|r| r.get(&kf)) {
                                // Touched first here, the key was free before the
                                // transaction (the check above saw no record).
                                writes.touch(b, k, &Value::Null);
                                writes.inserted(b, k);
                            }
                            inserted
                        }
                    },
                    Err(e) => Err(e),
                }
            }
            "update" => {
                let updated = s.update(b, &key, &data);
                if updated.is_ok() {
                    writes.updated(b, &key, &current);
                }
                updated
            }
            "delete" => {
                let deleted = s.delete(b, &key).map(|_| obj([("deleted", true.into())]));
                if deleted.is_ok() {
                    writes.deleted(b, &key, &current);
                }
                deleted
            }
            "where" => s.where_(b, &filter.unwrap_or_default()),
            "findOne" => s.find_one(b, &filter.unwrap_or_default()),
            _ => s.count(b, filter.as_ref()),
        };
        match r {
            Ok(data) => results.push(obj([("index", i.into()), ("data", data)])),
            Err(e) => {
                c.store.buckets = backup;
                return Err(e);
            }
        }
    }
    // The commit: the store checks the buffered writes against the records as they were.
    if let Err(e) = writes.check() {
        c.store.buckets = backup;
        return Err(e);
    }
    Ok(obj([("results", Value::Array(results))]))
}
