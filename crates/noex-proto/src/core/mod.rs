//! The protocol state machine.
//!
//! [`ClientCore`] is fed inputs ([`ClientCore::handle_input`], [`ClientCore::handle_timeout`],
//! and the caller's intents: [`ClientCore::connect`], [`ClientCore::request`],
//! [`ClientCore::subscribe`], …) with the current time, and hands out what must happen
//! next through [`ClientCore::poll_output`] and [`ClientCore::poll_timeout`]. It performs no
//! IO, reads no clock and draws randomness only from its seed, so the same inputs give the
//! same outputs.

mod deadlines;
mod lifecycle;
mod requests;
mod server_id;
mod subscriptions;
mod timers;

use self::deadlines::Deadlines;
use self::server_id::ServerId;
use crate::config::Config;
use crate::counters::Counters;
use crate::event::{
    ConnectionId, ConnectionState, Event, LifecycleEvent, Output, RequestId, SubscriptionId,
};
use crate::id_table::IdTable;
use crate::ops::{OpKind, Operation};
use crate::payload::Payload;
use crate::secret::Secret;
use crate::subscription::SubscriptionSpec;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

pub use requests::RequestOptions;
use timers::{Timer, TimerTable};

/// `at + duration`, saturating far in the future instead of panicking on a huge duration.
fn later(at: Instant, duration: Duration) -> Instant {
    at.checked_add(duration)
        .or_else(|| at.checked_add(Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(at)
}

/// Where the core is in a connection's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Never asked to connect.
    Idle,
    /// `Output::Open` issued, waiting for `Input::Opened`.
    Opening,
    /// Open, waiting for `welcome`.
    AwaitingWelcome,
    /// The configured login is in flight.
    Authenticating,
    /// Subscriptions are being made again.
    Restoring,
    /// Connected.
    Ready,
    /// Waiting before the next attempt (until [`Timer::Backoff`] fires).
    Backoff,
    /// Not connected and not trying.
    Disconnected,
    /// Closed on purpose: terminal.
    Closed,
}

/// The current transport connection.
#[derive(Debug)]
struct Link {
    id: ConnectionId,
    opened_at: Option<Instant>,
    last_rx: Instant,
    last_ping: Option<Instant>,
    ping_interval: Option<Duration>,
    /// The sequence number of its first frame: frames of earlier links have lower ones.
    first_seq: u64,
    /// Highest sequence number the transport may have transmitted.
    written_upto: Option<u64>,
    /// The last pong handed out, to send at most one that is still waiting for the socket.
    last_pong: Option<u64>,
    /// The `noex_connection` span of this attempt (disabled when nobody listens).
    span: tracing::Span,
}

/// A restore in progress: its `noex_restore` span, when it began, how many subscriptions.
#[derive(Debug)]
struct Restore {
    span: tracing::Span,
    started: Instant,
    subscriptions: usize,
}

/// A request error's kind, for logs (never its message, which may echo what was sent).
fn error_kind(error: &crate::error::RequestError) -> &'static str {
    use crate::error::RequestError as E;
    match error {
        E::Server(_) => "server",
        E::Timeout { .. } => "timeout",
        E::Disconnected { .. } => "disconnected",
        E::Closed { .. } => "closed",
        E::QueueFull => "queue_full",
        E::GaveUp(_) => "gave_up",
        E::Malformed(_) => "malformed",
    }
}

/// A server error's code, for logs.
fn error_code(error: &crate::error::RequestError) -> Option<&str> {
    match error {
        crate::error::RequestError::Server(e) => Some(e.code.as_str()),
        _ => None,
    }
}

/// Why a request is in the pending table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// The caller's request.
    User,
    /// The configured login.
    Login(LoginStep),
    /// Making a subscription; `restore` when part of a reconnect's restore burst.
    Subscribe { sub: SubscriptionId, restore: bool },
    /// Removing a subscription on the server.
    Unsubscribe,
}

/// Which login the core is attempting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LoginStep {
    /// `auth.login` with the remembered session token.
    Session,
    /// `auth.login` with the configured token.
    Token,
    /// `identity.login` with the configured credentials.
    Credentials,
}

/// Whether a pending request's frame has been handed out, and as which frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    No,
    /// Handed out as frame `seq` (sequence numbers are never reused, so the link it went
    /// out on is the one whose numbers it falls among).
    Yes {
        seq: std::num::NonZeroU64,
    },
}

