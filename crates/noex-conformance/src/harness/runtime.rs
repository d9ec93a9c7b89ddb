//! [`SimRuntime`]: a single-threaded, deterministic executor on a virtual clock.
//!
//! Tasks run one at a time from a FIFO ready queue. When none is ready, the clock jumps to
//! the earliest pending timer and wakes it (with every timer due at the same instant, in
//! the order they were registered). Nothing reads the OS clock: the same test gives the
//! same sequence of polls, timers and frames on every run.

use futures::future::BoxFuture;
use futures::task::{waker_ref, ArcWake};
use noex_client::runtime::Runtime;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Bounds that make a runaway test fail fast instead of spinning: [`SimRuntime::block_on`]
/// panics when the virtual clock would pass `virtual_time` (measured from the runtime's
/// start) or after `steps` polls in total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The latest virtual time (since the start) the clock may reach.
    pub virtual_time: Duration,
    /// The most polls (of tasks and of the awaited future) over the runtime's life.
    pub steps: u64,
}

impl Default for Limits {
    /// 30 virtual days and 100 million polls.
    fn default() -> Limits {
        Limits {
            virtual_time: Duration::from_secs(30 * 24 * 3600),
            steps: 100_000_000,
        }
    }
}

/// A deterministic executor on a virtual clock, implementing the client's
/// [`Runtime`]: `spawn` queues the task here, `sleep` registers a timer on the virtual
/// clock, `now` is the start instant plus the virtual time elapsed.
///
/// Cheap to clone (every clone is the same runtime). Tasks only run inside
/// [`SimRuntime::block_on`] (and its shorthands), on the calling thread.
///
/// ```
/// use noex_client::runtime::Runtime;
/// use noex_conformance::harness::SimRuntime;
/// use std::time::Duration;
///
/// let rt = SimRuntime::new();
/// let start = rt.now();
/// // A virtual day passes at once.
/// rt.block_on(rt.sleep(Duration::from_secs(86_400)));
/// assert_eq!(rt.now() - start, Duration::from_secs(86_400));
/// assert_eq!(rt.elapsed(), Duration::from_secs(86_400));
/// ```
///
/// A task that spawns, sleeps and wakes other tasks sees a clock that moves only when
/// every task waits. Spawned tasks keep the runtime alive (they hold it through the
/// client's `Backend`); [`SimRuntime::shutdown`] drops them.
#[derive(Clone)]
pub struct SimRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    base: Instant,
    ready: Arc<ReadyQueue>,
    state: Mutex<State>,
    /// Set while `block_on` runs: a nested call would poll tasks re-entrantly.
    running: AtomicBool,
}

#[derive(Default)]
struct ReadyQueue {
    tasks: Mutex<VecDeque<Arc<Task>>>,
}

#[derive(Default)]
struct State {
    now: Duration,
    /// Pending timers by deadline and registration order, each with the waker of the last
    /// poll of its sleep.
    timers: BTreeMap<(Duration, u64), Option<Waker>>,
    next_timer: u64,
    next_task: u64,
    /// Every task not finished yet, by spawn order.
    tasks: BTreeMap<u64, Arc<Task>>,
    steps: u64,
    spawned: u64,
    limits: Limits,
}

struct Task {
    id: u64,
    future: Mutex<Option<BoxFuture<'static, ()>>>,
    queued: AtomicBool,
    ready: Weak<ReadyQueue>,
}

impl ArcWake for Task {
    fn wake_by_ref(task: &Arc<Self>) {
        if !task.queued.swap(true, Ordering::SeqCst) {
            if let Some(ready) = task.ready.upgrade() {
                lock(&ready.tasks).push_back(task.clone());
            }
        }
    }
}

/// The awaited future's waker: a flag.
struct MainFlag(AtomicBool);

impl ArcWake for MainFlag {
    fn wake_by_ref(flag: &Arc<Self>) {
        flag.0.store(true, Ordering::SeqCst);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Default for SimRuntime {
    fn default() -> Self {
        SimRuntime::new()
    }
}

impl fmt::Debug for SimRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.inner.state);
        f.debug_struct("SimRuntime")
            .field("elapsed", &state.now)
            .field("tasks", &state.tasks.len())
            .field("timers", &state.timers.len())
            .field("steps", &state.steps)
            .finish()
    }
}

