//! Counting the TCP sockets the server holds: accepted since start, and open right now.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// The socket counters, shared by the accept loop and the handle.
#[derive(Debug, Default)]
pub(crate) struct SocketCounts {
    accepted: AtomicU64,
    open: Arc<AtomicUsize>,
}

impl SocketCounts {
    /// Count a socket just accepted; it stays open (counted) until the guard is dropped.
    pub(crate) fn accepted_one(&self) -> OpenSocket {
        self.accepted.fetch_add(1, Ordering::SeqCst);
        self.open.fetch_add(1, Ordering::SeqCst);
        OpenSocket(self.open.clone())
    }

    /// Sockets accepted since start.
    pub(crate) fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Sockets accepted and not yet released.
    pub(crate) fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }
}

/// One open socket; dropping it (after the socket itself) takes it off the count.
#[derive(Debug)]
pub(crate) struct OpenSocket(Arc<AtomicUsize>);

impl Drop for OpenSocket {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
