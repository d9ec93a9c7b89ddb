//! Subscriptions as streams (and callbacks) that survive reconnects.

use crate::client::{Client, Next, RawSubscription};
use crate::error::{Error, Result};
use crate::rule_events::{RuleMessage, RuleUpdate};
use crate::runtime::Runtime;
use crate::shared::callback_panicked;
use futures::future::{AbortHandle, Abortable};
use futures::{FutureExt, Stream, StreamExt};
use noex_proto::SubscriptionId;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// A store query subscription ([`crate::Store::subscribe`]): a [`Stream`] of the query's
/// whole result, decoded as `T`, initial result first.
///
/// It yields the result each time it changes. A slow consumer never makes memory grow:
/// only the latest result is kept (older unread ones are superseded, which loses nothing
/// since each carries the whole result). It has no notices: after a reconnect it yields
/// the fresh result, which makes up for the pushes it missed.
///
/// The subscription survives reconnects: after each one it is made again and yields fresh
/// data. An `Err` item is a failure (see [`Error`]):
/// - a result that could not be read as `T` ([`Error::Serde`]): the stream carries on;
/// - the client gives up on the connection for good (a permanent close code, the session
///   revoked, credentials refused, reconnect attempts exhausted): one [`Error::GaveUp`]
///   saying why, then `None`;
/// - it cannot be made again after a reconnect: its error, then `None`.
///
/// When the client closes ([`crate::Client::disconnect`], or the last handle dropped) the
/// stream ends quietly with `None`.
///
/// Dropping it unsubscribes on the server; so does [`Subscription::unsubscribe`], which
/// also waits until the client has processed it. Dropping the future that makes it, before
/// it is ready, withdraws the subscribe: nothing stays registered on the server.
pub struct Subscription<T> {
    raw: RawSubscription,
    /// Only the runtime, never the client: a live subscription must not keep the client
    /// (and its connection) alive after the last client handle is dropped.
    runtime: Arc<dyn Runtime>,
    _type: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for Subscription<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.raw.id)
            .finish()
    }
}

impl<T: DeserializeOwned + Send + 'static> Subscription<T> {
    pub(crate) fn new(raw: RawSubscription, client: Client) -> Self {
        Subscription {
            raw,
            runtime: client.runtime(),
            _type: PhantomData,
        }
    }

    /// The client-side handle, stable across reconnects.
    pub fn id(&self) -> SubscriptionId {
        self.raw.id
    }

    /// Results received and not yet read: at most 1 (only the latest is kept).
    pub fn unread(&self) -> usize {
        self.raw.buffered()
    }

    /// Unsubscribes and waits until the client has processed it. Nothing is sent when
    /// disconnected.
    pub async fn unsubscribe(self) {
        self.raw.unsubscribe().await
    }

    /// Hands every value to `callback` on a background task instead of reading the stream.
    /// Dropping the returned handle stops the task and unsubscribes. The callback gets the
    /// same items the stream yields (an ordinary shutdown ends it without an error). A
    /// callback that panics is reported (a `tracing` error and a lifecycle
    /// [`noex_proto::CoreError::CallbackPanicked`] event) and called again for the next
    /// item: the subscription carries on.
    pub fn on_update(self, mut callback: impl FnMut(Result<T>) + Send + 'static) -> CallbackHandle {
        let runtime = self.runtime.clone();
        spawn_callback(
            self,
            runtime,
            "on_update",
            |s| &s.raw,
            move |item, _| callback(item),
        )
    }
}

impl<T: DeserializeOwned> Stream for Subscription<T> {
    type Item = Result<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            return match self.raw.poll_next(cx) {
                Poll::Ready(Some(Ok(Next::Data(data)))) => {
                    Poll::Ready(Some(data.deserialize().map_err(Error::from)))
                }
                // A store query has no gaps (its fresh data makes up for what it missed)
                // and keeps only its latest result (never lags).
                Poll::Ready(Some(Ok(Next::Gap { .. } | Next::Lagged(_)))) => continue,
                Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(error))),
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            };
        }
    }
}

