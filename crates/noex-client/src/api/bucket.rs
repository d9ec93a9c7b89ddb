//! One bucket's records.

use super::argument;
use super::record::{
    decode_with, OptionalRecordSeed, Page, PageSeed, Record, RecordSeed, RecordsSeed,
};
use crate::client::Client;
use crate::error::Result;
use futures::future::BoxFuture;
use futures::stream::{self, Stream};
use futures::FutureExt;
use noex_proto::ops::Filter;
use noex_proto::ops::{self, Operation};
use noex_proto::RequestOptions;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::future::{Future, IntoFuture};
use std::marker::PhantomData;

/// A bucket handle: `client.store().bucket("users")`. Records come back as
/// [`Record<T>`]; use [`Bucket::typed`] for your own type.
///
/// Writes (`insert`, `update`, `delete`, `clear`) are never re-sent automatically. When one
/// fails with [`Error::may_have_been_applied`](crate::Error::may_have_been_applied) true (a timeout, or the connection lost after
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
/// let adults = users.find(Filter::field("age").gte(18)).await?;
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
struct Flag {
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

    /// Sends `op` and decodes its answer with `decode`, given this bucket's key field.
    fn decode<R>(
        &self,
        op: Operation,
        decode: impl FnOnce(&str, &str) -> serde_json::Result<R> + Send + 'static,
    ) -> impl Future<Output = Result<R>> + Send + '_ {
        // An operation whose arguments could not be serialised is refused by the request
        // itself, never sent.
        let key_field = self.key_field.as_str();
        self.client
            .call_with(op, self.options, move |text| decode(text, key_field))
    }

    fn call<U: DeserializeOwned>(
        &self,
        op: Operation,
    ) -> impl Future<Output = Result<U>> + Send + '_ {
        self.decode(op, |text, _| serde_json::from_str(text))
    }

    fn record(&self, op: Operation) -> impl Future<Output = Result<Record<T>>> + Send + '_ {
        self.decode(op, |text, key| decode_with(text, RecordSeed::new(key)))
    }

    fn optional(
        &self,
        op: Operation,
    ) -> impl Future<Output = Result<Option<Record<T>>>> + Send + '_ {
        self.decode(op, |text, key| {
            decode_with(text, OptionalRecordSeed(RecordSeed::new(key)))
        })
    }

    fn records(&self, op: Operation) -> impl Future<Output = Result<Vec<Record<T>>>> + Send + '_ {
        self.decode(op, |text, key| {
            decode_with(text, RecordsSeed(RecordSeed::new(key)))
        })
    }

    /// Inserts a record; returns it with its generated fields and metadata.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub fn insert(
        &self,
        data: impl Serialize,
    ) -> impl Future<Output = Result<Record<T>>> + Send + '_ {
        self.record(ops::store::insert(&self.name, data))
    }

    /// The record with this key, if any.
    pub fn get(
        &self,
        key: impl Serialize,
    ) -> impl Future<Output = Result<Option<Record<T>>>> + Send + '_ {
        self.optional(ops::store::get(&self.name, key))
    }

    /// Merges `patch` into the record; returns the new record (version bumped).
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub fn update(
        &self,
        key: impl Serialize,
        patch: impl Serialize,
    ) -> impl Future<Output = Result<Record<T>>> + Send + '_ {
        self.record(ops::store::update(&self.name, key, patch))
    }

    /// Deletes the record; returns whether the server reports it deleted.
    ///
    /// A write: never re-sent automatically. When it fails and [`crate::Error::may_have_been_applied`]
    /// is true, the server may have applied it: re-read before retrying. When false,
    /// nothing reached the server and retrying is safe.
    pub fn delete(&self, key: impl Serialize) -> impl Future<Output = Result<bool>> + Send + '_ {
        self.call::<Flag>(ops::store::delete(&self.name, key))
            .map(|flag| flag.map(|f| f.deleted))
    }

    /// Every record, in insertion order.
    pub fn all(&self) -> impl Future<Output = Result<Vec<Record<T>>>> + Send + '_ {
        self.records(ops::store::all(&self.name))
    }

    /// Records matching `filter` (`store.where`): a [`Filter`] or raw JSON such as
    /// `json!({"age": {"$gte": 18}})`; [`Filter::all`] for every record.
    pub fn find(
        &self,
        filter: impl Into<Filter>,
    ) -> impl Future<Output = Result<Vec<Record<T>>>> + Send + '_ {
        self.records(ops::store::find(&self.name, &filter.into()))
    }

    /// The first record matching `filter`, if any.
    pub fn find_one(
        &self,
        filter: impl Into<Filter>,
    ) -> impl Future<Output = Result<Option<Record<T>>>> + Send + '_ {
        self.optional(ops::store::find_one(&self.name, &filter.into()))
    }

    /// How many records match `filter` ([`Filter::all`] counts every record).
    pub async fn count(&self, filter: impl Into<Filter>) -> Result<u64> {
        self.call(ops::store::count(&self.name, Some(&filter.into())))
            .await
    }

    /// The first `n` records (n ≥ 1).
    pub fn first(&self, n: u64) -> impl Future<Output = Result<Vec<Record<T>>>> + Send + '_ {
        self.records(ops::store::first(&self.name, n))
    }

    /// The last `n` records (n ≥ 1).
    pub fn last(&self, n: u64) -> impl Future<Output = Result<Vec<Record<T>>>> + Send + '_ {
        self.records(ops::store::last(&self.name, n))
    }

    /// One page of at most `limit` records (limit ≥ 1), from the first record; set where
    /// it starts with [`PaginateBuilder::after`] (the previous page's
    /// [`Page::next_cursor`]) before `.await`.
    ///
    /// ```
    /// # use noex_client::{Client, ClientOptions};
    /// # use serde_json::json;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = noex_testkit::TestServer::builder()
    /// #     .bucket_json("users", json!({"key": "id", "schema": {"id": {"type": "string"}}}))
    /// #     .start()?;
    /// # tokio::runtime::Runtime::new()?.block_on(async {
    /// # let client = Client::new(noex_tokio::Tokio);
    /// # client.connect(&server.url(), ClientOptions::new()).await?;
    /// let users = client.store().bucket("users");
    /// for id in ["a", "b", "c"] {
    ///     users.insert(json!({"id": id})).await?;
    /// }
    /// let first = users.paginate(2).await?;
    /// assert_eq!((first.records.len(), first.has_more), (2, true));
    /// let cursor = first.next_cursor.expect("a page with records has a cursor");
    /// let rest = users.paginate(2).after(cursor).await?;
    /// assert_eq!(rest.records[0].key, "c");
    /// assert!(!rest.has_more);
    /// # Ok::<_, noex_client::Error>(())
    /// # })?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn paginate(&self, limit: u64) -> PaginateBuilder<'_, T> {
        PaginateBuilder {
            bucket: self,
            limit,
            after: None,
        }
    }

    /// Every page of `limit` records, one after another, as a stream. It ends after the
    /// last page, or after yielding an error.
    pub fn pages(&self, limit: u64) -> impl Stream<Item = Result<Vec<Record<T>>>> + '_ {
        stream::unfold(Some(None::<Value>), move |cursor| async move {
            let page = match cursor? {
                Some(after) => self.paginate(limit).after(after),
                None => self.paginate(limit),
            };
            match page.await {
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
    pub fn clear(&self) -> impl Future<Output = Result<()>> + Send + '_ {
        self.call::<serde::de::IgnoredAny>(ops::store::clear(&self.name))
            .map(|answer| answer.map(drop))
    }
}

/// A page about to be read ([`Bucket::paginate`]): set where it starts, then `.await` it.
#[must_use = "a page is read when it is awaited"]
pub struct PaginateBuilder<'a, T = Value> {
    bucket: &'a Bucket<T>,
    limit: u64,
    /// The cursor, or why it could not be serialised.
    after: Option<Result<Value>>,
}

impl<T> std::fmt::Debug for PaginateBuilder<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaginateBuilder")
            .field("bucket", &self.bucket.name)
            .field("limit", &self.limit)
            .field("after", &self.after)
            .finish()
    }
}

impl<T> PaginateBuilder<'_, T> {
    /// Starts after the record with this key: the previous page's [`Page::next_cursor`].
    /// A value that cannot be serialised fails the read with
    /// [`Error::Serde`](crate::Error::Serde), unsent.
    pub fn after(mut self, cursor: impl Serialize) -> Self {
        self.after = Some(argument("the paginate cursor", cursor));
        self
    }
}

impl<'a, T: DeserializeOwned + 'a> IntoFuture for PaginateBuilder<'a, T> {
    type Output = Result<Page<T>>;
    type IntoFuture = BoxFuture<'a, Result<Page<T>>>;

    fn into_future(self) -> Self::IntoFuture {
        let PaginateBuilder {
            bucket,
            limit,
            after,
        } = self;
        async move {
            let after = after.transpose()?;
            bucket
                .decode(
                    ops::store::paginate(&bucket.name, limit, after.as_ref()),
                    |text, key| decode_with(text, PageSeed(RecordSeed::new(key))),
                )
                .await
        }
        .boxed()
    }
}