#[derive(Debug)]
struct Pending {
    kind: OpKind,
    purpose: Purpose,
    deadline: Instant,
    retry: bool,
    sent: Sent,
    /// Kept until sent; kept until answered for retry-safe reads, and for `auth.login`
    /// (its token is remembered on success for later connections). Boxed: every pending
    /// request has an entry, most of them without.
    op: Option<Box<Operation>>,
    /// For a retry-safe read sent again after a reconnect: whether an earlier copy may
    /// have reached the server. It then stays "outcome unknown" whatever happens later.
    earlier: crate::error::Delivery,
    /// Whether its frame was ever handed out (so the next one counts as re-sent).
    handed_out: bool,
}

impl Pending {
    /// `delivery`, unless an earlier copy may already have reached the server.
    fn delivery(&self, delivery: crate::error::Delivery) -> crate::error::Delivery {
        match self.earlier {
            crate::error::Delivery::OutcomeUnknown => crate::error::Delivery::OutcomeUnknown,
            crate::error::Delivery::NotSent => delivery,
        }
    }
}

/// The requests sub-state: ids, the pending table, deadlines, the outbox.
#[derive(Debug)]
struct Requests {
    next_id: u64,
    pending: IdTable<Pending>,
    deadlines: Deadlines,
    /// Requests waiting for the connection to be ready, in order.
    outbox: VecDeque<u64>,
    /// The caller's requests in `pending`.
    user_pending: usize,
}

#[derive(Debug)]
struct Subscription {
    spec: SubscriptionSpec,
    server_id: Option<ServerId>,
    /// Whether it has ever been registered (so the next registration is a restore).
    registered_once: bool,
    /// When the connection it was registered on was lost, until it is registered again.
    lost_at: Option<Instant>,
}

/// The subscriptions sub-state: durable handles and their server ids on this connection.
#[derive(Debug)]
struct Subscriptions {
    next_id: u64,
    live: BTreeMap<SubscriptionId, Subscription>,
    by_server_id: HashMap<ServerId, SubscriptionId>,
    /// Server ids being unsubscribed on this connection, whose pushes may still arrive
    /// (dropped quietly); each is forgotten once its unsubscribe has ended.
    unsubscribed: HashSet<String>,
    /// The server id each unsubscribe in flight is for, by request id.
    unsubscribing: HashMap<u64, String>,
    /// Subscriptions dropped while their subscribe was in flight, to undo on the answer.
    abandoned: BTreeMap<SubscriptionId, SubscriptionSpec>,
    /// Subscribes that timed out after their frame was written, by request id: a late
    /// answer may still register them on the server, to undo then. At most
    /// [`crate::Config::max_in_flight`], the oldest forgotten first.
    late: BTreeMap<u64, SubscriptionSpec>,
    /// Pushes for server ids not yet registered, while subscribes are in flight.
    held: VecDeque<(String, Payload)>,
    in_flight: usize,
    restores_outstanding: usize,
}

/// The sans-IO protocol core. See the [crate documentation](crate) for a walk-through.
#[derive(Debug)]
pub struct ClientCore {
    config: Config,
    rng: StdRng,
    phase: Phase,
    link: Option<Link>,
    timers: TimerTable,
    state: ConnectionState,
    ever_connected: bool,
    attempt: u32,
    next_connection: u64,
    next_seq: u64,
    requests: Requests,
    subs: Subscriptions,
    session_token: Option<Secret>,
    outputs: VecDeque<Output>,
    counters: Counters,
    /// The restore in progress, if any.
    restore: Option<Restore>,
}

