//! Subscription bookkeeping: durable handles, restore after reconnect, held pushes.
//!
//! [`Subscriptions`] is the bookkeeping and its invariants; the `impl ClientCore` below
//! decides what happens to subscriptions as the connection lives.

use super::pending::Purpose;
use super::server_id::ServerId;
use super::{ClientCore, Stage};
use crate::error::{Delivery, RequestError};
use crate::event::{CoreError, Event, Gap, LifecycleEvent, SubscriptionEvent, SubscriptionId};
use crate::frame::SubscribeAnswer;
use crate::payload::Payload;
use crate::subscription::SubscriptionSpec;
use crate::subscription_data::SubscriptionData;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Instant;
use tracing::debug;

#[derive(Debug)]
struct Subscription {
    spec: SubscriptionSpec,
    server_id: Option<ServerId>,
    /// Whether it has ever been registered (so the next registration is a restore).
    registered_once: bool,
    /// When the last frame arrived on the connection it was registered on, once that
    /// connection was lost, until it is registered again: the start of its gap.
    lost_at: Option<Instant>,
    /// Whether the session check refused its subscribe once on this connection since it
    /// was last registered (a second refusal fails it: a new login did not help).
    refused: bool,
}

/// Where a push goes.
enum PushTarget {
    /// To this live subscription.
    Live(SubscriptionId),
    /// Nowhere: its subscription is being removed.
    Unsubscribed,
    /// Held: a subscribe answer in flight may claim it.
    Hold,
    /// Nowhere: nobody knows it.
    Unknown,
}

/// The subscriptions sub-state: durable handles and their server ids on this connection.
///
/// Invariants: `by_server_id` maps exactly the server ids of the live subscriptions
/// registered on this connection; `held` is empty when no subscribe is in flight;
/// `unsubscribed` holds only ids whose unsubscribe is in flight (`unsubscribing`);
/// `late` holds at most `max_in_flight` entries; everything but `live` and `next_id`
/// belongs to one connection and is cleared when it ends.
#[derive(Debug)]
pub(super) struct Subscriptions {
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
    /// Unsubscribes that timed out while a new login may be needed (their operation
    /// kept), by request id: a late answer may say the session check refused it, to send
    /// it again then. Their server ids stay in `unsubscribed`. At most
    /// [`crate::Config::max_in_flight`], the oldest forgotten first.
    late_unsubscribes: BTreeMap<u64, (String, Box<crate::ops::Operation>)>,
    /// Pushes for server ids not yet registered, while subscribes are in flight.
    held: VecDeque<(String, SubscriptionData)>,
    in_flight: usize,
    restores_outstanding: usize,
}

impl Default for Subscriptions {
    fn default() -> Subscriptions {
        Subscriptions {
            next_id: 1,
            live: BTreeMap::new(),
            by_server_id: HashMap::new(),
            unsubscribed: HashSet::new(),
            unsubscribing: HashMap::new(),
            abandoned: BTreeMap::new(),
            late: BTreeMap::new(),
            late_unsubscribes: BTreeMap::new(),
            held: VecDeque::new(),
            in_flight: 0,
            restores_outstanding: 0,
        }
    }
}

impl Subscriptions {
    pub(super) fn live_count(&self) -> usize {
        self.live.len()
    }

