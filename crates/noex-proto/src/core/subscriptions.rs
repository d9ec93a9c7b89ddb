//! Subscription bookkeeping: durable handles, restore after reconnect, held pushes.

use super::server_id::ServerId;
use super::{ClientCore, Phase, Purpose, Subscription};
use crate::error::{Delivery, RequestError};
use crate::event::{CoreError, Event, Gap, LifecycleEvent, SubscriptionEvent, SubscriptionId};
use crate::frame::SubscribeAnswer;
use crate::payload::Payload;
use crate::subscription::SubscriptionSpec;
use std::time::Instant;
use tracing::debug;

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
            _ => {}
        }
        let id = SubscriptionId(self.subs.next_id);
        self.subs.next_id += 1;
        self.subs.live.insert(
            id,
            Subscription {
                spec,
                server_id: None,
                registered_once: false,
                lost_at: None,
            },
        );
        if self.link_usable() {
            self.send_subscribe(now, id, false);
        }
        Ok(id)
    }

    /// Ends a subscription. Its handle is dead at once; the server is told when a
    /// connection is up (nothing is sent while disconnected). Returns whether it existed.
    pub fn unsubscribe(&mut self, now: Instant, id: SubscriptionId) -> bool {
        let Some(sub) = self.subs.live.remove(&id) else {
            return false;
        };
        match sub.server_id {
            Some(server_id) => {
                self.subs.by_server_id.remove(&server_id);
                if self.link_usable() {
                    self.send_unsubscribe(now, &sub.spec, server_id.to_string());
                }
            }
            // Its subscribe is in flight: undo it when the answer comes.
            None if self.link_usable() => {
                self.subs.abandoned.insert(id, sub.spec);
            }
            None => {}
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
        self.subs.in_flight = self.subs.in_flight.saturating_sub(1);
        match answer {
            Ok(answer) => self.register(now, sub, answer),
            Err(error) => {
                self.subs.abandoned.remove(&sub);
                self.fail_subscription(sub, error)
            }
        }
        if self.subs.in_flight == 0 {
            self.drop_unclaimed_held();
        }
        if restore {
            self.subs.restores_outstanding = self.subs.restores_outstanding.saturating_sub(1);
            if self.subs.restores_outstanding == 0 && self.phase == Phase::Restoring {
                self.become_ready(now);
            }
        }
    }

    fn register(&mut self, now: Instant, sub: SubscriptionId, answer: SubscribeAnswer<'_>) {
        let server_id = answer.subscription_id;
        let Some(entry) = self.subs.live.get_mut(&sub) else {
            // Unsubscribed while the answer was in flight: undo it on the server.
            // Pushes that overtook the answer belong to it: expected, and dropped quietly
            // (counted), like those that follow until the server has unsubscribed.
            let before = self.subs.held.len();
            self.subs.held.retain(|(id, _)| *id != server_id);
            self.counters.pushes_dropped += (before - self.subs.held.len()) as u64;
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
        let compact = ServerId::new(&server_id);
        entry.server_id = Some(compact.clone());
        self.subs.by_server_id.insert(compact, sub);
        self.emit(Event::Subscription(event));
        // Pushes that overtook the answer, in arrival order.
        let mut i = 0;
        while i < self.subs.held.len() {
            if self.subs.held[i].0 == server_id {
                if let Some((_, data)) = self.subs.held.remove(i) {
                    self.counters.pushes_delivered += 1;
                    self.emit(Event::Subscription(SubscriptionEvent::Update {
                        id: sub,
                        data,
                    }));
                }
            } else {
                i += 1;
            }
        }
    }

    /// A subscribe whose frame was written timed out: its answer may still come.
    pub(super) fn remember_late_subscribe(&mut self, request: u64, sub: SubscriptionId) {
        let spec = match self.subs.abandoned.get(&sub) {
            Some(spec) => Some(spec.clone()),
            None => self.subs.live.get(&sub).map(|s| s.spec.clone()),
        };
        if let Some(spec) = spec {
            self.subs.late.insert(request, spec);
            // A server that never answers must not make this grow: the oldest is
            // forgotten (its registration, should it come after all, stays until the
            // connection ends).
            while self.subs.late.len() > self.config.max_in_flight {
                self.subs.late.pop_first();
            }
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
        self.subs.unsubscribed.insert(server_id.clone());
        let request = self.send_internal(now, op, Purpose::Unsubscribe);
        self.subs.unsubscribing.insert(request, server_id);
    }

    /// An unsubscribe was answered (or timed out): the server sends nothing more for its
    /// id (a connection's frames arrive in order), so the id is forgotten, and an app that
    /// subscribes and unsubscribes on one connection for days holds nothing for it.
    pub(super) fn unsubscribe_ended(&mut self, request: u64) {
        if let Some(server_id) = self.subs.unsubscribing.remove(&request) {
            self.subs.unsubscribed.remove(&server_id);
        }
    }

    /// A `push` frame.
    pub(super) fn handle_push(&mut self, server_id: String, data: Payload) {
        if let Some(&sub) = self.subs.by_server_id.get(&ServerId::new(&server_id)) {
            self.counters.pushes_delivered += 1;
            self.emit(Event::Subscription(SubscriptionEvent::Update {
                id: sub,
                data,
            }));
        } else if self.subs.unsubscribed.contains(&server_id) {
            self.counters.pushes_dropped += 1;
        } else if self.subs.in_flight > 0 {
            if self.subs.held.len() >= self.config.max_held_pushes {
                if let Some((dropped, _)) = self.subs.held.pop_front() {
                    self.counters.pushes_dropped += 1;
                    self.lifecycle(LifecycleEvent::Error(CoreError::HeldPushOverflow(dropped)));
                }
            }
            if self.config.max_held_pushes > 0 {
                self.counters.pushes_held += 1;
                self.subs.held.push_back((server_id, data));
            } else {
                self.counters.pushes_dropped += 1;
                self.lifecycle(LifecycleEvent::Error(CoreError::HeldPushOverflow(
                    server_id,
                )));
            }
        } else {
            debug!(%server_id, "push for an unknown subscription");
            self.counters.pushes_dropped += 1;
            self.lifecycle(LifecycleEvent::Error(CoreError::UnknownSubscription(
                server_id,
            )));
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
        if self.subs.live.remove(&sub).is_some() {
            self.emit(Event::Subscription(SubscriptionEvent::Failed {
                id: sub,
                error,
            }));
        }
    }

    /// No connection is coming: every live subscription fails with `error`.
    pub(super) fn fail_all_subscriptions(&mut self, error: &RequestError) {
        let ids: Vec<SubscriptionId> = self.subs.live.keys().copied().collect();
        for sub in ids {
            self.fail_subscription(sub, error.clone());
        }
    }

    /// The client closed: every live subscription ends quietly.
    pub(super) fn end_all_subscriptions(&mut self) {
        for id in std::mem::take(&mut self.subs.live).into_keys() {
            self.emit(Event::Subscription(SubscriptionEvent::Ended { id }));
        }
    }
}
