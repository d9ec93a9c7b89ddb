//! What noex-store checks when a transaction commits (`Transaction#buildCommitOps` and the
//! bucket's `commitBatch`): the writes are buffered per bucket as the operations run, then
//! each bucket's net writes (its inserts, then its updates, then its deletes) are checked
//! against the records as they were before the transaction. The testkit runs operations
//! against live records (so later operations read earlier writes, as the store's overlay
//! lets them); this keeps the buffer beside them, so that the conflicts a transaction
//! makes with itself are the store's: an update then a delete of one record conflicts
//! (the delete expects the updated version), a delete then an insert of its key conflicts
//! (the record still exists), while two updates, or an insert then an update, do not.

use indexmap::IndexMap;
use serde_json::Value;

use crate::error::OpError;
use crate::json::{js_string, key_text, obj};

/// A record's key and the version it had before the transaction (`None`: absent).
#[derive(Debug, Clone)]
struct Before {
    key: Value,
    version: Option<i64>,
}

/// One bucket's net writes, as noex-store's `BucketWriteBuffer` keeps them.
#[derive(Debug, Default)]
struct BucketWrites {
    /// Keys inserted (and not deleted since).
    inserts: IndexMap<String, ()>,
    /// Keys updated, with the version the first update read.
    updates: IndexMap<String, i64>,
    /// Keys deleted, with the version the delete read.
    deletes: IndexMap<String, i64>,
}

/// The transaction's write buffer, by bucket in the order they were first written.
#[derive(Debug, Default)]
pub(crate) struct TxWrites {
    buckets: IndexMap<String, BucketWrites>,
    /// Each key's record before the transaction, taken when the key is first touched.
    before: IndexMap<(String, String), Before>,
}

fn version(record: &Value) -> Option<i64> {
    record.get("_version").and_then(Value::as_i64)
}

impl TxWrites {
    /// Call before an operation touches `key` of `bucket`, with the record as it reads
    /// now (`Value::Null` when absent): the first time, that is the record as it was
    /// before the transaction.
    pub(crate) fn touch(&mut self, bucket: &str, key: &Value, current: &Value) {
        self.before
            .entry((bucket.to_string(), key_text(key)))
            .or_insert_with(|| Before {
                key: key.clone(),
                version: version(current),
            });
    }

    fn bucket(&mut self, bucket: &str) -> &mut BucketWrites {
        self.buckets.entry(bucket.to_string()).or_default()
    }

    /// An insert of `key` went into the buffer.
    pub(crate) fn inserted(&mut self, bucket: &str, key: &Value) {
        let k = key_text(key);
        let b = self.bucket(bucket);
        b.deletes.shift_remove(&k);
        b.inserts.insert(k, ());
    }

    /// An update of `key`, which read `current` (the record before this update).
    pub(crate) fn updated(&mut self, bucket: &str, key: &Value, current: &Value) {
        let k = key_text(key);
        let expected = version(current).unwrap_or(0);
        let b = self.bucket(bucket);
        if !b.inserts.contains_key(&k) {
            b.updates.entry(k).or_insert(expected);
        }
    }

    /// A delete of `key`, which read `current` (nothing is buffered when it was absent).
    pub(crate) fn deleted(&mut self, bucket: &str, key: &Value, current: &Value) {
        if current.is_null() {
            return;
        }
        let k = key_text(key);
        let expected = version(current).unwrap_or(0);
        let b = self.bucket(bucket);
        if b.inserts.shift_remove(&k).is_none() {
            b.updates.shift_remove(&k);
            b.deletes.insert(k, expected);
        }
    }

    /// The commit's check: the first conflict, bucket by bucket, as the store reports it.
    pub(crate) fn check(&self) -> Result<(), OpError> {
        for (bucket, writes) in &self.buckets {
            // Every written key was touched first, so it has its record from before.
            let before = |k: &String| self.before.get(&(bucket.clone(), k.clone()));
            let conflict = |b: &Before, why: String| conflict(bucket, &b.key, &why);
            if let Some(b) = writes
                .inserts
                .keys()
                .filter_map(before)
                .find(|b| b.version.is_some())
            {
                return Err(already_exists(bucket, &b.key));
            }
            for (b, expected) in writes
                .updates
                .iter()
                .filter_map(|(k, e)| Some((before(k)?, e)))
            {
                match b.version {
                    None => {
                        let why = format!("Record with key \"{}\" not found", js_string(&b.key));
                        return Err(conflict(b, why));
                    }
                    Some(got) if got != *expected => {
                        let why = format!("Version mismatch: expected {expected}, got {got}");
                        return Err(conflict(b, why));
                    }
                    Some(_) => {}
                }
            }
            for (b, expected) in writes
                .deletes
                .iter()
                .filter_map(|(k, e)| Some((before(k)?, e)))
            {
                if let Some(got) = b.version.filter(|got| got != expected) {
                    let why = format!("Version mismatch: expected {expected}, got {got}");
                    return Err(conflict(b, why));
                }
            }
        }
        Ok(())
    }
}

/// The store's `TransactionConflictError` for `key` of `bucket`.
pub(crate) fn conflict(bucket: &str, key: &Value, why: &str) -> OpError {
    OpError::new(
        "CONFLICT",
        format!(
            "Transaction conflict in bucket \"{bucket}\" for key \"{}\": {why}",
            js_string(key)
        ),
    )
    .with_details(obj([("bucket", bucket.into()), ("key", key.clone())]))
}

/// The conflict of an insert whose key is taken.
pub(crate) fn already_exists(bucket: &str, key: &Value) -> OpError {
    let why = format!("Record with key \"{}\" already exists", js_string(key));
    conflict(bucket, key, &why)
}
