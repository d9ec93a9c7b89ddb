//! One bucket's records.

use super::checked;
use super::record::{Page, Record};
use crate::client::Client;
use crate::error::{Error, Result};
use futures::stream::{self, Stream};
use noex_proto::ops::Filter;
use noex_proto::{ops, Operation, RequestOptions};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::marker::PhantomData;

/// A bucket handle: `client.store().bucket("users")`. Records come back as
/// [`Record<T>`]; use [`Bucket::typed`] for your own type.
///
/// Writes (`insert`, `update`, `delete`, `clear`) are never re-sent automatically. When one
/// fails with [`Error::may_have_been_applied`] true (a timeout, or the connection lost after
/// the frame left), the server may or may not have applied it: re-read before retrying.
/// When it is false, nothing reached the server and retrying is safe.
///
/// Arguments are owned (`impl Serialize`, filters `impl Into<Filter>`), so calls over
/// temporaries compose:
///
/// ```
/// # use noex_client::{Client, ClientOptions, Filter};
/// # use serde_json::json;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = noex_testkit::TestServer::builder()
/// #     .bucket_json("users", json!({"key": "id", "schema": {"id": {"type": "string"}}}))
/// #     .start()?;
/// # tokio::runtime::Runtime::new()?.block_on(async {
/// # let client = Client::new(noex_tokio::Tokio);
/// # client.connect(&server.url(), ClientOptions::new()).await?;
/// let users = client.store().bucket("users");
/// let (a, b) = tokio::join!(
///     users.insert(json!({"id": "a", "age": 30})),
///     users.insert(json!({"id": "b", "age": 12})),
/// );
/// assert_eq!((a?.version, b?.version), (1, 1));
/// let adults = users.where_(Filter::field("age").gte(18)).await?;
/// assert_eq!(adults.len(), 1);
/// assert_eq!(users.count(json!({"age": 12})).await?, 1);
/// assert_eq!(users.count(Filter::all()).await?, 2);
/// # Ok::<_, noex_client::Error>(())
/// # })?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Bucket<T = Value> {
    client: Client,
    name: String,
    key_field: String,
    options: RequestOptions,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for Bucket<T> {
    fn clone(&self) -> Self {
        Bucket {
            client: self.client.clone(),
            name: self.name.clone(),
            key_field: self.key_field.clone(),
            options: self.options,
            _type: PhantomData,
        }
    }
}

#[derive(Deserialize)]
struct RawPage {
    records: Vec<Value>,
    #[serde(rename = "hasMore", default)]
    has_more: bool,
    #[serde(rename = "nextCursor", default)]
    next_cursor: Option<Value>,
}

#[derive(Deserialize)]
struct Flag {
    #[serde(default)]
    deleted: bool,
}

impl Bucket<Value> {
    pub(crate) fn new(client: Client, name: &str) -> Bucket<Value> {
        Bucket {
            client,
            name: name.to_owned(),
            key_field: "id".into(),
            options: RequestOptions::default(),
            _type: PhantomData,
        }
    }
}

impl<T: DeserializeOwned> Bucket<T> {
    /// The same bucket with records decoded as `U`.
    pub fn typed<U: DeserializeOwned>(self) -> Bucket<U> {
        Bucket {
            client: self.client,
            name: self.name,
            key_field: self.key_field,
            options: self.options,
            _type: PhantomData,
        }
    }

    /// Names the bucket's key field (default `id`), so [`Record::key`] is filled.
    pub fn key_field(mut self, field: impl Into<String>) -> Self {
        self.key_field = field.into();
        self
    }

    /// Options for every call through this handle: deadline, and retry-safe reads (re-sent
    /// after a reconnect within their deadline; ignored for writes).
    pub fn with_options(mut self, options: RequestOptions) -> Self {
        self.options = options;
        self
    }

