//! Loom models of the races in the client's hand-made synchronisation primitives: the
//! answer cells of `src/reply.rs` (the driver answers, the caller's future polls, is woken
//! or is dropped) and the subscription and event buffers of `src/slot.rs` (the driver
//! pushes or closes, the consumer polls, is woken or goes away).
//!
//! # How the models are built
//! `reply.rs` and `slot.rs` take their `Arc`, `Mutex`, `AtomicU64` and `AtomicWaker` from
//! `crate::sync` (`src/sync.rs`: plain re-exports of the std and `futures` types). This test
//! compiles the same two files again as modules of its own (`#[path = "../src/reply.rs"]
//! mod reply;`), beside a `sync` module below that names loom's types instead: loom runs
//! the library's own code, with no `--cfg loom` build of the dependencies and no loom in
//! the library. `crate::error::Error`, which `reply.rs` names, is the library's.
//!
//! Two of the stand-ins are not loom's types as they come. loom's `Arc` is wrapped so its
//! strong count lives in a loom atomic, updated as std updates its own: loom's `Arc` alone
//! never lets a drop on one thread come before a `strong_count` on another that it raced
//! with (`slot.rs` decides with `strong_count` whether the consumer is gone), and never
//! returns a stale count as std's relaxed load may. loom's `AtomicWaker` is a lock-based
//! stand-in for the lock-free one in `futures`: the models check how the buffers use it
//! (register, then look again), not its own algorithm.
//!
//! The test has `harness = false` (see `Cargo.toml`): built without libtest (no
//! `rustc --test`), it leaves out the `#[test]` functions of the two files' unit tests,
//! which would run outside any loom model (their `use` lines stay, hence
//! `allow(unused_imports)`); `main` runs the models instead.
//!
//! The driver's side (`driver.rs`: `handle_command`, `dispatch_subscription`) is played by
//! a few lines in each model that do what the driver does with the cells and buffers. The
//! command channel is loom's `mpsc`; the driver takes a cancel that is already there
//! before the answer (`try_recv`), and the rest after it.
//!
//! Each model asserts its invariants in every execution (a lost wake-up leaves
//! `loom::future::block_on` waiting, which loom reports as a deadlock; loom also fails an
//! execution that ends with a loom `Arc` still held: a leak), returns what happened in
//! it, and the runner checks that loom explored every outcome the model lists: a check on
//! the search, so a model cannot pass by never meeting its race.
//!
//! # How they run
//! Within `cargo test --workspace`, or alone: `cargo test -p noex-client --test loom_models`.
//! Arguments that are not flags keep only the models whose name contains one of them
//! (`cargo test -p noex-client --test loom_models -- slot_`). Each model prints how many
//! executions loom explored and how long they took. loom's environment variables apply
//! (`LOOM_MAX_PREEMPTIONS` bounds every model, `LOOM_LOG=1`, `LOOM_LOCATION=1`,
//! `LOOM_CHECKPOINT_FILE`).

// The models use part of each module; the unit tests' imports stay without their tests.
#[allow(dead_code, unused_imports)]
#[path = "../src/reply.rs"]
mod reply;
// `BufferPolicy` is public in the library, not here.
#[allow(dead_code, unused_imports, unreachable_pub)]
#[path = "../src/slot.rs"]
mod slot;

/// The error type `reply.rs` names as `crate::error::Error`.
mod error {
    pub(crate) use noex_client::Error;
}

/// loom's types under the names `src/sync.rs` gives the std and `futures` ones.
mod sync {
    use loom::sync::atomic::AtomicUsize;
    pub(crate) use loom::sync::atomic::{AtomicU64, Ordering};
    pub(crate) use loom::sync::{Mutex, MutexGuard};
    use std::ops::Deref;
    use std::task::Waker;

    /// loom's `Arc` (which fails an execution that ends with it still held), with the
    /// strong count kept as std keeps it: `clone` adds one (relaxed), a drop takes one
    /// away (release), `strong_count` is a relaxed load.
    pub(crate) struct Arc<T>(loom::sync::Arc<Counted<T>>);

    pub(crate) struct Counted<T> {
        strong: AtomicUsize,
        value: T,
    }

