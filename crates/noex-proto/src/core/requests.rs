//! Request correlation: ids, the pending table, deadlines, and resolution exactly once.

use super::{ClientCore, Link, Pending, Phase, Purpose, Sent};
use crate::error::{Delivery, RequestError};
use crate::event::{DisconnectReason, Event, RequestId, SubscriptionEvent};
use crate::ops::{OpKind, Operation};
use crate::payload::Payload;
use std::time::{Duration, Instant};
use tracing::trace;

/// Per-request settings that override the configuration.
///
/// ```
/// use noex_proto::RequestOptions;
/// use std::time::Duration;
/// let opts = RequestOptions::default().timeout(Duration::from_secs(2)).retry_safe(true);
/// assert_eq!(opts.timeout, Some(Duration::from_secs(2)));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestOptions {
    /// Deadline; `None` = the configured request timeout.
    pub timeout: Option<Duration>,
    /// Re-send after a reconnect (within the deadline). Honoured only for reads: writes are
    /// never sent twice automatically. `None` = the configuration's `retry_reads`.
    pub retry: Option<bool>,
}

impl RequestOptions {
    /// Sets the deadline.
    pub fn timeout(mut self, timeout: Duration) -> RequestOptions {
        self.timeout = Some(timeout);
        self
    }
    /// Marks the request retry-safe (reads only).
    pub fn retry_safe(mut self, on: bool) -> RequestOptions {
        self.retry = Some(on);
        self
    }
}

impl ClientCore {
    /// Sends a request with the configured defaults. See [`ClientCore::request_with`].
    pub fn request(&mut self, now: Instant, op: Operation) -> Result<RequestId, RequestError> {
        self.request_with(now, op, RequestOptions::default())
    }

    /// Sends a request. On `Ok`, exactly one [`Event::Response`] for the returned id follows
    /// (result, server error, timeout, disconnect or close). On `Err` the request was not
    /// accepted and nothing follows: it was not sent.
    pub fn request_with(
        &mut self,
        now: Instant,
        op: Operation,
        options: RequestOptions,
    ) -> Result<RequestId, RequestError> {
        let queue = match self.phase {
            Phase::Ready => false,
            Phase::Closed => {
                return Err(RequestError::Closed {
                    delivery: Delivery::NotSent,
                })
            }
            Phase::Opening
            | Phase::AwaitingWelcome
            | Phase::Authenticating
            | Phase::Restoring
            | Phase::Backoff { .. }
                if self.config.queue_while_disconnected =>
            {
                // Requests that timed out or were cancelled no longer hold a place.
                let pending = &self.pending;
                self.outbox.retain(|id| pending.contains_key(id));
                if self.outbox.len() >= self.config.max_queued {
                    return Err(RequestError::QueueFull);
                }
                true
            }
            _ => {
                return Err(RequestError::Disconnected {
                    delivery: Delivery::NotSent,
                })
            }
        };
        let kind = op.kind();
        let retry = kind.is_read() && options.retry.unwrap_or(self.config.retry_reads);
        let deadline = super::later(now, options.timeout.unwrap_or(self.config.request_timeout));
        let id = self.insert_pending(kind, Purpose::User, deadline, retry, op);
        if queue {
            self.outbox.push_back(id);
        } else {
            self.transmit(id);
        }
        Ok(RequestId(id))
    }

    /// Withdraws a request (its caller went away): it ends now without an event, and a
    /// late answer is counted and dropped.
    pub fn cancel(&mut self, id: RequestId) {
        if let Some(p) = self.pending.get(&id.0) {
            if p.purpose == Purpose::User {
                let deadline = p.deadline;
                self.pending.remove(&id.0);
                self.deadlines.remove(&(deadline, id.0));
                self.counters.requests_cancelled += 1;
            }
        }
    }

