//! The protocol state machine.
//!
//! [`ClientCore`] is fed inputs ([`ClientCore::handle_input`], [`ClientCore::handle_timeout`],
//! and the caller's intents: [`ClientCore::connect`], [`ClientCore::request`],
//! [`ClientCore::subscribe`], …) with the current time, and hands out what must happen
//! next through [`ClientCore::poll_output`] and [`ClientCore::poll_timeout`]. It performs no
//! IO, reads no clock and draws randomness only from its seed, so the same inputs give the
//! same outputs.
//!
//! Its state is split into sub-states, each in its own module with the rules that keep it
//! consistent: the connection's [`phase`] (which carries the current link and its stage),
//! the [`requests`] table, the [`subscriptions`], the [`session`] and its lifetime, the
//! [`heartbeat`] (pongs and the liveness watchdog), and one [`timers`] table that every
//! timer of the core lives in (request deadlines live with the requests).

mod deadlines;
mod heartbeat;
mod lifecycle;
mod pending;
mod phase;
mod requests;
mod server_id;
mod session;
mod subscriptions;
mod timers;

use self::heartbeat::Heartbeat;
use self::phase::{Link, Phase, Stage};
use self::requests::Requests;
use self::session::Session;
use self::subscriptions::Subscriptions;
use crate::config::Config;
use crate::counters::Counters;
use crate::event::{
    ConnectionId, ConnectionState, Event, LifecycleEvent, Output, RequestId, SubscriptionId,
};
use chacha20::ChaCha8Rng;
use rand_core::SeedableRng;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

pub use requests::RequestOptions;
pub use session::TokenFetchId;
use timers::{Timer, TimerTable};