impl ClientCore {
    /// A new core, idle until [`ClientCore::connect`]. `seed` drives the backoff jitter.
    pub fn new(config: Config, seed: u64) -> ClientCore {
        ClientCore {
            config,
            rng: StdRng::seed_from_u64(seed),
            phase: Phase::Idle,
            link: None,
            timers: TimerTable::default(),
            state: ConnectionState::Disconnected,
            ever_connected: false,
            attempt: 0,
            next_connection: 1,
            next_seq: 1,
            requests: Requests {
                next_id: 1,
                pending: IdTable::new(),
                deadlines: Deadlines::default(),
                outbox: VecDeque::new(),
                user_pending: 0,
            },
            subs: Subscriptions {
                next_id: 1,
                live: BTreeMap::new(),
                by_server_id: HashMap::new(),
                unsubscribed: HashSet::new(),
                unsubscribing: HashMap::new(),
                abandoned: BTreeMap::new(),
                late: BTreeMap::new(),
                held: VecDeque::new(),
                in_flight: 0,
                restores_outstanding: 0,
            },
            session_token: None,
            outputs: VecDeque::new(),
            counters: Counters::default(),
            restore: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The connection state.
    pub fn state(&self) -> ConnectionState {
        self.state
    }

    /// Whether [`ClientCore::close`] was called: the core is finished.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Running totals, with the gauges (`requests_pending`, `subscriptions_live`) as of now.
    pub fn counters(&self) -> Counters {
        let mut counters = self.counters.clone();
        counters.requests_pending = self.requests.user_pending as u64;
        counters.subscriptions_live = self.subs.live.len() as u64;
        counters
    }

    /// The caller's requests not yet ended.
    pub fn pending_requests(&self) -> usize {
        self.requests.user_pending
    }

    /// Entries in the pending table, internal requests included (for leak checks).
    #[doc(hidden)]
    pub fn pending_entries(&self) -> usize {
        self.requests.pending.len()
    }

    /// Whether another request would be accepted now rather than refused with
    /// [`crate::RequestError::QueueFull`] for the in-flight cap.
    pub fn has_request_slot(&self) -> bool {
        self.requests.user_pending < self.config.max_in_flight
    }

    /// Whether a frame handed out for `request` should still be written. `false` once the
    /// request has ended (answered, timed out, cancelled, failed): its frame is then
    /// dropped unwritten. Frames that carry no request are always wanted.
    pub fn wants_frame(&self, request: Option<RequestId>) -> bool {
        request.is_none_or(|id| self.requests.pending.contains(id.0))
    }

    /// Live subscriptions.
    pub fn subscription_count(&self) -> usize {
        self.subs.live.len()
    }

    /// The live subscriptions' handles, in creation order.
    pub fn subscription_ids(&self) -> impl Iterator<Item = SubscriptionId> + '_ {
        self.subs.live.keys().copied()
    }

    /// Whether the subscription is live and registered on the current connection.
    pub fn is_subscription_active(&self, id: SubscriptionId) -> bool {
        self.subs
            .live
            .get(&id)
            .is_some_and(|s| s.server_id.is_some())
    }

    /// Pushes currently held for subscriptions whose answer is in flight.
    #[doc(hidden)]
    pub fn held_pushes(&self) -> usize {
        self.subs.held.len()
    }

    /// Whether a session token is remembered for the next connection.
    #[doc(hidden)]
    pub fn has_session_token(&self) -> bool {
        self.session_token.is_some()
    }

    /// The next thing to do, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`ClientCore::handle_timeout`] must be called next, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let pending = &self.requests.pending;
        let request = self
            .requests
            .deadlines
            .first(|id| pending.get(id).map(|p| p.deadline))
            .map(|(at, _)| at);
        match (request, self.timers.next()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn emit(&mut self, event: Event) {
        self.outputs.push_back(Output::Event(event));
    }

    /// The current connection's span, to enter while handling something for it.
    fn connection_span(&self) -> tracing::Span {
        match &self.link {
            Some(link) => link.span.clone(),
            None => tracing::Span::none(),
        }
    }

    fn lifecycle(&mut self, event: LifecycleEvent) {
        self.emit(Event::Lifecycle(event));
    }

    fn set_state(&mut self, state: ConnectionState) {
        if self.state != state {
            self.state = state;
            self.lifecycle(LifecycleEvent::StateChanged(state));
        }
    }

    /// Hands out a frame on the current connection; returns its sequence number.
    fn send_frame(
        &mut self,
        text: String,
        request: Option<RequestId>,
    ) -> Option<(ConnectionId, u64)> {
        let connection = self.link.as_ref()?.id;
        let seq = self.next_seq;
        self.next_seq += 1;
        self.counters.frames_out += 1;
        self.outputs.push_back(Output::Send {
            connection,
            seq,
            text,
            request,
        });
        Some((connection, seq))
    }
}
