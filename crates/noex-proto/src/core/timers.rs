//! The connection's timers in one table: the one place both
//! [`ClientCore::poll_timeout`](super::ClientCore::poll_timeout) and
//! [`ClientCore::handle_timeout`](super::ClientCore::handle_timeout) read deadlines from.
//! Request deadlines live with the requests (one per request, ordered).

use std::time::Instant;

/// One timer of the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Timer {
    /// No `welcome` yet: the connect timeout.
    Connect,
    /// The liveness watchdog.
    Liveness,
    /// The wait before the next connection attempt.
    Backoff,
    /// The session's renewal, some time before it expires.
    SessionRenew,
    /// The token provider's deadline for the token asked of it.
    TokenFetch,
}

impl Timer {
    const ALL: [Timer; 5] = [
        Timer::Connect,
        Timer::Liveness,
        Timer::Backoff,
        Timer::SessionRenew,
        Timer::TokenFetch,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// When each timer fires, if it is armed.
#[derive(Debug, Default)]
pub(super) struct TimerTable {
    at: [Option<Instant>; 5],
}

impl TimerTable {
    pub(super) fn set(&mut self, timer: Timer, at: Option<Instant>) {
        self.at[timer.index()] = at;
    }

    pub(super) fn stop(&mut self, timer: Timer) {
        self.set(timer, None);
    }

    pub(super) fn get(&self, timer: Timer) -> Option<Instant> {
        self.at[timer.index()]
    }

    /// The earliest armed timer.
    pub(super) fn next(&self) -> Option<Instant> {
        self.at.iter().flatten().min().copied()
    }

    /// Disarms and returns the first timer (in table order) due at `now`.
    pub(super) fn take_due(&mut self, now: Instant) -> Option<Timer> {
        let due = Timer::ALL
            .into_iter()
            .find(|t| self.get(*t).is_some_and(|at| at <= now))?;
        self.stop(due);
        Some(due)
    }
}
