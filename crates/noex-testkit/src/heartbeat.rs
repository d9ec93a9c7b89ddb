//! One connection's heartbeat, as the real server's `handleHeartbeatTick`: at every tick,
//! a ping sent at the previous tick whose pong has not come closes the connection (4001
//! `heartbeat_timeout`); otherwise a `ping` carrying the time is sent. Shared by the
//! socket connections (ticks from a tokio interval) and the in-memory server (ticks on
//! the caller's time).

/// What a tick does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Beat {
    /// Send `{"type":"ping","timestamp":…}` with this time.
    Ping(i64),
    /// Close the connection with 4001 `heartbeat_timeout`.
    Timeout,
}

/// The time of the last ping sent (0: none yet) and the timestamp carried by the last
/// pong (not its arrival time): a pong whose timestamp is older than the last ping does
/// not count.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Heartbeat {
    last_ping_at: f64,
    last_pong_at: f64,
}

impl Heartbeat {
    /// A tick at `now_ms`.
    pub(crate) fn tick(&mut self, now_ms: i64) -> Beat {
        if self.last_ping_at > 0.0 && self.last_pong_at < self.last_ping_at {
            return Beat::Timeout;
        }
        self.last_ping_at = now_ms as f64;
        Beat::Ping(now_ms)
    }

    /// A pong carrying `timestamp` arrived.
    pub(crate) fn pong(&mut self, timestamp: f64) {
        self.last_pong_at = timestamp;
    }

    /// Forget the last ping (after a stall: the next tick pings again).
    pub(crate) fn forget_ping(&mut self) {
        self.last_ping_at = 0.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unanswered_ping_times_out_at_the_next_tick() {
        let mut h = Heartbeat::default();
        assert_eq!(h.tick(1_000), Beat::Ping(1_000));
        assert_eq!(h.tick(2_000), Beat::Timeout);
    }

    #[test]
    fn a_pong_counts_by_its_timestamp() {
        let mut h = Heartbeat::default();
        assert_eq!(h.tick(1_000), Beat::Ping(1_000));
        h.pong(1_000.0);
        assert_eq!(h.tick(2_000), Beat::Ping(2_000));
        h.pong(1_999.0); // older than the ping
        assert_eq!(h.tick(3_000), Beat::Timeout);
        h.forget_ping();
        assert_eq!(h.tick(4_000), Beat::Ping(4_000));
    }
}
