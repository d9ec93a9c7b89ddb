//! The protocol state machine.
//!
//! [`ClientCore`] is fed inputs ([`ClientCore::handle_input`], [`ClientCore::handle_timeout`],
//! and the caller's intents: [`ClientCore::connect`], [`ClientCore::request`],
//! [`ClientCore::subscribe`], …) with the current time, and hands out what must happen
//! next through [`ClientCore::poll_output`] and [`ClientCore::poll_timeout`]. It performs no
//! IO, reads no clock and draws randomness only from its seed, so the same inputs give the
//! same outputs.

mod lifecycle;
mod requests;
mod subscriptions;

use crate::config::Config;
use crate::counters::Counters;
use crate::event::{ConnectionId, ConnectionState, Event, LifecycleEvent, Output, SubscriptionId};
use crate::ops::{OpKind, Operation};
use crate::payload::Payload;
use crate::secret::Secret;
use crate::subscription::SubscriptionSpec;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

pub use requests::RequestOptions;

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
    /// Waiting before the next attempt.
    Backoff { until: Instant },
    /// Not connected and not trying.
    Disconnected,
    /// Closed on purpose: terminal.
    Closed,
}

/// The current transport connection.
#[derive(Debug)]
struct Link {
    id: ConnectionId,
    /// Connect timeout, until `welcome`.
    connect_deadline: Option<Instant>,
    opened_at: Option<Instant>,
    last_rx: Instant,
    last_ping: Option<Instant>,
    ping_interval: Option<Duration>,
    /// Highest sequence number the transport may have transmitted.
    written_upto: Option<u64>,
    /// The last pong handed out, to send at most one that is still waiting for the socket.
    last_pong: Option<u64>,
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
    Yes { connection: ConnectionId, seq: u64 },
}

#[derive(Debug)]
struct Pending {
    kind: OpKind,
    purpose: Purpose,
    deadline: Instant,
    retry: bool,
    sent: Sent,
    /// Kept until sent, and for retry-safe reads until answered.
    op: Option<Operation>,
    /// `auth.login` token, remembered on success for later connections.
    login_token: Option<Secret>,
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

#[derive(Debug)]
struct Subscription {
    spec: SubscriptionSpec,
    server_id: Option<String>,
    /// Whether it has ever been registered (so the next registration is a restore).
    registered_once: bool,
}

/// The sans-IO protocol core. See the [crate documentation](crate) for a walk-through.
#[derive(Debug)]
pub struct ClientCore {
    config: Config,
    rng: StdRng,
    phase: Phase,
    link: Option<Link>,
    state: ConnectionState,
    ever_connected: bool,
    attempt: u32,
    next_connection: u64,
    next_request: u64,
    next_seq: u64,
    next_subscription: u64,
    pending: BTreeMap<u64, Pending>,
    deadlines: BTreeSet<(Instant, u64)>,
    /// Requests waiting for the connection to be ready, in order.
    outbox: VecDeque<u64>,
    subscriptions: BTreeMap<SubscriptionId, Subscription>,
    by_server_id: HashMap<String, SubscriptionId>,
    /// Server ids unsubscribed on this connection whose pushes may still arrive.
    unsubscribed: HashSet<String>,
    /// Subscriptions dropped while their subscribe was in flight, to undo on the answer.
    abandoned: BTreeMap<SubscriptionId, SubscriptionSpec>,
    /// Pushes for server ids not yet registered, while subscribes are in flight.
    held: VecDeque<(String, Payload)>,
    subscribes_in_flight: usize,
    restores_outstanding: usize,
    session_token: Option<Secret>,
    outputs: VecDeque<Output>,
    counters: Counters,
}

impl ClientCore {
    /// A new core, idle until [`ClientCore::connect`]. `seed` drives the backoff jitter.
    pub fn new(config: Config, seed: u64) -> ClientCore {
        ClientCore {
            config,
            rng: StdRng::seed_from_u64(seed),
            phase: Phase::Idle,
            link: None,
            state: ConnectionState::Disconnected,
            ever_connected: false,
            attempt: 0,
            next_connection: 1,
            next_request: 1,
            next_seq: 1,
            next_subscription: 1,
            pending: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            outbox: VecDeque::new(),
            subscriptions: BTreeMap::new(),
            by_server_id: HashMap::new(),
            unsubscribed: HashSet::new(),
            abandoned: BTreeMap::new(),
            held: VecDeque::new(),
            subscribes_in_flight: 0,
            restores_outstanding: 0,
            session_token: None,
            outputs: VecDeque::new(),
            counters: Counters::default(),
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

    /// Running totals.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Requests not yet ended.
    pub fn pending_requests(&self) -> usize {
        self.pending
            .values()
            .filter(|p| p.purpose == Purpose::User)
            .count()
    }

    /// Entries in the pending table, internal requests included (for leak checks).
    pub fn pending_entries(&self) -> usize {
        self.pending.len()
    }

    /// Live subscriptions.
    pub fn subscription_count(&self) -> usize {
        self.subscriptions.len()
    }

    /// The live subscriptions' handles, in creation order.
    pub fn subscription_ids(&self) -> impl Iterator<Item = SubscriptionId> + '_ {
        self.subscriptions.keys().copied()
    }

    /// Whether the subscription is live and registered on the current connection.
    pub fn is_subscription_active(&self, id: SubscriptionId) -> bool {
        self.subscriptions
            .get(&id)
            .is_some_and(|s| s.server_id.is_some())
    }

    /// Pushes currently held for subscriptions whose answer is in flight.
    pub fn held_pushes(&self) -> usize {
        self.held.len()
    }

    /// Whether a session token is remembered for the next connection.
    pub fn has_session_token(&self) -> bool {
        self.session_token.is_some()
    }

    /// The next thing to do, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`ClientCore::handle_timeout`] must be called next, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next: Option<Instant> = self.deadlines.first().map(|(at, _)| *at);
        let mut consider = |at: Option<Instant>| {
            if let Some(at) = at {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        };
        if let Phase::Backoff { until } = self.phase {
            consider(Some(until));
        }
        if let Some(link) = &self.link {
            consider(link.connect_deadline);
            consider(self.liveness_deadline(link));
        }
        next
    }

    fn emit(&mut self, event: Event) {
        self.outputs.push_back(Output::Event(event));
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
    fn send_frame(&mut self, text: String) -> Option<(ConnectionId, u64)> {
        let connection = self.link.as_ref()?.id;
        let seq = self.next_seq;
        self.next_seq += 1;
        self.counters.frames_out += 1;
        self.outputs.push_back(Output::Send {
            connection,
            seq,
            text,
        });
        Some((connection, seq))
    }
}