    pub(super) fn ids(&self) -> impl Iterator<Item = SubscriptionId> + '_ {
        self.live.keys().copied()
    }

    pub(super) fn is_registered(&self, id: SubscriptionId) -> bool {
        self.live.get(&id).is_some_and(|s| s.server_id.is_some())
    }

    pub(super) fn held_len(&self) -> usize {
        self.held.len()
    }

    /// The sizes of the connection-scoped tables, for leak checks.
    pub(super) fn table_sizes(&self) -> [usize; 5] {
        [
            self.by_server_id.len(),
            self.unsubscribed.len(),
            self.abandoned.len(),
            self.late.len() + self.late_unsubscribes.len(),
            self.held.len(),
        ]
    }

    fn add(&mut self, spec: SubscriptionSpec) -> SubscriptionId {
        let id = SubscriptionId(self.next_id);
        self.next_id += 1;
        self.live.insert(
            id,
            Subscription {
                spec,
                server_id: None,
                registered_once: false,
                lost_at: None,
                refused: false,
            },
        );
        id
    }

    /// Removes a live subscription (and its server id on this connection).
    fn remove(&mut self, id: SubscriptionId) -> Option<Subscription> {
        let sub = self.live.remove(&id)?;
        if let Some(server_id) = &sub.server_id {
            self.by_server_id.remove(server_id);
        }
        Some(sub)
    }

    /// Where a push for `server_id` goes.
    fn target(&self, server_id: &str) -> PushTarget {
        if let Some(&sub) = self.by_server_id.get(&ServerId::new(server_id)) {
            PushTarget::Live(sub)
        } else if self.unsubscribed.contains(server_id) {
            PushTarget::Unsubscribed
        } else if self.in_flight > 0 {
            PushTarget::Hold
        } else {
            PushTarget::Unknown
        }
    }

    /// Holds a push for a subscribe in flight, within `max`; returns the server id of
    /// a push dropped to make room (or of this one, when nothing may be held).
    fn hold(&mut self, server_id: String, data: SubscriptionData, max: usize) -> Option<String> {
        let mut dropped = None;
        if self.held.len() >= max {
            dropped = self.held.pop_front().map(|(id, _)| id);
        }
        if max > 0 {
            self.held.push_back((server_id, data));
            dropped
        } else {
            Some(server_id)
        }
    }

    /// Takes the held pushes for `server_id`, in arrival order.
    fn take_held(&mut self, server_id: &str) -> Vec<SubscriptionData> {
        let mut taken = Vec::new();
        let mut kept = VecDeque::with_capacity(self.held.len());
        for (id, data) in self.held.drain(..) {
            if id == server_id {
                taken.push(data);
            } else {
                kept.push_back((id, data));
            }
        }
        self.held = kept;
        taken
    }

    /// The server id request `request` unsubscribes, forgotten as that request's (it is
    /// still being unsubscribed: its pushes are still dropped quietly).
    pub(super) fn take_unsubscribing(&mut self, request: u64) -> Option<String> {
        self.unsubscribing.remove(&request)
    }

    /// Remembers that request `request` unsubscribes `server_id`.
    pub(super) fn unsubscribing(&mut self, request: u64, server_id: String) {
        self.unsubscribed.insert(server_id.clone());
        self.unsubscribing.insert(request, server_id);
    }

    /// An unsubscribe was answered (or timed out): the server sends nothing more for its
    /// id (a connection's frames arrive in order), so the id is forgotten, and an app that
    /// subscribes and unsubscribes on one connection for days holds nothing for it.
    pub(super) fn unsubscribe_ended(&mut self, request: u64) {
        if let Some(server_id) = self.unsubscribing.remove(&request) {
            self.unsubscribed.remove(&server_id);
        }
    }

    /// A subscribe whose frame was written timed out: its answer may still come. A
    /// server that never answers must not make this grow: the oldest is forgotten (its
    /// registration, should it come after all, stays until the connection ends).
    fn remember_late(&mut self, request: u64, spec: SubscriptionSpec, max: usize) {
        self.late.insert(request, spec);
        while self.late.len() > max {
            self.late.pop_first();
        }
    }

    /// An unsubscribe that timed out: with its operation kept, its answer is still
    /// awaited (see `late_unsubscribes`); without, it is over.
    pub(super) fn unsubscribe_timed_out(
        &mut self,
        request: u64,
        op: Option<Box<crate::ops::Operation>>,
        max: usize,
    ) {
        let Some(server_id) = self.unsubscribing.remove(&request) else {
            return;
        };
        let Some(op) = op else {
            self.unsubscribed.remove(&server_id);
            return;
        };
        self.late_unsubscribes.insert(request, (server_id, op));
        while self.late_unsubscribes.len() > max {
            if let Some((_, (forgotten, _))) = self.late_unsubscribes.pop_first() {
                self.unsubscribed.remove(&forgotten);
            }
        }
    }

    /// The late unsubscribe `request`, if it is awaited: its server id and operation.
    pub(super) fn take_late_unsubscribe(
        &mut self,
        request: u64,
    ) -> Option<(String, Box<crate::ops::Operation>)> {
        self.late_unsubscribes.remove(&request)
    }

    /// A server id is not being unsubscribed any more.
    pub(super) fn unsubscribed_done(&mut self, server_id: &str) {
        self.unsubscribed.remove(server_id);
    }

    /// The connection the registered subscriptions were on is gone; `last_rx` is when its
    /// last frame arrived, the start of their gap (the server may have sent pushes that
    /// never arrived from then on).
    fn connection_lost(&mut self, last_rx: Instant) {
        for sub in self.live.values_mut() {
            if sub.server_id.is_some() && sub.lost_at.is_none() {
                sub.lost_at = Some(last_rx);
            }
        }
    }

    /// Forgets everything that belonged to one connection; returns how many held pushes
    /// were dropped.
    fn reset_connection_scoped(&mut self) -> usize {
        self.by_server_id.clear();
        self.unsubscribed.clear();
        self.unsubscribing.clear();
        self.abandoned.clear();
        self.late.clear();
        self.late_unsubscribes.clear();
        for sub in self.live.values_mut() {
            sub.server_id = None;
            sub.refused = false;
        }
        let dropped = self.held.len();
        self.held.clear();
        self.in_flight = 0;
        self.restores_outstanding = 0;
        dropped
    }

    /// One subscribe fewer in flight; `restore` when it was part of the restore burst.
    /// Returns whether that was the burst's last.
    fn settled(&mut self, restore: bool) -> bool {
        self.in_flight = self.in_flight.saturating_sub(1);
        if restore {
            self.restores_outstanding = self.restores_outstanding.saturating_sub(1);
            return self.restores_outstanding == 0;
        }
        false
    }

    pub(super) fn restores_outstanding(&self) -> usize {
        self.restores_outstanding
    }
}

