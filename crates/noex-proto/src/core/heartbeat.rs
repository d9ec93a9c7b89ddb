//! The heartbeat: a pong for every ping, and the liveness watchdog that notices a link
//! that went silent, from the link's first frame on.
//!
//! With [`Liveness::Auto`] the watchdog fires when nothing has arrived for two ping
//! intervals and a quarter (at least `min_margin`): a silent link is noticed within 2.5
//! intervals of its last frame. The interval is the one measured on the link; before the
//! link's first ping it is the one learned on earlier links, and before any link saw a
//! ping, `initial_interval` of [`Liveness::Auto`] (the server's default, 30 s). A server
//! whose interval grew (it was reconfigured) would make a learned interval too short, and
//! every new link would be given up before its first ping: so a link that had its
//! `welcome` and is given up before its first ping doubles the interval assumed for the
//! next one, until a ping is seen again, at most three times (eight times the learned or
//! initial interval: a server pinging up to 18 times less often than it did is learned
//! again, and links that keep dying before their first ping are watched at most eight
//! times more loosely).

use super::{ClientCore, Link, Timer};
use crate::config::Liveness;
use crate::frame;
use crate::payload::Payload;
use std::time::{Duration, Instant};

/// How many times in a row the assumed interval doubles, at most.
const MAX_DOUBLINGS: u32 = 3;

/// The longest interval read from two pings' timestamps (an hour): beyond it (or below a
/// millisecond), the timestamps are not trusted and the arrival times tell the interval.
const MAX_STAMPED_INTERVAL_MS: f64 = 3_600_000.0;

/// A ping's `timestamp` (the server's clock, in ms), when it is a number.
fn server_millis(timestamp: &Payload) -> Option<f64> {
    timestamp
        .deserialize::<f64>()
        .ok()
        .filter(|ms| ms.is_finite())
}

/// Frames waiting for the socket beyond which pongs are coalesced.
const PONG_BACKLOG: u64 = 64;

/// What the heartbeat remembers across links.
#[derive(Debug, Default)]
pub(super) struct Heartbeat {
    /// The ping interval measured last, on any link.
    learned: Option<Duration>,
    /// How many links in a row were given up before their first ping.
    silent_starts: u32,
}

impl ClientCore {
    pub(super) fn handle_ping(&mut self, now: Instant, timestamp: &Payload) {
        let stamp = server_millis(timestamp);
        if let Some(link) = self.link_mut() {
            let previous = link.last_ping.or(link.opened_at);
            let mut measured = None;
            // The time between arrivals tells the interval, or the time since the open
            // before the first ping. Frames a stall held back and let through together
            // arrive close but were sent an interval apart: the server's own times say
            // so (a ping's timestamp, and before the first ping the welcome's
            // `serverTime`), and the larger of the two is taken.
            let sent_before = link
                .last_ping_stamp
                .or(link.server_clock.map(|(_, ms)| ms as f64));
            let by_server = match (sent_before, stamp) {
                (Some(before), Some(now_stamp)) => Some(now_stamp - before)
                    .filter(|d| (1.0..=MAX_STAMPED_INTERVAL_MS).contains(d))
                    .map(|d| Duration::from_micros((d * 1000.0) as u64)),
                _ => None,
            };
            if let Some(previous) = previous {
                let arrived = now.saturating_duration_since(previous);
                let interval = by_server.map_or(arrived, |sent| sent.max(arrived));
                if !interval.is_zero() {
                    link.ping_interval = Some(interval);
                    measured = Some(interval);
                }
            }
            link.last_ping = Some(now);
            link.last_ping_stamp = stamp;
            if let Some(interval) = measured {
                self.heartbeat.learned = Some(interval);
            }
            self.heartbeat.silent_starts = 0;
        }
        self.arm_liveness();
        self.counters.pings += 1;
        // A server that floods pings while not reading must not make the send queue grow:
        // when the socket is backed up and an earlier pong still waits for it, that one
        // answers for both.
        let next_seq = self.next_seq;
        let waiting = self.link().is_some_and(|l| {
            let written = l.written_upto.unwrap_or(0);
            let backlog = next_seq.saturating_sub(written + 1);
            l.last_pong
                .is_some_and(|pong| written < pong && backlog >= PONG_BACKLOG)
        });
        if waiting {
            self.counters.pongs_coalesced += 1;
            return;
        }
        let sent = self.send_frame(frame::encode_pong(timestamp), None);
        if let (Some(link), Some((_, seq))) = (self.link_mut(), sent) {
            link.last_pong = Some(seq);
        }
    }

    /// The ping interval the watchdog assumes for `link`.
    fn assumed_interval(&self, link: &Link, initial: Duration) -> Duration {
        if let Some(interval) = link.ping_interval {
            return interval;
        }
        let base = self.heartbeat.learned.unwrap_or(initial);
        base.saturating_mul(1u32 << self.heartbeat.silent_starts.min(MAX_DOUBLINGS))
    }

    /// When the liveness watchdog fires for `link`, if it is armed.
    pub(super) fn liveness_deadline(&self, link: &Link) -> Option<Instant> {
        link.opened_at?;
        match &self.config.liveness {
            Liveness::Off => None,
            Liveness::Fixed(timeout) => Some(super::later(link.last_rx, *timeout)),
            Liveness::Auto {
                min_margin,
                initial_interval,
            } => {
                let interval = self.assumed_interval(link, *initial_interval);
                let margin = (interval / 4).max(*min_margin);
                Some(super::later(
                    link.last_rx,
                    interval.saturating_mul(2).saturating_add(margin),
                ))
            }
        }
    }

    /// Re-arms the liveness watchdog after something arrived (or the interval changed).
    pub(super) fn arm_liveness(&mut self) {
        let at = self.link().and_then(|l| self.liveness_deadline(l));
        self.timers.set(Timer::Liveness, at);
    }

    /// The watchdog gave up on `link`: when it had its `welcome` but no ping, the next
    /// link assumes a longer interval.
    pub(super) fn liveness_lost(&mut self) {
        let pingless = self
            .link()
            .is_some_and(|l| l.last_ping.is_none() && l.server_clock.is_some());
        if pingless {
            self.heartbeat.silent_starts = self.heartbeat.silent_starts.saturating_add(1);
        }
    }
}