impl SimRuntime {
    /// A runtime at virtual time zero with the default [`Limits`].
    pub fn new() -> SimRuntime {
        SimRuntime::with_limits(Limits::default())
    }

    /// A runtime at virtual time zero with `limits`.
    pub fn with_limits(limits: Limits) -> SimRuntime {
        SimRuntime {
            inner: Arc::new(Inner {
                base: Instant::now(),
                ready: Arc::new(ReadyQueue::default()),
                state: Mutex::new(State {
                    limits,
                    ..State::default()
                }),
                running: AtomicBool::new(false),
            }),
        }
    }

    /// Replaces the limits (e.g. to extend the virtual-time bound for a later phase).
    pub fn set_limits(&self, limits: Limits) {
        lock(&self.inner.state).limits = limits;
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        lock(&self.inner.state).limits
    }

    /// Virtual time since the runtime was made.
    pub fn elapsed(&self) -> Duration {
        lock(&self.inner.state).now
    }

    /// Polls made so far (tasks and awaited futures).
    pub fn steps(&self) -> u64 {
        lock(&self.inner.state).steps
    }

    /// Tasks spawned and not finished.
    pub fn live_tasks(&self) -> usize {
        lock(&self.inner.state).tasks.len()
    }

    /// Tasks spawned over the runtime's life.
    pub fn spawned_tasks(&self) -> u64 {
        lock(&self.inner.state).spawned
    }

    /// Timers registered and not yet fired or dropped.
    pub fn pending_timers(&self) -> usize {
        lock(&self.inner.state).timers.len()
    }

    /// When the earliest pending timer fires, as virtual time since the start.
    pub fn next_timer(&self) -> Option<Duration> {
        lock(&self.inner.state)
            .timers
            .keys()
            .next()
            .map(|(at, _)| *at)
    }

    /// Runs `future` to completion on this thread, running spawned tasks meanwhile and
    /// moving the clock from timer to timer when nothing is ready. `future` is polled
    /// when no task is ready, so it sees everything due at the instant it wakes done.
    ///
    /// # Panics
    /// When the future cannot finish (nothing ready, no timer pending: a deadlock), when
    /// the clock would pass [`Limits::virtual_time`] or the polls exceed [`Limits::steps`],
    /// when a task panics, and when called from inside a task of this runtime.
    pub fn block_on<F: std::future::IntoFuture>(&self, future: F) -> F::Output {
        let future = future.into_future();
        assert!(
            !self.inner.running.swap(true, Ordering::SeqCst),
            "SimRuntime::block_on called while the runtime is already running"
        );
        struct Running<'a>(&'a AtomicBool);
        impl Drop for Running<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::SeqCst);
            }
        }
        let _running = Running(&self.inner.running);

        let mut future = pin!(future);
        let main = Arc::new(MainFlag(AtomicBool::new(true)));
        let waker = futures::task::waker(main.clone());
        let mut cx = Context::from_waker(&waker);
        loop {
            // Tasks first: the awaited future sees a settled state (everything due at
            // this instant has run).
            let next = lock(&self.inner.ready.tasks).pop_front();
            if let Some(task) = next {
                self.count_step();
                self.run(task);
                continue;
            }
            if main.0.swap(false, Ordering::SeqCst) {
                self.count_step();
                if let Poll::Ready(value) = future.as_mut().poll(&mut cx) {
                    return value;
                }
                continue;
            }
            self.fire_next_timers();
        }
    }

    /// Runs every ready task (and what they wake) without moving the clock.
    pub fn run_ready(&self) {
        self.block_on(std::future::ready(()));
    }

    /// Lets `duration` of virtual time pass, running everything due meanwhile.
    pub fn advance(&self, duration: Duration) {
        self.block_on(self.sleep(duration));
    }

    /// Lets the clock reach `at` (virtual time since the start), running everything due
    /// meanwhile. Does nothing when the clock is past it.
    pub fn advance_to(&self, at: Duration) {
        let now = self.elapsed();
        self.advance(at.saturating_sub(now));
    }

    /// Drops every task not finished and every pending timer (breaking the reference
    /// cycles tasks form with the runtime, so their memory is freed).
    pub fn shutdown(&self) {
        let (tasks, timers) = {
            let mut state = lock(&self.inner.state);
            (
                std::mem::take(&mut state.tasks),
                std::mem::take(&mut state.timers),
            )
        };
        let ready = std::mem::take(&mut *lock(&self.inner.ready.tasks));
        let futures: Vec<_> = tasks
            .values()
            .filter_map(|task| lock(&task.future).take())
            .collect();
        // Dropped outside every lock: a future's drop may call back into the runtime.
        drop(futures);
        drop(ready);
        drop(tasks);
        drop(timers);
    }

    fn count_step(&self) {
        let mut state = lock(&self.inner.state);
        state.steps += 1;
        if state.steps > state.limits.steps {
            let (steps, now, tasks) = (state.limits.steps, state.now, state.tasks.len());
            drop(state);
            panic!(
                "SimRuntime: step limit of {steps} polls reached at virtual time {now:?} \
                 ({tasks} tasks alive): a task is probably spinning"
            );
        }
    }

    fn run(&self, task: Arc<Task>) {
        task.queued.store(false, Ordering::SeqCst);
        let finished = {
            let mut slot = lock(&task.future);
            let Some(future) = slot.as_mut() else {
                return;
            };
            let waker = waker_ref(&task);
            let mut cx = Context::from_waker(&waker);
            match future.as_mut().poll(&mut cx) {
                Poll::Ready(()) => slot.take(),
                Poll::Pending => None,
            }
        };
        if let Some(future) = finished {
            lock(&self.inner.state).tasks.remove(&task.id);
            // Outside every lock: its drop may wake or spawn.
            drop(future);
        }
    }

    /// Moves the clock to the earliest timer and wakes every timer due then.
    fn fire_next_timers(&self) {
        let due = {
            let mut state = lock(&self.inner.state);
            let Some(&(at, _)) = state.timers.keys().next() else {
                let (now, tasks) = (state.now, state.tasks.len());
                drop(state);
                panic!(
                    "SimRuntime: deadlock at virtual time {now:?}: the awaited future is not \
                     done, no task is ready and no timer is pending ({tasks} tasks alive)"
                );
            };
            if at > state.limits.virtual_time {
                let (limit, now) = (state.limits.virtual_time, state.now);
                drop(state);
                panic!(
                    "SimRuntime: virtual time limit of {limit:?} reached (now {now:?}, next \
                     timer at {at:?}) and the awaited future is not done"
                );
            }
            state.now = state.now.max(at);
            let later = state.timers.split_off(&(at, u64::MAX));
            std::mem::replace(&mut state.timers, later)
        };
        for waker in due.into_values().flatten() {
            waker.wake();
        }
    }
}