impl ClientCore {
    /// Subscribes. The handle stays valid across reconnects until
    /// [`ClientCore::unsubscribe`] or a [`SubscriptionEvent::Failed`] for it.
    ///
    /// When connected the subscribe request goes out now; while a connection is being made
    /// it goes out with the restore burst. The first registration reports
    /// [`SubscriptionEvent::Ready`]. Fails at once when there is no connection and none
    /// coming.
    pub fn subscribe(
        &mut self,
        now: Instant,
        spec: SubscriptionSpec,
    ) -> Result<SubscriptionId, RequestError> {
        use super::phase::Phase;
        match self.phase {
            Phase::Closed => {
                return Err(RequestError::Closed {
                    delivery: Delivery::NotSent,
                })
            }
            Phase::Idle | Phase::Disconnected => {
                return Err(RequestError::Disconnected {
                    delivery: Delivery::NotSent,
                })
            }
            Phase::Linked(_) | Phase::Backoff { .. } => {}
        }
        let id = self.subs.add(spec);
        if self.link_usable() {
            self.send_subscribe(now, id, false);
        }
        Ok(id)
    }

    /// Ends a subscription. Its handle is dead at once; the server is told when a
    /// connection is up (nothing is sent while disconnected). Returns whether it existed.
    pub fn unsubscribe(&mut self, now: Instant, id: SubscriptionId) -> bool {
        let Some(sub) = self.subs.remove(id) else {
            return false;
        };
        match sub.server_id {
            Some(server_id) if self.link_usable() => {
                self.send_unsubscribe(now, &sub.spec, server_id.to_string());
            }
            // Its subscribe is in flight: undo it when the answer comes.
            None if self.link_usable() => {
                self.subs.abandoned.insert(id, sub.spec);
            }
            // Nothing is on the server any more, or nothing can be said to it now.
            Some(_) | None => {}
        }
        true
    }

    pub(super) fn send_subscribe(&mut self, now: Instant, sub: SubscriptionId, restore: bool) {
        let Some(op) = self.subs.live.get(&sub).map(|s| s.spec.operation()) else {
            return;
        };
        self.subs.in_flight += 1;
        if restore {
            self.subs.restores_outstanding += 1;
        }
        self.send_internal(now, op, Purpose::Subscribe { sub, restore });
    }