    impl<T> Arc<T> {
        pub(crate) fn new(value: T) -> Arc<T> {
            Arc(loom::sync::Arc::new(Counted {
                strong: AtomicUsize::new(1),
                value,
            }))
        }

        pub(crate) fn strong_count(this: &Arc<T>) -> usize {
            this.0.strong.load(Ordering::Relaxed)
        }
    }

    impl<T> Clone for Arc<T> {
        fn clone(&self) -> Arc<T> {
            self.0.strong.fetch_add(1, Ordering::Relaxed);
            Arc(self.0.clone())
        }
    }

    impl<T> Drop for Arc<T> {
        fn drop(&mut self) {
            self.0.strong.fetch_sub(1, Ordering::Release);
        }
    }

    impl<T> Deref for Arc<T> {
        type Target = T;
        fn deref(&self) -> &T {
            &self.0.value
        }
    }

    /// loom's `AtomicWaker` with the `futures` one's methods.
    pub(crate) struct AtomicWaker(loom::future::AtomicWaker);

    impl AtomicWaker {
        pub(crate) fn new() -> AtomicWaker {
            AtomicWaker(loom::future::AtomicWaker::new())
        }

        pub(crate) fn register(&self, waker: &Waker) {
            self.0.register_by_ref(waker);
        }

        pub(crate) fn wake(&self) {
            self.0.wake();
        }
    }
}

use loom::sync::atomic::AtomicUsize;
use loom::sync::mpsc;
use loom::thread;
use noex_proto::{Payload, RequestId, SubscriptionId};
use reply::{Replier, Replies, RequestCell, SubscribeCell};
use slot::{slot, BufferPolicy, SlotSender, Taken};
use std::future::poll_fn;
use std::sync::atomic::Ordering::SeqCst;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;
use sync::Arc;

// ---------------------------------------------------------------------------------------
// Helpers

/// Counts the wakes of a waker (the waker itself is a std type, hence the std `Arc`).
struct Wakes(AtomicUsize);

impl Wake for Wakes {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
    }
}

impl Wakes {
    fn count(&self) -> usize {
        self.0.load(SeqCst)
    }
}

/// A waker that counts its wakes, and its counter; the counter's strong count says how
/// many clones of the waker are still held somewhere.
fn counting_waker() -> (std::sync::Arc<Wakes>, Waker) {
    let wakes = std::sync::Arc::new(Wakes(AtomicUsize::new(0)));
    (wakes.clone(), Waker::from(wakes))
}

/// Checks that nothing holds a waker any more but its counter.
fn released(wakes: &std::sync::Arc<Wakes>) -> bool {
    std::sync::Arc::strong_count(wakes) == 1
}

fn noop() -> Context<'static> {
    Context::from_waker(futures::task::noop_waker_ref())
}

fn answer(json: &str) -> Payload {
    Payload::from_json(json).expect("valid JSON")
}

/// Whether `poll` is an answer of `json`.
fn is_answer(poll: &Poll<Option<reply::Answer<Payload>>>, json: &str) -> bool {
    matches!(poll, Poll::Ready(Some(Ok(p))) if p.json() == json)
}

// ---------------------------------------------------------------------------------------
// reply.rs: the answer cells

/// The driver registers and answers a request while the caller's future waits: the answer
/// arrives (a lost wake-up is a deadlock to loom), once, and nothing holds the cell after.
fn reply_answer_reaches_a_waiting_future_once() -> String {
    let (cell, replier) = RequestCell::new();
    let driver = thread::spawn(move || {
        let mut replies = Replies::default();
        replies.insert(RequestId(1), replier);
        replies.answer(RequestId(1), Ok(answer("7")));
    });
    let mut polls = 0;
    let first = loom::future::block_on(poll_fn(|cx| {
        polls += 1;
        cell.poll_answer(cx).map(Poll::Ready)
    }));
    assert!(is_answer(&first, "7"));
    driver.join().expect("driver");
    assert!(matches!(cell.poll_answer(&mut noop()), Poll::Ready(None)));
    assert_eq!(Arc::strong_count(&cell), 1);
    format!("answered at poll {polls}")
}

