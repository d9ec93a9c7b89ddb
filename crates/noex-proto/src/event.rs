//! What goes into the core and what comes out of it.

pub use crate::disconnect::DisconnectReason;
use crate::error::RequestError;
use crate::frame::{FrameError, ServerError, WelcomeInfo};
use crate::payload::Payload;
use crate::subscription_data::SubscriptionData;
use std::fmt;
use std::time::{Duration, Instant};

/// Identifies one transport connection. Inputs for a connection that is no longer current
/// are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u64);

/// Identifies a request for the life of the core; also its wire `id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// A client-side subscription handle. It outlives connections: the server's `sub-N` id
/// changes with every reconnect, this does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriptionId(pub u64);

impl fmt::Display for SubscriptionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "subscription#{}", self.0)
    }
}

/// Something the transport observed, fed in with [`crate::ClientCore::handle_input`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Input<'a> {
    /// The connection asked for by [`Output::Open`] is open.
    Opened,
    /// Opening the connection failed.
    ConnectFailed {
        /// Why, for the caller's eyes.
        reason: &'a str,
    },
    /// A text frame arrived.
    Frame(&'a str),
    /// A binary frame arrived (the protocol does not use them).
    Binary(&'a [u8]),
    /// Every frame up to and including `seq` of this connection may have left the client:
    /// report it as soon as the transport may have transmitted any byte of the frame.
    /// Transports must report it: it decides whether a failed request was "not sent" or
    /// "outcome unknown", and when the socket is backed up by 64 frames or more, pongs
    /// wait for it instead of piling up.
    Written {
        /// The highest [`Output::Send`] sequence number handed to the socket.
        seq: u64,
    },
    /// The connection closed (a close frame, or the socket ended).
    Closed {
        /// The close code, when a close frame came.
        code: Option<u16>,
        /// The close reason.
        reason: &'a str,
    },
}

/// Something the caller must do or hear about, drained with [`crate::ClientCore::poll_output`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Output {
    /// Open a WebSocket connection to `url`; report back with `connection`.
    Open {
        /// The new connection.
        connection: ConnectionId,
        /// Where to.
        url: String,
    },
    /// Send one text frame on `connection`, in order; acknowledge with [`Input::Written`].
    Send {
        /// Which connection.
        connection: ConnectionId,
        /// The frame's sequence number (increasing for the life of the core).
        seq: u64,
        /// The frame.
        text: String,
        /// The request the frame carries, if any. When it has ended by the time the socket
        /// could take the frame ([`crate::ClientCore::wants_frame`] is `false`), drop the
        /// frame instead of writing it. `None` for frames that are always written (pongs,
        /// and unsubscribes, which must reach the server even late).
        request: Option<RequestId>,
    },
    /// Close `connection` with `code` and `reason`. No further input is expected from it.
    Close {
        /// Which connection.
        connection: ConnectionId,
        /// The close code.
        code: u16,
        /// The close reason.
        reason: String,
    },
    /// Something happened that the application may care about.
    Event(Event),
    /// Ask the application's token provider for a token ([`crate::Auth::Provider`]) and
    /// give it with [`crate::ClientCore::provide_token`] under `id`. `refresh` asks for a
    /// new one: the server refused the last, or the session is being renewed.
    FetchToken {
        /// Which request for a token.
        id: crate::TokenFetchId,
        /// Whether a new token is wanted (not one cached from before).
        refresh: bool,
    },
}

/// What the core reports to the application.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A request ended: exactly one of these for every request that
    /// [`crate::ClientCore::request`] accepted.
    Response {
        /// Which request.
        id: RequestId,
        /// Its outcome.
        result: Result<Payload, RequestError>,
    },
    /// A subscription delivered data or ended.
    Subscription(SubscriptionEvent),
    /// The connection's life.
    Lifecycle(LifecycleEvent),
}