    pub(super) fn subscribe_answered(
        &mut self,
        now: Instant,
        sub: SubscriptionId,
        restore: bool,
        result: Result<Payload, RequestError>,
    ) {
        match result {
            Ok(data) => {
                let answer = SubscribeAnswer::parse(&data)
                    .map_err(|e| RequestError::Malformed(e.to_string()));
                self.subscribe_settled(now, sub, restore, answer)
            }
            Err(error) => self.subscribe_settled(now, sub, restore, Err(error)),
        }
    }

    /// A subscribe's answer, read (see [`Self::subscribe_answered`]) or failed.
    pub(super) fn subscribe_settled(
        &mut self,
        now: Instant,
        sub: SubscriptionId,
        restore: bool,
        answer: Result<SubscribeAnswer<'_>, RequestError>,
    ) {
        let burst_done = self.subs.settled(restore);
        match answer {
            Ok(answer) => self.register(now, sub, answer),
            Err(error) => {
                let once = self.subs.live.get_mut(&sub).is_some_and(|s| {
                    let first = !s.refused;
                    s.refused = true;
                    first
                });
                let held = once
                    && !self.subs.abandoned.contains_key(&sub)
                    && self.subscribe_refused(now, sub, &error);
                if !held {
                    self.subs.abandoned.remove(&sub);
                    self.fail_subscription(sub, error)
                }
            }
        }
        if self.subs.in_flight == 0 {
            self.drop_unclaimed_held();
        }
        let restoring = matches!(self.link().map(|l| &l.stage), Some(Stage::Restoring(_)));
        if burst_done && restoring {
            self.become_ready(now);
        }
    }

    fn register(&mut self, now: Instant, sub: SubscriptionId, answer: SubscribeAnswer<'_>) {
        let server_id = answer.subscription_id;
        let Some(entry) = self.subs.live.get_mut(&sub) else {
            // Unsubscribed while the answer was in flight: undo it on the server.
            // Pushes that overtook the answer belong to it: expected, and dropped quietly
            // (counted), like those that follow until the server has unsubscribed.
            let dropped = self.subs.take_held(&server_id).len();
            self.counters.pushes_dropped += dropped as u64;
            if let Some(spec) = self.subs.abandoned.remove(&sub) {
                self.send_unsubscribe(now, &spec, server_id);
            }
            return;
        };
        let data = entry
            .spec
            .has_initial_data()
            .then(|| answer.data.into_subscription_data());
        let event = if entry.registered_once {
            let gap = Gap {
                from: entry.lost_at.take().unwrap_or(now),
                to: now,
            };
            SubscriptionEvent::Restored { id: sub, data, gap }
        } else {
            SubscriptionEvent::Ready { id: sub, data }
        };
        entry.registered_once = true;
        entry.refused = false;
        let compact = ServerId::new(&server_id);
        entry.server_id = Some(compact.clone());
        self.subs.by_server_id.insert(compact, sub);
        self.emit(Event::Subscription(event));
        // Pushes that overtook the answer, in arrival order.
        for data in self.subs.take_held(&server_id) {
            self.counters.pushes_delivered += 1;
            self.emit(Event::Subscription(SubscriptionEvent::Update {
                id: sub,
                data,
            }));
        }
    }

    /// A subscribe whose frame was written timed out: its answer may still come.
    pub(super) fn remember_late_subscribe(&mut self, request: u64, sub: SubscriptionId) {
        let spec = match self.subs.abandoned.get(&sub) {
            Some(spec) => Some(spec.clone()),
            None => self.subs.live.get(&sub).map(|s| s.spec.clone()),
        };
        if let Some(spec) = spec {
            self.subs
                .remember_late(request, spec, self.config.max_in_flight);
        }
    }

    /// An answer to a subscribe that timed out: what it registered on the server (nobody
    /// holds it any more) is undone.
    pub(super) fn late_subscribe_answered(
        &mut self,
        now: Instant,
        request: u64,
        result: Result<Payload, RequestError>,
    ) {
        let Some(spec) = self.subs.late.remove(&request) else {
            return;
        };
        if let Ok(data) = result {
            if let Ok(answer) = SubscribeAnswer::parse(&data) {
                self.send_unsubscribe(now, &spec, answer.subscription_id);
            }
        }
    }

