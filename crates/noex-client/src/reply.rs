//! An answer on its way from the driver to the caller's future (a request's payload, a
//! subscribe's id).
//!
//! One small shared cell per request or subscribe in flight, instead of a oneshot channel
//! plus a ticket table in the driver: the cell also carries the core's id for it once the
//! driver has registered it, so a future dropped before its answer withdraws it by handing
//! its cell back (`Command::CancelRequest`, `Command::CancelSubscribe`) and the driver
//! needs no table from tickets to ids.

use crate::error::Error;
// Through the facade, so the loom models can build this file against loom's types.
use crate::sync::{Arc, AtomicU64, Mutex, MutexGuard, Ordering};
use noex_proto::__private::IdTable;
use noex_proto::{Payload, RequestId, SubscriptionId};
use std::task::{Context, Poll, Waker};

/// What the driver answers: `T`, or why not (boxed: the cell stays small).
pub(crate) type Answer<T> = Result<T, Box<Error>>;

/// A request's cell: the answer is the payload, the id a [`RequestId`].
pub(crate) type RequestCell = ReplyCell<Payload>;
/// A subscribe's cell: the answer and the id are the [`SubscriptionId`].
pub(crate) type SubscribeCell = ReplyCell<SubscriptionId>;

/// The core's ids are `u64` newtypes, never 0.
pub(crate) trait CoreId: Copy {
    fn raw(self) -> u64;
    fn from_raw(raw: u64) -> Self;
}

impl CoreId for RequestId {
    fn raw(self) -> u64 {
        self.0
    }
    fn from_raw(raw: u64) -> Self {
        RequestId(raw)
    }
}

impl CoreId for SubscriptionId {
    fn raw(self) -> u64 {
        self.0
    }
    fn from_raw(raw: u64) -> Self {
        SubscriptionId(raw)
    }
}

/// The shared state of one request or subscribe.
pub(crate) struct ReplyCell<T> {
    /// The core's id, once registered; 0 before (the core's ids start at 1).
    id: AtomicU64,
    state: Mutex<State<T>>,
}

enum State<T> {
    /// No answer yet; the waker of the future's last poll.
    Waiting(Option<Waker>),
    /// Answered, not yet taken.
    Ready(Answer<T>),
    /// The driver let go without answering (it ended).
    Abandoned,
    /// Taken by the future.
    Taken,
}

impl<T> ReplyCell<T> {
    /// A cell about to be handed to the driver, and the driver's end of it.
    pub(crate) fn new() -> (Arc<ReplyCell<T>>, Replier<T>) {
        let cell = Arc::new(ReplyCell {
            id: AtomicU64::new(0),
            state: Mutex::new(State::Waiting(None)),
        });
        (cell.clone(), Replier(Some(cell)))
    }

    fn state(&self) -> MutexGuard<'_, State<T>> {
        // Nothing panics while holding the lock; a poisoned one still holds a valid state.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The core's id, if the driver registered it.
    pub(crate) fn id<I: CoreId>(&self) -> Option<I> {
        match self.id.load(Ordering::Acquire) {
            0 => None,
            id => Some(I::from_raw(id)),
        }
    }

    /// The answer, once there is one: `None` when the driver ended without answering.
    pub(crate) fn poll_answer(&self, cx: &mut Context<'_>) -> Poll<Option<Answer<T>>> {
        let mut state = self.state();
        match std::mem::replace(&mut *state, State::Taken) {
            State::Waiting(waker) => {
                let waker = match waker {
                    Some(w) if w.will_wake(cx.waker()) => w,
                    _ => cx.waker().clone(),
                };
                *state = State::Waiting(Some(waker));
                Poll::Pending
            }
            State::Ready(answer) => Poll::Ready(Some(answer)),
            State::Abandoned | State::Taken => Poll::Ready(None),
        }
    }