/// What a subscription can report.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SubscriptionEvent {
    /// The server registered the subscription for the first time. `data` is the initial
    /// query result (store queries) or `None` (rules patterns).
    Ready {
        /// Which subscription.
        id: SubscriptionId,
        /// The initial data, checked by whatever reads it (see [`SubscriptionData`]).
        data: Option<SubscriptionData>,
    },
    /// The subscription was made again after a reconnect, with fresh data.
    Restored {
        /// Which subscription.
        id: SubscriptionId,
        /// The fresh data (store queries) or `None` (rules patterns), checked by whatever
        /// reads it (see [`SubscriptionData`]).
        data: Option<SubscriptionData>,
        /// The time it was not registered on the server. Pushes of that time were never
        /// sent: a store query's fresh data makes up for them, a rules pattern's events
        /// are lost.
        gap: Gap,
    },
    /// A push: the whole new query result (store) or `{topic, event}` (rules).
    Update {
        /// Which subscription.
        id: SubscriptionId,
        /// The pushed data, checked by whatever reads it (a push laid out as the server
        /// writes it is read once, by the caller; see [`SubscriptionData`]).
        data: SubscriptionData,
    },
    /// The subscription could not be made (or made again) and is removed.
    Failed {
        /// Which subscription.
        id: SubscriptionId,
        /// Why.
        error: RequestError,
    },
    /// The subscription ended because the client closed on purpose; nothing went wrong.
    Ended {
        /// Which subscription.
        id: SubscriptionId,
    },
}

/// A time a subscription was not registered on the server, from the loss of the
/// connection it was registered on to its registration on a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    /// When the connection was lost.
    pub from: Instant,
    /// When the subscription was registered again.
    pub to: Instant,
}

/// The connection state a caller sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionState {
    /// The first connection is being made.
    Connecting,
    /// Connected, authenticated and every subscription in place.
    Connected,
    /// The connection was lost; a new one is being made or waited for.
    Reconnecting,
    /// No connection and none coming (never connected, closed, or gave up).
    Disconnected,
}

/// Something went wrong that is not tied to one request.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// A frame from the server could not be understood; the connection carries on.
    #[error("protocol violation: {0}")]
    Protocol(#[from] FrameError),
    /// The server sent an error that answers no request (`id` 0).
    #[error("server error without request: {} {}", .0.code, .0.message)]
    Server(ServerError),
    /// The configured login failed.
    #[error("login failed: {0}")]
    Login(RequestError),
    /// Resuming the remembered session failed; continuing without it.
    #[error("session resume failed: {0}")]
    SessionResume(RequestError),
    /// A push for a subscription this client does not have.
    #[error("push for unknown subscription {0:?}")]
    UnknownSubscription(String),
    /// A held push was dropped because too many were held.
    #[error("held push for {0:?} dropped: too many held")]
    HeldPushOverflow(String),
    /// The token provider gave no token (it failed, or did not answer within the request
    /// timeout).
    #[error("the token provider gave no token: {0}")]
    TokenProvider(String),
    /// A frame arrived in a state where it makes no sense (e.g. a second `welcome`).
    #[error("unexpected frame: {0}")]
    Unexpected(&'static str),
    /// An application callback panicked; the panic was caught and everything carries on.
    /// Reported by clients that run callbacks, never by the core itself.
    #[error("{callback} panicked: {message}")]
    CallbackPanicked {
        /// Which callback, e.g. `lifecycle callback #2` or `on_update of subscription#5`.
        callback: String,
        /// The panic's message, when it had one.
        message: String,
    },
}

/// The connection's life, as events.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum LifecycleEvent {
    /// The public state changed.
    StateChanged(ConnectionState),
    /// The server's `welcome`.
    Welcome(WelcomeInfo),
    /// Logged in automatically; the login answer (`{userId, roles, …}` or
    /// `{token, expiresAt, user}`).
    Authenticated(Payload),
    /// The first connection is ready.
    Connected,
    /// A later connection is ready, with every subscription restored.
    Reconnected,
    /// A connection ended.
    Disconnected(DisconnectReason),
    /// Waiting `delay` before reconnect attempt `attempt`.
    Reconnecting {
        /// 1-based attempt number.
        attempt: u32,
        /// The wait before it.
        delay: Duration,
    },
    /// The server revoked the session (a close 4002 follows; no reconnect).
    SessionRevoked {
        /// The server's reason.
        reason: Option<String>,
    },
    /// The server is shutting down.
    ServerShutdown {
        /// The announced grace period.
        grace_period: Option<Duration>,
    },
    /// The session was renewed before it expired, or made again by a new login after it
    /// expired. Carries no secret.
    SessionRenewed {
        /// How long the new session lasts, when the server said.
        expires_in: Option<Duration>,
    },
    /// The server refused a request because the session had expired on a live
    /// connection. With credentials or a token provider the client logs in again and
    /// sends the refused requests again ([`LifecycleEvent::SessionRenewed`] follows);
    /// with a configured token it gives up.
    SessionExpired,
    /// The token provider gave a fresh token (asked with `refresh`) and the server
    /// accepted it.
    TokenRefreshed,
    /// Something went wrong that is not tied to one request.
    Error(CoreError),
}
