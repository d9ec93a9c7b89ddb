//! Live views: a store query's changes, keyed, including what was missed while away.

use crate::api::argument;
use crate::api::record::{Record, RecordSeed};
use crate::client::{Client, Next, RawSubscription};
use crate::error::{Error, Result};
use crate::runtime::Runtime;
use crate::subscription::{spawn_callback, CallbackHandle};
use futures::future::BoxFuture;
use futures::{FutureExt, Stream};
use noex_proto::live::{LiveError, LiveKeys, Origin, RawChanges};
use noex_proto::SubscriptionId;
use serde::de::{DeserializeOwned, DeserializeSeed};
use serde::Serialize;
use serde_json::Value;
use std::future::IntoFuture;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// What changed in a live query's result since the last item: records added, updated (a
/// new `_version`, or replaced under their key) and removed (as last seen), each keyed by
/// the record's key. A record whose key and content did not change is in none of them.
///
/// The first item of a [`LiveQuery`] is the initial result, all in `added`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Changes<T = Value> {
    /// Records that are new in the result, in the result's order.
    pub added: Vec<Record<T>>,
    /// Records that changed (a new version, or replaced under their key), as they are now,
    /// in the result's order.
    pub updated: Vec<Record<T>>,
    /// Records no longer in the result, as they were last seen, in their old order.
    pub removed: Vec<Record<T>>,
}

impl<T> Changes<T> {
    /// Whether nothing was added, updated or removed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.updated.is_empty() && self.removed.is_empty()
    }

    /// How many records changed, whichever way.
    pub fn len(&self) -> usize {
        self.added.len() + self.updated.len() + self.removed.len()
    }
}

/// A live view of a store query whose result is a list of records: a [`Stream`] of what
/// changed ([`Changes`]), and the current result ([`LiveQuery::view`]).
///
/// Made with [`crate::Store::live`]. Every item says exactly what changed since the item
/// before, by record key and content:
///
/// - the first item is the initial result, all `added`;
/// - a slow reader never makes memory grow and never loses a change: whatever happened
///   since it last read (several pushes) comes as one item, the difference between the
///   result it last saw and the newest one;
/// - after a reconnect (also after a link that went silently dead, and a server restart
///   that kept its data), the next item is exactly what was missed while away: the
///   difference between the result before the loss and the fresh one;
/// - nothing is yielded when nothing changed (a reconnect with nothing missed).
///
/// Only the records that changed are read into `T`, each once; the others are told apart
/// by their key and a hash of their text alone. [`LiveQuery::view`] is the current result in the
/// server's order, updated as the items are read (it is the records, not a copy: the
/// records in [`Changes::added`] and [`Changes::updated`] are clones of those in it).
///
/// It ends as a [`crate::Subscription`] does: `None` when the client closes, one
/// [`Error::GaveUp`] then `None` when it gives up for good; dropping it (or
/// [`LiveQuery::unsubscribe`]) unsubscribes on the server. A query whose result is not a
/// list of records gets [`Error::Live`] with [`LiveError::NotAList`] as its first item,
/// and the stream ends.
///
/// ```no_run
/// # async fn demo(client: noex_client::Client) -> noex_client::Result<()> {
/// use futures::StreamExt;
///
/// #[derive(Debug, Clone, serde::Deserialize)]
/// struct Order { item: String, status: String }
///
/// let mut orders = client.store().live::<Order>("open-orders").await?;
/// while let Some(changes) = orders.next().await {
///     let changes = changes?;
///     for order in &changes.added {
///         println!("new order {}: {}", order.key, order.data.item);
///     }
///     for order in &changes.updated {
///         println!("order {} is now {}", order.key, order.data.status);
///     }
///     for order in &changes.removed {
///         println!("order {} is gone", order.key);
///     }
///     println!("{} open orders", orders.view().len());
/// }
/// # Ok(())
/// # }
/// ```
pub struct LiveQuery<T = Value> {
    raw: RawSubscription,
    /// Only the runtime, never the client (see [`crate::Subscription`]).
    runtime: Arc<dyn Runtime>,
    query: String,
    keys: LiveKeys,
    view: Vec<Record<T>>,
    /// Whether an item has been yielded (the first is yielded even when empty).
    started: bool,
}

/// Nothing in it is pinned: the records are moved freely between items.
impl<T> Unpin for LiveQuery<T> {}

impl<T> std::fmt::Debug for LiveQuery<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveQuery")
            .field("id", &self.raw.id)
            .field("query", &self.query)
            .field("records", &self.view.len())
            .finish()
    }
}

impl<T> LiveQuery<T> {
    /// The client-side handle, stable across reconnects.
    pub fn id(&self) -> SubscriptionId {
        self.raw.id
    }

    /// The query.
    pub fn query(&self) -> &str {
        &self.query
    }

    /// The current result, in the server's order, as of the last item read.
    pub fn view(&self) -> &[Record<T>] {
        &self.view
    }

    /// Unsubscribes and waits until the client has processed it. Nothing is sent when
    /// disconnected.
    pub async fn unsubscribe(self) {
        self.raw.unsubscribe().await
    }
}

