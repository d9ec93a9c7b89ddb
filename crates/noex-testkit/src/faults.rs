//! Shared state between the handle and the server thread: the core behind a mutex and the
//! fault-injection switches (stall, delay).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;

use crate::core::Core;

/// State shared by the handle, the accept loop and every connection task.
#[derive(Debug)]
pub(crate) struct Shared {
    core: Mutex<Core>,
    delay_ms: AtomicU64,
    stall: watch::Sender<bool>,
}

impl Shared {
    pub(crate) fn new(core: Core) -> Shared {
        Shared {
            core: Mutex::new(core),
            delay_ms: AtomicU64::new(0),
            stall: watch::Sender::new(false),
        }
    }

    /// Lock the core. A poisoned lock is recovered: the state is plain data.
    pub(crate) fn core(&self) -> MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn set_delay(&self, d: Duration) {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        self.delay_ms.store(ms, Ordering::SeqCst);
    }

    pub(crate) fn delay(&self) -> Duration {
        Duration::from_millis(self.delay_ms.load(Ordering::SeqCst))
    }

    pub(crate) fn set_stalled(&self, stalled: bool) {
        self.stall.send_replace(stalled);
    }

    pub(crate) fn stall_watch(&self) -> watch::Receiver<bool> {
        self.stall.subscribe()
    }
}
