//! Request correlation: ids, the pending table, deadlines, and resolution exactly once.

use super::{ClientCore, Link, Pending, Phase, Purpose, Sent};
use crate::error::{Delivery, RequestError};
use crate::event::{DisconnectReason, Event, RequestId};
use crate::frame::SubscribeAnswer;
use crate::ops::{OpKind, Operation};
use crate::payload::Payload;
use std::time::{Duration, Instant};
use tracing::{debug, trace};

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
    /// (result, server error, timeout, disconnect or close), unless the request is
    /// [cancelled](ClientCore::cancel). On `Err` the request was not accepted and nothing
    /// follows: it was not sent.
    ///
    /// While a connection is being made (or waited for) the request waits for it when
    /// [`crate::Config::queue_while_disconnected`] is on (the default). A request past
    /// [`crate::Config::max_in_flight`] (or, while waiting, [`crate::Config::max_queued`])
    /// is refused with [`RequestError::QueueFull`]; see [`ClientCore::has_request_slot`].
    pub fn request_with(
        &mut self,
        now: Instant,
        op: Operation,
        options: RequestOptions,
    ) -> Result<RequestId, RequestError> {
        self.counters.requests_issued += 1;
        let queue = match self.phase {
            Phase::Ready => false,
            Phase::Closed => {
                debug!(op = op.kind().name(), error = "closed", "request refused");
                self.counters.requests_closed += 1;
                return Err(RequestError::Closed {
                    delivery: Delivery::NotSent,
                });
            }
            Phase::Opening
            | Phase::AwaitingWelcome
            | Phase::Authenticating
            | Phase::Restoring
            | Phase::Backoff
                if self.config.queue_while_disconnected =>
            {
                true
            }
            _ => {
                debug!(
                    op = op.kind().name(),
                    error = "disconnected",
                    "request refused"
                );
                self.counters.requests_disconnected += 1;
                return Err(RequestError::Disconnected {
                    delivery: Delivery::NotSent,
                });
            }
        };
        if !self.has_request_slot() || (queue && self.queued() >= self.config.max_queued) {
            debug!(
                op = op.kind().name(),
                error = "queue_full",
                "request refused"
            );
            self.counters.requests_rejected += 1;
            return Err(RequestError::QueueFull);
        }
        let kind = op.kind();
        let retry = kind.is_read() && options.retry.unwrap_or(self.config.retry_reads);
        let timeout = options.timeout.unwrap_or(self.config.request_timeout);
        let usual = timeout == self.config.request_timeout;
        let deadline = (super::later(now, timeout), usual);
        if queue || retry || op.login_token().is_some() {
            let id = self.insert_pending(kind, Purpose::User, deadline, retry, op);
            if queue {
                self.requests.outbox.push_back(id);
            } else {
                self.transmit(id);
            }
            Ok(RequestId(id))
        } else {
            // Sent now and never again: the operation is encoded and dropped, not kept.
            let id = self.insert_pending(kind, Purpose::User, deadline, retry, &op);
            self.transmit_text(id, op.into_frame(id));
            Ok(RequestId(id))
        }
    }

    /// Requests waiting in the outbox (those that ended meanwhile are forgotten first).
    fn queued(&mut self) -> usize {
        let pending = &self.requests.pending;
        self.requests.outbox.retain(|&id| pending.contains(id));
        self.requests.outbox.len()
    }

    /// Withdraws a request (its caller went away): it ends now without an event, counted
    /// as cancelled. A frame not yet written is dropped ([`ClientCore::wants_frame`]); a
    /// late answer is counted and dropped. Unknown or ended requests are ignored.
    pub fn cancel(&mut self, id: RequestId) {
        let is_user = self
            .requests
            .pending
            .get(id.0)
            .is_some_and(|p| p.purpose == Purpose::User);
        if is_user && self.take_pending(id.0).is_some() {
            self.counters.requests_cancelled += 1;
        }
    }

    fn insert_pending(
        &mut self,
        kind: OpKind,
        purpose: Purpose,
        (deadline, usual): (Instant, bool),
        retry: bool,
        op: impl Keep,
    ) -> u64 {
        let id = self.requests.next_id;
        self.requests.next_id += 1;
        if purpose == Purpose::User {
            self.requests.user_pending += 1;
        }
        self.requests.pending.insert(
            id,
            Pending {
                kind,
                purpose,
                deadline,
                retry,
                sent: Sent::No,
                op: op.kept(),
                earlier: Delivery::NotSent,
                handed_out: false,
            },
        );
        self.requests.deadlines.add(id, deadline, usual);
        id
    }

    /// Sends an internal request (login, subscribe, unsubscribe) on the current link.
    pub(super) fn send_internal(&mut self, now: Instant, op: Operation, purpose: Purpose) -> u64 {
        let kind = op.kind();
        let deadline = super::later(now, self.config.request_timeout);
        let id = self.insert_pending(kind, purpose, (deadline, true), false, &op);
        self.transmit_text(id, op.into_frame(id));
        id
    }

    /// Hands the request's frame out on the current link.
    fn transmit(&mut self, id: u64) {
        let Some(entry) = self.requests.pending.get_mut(id) else {
            return;
        };
        let text = match entry.op.take() {
            // Kept for a retry, or for its login token: encoded afresh each time it goes out.
            Some(op) if entry.retry || op.login_token().is_some() => {
                let text = op.encode(id);
                entry.op = Some(op);
                text
            }
            Some(op) => op.into_frame(id),
            None => return,
        };
        self.transmit_text(id, text);
    }

    /// Hands out the request's frame, `text`, on the current link.
    fn transmit_text(&mut self, id: u64, text: String) {
        let Some(entry) = self.requests.pending.get_mut(id) else {
            return;
        };
        if entry.handed_out {
            self.counters.requests_resent += 1;
        }
        entry.handed_out = true;
        // An unsubscribe is worth writing even after its deadline: dropping it would leave
        // the subscription on the server. Its frame is always wanted.
        let request = (entry.purpose != Purpose::Unsubscribe).then_some(RequestId(id));
        if let Some((_, seq)) = self.send_frame(text, request) {
            if let (Some(entry), Some(seq)) = (
                self.requests.pending.get_mut(id),
                std::num::NonZeroU64::new(seq),
            ) {
                entry.sent = Sent::Yes { seq };
            }
        }
    }

    /// Sends what waited for the connection, in order.
    pub(super) fn flush_outbox(&mut self) {
        while let Some(id) = self.requests.outbox.pop_front() {
            self.transmit(id);
        }
    }

    fn take_pending(&mut self, id: u64) -> Option<Pending> {
        let entry = self.requests.pending.remove(id)?;
        self.requests.deadlines.remove(id, entry.deadline);
        if entry.purpose == Purpose::User {
            self.requests.user_pending -= 1;
        }
        Some(entry)
    }

    fn respond(&mut self, id: u64, kind: OpKind, result: Result<Payload, RequestError>) {
        if let Err(error) = &result {
            debug!(
                id,
                op = kind.name(),
                error = super::error_kind(error),
                code = super::error_code(error),
                "request failed"
            );
        }
        match &result {
            Ok(_) => self.counters.requests_ok += 1,
            Err(RequestError::Server(_)) => self.counters.requests_server_error += 1,
            Err(RequestError::Timeout { .. }) => self.counters.requests_timed_out += 1,
            Err(RequestError::Closed { .. }) => self.counters.requests_closed += 1,
            Err(RequestError::QueueFull) => self.counters.requests_rejected += 1,
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
            self.late_subscribe_answered(now, id, result);
            return;
        };
        match entry.purpose {
            Purpose::User => {
                if let Ok(data) = &result {
                    self.observe_session(&entry, data);
                }
                self.respond(id, entry.kind, result);
            }
            Purpose::Login(step) => self.login_answered(now, step, result),
            Purpose::Subscribe { sub, restore } => {
                self.subscribe_answered(now, sub, restore, result)
            }
            Purpose::Unsubscribe => self.unsubscribe_ended(id),
        }
    }

    /// A subscribe's `result`, read as its answer while the frame was decoded (see
    /// [`crate::frame::decode_expecting`]).
    pub(super) fn handle_subscribe_answer(
        &mut self,
        now: Instant,
        id: u64,
        answer: SubscribeAnswer<'_>,
    ) {
        // Only a pending subscribe's answer is decoded this way, in the same call; anything
        // else is left in the table, never taken and lost.
        match self.requests.pending.get(id).map(|p| p.purpose) {
            Some(Purpose::Subscribe { sub, restore }) => {
                self.take_pending(id);
                self.subscribe_settled(now, sub, restore, Ok(answer))
            }
            _ => debug!(id, "subscribe answer for a request that is not a subscribe"),
        }
    }

    /// Keeps session tokens from the caller's own logins, so reconnects resume them.
    fn observe_session(&mut self, entry: &Pending, data: &Payload) {
        match entry.kind {
            OpKind::AuthLogin => {
                self.session_token = entry
                    .op
                    .as_deref()
                    .and_then(Operation::login_token)
                    .cloned();
            }
            OpKind::IdentityLogin
            | OpKind::IdentityLoginWithSecret
            | OpKind::IdentityRefreshSession => self.remember_token(data),
            OpKind::AuthLogout | OpKind::IdentityLogout => self.session_token = None,
            _ => {}
        }
    }

    /// Ends every request whose deadline has passed.
    pub(super) fn expire_requests(&mut self, now: Instant) {
        loop {
            let pending = &self.requests.pending;
            let Some((deadline, id)) = self
                .requests
                .deadlines
                .first(|id| pending.get(id).map(|p| p.deadline))
            else {
                break;
            };
            if deadline > now {
                break;
            }
            let Some(entry) = self.take_pending(id) else {
                break;
            };
            // A frame the transport has not taken yet is never written now that the
            // request has ended (`wants_frame`): only one it took may have left.
            let delivery = entry.delivery(Self::delivery_of(self.link.as_ref(), entry.sent));
            let error = RequestError::Timeout { delivery };
            match entry.purpose {
                Purpose::User => self.respond(id, entry.kind, Err(error)),
                Purpose::Login(step) => self.login_answered(now, step, Err(error)),
                // A restore that gets no answer means the connection is bad, not the
                // subscription: replace the connection and restore everything again.
                Purpose::Subscribe { restore: true, .. } => {
                    self.abort_link(now, DisconnectReason::RestoreTimeout, "restore_timeout");
                }
                Purpose::Subscribe { sub, restore } => {
                    if delivery == Delivery::OutcomeUnknown {
                        self.remember_late_subscribe(id, sub);
                    }
                    self.subscribe_answered(now, sub, restore, Err(error))
                }
                Purpose::Unsubscribe => self.unsubscribe_ended(id),
            }
        }
    }

    /// The link is gone: fail or keep each pending request. Internal requests belonged to
    /// the link and are forgotten. Requests not sent stay queued either way: with no
    /// reconnect coming, [`ClientCore::fail_queued`] fails them once the loss is announced.
    pub(super) fn settle_pending_on_loss(&mut self, link: &Link, will_reconnect: bool) {
        let ids: Vec<u64> = self.requests.pending.ids().collect();
        let mut kept = Vec::new();
        for id in ids {
            let Some(entry) = self.requests.pending.get_mut(id) else {
                continue;
            };
            let keep = entry.purpose == Purpose::User
                && (entry.sent == Sent::No || (will_reconnect && entry.retry));
            if keep {
                entry.earlier = entry.delivery(Self::delivery_of(Some(link), entry.sent));
                entry.sent = Sent::No;
                kept.push(id);
                continue;
            }
            let Some(entry) = self.take_pending(id) else {
                continue;
            };
            if entry.purpose == Purpose::User {
                let delivery = entry.delivery(Self::delivery_of(Some(link), entry.sent));
                self.respond(id, entry.kind, Err(RequestError::Disconnected { delivery }));
            }
        }
        // Everything kept goes out again once ready, in id order.
        let queued: Vec<u64> = self.requests.outbox.drain(..).collect();
        let mut order: Vec<u64> = kept.into_iter().chain(queued).collect();
        order.sort_unstable();
        order.dedup();
        self.requests.outbox.extend(order);
    }

    /// Fails the requests waiting for a connection that is not coming.
    pub(super) fn fail_queued(&mut self) {
        let queued: Vec<u64> = self.requests.outbox.drain(..).collect();
        for id in queued {
            if let Some(entry) = self.take_pending(id) {
                // A read kept from an earlier connection may have reached the server there.
                let delivery = entry.delivery(Delivery::NotSent);
                self.respond(id, entry.kind, Err(RequestError::Disconnected { delivery }));
            }
        }
    }

    /// Fails every pending request of the caller with `error` (on close); internal
    /// requests are forgotten.
    pub(super) fn fail_all_pending(
        &mut self,
        link: Option<&Link>,
        error: impl Fn(Delivery) -> RequestError,
    ) {
        self.requests.outbox.clear();
        let ids: Vec<u64> = self.requests.pending.ids().collect();
        for id in ids {
            let Some(entry) = self.take_pending(id) else {
                continue;
            };
            if entry.purpose == Purpose::User {
                let delivery = entry.delivery(Self::delivery_of(link, entry.sent));
                self.respond(id, entry.kind, Err(error(delivery)));
            }
        }
    }
}

/// An operation handed to the pending table: by value when it is kept (boxed there), by
/// reference when it is only encoded.
trait Keep {
    fn kept(self) -> Option<Box<Operation>>;
}

impl Keep for Operation {
    fn kept(self) -> Option<Box<Operation>> {
        Some(Box::new(self))
    }
}

impl Keep for &Operation {
    fn kept(self) -> Option<Box<Operation>> {
        None
    }
}
