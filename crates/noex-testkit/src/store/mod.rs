//! The in-memory store: buckets with schemas, records in insertion order, queries and
//! reactive subscriptions. Semantics follow `@hamicek/noex-store` 0.2.0.

mod queries;
pub(crate) mod schema;

use indexmap::IndexMap;
use serde_json::{Map, Value};

use crate::error::{OpError, OpResult};
use crate::filter;
use crate::json::{js_string, key_text, num, obj, KeyOrder};

pub(crate) use queries::{QueryEntry, StoreSub};
use schema::Schema;

/// One bucket: definition and records in insertion order.
#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    pub(crate) key: String,
    pub(crate) schema: Schema,
    /// The definition as given (`key`, `schema`, `indexes`, ...), returned by getBucketSchema.
    pub(crate) definition: Map<String, Value>,
    pub(crate) records: IndexMap<String, Map<String, Value>>,
    pub(crate) counter: u64,
}

impl Bucket {
    fn unique_fields(&self) -> Vec<String> {
        self.schema
            .fields
            .iter()
            .filter(|(_, d)| d.get("unique") == Some(&Value::Bool(true)))
            .map(|(k, _)| k.clone())
            .collect()
    }
}

/// The store.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    pub(crate) name: String,
    pub(crate) buckets: IndexMap<String, Bucket>,
    pub(crate) queries: IndexMap<String, QueryEntry>,
    pub(crate) subs: Vec<StoreSub>,
}

fn filter_arg(filter: Option<&Map<String, Value>>) -> Map<String, Value> {
    filter.cloned().unwrap_or_default()
}

impl Store {
    pub(crate) fn new() -> Store {
        Store {
            name: format!("testkit-store-{}", crate::json::now_ms()),
            buckets: IndexMap::new(),
            queries: IndexMap::new(),
            subs: Vec::new(),
        }
    }

    // ── Buckets ─────────────────────────────────────────────────

    pub(crate) fn define_bucket(
        &mut self,
        name: &str,
        config: &Map<String, Value>,
        order: Option<&KeyOrder>,
    ) -> Result<(), OpError> {
        if self.buckets.contains_key(name) {
            return Err(OpError::already_exists(format!(
                "Bucket \"{name}\" already exists"
            )));
        }
        let key = config
            .get("key")
            .and_then(Value::as_str)
            .unwrap_or("id")
            .to_string();
        let schema_map = match config.get("schema") {
            Some(Value::Object(m)) => m.clone(),
            _ => Map::new(),
        };
        let schema = Schema::from_value(&schema_map, order.and_then(|o| o.at(&["schema"])));
        if !schema.contains(&key) {
            return Err(OpError::internal(format!(
                "Key field \"{key}\" does not exist in schema for bucket \"{name}\""
            )));
        }
        if let Some(Value::Array(indexes)) = config.get("indexes") {
            for i in indexes {
                let i = js_string(i);
                if !schema.contains(&i) {
                    return Err(OpError::internal(format!(
                        "Index field \"{i}\" does not exist in schema for bucket \"{name}\""
                    )));
                }
            }
        }
        self.buckets.insert(
            name.to_string(),
            Bucket {
                key,
                schema,
                definition: config.clone(),
                records: IndexMap::new(),
                counter: 0,
            },
        );
        Ok(())
    }

    pub(crate) fn bucket(&self, name: &str) -> Result<&Bucket, OpError> {
        self.buckets
            .get(name)
            .ok_or_else(|| OpError::bucket_not_defined(name))
    }

    fn bucket_mut(&mut self, name: &str) -> Result<&mut Bucket, OpError> {
        self.buckets
            .get_mut(name)
            .ok_or_else(|| OpError::bucket_not_defined(name))
    }

    pub(crate) fn drop_bucket(&mut self, name: &str) -> bool {
        self.buckets.shift_remove(name).is_some()
    }

    pub(crate) fn update_bucket(
        &mut self,
        name: &str,
        updates: &Map<String, Value>,
        order: Option<&KeyOrder>,
    ) -> Result<(), OpError> {
        let bucket = self.bucket_mut(name)?;
        let mut schema = bucket.schema.clone();
        if let Some(Value::Object(add)) = updates.get("addFields") {
            let keys = order
                .and_then(|o| o.at(&["addFields"]))
                .map(KeyOrder::keys)
                .unwrap_or_default();
            for (field, def) in crate::json::ordered_entries(add, &keys) {
                if schema.contains(&field) {
                    return Err(OpError::internal(format!(
                        "Field \"{field}\" already exists in bucket \"{name}\""
                    )));
                }
                schema.fields.push((field, def));
            }
        }
        let mut indexes: Vec<Value> = match bucket.definition.get("indexes") {
            Some(Value::Array(a)) => a.clone(),
            _ => Vec::new(),
        };
        if let Some(Value::Array(add)) = updates.get("addIndexes") {
            for i in add {
                let s = js_string(i);
                if !schema.contains(&s) {
                    return Err(OpError::internal(format!(
                        "Index field \"{s}\" does not exist in schema for bucket \"{name}\""
                    )));
                }
                if !indexes.contains(i) {
                    indexes.push(i.clone());
                }
            }
        }
        bucket.schema = schema;
        bucket
            .definition
            .insert("schema".into(), Value::Object(bucket.schema.to_map()));
        if !indexes.is_empty() {
            bucket
                .definition
                .insert("indexes".into(), Value::Array(indexes));
        }
        match updates.get("ttl") {
            None => {}
            Some(Value::Null) => {
                bucket.definition.remove("ttl");
            }
            Some(t) => {
                bucket.definition.insert("ttl".into(), t.clone());
            }
        }
        Ok(())
    }

