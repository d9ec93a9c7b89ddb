//! The in-memory store: buckets with schemas, records in insertion order, queries and
//! reactive subscriptions. Semantics follow `@hamicek/noex-store` 0.2.0.

mod queries;
pub(crate) mod schema;
pub(crate) mod tx_commit;

use indexmap::IndexMap;
use serde_json::{Map, Value};

use crate::clock::Clock;
use crate::error::{OpError, OpResult};
use crate::filter;
use crate::json::{js_string, key_text, num, obj, KeyOrder};
use crate::subscriptions::SubRegistry;

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
    /// Query subscriptions in registration order, counted per connection.
    pub(crate) subs: SubRegistry<StoreSub>,
    /// Buckets changed since subscriptions were last re-evaluated (the store's change
    /// events: insert, update, delete of an existing key, TTL purge, eviction; not
    /// `clear` or `updateBucket`).
    pub(crate) dirty: std::collections::HashSet<String>,
    /// The server's clock (record timestamps, TTL expiry).
    clock: Clock,
}

fn filter_arg(filter: Option<&Map<String, Value>>) -> Map<String, Value> {
    filter.cloned().unwrap_or_default()
}

impl Store {
    pub(crate) fn new(clock: Clock) -> Store {
        Store {
            name: format!("testkit-store-{}", clock.now_ms()),
            buckets: IndexMap::new(),
            queries: IndexMap::new(),
            subs: SubRegistry::default(),
            dirty: std::collections::HashSet::new(),
            clock,
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
        if let Some(t) = config.get("ttl") {
            // A plain Error in the store: INTERNAL_ERROR with its message.
            parse_ttl(t).map_err(OpError::internal)?;
        }
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

    /// Drop a bucket; its store-side subscriptions die silently (`unsubscribeByBucket`).
    pub(crate) fn drop_bucket(&mut self, name: &str) -> bool {
        if self.buckets.shift_remove(name).is_none() {
            return false;
        }
        self.dirty.remove(name);
        let queries = &self.queries;
        for s in self.subs.iter_mut() {
            if queries
                .get(&s.query)
                .is_some_and(|q| q.kind.bucket() == Some(name))
            {
                s.alive = false;
            }
        }
        true
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
        let now = self.clock.now_ms();
        let bucket = self.bucket_mut(bucket_name)?;
        bucket.counter += 1;
        let mut record =
            schema::prepare_insert(bucket_name, &bucket.schema, data, bucket.counter, now)?;
        let key = record.get(&bucket.key).cloned().unwrap_or(Value::Null);
        let kt = key_text(&key);
        Self::check_unique(bucket_name, bucket, &record, &kt)?;
        // TTL: `_expiresAt = _createdAt + ttl` unless the record has one.
        if let Some(ttl) = bucket.definition.get("ttl").and_then(|t| parse_ttl(t).ok()) {
            if !record.contains_key("_expiresAt") {
                let created = record
                    .get("_createdAt")
                    .and_then(Value::as_f64)
                    .unwrap_or(0.0);
                record.insert("_expiresAt".into(), num(created + ttl));
            }
        }
        // maxSize: evict the oldest records (by `_createdAt`) to make room.
        if let Some(max) = bucket.definition.get("maxSize").and_then(Value::as_f64) {
            let max = if max < 0.0 { 0 } else { max as usize };
            if bucket.records.len() >= max {
                let evict = bucket.records.len() - max + 1;
                let mut by_age: Vec<(f64, usize)> = bucket
                    .records
                    .values()
                    .enumerate()
                    .map(|(i, r)| {
                        (
                            r.get("_createdAt").and_then(Value::as_f64).unwrap_or(0.0),
                            i,
                        )
                    })
                    .collect();
                // Stable: equal timestamps keep insertion order, as the store's sort.
                by_age.sort_by(|a, b| a.0.total_cmp(&b.0));
                let mut gone: Vec<usize> = by_age.into_iter().take(evict).map(|(_, i)| i).collect();
                gone.sort_unstable();
                for i in gone.into_iter().rev() {
                    bucket.records.shift_remove_index(i);
                }
            }
        }
        bucket.records.insert(kt, record.clone());
        self.dirty.insert(bucket_name.to_string());
        Ok(Value::Object(record))
    }

    /// Whether a bucket has a TTL (so a purge may remove something).
    pub(crate) fn has_ttl_buckets(&self) -> bool {
        self.buckets
            .values()
            .any(|b| b.definition.contains_key("ttl"))
    }

    /// Remove records whose `_expiresAt` is at or before `now` (`purgeExpired`), from
    /// buckets with a TTL; returns how many.
    pub(crate) fn purge_expired(&mut self, now: i64) -> usize {
        let now = now as f64;
        let mut purged = 0;
        for (name, bucket) in &mut self.buckets {
            if !bucket.definition.contains_key("ttl") {
                continue;
            }
            let before = bucket.records.len();
            bucket.records.retain(|_, r| {
                !r.get("_expiresAt")
                    .and_then(Value::as_f64)
                    .is_some_and(|e| e <= now)
            });
            if bucket.records.len() != before {
                purged += before - bucket.records.len();
                self.dirty.insert(name.clone());
            }
        }
        purged
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
        let now = self.clock.now_ms();
        let bucket = self.bucket_mut(bucket_name)?;
        let kt = key_text(key);
        let Some(existing) = bucket.records.get(&kt) else {
            return Err(OpError::internal(format!(
                "Record with key \"{}\" not found in bucket \"{bucket_name}\"",
                js_string(key)
            )));
        };
        let updated = schema::prepare_update(
            bucket_name,
            &bucket.schema,
            &bucket.key,
            existing,
            changes,
            now,
        )?;
        Self::check_unique(bucket_name, bucket, &updated, &kt)?;
        bucket.records.insert(kt, updated.clone());
        self.dirty.insert(bucket_name.to_string());
        Ok(Value::Object(updated))
    }

    pub(crate) fn delete(&mut self, bucket: &str, key: &Value) -> Result<bool, OpError> {
        let b = self.bucket_mut(bucket)?;
        let existed = b.records.shift_remove(&key_text(key)).is_some();
        if existed {
            self.dirty.insert(bucket.to_string());
        }
        Ok(existed)
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
        let mut out = Vec::new();
        for r in b.records.values() {
            if filter::matches(r, &f)? {
                out.push(r.clone());
            }
        }
        Ok(out)
    }

    pub(crate) fn all(&self, bucket: &str) -> OpResult {
        Ok(records_value(self.select(bucket, None)?))
    }

    pub(crate) fn where_(&self, bucket: &str, f: &Map<String, Value>) -> OpResult {
        Ok(records_value(self.select(bucket, Some(f))?))
    }

    pub(crate) fn find_one(&self, bucket: &str, f: &Map<String, Value>) -> OpResult {
        let b = self.bucket(bucket)?;
        for r in b.records.values() {
            if filter::matches(r, f)? {
                return Ok(Value::Object(r.clone()));
            }
        }
        Ok(Value::Null)
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
                    (
                        "activeSubscriptions",
                        self.subs.iter().filter(|s| s.alive).count().into(),
                    ),
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

/// `parseTtl` of the store: a number of milliseconds, or a string `<n>s|m|h|d`.
pub(crate) fn parse_ttl(ttl: &Value) -> Result<f64, String> {
    match ttl {
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(0.0);
            if x <= 0.0 || !x.is_finite() {
                return Err(format!(
                    "TTL must be a positive finite number, got {}",
                    js_string(ttl)
                ));
            }
            Ok(x)
        }
        Value::String(s) => {
            let invalid = || {
                format!(
                    "Invalid TTL format \"{s}\". Expected a number (ms) or string like \"30s\", \"5m\", \"1h\", \"7d\"."
                )
            };
            let unit = s.chars().last().ok_or_else(invalid)?;
            let mult = match unit {
                's' => 1_000.0,
                'm' => 60_000.0,
                'h' => 3_600_000.0,
                'd' => 86_400_000.0,
                _ => return Err(invalid()),
            };
            let digits = s[..s.len() - 1].trim_end();
            let valid = !digits.is_empty()
                && digits.split('.').count() <= 2
                && !digits.starts_with('.')
                && !digits.ends_with('.')
                && digits.chars().all(|c| c.is_ascii_digit() || c == '.');
            if !valid {
                return Err(invalid());
            }
            let value: f64 = digits.parse().map_err(|_| invalid())?;
            if value <= 0.0 {
                return Err(format!("TTL value must be positive, got \"{s}\""));
            }
            Ok(value * mult)
        }
        _ => Err(format!(
            "TTL must be a positive finite number, got {}",
            js_string(ttl)
        )),
    }
}

#[cfg(test)]
mod ttl_tests {
    use super::parse_ttl;
    use serde_json::json;

    #[test]
    fn ttl_formats() {
        assert_eq!(parse_ttl(&json!(1500)), Ok(1500.0));
        assert_eq!(parse_ttl(&json!("2s")), Ok(2000.0));
        assert_eq!(parse_ttl(&json!("1.5m")), Ok(90_000.0));
        assert_eq!(parse_ttl(&json!("1 h")), Ok(3_600_000.0));
        assert!(parse_ttl(&json!("1w")).is_err());
        assert!(parse_ttl(&json!("0s")).is_err());
        assert!(parse_ttl(&json!(-1)).is_err());
        assert!(parse_ttl(&json!("s")).is_err());
    }
}