/// The future moves to another task between two polls (another waker) while the driver
/// answers: the waker of the last poll before the answer is woken, exactly once; a waker
/// replaced before the answer is not; the cell lets go of both.
fn reply_the_last_waker_before_the_answer_is_woken() -> String {
    let (cell, replier) = SubscribeCell::new();
    let driver = thread::spawn(move || {
        replier.registered(SubscriptionId(1));
        replier.send(Ok(SubscriptionId(1)));
    });
    let (first_wakes, first) = counting_waker();
    let (second_wakes, second) = counting_waker();
    let polls = [first, second].map(|waker| cell.poll_answer(&mut Context::from_waker(&waker)));
    driver.join().expect("driver");
    let answered = |p: &Poll<_>| matches!(p, Poll::Ready(Some(Ok(SubscriptionId(1)))));
    let wakes = (first_wakes.count(), second_wakes.count());
    let outcome = match &polls {
        [p, Poll::Ready(None)] if answered(p) => {
            assert_eq!(wakes, (0, 0));
            "answered before the first poll"
        }
        [Poll::Pending, p] if answered(p) => {
            assert_eq!(wakes, (1, 0));
            "answered between the polls"
        }
        [Poll::Pending, Poll::Pending] => {
            assert_eq!(wakes, (0, 1));
            assert!(answered(&cell.poll_answer(&mut noop())));
            "answered after both polls"
        }
        _ => panic!("unexpected polls"),
    };
    assert_eq!(cell.id(), Some(SubscriptionId(1)));
    drop(cell);
    assert!(released(&first_wakes) && released(&second_wakes));
    outcome.to_owned()
}

/// The driver ends while futures wait: one request registered in its table, one command
/// (a subscribe) still unhandled. Both futures learn that no answer will come.
fn reply_the_driver_ends_while_futures_wait() -> String {
    let (request, request_replier) = RequestCell::new();
    let (subscribe, subscribe_replier) = SubscribeCell::new();
    let driver = thread::spawn(move || {
        let mut replies = Replies::default();
        replies.insert(RequestId(1), request_replier);
        drop(subscribe_replier);
        drop(replies);
    });
    let mut polls = 0;
    let ended = loom::future::block_on(poll_fn(|cx| {
        polls += 1;
        let request = std::task::ready!(request.poll_answer(cx));
        let subscribe = std::task::ready!(subscribe.poll_answer(cx));
        Poll::Ready((request.is_none(), subscribe.is_none()))
    }));
    assert_eq!(ended, (true, true));
    driver.join().expect("driver");
    assert_eq!(Arc::strong_count(&request), 1);
    assert_eq!(Arc::strong_count(&subscribe), 1);
    format!("ended at poll {polls}")
}

/// What the request future sends the driver (`driver.rs`'s `Command`, in part).
enum RequestCommand {
    Request(Replier<Payload>),
    CancelRequest(Arc<RequestCell>),
}

/// The driver's handling of those commands (`Driver::handle_command`).
#[derive(Default)]
struct RequestDriver {
    replies: Replies,
    /// Requests withdrawn from the table (the driver then cancels them in the core).
    withdrawn: usize,
}

impl RequestDriver {
    fn handle(&mut self, command: RequestCommand) {
        match command {
            RequestCommand::Request(reply) => self.replies.insert(RequestId(1), reply),
            RequestCommand::CancelRequest(cell) => {
                if let Some(id) = cell.id::<RequestId>() {
                    if self.replies.withdraw(id) {
                        self.withdrawn += 1;
                    }
                }
            }
        }
    }
}

