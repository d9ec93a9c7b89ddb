//! The server's time source: the OS clock for the socket server, or a time the caller
//! drives (epoch milliseconds) for the in-memory server. Every timestamp the server
//! writes (records, events, facts, sessions, pings, `serverTime`) and every expiry it
//! checks reads this clock.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// Milliseconds since the Unix epoch by the OS clock.
pub(crate) fn system_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A clock: the OS clock, or a manual one (shared by the server's engines, moved forward
/// only by its owner). Cloning shares the time.
#[derive(Debug, Clone, Default)]
pub(crate) struct Clock {
    manual: Option<Arc<AtomicI64>>,
}

impl Clock {
    /// The OS clock.
    pub(crate) fn system() -> Clock {
        Clock::default()
    }

    /// A manual clock standing at `start_ms`.
    pub(crate) fn manual(start_ms: i64) -> Clock {
        Clock {
            manual: Some(Arc::new(AtomicI64::new(start_ms))),
        }
    }

    /// The time now, in milliseconds since the Unix epoch.
    pub(crate) fn now_ms(&self) -> i64 {
        match &self.manual {
            Some(t) => t.load(Ordering::SeqCst),
            None => system_now_ms(),
        }
    }

    /// Move a manual clock to `now_ms`; a time before the clock's is ignored (the clock
    /// never goes backwards). Returns the clock's time afterwards. The OS clock is not
    /// moved.
    pub(crate) fn advance_to(&self, now_ms: i64) -> i64 {
        match &self.manual {
            Some(t) => t.fetch_max(now_ms, Ordering::SeqCst).max(now_ms),
            None => system_now_ms(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_never_goes_backwards_and_is_shared() {
        let c = Clock::manual(1_000);
        let shared = c.clone();
        assert_eq!(c.now_ms(), 1_000);
        assert_eq!(c.advance_to(1_500), 1_500);
        assert_eq!(shared.now_ms(), 1_500);
        assert_eq!(c.advance_to(1_200), 1_500);
        assert_eq!(shared.now_ms(), 1_500);
    }

    #[test]
    fn system_clock_reads_the_os_time() {
        let before = system_now_ms();
        let c = Clock::system();
        let now = c.now_ms();
        assert!(now >= before && now <= system_now_ms());
        assert!(c.advance_to(0) >= now);
    }
}
