//! State shared between the client handles and the driver: the connection state, the
//! lifecycle listeners (run isolated: a panicking callback is reported, never fatal), and
//! the requests waiting for a slot.

use crate::slot::{slot, BufferPolicy, SlotReceiver, SlotSender};
use noex_proto::{ConnectionState, CoreError, Counters, LifecycleEvent};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use tracing::error;

type Callback = Arc<dyn Fn(&LifecycleEvent) + Send + Sync>;

#[derive(Default)]
struct Listeners {
    next: u64,
    callbacks: Vec<(u64, Callback)>,
    streams: Vec<SlotSender<LifecycleEvent>>,
}

/// Requests that never reached the core: waiting for a slot under the in-flight cap.
#[derive(Default)]
struct SlotWaits {
    waiting: AtomicU64,
    timed_out: AtomicU64,
    cancelled: AtomicU64,
}

pub(crate) struct Shared {
    state: Mutex<ConnectionState>,
    listeners: Mutex<Listeners>,
    waits: SlotWaits,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A panic's message, when it has one.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

/// The lifecycle event reporting that `callback` panicked, logged as an error.
pub(crate) fn callback_panicked(
    callback: String,
    panic: &(dyn std::any::Any + Send),
) -> LifecycleEvent {
    let message = panic_message(panic);
    error!(%callback, %message, "application callback panicked; carrying on");
    LifecycleEvent::Error(CoreError::CallbackPanicked { callback, message })
}

impl Shared {
    pub(crate) fn new() -> Arc<Shared> {
        Arc::new(Shared {
            state: Mutex::new(ConnectionState::Disconnected),
            listeners: Mutex::new(Listeners::default()),
            waits: SlotWaits::default(),
        })
    }

    pub(crate) fn state(&self) -> ConnectionState {
        *lock(&self.state)
    }

    pub(crate) fn set_state(&self, state: ConnectionState) {
        *lock(&self.state) = state;
    }

    /// Feeds every event stream and calls every callback. A callback that panics is
    /// reported (a `tracing` error and a [`CoreError::CallbackPanicked`] event to the
    /// others); the rest carry on.
    pub(crate) fn notify(&self, event: &LifecycleEvent) {
        let panicked = self.notify_isolated(event);
        for (id, panic) in panicked {
            let report = callback_panicked(format!("lifecycle callback #{id}"), &*panic);
            // A callback that panics on the report too is only logged, not reported again.
            for (id, panic) in self.notify_isolated(&report) {
                let message = panic_message(&*panic);
                error!(id, %message, "lifecycle callback panicked on a panic report");
            }
        }
    }

    fn notify_isolated(&self, event: &LifecycleEvent) -> Vec<(u64, Box<dyn std::any::Any + Send>)> {
        let callbacks: Vec<(u64, Callback)> = {
            let mut listeners = lock(&self.listeners);
            listeners.streams.retain(|s| !s.is_orphaned());
            for stream in &listeners.streams {
                stream.push(event.clone());
            }
            listeners.callbacks.clone()
        };
        let mut panicked = Vec::new();
        for (id, callback) in callbacks {
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| callback(event))) {
                panicked.push((id, panic));
            }
        }
        panicked
    }

    pub(crate) fn add_callback(self: &Arc<Self>, callback: Callback) -> ListenerGuard {
        let mut listeners = lock(&self.listeners);
        let id = listeners.next;
        listeners.next += 1;
        listeners.callbacks.push((id, callback));
        ListenerGuard {
            shared: Arc::downgrade(self),
            id,
        }
    }

    pub(crate) fn add_stream(&self, capacity: usize) -> SlotReceiver<LifecycleEvent> {
        let (tx, rx) = slot(BufferPolicy::Queue(capacity));
        let mut listeners = lock(&self.listeners);
        // Streams dropped since the last event go now: an app that opens and drops event
        // streams while nothing happens holds only the live ones.
        listeners.streams.retain(|s| !s.is_orphaned());
        listeners.streams.push(tx);
        rx
    }

    /// A request starts waiting for a slot; the guard says how the wait ended.
    pub(crate) fn wait_for_slot(self: &Arc<Self>) -> SlotWait {
        self.waits.waiting.fetch_add(1, Ordering::Relaxed);
        SlotWait {
            shared: self.clone(),
            ended: None,
        }
    }

    /// The core's counters plus the requests that never reached it (waiting for a slot,
    /// timed out or dropped while waiting).
    pub(crate) fn with_slot_waits(&self, mut counters: Counters) -> Counters {
        let waiting = self.waits.waiting.load(Ordering::Relaxed);
        let timed_out = self.waits.timed_out.load(Ordering::Relaxed);
        let cancelled = self.waits.cancelled.load(Ordering::Relaxed);
        counters.requests_issued += waiting + timed_out + cancelled;
        counters.requests_pending += waiting;
        counters.requests_timed_out += timed_out;
        counters.requests_cancelled += cancelled;
        counters
    }
}

/// How a wait for a slot ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WaitEnd {
    /// It got a slot: from now on the core counts it.
    Admitted,
    /// Its deadline passed first.
    TimedOut,
}

/// A request waiting for a slot; dropped without an end, it was cancelled.
pub(crate) struct SlotWait {
    shared: Arc<Shared>,
    ended: Option<WaitEnd>,
}

impl SlotWait {
    pub(crate) fn end(mut self, how: WaitEnd) {
        self.ended = Some(how);
    }
}

impl Drop for SlotWait {
    fn drop(&mut self) {
        let waits = &self.shared.waits;
        waits.waiting.fetch_sub(1, Ordering::Relaxed);
        match self.ended {
            Some(WaitEnd::Admitted) => {}
            Some(WaitEnd::TimedOut) => {
                waits.timed_out.fetch_add(1, Ordering::Relaxed);
            }
            None => {
                waits.cancelled.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Keeps a lifecycle callback registered; dropping it unregisters the callback.
#[must_use = "the callback is unregistered when the guard is dropped"]
pub struct ListenerGuard {
    shared: Weak<Shared>,
    id: u64,
}

impl Drop for ListenerGuard {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.upgrade() {
            lock(&shared.listeners)
                .callbacks
                .retain(|(id, _)| *id != self.id);
        }
    }
}

impl std::fmt::Debug for ListenerGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerGuard")
            .field("id", &self.id)
            .finish()
    }
}
