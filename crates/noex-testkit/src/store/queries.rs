//! Named queries (programmatic ones from the builder, declarative ones from
//! `store.defineQuery`) and reactive subscriptions that re-run them after every change.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use super::{aggregate_numbers, records_value, Store};
use crate::config::QueryKind;
use crate::error::{OpError, OpResult};
use crate::filter;
use crate::json::{js_cmp, js_string, obj};

/// A defined query.
#[derive(Debug, Clone)]
pub(crate) struct QueryEntry {
    pub(crate) kind: QueryKind,
}

/// A reactive subscription to a query.
#[derive(Debug, Clone)]
pub(crate) struct StoreSub {
    pub(crate) id: String,
    pub(crate) conn: u64,
    pub(crate) query: String,
    pub(crate) params: Option<Value>,
    pub(crate) last: Value,
    /// False once the store dropped it (`undefineQuery`, `dropBucket`): it gets no more
    /// pushes, but the server still holds it until `store.unsubscribe`.
    pub(crate) alive: bool,
}

fn interpolate(value: &Value, params: Option<&Value>) -> Value {
    match value {
        Value::String(s) => {
            // `^\{\{\s*params\.(\w+)\s*\}\}$`: the whole string is the placeholder.
            let name = s
                .strip_prefix("{{")
                .and_then(|x| x.strip_suffix("}}"))
                .and_then(|inner| inner.trim().strip_prefix("params."))
                .filter(|n| {
                    !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                });
            match name {
                Some(name) => params
                    .and_then(|p| p.as_object())
                    .and_then(|p| p.get(name))
                    .cloned()
                    .unwrap_or_else(|| Value::from(filter::UNDEFINED)),
                None => value.clone(),
            }
        }
        Value::Array(items) => Value::Array(items.iter().map(|i| interpolate(i, params)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), interpolate(v, params)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn sort_records(records: &mut [Map<String, Value>], sort: &Map<String, Value>) {
    records.sort_by(|a, b| {
        for (field, dir) in sort {
            let (av, bv) = (a.get(field), b.get(field));
            if crate::json::strict_eq(av, bv) {
                continue;
            }
            let a_null = matches!(av, None | Some(Value::Null));
            let b_null = matches!(bv, None | Some(Value::Null));
            if a_null {
                return Ordering::Greater;
            }
            if b_null {
                return Ordering::Less;
            }
            let cmp = match (av, bv) {
                (Some(x), Some(y)) => js_cmp(x, y).unwrap_or(Ordering::Equal),
                _ => Ordering::Equal,
            };
            return if dir.as_str() == Some("desc") {
                cmp.reverse()
            } else {
                cmp
            };
        }
        Ordering::Equal
    });
}

impl Store {
    /// Run a declarative query config.
    fn run_declarative(&self, config: &Map<String, Value>, params: Option<&Value>) -> OpResult {
        let bucket = config.get("bucket").and_then(Value::as_str).unwrap_or("");
        let filter = match config.get("filter") {
            Some(Value::Object(f)) => match interpolate(&Value::Object(f.clone()), params) {
                Value::Object(m) => Some(m),
                _ => None,
            },
            _ => None,
        };
        let mut records = self.select(bucket, filter.as_ref().filter(|f| !f.is_empty()))?;
        if let Some(Value::Object(agg)) = config.get("aggregate") {
            let func = agg
                .get("function")
                .and_then(Value::as_str)
                .unwrap_or("count");
            let field = agg.get("field").and_then(Value::as_str).unwrap_or("");
            let compute = |recs: &[Map<String, Value>]| {
                let nums: Vec<f64> = recs
                    .iter()
                    .filter_map(|r| r.get(field).and_then(Value::as_f64))
                    .collect();
                aggregate_numbers(func, recs.len(), &nums)
            };
            if let Some(group_by) = agg.get("groupBy") {
                let fields: Vec<String> = match group_by {
                    Value::Array(a) => a.iter().map(js_string).collect(),
                    other => vec![js_string(other)],
                };
                let mut groups: indexmap::IndexMap<String, Vec<Map<String, Value>>> =
                    indexmap::IndexMap::new();
                for r in records {
                    let key = fields
                        .iter()
                        .map(|f| r.get(f).map(js_string).unwrap_or_else(|| "null".into()))
                        .collect::<Vec<_>>()
                        .join("\0");
                    groups.entry(key).or_default().push(r);
                }
                let out: Vec<Value> = groups
                    .values()
                    .map(|g| {
                        let mut key = Map::new();
                        for f in &fields {
                            key.insert(
                                f.clone(),
                                g.first()
                                    .and_then(|r| r.get(f))
                                    .cloned()
                                    .unwrap_or(Value::Null),
                            );
                        }
                        let v = compute(g);
                        obj([
                            ("key", Value::Object(key)),
                            ("value", if v.is_null() { 0.into() } else { v }),
                        ])
                    })
                    .collect();
                return Ok(Value::Array(out));
            }
            return Ok(compute(&records));
        }
        if let Some(Value::Object(sort)) = config.get("sort") {
            sort_records(&mut records, sort);
        }
        if let Some(off) = config.get("offset").and_then(Value::as_u64) {
            let off = usize::try_from(off).unwrap_or(usize::MAX);
            records = records.into_iter().skip(off).collect();
        }
        if let Some(limit) = config.get("limit").and_then(Value::as_u64) {
            records.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        }
        if let Some(Value::Array(fields)) = config.get("fields") {
            if !fields.is_empty() {
                let names: Vec<String> = fields.iter().map(js_string).collect();
                records = records
                    .into_iter()
                    .map(|r| {
                        names
                            .iter()
                            .filter_map(|n| r.get(n).map(|v| (n.clone(), v.clone())))
                            .collect()
                    })
                    .collect();
            }
        }
        Ok(records_value(records))
    }

    /// Run a named query with params.
    pub(crate) fn run_query(&self, name: &str, params: Option<&Value>) -> OpResult {
        let q = self.queries.get(name).ok_or_else(|| {
            OpError::new(
                "QUERY_NOT_DEFINED",
                format!("Query \"{name}\" is not defined"),
            )
        })?;
        match &q.kind {
            QueryKind::All { bucket } => self.all(bucket),
            QueryKind::WhereParam { bucket, field } => {
                // The launcher's query reads `params.<field>`: without params it throws.
                let Some(params) = params.filter(|p| !p.is_null()) else {
                    return Err(OpError::internal(format!(
                        "Cannot read properties of undefined (reading '{field}')"
                    )));
                };
                let b = self.bucket(bucket)?;
                let wanted = params.as_object().and_then(|p| p.get(field));
                Ok(records_value(
                    b.records
                        .values()
                        .filter(|r| crate::json::strict_eq(r.get(field), wanted))
                        .cloned()
                        .collect(),
                ))
            }
            QueryKind::Count { bucket } => self.count(bucket, None),
            QueryKind::Where { bucket, filter } => self.where_(bucket, filter),
            QueryKind::Declarative(config) => self.run_declarative(config, params),
        }
    }

    pub(crate) fn define_query(&mut self, name: &str, kind: QueryKind) -> Result<(), OpError> {
        if let QueryKind::Declarative(config) = &kind {
            let bucket = config.get("bucket").map(js_string).unwrap_or_default();
            if !self.buckets.contains_key(&bucket) {
                return Err(OpError::bucket_not_defined(&bucket));
            }
        }
        if self.queries.contains_key(name) {
            return Err(OpError::already_exists(format!(
                "Query \"{name}\" is already defined"
            )));
        }
        self.queries.insert(name.to_string(), QueryEntry { kind });
        Ok(())
    }

    pub(crate) fn undefine_query(&mut self, name: &str) -> bool {
        let removed = self.queries.shift_remove(name).is_some();
        if removed {
            // The store forgets them silently; the server keeps its handles.
            for s in self.subs.iter_mut().filter(|s| s.query == name) {
                s.alive = false;
            }
        }
        removed
    }

    pub(crate) fn list_queries(&self) -> Value {
        let list: Vec<Value> = self
            .queries
            .iter()
            .map(|(name, q)| {
                let active = self
                    .subs
                    .iter()
                    .filter(|s| s.alive && &s.query == name)
                    .count();
                let mut m = Map::new();
                m.insert("name".into(), name.clone().into());
                match &q.kind {
                    QueryKind::Declarative(config) => {
                        m.insert("type".into(), "declarative".into());
                        m.insert("activeSubscriptions".into(), active.into());
                        m.insert("config".into(), Value::Object(config.clone()));
                    }
                    _ => {
                        m.insert("type".into(), "programmatic".into());
                        m.insert("activeSubscriptions".into(), active.into());
                    }
                }
                Value::Object(m)
            })
            .collect();
        obj([("queries", Value::Array(list))])
    }

    /// Subscribe: runs the query and remembers its result for later diffs.
    pub(crate) fn subscribe(
        &mut self,
        conn: u64,
        id: String,
        query: &str,
        params: Option<Value>,
    ) -> OpResult {
        let data = self.run_query(query, params.as_ref())?;
        self.subs.insert(
            conn,
            id.clone(),
            StoreSub {
                id,
                conn,
                query: query.to_string(),
                params,
                last: data.clone(),
                alive: true,
            },
        );
        Ok(data)
    }

    /// Remove subscription `id` of `conn` (dead ones too); false when there is none.
    pub(crate) fn unsubscribe(&mut self, conn: u64, id: &str) -> bool {
        self.subs.remove_all(conn, id) > 0
    }

    /// Remove all subscriptions of `conn` (it closed).
    pub(crate) fn drop_connection(&mut self, conn: u64) {
        self.subs.remove_conn(conn);
    }

    /// Re-run the live subscriptions on changed buckets; return `(conn, subscriptionId,
    /// newResult)` for each whose result is not deep-equal to the last one.
    pub(crate) fn refresh(&mut self) -> Vec<(u64, String, Value)> {
        let mut out = Vec::new();
        if self.dirty.is_empty() {
            return out;
        }
        let dirty = std::mem::take(&mut self.dirty);
        let mut subs = std::mem::take(&mut self.subs);
        for s in subs.iter_mut().filter(|s| s.alive) {
            let affected = self
                .queries
                .get(&s.query)
                .and_then(|q| q.kind.bucket())
                .is_some_and(|b| dirty.contains(b));
            if !affected {
                continue;
            }
            if let Ok(now) = self.run_query(&s.query, s.params.as_ref()) {
                if now != s.last {
                    s.last = now.clone();
                    out.push((s.conn, s.id.clone(), now));
                }
            }
        }
        self.subs = subs;
        out
    }
}