    fn insert_pending(
        &mut self,
        kind: OpKind,
        purpose: Purpose,
        deadline: Instant,
        retry: bool,
        op: Operation,
    ) -> u64 {
        let id = self.next_request;
        self.next_request += 1;
        let login_token = op.login_token().cloned();
        self.pending.insert(
            id,
            Pending {
                kind,
                purpose,
                deadline,
                retry,
                sent: Sent::No,
                op: Some(op),
                login_token,
                earlier: Delivery::NotSent,
                handed_out: false,
            },
        );
        self.deadlines.insert((deadline, id));
        id
    }

    /// Sends an internal request (login, subscribe, unsubscribe) on the current link.
    pub(super) fn send_internal(&mut self, now: Instant, op: Operation, purpose: Purpose) -> u64 {
        let kind = op.kind();
        let deadline = super::later(now, self.config.request_timeout);
        let id = self.insert_pending(kind, purpose, deadline, false, op);
        self.transmit(id);
        id
    }

    /// Hands the request's frame out on the current link.
    fn transmit(&mut self, id: u64) {
        let Some(entry) = self.pending.get_mut(&id) else {
            return;
        };
        let text = match &entry.op {
            Some(op) => op.encode(id),
            None => return,
        };
        if !entry.retry {
            entry.op = None;
        }
        if entry.handed_out {
            self.counters.requests_resent += 1;
        }
        entry.handed_out = true;
        if let Some((connection, seq)) = self.send_frame(text) {
            if let Some(entry) = self.pending.get_mut(&id) {
                entry.sent = Sent::Yes { connection, seq };
            }
        }
    }

    /// Sends what waited for the connection, in order.
    pub(super) fn flush_outbox(&mut self, _now: Instant) {
        while let Some(id) = self.outbox.pop_front() {
            if self.pending.contains_key(&id) {
                self.transmit(id);
            }
        }
    }

    fn take_pending(&mut self, id: u64) -> Option<Pending> {
        let entry = self.pending.remove(&id)?;
        self.deadlines.remove(&(entry.deadline, id));
        Some(entry)
    }

    fn respond(&mut self, id: u64, result: Result<Payload, RequestError>) {
        match &result {
            Ok(_) => self.counters.requests_ok += 1,
            Err(RequestError::Server(_)) => self.counters.requests_server_error += 1,
            Err(RequestError::Timeout { .. }) => self.counters.requests_timed_out += 1,
            Err(RequestError::Closed { .. }) => self.counters.requests_closed += 1,
            Err(_) => self.counters.requests_disconnected += 1,
        }
        self.emit(Event::Response {
            id: RequestId(id),
            result,
        });
    }

    /// A `result` or `error` frame for request `id`.
    pub(super) fn handle_answer(
        &mut self,
        now: Instant,
        id: u64,
        result: Result<Payload, RequestError>,
    ) {
        let Some(entry) = self.take_pending(id) else {
            trace!(id, "answer for a request that already ended");
            self.counters.late_answers += 1;
            return;
        };
        match entry.purpose {
            Purpose::User => {
                if let Ok(data) = &result {
                    self.observe_session(&entry, data);
                }
                self.respond(id, result);
            }
            Purpose::Login(step) => self.login_answered(now, step, result),
            Purpose::Subscribe { sub, restore } => {
                self.subscribe_answered(now, sub, restore, result)
            }
            Purpose::Unsubscribe => {}
        }
    }

    /// Keeps session tokens from the caller's own logins, so reconnects resume them.
    fn observe_session(&mut self, entry: &Pending, data: &Payload) {
        match entry.kind {
            OpKind::AuthLogin => self.session_token = entry.login_token.clone(),
            OpKind::IdentityLogin
            | OpKind::IdentityLoginWithSecret
            | OpKind::IdentityRefreshSession => self.remember_token(data),
            OpKind::AuthLogout | OpKind::IdentityLogout => self.session_token = None,
            _ => {}
        }
    }

