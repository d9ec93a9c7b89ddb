//! Request correlation: ids, the pending table, deadlines, and resolution exactly once.
//!
//! [`Requests`] is the table and its invariants; the `impl ClientCore` below decides what
//! happens to a request as the connection lives.

use super::deadlines::Deadlines;
use super::pending::{Pending, Purpose, Sent};
use super::ClientCore;
use crate::error::{Delivery, RequestError};
use crate::event::{DisconnectReason, Event, RequestId};
use crate::frame::SubscribeAnswer;
use crate::id_table::IdTable;
use crate::ops::{OpKind, Operation};
use crate::payload::Payload;
use std::collections::VecDeque;
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

/// The requests sub-state: ids, the pending table, deadlines, the outbox.
///
/// Invariants: every entry of `pending` has exactly one deadline in `deadlines`;
/// `user_pending` counts the entries whose purpose is [`Purpose::User`]; ids in the
/// outbox and in `refused` are pending caller's requests not handed out (entries that
/// ended meanwhile are pruned before anything is read from them).
#[derive(Debug)]
pub(super) struct Requests {
    next_id: u64,
    pending: IdTable<Pending>,
    deadlines: Deadlines,
    /// Requests waiting for the connection to be ready, in order.
    outbox: VecDeque<u64>,
    /// Requests the server refused because the session had expired, waiting for the new
    /// login, in id order.
    refused: Vec<u64>,
    /// The caller's requests in `pending`.
    user_pending: usize,
}

impl Default for Requests {
    fn default() -> Requests {
        Requests {
            next_id: 1,
            pending: IdTable::new(),
            deadlines: Deadlines::default(),
            outbox: VecDeque::new(),
            refused: Vec::new(),
            user_pending: 0,
        }
    }
}