impl Runtime for SimRuntime {
    fn spawn(&self, future: BoxFuture<'static, ()>) {
        let task = {
            let mut state = lock(&self.inner.state);
            let id = state.next_task;
            state.next_task += 1;
            state.spawned += 1;
            let task = Arc::new(Task {
                id,
                future: Mutex::new(Some(future)),
                queued: AtomicBool::new(false),
                ready: Arc::downgrade(&self.inner.ready),
            });
            state.tasks.insert(id, task.clone());
            task
        };
        ArcWake::wake(task);
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        let deadline = lock(&self.inner.state).now.saturating_add(duration);
        Box::pin(Sleep {
            inner: self.inner.clone(),
            deadline,
            key: None,
        })
    }

    fn now(&self) -> Instant {
        self.inner.base + self.elapsed()
    }
}

/// A timer on the virtual clock.
struct Sleep {
    inner: Arc<Inner>,
    deadline: Duration,
    key: Option<(Duration, u64)>,
}

impl Future for Sleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let (poll, old) = {
            let mut state = lock(&this.inner.state);
            if state.now >= this.deadline {
                let old = this.key.take().and_then(|key| state.timers.remove(&key));
                (Poll::Ready(()), old.flatten())
            } else {
                let key = *this.key.get_or_insert_with(|| {
                    state.next_timer += 1;
                    (this.deadline, state.next_timer)
                });
                let old = state.timers.insert(key, Some(cx.waker().clone()));
                (Poll::Pending, old.flatten())
            }
        };
        // A replaced waker is dropped outside the lock.
        drop(old);
        poll
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let old = lock(&self.inner.state).timers.remove(&key);
            drop(old);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::channel::oneshot;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn timers_fire_in_deadline_then_registration_order() {
        let rt = SimRuntime::new();
        let order = Arc::new(Mutex::new(Vec::new()));
        for (name, at) in [("c", 3), ("a", 1), ("b1", 2), ("b2", 2), ("zero", 0)] {
            let rt2 = rt.clone();
            let order = order.clone();
            rt.spawn(Box::pin(async move {
                rt2.sleep(secs(at)).await;
                lock(&order).push((name, rt2.elapsed()));
            }));
        }
        rt.advance(secs(10));
        assert_eq!(
            *lock(&order),
            [
                ("zero", secs(0)),
                ("a", secs(1)),
                ("b1", secs(2)),
                ("b2", secs(2)),
                ("c", secs(3))
            ]
        );
        assert_eq!(rt.elapsed(), secs(10));
        assert_eq!(rt.live_tasks(), 0);
        assert_eq!(rt.pending_timers(), 0);
    }

    #[test]
    fn a_dropped_sleep_leaves_no_timer() {
        let rt = SimRuntime::new();
        let sleep = rt.sleep(secs(5));
        rt.block_on(async {
            let mut sleep = sleep;
            assert!(futures::poll!(&mut sleep).is_pending());
        });
        assert_eq!(rt.pending_timers(), 0, "dropped with the future");
        let long = rt.sleep(secs(100));
        let short = rt.sleep(secs(1));
        let won = rt.block_on(async {
            match futures::future::select(long, short).await {
                futures::future::Either::Left(_) => "long",
                futures::future::Either::Right(_) => "short",
            }
        });
        assert_eq!(won, "short");
        assert_eq!(rt.elapsed(), secs(1));
        assert_eq!(rt.pending_timers(), 0);
    }

    #[test]
    #[should_panic(expected = "deadlock")]
    fn a_deadlock_fails_with_a_message() {
        let rt = SimRuntime::new();
        let (_keep, never) = oneshot::channel::<()>();
        let _ = rt.block_on(never);
    }

    #[test]
    #[should_panic(expected = "virtual time limit")]
    fn the_virtual_time_bound_fails_fast() {
        let rt = SimRuntime::with_limits(Limits {
            virtual_time: secs(60),
            ..Limits::default()
        });
        rt.advance(secs(61));
    }

    #[test]
    #[should_panic(expected = "step limit")]
    fn a_spinning_task_hits_the_step_bound() {
        let rt = SimRuntime::with_limits(Limits {
            steps: 1_000,
            ..Limits::default()
        });
        rt.spawn(Box::pin(futures::future::poll_fn(|cx| {
            cx.waker().wake_by_ref();
            Poll::<()>::Pending
        })));
        rt.advance(secs(1));
    }

    #[test]
    fn tasks_wake_each_other_fifo_and_the_result_comes_back() {
        let rt = SimRuntime::new();
        let (tx, rx) = oneshot::channel();
        let rt2 = rt.clone();
        rt.spawn(Box::pin(async move {
            rt2.sleep(secs(3)).await;
            let _ = tx.send(rt2.elapsed());
        }));
        assert_eq!(rt.block_on(rx), Ok(secs(3)));
        rt.run_ready();
        assert_eq!(rt.live_tasks(), 0);
    }

    #[test]
    fn the_same_program_gives_the_same_trace() {
        fn trace() -> Vec<(u64, Duration)> {
            let rt = SimRuntime::new();
            let log = Arc::new(Mutex::new(Vec::new()));
            for id in 0..20u64 {
                let rt2 = rt.clone();
                let log = log.clone();
                rt.spawn(Box::pin(async move {
                    for round in 0..5 {
                        rt2.sleep(Duration::from_millis((id * 7 + round * 13) % 50))
                            .await;
                        lock(&log).push((id, rt2.elapsed()));
                    }
                }));
            }
            rt.advance(secs(5));
            let log = lock(&log).clone();
            log
        }
        assert_eq!(trace(), trace());
    }

    #[test]
    fn shutdown_drops_waiting_tasks() {
        let rt = SimRuntime::new();
        let (tx, rx) = oneshot::channel::<()>();
        let rt2 = rt.clone();
        rt.spawn(Box::pin(async move {
            let _tx = tx;
            rt2.sleep(secs(1_000)).await;
        }));
        rt.run_ready();
        assert_eq!((rt.live_tasks(), rt.pending_timers()), (1, 1));
        rt.shutdown();
        assert_eq!((rt.live_tasks(), rt.pending_timers()), (0, 0));
        assert!(rt.block_on(rx).is_err(), "the task and its sender are gone");
    }
}