/// The caller polls its request once and drops the future (a cancel while in flight, as
/// `RequestFuture`'s `Drop` does) while the driver answers it; the cancel reaches the
/// driver before or after the answer. Either the future took the answer, or it was
/// withdrawn (owed nothing any more), or its answer stayed in the cell, freed with it.
/// Its waker is woken exactly when it waited and the answer found the cell; nothing holds
/// the cell or the waker after the driver ends.
fn reply_a_request_dropped_while_answered() -> String {
    let (commands, inbox) = mpsc::channel();
    let (cell, reply) = RequestCell::new();
    commands
        .send(RequestCommand::Request(reply))
        .expect("driver");
    let probe = cell.clone();
    let (wakes, waker) = counting_waker();
    let caller = thread::spawn(move || {
        let poll = cell.poll_answer(&mut Context::from_waker(&waker));
        if poll.is_pending() {
            // Dropped in flight: it withdraws the request.
            commands
                .send(RequestCommand::CancelRequest(cell.clone()))
                .expect("driver");
            return false;
        }
        assert!(is_answer(&poll, "7"));
        true
    });
    let driver = thread::spawn(move || {
        let mut driver = RequestDriver::default();
        // Commands are handled in order: the request before its cancel.
        driver.handle(inbox.recv().expect("the request"));
        if let Ok(cancel) = inbox.try_recv() {
            driver.handle(cancel);
        }
        driver.replies.answer(RequestId(1), Ok(answer("7")));
        (driver, inbox)
    });
    let answered = caller.join().expect("caller");
    let (mut driver, inbox) = driver.join().expect("driver");
    while let Ok(cancel) = inbox.try_recv() {
        driver.handle(cancel);
    }
    let withdrawn = driver.withdrawn == 1;
    assert!(driver.withdrawn <= 1 && !(answered && withdrawn));
    assert_eq!(wakes.count(), usize::from(!answered && !withdrawn));
    drop(driver);
    assert_eq!(Arc::strong_count(&probe), 1, "a cell outlives the driver");
    drop(probe);
    assert!(released(&wakes), "a freed cell held a waker");
    match (answered, withdrawn) {
        (true, _) => "the future took the answer",
        (false, true) => "withdrawn before the answer",
        (false, false) => "cancelled after the answer",
    }
    .to_owned()
}

/// What the subscribe future and its subscription send the driver.
enum SubscribeCommand {
    Subscribe {
        sink: SlotSender<u32>,
        reply: Replier<SubscriptionId>,
    },
    CancelSubscribe(Arc<SubscribeCell>),
    Unsubscribe(SubscriptionId),
}

/// The driver's subscription entry (`SubEntry`).
struct SubEntry {
    sink: SlotSender<u32>,
    ready: Option<Replier<SubscriptionId>>,
}

/// The driver's handling of those commands and of the server's answer
/// (`Driver::handle_command`, `Driver::dispatch_subscription`), for one subscription.
#[derive(Default)]
struct SubscribeDriver {
    entry: Option<SubEntry>,
    /// Whether the answer was sent to the future.
    answered: bool,
    /// `core.unsubscribe` calls.
    unsubscribed: usize,
}

const SUB: SubscriptionId = SubscriptionId(1);
const INITIAL: u32 = 10;

impl SubscribeDriver {
    fn handle(&mut self, command: SubscribeCommand) {
        match command {
            SubscribeCommand::Subscribe { sink, reply } => {
                reply.registered(SUB);
                let ready = Some(reply);
                self.entry = Some(SubEntry { sink, ready });
            }
            SubscribeCommand::CancelSubscribe(cell) => {
                if cell.id::<SubscriptionId>() == Some(SUB) && self.entry.take().is_some() {
                    self.unsubscribed += 1;
                }
            }
            SubscribeCommand::Unsubscribe(id) => {
                assert_eq!(id, SUB);
                self.entry = None;
                self.unsubscribed += 1;
            }
        }
    }

    /// The server's answer: the subscription's initial data, then the future's answer.
    fn ready(&mut self) {
        if let Some(entry) = &mut self.entry {
            // Refused when the future is gone and its cancel not handled yet.
            entry.sink.push(INITIAL);
            if let Some(ready) = entry.ready.take() {
                ready.send(Ok(SUB));
                self.answered = true;
            }
        }
    }
}