    fn finish(&self, end: State<T>) {
        let waker = {
            let mut state = self.state();
            match std::mem::replace(&mut *state, end) {
                State::Waiting(waker) => waker,
                // Already answered: keep the first end.
                earlier => {
                    *state = earlier;
                    None
                }
            }
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The driver's end of a [`ReplyCell`]. Dropped without [`Replier::send`], it tells the
/// future that no answer will come.
pub(crate) struct Replier<T>(Option<Arc<ReplyCell<T>>>);

impl<T> Replier<T> {
    /// Records the core's id.
    pub(crate) fn registered(&self, id: impl CoreId) {
        if let Some(cell) = &self.0 {
            cell.id.store(id.raw(), Ordering::Release);
        }
    }

    /// Answers and wakes the future.
    pub(crate) fn send(mut self, answer: Answer<T>) {
        if let Some(cell) = self.0.take() {
            cell.finish(State::Ready(answer));
        }
    }
}

/// What the driver owes the requests in flight: each one's cell, by the core's request
/// id, 8 bytes a request. Each is answered at most once; those still owed when the table
/// goes (the driver ended) learn that no answer will come, as a dropped [`Replier`] would
/// tell them.
#[derive(Default)]
pub(crate) struct Replies(IdTable<Arc<RequestCell>>);

impl Replies {
    /// Keeps `reply`'s cell until request `id` ends.
    pub(crate) fn insert(&mut self, id: RequestId, mut reply: Replier<Payload>) {
        reply.registered(id);
        if let Some(cell) = reply.0.take() {
            self.0.insert(id.0, cell);
        }
    }

    /// Answers request `id`, if it is owed an answer.
    pub(crate) fn answer(&mut self, id: RequestId, answer: Answer<Payload>) {
        if let Some(cell) = self.0.remove(id.0) {
            cell.finish(State::Ready(answer));
        }
    }

    /// Forgets request `id` (its future is gone); whether it was owed an answer.
    pub(crate) fn withdraw(&mut self, id: RequestId) -> bool {
        self.0.remove(id.0).is_some()
    }
}

impl Drop for Replies {
    fn drop(&mut self) {
        for (_, cell) in self.0.drain() {
            cell.finish(State::Abandoned);
        }
    }
}

impl<T> Drop for Replier<T> {
    fn drop(&mut self) {
        if let Some(cell) = self.0.take() {
            cell.finish(State::Abandoned);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::task::noop_waker_ref;

    #[test]
    fn an_answer_reaches_the_future_once() {
        let (cell, replier) = RequestCell::new();
        let mut cx = Context::from_waker(noop_waker_ref());
        assert!(cell.poll_answer(&mut cx).is_pending());
        assert_eq!(cell.id::<RequestId>(), None);
        replier.registered(RequestId(7));
        assert_eq!(cell.id(), Some(RequestId(7)));
        replier.send(Ok(Payload::null()));
        assert!(matches!(
            cell.poll_answer(&mut cx),
            Poll::Ready(Some(Ok(_)))
        ));
        assert!(matches!(cell.poll_answer(&mut cx), Poll::Ready(None)));
    }

    #[test]
    fn a_replier_dropped_unanswered_ends_the_wait() {
        let (cell, replier) = SubscribeCell::new();
        let mut cx = Context::from_waker(noop_waker_ref());
        assert!(cell.poll_answer(&mut cx).is_pending());
        drop(replier);
        assert!(matches!(cell.poll_answer(&mut cx), Poll::Ready(None)));
    }

    #[test]
    fn requests_still_owed_when_the_table_goes_learn_it() {
        let mut replies = Replies::default();
        let (answered, replier) = RequestCell::new();
        replies.insert(RequestId(1), replier);
        let (owed, replier) = RequestCell::new();
        replies.insert(RequestId(2), replier);
        let (withdrawn, replier) = RequestCell::new();
        replies.insert(RequestId(3), replier);
        assert_eq!(owed.id(), Some(RequestId(2)));
        replies.answer(RequestId(1), Ok(Payload::null()));
        assert!(replies.withdraw(RequestId(3)));
        assert!(!replies.withdraw(RequestId(3)));
        drop(replies);
        let mut cx = Context::from_waker(noop_waker_ref());
        assert!(matches!(
            answered.poll_answer(&mut cx),
            Poll::Ready(Some(Ok(_)))
        ));
        assert!(matches!(owed.poll_answer(&mut cx), Poll::Ready(None)));
        // Withdrawn: its future is gone, nothing is owed to it.
        assert!(withdrawn.poll_answer(&mut cx).is_pending());
    }

    #[test]
    fn the_cell_stays_small() {
        // The point of the cell: less per request in flight than a oneshot channel.
        assert!(
            size_of::<RequestCell>() <= 48,
            "{}",
            size_of::<RequestCell>()
        );
    }
}