/// A rules subscription ([`crate::Rules::subscribe`]): a [`Stream`] of [`RuleUpdate`]s, the
/// events whose topic matches a pattern and the notices that some were missed.
///
/// # What it yields
///
/// - [`RuleUpdate::Event`] for each event, in the order the server sent them;
/// - [`RuleUpdate::Missed`] after a reconnect, before any new event: a pattern's events
///   are not kept for a subscriber that is away, so those emitted meanwhile are gone;
/// - [`RuleUpdate::Lagged`] when the application read too slowly: an unread subscription
///   keeps at most [`crate::ClientOptions::rules_buffer`] events (memory stays bounded
///   whatever the server sends) and drops the oldest beyond, counting them. A `Missed`
///   notice is never dropped, nor counted as an event.
///
/// # Notices are items, errors are failures
///
/// `Missed` and `Lagged` end nothing and need no error handling, only a decision (usually:
/// re-read the state the missed events would have changed), so they are items beside the
/// events. That way every `Err` can be handled as a failure without first asking which
/// errors are not one; `?` or `filter_map(Result::ok)` cannot drop a notice unnoticed; and
/// a `match` on [`RuleUpdate`] lists every notice the stream yields (see [`Error`]). An
/// `Err` is one of:
/// - an event that could not be read ([`Error::Serde`]): the stream carries on;
/// - the client gives up on the connection for good: one [`Error::GaveUp`] saying why,
///   then `None`;
/// - it cannot be made again after a reconnect: its error, then `None`.
///
/// When the client closes ([`crate::Client::disconnect`], or the last handle dropped) the
/// stream ends quietly with `None`.
///
/// Dropping it unsubscribes on the server; so do [`RuleSubscription::unsubscribe`] and
/// [`crate::Rules::unsubscribe`], which also wait until the client has processed it.
/// Dropping the future that makes it, before it is ready, withdraws the subscribe.
///
/// ```no_run
/// # async fn demo(client: noex_client::Client) -> noex_client::Result<()> {
/// use futures::StreamExt;
/// use noex_client::RuleUpdate;
///
/// let mut orders = client.rules().subscribe("order.*").await?;
/// while let Some(update) = orders.next().await {
///     match update? {
///         RuleUpdate::Event(message) => println!("{}: {:?}", message.topic, message.event.data),
///         RuleUpdate::Missed { .. } | RuleUpdate::Lagged { .. } => {
///             // Some events were not delivered: re-read the state they would have changed.
///             let facts = client.rules().query_facts("order:*").await?;
///             println!("reconciled {} facts", facts.len());
///         }
///         _ => {} // notices a later version may add
///     }
/// }
/// # Ok(())
/// # }
/// ```
pub struct RuleSubscription {
    raw: RawSubscription,
    /// Only the runtime, never the client (see [`Subscription`]).
    runtime: Arc<dyn Runtime>,
    pattern: String,
}

impl std::fmt::Debug for RuleSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleSubscription")
            .field("id", &self.raw.id)
            .field("pattern", &self.pattern)
            .finish()
    }
}

impl RuleSubscription {
    pub(crate) fn new(raw: RawSubscription, client: Client, pattern: &str) -> Self {
        RuleSubscription {
            raw,
            runtime: client.runtime(),
            pattern: pattern.to_owned(),
        }
    }

    /// The client-side handle, stable across reconnects.
    pub fn id(&self) -> SubscriptionId {
        self.raw.id
    }

    /// The topic pattern.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// Items received and not yet read (events and notices).
    pub fn unread(&self) -> usize {
        self.raw.buffered()
    }

    /// Unsubscribes and waits until the client has processed it. Nothing is sent when
    /// disconnected.
    pub async fn unsubscribe(self) {
        self.raw.unsubscribe().await
    }

    /// Hands every item to `callback` on a background task instead of reading the stream,
    /// as [`Subscription::on_update`] does. Dropping the returned handle stops the task and
    /// unsubscribes.
    ///
    /// ```no_run
    /// # async fn demo(client: noex_client::Client) -> noex_client::Result<()> {
    /// use noex_client::RuleUpdate;
    /// let handle = client.rules().subscribe("order.*").await?.on_update(|update| match update {
    ///     Ok(RuleUpdate::Event(message)) => println!("{}", message.topic),
    ///     Ok(notice) => println!("missed events: {notice:?}"),
    ///     Err(e) => eprintln!("{e}"),
    /// });
    /// # drop(handle);
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_update(
        self,
        mut callback: impl FnMut(Result<RuleUpdate>) + Send + 'static,
    ) -> CallbackHandle {
        let runtime = self.runtime.clone();
        spawn_callback(
            self,
            runtime,
            "on_update",
            |s| &s.raw,
            move |item, _| callback(item),
        )
    }
}

impl Stream for RuleSubscription {
    type Item = Result<RuleUpdate>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.raw.poll_next(cx).map(|item| {
            item.map(|next| match next? {
                Next::Data(data) => data
                    .deserialize::<RuleMessage>()
                    .map(RuleUpdate::Event)
                    .map_err(Error::from),
                Next::Gap { from, to } => Ok(RuleUpdate::Missed { from, to }),
                Next::Lagged(missed) => Ok(RuleUpdate::Lagged { missed }),
            })
        })
    }
}

/// Reads `stream` on a background task, handing each item to `callback` (with the stream,
/// for a callback that wants more of it than the item); a callback that panics is reported
/// through the subscription (`raw`) under `name` and called again for the next item.
pub(crate) fn spawn_callback<S>(
    stream: S,
    runtime: Arc<dyn Runtime>,
    name: &'static str,
    raw: fn(&S) -> &RawSubscription,
    mut callback: impl FnMut(S::Item, &S) + Send + 'static,
) -> CallbackHandle
where
    S: Stream + Unpin + Send + 'static,
{
    let (abort, registration) = AbortHandle::new_pair();
    let mut stream = stream;
    let task = async move {
        while let Some(item) = stream.next().await {
            let call = std::panic::catch_unwind(AssertUnwindSafe(|| callback(item, &stream)));
            if let Err(panic) = call {
                let raw = raw(&stream);
                let callback = format!("{name} of {}", raw.id);
                raw.report(callback_panicked(callback, &*panic));
            }
        }
    };
    runtime.spawn(Abortable::new(task, registration).map(drop).boxed());
    CallbackHandle { abort }
}

/// Keeps a callback subscription running; dropping it stops the callback and unsubscribes.
#[must_use = "the callback stops when the handle is dropped"]
#[derive(Debug)]
pub struct CallbackHandle {
    abort: AbortHandle,
}

impl CallbackHandle {
    /// Stops the callback now (same as dropping the handle).
    pub fn stop(self) {}
}

impl Drop for CallbackHandle {
    fn drop(&mut self) {
        self.abort.abort();
    }
}
