//! Subscriptions as streams (and callbacks) that survive reconnects.

use crate::client::{Client, RawSubscription};
use crate::driver::SubItem;
use crate::error::{Error, Result};
use crate::runtime::Runtime;
use crate::shared::callback_panicked;
use crate::slot::Taken;
use futures::future::{AbortHandle, Abortable};
use futures::{FutureExt, Stream, StreamExt};
use noex_proto::SubscriptionId;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// A live subscription: a [`Stream`] of typed values, initial data first.
///
/// - Store query subscriptions yield the whole query result each time it changes. A slow
///   consumer never makes memory grow: only the latest result is kept (older unread ones
///   are superseded, which loses nothing since each carries the whole result).
/// - Rules subscriptions yield `(topic, event)` values; an unread stream keeps at most
///   [`crate::ClientOptions::rules_buffer`] events and reports dropped ones as
///   [`Error::Lagged`].
///
/// The subscription survives reconnects: after each one it is made again and yields fresh
/// data. How it ends:
/// - the client closes ([`crate::Client::disconnect`], or the last handle dropped): the
///   stream ends quietly with `None`;
/// - the client gives up on the connection for good (a permanent close code, the session
///   revoked, credentials refused, reconnect attempts exhausted): one
///   [`Error::GaveUp`] saying why, then `None`;
/// - it cannot be made again after a reconnect: its error, then `None`.
///
/// Dropping it unsubscribes on the server; so does [`Subscription::unsubscribe`], which
/// also waits until the client has processed it. Dropping the future that makes it, before
/// it is ready, withdraws the subscribe: nothing stays registered on the server.
///
/// # Missed events (rules subscriptions)
///
/// A store query's fresh data after a reconnect makes up for the pushes it missed. A rules
/// pattern's events are gone: after a reconnect, before any new event, the stream yields
/// one [`Error::Gap`] with the time the connection was lost and the time the subscription
/// was registered again. It is not fatal; reconcile and read on:
///
/// ```no_run
/// # async fn demo(client: noex_client::Client) -> noex_client::Result<()> {
/// use futures::StreamExt;
/// use noex_client::Error;
///
/// let mut orders = client.rules().subscribe("order.*").await?;
/// while let Some(item) = orders.next().await {
///     match item {
///         Ok(message) => println!("{}: {:?}", message.topic, message.event),
///         Err(Error::Gap { from, to }) => {
///             // Events between `from` and `to` were not delivered: re-read the state
///             // they would have changed.
///             let facts = client.rules().query_facts("order:*").await?;
///             println!("reconciled {} facts after a gap of {:?}", facts.len(), to.duration_since(from));
///         }
///         Err(Error::Lagged { missed }) => println!("too slow: {missed} events dropped"),
///         Err(other) => return Err(other), // the subscription has ended
///     }
/// }
/// # Ok(())
/// # }
/// ```
pub struct Subscription<T> {
    raw: RawSubscription,
    /// Only the runtime, never the client: a live subscription must not keep the client
    /// (and its connection) alive after the last client handle is dropped.
    runtime: Arc<dyn Runtime>,
    ended: bool,
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
            ended: false,
            _type: PhantomData,
        }
    }

    /// The client-side handle, stable across reconnects.
    pub fn id(&self) -> SubscriptionId {
        self.raw.id
    }

    /// Values received and not yet read (at most 1 for store queries).
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
        let (abort, registration) = AbortHandle::new_pair();
        let runtime = self.runtime.clone();
        let mut stream = self;
        let task = async move {
            while let Some(item) = stream.next().await {
                let call = std::panic::catch_unwind(AssertUnwindSafe(|| callback(item)));
                if let Err(panic) = call {
                    let name = format!("on_update of {}", stream.raw.id);
                    stream.raw.report(callback_panicked(name, &*panic));
                }
            }
        };
        runtime.spawn(Abortable::new(task, registration).map(drop).boxed());
        CallbackHandle { abort }
    }
}

impl<T: DeserializeOwned> Stream for Subscription<T> {
    type Item = Result<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match self.raw.rx.poll_take(cx) {
            Poll::Ready(Taken::Item(SubItem::Data(payload))) => {
                Poll::Ready(Some(payload.deserialize().map_err(Error::from)))
            }
            Poll::Ready(Taken::Item(SubItem::Gap { from, to })) => {
                Poll::Ready(Some(Err(Error::Gap { from, to })))
            }
            Poll::Ready(Taken::Item(SubItem::Failed(error))) => {
                self.ended = true;
                Poll::Ready(Some(Err(*error)))
            }
            Poll::Ready(Taken::Lagged(missed)) => Poll::Ready(Some(Err(Error::Lagged { missed }))),
            Poll::Ready(Taken::Ended) => {
                self.ended = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Keeps a callback subscription running; dropping it stops the callback and unsubscribes.
#[must_use = "the callback stops when the handle is dropped"]
#[derive(Debug)]
pub struct CallbackHandle {
    abort: AbortHandle,
}

impl CallbackHandle {
    pub(crate) fn new(abort: AbortHandle) -> CallbackHandle {
        CallbackHandle { abort }
    }

    /// Stops the callback now (same as dropping the handle).
    pub fn stop(self) {}
}

impl Drop for CallbackHandle {
    fn drop(&mut self) {
        self.abort.abort();
    }
}
