//! A single-consumer buffer with a bounded-memory policy, used by subscription and event
//! streams.
//!
//! Two policies: `Latest` keeps only the newest item (a store query's result supersedes the
//! previous one, so nothing of value is lost), `Queue(n)` keeps at most `n` items and drops
//! the oldest beyond that, counting what it dropped so the consumer is told.
//!
//! A queue may hold notices among its items ([`Notices`]: a rules subscription's "events
//! were missed here"): they are never dropped to make room nor counted as dropped, and
//! notices that meet are merged, so they never fill the queue.

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

/// Which items of a queue are notices, and how two of them merge.
///
/// A full queue drops its oldest item that is not a notice: a notice at the front stays
/// and the item after it goes. Two notices next to each other (one pushed right after
/// another, or brought together by a drop) become one. A queue of capacity `n` with
/// notices holds at most `max(n, 2)` items.
pub(crate) struct Notices<T> {
    /// Whether an item is a notice.
    pub(crate) is_notice: fn(&T) -> bool,
    /// Merges a later notice into an earlier one.
    pub(crate) merge: fn(&mut T, T),
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
        self.push_with(item, None)
    }

    /// Adds an item to a queue that may hold `notices`; returns `false` when the consumer
    /// is gone. `Latest` ignores `notices`.
    pub(crate) fn push_with(&self, item: T, notices: Option<&Notices<T>>) -> bool {
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
                BufferPolicy::Queue(cap) => match notices {
                    Some(notices) => queue_keeping(&mut state, cap, item, notices),
                    None => {
                        if state.items.len() >= cap.max(1) {
                            state.items.pop_front();
                            state.lagged += 1;
                        }
                        state.items.push_back(item);
                    }
                },
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

/// Queues `item` in a queue of capacity `cap` that keeps its notices (see [`Notices`]).
fn queue_keeping<T>(state: &mut State<T>, cap: usize, item: T, notices: &Notices<T>) {
    let is_notice = notices.is_notice;
    // A notice right after another joins it: no room needed.
    let Some(item) = merge_into_last(state, item, notices) else {
        return;
    };
    while state.items.len() >= cap.max(2) {
        let front_is_notice = state.items.front().is_some_and(is_notice);
        let Some(dropped) = state.items.remove(usize::from(front_is_notice)) else {
            break;
        };
        if !is_notice(&dropped) {
            state.lagged += 1;
        } else if let Some(front) = state.items.front_mut() {
            // Two notices were next to each other (not left so by this queue): one.
            (notices.merge)(front, dropped);
        }
        // The drop brought the front notice and the next one together: one.
        if front_is_notice && state.items.get(1).is_some_and(is_notice) {
            if let Some(next) = state.items.remove(1) {
                if let Some(front) = state.items.front_mut() {
                    (notices.merge)(front, next);
                }
            }
        }
    }
    // The drops may have left a notice last.
    if let Some(item) = merge_into_last(state, item, notices) {
        state.items.push_back(item);
    }
}

/// Merges `item` into the last item when both are notices; otherwise gives it back.
fn merge_into_last<T>(state: &mut State<T>, item: T, notices: &Notices<T>) -> Option<T> {
    if (notices.is_notice)(&item) {
        if let Some(last) = state.items.back_mut() {
            if (notices.is_notice)(last) {
                (notices.merge)(last, item);
                return None;
            }
        }
    }
    Some(item)
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

    /// An item of a queue with notices: an event, or "missed from..to".
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum It {
        Event(u32),
        Missed(u32, u32),
    }

    const MISSED: Notices<It> = Notices {
        is_notice: |it| matches!(it, It::Missed(..)),
        merge: |earlier, later| {
            if let (It::Missed(from, to), It::Missed(later_from, later_to)) = (earlier, later) {
                *from = (*from).min(later_from);
                *to = (*to).max(later_to);
            }
        },
    };

    fn drain(rx: &SlotReceiver<It>) -> (Vec<It>, u64) {
        let (mut items, mut lagged) = (Vec::new(), 0);
        loop {
            match take(rx) {
                Poll::Ready(Taken::Item(item)) => items.push(item),
                Poll::Ready(Taken::Lagged(n)) => lagged += n,
                Poll::Ready(Taken::Ended) | Poll::Pending => return (items, lagged),
            }
        }
    }

    #[test]
    fn a_full_queue_keeps_its_notices_and_counts_only_dropped_items() {
        let (tx, rx) = slot(BufferPolicy::Queue(3));
        tx.push_with(It::Event(1), Some(&MISSED));
        tx.push_with(It::Missed(10, 20), Some(&MISSED));
        for i in 2..=6 {
            tx.push_with(It::Event(i), Some(&MISSED));
        }
        // 1 went (oldest, not a notice), then 2, 3 and 4 (the items after the notice).
        assert_eq!(rx.buffered(), 3);
        let (items, lagged) = drain(&rx);
        assert_eq!(items, [It::Missed(10, 20), It::Event(5), It::Event(6)]);
        assert_eq!(lagged, 4);
    }

    #[test]
    fn notices_that_meet_become_one() {
        let (tx, rx) = slot(BufferPolicy::Queue(4));
        // Pushed one after another.
        for i in 0..1000 {
            tx.push_with(It::Missed(i, i + 1), Some(&MISSED));
        }
        assert_eq!(rx.buffered(), 1);
        // Brought together by a drop: notice, item, notice; the item goes.
        tx.push_with(It::Event(1), Some(&MISSED));
        tx.push_with(It::Missed(2000, 2001), Some(&MISSED));
        tx.push_with(It::Event(2), Some(&MISSED));
        tx.push_with(It::Event(3), Some(&MISSED));
        let (items, lagged) = drain(&rx);
        assert_eq!(items, [It::Missed(0, 2001), It::Event(2), It::Event(3)]);
        assert_eq!(lagged, 1);
    }

    #[test]
    fn a_queue_of_one_holds_a_notice_and_the_newest_item() {
        let (tx, rx) = slot(BufferPolicy::Queue(1));
        tx.push_with(It::Missed(1, 2), Some(&MISSED));
        for i in 0..5 {
            tx.push_with(It::Event(i), Some(&MISSED));
        }
        let (items, lagged) = drain(&rx);
        assert_eq!(items, [It::Missed(1, 2), It::Event(4)]);
        assert_eq!(lagged, 4);
    }

    /// Random pushes and takes: the queue stays within its bound, no two notices are next
    /// to each other, every event is read or counted as dropped, and the notices read
    /// cover every notice pushed.
    #[test]
    fn queues_with_notices_keep_their_promises_under_random_traffic() {
        let mut seed = 0x2545_f491_u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for cap in 1..6 {
            let (tx, rx) = slot(BufferPolicy::Queue(cap));
            let (mut events, mut notices) = (0u32, Vec::new());
            let (mut read, mut lagged, mut covered) = (0u32, 0u64, Vec::new());
            for step in 0..5_000u32 {
                match next(10) {
                    0..=4 => {
                        tx.push_with(It::Event(step), Some(&MISSED));
                        events += 1;
                    }
                    5..=6 => {
                        tx.push_with(It::Missed(step, step), Some(&MISSED));
                        notices.push(step);
                    }
                    _ => {
                        let (items, n) = drain(&rx);
                        lagged += n;
                        for pair in items.windows(2) {
                            let both = pair.iter().all(|i| matches!(i, It::Missed(..)));
                            assert!(!both, "two notices in a row: {pair:?}");
                        }
                        for item in items {
                            match item {
                                It::Event(_) => read += 1,
                                It::Missed(from, to) => covered.push((from, to)),
                            }
                        }
                    }
                }
                assert!(rx.buffered() <= cap.max(2), "cap {cap}: {}", rx.buffered());
            }
            let (items, n) = drain(&rx);
            lagged += n;
            for item in items {
                match item {
                    It::Event(_) => read += 1,
                    It::Missed(from, to) => covered.push((from, to)),
                }
            }
            assert_eq!(u64::from(read) + lagged, u64::from(events), "cap {cap}");
            for at in notices {
                assert!(
                    covered.iter().any(|&(from, to)| from <= at && at <= to),
                    "cap {cap}: notice {at} lost"
                );
            }
        }
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
