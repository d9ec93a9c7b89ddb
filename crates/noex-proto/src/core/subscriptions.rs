//! Subscription bookkeeping: durable handles, restore after reconnect, held pushes.

use super::{ClientCore, Phase, Purpose, Subscription};
use crate::error::{Delivery, RequestError};
use crate::event::{CoreError, Event, LifecycleEvent, SubscriptionEvent, SubscriptionId};
use crate::payload::Payload;
use crate::subscription::SubscriptionSpec;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::time::Instant;
use tracing::debug;

/// The answer to `store.subscribe` / `rules.subscribe`.
#[derive(Deserialize)]
struct SubscribeAnswer<'a> {
    #[serde(rename = "subscriptionId")]
    subscription_id: String,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
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
        let id = SubscriptionId(self.next_subscription);
        self.next_subscription += 1;
        self.subscriptions.insert(
            id,
            Subscription {
                spec,
                server_id: None,
                registered_once: false,
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
        let Some(sub) = self.subscriptions.remove(&id) else {
            return false;
        };
        match sub.server_id {
            Some(server_id) => {
                self.by_server_id.remove(&server_id);
                if self.link_usable() {
                    self.send_unsubscribe(now, &sub.spec, server_id);
                }
            }
            // Its subscribe is in flight: undo it when the answer comes.
            None if self.link_usable() => {
                self.abandoned.insert(id, sub.spec);
            }
            None => {}
        }
        true
    }

    pub(super) fn send_subscribe(&mut self, now: Instant, sub: SubscriptionId, restore: bool) {
        let Some(op) = self.subscriptions.get(&sub).map(|s| s.spec.operation()) else {
            return;
        };
        self.subscribes_in_flight += 1;
        if restore {
            self.restores_outstanding += 1;
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
        self.subscribes_in_flight = self.subscribes_in_flight.saturating_sub(1);
        if result.is_err() {
            self.abandoned.remove(&sub);
        }
        match result {
            Ok(data) => match serde_json::from_str::<SubscribeAnswer<'_>>(data.json()) {
                Ok(answer) => self.register(now, sub, answer),
                Err(e) => self.fail_subscription(sub, RequestError::Malformed(e.to_string())),
            },
            Err(error) => self.fail_subscription(sub, error),
        }
        if self.subscribes_in_flight == 0 {
            self.drop_unclaimed_held();
        }
        if restore {
            self.restores_outstanding = self.restores_outstanding.saturating_sub(1);
            if self.restores_outstanding == 0 && self.phase == Phase::Restoring {
                self.become_ready(now);
            }
        }
    }

    fn register(&mut self, now: Instant, sub: SubscriptionId, answer: SubscribeAnswer<'_>) {
        let server_id = answer.subscription_id;
        let Some(entry) = self.subscriptions.get_mut(&sub) else {
            // Unsubscribed while the answer was in flight: undo it on the server.
            // Pushes that overtook the answer belong to it: expected, and dropped quietly
            // (counted), like those that follow until the server has unsubscribed.
            let before = self.held.len();
            self.held.retain(|(id, _)| *id != server_id);
            self.counters.pushes_dropped += (before - self.held.len()) as u64;
            if let Some(spec) = self.abandoned.remove(&sub) {
                self.send_unsubscribe(now, &spec, server_id);
            }
            return;
        };
        let data = entry
            .spec
            .has_initial_data()
            .then(|| Payload::from_raw(answer.data));
        let event = if entry.registered_once {
            SubscriptionEvent::Restored { id: sub, data }
        } else {
            SubscriptionEvent::Ready { id: sub, data }
        };
        entry.registered_once = true;
        entry.server_id = Some(server_id.clone());
        self.by_server_id.insert(server_id.clone(), sub);
        self.emit(Event::Subscription(event));
        // Pushes that overtook the answer, in arrival order.
        let mut i = 0;
        while i < self.held.len() {
            if self.held[i].0 == server_id {
                if let Some((_, data)) = self.held.remove(i) {
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

    fn send_unsubscribe(&mut self, now: Instant, spec: &SubscriptionSpec, server_id: String) {
        let op = spec.unsubscribe_operation(&server_id);
        self.unsubscribed.insert(server_id);
        self.send_internal(now, op, Purpose::Unsubscribe);
    }

    /// A `push` frame.
    pub(super) fn handle_push(&mut self, server_id: String, data: Payload) {
        if let Some(&sub) = self.by_server_id.get(&server_id) {
            self.counters.pushes_delivered += 1;
            self.emit(Event::Subscription(SubscriptionEvent::Update {
                id: sub,
                data,
            }));
        } else if self.unsubscribed.contains(&server_id) {
            self.counters.pushes_dropped += 1;
        } else if self.subscribes_in_flight > 0 {
            if self.held.len() >= self.config.max_held_pushes {
                if let Some((dropped, _)) = self.held.pop_front() {
                    self.counters.pushes_dropped += 1;
                    self.lifecycle(LifecycleEvent::Error(CoreError::HeldPushOverflow(dropped)));
                }
            }
            if self.config.max_held_pushes > 0 {
                self.counters.pushes_held += 1;
                self.held.push_back((server_id, data));
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
        while let Some((server_id, _)) = self.held.pop_front() {
            self.counters.pushes_dropped += 1;
            self.lifecycle(LifecycleEvent::Error(CoreError::UnknownSubscription(
                server_id,
            )));
        }
    }

    pub(super) fn fail_subscription(&mut self, sub: SubscriptionId, error: RequestError) {
        if self.subscriptions.remove(&sub).is_some() {
            self.emit(Event::Subscription(SubscriptionEvent::Failed {
                id: sub,
                error,
            }));
        }
    }

    /// With no reconnect coming, subscriptions never registered cannot be made.
    pub(super) fn fail_unconfirmed_subscriptions(&mut self) {
        let never: Vec<SubscriptionId> = self
            .subscriptions
            .iter()
            .filter(|(_, s)| !s.registered_once)
            .map(|(id, _)| *id)
            .collect();
        for sub in never {
            self.fail_subscription(
                sub,
                RequestError::Disconnected {
                    delivery: Delivery::NotSent,
                },
            );
        }
    }
}
