//! Where the connection is in its life. The phase carries what belongs to it: the current
//! link (and, inside it, the link's stage) exists only while there is one, a backoff knows
//! its attempt, and the public [`ConnectionState`] is derived from the phase, never kept
//! beside it.

use crate::event::{ConnectionId, ConnectionState};
use std::time::{Duration, Instant};

/// Where the core is in a connection's life. There is one per core: the link is kept
/// inline rather than boxed.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub(super) enum Phase {
    /// Never asked to connect.
    Idle,
    /// A transport connection exists (being opened, or open).
    Linked(Link),
    /// Waiting before the next attempt (until [`super::Timer::Backoff`] fires). `attempt`
    /// failed attempts in a row so far.
    Backoff {
        /// Consecutive failed attempts.
        attempt: u32,
    },
    /// Not connected and not trying.
    Disconnected,
    /// Closed on purpose: terminal.
    Closed,
}

impl Phase {
    /// The state a caller sees in this phase.
    pub(super) fn state(&self, ever_connected: bool) -> ConnectionState {
        let trying = if ever_connected {
            ConnectionState::Reconnecting
        } else {
            ConnectionState::Connecting
        };
        match self {
            Phase::Linked(link) if matches!(link.stage, Stage::Ready) => ConnectionState::Connected,
            Phase::Linked(_) | Phase::Backoff { .. } => trying,
            Phase::Idle | Phase::Disconnected | Phase::Closed => ConnectionState::Disconnected,
        }
    }

    pub(super) fn link(&self) -> Option<&Link> {
        match self {
            Phase::Linked(link) => Some(link),
            _ => None,
        }
    }

    pub(super) fn link_mut(&mut self) -> Option<&mut Link> {
        match self {
            Phase::Linked(link) => Some(link),
            _ => None,
        }
    }

    /// Takes the link out, leaving `then` in its place.
    pub(super) fn take_link(&mut self, then: Phase) -> Option<Link> {
        match std::mem::replace(self, then) {
            Phase::Linked(link) => Some(link),
            other => {
                *self = other;
                None
            }
        }
    }
}

/// How far a link has come.
#[derive(Debug)]
pub(super) enum Stage {
    /// `Output::Open` issued, waiting for `Input::Opened`.
    Opening,
    /// Open, waiting for `welcome`.
    AwaitingWelcome,
    /// A login is in flight (or its token is being fetched).
    Authenticating,
    /// Subscriptions are being made; `Some` when it is a reconnect's restore.
    Restoring(Option<Restore>),
    /// Connected.
    Ready,
}

/// A restore in progress: its `noex_restore` span, when it began, how many subscriptions.
#[derive(Debug)]
pub(super) struct Restore {
    pub(super) span: tracing::Span,
    pub(super) started: Instant,
    pub(super) subscriptions: usize,
}

/// The current transport connection.
#[derive(Debug)]
pub(super) struct Link {
    pub(super) id: ConnectionId,
    /// Failed attempts in a row before this one (0 once it has been ready).
    pub(super) attempt: u32,
    pub(super) stage: Stage,
    pub(super) opened_at: Option<Instant>,
    /// When the last frame arrived (or the link opened).
    pub(super) last_rx: Instant,
    pub(super) last_ping: Option<Instant>,
    /// The last ping's `timestamp`, in the server's milliseconds.
    pub(super) last_ping_stamp: Option<f64>,
    /// The interval between the last two pings (or the open and the first ping).
    pub(super) ping_interval: Option<Duration>,
    /// The sequence number of its first frame: frames of earlier links have lower ones.
    pub(super) first_seq: u64,
    /// Highest sequence number the transport may have transmitted.
    pub(super) written_upto: Option<u64>,
    /// The last pong handed out, to send at most one that is still waiting for the socket.
    pub(super) last_pong: Option<u64>,
    /// The server's clock: its `welcome`'s `serverTime` (ms since the epoch) and when it
    /// arrived, to place the server's times (a session's `expiresAt`) on the caller's clock.
    pub(super) server_clock: Option<(Instant, i64)>,
    /// Whether the session on this link was made by an identity login (or refresh) on
    /// it, so `identity.refreshSession` can renew it (a session resumed with `auth.login`
    /// cannot be refreshed on the server).
    pub(super) identity_session: bool,
    /// The `noex_connection` span of this attempt (disabled when nobody listens).
    pub(super) span: tracing::Span,
}

impl Link {
    /// A new link, about to be opened.
    pub(super) fn new(
        id: ConnectionId,
        attempt: u32,
        now: Instant,
        first_seq: u64,
        span: tracing::Span,
    ) -> Link {
        Link {
            id,
            attempt,
            stage: Stage::Opening,
            opened_at: None,
            last_rx: now,
            last_ping: None,
            last_ping_stamp: None,
            ping_interval: None,
            first_seq,
            written_upto: None,
            last_pong: None,
            server_clock: None,
            identity_session: false,
            span,
        }
    }

    /// The caller's time at which the server's clock reads `server_ms`, once the link
    /// knows the server's clock (from its `welcome`). A time too far back to represent is
    /// the welcome's arrival, which has passed too.
    pub(super) fn local_time(&self, server_ms: i64) -> Option<Instant> {
        let (at, server_now) = self.server_clock?;
        let ahead = server_ms.saturating_sub(server_now);
        let by = Duration::from_millis(ahead.unsigned_abs());
        Some(if ahead >= 0 {
            super::later(at, by)
        } else {
            at.checked_sub(by).unwrap_or(at)
        })
    }
}
