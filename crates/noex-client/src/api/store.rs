//! The store: buckets, reactive queries, transactions, and schema administration.

use super::bucket::Bucket;
use super::record::Record;
use super::{argument, checked};
use crate::api::live::LiveBuilder;
use crate::client::Client;
use crate::error::{Error, Result};
use crate::subscription::Subscription;
use futures::future::BoxFuture;
use futures::FutureExt;
use noex_proto::ops::{self, store::TxOp, Filter};
use noex_proto::{RequestOptions, SubscriptionId};
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::future::IntoFuture;
use std::marker::PhantomData;

/// The store domain: `client.store()`.
#[derive(Debug, Clone)]
pub struct Store {
    client: Client,
}

/// `store.buckets`: the defined buckets.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
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
    #[serde(rename = "activeSubscriptions")]
    pub active_subscriptions: u64,
    /// The declarative definition (`bucket`, `filter`, `sort`, `limit`, …); `None` for a
    /// programmatic query.
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

/// A bucket's definition, as `store.getBucketSchema` returns it (as it was defined, with
/// the changes of `store.updateBucket`).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[non_exhaustive]
pub struct BucketConfig {
    /// The key field.
    pub key: String,
    /// Field name → field definition (`type`, `required`, `generated`, `min`, `default`, …).
    pub schema: Map<String, Value>,
    /// Indexed fields; `None` when the definition names none.
    pub indexes: Option<Vec<String>>,
    /// Further settings (`ttl`, `maxSize`, …) and fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `store.stats`: the store's statistics.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
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
    /// Record expiry: whether it is on, and how often it runs.
    pub ttl: TtlStats,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A total and its split per bucket.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
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
#[serde(rename_all = "camelCase")]
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
#[non_exhaustive]
pub struct Feature {
    /// Whether it is on.
    pub enabled: bool,
    /// Its settings, and fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Record expiry in [`StoreStats`].
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct TtlStats {
    /// Whether it is on.
    pub enabled: bool,
    /// How often expired records are purged, ms.
    pub check_interval_ms: u64,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `store.defineBucket`'s answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct BucketDefined {
    /// The bucket's name.
    pub name: String,
    /// Whether it was created (the server answers an error when it was not).
    pub created: bool,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `store.updateBucket`'s answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct BucketUpdated {
    /// The bucket's name.
    pub name: String,
    /// Whether it was updated (the server answers an error when it was not).
    pub updated: bool,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `store.dropBucket`'s answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct BucketDropped {
    /// The bucket's name.
    pub name: String,
    /// Whether it was dropped (the server answers `BUCKET_NOT_DEFINED` when it was not).
    pub dropped: bool,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `store.defineQuery`'s answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct QueryDefined {
    /// The query's name.
    pub name: String,
    /// Whether it was defined (the server answers an error when it was not).
    pub defined: bool,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `store.undefineQuery`'s answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct QueryUndefined {
    /// The query's name.
    pub name: String,
    /// Whether it was removed (the server answers `QUERY_NOT_DEFINED` when it was not).
    pub undefined: bool,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One operation's result in a transaction: where the operation was, and what it gave.
///
/// ```
/// use noex_client::{Record, TxOutcome, TxResult};
/// # fn show(results: &[TxResult]) {
/// for result in results {
///     match &result.outcome {
///         TxOutcome::Written(record) => println!("{}: wrote {}", result.index, record.key),
///         TxOutcome::Found(Some(record)) => println!("{}: found {}", result.index, record.key),
///         TxOutcome::Found(None) => println!("{}: no such record", result.index),
///         TxOutcome::Records(records) => println!("{}: {} records", result.index, records.len()),
///         TxOutcome::Count(n) => println!("{}: {n} records match", result.index),
///         TxOutcome::Deleted(_) => println!("{}: deleted", result.index),
///     }
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TxResult<T = Value> {
    /// The operation's position in the [`Transaction`], from 0 (the server's `index`).
    pub index: usize,
    /// What it gave, by the kind of the operation.
    pub outcome: TxOutcome<T>,
}

/// What one operation of a transaction gave, by its kind. Records decode as `T`
/// ([`Store::transaction`]); their [`Record::key`] is the `id` field.
///
/// The operation kinds are the protocol's closed set, so a `match` needs no wildcard arm.
#[derive(Debug, Clone, PartialEq)]
pub enum TxOutcome<T = Value> {
    /// `insert` or `update`: the record as written.
    Written(Record<T>),
    /// `get` or `findOne`: the record, if any.
    Found(Option<Record<T>>),
    /// `where` ([`Transaction::find`]): the matching records.
    Records(Vec<Record<T>>),
    /// `count`: how many records match.
    Count(u64),
    /// `delete`: whether the record was deleted.
    Deleted(bool),
}

impl<T> TxResult<T> {
    /// The record of a `Written` or `Found` result.
    pub fn record(&self) -> Option<&Record<T>> {
        match &self.outcome {
            TxOutcome::Written(record) => Some(record),
            TxOutcome::Found(record) => record.as_ref(),
            TxOutcome::Records(_) | TxOutcome::Count(_) | TxOutcome::Deleted(_) => None,
        }
    }
    /// The records of a `Records` result.
    pub fn records(&self) -> Option<&[Record<T>]> {
        match &self.outcome {
            TxOutcome::Records(records) => Some(records),
            _ => None,
        }
    }
    /// The number of a `Count` result.
    pub fn count(&self) -> Option<u64> {
        match self.outcome {
            TxOutcome::Count(n) => Some(n),
            _ => None,
        }
    }
    /// The flag of a `Deleted` result.
    pub fn deleted(&self) -> Option<bool> {
        match self.outcome {
            TxOutcome::Deleted(deleted) => Some(deleted),
            _ => None,
        }
    }
    /// The record of a `Written` or `Found` result, moved out.
    pub fn into_record(self) -> Option<Record<T>> {
        match self.outcome {
            TxOutcome::Written(record) => Some(record),
            TxOutcome::Found(record) => record,
            _ => None,
        }
    }
    /// The records of a `Records` result, moved out.
    pub fn into_records(self) -> Option<Vec<Record<T>>> {
        match self.outcome {
            TxOutcome::Records(records) => Some(records),
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
    /// Reads the records matching a filter (`where`; [`Filter::all`]: every record).
    pub fn find(mut self, bucket: &str, filter: impl Into<Filter>) -> Self {
        self.ops.push(TxOp::find(bucket, filter.into()));
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
    data: Value,
}

#[derive(Deserialize)]
struct QueryList {
    queries: Vec<QueryInfo>,
}

#[derive(Deserialize)]
struct Flag {
    deleted: bool,
}

fn decode_tx<T: DeserializeOwned>(op: &str, data: Value) -> Result<TxOutcome<T>> {
    let record = |v: Value| Record::from_value(v, "id").map_err(Error::from);
    Ok(match op {
        "insert" | "update" => TxOutcome::Written(record(data)?),
        "get" | "findOne" => TxOutcome::Found(match data {
            Value::Null => None,
            v => Some(record(v)?),
        }),
        "where" => match data {
            Value::Array(items) => {
                TxOutcome::Records(items.into_iter().map(record).collect::<Result<_>>()?)
            }
            other => {
                return Err(Error::protocol(format!(
                    "expected an array of records, got {other}"
                )))
            }
        },
        "count" => TxOutcome::Count(serde_json::from_value(data)?),
        "delete" => TxOutcome::Deleted(serde_json::from_value::<Flag>(data)?.deleted),
        other => {
            return Err(Error::protocol(format!(
                "a result for the unknown transaction operation {other:?}"
            )))
        }
    })
}

/// A subscription to a store query about to be made ([`Store::subscribe`]): set its
/// parameters, then `.await` it.
#[must_use = "a subscription is made when it is awaited"]
pub struct SubscribeBuilder<T = Value> {
    client: Client,
    query: String,
    /// The parameters, or why they could not be serialised.
    params: Option<Result<Value>>,
    _type: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for SubscribeBuilder<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscribeBuilder")
            .field("query", &self.query)
            .field("params", &self.params)
            .finish()
    }
}

impl<T> SubscribeBuilder<T> {
    /// The query's parameters (`{{params.x}}` in its filter), e.g. `json!({"role": "admin"})`.
    /// A value that cannot be serialised fails the subscription with [`Error::Serde`],
    /// unsent.
    pub fn params(mut self, params: impl Serialize) -> Self {
        self.params = Some(argument("the query parameters", params));
        self
    }
}

impl<T: DeserializeOwned + Send + 'static> IntoFuture for SubscribeBuilder<T> {
    type Output = Result<Subscription<T>>;
    type IntoFuture = BoxFuture<'static, Result<Subscription<T>>>;

    fn into_future(self) -> Self::IntoFuture {
        async move {
            let raw = self
                .client
                .subscribe_query(&self.query, self.params)
                .await?;
            Ok(Subscription::new(raw, self.client))
        }
        .boxed()
    }
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

    /// Subscribes to a defined query; `.params(..)` before `.await` for a parameterised
    /// one. The stream yields the whole result (decoded as `T`, e.g. `Vec<Record<User>>`,
    /// or `u64` for a count query): the initial result first, then every change, and fresh
    /// data after each reconnect. Only the latest unread result is kept, so a slow reader
    /// never makes memory grow.
    ///
    /// ```
    /// # use noex_client::{Client, ClientOptions, Record};
    /// # use serde_json::json;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = noex_testkit::TestServer::builder()
    /// #     .bucket_json("users", json!({"key": "id", "schema": {"id": {"type": "string"}, "role": {"type": "string"}}}))
    /// #     .query("users-by-role", noex_testkit::QueryDef::where_param("users", "role"))
    /// #     .query("all-users", noex_testkit::QueryDef::all("users"))
    /// #     .start()?;
    /// # tokio::runtime::Runtime::new()?.block_on(async {
    /// # use futures::StreamExt;
    /// # let client = Client::new(noex_tokio::Tokio);
    /// # client.connect(&server.url(), ClientOptions::new()).await?;
    /// # client.store().bucket("users").insert(json!({"id": "a", "role": "admin"})).await?;
    /// let mut everyone = client.store().subscribe::<Vec<Record>>("all-users").await?;
    /// let mut admins = client
    ///     .store()
    ///     .subscribe::<Vec<Record>>("users-by-role")
    ///     .params(json!({"role": "admin"}))
    ///     .await?;
    /// assert_eq!(everyone.next().await.transpose()?.map(|r| r.len()), Some(1));
    /// assert_eq!(admins.next().await.transpose()?.map(|r| r.len()), Some(1));
    /// # Ok::<_, noex_client::Error>(())
    /// # })?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn subscribe<T: DeserializeOwned + Send + 'static>(
        &self,
        query: &str,
    ) -> SubscribeBuilder<T> {
        SubscribeBuilder {
            client: self.client.clone(),
            query: query.to_owned(),
            params: None,
            _type: PhantomData,
        }
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
    ///     .key_field("id")
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
    /// the [`Subscription`] does, and waits until the client has processed it. An id the
    /// client does not know, or a client that is not connected, has nothing to end.
    ///
    /// ```
    /// # use noex_client::{Client, ClientOptions, Record};
    /// # use noex_client::proto::ops;
    /// # use serde_json::{json, Value};
    /// # use futures::StreamExt;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = noex_testkit::TestServer::builder()
    /// #     .bucket_json("users", json!({"key": "id", "schema": {"id": {"type": "string"}}}))
    /// #     .query("all-users", noex_testkit::QueryDef::all("users"))
    /// #     .start()?;
    /// # tokio::runtime::Runtime::new()?.block_on(async {
    /// # let client = Client::new(noex_tokio::Tokio);
    /// # client.connect(&server.url(), ClientOptions::new()).await?;
    /// # let wait = std::time::Duration::from_secs(5);
    /// let store = client.store();
    /// let mut users = store.subscribe::<Vec<Record>>("all-users").await?;
    /// assert!(users.next().await.is_some()); // the initial result
    /// store.unsubscribe(users.id()).await;
    /// assert!(tokio::time::timeout(wait, users.next()).await.unwrap().is_none());
    ///
    /// // A subscription made with a raw request is ended by the server's id.
    /// let raw = client.request(ops::store::subscribe("all-users", None)).await?;
    /// let answer: Value = raw.deserialize()?;
    /// let server_id = answer["subscriptionId"].as_str().expect("a subscription id");
    /// store.unsubscribe_server_id(server_id).await?;
    /// // Unknown now: the server says so.
    /// assert!(store.unsubscribe_server_id(server_id).await.unwrap_err().is(&noex_client::ErrorCode::NotFound));
    /// let queries = store.list_queries().await?;
    /// let all_users = queries.iter().find(|q| q.name == "all-users").unwrap();
    /// assert_eq!(all_users.active_subscriptions, 0);
    /// # Ok::<_, noex_client::Error>(())
    /// # })?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn unsubscribe(&self, id: SubscriptionId) {
        if let Err(error) = self.client.unsubscribe_id(id).await {
            tracing::debug!(%id, %error, "store unsubscribe: nothing to end");
        }
    }

    /// Sends `store.unsubscribe` for a subscription id the server gave (`sub-N`), for
    /// subscriptions made with raw requests ([`Client::request`]), and waits for the answer:
    /// a request like any other (the server answers `NOT_FOUND` for an id it does not
    /// know). Subscriptions made through [`Store::subscribe`] are ended through their
    /// handle, or [`Store::unsubscribe`], instead: the client restores them after a
    /// reconnect, under new server ids.
    ///
    /// A write: never re-sent automatically.
    pub async fn unsubscribe_server_id(&self, server_id: &str) -> Result<()> {
        let _: IgnoredAny = self.call(ops::store::unsubscribe(server_id)).await?;
        Ok(())
    }

    /// Runs the operations atomically; one result per operation, in order, with every
    /// record decoded as `T` (`serde_json::Value` when untyped, usually inferred from the
    /// binding). A value the transaction could not serialise fails it here, unsent.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    ///
    /// ```
    /// # use noex_client::{Client, ClientOptions, Filter, Transaction, TxResult};
    /// # use serde_json::json;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = noex_testkit::TestServer::builder()
    /// #     .bucket_json("users", json!({"key": "id", "schema": {"id": {"type": "string"}, "age": {"type": "number"}}}))
    /// #     .start()?;
    /// # tokio::runtime::Runtime::new()?.block_on(async {
    /// # let client = Client::new(noex_tokio::Tokio);
    /// # client.connect(&server.url(), ClientOptions::new()).await?;
    /// #[derive(serde::Deserialize)]
    /// struct User { age: u32 }
    ///
    /// let tx = Transaction::new()
    ///     .insert("users", json!({"id": "u1", "age": 30}))
    ///     .update("users", "u1", json!({"age": 31}))
    ///     .find("users", Filter::field("age").gte(18))
    ///     .count("users", Filter::all());
    /// let results = client.store().transaction::<User>(tx).await?;
    /// assert_eq!(results[1].index, 1);
    /// assert_eq!(results[1].record().map(|r| r.data.age), Some(31));
    /// assert_eq!(results[2].records().map(<[_]>::len), Some(1));
    /// assert_eq!(results[3].count(), Some(1));
    ///
    /// // Untyped: the binding says so.
    /// let untyped: Vec<TxResult> = client
    ///     .store()
    ///     .transaction(Transaction::new().get("users", "u1"))
    ///     .await?;
    /// assert_eq!(untyped[0].record().map(|r| r.data["age"].clone()), Some(json!(31)));
    /// # Ok::<_, noex_client::Error>(())
    /// # })?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn transaction<T: DeserializeOwned>(
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
                Some(op) => Ok(TxResult {
                    index: item.index,
                    outcome: decode_tx(op.op, item.data)?,
                }),
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

    /// Defines a bucket (`config`: `key`, `schema`, `indexes`, …).
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    ///
    /// ```
    /// # use noex_client::{Client, ClientOptions};
    /// # use serde_json::json;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = noex_testkit::TestServer::builder().start()?;
    /// # tokio::runtime::Runtime::new()?.block_on(async {
    /// # let client = Client::new(noex_tokio::Tokio);
    /// # client.connect(&server.url(), ClientOptions::new()).await?;
    /// let store = client.store();
    /// let schema = json!({"key": "id", "schema": {"id": {"type": "string"}}});
    /// assert!(store.define_bucket("notes", schema).await?.created);
    /// let more = json!({"addFields": {"title": {"type": "string"}}});
    /// assert_eq!(store.update_bucket("notes", more).await?.name, "notes");
    /// assert!(store.get_bucket_schema("notes").await?.config.schema.contains_key("title"));
    /// assert!(store.define_query("all-notes", json!({"bucket": "notes"})).await?.defined);
    /// assert!(store.undefine_query("all-notes").await?.undefined);
    /// assert!(store.drop_bucket("notes").await?.dropped);
    /// assert_eq!(store.buckets().await?.count, 0);
    /// # Ok::<_, noex_client::Error>(())
    /// # })?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn define_bucket(&self, name: &str, config: impl Serialize) -> Result<BucketDefined> {
        self.call(ops::store::define_bucket(name, config)).await
    }
    /// Changes a bucket's definition (`addFields`, …).
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn update_bucket(
        &self,
        name: &str,
        updates: impl Serialize,
    ) -> Result<BucketUpdated> {
        self.call(ops::store::update_bucket(name, updates)).await
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
    pub async fn drop_bucket(&self, name: &str) -> Result<BucketDropped> {
        self.call(ops::store::drop_bucket(name)).await
    }
    /// Defines a declarative query (`bucket`, `filter`, `sort`, `limit`, …).
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn define_query(&self, name: &str, config: impl Serialize) -> Result<QueryDefined> {
        self.call(ops::store::define_query(name, config)).await
    }
    /// Removes a query.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn undefine_query(&self, name: &str) -> Result<QueryUndefined> {
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
            .enumerate()
            .map(|(index, (op, d))| TxResult {
                index,
                outcome: decode_tx(op, d).unwrap(),
            })
            .collect();
        assert_eq!(results[0].record().unwrap().version, 2);
        assert_eq!(results[1].record().unwrap().key, json!("u1"));
        assert_eq!(results[2].records().unwrap().len(), 1);
        assert_eq!(results[3].outcome, TxOutcome::Found(None));
        assert_eq!(results[3].record(), None);
        assert_eq!(results[4].count(), Some(4));
        assert_eq!(results[5].deleted(), Some(true));
        assert_eq!(results[5].index, 5);
        assert_eq!(results[2].clone().into_records().unwrap().len(), 1);
        assert_eq!(results[0].clone().into_record().unwrap().key, json!("u1"));
        assert_eq!(results[4].record(), None);
    }

    #[test]
    fn a_delete_result_without_its_flag_is_an_error() {
        assert!(decode_tx::<Value>("delete", json!({})).is_err());
        assert!(decode_tx::<Value>("frobnicate", json!(1)).is_err());
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
        assert_eq!(stats.ttl.check_interval_ms, 1000);
        assert_eq!(stats.extra["future"], 1);
    }

    #[test]
    fn a_field_the_server_always_sends_is_required() {
        let stats = json!({
            "name": "s", "buckets": {"count": 1, "names": ["users"]},
            "records": {"total": 3, "perBucket": {"users": 3}},
            "indexes": {"total": 0, "perBucket": {"users": 0}},
            "queries": {"defined": 3, "activeSubscriptions": 0},
            "persistence": {"enabled": false},
            "ttl": {"enabled": true, "checkIntervalMs": 1000}
        });
        assert!(serde_json::from_value::<StoreStats>(stats.clone()).is_ok());
        for (part, field) in [
            ("buckets", "count"),
            ("records", "perBucket"),
            ("queries", "activeSubscriptions"),
            ("persistence", "enabled"),
            ("ttl", "checkIntervalMs"),
        ] {
            let mut without = stats.clone();
            without[part].as_object_mut().unwrap().remove(field);
            let err = serde_json::from_value::<StoreStats>(without).unwrap_err();
            assert!(err.to_string().contains(field), "{part}.{field}: {err}");
        }
        let query = json!({"name": "q", "type": "programmatic"});
        assert!(serde_json::from_value::<QueryInfo>(query).is_err());
        assert!(serde_json::from_value::<BucketList>(json!({"names": []})).is_err());
        assert!(serde_json::from_value::<BucketDefined>(json!({"name": "b"})).is_err());
    }

    #[test]
    fn admin_answers_as_recorded() {
        // Frames of fixtures/transcripts/basic.jsonl and limits-ttl-maxsize.jsonl.
        let defined: BucketDefined =
            serde_json::from_value(json!({"name": "products", "created": true})).unwrap();
        assert_eq!((defined.name.as_str(), defined.created), ("products", true));
        let updated: BucketUpdated =
            serde_json::from_value(json!({"name": "products", "updated": true})).unwrap();
        assert!(updated.updated);
        let dropped: BucketDropped =
            serde_json::from_value(json!({"name": "products", "dropped": true})).unwrap();
        assert!(dropped.dropped);
        let query: QueryDefined =
            serde_json::from_value(json!({"name": "cheap", "defined": true})).unwrap();
        assert!(query.defined);
        let gone: QueryUndefined =
            serde_json::from_value(json!({"name": "cheap", "undefined": true})).unwrap();
        assert!(gone.undefined);
        let schema: BucketSchema = serde_json::from_value(json!({"name": "cache", "config": {
            "key": "k", "schema": {"k": {"type": "string", "required": true}}, "ttl": 500
        }}))
        .unwrap();
        assert_eq!(schema.config.indexes, None);
        assert_eq!(schema.config.extra["ttl"], 500);
        let list: QueryList = serde_json::from_value(json!({"queries": [
            {"name": "all-users", "type": "programmatic", "activeSubscriptions": 2},
            {"name": "cheap", "type": "declarative", "activeSubscriptions": 0,
             "config": {"bucket": "products"}}
        ]}))
        .unwrap();
        assert_eq!(list.queries[0].active_subscriptions, 2);
        assert_eq!(list.queries[0].config, None);
        assert_eq!(list.queries[1].config, Some(json!({"bucket": "products"})));
    }
}
