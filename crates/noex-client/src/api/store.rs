//! The store: buckets, reactive queries, transactions, and schema administration.

use super::bucket::Bucket;
use super::to_json;
use crate::client::Client;
use crate::error::Result;
use crate::slot::BufferPolicy;
use crate::subscription::Subscription;
use noex_proto::ops::{self, store::TxOp};
use noex_proto::{RequestOptions, SubscriptionId, SubscriptionSpec};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The store domain: `client.store()`.
#[derive(Debug, Clone)]
pub struct Store {
    client: Client,
}

/// `store.buckets`: the defined buckets.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BucketList {
    /// How many.
    pub count: u64,
    /// Their names.
    pub names: Vec<String>,
}

/// A query as `store.listQueries` describes it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct QueryInfo {
    /// The query's name.
    pub name: String,
    /// `programmatic` or `declarative`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Live subscriptions on it.
    #[serde(rename = "activeSubscriptions", default)]
    pub active_subscriptions: u64,
    /// The declarative definition, when it has one.
    #[serde(default)]
    pub config: Option<Value>,
}

/// One result of a transaction.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TxResult {
    /// The operation's position in the transaction.
    pub index: u64,
    /// Its answer.
    #[serde(default)]
    pub data: Value,
}

/// A transaction under construction; every operation or none is applied.
///
/// ```
/// use noex_client::Transaction;
/// use serde_json::json;
/// let tx = Transaction::new()
///     .insert("users", &json!({"name": "Eve"})).unwrap()
///     .update("users", "u1", &json!({"age": 31})).unwrap()
///     .get("users", "u1").unwrap();
/// assert_eq!(tx.len(), 3);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Transaction {
    ops: Vec<TxOp>,
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
    /// Reads a record.
    pub fn get(mut self, bucket: &str, key: impl Serialize) -> Result<Self> {
        self.ops.push(TxOp::get(bucket, to_json(&key)?));
        Ok(self)
    }
    /// Inserts a record.
    pub fn insert(mut self, bucket: &str, data: &(impl Serialize + ?Sized)) -> Result<Self> {
        self.ops.push(TxOp::insert(bucket, to_json(data)?));
        Ok(self)
    }
    /// Merges into a record.
    pub fn update(
        mut self,
        bucket: &str,
        key: impl Serialize,
        data: &(impl Serialize + ?Sized),
    ) -> Result<Self> {
        self.ops
            .push(TxOp::update(bucket, to_json(&key)?, to_json(data)?));
        Ok(self)
    }
    /// Deletes a record.
    pub fn delete(mut self, bucket: &str, key: impl Serialize) -> Result<Self> {
        self.ops.push(TxOp::delete(bucket, to_json(&key)?));
        Ok(self)
    }
    /// Reads the records matching a filter.
    pub fn where_(mut self, bucket: &str, filter: Value) -> Result<Self> {
        self.ops.push(TxOp::where_(bucket, filter));
        Ok(self)
    }
    /// Reads the first record matching a filter.
    pub fn find_one(mut self, bucket: &str, filter: Value) -> Result<Self> {
        self.ops.push(TxOp::find_one(bucket, filter));
        Ok(self)
    }
    /// Counts the records matching a filter.
    pub fn count(mut self, bucket: &str, filter: Option<Value>) -> Result<Self> {
        self.ops.push(TxOp::count(bucket, filter));
        Ok(self)
    }
}

#[derive(Deserialize)]
struct TxAnswer {
    results: Vec<TxResult>,
}

#[derive(Deserialize)]
struct QueryList {
    queries: Vec<QueryInfo>,
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

    /// Ends a subscription by its handle (as dropping the [`Subscription`] does).
    pub async fn unsubscribe(&self, id: SubscriptionId) -> Result<()> {
        self.client.unsubscribe_id(id).await
    }

    /// Runs the operations atomically. A transaction is a write: it is never re-sent
    /// automatically (see [`crate::Error::may_have_been_applied`]).
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn transaction(&self, transaction: Transaction) -> Result<Vec<TxResult>> {
        let answer: TxAnswer = self.call(ops::store::transaction(&transaction.ops)).await?;
        Ok(answer.results)
    }

    async fn call<T: DeserializeOwned>(&self, op: noex_proto::Operation) -> Result<T> {
        self.client.call(op, RequestOptions::default()).await
    }

    /// Defines a bucket (`config`: `key`, `schema`, `indexes`, …).
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn define_bucket(
        &self,
        name: &str,
        config: &(impl Serialize + ?Sized),
    ) -> Result<Value> {
        self.call(ops::store::define_bucket(name, &to_json(config)?))
            .await
    }
    /// Changes a bucket's definition (`addFields`, …).
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn update_bucket(
        &self,
        name: &str,
        updates: &(impl Serialize + ?Sized),
    ) -> Result<Value> {
        self.call(ops::store::update_bucket(name, &to_json(updates)?))
            .await
    }
    /// A bucket's definition: `{name, config}`.
    pub async fn get_bucket_schema(&self, name: &str) -> Result<Value> {
        self.call(ops::store::get_bucket_schema(name)).await
    }
    /// Drops a bucket and its records.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn drop_bucket(&self, name: &str) -> Result<Value> {
        self.call(ops::store::drop_bucket(name)).await
    }
    /// Defines a declarative query (`bucket`, `filter`, `sort`, `limit`, …).
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn define_query(
        &self,
        name: &str,
        config: &(impl Serialize + ?Sized),
    ) -> Result<Value> {
        self.call(ops::store::define_query(name, &to_json(config)?))
            .await
    }
    /// Removes a query.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn undefine_query(&self, name: &str) -> Result<Value> {
        self.call(ops::store::undefine_query(name)).await
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
    pub async fn stats(&self) -> Result<Value> {
        self.call(ops::store::stats()).await
    }
}