    pub(crate) fn bucket_schema(&self, name: &str) -> Option<Value> {
        self.buckets
            .get(name)
            .map(|b| Value::Object(b.definition.clone()))
    }

    // ── Records ─────────────────────────────────────────────────

    fn check_unique(
        bucket_name: &str,
        bucket: &Bucket,
        record: &Map<String, Value>,
        own_key: &str,
    ) -> Result<(), OpError> {
        for field in bucket.unique_fields() {
            let Some(v) = record.get(&field).filter(|v| !v.is_null()) else {
                continue;
            };
            let clash = bucket
                .records
                .iter()
                .any(|(k, r)| k != own_key && crate::json::strict_eq(r.get(&field), Some(v)));
            if clash {
                return Err(OpError::already_exists(format!(
                    "Unique constraint violation in bucket \"{bucket_name}\": field \"{field}\" already has value \"{}\"",
                    js_string(v)
                ))
                .with_details(obj([
                    ("bucket", bucket_name.into()),
                    ("field", field.clone().into()),
                    ("value", v.clone()),
                ])));
            }
        }
        Ok(())
    }

    pub(crate) fn insert(&mut self, bucket_name: &str, data: &Map<String, Value>) -> OpResult {
        let bucket = self.bucket_mut(bucket_name)?;
        bucket.counter += 1;
        let record = schema::prepare_insert(bucket_name, &bucket.schema, data, bucket.counter)?;
        let key = record.get(&bucket.key).cloned().unwrap_or(Value::Null);
        let kt = key_text(&key);
        Self::check_unique(bucket_name, bucket, &record, &kt)?;
        bucket.records.insert(kt, record.clone());
        Ok(Value::Object(record))
    }

    pub(crate) fn get(&self, bucket: &str, key: &Value) -> OpResult {
        let b = self.bucket(bucket)?;
        Ok(b.records
            .get(&key_text(key))
            .map(|r| Value::Object(r.clone()))
            .unwrap_or(Value::Null))
    }

    pub(crate) fn update(
        &mut self,
        bucket_name: &str,
        key: &Value,
        changes: &Map<String, Value>,
    ) -> OpResult {
        let bucket = self.bucket_mut(bucket_name)?;
        let kt = key_text(key);
        let Some(existing) = bucket.records.get(&kt) else {
            return Err(OpError::internal(format!(
                "Record with key \"{}\" not found in bucket \"{bucket_name}\"",
                js_string(key)
            )));
        };
        let updated =
            schema::prepare_update(bucket_name, &bucket.schema, &bucket.key, existing, changes)?;
        Self::check_unique(bucket_name, bucket, &updated, &kt)?;
        bucket.records.insert(kt, updated.clone());
        Ok(Value::Object(updated))
    }

    pub(crate) fn delete(&mut self, bucket: &str, key: &Value) -> Result<bool, OpError> {
        let b = self.bucket_mut(bucket)?;
        Ok(b.records.shift_remove(&key_text(key)).is_some())
    }

    pub(crate) fn clear(&mut self, bucket: &str) -> Result<(), OpError> {
        self.bucket_mut(bucket)?.records.clear();
        Ok(())
    }

    pub(crate) fn select(
        &self,
        bucket: &str,
        filter: Option<&Map<String, Value>>,
    ) -> Result<Vec<Map<String, Value>>, OpError> {
        let b = self.bucket(bucket)?;
        let f = filter_arg(filter);
        Ok(b.records
            .values()
            .filter(|r| filter::matches(r, &f))
            .cloned()
            .collect())
    }

    pub(crate) fn all(&self, bucket: &str) -> OpResult {
        Ok(records_value(self.select(bucket, None)?))
    }

    pub(crate) fn where_(&self, bucket: &str, f: &Map<String, Value>) -> OpResult {
        Ok(records_value(self.select(bucket, Some(f))?))
    }

    pub(crate) fn find_one(&self, bucket: &str, f: &Map<String, Value>) -> OpResult {
        let b = self.bucket(bucket)?;
        Ok(b.records
            .values()
            .find(|r| filter::matches(r, f))
            .map(|r| Value::Object(r.clone()))
            .unwrap_or(Value::Null))
    }