    /// The bucket's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    async fn value(&self, op: Operation) -> Result<Value> {
        self.client.call(checked(op)?, self.options).await
    }

    async fn call<U: DeserializeOwned>(&self, op: Operation) -> Result<U> {
        self.client.call(checked(op)?, self.options).await
    }

    fn record(&self, value: Value) -> Result<Record<T>> {
        Record::from_value(value, &self.key_field).map_err(Error::from)
    }

    fn optional(&self, value: Value) -> Result<Option<Record<T>>> {
        match value {
            Value::Null => Ok(None),
            value => self.record(value).map(Some),
        }
    }

    fn records(&self, value: Value) -> Result<Vec<Record<T>>> {
        match value {
            Value::Array(items) => items.into_iter().map(|v| self.record(v)).collect(),
            other => Err(Error::protocol(format!(
                "expected an array of records, got {other}"
            ))),
        }
    }

    /// Inserts a record; returns it with its generated fields and metadata.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn insert(&self, data: impl Serialize) -> Result<Record<T>> {
        let value = self.value(ops::store::insert(&self.name, data)).await?;
        self.record(value)
    }

    /// The record with this key, if any.
    pub async fn get(&self, key: impl Serialize) -> Result<Option<Record<T>>> {
        let value = self.value(ops::store::get(&self.name, key)).await?;
        self.optional(value)
    }

    /// Merges `patch` into the record; returns the new record (version bumped).
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn update(&self, key: impl Serialize, patch: impl Serialize) -> Result<Record<T>> {
        let value = self
            .value(ops::store::update(&self.name, key, patch))
            .await?;
        self.record(value)
    }

    /// Deletes the record; returns whether the server reports it deleted.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn delete(&self, key: impl Serialize) -> Result<bool> {
        let flag: Flag = self.call(ops::store::delete(&self.name, key)).await?;
        Ok(flag.deleted)
    }

    /// Every record, in insertion order.
    pub async fn all(&self) -> Result<Vec<Record<T>>> {
        let value = self.value(ops::store::all(&self.name)).await?;
        self.records(value)
    }

    /// Records matching `filter`: a [`Filter`] or raw JSON such as
    /// `json!({"age": {"$gte": 18}})`.
    pub async fn where_(&self, filter: impl Into<Filter>) -> Result<Vec<Record<T>>> {
        let value = self
            .value(ops::store::where_(&self.name, &filter.into()))
            .await?;
        self.records(value)
    }

    /// The first record matching `filter`, if any.
    pub async fn find_one(&self, filter: impl Into<Filter>) -> Result<Option<Record<T>>> {
        let value = self
            .value(ops::store::find_one(&self.name, &filter.into()))
            .await?;
        self.optional(value)
    }

    /// How many records match `filter` ([`Filter::all`] counts every record).
    pub async fn count(&self, filter: impl Into<Filter>) -> Result<u64> {
        self.call(ops::store::count(&self.name, Some(&filter.into())))
            .await
    }

    /// The first `n` records (n ≥ 1).
    pub async fn first(&self, n: u64) -> Result<Vec<Record<T>>> {
        let value = self.value(ops::store::first(&self.name, n)).await?;
        self.records(value)
    }

    /// The last `n` records (n ≥ 1).
    pub async fn last(&self, n: u64) -> Result<Vec<Record<T>>> {
        let value = self.value(ops::store::last(&self.name, n)).await?;
        self.records(value)
    }

    /// One page of at most `limit` records after the cursor `after`.
    pub async fn paginate(&self, limit: u64, after: Option<Value>) -> Result<Page<T>> {
        let page: RawPage = self
            .call(ops::store::paginate(&self.name, limit, after.as_ref()))
            .await?;
        Ok(Page {
            records: page
                .records
                .into_iter()
                .map(|v| self.record(v))
                .collect::<Result<_>>()?,
            has_more: page.has_more,
            next_cursor: page.next_cursor,
        })
    }

    /// Every page of `limit` records, one after another, as a stream. It ends after the
    /// last page, or after yielding an error.
    pub fn pages(&self, limit: u64) -> impl Stream<Item = Result<Vec<Record<T>>>> + '_ {
        stream::unfold(Some(None::<Value>), move |cursor| async move {
            let after = cursor?;
            match self.paginate(limit, after).await {
                Ok(page) => {
                    let next = match (page.has_more, page.next_cursor) {
                        (true, Some(cursor)) => Some(Some(cursor)),
                        _ => None,
                    };
                    Some((Ok(page.records), next))
                }
                Err(e) => Some((Err(e), None)),
            }
        })
    }

    /// Sum of `field` over the records matching `filter` ([`Filter::all`]: every record).
    pub async fn sum(&self, field: &str, filter: impl Into<Filter>) -> Result<f64> {
        self.call(ops::store::sum(&self.name, field, Some(&filter.into())))
            .await
    }

    /// Average of `field` over the records matching `filter`.
    pub async fn avg(&self, field: &str, filter: impl Into<Filter>) -> Result<f64> {
        self.call(ops::store::avg(&self.name, field, Some(&filter.into())))
            .await
    }

    /// Smallest `field`, `None` when no record matches.
    pub async fn min(&self, field: &str, filter: impl Into<Filter>) -> Result<Option<f64>> {
        self.call(ops::store::min(&self.name, field, Some(&filter.into())))
            .await
    }

    /// Largest `field`, `None` when no record matches.
    pub async fn max(&self, field: &str, filter: impl Into<Filter>) -> Result<Option<f64>> {
        self.call(ops::store::max(&self.name, field, Some(&filter.into())))
            .await
    }

    /// Deletes every record of the bucket.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub async fn clear(&self) -> Result<()> {
        self.value(ops::store::clear(&self.name)).await.map(drop)
    }
}
