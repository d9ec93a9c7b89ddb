//! What a rules subscription yields: the events it delivers, and the notices of events
//! it missed.

use serde::Deserialize;
use serde_json::{Map, Value};
use std::time::SystemTime;

/// An event as the engine records it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct RuleEvent {
    /// The event's id.
    pub id: String,
    /// Its topic.
    pub topic: String,
    /// Its payload, a JSON object (`{}` when emitted without data).
    pub data: Value,
    /// When, ms since the epoch.
    pub timestamp: i64,
    /// Who emitted it: `api`, `rule`, …
    pub source: String,
    /// Correlation id, when given.
    #[serde(default)]
    pub correlation_id: Option<String>,
    /// Causation id, when given.
    #[serde(default)]
    pub causation_id: Option<String>,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An event a rules subscription delivers: its topic and the event.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct RuleMessage {
    /// The event's topic.
    pub topic: String,
    /// The event.
    pub event: RuleEvent,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// What a [`RuleSubscription`] yields: an event, or a notice that events were missed.
///
/// Notices are items, not errors (see [`crate::Error`]): the stream's `Err` is kept for
/// failures. Both notices say that events matching the pattern were not delivered; the
/// usual answer is to re-read the state those events would have changed (facts, records).
///
/// ```no_run
/// # async fn demo(client: noex_client::Client) -> noex_client::Result<()> {
/// use futures::StreamExt;
/// use noex_client::RuleUpdate;
///
/// let mut orders = client.rules().subscribe("order.*").await?;
/// while let Some(update) = orders.next().await {
///     match update {
///         Ok(RuleUpdate::Event(message)) => println!("{}: {:?}", message.topic, message.event.data),
///         Ok(RuleUpdate::Missed { from, to }) => {
///             // The connection was down: events between `from` and `to` were not
///             // delivered. Re-read the state they would have changed.
///             let facts = client.rules().query_facts("order:*").await?;
///             println!("reconciled {} facts after {:?}", facts.len(), to.duration_since(from));
///         }
///         Ok(RuleUpdate::Lagged { missed }) => println!("read too slowly: {missed} events dropped"),
///         Ok(_) => {} // notices a later version may add
///         Err(e) if matches!(e, noex_client::Error::Serde(_)) => eprintln!("unreadable event: {e}"),
///         Err(e) => return Err(e), // the subscription has ended
///     }
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RuleUpdate {
    /// An event whose topic matches the pattern.
    Event(RuleMessage),
    /// The subscription was made again after a reconnect, and events emitted between
    /// `from` (the last frame that arrived on the lost connection) and `to` (the
    /// subscription was registered again) were not delivered; every event that was not
    /// delivered lies inside `[from, to]`, also those sent while the loss was not yet
    /// noticed. It comes before any event of the new connection. The notices of several
    /// reconnects with no event between them come as one, covering them all.
    Missed {
        /// When the last frame arrived on the lost connection.
        from: SystemTime,
        /// When the subscription was registered again.
        to: SystemTime,
    },
    /// The application read too slowly: an unread subscription keeps at most
    /// [`crate::ClientOptions::rules_buffer`] events and dropped the oldest beyond, this
    /// many since the last item. A [`RuleUpdate::Missed`] notice is never dropped.
    Lagged {
        /// How many events were dropped.
        missed: u64,
    },
}

impl RuleUpdate {
    /// The event, when this is one.
    ///
    /// ```
    /// use noex_client::RuleUpdate;
    /// assert!(RuleUpdate::Lagged { missed: 3 }.into_event().is_none());
    /// ```
    pub fn into_event(self) -> Option<RuleMessage> {
        match self {
            RuleUpdate::Event(message) => Some(message),
            _ => None,
        }
    }
}
