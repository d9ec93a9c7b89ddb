//! Request rate limiting: the sliding-window log of `@hamicek/noex`'s `RateLimiter`, per
//! key (the session's user id, else the remote address).

use std::collections::{HashMap, VecDeque};

use crate::config::RateLimit;

/// Keys tracked before idle ones are dropped (keeps memory bounded).
const MAX_KEYS: usize = 10_000;

/// The limiter's state.
#[derive(Debug, Clone)]
pub(crate) struct RateLimiter {
    cfg: RateLimit,
    /// Per key: timestamps (ms) of the requests allowed in the current window, oldest
    /// first; never more than `max_requests`.
    entries: HashMap<String, VecDeque<i64>>,
}

impl RateLimiter {
    pub(crate) fn new(cfg: RateLimit) -> Self {
        RateLimiter {
            cfg,
            entries: HashMap::new(),
        }
    }

    /// Count one request of `key` at `now`; `Err(retry_after_ms)` when over the limit.
    pub(crate) fn consume(&mut self, key: &str, now: i64) -> Result<(), i64> {
        let window = i64::try_from(self.cfg.window_ms).unwrap_or(i64::MAX);
        let cutoff = now.saturating_sub(window);
        if self.entries.len() >= MAX_KEYS && !self.entries.contains_key(key) {
            self.entries
                .retain(|_, ts| ts.back().is_some_and(|t| *t > cutoff));
            if self.entries.len() >= MAX_KEYS {
                // Still full of active keys: forget one (bounded memory beats precision).
                if let Some(k) = self.entries.keys().next().cloned() {
                    self.entries.remove(&k);
                }
            }
        }
        let ts = self.entries.entry(key.to_string()).or_default();
        while ts.front().is_some_and(|t| *t <= cutoff) {
            ts.pop_front();
        }
        let max = usize::try_from(self.cfg.max_requests).unwrap_or(usize::MAX);
        if ts.len() < max {
            ts.push_back(now);
            return Ok(());
        }
        let retry = ts
            .front()
            .map_or(0, |oldest| (oldest.saturating_add(window) - now).max(0));
        Err(retry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliding_window_with_retry_after() {
        let mut l = RateLimiter::new(RateLimit::new(2, 1000));
        assert_eq!(l.consume("a", 0), Ok(()));
        assert_eq!(l.consume("a", 100), Ok(()));
        assert_eq!(l.consume("a", 400), Err(600));
        assert_eq!(l.consume("b", 400), Ok(()));
        // The first request leaves the window at 1000.
        assert_eq!(l.consume("a", 1000), Ok(()));
        assert_eq!(l.consume("a", 1001), Err(99));
    }

    #[test]
    fn zero_requests_always_limited() {
        let mut l = RateLimiter::new(RateLimit::new(0, 1000));
        assert_eq!(l.consume("a", 5), Err(0));
    }
}