    /// Ends every request whose deadline has passed.
    pub(super) fn expire_requests(&mut self, now: Instant) {
        while let Some(&(deadline, id)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            let Some(entry) = self.take_pending(id) else {
                self.deadlines.remove(&(deadline, id));
                continue;
            };
            // A frame handed out on the live connection may still be written after the
            // deadline, so only a frame never handed out is "not sent".
            let delivery = entry.delivery(match (self.link.as_ref(), entry.sent) {
                (Some(link), Sent::Yes { connection, .. }) if connection == link.id => {
                    Delivery::OutcomeUnknown
                }
                _ => Delivery::NotSent,
            });
            let error = RequestError::Timeout { delivery };
            match entry.purpose {
                Purpose::User => self.respond(id, Err(error)),
                Purpose::Login(step) => self.login_answered(now, step, Err(error)),
                // A restore that gets no answer means the connection is bad, not the
                // subscription: replace the connection and restore everything again.
                Purpose::Subscribe { restore: true, .. } => {
                    self.abort_link(now, DisconnectReason::RestoreTimeout, "restore_timeout");
                }
                Purpose::Subscribe { sub, restore } => {
                    self.subscribe_answered(now, sub, restore, Err(error))
                }
                Purpose::Unsubscribe => {}
            }
        }
    }

    /// The link is gone: fail or keep each pending request.
    pub(super) fn settle_pending_on_loss(&mut self, link: &Link, will_reconnect: bool) {
        let ids: Vec<u64> = self.pending.keys().copied().collect();
        let mut kept = Vec::new();
        for id in ids {
            let Some(entry) = self.pending.get(&id) else {
                continue;
            };
            let keep = will_reconnect
                && entry.purpose == Purpose::User
                && (entry.retry || entry.sent == Sent::No);
            if keep {
                let delivered = Self::delivery_of(Some(link), entry.sent);
                if let Some(entry) = self.pending.get_mut(&id) {
                    entry.earlier = entry.delivery(delivered);
                    entry.sent = Sent::No;
                }
                kept.push(id);
                continue;
            }
            let Some(entry) = self.take_pending(id) else {
                continue;
            };
            let delivery = entry.delivery(Self::delivery_of(Some(link), entry.sent));
            match entry.purpose {
                Purpose::User => self.respond(id, Err(RequestError::Disconnected { delivery })),
                Purpose::Subscribe { sub, .. } if !will_reconnect => {
                    self.fail_subscription(sub, RequestError::Disconnected { delivery });
                }
                _ => {}
            }
        }
        // Everything kept goes out again once ready, in id order.
        let queued: Vec<u64> = self.outbox.drain(..).collect();
        let mut order: Vec<u64> = kept.into_iter().chain(queued).collect();
        order.sort_unstable();
        order.dedup();
        self.outbox.extend(order);
    }

    /// Fails the requests waiting for a connection that is not coming.
    pub(super) fn fail_queued(&mut self) {
        let queued: Vec<u64> = self.outbox.drain(..).collect();
        for id in queued {
            if self.take_pending(id).is_some() {
                self.respond(
                    id,
                    Err(RequestError::Disconnected {
                        delivery: Delivery::NotSent,
                    }),
                );
            }
        }
    }

    /// Fails every pending request (on close).
    pub(super) fn fail_all_pending(
        &mut self,
        link: Option<&Link>,
        error: impl Fn(Delivery) -> RequestError,
    ) {
        self.outbox.clear();
        let ids: Vec<u64> = self.pending.keys().copied().collect();
        for id in ids {
            let Some(entry) = self.take_pending(id) else {
                continue;
            };
            let delivery = entry.delivery(Self::delivery_of(link, entry.sent));
            if entry.purpose == Purpose::User {
                self.respond(id, Err(error(delivery)));
            } else if let Purpose::Subscribe { sub, .. } = entry.purpose {
                if self.subscriptions.remove(&sub).is_some() {
                    self.emit(Event::Subscription(SubscriptionEvent::Failed {
                        id: sub,
                        error: error(delivery),
                    }));
                }
            }
        }
    }
}
