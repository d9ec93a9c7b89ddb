//! The network's state: every link with its faults, frames in transit or held, and the
//! routing between the client's halves and the server.

use super::wire::{
    ConnectFault, Direction, Fate, FrameEvent, LinkInfo, NetStats, Transfer, Verdict, Wire,
};
use noex_client::runtime::Incoming;
use noex_testkit::memory::{MemoryOutput, MemoryServer};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::task::Waker;
use std::time::Duration;

pub(super) type Filter = Box<dyn FnMut(&FrameEvent<'_>) -> Verdict + Send>;

/// The time, as the runtime and as the server see it.
#[derive(Clone, Copy)]
pub(super) struct Clock {
    pub(super) now: Duration,
    pub(super) now_ms: i64,
}

/// One link: its history, its faults and the frames waiting for the client.
pub(super) struct Link {
    pub(super) info: LinkInfo,
    pub(super) silent: bool,
    pub(super) delay: Option<Duration>,
    /// Frames waiting for the client's stream.
    pub(super) inbox: VecDeque<Incoming>,
    /// The stream ends once the inbox is read.
    pub(super) ended: bool,
    pub(super) waker: Option<Waker>,
    /// When the last delayed frame each way is due (delays keep a link's order).
    pub(super) last_due_to_server: Duration,
    pub(super) last_due_to_client: Duration,
    pub(super) texts_to_server: u64,
    pub(super) texts_to_client: u64,
}

/// Everything the network holds, under one lock.
pub(super) struct Net {
    pub(super) server: MemoryServer,
    pub(super) links: BTreeMap<u64, Link>,
    pub(super) finished: Vec<LinkInfo>,
    pub(super) silent: bool,
    pub(super) delay: Duration,
    pub(super) stalled: bool,
    pub(super) connect_fault: Option<ConnectFault>,
    pub(super) next_connects: VecDeque<ConnectFault>,
    /// Frames for the server while it is stalled, in order.
    pub(super) held: VecDeque<(u64, Wire)>,
    /// Delayed frames by due time and order of sending.
    pub(super) transit: BTreeMap<(Duration, u64), (u64, Direction, Wire)>,
    pub(super) next_transit: u64,
    pub(super) log: Vec<Transfer>,
    pub(super) recording: bool,
    pub(super) filter: Option<Filter>,
    pub(super) pump: Option<Waker>,
    pub(super) stats: NetStats,
    /// Connections the test drives by hand: their output, kept for it.
    pub(super) raw: BTreeMap<u64, VecDeque<MemoryOutput>>,
}

/// A duration in whole milliseconds (saturating).
pub(super) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Milliseconds as a duration (zero when negative).
pub(super) fn from_millis(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

impl Net {
    /// A network state onto `server`, without faults, recording.
    pub(super) fn new(server: MemoryServer) -> Net {
        Net {
            server,
            links: BTreeMap::new(),
            finished: Vec::new(),
            silent: false,
            delay: Duration::ZERO,
            stalled: false,
            connect_fault: None,
            next_connects: VecDeque::new(),
            held: VecDeque::new(),
            transit: BTreeMap::new(),
            next_transit: 0,
            log: Vec::new(),
            recording: true,
            filter: None,
            pump: None,
            stats: NetStats::default(),
            raw: BTreeMap::new(),
        }
    }

    pub(super) fn record(
        &mut self,
        at: Duration,
        conn: u64,
        direction: Direction,
        wire: &Wire,
        fate: Fate,
    ) {
        if self.recording {
            self.log.push(Transfer {
                at,
                conn,
                direction,
                wire: wire.clone(),
                fate,
            });
        }
    }

    pub(super) fn silence(&mut self, conn: u64, clock: Clock) {
        if let Some(link) = self.links.get_mut(&conn) {
            if !link.silent {
                link.silent = true;
                link.info.silenced_at = Some(clock.now);
            }
        }
    }

    /// Whether frames on `link` are swallowed.
    pub(super) fn is_silent(&self, conn: u64) -> bool {
        self.silent || self.links.get(&conn).is_some_and(|l| l.silent)
    }

    /// Runs the filter on a text frame.
    pub(super) fn judge(
        &mut self,
        conn: u64,
        direction: Direction,
        text: &str,
        clock: Clock,
    ) -> Verdict {
        let Some(link) = self.links.get_mut(&conn) else {
            return Verdict::Pass;
        };
        let index = match direction {
            Direction::ToServer => &mut link.texts_to_server,
            Direction::ToClient => &mut link.texts_to_client,
        };
        let event = FrameEvent {
            conn,
            direction,
            text,
            index: *index,
            at: clock.now,
        };
        *index += 1;
        match self.filter.as_mut() {
            Some(filter) => filter(&event),
            None => Verdict::Pass,
        }
    }

    /// Whether a frame goes on its way: the filter's verdict on a text frame, then the
    /// link's silence. A frame that does not is recorded as swallowed (or its link dropped),
    /// and a link both ends have let go is forgotten.
    fn travels(&mut self, conn: u64, direction: Direction, wire: &Wire, clock: Clock) -> bool {
        if let Wire::Text(text) = wire {
            match self.judge(conn, direction, text, clock) {
                Verdict::Pass => {}
                Verdict::Swallow => {
                    self.record(clock.now, conn, direction, wire, Fate::Swallowed);
                    return false;
                }
                Verdict::Silence => self.silence(conn, clock),
                Verdict::Drop => {
                    self.network_drop(conn, clock);
                    return false;
                }
            }
        }
        if self.is_silent(conn) {
            self.record(clock.now, conn, direction, wire, Fate::Swallowed);
            self.finish_if_done(conn);
            return false;
        }
        true
    }

    /// A frame the client sent (or its leaving, as `Close`/`End`).
    pub(super) fn client_sent(&mut self, conn: u64, wire: Wire, clock: Clock) {
        if !self.travels(conn, Direction::ToServer, &wire, clock) {
            return;
        }
        let Some(link) = self.links.get_mut(&conn) else {
            return;
        };
        let delay = link.delay.unwrap_or(self.delay);
        if delay.is_zero() && link.last_due_to_server <= clock.now {
            self.deliver_to_server(conn, wire, clock);
        } else {
            let due = (clock.now + delay).max(link.last_due_to_server);
            link.last_due_to_server = due;
            self.schedule(due, conn, Direction::ToServer, wire);
        }
    }

    pub(super) fn schedule(&mut self, due: Duration, conn: u64, direction: Direction, wire: Wire) {
        let n = self.next_transit;
        self.next_transit += 1;
        self.transit.insert((due, n), (conn, direction, wire));
    }

    /// Hands a frame to the server (or keeps it while the server is stalled).
    pub(super) fn deliver_to_server(&mut self, conn: u64, wire: Wire, clock: Clock) {
        if self.stalled {
            self.held.push_back((conn, wire));
            return;
        }
        let Some(link) = self.links.get_mut(&conn) else {
            return;
        };
        if link.info.server_gone.is_some() {
            return;
        }
        match &wire {
            Wire::Text(text) => {
                link.info.last_to_server = Some(clock.now);
                link.info.frames_to_server += 1;
                self.server.receive(conn, clock.now_ms, text);
            }
            Wire::Close { .. } | Wire::End => {
                link.info.server_gone = Some(clock.now);
                self.server.receive_close(conn, clock.now_ms);
            }
        }
        self.record(clock.now, conn, Direction::ToServer, &wire, Fate::Delivered);
        self.finish_if_done(conn);
    }

    /// Moves everything the server sent to its links (nothing while it is stalled).
    pub(super) fn route(&mut self, clock: Clock) {
        if self.stalled {
            return;
        }
        loop {
            let mut pongs = Vec::new();
            while let Some((conn, out)) = self.server.poll_output() {
                if let Some(queue) = self.raw.get_mut(&conn) {
                    match &out {
                        MemoryOutput::Text(text) if is_ping(text) => pongs.push((conn, pong(text))),
                        _ => queue.push_back(out),
                    }
                    continue;
                }
                self.server_sent(conn, out, clock);
            }
            if pongs.is_empty() {
                return;
            }
            for (conn, pong) in pongs {
                self.server.receive(conn, clock.now_ms, &pong);
            }
        }
    }

    /// A frame the server sent on `conn`.
    pub(super) fn server_sent(&mut self, conn: u64, out: MemoryOutput, clock: Clock) {
        let wire = match out {
            MemoryOutput::Text(text) => Wire::Text(text),
            MemoryOutput::Close { code, reason } => Wire::Close { code, reason },
            MemoryOutput::Dropped => Wire::End,
            // A newer server's output this harness does not know: nothing to deliver.
            _ => return,
        };
        let Some(link) = self.links.get_mut(&conn) else {
            return;
        };
        if !matches!(wire, Wire::Text(_)) {
            // The server forgets a connection it closes or drops.
            link.info.server_gone.get_or_insert(clock.now);
        }
        if !self.travels(conn, Direction::ToClient, &wire, clock) {
            return;
        }
        let Some(link) = self.links.get_mut(&conn) else {
            return;
        };
        let delay = link.delay.unwrap_or(self.delay);
        if delay.is_zero() && link.last_due_to_client <= clock.now {
            self.deliver_to_client(conn, wire, clock);
        } else {
            let due = (clock.now + delay).max(link.last_due_to_client);
            link.last_due_to_client = due;
            self.schedule(due, conn, Direction::ToClient, wire);
        }
    }

    /// Queues a frame on the client's stream.
    pub(super) fn deliver_to_client(&mut self, conn: u64, wire: Wire, clock: Clock) {
        let Some(link) = self.links.get_mut(&conn) else {
            return;
        };
        if link.info.client_gone.is_some() || link.ended {
            self.finish_if_done(conn);
            return;
        }
        match &wire {
            Wire::Text(text) => link.inbox.push_back(Incoming::Text(text.clone().into())),
            Wire::Close { code, reason } => {
                link.inbox.push_back(Incoming::Closed {
                    code: Some(*code),
                    reason: reason.clone(),
                });
                link.ended = true;
            }
            Wire::End => link.ended = true,
        }
        if let Some(waker) = link.waker.take() {
            waker.wake();
        }
        self.record(clock.now, conn, Direction::ToClient, &wire, Fate::Delivered);
    }

    /// The network drops `conn`: both ends see it end, without a close frame.
    pub(super) fn network_drop(&mut self, conn: u64, clock: Clock) {
        let Some(link) = self.links.get_mut(&conn) else {
            return;
        };
        if link.info.dropped_at.is_some() {
            return;
        }
        link.info.dropped_at = Some(clock.now);
        link.ended = true;
        if let Some(waker) = link.waker.take() {
            waker.wake();
        }
        if link.info.server_gone.is_none() {
            if self.stalled {
                self.held.push_back((conn, Wire::End));
            } else {
                link.info.server_gone = Some(clock.now);
                self.server.receive_close(conn, clock.now_ms);
            }
        }
        self.finish_if_done(conn);
    }

    /// The client let `conn` go: a close frame, or its stream or sink dropped.
    pub(super) fn client_gone(&mut self, conn: u64, wire: Wire, clock: Clock) {
        let Some(link) = self.links.get_mut(&conn) else {
            return;
        };
        if link.info.client_gone.is_some() {
            return;
        }
        link.info.client_gone = Some(clock.now);
        link.waker = None;
        link.inbox.clear();
        if link.info.server_gone.is_none() {
            self.client_sent(conn, wire, clock);
        }
        self.finish_if_done(conn);
    }

    /// Forgets a link both ends have let go.
    pub(super) fn finish_if_done(&mut self, conn: u64) {
        let done = self
            .links
            .get(&conn)
            .is_some_and(|l| l.info.client_gone.is_some() && l.info.server_gone.is_some());
        if done {
            if let Some(link) = self.links.remove(&conn) {
                self.finished.push(link.info);
            }
        }
    }

    /// Opens a connection for the client.
    pub(super) fn open(&mut self, clock: Clock) -> u64 {
        self.stats.opened += 1;
        let conn = self.server.open(clock.now_ms);
        self.links.insert(
            conn,
            Link {
                info: LinkInfo {
                    conn,
                    opened_at: clock.now,
                    last_to_client: None,
                    last_to_server: None,
                    silenced_at: None,
                    client_gone: None,
                    server_gone: None,
                    dropped_at: None,
                    frames_to_client: 0,
                    frames_to_server: 0,
                },
                silent: false,
                delay: None,
                inbox: VecDeque::new(),
                ended: false,
                waker: None,
                last_due_to_server: Duration::ZERO,
                last_due_to_client: Duration::ZERO,
                texts_to_server: 0,
                texts_to_client: 0,
            },
        );
        if self.silent {
            self.silence(conn, clock);
        }
        conn
    }

    /// Delivers delayed frames that are due and runs the server's timers that are due;
    /// returns when the next of either is due.
    pub(super) fn run_due(&mut self, start_ms: i64, clock: Clock) -> Option<Duration> {
        let mut rounds = 0u32;
        loop {
            while let Some(entry) = self.transit.first_entry() {
                if entry.key().0 > clock.now {
                    break;
                }
                let (conn, direction, wire) = entry.remove();
                match direction {
                    Direction::ToServer => self.deliver_to_server(conn, wire, clock),
                    Direction::ToClient => self.deliver_to_client(conn, wire, clock),
                }
                self.route(clock);
            }
            let server_due = if self.stalled {
                None
            } else {
                self.server.poll_timeout()
            };
            match server_due {
                Some(at) if at <= clock.now_ms && rounds < 16 => {
                    rounds += 1;
                    self.server.handle_timeout(clock.now_ms);
                    self.route(clock);
                }
                _ => break,
            }
        }
        let server_at = if self.stalled {
            None
        } else {
            self.server.poll_timeout().map(|at| {
                // An overdue timer the server did not clear is tried again 1 ms later.
                from_millis(at.saturating_sub(start_ms)).max(clock.now + Duration::from_millis(1))
            })
        };
        let transit_at = self.transit.keys().next().map(|(at, _)| *at);
        [server_at, transit_at].into_iter().flatten().min()
    }
}

fn is_ping(text: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(text).is_ok_and(|v| v["type"] == "ping")
}

fn pong(ping: &str) -> String {
    let timestamp = serde_json::from_str::<serde_json::Value>(ping)
        .map(|v| v["timestamp"].clone())
        .unwrap_or_default();
    serde_json::json!({"type": "pong", "timestamp": timestamp}).to_string()
}

/// A lock that a panic elsewhere does not poison for good (tests go on to report).
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a link's two halves need of the network they belong to.
pub(super) trait NetHandle: Send + Sync + Unpin + 'static {
    /// Runs `f` on the network at the current virtual time, then moves what became due.
    fn with<R>(&self, f: impl FnOnce(&mut Net, Clock) -> R) -> R;
    /// The network's state.
    fn net(&self) -> &Mutex<Net>;
    /// Virtual time since the start.
    fn elapsed(&self) -> Duration;
}