    pub(crate) fn count(&self, bucket: &str, f: Option<&Map<String, Value>>) -> OpResult {
        Ok(self.select(bucket, f)?.len().into())
    }

    pub(crate) fn first(&self, bucket: &str, n: usize) -> OpResult {
        let b = self.bucket(bucket)?;
        Ok(records_value(b.records.values().take(n).cloned().collect()))
    }

    pub(crate) fn last(&self, bucket: &str, n: usize) -> OpResult {
        let b = self.bucket(bucket)?;
        let skip = b.records.len().saturating_sub(n);
        Ok(records_value(
            b.records.values().skip(skip).cloned().collect(),
        ))
    }

    pub(crate) fn paginate(&self, bucket: &str, limit: usize, after: Option<&Value>) -> OpResult {
        let b = self.bucket(bucket)?;
        let start = match after {
            None | Some(Value::Null) => 0,
            Some(a) => b
                .records
                .get_index_of(&key_text(a))
                .map(|i| i + 1)
                .unwrap_or(b.records.len()),
        };
        let records: Vec<Map<String, Value>> = b
            .records
            .values()
            .skip(start)
            .take(limit)
            .cloned()
            .collect();
        let has_more = start.saturating_add(limit) < b.records.len();
        let mut out = Map::new();
        let next = records.last().and_then(|r| r.get(&b.key)).cloned();
        out.insert("records".into(), records_value(records));
        out.insert("hasMore".into(), has_more.into());
        if let Some(n) = next {
            out.insert("nextCursor".into(), n);
        }
        Ok(Value::Object(out))
    }

    fn numbers(
        &self,
        bucket: &str,
        field: &str,
        f: Option<&Map<String, Value>>,
    ) -> Result<(usize, Vec<f64>), OpError> {
        let recs = self.select(bucket, f)?;
        let n = recs.len();
        Ok((
            n,
            recs.iter()
                .filter_map(|r| r.get(field).and_then(Value::as_f64))
                .collect(),
        ))
    }

    pub(crate) fn aggregate(
        &self,
        op: &str,
        bucket: &str,
        field: &str,
        f: Option<&Map<String, Value>>,
    ) -> OpResult {
        let (n, nums) = self.numbers(bucket, field, f)?;
        Ok(aggregate_numbers(op, n, &nums))
    }

    // ── Stats ───────────────────────────────────────────────────

    pub(crate) fn buckets_info(&self, hide_system: bool) -> Value {
        let names: Vec<Value> = self
            .buckets
            .keys()
            .filter(|n| !(hide_system && n.starts_with('_')))
            .map(|n| Value::from(n.clone()))
            .collect();
        obj([
            ("count", names.len().into()),
            ("names", Value::Array(names)),
        ])
    }

    pub(crate) fn stats(&self) -> Value {
        let mut per_bucket = Map::new();
        let mut per_index = Map::new();
        let mut total = 0usize;
        let mut total_idx = 0usize;
        for (name, b) in &self.buckets {
            total += b.records.len();
            per_bucket.insert(name.clone(), b.records.len().into());
            let idx = b
                .definition
                .get("indexes")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            total_idx += idx;
            per_index.insert(name.clone(), idx.into());
        }
        obj([
            ("name", self.name.clone().into()),
            ("buckets", self.buckets_info(false)),
            (
                "records",
                obj([
                    ("total", total.into()),
                    ("perBucket", Value::Object(per_bucket)),
                ]),
            ),
            (
                "indexes",
                obj([
                    ("total", total_idx.into()),
                    ("perBucket", Value::Object(per_index)),
                ]),
            ),
            (
                "queries",
                obj([
                    ("defined", self.queries.len().into()),
                    ("activeSubscriptions", self.subs.len().into()),
                ]),
            ),
            ("persistence", obj([("enabled", false.into())])),
            (
                "ttl",
                obj([("enabled", true.into()), ("checkIntervalMs", 1000.into())]),
            ),
        ])
    }
}

/// Sum/avg/min/max/count over the numeric values of `n` records, as the store computes them.
pub(crate) fn aggregate_numbers(op: &str, n: usize, nums: &[f64]) -> Value {
    match op {
        "sum" => num(nums.iter().sum()),
        "avg" => {
            if n == 0 || nums.is_empty() {
                0.into()
            } else {
                num(nums.iter().sum::<f64>() / nums.len() as f64)
            }
        }
        "min" => nums
            .iter()
            .copied()
            .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.min(x))))
            .map_or(Value::Null, num),
        "max" => nums
            .iter()
            .copied()
            .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))))
            .map_or(Value::Null, num),
        "count" => n.into(),
        _ => Value::Null,
    }
}

pub(crate) fn records_value(records: Vec<Map<String, Value>>) -> Value {
    Value::Array(records.into_iter().map(Value::Object).collect())
}