/// The caller polls its subscribe once and drops the future, or takes the answer and
/// drops the subscription, while the driver answers; the cancel reaches the driver before
/// or after the answer. The subscription made at the server is never left behind (the
/// driver unsubscribes it exactly once), a future that has its answer finds the initial
/// data already in its buffer, and nothing holds the cell, the buffer or the waker after.
fn reply_a_subscribe_dropped_while_answered() -> String {
    let (commands, inbox) = mpsc::channel();
    let (sink, rx) = slot(BufferPolicy::Latest);
    let (cell, reply) = SubscribeCell::new();
    commands
        .send(SubscribeCommand::Subscribe { sink, reply })
        .expect("driver");
    let probe = cell.clone();
    let (wakes, waker) = counting_waker();
    let caller = thread::spawn(
        move || match cell.poll_answer(&mut Context::from_waker(&waker)) {
            Poll::Ready(Some(Ok(id))) => {
                // The data is in the buffer before the answer is in the cell.
                assert!(matches!(
                    rx.poll_take(&mut noop()),
                    Poll::Ready(Taken::Item(INITIAL))
                ));
                // The subscription is dropped: it unsubscribes.
                drop(rx);
                commands
                    .send(SubscribeCommand::Unsubscribe(id))
                    .expect("driver");
                true
            }
            Poll::Pending => {
                // Dropped in flight: it withdraws the subscribe.
                commands
                    .send(SubscribeCommand::CancelSubscribe(cell.clone()))
                    .expect("driver");
                false
            }
            Poll::Ready(_) => panic!("no other answer is sent"),
        },
    );
    let driver = thread::spawn(move || {
        let mut driver = SubscribeDriver::default();
        driver.handle(inbox.recv().expect("the subscribe"));
        if let Ok(command) = inbox.try_recv() {
            driver.handle(command);
        }
        driver.ready();
        (driver, inbox)
    });
    let took_answer = caller.join().expect("caller");
    let (mut driver, inbox) = driver.join().expect("driver");
    while let Ok(command) = inbox.try_recv() {
        driver.handle(command);
    }
    assert!(driver.entry.is_none(), "a subscription left at the server");
    assert_eq!(driver.unsubscribed, 1);
    assert!(driver.answered || !took_answer);
    // A future that waited is woken once: by the answer or, withdrawn first, by the
    // entry's replier, dropped with the entry (which ends the cell).
    assert_eq!(wakes.count(), usize::from(!took_answer));
    let answered = driver.answered;
    drop(driver);
    assert_eq!(Arc::strong_count(&probe), 1, "a cell outlives the driver");
    drop(probe);
    assert!(released(&wakes), "a freed cell held a waker");
    match (took_answer, answered) {
        (true, _) => "the future took the answer",
        (false, false) => "withdrawn before the answer",
        (false, true) => "withdrawn after the answer",
    }
    .to_owned()
}

// ---------------------------------------------------------------------------------------
// slot.rs: the subscription and event buffers

/// How the producer ends a buffer.
#[derive(Clone, Copy, Debug)]
enum End {
    /// `close(Some(last))`: a subscription that failed.
    CloseWith(u32),
    /// `close(None)`: a subscription that ended.
    Close,
    /// The sender dropped (the driver ended).
    Drop,
}

/// The producer pushes 1 and 2 and ends the buffer while the consumer waits for items:
/// the consumer is always woken (a lost wake-up is a deadlock to loom), sees the items in
/// order, always the newest (2), the closing item exactly once and last, every dropped
/// item counted as lag, and the buffer never beyond its bound. A closed buffer's sender
/// lives on until the consumer has seen the end: `close` must wake it by itself.
fn slot_push_and_end_vs_poll(policy: BufferPolicy, end: End) -> String {
    let (tx, rx) = slot(policy);
    let producer = thread::spawn(move || {
        for item in [1, 2] {
            assert!(tx.push(item), "the consumer is still there");
        }
        match end {
            End::CloseWith(last) => tx.close(Some(last)),
            End::Close => tx.close(None),
            End::Drop => return None,
        }
        Some(tx)
    });
    let keeps = match policy {
        BufferPolicy::Latest => 1,
        BufferPolicy::Queue(cap) => cap,
    };
    // The closing item goes in beyond the bound: it is never dropped.
    let bound = keeps + usize::from(matches!(end, End::CloseWith(_)));
    let mut seen = Vec::new();
    let mut lagged = 0;
    loom::future::block_on(poll_fn(|cx| loop {
        assert!(rx.buffered() <= bound);
        match rx.poll_take(cx) {
            Poll::Ready(Taken::Item(item)) => seen.push(item),
            Poll::Ready(Taken::Lagged(n)) => lagged += n,
            Poll::Ready(Taken::Ended) => return Poll::Ready(()),
            Poll::Pending => return Poll::Pending,
        }
    }));
    let tx = producer.join().expect("producer");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    if let End::CloseWith(last) = end {
        assert_eq!(seen.pop(), Some(last), "{seen:?}");
        assert!(!seen.contains(&last));
    }
    assert_eq!(seen.last(), Some(&2), "the newest item is lost: {seen:?}");
    match policy {
        BufferPolicy::Latest => assert_eq!(lagged, 0),
        BufferPolicy::Queue(_) => assert_eq!(seen.len() as u64 + lagged, 2, "{seen:?}"),
    }
    assert!(matches!(
        rx.poll_take(&mut noop()),
        Poll::Ready(Taken::Ended)
    ));
    drop(tx);
    format!("saw {seen:?}, lagged {lagged}")
}