impl Requests {
    /// Adds a request; returns its id.
    fn insert(&mut self, pending: Pending, usual: bool) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        if pending.purpose == Purpose::User {
            self.user_pending += 1;
        }
        self.deadlines.add(id, pending.deadline, usual);
        self.pending.insert(id, pending);
        id
    }

    /// Ends a request: its entry leaves the table with its deadline.
    pub(super) fn take(&mut self, id: u64) -> Option<Pending> {
        let entry = self.pending.remove(id)?;
        self.deadlines.remove(id, entry.deadline);
        if entry.purpose == Purpose::User {
            self.user_pending -= 1;
        }
        Some(entry)
    }

    /// Puts an entry taken with [`Requests::take`] back under its own id and deadline.
    fn put_back(&mut self, id: u64, pending: Pending) {
        if pending.purpose == Purpose::User {
            self.user_pending += 1;
        }
        self.deadlines.add(id, pending.deadline, false);
        self.pending.insert(id, pending);
    }

    pub(super) fn get(&self, id: u64) -> Option<&Pending> {
        self.pending.get(id)
    }

    fn get_mut(&mut self, id: u64) -> Option<&mut Pending> {
        self.pending.get_mut(id)
    }

    pub(super) fn contains(&self, id: u64) -> bool {
        self.pending.contains(id)
    }

    pub(super) fn user_pending(&self) -> usize {
        self.user_pending
    }

    pub(super) fn entries(&self) -> usize {
        self.pending.len()
    }

    pub(super) fn queued_len(&self) -> usize {
        self.outbox.len()
    }

    pub(super) fn refused_len(&self) -> usize {
        self.refused.len()
    }

    /// The deadline that falls due first, and its request.
    pub(super) fn next_deadline(&self) -> Option<(Instant, u64)> {
        let pending = &self.pending;
        self.deadlines
            .first(|id| pending.get(id).map(|p| p.deadline))
    }

    /// Requests waiting in the outbox (those that ended meanwhile are forgotten first).
    fn queued(&mut self) -> usize {
        let pending = &self.pending;
        self.outbox.retain(|&id| pending.contains(id));
        self.outbox.len()
    }

    /// Every pending id, in order.
    fn ids(&self) -> Vec<u64> {
        self.pending.ids().collect()
    }

    /// Puts `ids` back in the outbox ahead of what waits there, everything in id order
    /// (the order the caller made them).
    fn requeue(&mut self, ids: impl IntoIterator<Item = u64>) {
        let mut order: Vec<u64> = ids.into_iter().chain(self.outbox.drain(..)).collect();
        order.sort_unstable();
        order.dedup();
        let pending = &self.pending;
        self.outbox
            .extend(order.into_iter().filter(|&id| pending.contains(id)));
    }

    /// The refused requests, to go out again after a new login.
    fn take_refused(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.refused)
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
    ///
    /// While the core logs in again on a live connection (the session expired), requests
    /// wait for the new login whatever `queue_while_disconnected` says.
    pub fn request_with(
        &mut self,
        now: Instant,
        op: Operation,
        options: RequestOptions,
    ) -> Result<RequestId, RequestError> {
        use super::phase::Phase;
        self.counters.requests_issued += 1;
        let queue = match &self.phase {
            _ if self.sending_now() => false,
            Phase::Closed => {
                debug!(op = op.kind().name(), error = "closed", "request refused");
                self.counters.requests_closed += 1;
                return Err(RequestError::Closed {
                    delivery: Delivery::NotSent,
                });
            }
            // Connected, logging in again: it waits for the new login.
            Phase::Linked(link) if matches!(link.stage, super::Stage::Ready) => true,
            Phase::Linked(_) | Phase::Backoff { .. } if self.config.queue_while_disconnected => {
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
        if !self.has_request_slot() || (queue && self.requests.queued() >= self.config.max_queued) {
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
        let keep = queue || retry || op.is_login() || self.session.can_login_again();
        if keep {
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

    /// Withdraws a request (its caller went away): it ends now without an event, counted
    /// as cancelled. A frame not yet written is dropped ([`ClientCore::wants_frame`]); a
    /// late answer is counted and dropped. Unknown or ended requests are ignored.
    pub fn cancel(&mut self, id: RequestId) {
        let is_user = self
            .requests
            .get(id.0)
            .is_some_and(|p| p.purpose == Purpose::User);
        if is_user && self.requests.take(id.0).is_some() {
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
        self.requests.insert(
            Pending {
                kind,
                purpose,
                deadline,
                retry,
                sent: Sent::No,
                op: op.kept(),
                earlier: Delivery::NotSent,
                handed_out: false,
                reauthorized: false,
            },
            usual,
        )
    }

    /// Sends an internal request (login, subscribe, unsubscribe) on the current link.
    pub(super) fn send_internal(&mut self, now: Instant, op: Operation, purpose: Purpose) -> u64 {
        let kind = op.kind();
        let deadline = super::later(now, self.config.request_timeout);
        // A login keeps its operation until answered: what it presented is remembered; so
        // does an unsubscribe while a new login may be needed (the session check may
        // refuse it, and it must reach the server).
        let keep =
            op.is_login() || (purpose == Purpose::Unsubscribe && self.session.can_login_again());
        let id = if keep {
            let id = self.insert_pending(kind, purpose, (deadline, true), false, op);
            self.transmit(id);
            return id;
        } else {
            self.insert_pending(kind, purpose, (deadline, true), false, &op)
        };
        self.transmit_text(id, op.into_frame(id));
        id
    }

    /// Hands the request's frame out on the current link.
    fn transmit(&mut self, id: u64) {
        let keep_after = self.session.can_login_again();
        let Some(entry) = self.requests.get_mut(id) else {
            return;
        };
        let text = match entry.op.take() {
            // Kept: encoded afresh each time it goes out.
            Some(op) if entry.retry || op.is_login() || keep_after => {
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
        let Some(entry) = self.requests.get_mut(id) else {
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
            if let (Some(entry), Some(seq)) =
                (self.requests.get_mut(id), std::num::NonZeroU64::new(seq))
            {
                entry.sent = Sent::Yes { seq };
            }
        }
    }

    /// Sends what waited, in order, when requests may go out.
    pub(super) fn flush_outbox(&mut self) {
        if !self.sending_now() {
            return;
        }
        while let Some(id) = self.requests.outbox.pop_front() {
            self.transmit(id);
        }
    }

    pub(super) fn respond(&mut self, id: u64, kind: OpKind, result: Result<Payload, RequestError>) {
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
        let Some(entry) = self.requests.take(id) else {
            trace!(id, "answer for a request that already ended");
            self.counters.late_answers += 1;
            match self.subs.take_late_unsubscribe(id) {
                Some((server_id, op)) => self.late_unsubscribe_answered(now, server_id, op, result),
                None => self.late_subscribe_answered(now, id, result),
            }
            return;
        };
        match entry.purpose {
            Purpose::User => match result {
                Ok(data) => {
                    self.observe_session(now, &entry, &data);
                    self.respond(id, entry.kind, Ok(data));
                }
                Err(RequestError::Server(error)) => {
                    if let Some((entry, error)) = self.session_refused(now, id, entry, error) {
                        self.respond(id, entry.kind, Err(RequestError::Server(error)));
                    }
                }
                Err(error) => self.respond(id, entry.kind, Err(error)),
            },
            Purpose::Login { step, mode } => {
                self.login_answered(now, step, mode, entry.op.as_deref(), result)
            }
            Purpose::Subscribe { sub, restore } => {
                self.subscribe_answered(now, sub, restore, result)
            }
            Purpose::Unsubscribe => match result {
                Err(RequestError::Server(error))
                    if self.unsubscribe_refused(now, id, &entry, &error) => {}
                _ => self.subs.unsubscribe_ended(id),
            },
        }
    }

    /// Marks a request as sent again after a new login (it is not held twice).
    pub(super) fn mark_reauthorized(&mut self, id: u64) {
        if let Some(entry) = self.requests.get_mut(id) {
            entry.reauthorized = true;
        }
    }

    /// Holds a request the server refused because the session had expired, to send it
    /// again after the new login (the server checks the session before it runs anything,
    /// so the refused copy was not applied). `Some` gives it back when it is not held.
    pub(super) fn hold_refused(&mut self, id: u64, mut entry: Pending) -> Option<Pending> {
        if entry.reauthorized || entry.op.is_none() {
            return Some(entry);
        }
        entry.reauthorized = true;
        entry.sent = Sent::No;
        self.requests.put_back(id, entry);
        self.requests.refused.push(id);
        None
    }

    /// After a new login: the refused requests go out again (ahead of what waited after
    /// them), then the rest of the outbox.
    pub(super) fn resend_refused(&mut self) {
        let refused = self.requests.take_refused();
        self.counters.requests_reauthorized += refused
            .iter()
            .filter(|&&id| self.requests.contains(id))
            .count() as u64;
        self.requests.requeue(refused);
        self.flush_outbox();
    }

    /// The refused requests, answered with their refusal after all (no new login came).
    pub(super) fn fail_refused(&mut self, error: &crate::frame::ServerError) {
        for id in self.requests.take_refused() {
            if let Some(entry) = self.requests.take(id) {
                self.respond(id, entry.kind, Err(RequestError::Server(error.clone())));
            }
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
        match self.requests.get(id).map(|p| p.purpose) {
            Some(Purpose::Subscribe { sub, restore }) => {
                self.requests.take(id);
                self.subscribe_settled(now, sub, restore, Ok(answer))
            }
            _ => debug!(id, "subscribe answer for a request that is not a subscribe"),
        }
    }

    /// Ends every request whose deadline has passed.
    pub(super) fn expire_requests(&mut self, now: Instant) {
        while let Some((deadline, id)) = self.requests.next_deadline() {
            if deadline > now {
                break;
            }
            let Some(entry) = self.requests.take(id) else {
                break;
            };
            // A frame the transport has not taken yet is never written now that the
            // request has ended (`wants_frame`): only one it took may have left.
            let delivery = entry.delivery(Self::delivery_of(self.link(), entry.sent));
            let error = RequestError::Timeout { delivery };
            match entry.purpose {
                Purpose::User => self.respond(id, entry.kind, Err(error)),
                Purpose::Login { step, mode } => {
                    self.login_answered(now, step, mode, None, Err(error))
                }
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
                Purpose::Unsubscribe => {
                    let max = self.config.max_in_flight;
                    self.subs.unsubscribe_timed_out(id, entry.op, max)
                }
            }
        }
    }

    /// Whether `link` may have transmitted the frame `sent`.
    pub(super) fn delivery_of(link: Option<&super::Link>, sent: Sent) -> Delivery {
        match (link, sent) {
            (Some(link), Sent::Yes { seq })
                if seq.get() >= link.first_seq
                    && link.written_upto.is_some_and(|w| w >= seq.get()) =>
            {
                Delivery::OutcomeUnknown
            }
            _ => Delivery::NotSent,
        }
    }

    /// The link is gone: fail or keep each pending request. Internal requests belonged to
    /// the link and are forgotten. Requests not sent stay queued either way: with no
    /// reconnect coming, [`ClientCore::fail_queued`] fails them once the loss is announced.
    pub(super) fn settle_pending_on_loss(&mut self, link: &super::Link, will_reconnect: bool) {
        let mut kept = self.requests.take_refused();
        for id in self.requests.ids() {
            let Some(entry) = self.requests.get_mut(id) else {
                continue;
            };
            let keep = entry.purpose == Purpose::User
                && (entry.sent == Sent::No || (will_reconnect && entry.retry));
            if keep {
                entry.earlier = entry.delivery(Self::delivery_of(Some(link), entry.sent));
                entry.sent = Sent::No;
                // The next connection logs in anew: a refusal there may be held again.
                entry.reauthorized = false;
                kept.push(id);
                continue;
            }
            let Some(entry) = self.requests.take(id) else {
                continue;
            };
            if entry.purpose == Purpose::User {
                let delivery = entry.delivery(Self::delivery_of(Some(link), entry.sent));
                self.respond(id, entry.kind, Err(RequestError::Disconnected { delivery }));
            }
        }
        // Everything kept goes out again once ready, in id order.
        self.requests.requeue(kept);
    }

    /// Fails the requests waiting for a connection that is not coming.
    pub(super) fn fail_queued(&mut self) {
        let queued: Vec<u64> = self.requests.outbox.drain(..).collect();
        for id in queued {
            if let Some(entry) = self.requests.take(id) {
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
        link: Option<&super::Link>,
        error: impl Fn(Delivery) -> RequestError,
    ) {
        self.requests.outbox.clear();
        self.requests.refused.clear();
        for id in self.requests.ids() {
            let Some(entry) = self.requests.take(id) else {
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
