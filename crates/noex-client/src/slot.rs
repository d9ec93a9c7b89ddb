//! A single-consumer buffer with a bounded-memory policy, used by subscription and event
//! streams.
//!
//! Two policies: `Latest` keeps only the newest item (a store query's result supersedes the
//! previous one, so nothing of value is lost), `Queue(n)` keeps at most `n` items and drops
//! the oldest beyond that, counting what it dropped so the consumer is told.

// Through the facade, so the loom models can build this file against loom's types.
use crate::sync::{Arc, AtomicWaker, Mutex, MutexGuard};
use std::collections::VecDeque;
use std::task::{Context, Poll};

/// How much a slow consumer's buffer may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BufferPolicy {
    /// Keep only the newest item.
    Latest,
    /// Keep up to this many items; beyond, drop the oldest and report how many were lost.
    Queue(usize),
}

/// What a consumer takes out.
#[derive(Debug)]
pub(crate) enum Taken<T> {
    Item(T),
    /// Items were dropped because the consumer was too slow.
    Lagged(u64),
    Ended,
}

struct State<T> {
    items: VecDeque<T>,
    lagged: u64,
    closed: bool,
    policy: BufferPolicy,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    waker: AtomicWaker,
}

/// The producing side.
pub(crate) struct SlotSender<T> {
    shared: Arc<Shared<T>>,
}

/// The consuming side.
pub(crate) struct SlotReceiver<T> {
    shared: Arc<Shared<T>>,
}

pub(crate) fn slot<T>(policy: BufferPolicy) -> (SlotSender<T>, SlotReceiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::new(),
            lagged: 0,
            closed: false,
            policy,
        }),
        waker: AtomicWaker::new(),
    });
    (
        SlotSender {
            shared: shared.clone(),
        },
        SlotReceiver { shared },
    )
}

fn lock<T>(shared: &Shared<T>) -> MutexGuard<'_, State<T>> {
    // A poisoned lock only means a consumer panicked while holding it; the data is intact.
    shared.state.lock().unwrap_or_else(|e| e.into_inner())
}

impl<T> SlotSender<T> {
    /// Adds an item; returns `false` when the consumer is gone.
    pub(crate) fn push(&self, item: T) -> bool {
        if Arc::strong_count(&self.shared) < 2 {
            return false;
        }
        {
            let mut state = lock(&self.shared);
            match state.policy {
                BufferPolicy::Latest => {
                    state.items.clear();
                    // Room for exactly the one item kept (a plain push would make room
                    // for four), for every live subscription.
                    state.items.reserve_exact(1);
                    state.items.push_back(item);
                }
                BufferPolicy::Queue(cap) => {
                    if state.items.len() >= cap.max(1) {
                        state.items.pop_front();
                        state.lagged += 1;
                    }
                    state.items.push_back(item);
                }
            }
        }
        self.shared.waker.wake();
        true
    }

    /// Ends the stream after the buffered items, optionally with a last item.
    pub(crate) fn close(&self, last: Option<T>) {
        {
            let mut state = lock(&self.shared);
            if let Some(last) = last {
                state.items.push_back(last);
            }
            state.closed = true;
        }
        self.shared.waker.wake();
    }

    /// Whether the consumer is gone.
    pub(crate) fn is_orphaned(&self) -> bool {
        Arc::strong_count(&self.shared) < 2
    }
}

impl<T> Drop for SlotSender<T> {
    fn drop(&mut self) {
        lock(&self.shared).closed = true;
        self.shared.waker.wake();
    }
}

impl<T> SlotReceiver<T> {
    pub(crate) fn poll_take(&self, cx: &mut Context<'_>) -> Poll<Taken<T>> {
        if let Some(taken) = self.try_take() {
            return Poll::Ready(taken);
        }
        self.shared.waker.register(cx.waker());
        match self.try_take() {
            Some(taken) => Poll::Ready(taken),
            None => Poll::Pending,
        }
    }

    fn try_take(&self) -> Option<Taken<T>> {
        let mut state = lock(&self.shared);
        if state.lagged > 0 {
            let n = state.lagged;
            state.lagged = 0;
            return Some(Taken::Lagged(n));
        }
        if let Some(item) = state.items.pop_front() {
            return Some(Taken::Item(item));
        }
        state.closed.then_some(Taken::Ended)
    }

    /// Items waiting (for tests of the memory policy).
    pub(crate) fn buffered(&self) -> usize {
        lock(&self.shared).items.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::task::noop_waker;

    fn take<T>(rx: &SlotReceiver<T>) -> Poll<Taken<T>> {
        let waker = noop_waker();
        let mut cx = Context::from_waker(&waker);
        rx.poll_take(&mut cx)
    }

    #[test]
    fn latest_keeps_only_the_newest() {
        let (tx, rx) = slot(BufferPolicy::Latest);
        for i in 0..10_000 {
            tx.push(i);
        }
        assert_eq!(rx.buffered(), 1);
        assert!(matches!(take(&rx), Poll::Ready(Taken::Item(9_999))));
        assert!(take(&rx).is_pending());
    }

    #[test]
    fn queue_is_bounded_and_reports_lag() {
        let (tx, rx) = slot(BufferPolicy::Queue(3));
        for i in 0..10 {
            tx.push(i);
        }
        assert_eq!(rx.buffered(), 3);
        assert!(matches!(take(&rx), Poll::Ready(Taken::Lagged(7))));
        assert!(matches!(take(&rx), Poll::Ready(Taken::Item(7))));
        tx.close(None);
        assert!(matches!(take(&rx), Poll::Ready(Taken::Item(8))));
        assert!(matches!(take(&rx), Poll::Ready(Taken::Item(9))));
        assert!(matches!(take(&rx), Poll::Ready(Taken::Ended)));
    }

    #[test]
    fn sender_notices_a_dropped_receiver() {
        let (tx, rx) = slot::<u8>(BufferPolicy::Latest);
        assert!(!tx.is_orphaned());
        drop(rx);
        assert!(tx.is_orphaned());
        assert!(!tx.push(1));
    }
}
