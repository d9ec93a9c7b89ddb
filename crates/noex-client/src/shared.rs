//! State shared between the client handles and the driver: the connection state and the
//! lifecycle listeners.

use crate::slot::{slot, BufferPolicy, SlotReceiver, SlotSender};
use noex_proto::{ConnectionState, LifecycleEvent};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

type Callback = Arc<dyn Fn(&LifecycleEvent) + Send + Sync>;

#[derive(Default)]
struct Listeners {
    next: u64,
    callbacks: Vec<(u64, Callback)>,
    streams: Vec<SlotSender<LifecycleEvent>>,
}

pub(crate) struct Shared {
    state: Mutex<ConnectionState>,
    listeners: Mutex<Listeners>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub(crate) fn new() -> Arc<Shared> {
        Arc::new(Shared {
            state: Mutex::new(ConnectionState::Disconnected),
            listeners: Mutex::new(Listeners::default()),
        })
    }

    pub(crate) fn state(&self) -> ConnectionState {
        *lock(&self.state)
    }

    pub(crate) fn set_state(&self, state: ConnectionState) {
        *lock(&self.state) = state;
    }

    /// Calls every callback and feeds every event stream.
    pub(crate) fn notify(&self, event: &LifecycleEvent) {
        let callbacks: Vec<Callback> = {
            let mut listeners = lock(&self.listeners);
            listeners.streams.retain(|s| !s.is_orphaned());
            for stream in &listeners.streams {
                stream.push(event.clone());
            }
            listeners.callbacks.iter().map(|(_, c)| c.clone()).collect()
        };
        for callback in callbacks {
            callback(event);
        }
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
        lock(&self.listeners).streams.push(tx);
        rx
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
