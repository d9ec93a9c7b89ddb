//! The store: buckets, reactive queries, transactions, and schema administration.

use super::bucket::Bucket;
use super::checked;
use super::record::Record;
use crate::client::Client;
use crate::error::{Error, Result};
use crate::live::LiveBuilder;
use crate::slot::BufferPolicy;
use crate::subscription::Subscription;
use noex_proto::ops::{self, store::TxOp, Filter};
use noex_proto::{RequestOptions, SubscriptionId, SubscriptionSpec};
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The store domain: `client.store()`.
#[derive(Debug, Clone)]
pub struct Store {
    client: Client,
}

/// `store.buckets`: the defined buckets.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct BucketList {
    /// How many.
    pub count: u64,
    /// Their names.
    pub names: Vec<String>,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A query as `store.listQueries` describes it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct QueryInfo {
    /// The query's name.
    pub name: String,
    /// `programmatic` or `declarative`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Live subscriptions on it.
    #[serde(rename = "activeSubscriptions", default)]
    pub active_subscriptions: u64,
    /// The declarative definition (`bucket`, `filter`, `sort`, `limit`, …), when it has one.
    #[serde(default)]
    pub config: Option<Value>,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `store.getBucketSchema`: a bucket's definition.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct BucketSchema {
    /// The bucket's name.
    pub name: String,
    /// Its definition.
    pub config: BucketConfig,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A bucket's definition, as `store.getBucketSchema` returns it.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct BucketConfig {
    /// The key field.
    pub key: String,
    /// Field name → field definition (`type`, `required`, `generated`, `min`, `default`, …).
    pub schema: Map<String, Value>,
    /// Indexed fields.
    pub indexes: Vec<String>,
    /// Further settings (`ttl`, `maxSize`, …) and fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `store.stats`: the store's statistics.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
#[non_exhaustive]
pub struct StoreStats {
    /// The store's name.
    pub name: String,
    /// The defined buckets.
    pub buckets: BucketList,
    /// Records, in total and per bucket.
    pub records: Totals,
    /// Indexes, in total and per bucket.
    pub indexes: Totals,
    /// Defined queries and their live subscriptions.
    pub queries: QueryStats,
    /// Whether persistence is on.
    pub persistence: Feature,
    /// Whether record expiry is on (`checkIntervalMs` in its `extra`).
    pub ttl: Feature,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A total and its split per bucket.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
#[non_exhaustive]
pub struct Totals {
    /// The total.
    pub total: u64,
    /// Per bucket.
    pub per_bucket: BTreeMap<String, u64>,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Query statistics.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
#[non_exhaustive]
pub struct QueryStats {
    /// Defined queries.
    pub defined: u64,
    /// Live subscriptions on them.
    pub active_subscriptions: u64,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A feature that is on or off, with its settings.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct Feature {
    /// Whether it is on.
    pub enabled: bool,
    /// Its settings, and fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One result of a transaction, decoded by the kind of its operation.
///
/// Records decode as `T` ([`Store::transaction_as`]) or untyped ([`Store::transaction`]);
/// their [`Record::key`] is the `id` field.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TxResult<T = Value> {
    /// `insert` or `update`: the record as written.
    Written(Record<T>),
    /// `get` or `findOne`: the record, if any.
    Found(Option<Record<T>>),
    /// `where`: the matching records.
    Records(Vec<Record<T>>),
    /// `count`: how many records match.
    Count(u64),
    /// `delete`: whether a record was deleted.
    Deleted(bool),
}

impl<T> TxResult<T> {
    /// The record of a `Written` or `Found` result.
    pub fn into_record(self) -> Option<Record<T>> {
        match self {
            TxResult::Written(record) => Some(record),
            TxResult::Found(record) => record,
            _ => None,
        }
    }
    /// The records of a `Records` result.
    pub fn into_records(self) -> Option<Vec<Record<T>>> {
        match self {
            TxResult::Records(records) => Some(records),
            _ => None,
        }
    }
    /// The number of a `Count` result.
    pub fn count(&self) -> Option<u64> {
        match self {
            TxResult::Count(n) => Some(*n),
            _ => None,
        }
    }
    /// The flag of a `Deleted` result.
    pub fn deleted(&self) -> Option<bool> {
        match self {
            TxResult::Deleted(deleted) => Some(*deleted),
            _ => None,
        }
    }
}

/// A transaction under construction; every operation or none is applied.
///
/// Building never fails: a value that cannot be serialised is remembered, and
/// [`Store::transaction`] fails with [`Error::Serde`] without sending anything.
///
/// ```
/// use noex_client::{Filter, Transaction};
/// use serde_json::json;
/// let tx = Transaction::new()
///     .insert("users", json!({"name": "Eve"}))
///     .update("users", "u1", json!({"age": 31}))
///     .get("users", "u1")
///     .count("users", Filter::field("age").gt(30));
/// assert_eq!(tx.len(), 4);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Transaction {
    ops: Vec<TxOp>,
    error: Option<String>,
}

impl Transaction {
    /// An empty transaction.
    pub fn new() -> Transaction {
        Transaction::default()
    }
    /// How many operations it holds.
    pub fn len(&self) -> usize {
        self.ops.len()
    }
    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
    fn json(&mut self, value: impl Serialize) -> Value {
        match serde_json::to_value(value) {
            Ok(value) => value,
            Err(e) => {
                if self.error.is_none() {
                    self.error = Some(format!("operation {}: {e}", self.ops.len()));
                }
                Value::Null
            }
        }
    }
    /// Reads a record.
    pub fn get(mut self, bucket: &str, key: impl Serialize) -> Self {
        let key = self.json(key);
        self.ops.push(TxOp::get(bucket, key));
        self
    }
    /// Inserts a record.
    pub fn insert(mut self, bucket: &str, data: impl Serialize) -> Self {
        let data = self.json(data);
        self.ops.push(TxOp::insert(bucket, data));
        self
    }
    /// Merges into a record.
    pub fn update(mut self, bucket: &str, key: impl Serialize, data: impl Serialize) -> Self {
        let key = self.json(key);
        let data = self.json(data);
        self.ops.push(TxOp::update(bucket, key, data));
        self
    }
    /// Deletes a record.
    pub fn delete(mut self, bucket: &str, key: impl Serialize) -> Self {
        let key = self.json(key);
        self.ops.push(TxOp::delete(bucket, key));
        self
    }
    /// Reads the records matching a filter.
    pub fn where_(mut self, bucket: &str, filter: impl Into<Filter>) -> Self {
        self.ops.push(TxOp::where_(bucket, filter.into()));
        self
    }
    /// Reads the first record matching a filter.
    pub fn find_one(mut self, bucket: &str, filter: impl Into<Filter>) -> Self {
        self.ops.push(TxOp::find_one(bucket, filter.into()));
        self
    }
    /// Counts the records matching a filter ([`Filter::all`]: every record).
    pub fn count(mut self, bucket: &str, filter: impl Into<Filter>) -> Self {
        self.ops.push(TxOp::count(bucket, filter.into()));
        self
    }
}

#[derive(Deserialize)]
struct TxAnswer {
    results: Vec<TxItem>,
}

#[derive(Deserialize)]
struct TxItem {
    index: usize,
    #[serde(default)]
    data: Value,
}

#[derive(Deserialize)]
struct QueryList {
    queries: Vec<QueryInfo>,
}

#[derive(Deserialize)]
struct Flag {
    #[serde(default)]
    deleted: bool,
}

fn decode_tx<T: DeserializeOwned>(op: &str, data: Value) -> Result<TxResult<T>> {
    let record = |v: Value| Record::from_value(v, "id").map_err(Error::from);
    Ok(match op {
        "insert" | "update" => TxResult::Written(record(data)?),
        "get" | "findOne" => TxResult::Found(match data {
            Value::Null => None,
            v => Some(record(v)?),
        }),
        "where" => match data {
            Value::Array(items) => {
                TxResult::Records(items.into_iter().map(record).collect::<Result<_>>()?)
            }
            other => {
                return Err(Error::protocol(format!(
                    "expected an array of records, got {other}"
                )))
            }
        },
        "count" => TxResult::Count(serde_json::from_value(data)?),
        _ => TxResult::Deleted(serde_json::from_value::<Flag>(data)?.deleted),
    })
}

impl Client {
    /// The store: buckets, queries, subscriptions, transactions, schema.
    pub fn store(&self) -> Store {
        Store::new(self.clone())
    }
}

impl Store {
    pub(crate) fn new(client: Client) -> Store {
        Store { client }
    }

    /// A handle on one bucket.
    pub fn bucket(&self, name: &str) -> Bucket<Value> {
        Bucket::new(self.client.clone(), name)
    }

    /// Subscribes to a defined query. The stream yields the whole result (decoded as `T`,
    /// e.g. `Vec<Record<User>>` or `u64` for a count query): the initial result first, then
    /// every change, and fresh data after each reconnect. Only the latest unread result is
    /// kept, so a slow reader never makes memory grow.
    pub async fn subscribe<T: DeserializeOwned + Send + 'static>(
        &self,
        query: &str,
        params: Option<Value>,
    ) -> Result<Subscription<T>> {
        let raw = self
            .client
            .subscribe_raw(SubscriptionSpec::query(query, params), BufferPolicy::Latest)
            .await?;
        Ok(Subscription::new(raw, self.client.clone()))
    }

    /// A live view of a defined query whose result is a list of records: what changed
    /// (added, updated, removed, keyed), including what was missed while away, and the
    /// current result. See [`crate::LiveQuery`]. `.params(..)` and `.key_field(..)` (default
    /// `id`) before `.await`.
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> noex_client::Result<()> {
    /// # use serde_json::json;
    /// let admins = client
    ///     .store()
    ///     .live::<serde_json::Value>("users-by-role")
    ///     .params(json!({"role": "admin"}))
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn live<T: DeserializeOwned + Clone + Send + 'static>(
        &self,
        query: &str,
    ) -> LiveBuilder<T> {
        LiveBuilder::new(self.client.clone(), query)
    }

    /// Ends a subscription by its client-side handle ([`Subscription::id`]), as dropping
    /// the [`Subscription`] does.
    pub async fn unsubscribe(&self, id: SubscriptionId) -> Result<()> {
        self.client.unsubscribe_id(id).await
    }

    /// Sends `store.unsubscribe` for a subscription id the server gave (`sub-N`), for
    /// subscriptions made with raw requests ([`Client::request`]). The server answers
    /// `NOT_FOUND` for an id it does not know. Subscriptions made through
    /// [`Store::subscribe`] are ended through their handle instead: the client restores
    /// them after a reconnect, under new server ids.
    ///
    /// A write: never re-sent automatically.
    pub async fn unsubscribe_server_id(&self, server_id: &str) -> Result<()> {
        let _: IgnoredAny = self.call(ops::store::unsubscribe(server_id)).await?;
        Ok(())
    }

    /// Runs the operations atomically; one result per operation, in order, records
    /// untyped. A value the transaction could not serialise fails it here, unsent.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn transaction(&self, transaction: Transaction) -> Result<Vec<TxResult>> {
        self.transaction_as(transaction).await
    }

    /// [`Store::transaction`] with every record decoded as `T`.
    pub async fn transaction_as<T: DeserializeOwned>(
        &self,
        transaction: Transaction,
    ) -> Result<Vec<TxResult<T>>> {
        if let Some(reason) = transaction.error {
            return Err(Error::serde(format!(
                "cannot serialise the transaction: {reason}"
            )));
        }
        let answer: TxAnswer = self.call(ops::store::transaction(&transaction.ops)).await?;
        answer
            .results
            .into_iter()
            .map(|item| match transaction.ops.get(item.index) {
                Some(op) => decode_tx(op.op, item.data),
                None => Err(Error::protocol(format!(
                    "transaction result for operation {} of {}",
                    item.index,
                    transaction.ops.len()
                ))),
            })
            .collect()
    }

    async fn call<T: DeserializeOwned>(&self, op: ops::Operation) -> Result<T> {
        self.client
            .call(checked(op)?, RequestOptions::default())
            .await
    }

    async fn ack(&self, op: ops::Operation) -> Result<()> {
        let _: IgnoredAny = self.call(op).await?;
        Ok(())
    }

    /// Defines a bucket (`config`: `key`, `schema`, `indexes`, …).
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn define_bucket(&self, name: &str, config: impl Serialize) -> Result<()> {
        self.ack(ops::store::define_bucket(name, config)).await
    }
    /// Changes a bucket's definition (`addFields`, …).
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn update_bucket(&self, name: &str, updates: impl Serialize) -> Result<()> {
        self.ack(ops::store::update_bucket(name, updates)).await
    }
    /// A bucket's definition.
    pub async fn get_bucket_schema(&self, name: &str) -> Result<BucketSchema> {
        self.call(ops::store::get_bucket_schema(name)).await
    }
    /// Drops a bucket and its records.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn drop_bucket(&self, name: &str) -> Result<()> {
        self.ack(ops::store::drop_bucket(name)).await
    }
    /// Defines a declarative query (`bucket`, `filter`, `sort`, `limit`, …).
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn define_query(&self, name: &str, config: impl Serialize) -> Result<()> {
        self.ack(ops::store::define_query(name, config)).await
    }
    /// Removes a query.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn undefine_query(&self, name: &str) -> Result<()> {
        self.ack(ops::store::undefine_query(name)).await
    }
    /// The defined queries.
    pub async fn list_queries(&self) -> Result<Vec<QueryInfo>> {
        let list: QueryList = self.call(ops::store::list_queries()).await?;
        Ok(list.queries)
    }
    /// The defined buckets.
    pub async fn buckets(&self) -> Result<BucketList> {
        self.call(ops::store::buckets()).await
    }
    /// Store statistics.
    pub async fn stats(&self) -> Result<StoreStats> {
        self.call(ops::store::stats()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn transaction_results_decode_by_operation() {
        let ops = ["insert", "get", "where", "findOne", "count", "delete"];
        let rec = json!({"id": "u1", "name": "A", "_version": 2, "_createdAt": 1, "_updatedAt": 2});
        let data = [
            rec.clone(),
            rec.clone(),
            json!([rec.clone()]),
            Value::Null,
            json!(4),
            json!({"deleted": true}),
        ];
        let results: Vec<TxResult> = ops
            .iter()
            .zip(data)
            .map(|(op, d)| decode_tx(op, d).unwrap())
            .collect();
        assert_eq!(results[0].clone().into_record().unwrap().version, 2);
        assert_eq!(results[1].clone().into_record().unwrap().key, json!("u1"));
        assert_eq!(results[2].clone().into_records().unwrap().len(), 1);
        assert_eq!(results[3], TxResult::Found(None));
        assert_eq!(results[4].count(), Some(4));
        assert_eq!(results[5].deleted(), Some(true));
    }

    #[test]
    fn a_value_that_cannot_be_serialised_is_remembered() {
        let bad: std::collections::HashMap<(u8, u8), u8> = [((1, 2), 3)].into();
        let tx = Transaction::new().insert("a", json!({})).insert("a", bad);
        assert!(tx.error.as_deref().unwrap().starts_with("operation 1"));
        assert_eq!(tx.len(), 2);
    }

    #[test]
    fn stats_keep_what_they_do_not_know() {
        let stats: StoreStats = serde_json::from_value(json!({
            "name": "s", "buckets": {"count": 1, "names": ["users"]},
            "records": {"total": 3, "perBucket": {"users": 3}},
            "indexes": {"total": 0, "perBucket": {"users": 0}},
            "queries": {"defined": 3, "activeSubscriptions": 0},
            "persistence": {"enabled": false},
            "ttl": {"enabled": true, "checkIntervalMs": 1000},
            "future": 1
        }))
        .unwrap();
        assert_eq!(stats.records.per_bucket["users"], 3);
        assert_eq!(stats.ttl.extra["checkIntervalMs"], 1000);
        assert_eq!(stats.extra["future"], 1);
    }
}