/// The consumer polls once and goes away (its stream dropped) while the producer pushes:
/// once `push` refuses or `is_orphaned` says so, the consumer stays gone; after, the buffer
/// and the consumer's waker are freed with the sender.
fn slot_receiver_dropped_vs_push() -> String {
    let (tx, rx) = slot(BufferPolicy::Queue(2));
    let (wakes, waker) = counting_waker();
    let consumer = thread::spawn(move || {
        let _ = rx.poll_take(&mut Context::from_waker(&waker));
        drop(rx);
    });
    let first = tx.push(1);
    let orphaned = tx.is_orphaned();
    let second = tx.push(2);
    // Once refused or reported orphaned, always.
    assert!(first || (orphaned && !second));
    assert!(!orphaned || !second);
    consumer.join().expect("consumer");
    assert!(tx.is_orphaned());
    assert!(!tx.push(3));
    drop(tx);
    assert!(wakes.count() <= 2);
    assert!(released(&wakes), "a freed buffer held a waker");
    format!("push {first}, orphaned {orphaned}, push {second}")
}

/// The stream moves to another task between two polls while the producer pushes: when
/// the second poll found nothing, its waker (not the first's) is woken and the item is
/// there.
fn slot_the_last_waker_before_a_push_is_woken() -> String {
    let (tx, rx) = slot(BufferPolicy::Latest);
    let producer = thread::spawn(move || {
        assert!(tx.push(1));
        tx
    });
    let (first_wakes, first_waker) = counting_waker();
    let (second_wakes, second_waker) = counting_waker();
    let first = rx.poll_take(&mut Context::from_waker(&first_waker));
    let second = first
        .is_pending()
        .then(|| rx.poll_take(&mut Context::from_waker(&second_waker)));
    drop((first_waker, second_waker));
    let tx = producer.join().expect("producer");
    // One push wakes one waker at most, once. A poll that found the item may have been
    // woken too: the push came between its registering and its second look.
    let wakes = (first_wakes.count(), second_wakes.count());
    assert!(wakes.0 + wakes.1 <= 1);
    let outcome = match (first, second) {
        (Poll::Ready(Taken::Item(1)), None) => "the item at the first poll",
        (Poll::Pending, Some(Poll::Ready(Taken::Item(1)))) => "the item at the second poll",
        (Poll::Pending, Some(Poll::Pending)) => {
            assert_eq!(wakes, (0, 1));
            assert!(matches!(
                rx.poll_take(&mut noop()),
                Poll::Ready(Taken::Item(1))
            ));
            "the item after both polls"
        }
        other => panic!("unexpected polls: {other:?}"),
    };
    drop((tx, rx));
    assert!(released(&first_wakes) && released(&second_wakes));
    outcome.to_owned()
}

// ---------------------------------------------------------------------------------------
// The runner

/// A model: its name, the preemption bound it is checked with (`None`: loom's full
/// search), its body, which returns what happened in one execution, and the outcomes
/// loom must have explored.
struct Model {
    name: String,
    preemptions: Option<usize>,
    body: Box<dyn Fn() -> String + Send + Sync>,
    expected: Vec<String>,
}

/// The preemption bound of the buffer models that run a whole stream (two pushes, an end,
/// a consumer looping until it ends): loom's full search of one did not end within ten
/// minutes; three preemptions take about 0.25 s each (1,100 executions), four about 1.1 s
/// (6,500), five 4 to 10 s (27,000 to 40,000), and found nothing more.
const STREAM_PREEMPTIONS: usize = 3;

