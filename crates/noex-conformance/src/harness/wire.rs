//! The harness network's vocabulary: directions, frames, fates, verdicts, faults, and
//! what it records about links and connection attempts.

use noex_client::Payload;
use std::fmt;
use std::time::Duration;

/// A frame's text for `Debug`: bounded, secrets redacted.
struct Redacted<'a>(&'a str);

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match Payload::from_json(self.0) {
            Ok(payload) => payload.fmt(f),
            Err(_) => write!(f, "<{} bytes, not JSON>", self.0.len()),
        }
    }
}

/// Which way a frame goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the client to the server.
    ToServer,
    /// From the server to the client.
    ToClient,
}

/// A frame on a simulated link. `Debug` shows a text frame as the client shows a payload:
/// bounded, its secrets (passwords, tokens) redacted.
#[derive(Clone, PartialEq, Eq)]
pub enum Wire {
    /// A text frame.
    Text(String),
    /// A close frame.
    Close {
        /// The close code.
        code: u16,
        /// The close reason.
        reason: String,
    },
    /// The connection ended without a close frame (a socket closed or reset).
    End,
}

impl fmt::Debug for Wire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Wire::Text(text) => f.debug_tuple("Text").field(&Redacted(text)).finish(),
            Wire::Close { code, reason } => f
                .debug_struct("Close")
                .field("code", code)
                .field("reason", reason)
                .finish(),
            Wire::End => f.write_str("End"),
        }
    }
}

impl fmt::Debug for FrameEvent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameEvent")
            .field("conn", &self.conn)
            .field("direction", &self.direction)
            .field("text", &Redacted(self.text))
            .field("index", &self.index)
            .field("at", &self.at)
            .finish()
    }
}

/// What became of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// It reached the other end.
    Delivered,
    /// The network swallowed it (a silent link, or the filter said so).
    Swallowed,
}

/// One frame's passage, for assertions ([`SimNetwork::take_log`](super::SimNetwork::take_log)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// When it was delivered or swallowed (virtual time since the start).
    pub at: Duration,
    /// The server's number of the connection.
    pub conn: u64,
    /// Which way it went.
    pub direction: Direction,
    /// The frame.
    pub wire: Wire,
    /// What became of it.
    pub fate: Fate,
}

/// A text frame about to cross the network, as the filter sees it
/// ([`SimNetwork::set_filter`](super::SimNetwork::set_filter)). `Debug` redacts its secrets, as [`Wire`]'s does.
#[derive(Clone, Copy)]
pub struct FrameEvent<'a> {
    /// The server's number of the connection.
    pub conn: u64,
    /// Which way it goes.
    pub direction: Direction,
    /// Its text.
    pub text: &'a str,
    /// How many text frames went this way on this link before it.
    pub index: u64,
    /// Virtual time since the start.
    pub at: Duration,
}

/// What the filter decides for a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Deliver it (subject to the link's other faults).
    Pass,
    /// Swallow this frame only.
    Swallow,
    /// Swallow it and make the link a black hole from now on (both directions, nothing
    /// closes).
    Silence,
    /// Lose it and drop the link (both ends see it end without a close frame).
    Drop,
}

/// How a connection attempt fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectFault {
    /// At once, with a [`TransportErrorKind::Connect`](noex_client::TransportErrorKind::Connect) error.
    Refuse,
    /// Never: the attempt stays pending (the client's connect timeout must end it).
    Hang,
}

/// One link's history ([`SimNetwork::links`](super::SimNetwork::links)). Times are virtual time since the start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    /// The server's number of the connection.
    pub conn: u64,
    /// When the connection opened.
    pub opened_at: Duration,
    /// When the client last read a frame from it.
    pub last_to_client: Option<Duration>,
    /// When the server last got a frame on it.
    pub last_to_server: Option<Duration>,
    /// When it became a black hole ([`SimNetwork::silence`](super::SimNetwork::silence), [`Verdict::Silence`]).
    pub silenced_at: Option<Duration>,
    /// When the client let it go (dropped its stream or sink, or sent a close frame).
    pub client_gone: Option<Duration>,
    /// When the server forgot it (closed or dropped it, or learnt the client left).
    pub server_gone: Option<Duration>,
    /// When the network dropped it ([`SimNetwork::drop_link`](super::SimNetwork::drop_link), [`Verdict::Drop`]).
    pub dropped_at: Option<Duration>,
    /// Text frames the client read.
    pub frames_to_client: u64,
    /// Text frames the server got.
    pub frames_to_server: u64,
}

/// Connection attempts so far ([`SimNetwork::stats`](super::SimNetwork::stats)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Attempts made (`connect` futures polled).
    pub attempts: u64,
    /// Attempts refused.
    pub refused: u64,
    /// Attempts left hanging.
    pub hung: u64,
    /// Connections opened on the server.
    pub opened: u64,
}