    fn send_unsubscribe(&mut self, now: Instant, spec: &SubscriptionSpec, server_id: String) {
        let op = spec.unsubscribe_operation(&server_id);
        let request = self.send_internal(now, op, Purpose::Unsubscribe);
        self.subs.unsubscribing(request, server_id);
    }

    /// A `push` frame.
    pub(super) fn handle_push(&mut self, server_id: String, data: SubscriptionData) {
        match self.subs.target(&server_id) {
            PushTarget::Live(sub) => {
                self.counters.pushes_delivered += 1;
                self.emit(Event::Subscription(SubscriptionEvent::Update {
                    id: sub,
                    data,
                }));
            }
            PushTarget::Unsubscribed => self.counters.pushes_dropped += 1,
            PushTarget::Hold => {
                let max = self.config.max_held_pushes;
                if let Some(dropped) = self.subs.hold(server_id, data, max) {
                    self.counters.pushes_dropped += 1;
                    self.lifecycle(LifecycleEvent::Error(CoreError::HeldPushOverflow(dropped)));
                }
                if max > 0 {
                    self.counters.pushes_held += 1;
                }
            }
            PushTarget::Unknown => {
                debug!(%server_id, "push for an unknown subscription");
                self.counters.pushes_dropped += 1;
                self.lifecycle(LifecycleEvent::Error(CoreError::UnknownSubscription(
                    server_id,
                )));
            }
        }
    }

    /// Held pushes that no answer in flight can claim any more.
    fn drop_unclaimed_held(&mut self) {
        while let Some((server_id, _)) = self.subs.held.pop_front() {
            self.counters.pushes_dropped += 1;
            self.lifecycle(LifecycleEvent::Error(CoreError::UnknownSubscription(
                server_id,
            )));
        }
    }

    pub(super) fn fail_subscription(&mut self, sub: SubscriptionId, error: RequestError) {
        if self.subs.remove(sub).is_some() {
            self.emit(Event::Subscription(SubscriptionEvent::Failed {
                id: sub,
                error,
            }));
        }
    }

    /// No connection is coming: every live subscription fails with `error`.
    pub(super) fn fail_all_subscriptions(&mut self, error: &RequestError) {
        let ids: Vec<SubscriptionId> = self.subs.ids().collect();
        for sub in ids {
            self.fail_subscription(sub, error.clone());
        }
    }

    /// The client closed: every live subscription ends quietly.
    pub(super) fn end_all_subscriptions(&mut self) {
        self.subs.by_server_id.clear();
        for id in std::mem::take(&mut self.subs.live).into_keys() {
            self.emit(Event::Subscription(SubscriptionEvent::Ended { id }));
        }
    }

    /// The connection is gone: the registered subscriptions' gaps start at its last
    /// frame, and everything that belonged to it is forgotten.
    pub(super) fn subscriptions_link_lost(&mut self, last_rx: Option<Instant>) {
        if let Some(last_rx) = last_rx {
            self.subs.connection_lost(last_rx);
        }
        let dropped = self.subs.reset_connection_scoped();
        self.counters.pushes_dropped += dropped as u64;
    }

    /// How the answer to request `id` is best decoded: a store subscription's subscribe
    /// answer hands its data on unread (checked by whatever reads it, or dropped unread
    /// when the subscription was given up meanwhile: its server id is still read, to
    /// undo it); a rules subscribe's answer is read through.
    pub(super) fn expected_answer(&self, id: u64) -> crate::frame::Expect {
        use crate::frame::Expect;
        match self.requests.get(id).map(|p| p.purpose) {
            Some(Purpose::Subscribe { sub, .. }) => {
                let spec = match self.subs.live.get(&sub) {
                    Some(entry) => Some(&entry.spec),
                    None => self.subs.abandoned.get(&sub),
                };
                let takes_data = spec.is_some_and(SubscriptionSpec::has_initial_data);
                if takes_data {
                    Expect::AnswerWithData
                } else {
                    Expect::Answer
                }
            }
            _ => Expect::Frame,
        }
    }

    /// The subscriptions to make on a new connection: every live one.
    pub(super) fn live_subscriptions(&self) -> Vec<SubscriptionId> {
        self.subs.ids().collect()
    }
}