/// `at + duration`, saturating far in the future instead of panicking on a huge duration.
fn later(at: Instant, duration: Duration) -> Instant {
    at.checked_add(duration)
        .or_else(|| at.checked_add(Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(at)
}

/// The generator's 32-byte seed from the caller's `u64`: the seed's eight bytes (little
/// endian), then each following eight bytes the previous ones times an odd constant. Fixed
/// here, not left to a library's `seed_from_u64`, whose expansion may change.
fn seed_bytes(seed: u64) -> [u8; 32] {
    let mut bytes = [0u8; 32];
    let mut word = seed;
    for chunk in bytes.chunks_exact_mut(8) {
        chunk.copy_from_slice(&word.to_le_bytes());
        word = word.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
    }
    bytes
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

/// A duration in whole milliseconds, for logs.
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The sans-IO protocol core. See the [crate documentation](crate) for a walk-through.
#[derive(Debug)]
pub struct ClientCore {
    config: Config,
    /// The backoff jitter's generator: ChaCha8 from the seed ([`seed_bytes`]), so a seed
    /// gives the same jitter on every platform and after every upgrade.
    rng: ChaCha8Rng,
    /// Where the connection is in its life; the current link lives in it.
    phase: Phase,
    /// Whether a connection ever became ready (so the next one is a reconnect).
    ever_connected: bool,
    /// The state last announced with [`LifecycleEvent::StateChanged`].
    announced: ConnectionState,
    timers: TimerTable,
    next_connection: u64,
    next_seq: u64,
    requests: Requests,
    subs: Subscriptions,
    session: Session,
    heartbeat: Heartbeat,
    outputs: VecDeque<Output>,
    counters: Counters,
}

impl ClientCore {
    /// A new core, idle until [`ClientCore::connect`]. `seed` drives the backoff jitter.
    pub fn new(config: Config, seed: u64) -> ClientCore {
        let session = Session::new(config.auth.clone());
        ClientCore {
            config,
            rng: ChaCha8Rng::from_seed(seed_bytes(seed)),
            phase: Phase::Idle,
            ever_connected: false,
            announced: ConnectionState::Disconnected,
            timers: TimerTable::default(),
            next_connection: 1,
            next_seq: 1,
            requests: Requests::default(),
            subs: Subscriptions::default(),
            session,
            heartbeat: Heartbeat::default(),
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
        self.phase.state(self.ever_connected)
    }

    /// Whether [`ClientCore::close`] was called: the core is finished.
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    /// Running totals, with the gauges (`requests_pending`, `subscriptions_live`) as of now.
    pub fn counters(&self) -> Counters {
        let mut counters = self.counters.clone();
        counters.requests_pending = self.requests.user_pending() as u64;
        counters.subscriptions_live = self.subs.live_count() as u64;
        counters
    }

    /// The caller's requests not yet ended.
    pub fn pending_requests(&self) -> usize {
        self.requests.user_pending()
    }

    /// Entries in the pending table, internal requests included (for leak checks).
    #[doc(hidden)]
    pub fn pending_entries(&self) -> usize {
        self.requests.entries()
    }

    /// The sizes of every table the core keeps, for leak checks over long runs: each is
    /// bounded by the live requests and subscriptions, whatever happened before.
    #[doc(hidden)]
    pub fn table_sizes(&self) -> [usize; 8] {
        let [a, b, c, d, e] = self.subs.table_sizes();
        [
            self.requests.entries(),
            self.requests.queued_len(),
            self.requests.refused_len(),
            a,
            b,
            c,
            d,
            e,
        ]
    }

    /// Whether another request would be accepted now rather than refused with
    /// [`crate::RequestError::QueueFull`] for the in-flight cap.
    pub fn has_request_slot(&self) -> bool {
        self.requests.user_pending() < self.config.max_in_flight
    }

    /// Whether a frame handed out for `request` should still be written. `false` once the
    /// request has ended (answered, timed out, cancelled, failed): its frame is then
    /// dropped unwritten. Frames that carry no request are always wanted.
    pub fn wants_frame(&self, request: Option<RequestId>) -> bool {
        request.is_none_or(|id| self.requests.contains(id.0))
    }

    /// Live subscriptions.
    pub fn subscription_count(&self) -> usize {
        self.subs.live_count()
    }

    /// The live subscriptions' handles, in creation order.
    pub fn subscription_ids(&self) -> impl Iterator<Item = SubscriptionId> + '_ {
        self.subs.ids()
    }

    /// Whether the subscription is live and registered on the current connection.
    pub fn is_subscription_active(&self, id: SubscriptionId) -> bool {
        self.subs.is_registered(id)
    }

    /// Pushes currently held for subscriptions whose answer is in flight.
    #[doc(hidden)]
    pub fn held_pushes(&self) -> usize {
        self.subs.held_len()
    }

    /// Whether a session token is remembered for the next connection.
    #[doc(hidden)]
    pub fn has_session_token(&self) -> bool {
        self.session.has_token()
    }

    /// The next thing to do, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`ClientCore::handle_timeout`] must be called next, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let request = self.requests.next_deadline().map(|(at, _)| at);
        match (request, self.timers.next()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn emit(&mut self, event: Event) {
        self.outputs.push_back(Output::Event(event));
    }

    /// The current link, if any.
    fn link(&self) -> Option<&Link> {
        self.phase.link()
    }

    /// The current link, if any.
    fn link_mut(&mut self) -> Option<&mut Link> {
        self.phase.link_mut()
    }

    /// The current connection's span, to enter while handling something for it.
    fn connection_span(&self) -> tracing::Span {
        match self.link() {
            Some(link) => link.span.clone(),
            None => tracing::Span::none(),
        }
    }

    fn lifecycle(&mut self, event: LifecycleEvent) {
        self.emit(Event::Lifecycle(event));
    }

    /// Announces the state when the phase changed it: the state is set before the events
    /// that explain it.
    fn announce_state(&mut self) {
        let state = self.state();
        if self.announced != state {
            self.announced = state;
            self.lifecycle(LifecycleEvent::StateChanged(state));
        }
    }

    /// Hands out a frame on the current connection; returns its sequence number.
    fn send_frame(
        &mut self,
        text: String,
        request: Option<RequestId>,
    ) -> Option<(ConnectionId, u64)> {
        let connection = self.link()?.id;
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

    /// Whether the link is authenticated far enough for requests to go out.
    fn link_usable(&self) -> bool {
        matches!(
            self.link().map(|l| &l.stage),
            Some(Stage::Restoring(_) | Stage::Ready)
        )
    }

    /// Whether the caller's requests go out now rather than wait in the outbox: the link
    /// is ready and no new login is under way on it.
    fn sending_now(&self) -> bool {
        matches!(self.link().map(|l| &l.stage), Some(Stage::Ready)) && !self.session.relogging()
    }
}