fn models() -> Vec<Model> {
    fn full(name: &str, body: fn() -> String, expected: &[&str]) -> Model {
        Model {
            name: name.into(),
            preemptions: None,
            body: Box::new(body),
            expected: expected.iter().map(|&e| e.to_owned()).collect(),
        }
    }
    let mut models = vec![
        full(
            "reply_answer_reaches_a_waiting_future_once",
            reply_answer_reaches_a_waiting_future_once,
            &["answered at poll 1", "answered at poll 2"],
        ),
        full(
            "reply_the_last_waker_before_the_answer_is_woken",
            reply_the_last_waker_before_the_answer_is_woken,
            &[
                "answered before the first poll",
                "answered between the polls",
                "answered after both polls",
            ],
        ),
        full(
            "reply_the_driver_ends_while_futures_wait",
            reply_the_driver_ends_while_futures_wait,
            &["ended at poll 1", "ended at poll 2"],
        ),
        full(
            "reply_a_request_dropped_while_answered",
            reply_a_request_dropped_while_answered,
            &[
                "the future took the answer",
                "withdrawn before the answer",
                "cancelled after the answer",
            ],
        ),
        full(
            "reply_a_subscribe_dropped_while_answered",
            reply_a_subscribe_dropped_while_answered,
            &[
                "the future took the answer",
                "withdrawn before the answer",
                "withdrawn after the answer",
            ],
        ),
        full(
            "slot_receiver_dropped_vs_push",
            slot_receiver_dropped_vs_push,
            &[
                "push true, orphaned false, push true",
                "push true, orphaned false, push false",
                "push true, orphaned true, push false",
                "push false, orphaned true, push false",
            ],
        ),
        full(
            "slot_the_last_waker_before_a_push_is_woken",
            slot_the_last_waker_before_a_push_is_woken,
            &[
                "the item at the first poll",
                "the item at the second poll",
                "the item after both polls",
            ],
        ),
    ];
    for policy in [
        BufferPolicy::Latest,
        BufferPolicy::Queue(1),
        BufferPolicy::Queue(2),
    ] {
        // What the consumer may see of the two pushes.
        let expected: &[&str] = match policy {
            BufferPolicy::Latest => &["saw [1, 2], lagged 0", "saw [2], lagged 0"],
            BufferPolicy::Queue(1) => &["saw [1, 2], lagged 0", "saw [2], lagged 1"],
            BufferPolicy::Queue(_) => &["saw [1, 2], lagged 0"],
        };
        for end in [End::CloseWith(3), End::Close, End::Drop] {
            models.push(Model {
                name: format!("slot_push_and_end_vs_poll({policy:?}, {end:?})"),
                preemptions: Some(STREAM_PREEMPTIONS),
                body: Box::new(move || slot_push_and_end_vs_poll(policy, end)),
                expected: expected.iter().map(|&e| e.to_owned()).collect(),
            });
        }
    }
    models
}

/// What each execution of the model being checked did.
static OUTCOMES: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let models: Vec<Model> = models()
        .into_iter()
        .filter(|m| filters.is_empty() || filters.iter().any(|f| m.name.contains(f.as_str())))
        .collect();
    if args.iter().any(|a| a == "--list") {
        for model in &models {
            println!("{}: test", model.name);
        }
        return;
    }
    // None of the models is an ignored test.
    if args.iter().any(|a| a == "--ignored") {
        return;
    }
    println!("\nrunning {} loom models", models.len());
    let started = Instant::now();
    for Model {
        name,
        preemptions,
        body,
        expected,
    } in models
    {
        let start = Instant::now();
        OUTCOMES.lock().expect("outcomes").clear();
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = builder.preemption_bound.or(preemptions);
        let search = match builder.preemption_bound {
            Some(n) => format!("at most {n} preemptions"),
            None => "full search".to_owned(),
        };
        builder.check(move || {
            let outcome = body();
            OUTCOMES.lock().expect("outcomes").push(outcome);
        });
        let outcomes = std::mem::take(&mut *OUTCOMES.lock().expect("outcomes"));
        for outcome in &expected {
            assert!(
                outcomes.contains(outcome),
                "model {name}: loom never explored \"{outcome}\" (with {search})"
            );
        }
        println!(
            "model {name} ... ok ({search}: {} executions, {:.2?})",
            outcomes.len(),
            start.elapsed()
        );
    }
    println!("loom models: all passed in {:.2?}\n", started.elapsed());
}