impl<T: DeserializeOwned + Clone + Send + 'static> LiveQuery<T> {
    /// Hands every item to `callback`, with the view after it, on a background task
    /// instead of reading the stream. Dropping the returned handle stops the task and
    /// unsubscribes. A callback that panics is reported (as for
    /// [`crate::Subscription::on_update`]) and called again for the next item.
    pub fn on_change(
        self,
        mut callback: impl FnMut(Result<Changes<T>>, &[Record<T>]) + Send + 'static,
    ) -> CallbackHandle {
        let runtime = self.runtime.clone();
        spawn_callback(
            self,
            runtime,
            "on_change",
            |l| &l.raw,
            move |item, live| callback(item, &live.view),
        )
    }

    fn live_error(&self, error: LiveError) -> Error {
        Error::Live {
            query: self.query.clone(),
            error,
        }
    }

    /// Reads the records that changed and moves the rest from the old view; the keys
    /// accept the new result only when every changed record was read.
    fn read(&mut self, mut raw: RawChanges<'_>) -> Result<Changes<T>> {
        let seed = RecordSeed::<T>::new(self.keys.key_field());
        let parse = |record: &serde_json::value::RawValue| -> Result<Record<T>> {
            let mut de = serde_json::Deserializer::from_str(record.get());
            seed.deserialize(&mut de).map_err(Error::from)
        };
        let mut fresh: Vec<Option<Record<T>>> = Vec::with_capacity(raw.records.len());
        let (mut added, mut updated) = (Vec::new(), Vec::new());
        for origin in &raw.records {
            fresh.push(match origin {
                Origin::Kept { .. } => None,
                Origin::Updated { record, .. } => {
                    let record = parse(record)?;
                    updated.push(record.clone());
                    Some(record)
                }
                Origin::Added { record } => {
                    let record = parse(record)?;
                    added.push(record.clone());
                    Some(record)
                }
            });
        }
        // Every changed record was read: the new result is the last one from now on.
        let mut old: Vec<Option<Record<T>>> = std::mem::take(&mut self.view)
            .into_iter()
            .map(Some)
            .collect();
        let mut view = Vec::with_capacity(raw.records.len());
        for (origin, record) in raw.records.iter().zip(fresh) {
            let record = match (origin, record) {
                (Origin::Kept { previous }, _) => old.get_mut(*previous).and_then(Option::take),
                (_, record) => record,
            };
            // `LiveKeys` gives each previous position once; a record is never missing.
            view.extend(record);
        }
        let removed = raw
            .removed
            .iter()
            .filter_map(|&i| old.get_mut(i).and_then(Option::take))
            .collect();
        self.view = view;
        self.keys.accept(&mut raw);
        Ok(Changes {
            added,
            updated,
            removed,
        })
    }
}

impl<T: DeserializeOwned + Clone + Send + 'static> Stream for LiveQuery<T> {
    type Item = Result<Changes<T>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            let data = match self.raw.poll_next(cx) {
                Poll::Ready(Some(Ok(Next::Data(data)))) => data,
                // A store query has no gaps (its fresh data makes up for what it missed)
                // and keeps only its latest result (never lags).
                Poll::Ready(Some(Ok(Next::Gap { .. } | Next::Lagged(_)))) => continue,
                Poll::Ready(Some(Err(error))) => return Poll::Ready(Some(Err(error))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            };
            let this = &mut *self;
            let raw = match this.keys.diff(&data) {
                Ok(raw) => raw,
                Err(LiveError::NotAList) if !this.started => {
                    this.raw.finish();
                    return Poll::Ready(Some(Err(this.live_error(LiveError::NotAList))));
                }
                Err(error) => return Poll::Ready(Some(Err(this.live_error(error)))),
            };
            if this.started && raw.is_unchanged() {
                continue;
            }
            let changes = this.read(raw);
            if changes.is_ok() {
                this.started = true;
            }
            return Poll::Ready(Some(changes));
        }
    }
}

/// A live query about to be made ([`crate::Store::live`]): set its parameters and key
/// field, then `.await` it.
#[must_use = "a live query is made when it is awaited"]
pub struct LiveBuilder<T = Value> {
    client: Client,
    query: String,
    /// The parameters, or why they could not be serialised.
    params: Option<Result<Value>>,
    key_field: String,
    _type: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for LiveBuilder<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveBuilder")
            .field("query", &self.query)
            .field("params", &self.params)
            .field("key_field", &self.key_field)
            .finish()
    }
}

impl<T> LiveBuilder<T> {
    pub(crate) fn new(client: Client, query: &str) -> LiveBuilder<T> {
        LiveBuilder {
            client,
            query: query.to_owned(),
            params: None,
            key_field: "id".to_owned(),
            _type: PhantomData,
        }
    }

    /// The query's parameters (`{{params.x}}` in its filter), e.g. `json!({"role": "admin"})`.
    /// A value that cannot be serialised fails the live query with [`Error::Serde`], unsent.
    pub fn params(mut self, params: impl Serialize) -> Self {
        self.params = Some(argument("the query parameters", params));
        self
    }

    /// The records' key field: the bucket's `key`. Default `id`.
    pub fn key_field(mut self, field: impl Into<String>) -> Self {
        self.key_field = field.into();
        self
    }
}

impl<T: DeserializeOwned + Clone + Send + 'static> IntoFuture for LiveBuilder<T> {
    type Output = Result<LiveQuery<T>>;
    type IntoFuture = BoxFuture<'static, Result<LiveQuery<T>>>;

    fn into_future(self) -> Self::IntoFuture {
        async move {
            let raw = self
                .client
                .subscribe_query(&self.query, self.params)
                .await?;
            Ok(LiveQuery {
                raw,
                runtime: self.client.runtime(),
                query: self.query,
                keys: LiveKeys::new(&self.key_field),
                view: Vec::new(),
                started: false,
            })
        }
        .boxed()
    }
}
