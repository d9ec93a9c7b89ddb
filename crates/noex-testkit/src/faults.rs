//! Shared state between the handle and the server thread: the core behind a mutex, the
//! fault-injection switches (stall, delay, handshake fault) and the socket counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;

use crate::sockets::SocketCounts;
use crate::state::Core;

/// How the server answers the WebSocket handshake of a newly accepted TCP connection.
///
/// Set with [`TestServer::set_handshake_fault`](crate::TestServer::set_handshake_fault);
/// it applies to connections accepted afterwards.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum HandshakeFault {
    /// Answer the handshake at once, as a real server does.
    #[default]
    Normal,
    /// Accept the TCP connection and never answer the handshake. The socket is held open
    /// until the client closes it (the server notices at once and releases it) or the
    /// server stops or restarts.
    Stall,
    /// Wait this long, then answer the handshake normally. A client that closes its
    /// socket meanwhile has it released at once.
    Delay(Duration),
    /// Accept the TCP connection and reset it at once (`SO_LINGER` 0, then close), so the
    /// client sees a connection reset.
    Reset,
}

/// State shared by the handle, the accept loop and every connection task.
#[derive(Debug)]
pub(crate) struct Shared {
    core: Mutex<Core>,
    delay_ms: AtomicU64,
    stall: watch::Sender<bool>,
    handshake: Mutex<HandshakeFault>,
    /// True while stop or restart closes the connections.
    stopping: watch::Sender<bool>,
    pub(crate) sockets: SocketCounts,
}

impl Shared {
    pub(crate) fn new(core: Core) -> Shared {
        Shared {
            core: Mutex::new(core),
            delay_ms: AtomicU64::new(0),
            stall: watch::Sender::new(false),
            handshake: Mutex::new(HandshakeFault::Normal),
            stopping: watch::Sender::new(false),
            sockets: SocketCounts::default(),
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

    pub(crate) fn set_handshake_fault(&self, fault: HandshakeFault) {
        *self.handshake.lock().unwrap_or_else(|e| e.into_inner()) = fault;
    }

    pub(crate) fn handshake_fault(&self) -> HandshakeFault {
        self.handshake
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn set_stopping(&self, stopping: bool) {
        self.stopping.send_replace(stopping);
    }

    /// Resolves once stop or restart is closing the connections.
    pub(crate) async fn stopping(&self) {
        let mut rx = self.stopping.subscribe();
        // An error means the sender is gone: stopping too.
        let _ = rx.wait_for(|s| *s).await;
    }
}
