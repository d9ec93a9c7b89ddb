//! A connection's life: open, welcome, login, restore, ready, loss, backoff, close.

use super::phase::{Link, Phase, Restore, Stage};
use super::{millis, ClientCore, Timer};
use crate::error::RequestError;
use crate::event::{
    ConnectionId, ConnectionState, CoreError, DisconnectReason, Input, LifecycleEvent, Output,
};
use crate::frame::{self, Decoded, FrameError, ServerFrame, SystemEvent};
use crate::subscription_data::SubscriptionData;
use rand_core::Rng;
use std::time::{Duration, Instant};
use tracing::{debug, field, info, info_span, trace, warn};

/// Close codes after which the server must not be contacted again.
const PERMANENT_CLOSE_CODES: [u16; 3] = [1003, 4002, 4003];

/// The close code the client uses when it gives up on a connection itself.
const CLIENT_ABORT_CODE: u16 = 4000;

impl ClientCore {
    /// Starts connecting (or does nothing when already connecting, connected, or closed).
    pub fn connect(&mut self, now: Instant) {
        match self.phase {
            Phase::Idle | Phase::Disconnected => self.open(now, 0),
            Phase::Backoff { attempt } => self.open(now, attempt),
            Phase::Linked(_) | Phase::Closed => {}
        }
    }

    /// Closes on purpose: every pending request fails with [`RequestError::Closed`], every
    /// subscription ends quietly ([`crate::SubscriptionEvent::Ended`]), the connection (if
    /// any) is closed with 1000, and the core stops for good. Nothing comes out of it
    /// afterwards.
    pub fn close(&mut self, _now: Instant) {
        if self.is_closed() {
            return;
        }
        let link = self.phase.take_link(Phase::Closed);
        self.phase = Phase::Closed;
        if let Some(link) = &link {
            self.outputs.push_back(Output::Close {
                connection: link.id,
                code: 1000,
                reason: "client closed".into(),
            });
        }
        self.fail_all_pending(link.as_ref(), |delivery| RequestError::Closed { delivery });
        self.end_all_subscriptions();
        self.subscriptions_link_lost(None);
        self.session_link_lost();
        self.timers = Default::default();
        self.announce_state();
        self.lifecycle(LifecycleEvent::Disconnected(DisconnectReason::ClientClosed));
    }

    /// Opens a new link; `attempt` failed attempts in a row came before it.
    fn open(&mut self, now: Instant, attempt: u32) {
        let id = ConnectionId(self.next_connection);
        self.next_connection += 1;
        self.timers.stop(Timer::Backoff);
        self.timers.set(
            Timer::Connect,
            Some(super::later(now, self.config.connect_timeout)),
        );
        self.timers.stop(Timer::Liveness);
        let span = info_span!(
            "noex_connection",
            connection = id.0,
            url = %crate::secret::RedactedUrl(&self.config.url),
            attempt,
        );
        debug!(parent: &span, "opening connection");
        self.phase = Phase::Linked(Link::new(id, attempt, now, self.next_seq, span));
        self.outputs.push_back(Output::Open {
            connection: id,
            url: self.config.url.clone(),
        });
        self.announce_state();
    }

    /// Feeds something the transport observed on `connection`.
    pub fn handle_input(&mut self, now: Instant, connection: ConnectionId, input: Input<'_>) {
        let Some(link) = self.phase.link_mut().filter(|l| l.id == connection) else {
            trace!(
                connection = connection.0,
                "input for a connection that is not current"
            );
            return;
        };
        let span = link.span.clone();
        let _entered = span.enter();
        match input {
            Input::Opened => {
                if matches!(link.stage, Stage::Opening) {
                    link.opened_at = Some(now);
                    link.last_rx = now;
                    link.stage = Stage::AwaitingWelcome;
                    self.arm_liveness();
                }
            }
            Input::ConnectFailed { reason } => {
                self.connection_lost(
                    now,
                    DisconnectReason::ConnectFailed(reason.to_owned()),
                    None,
                );
            }
            Input::Written { seq } => {
                link.written_upto = Some(link.written_upto.map_or(seq, |w| w.max(seq)));
            }
            Input::Closed { code, reason } => {
                let reason = DisconnectReason::Closed {
                    code,
                    reason: reason.to_owned(),
                };
                self.connection_lost(now, reason, code);
            }
            Input::Binary(bytes) => {
                link.last_rx = now;
                self.counters.frames_in += 1;
                self.arm_liveness();
                self.protocol_error(FrameError::Binary(bytes.len()));
            }
            Input::Frame(text) => {
                link.last_rx = now;
                self.counters.frames_in += 1;
                self.arm_liveness();
                let expect = |id| self.expected_answer(id);
                match frame::decode_expecting(text, expect) {
                    Ok(Decoded::Frame(frame)) => self.handle_frame(now, frame),
                    Ok(Decoded::Subscribed { id, answer }) => {
                        self.handle_subscribe_answer(now, id, answer)
                    }
                    Ok(Decoded::Pushed {
                        subscription_id,
                        data,
                    }) => self.handle_push(
                        subscription_id.to_owned(),
                        SubscriptionData::unchecked(data),
                    ),
                    Err(error) => self.protocol_error(error),
                }
            }
        }
    }

    fn protocol_error(&mut self, error: FrameError) {
        warn!(%error, "frame from the server could not be understood");
        self.counters.protocol_errors += 1;
        self.lifecycle(LifecycleEvent::Error(CoreError::Protocol(error)));
    }

    fn handle_frame(&mut self, now: Instant, frame: ServerFrame) {
        match frame {
            ServerFrame::Result { id, data } => self.handle_answer(now, id, Ok(data)),
            ServerFrame::Error { id: 0, error } => {
                self.lifecycle(LifecycleEvent::Error(CoreError::Server(error)));
            }
            ServerFrame::Error { id, error } => {
                self.handle_answer(now, id, Err(RequestError::Server(error)))
            }
            ServerFrame::Push {
                subscription_id,
                data,
                ..
            } => self.handle_push(subscription_id, data.into()),
            ServerFrame::Ping { timestamp } => self.handle_ping(now, &timestamp),
            ServerFrame::Welcome(info) => {
                let Some(link) = self
                    .link_mut()
                    .filter(|l| matches!(l.stage, Stage::AwaitingWelcome))
                else {
                    self.counters.protocol_errors += 1;
                    self.lifecycle(LifecycleEvent::Error(CoreError::Unexpected("welcome")));
                    return;
                };
                link.server_clock = info.server_time.map(|ms| (now, ms));
                self.timers.stop(Timer::Connect);
                let requires_auth = info.requires_auth;
                self.lifecycle(LifecycleEvent::Welcome(info));
                if requires_auth {
                    self.begin_login(now);
                } else {
                    self.begin_restore(now);
                }
            }
            ServerFrame::System(SystemEvent::Shutdown { grace_period }) => {
                self.lifecycle(LifecycleEvent::ServerShutdown { grace_period });
            }
            ServerFrame::System(SystemEvent::SessionRevoked { reason }) => {
                self.session_revoked();
                self.lifecycle(LifecycleEvent::SessionRevoked { reason });
            }
            ServerFrame::System(SystemEvent::Other { event }) => {
                debug!(%event, "unknown system event ignored");
            }
        }
    }

    /// Advances time: deadlines, connect timeout, backoff, liveness, session renewal.
    pub fn handle_timeout(&mut self, now: Instant) {
        let span = self.connection_span();
        let _entered = span.enter();
        self.expire_requests(now);
        while let Some(timer) = self.timers.take_due(now) {
            match timer {
                Timer::Connect => {
                    self.abort_link(now, DisconnectReason::ConnectTimeout, "connect_timeout")
                }
                Timer::Liveness => {
                    self.liveness_lost();
                    self.abort_link(now, DisconnectReason::LivenessTimeout, "liveness_timeout")
                }
                Timer::Backoff => {
                    if let Phase::Backoff { attempt } = self.phase {
                        self.open(now, attempt);
                    }
                }
                Timer::SessionRenew => self.renew_session(now),
                Timer::TokenFetch => self.token_fetch_timed_out(now),
            }
        }
    }

    /// Closes the current connection from the client's side and handles the loss.
    pub(super) fn abort_link(&mut self, now: Instant, reason: DisconnectReason, text: &str) {
        self.abort_link_with(now, reason, CLIENT_ABORT_CODE, text);
    }

    /// Closes the current connection with `code` and handles the loss.
    pub(super) fn abort_link_with(
        &mut self,
        now: Instant,
        reason: DisconnectReason,
        code: u16,
        text: &str,
    ) {
        if let Some(link) = self.link() {
            self.outputs.push_back(Output::Close {
                connection: link.id,
                code,
                reason: text.to_owned(),
            });
        }
        self.connection_lost(now, reason, None);
    }

    /// The current connection is gone: settle requests and subscriptions, then back off,
    /// or stop when the loss is permanent.
    pub(super) fn connection_lost(
        &mut self,
        now: Instant,
        reason: DisconnectReason,
        code: Option<u16>,
    ) {
        let Some(link) = self.phase.take_link(Phase::Disconnected) else {
            return;
        };
        let permanent_code = code.is_some_and(|c| PERMANENT_CLOSE_CODES.contains(&c));
        let refused = matches!(
            reason,
            DisconnectReason::AuthRejected { .. } | DisconnectReason::SessionExpired { .. }
        );
        let first_attempt_failed = !self.ever_connected && !self.config.retry_initial_connect;
        let retries_left = self
            .config
            .backoff
            .max_retries
            .is_none_or(|max| link.attempt < max);
        let will_reconnect = self.config.reconnect
            && !permanent_code
            && !refused
            && !first_attempt_failed
            && retries_left;
        debug!(
            connection = link.id.0,
            %reason,
            will_reconnect,
            "connection lost"
        );
        if let Stage::Restoring(Some(restore)) = &link.stage {
            debug!(
                parent: &restore.span,
                subscriptions = restore.subscriptions,
                elapsed_ms = millis(now.saturating_duration_since(restore.started)),
                "restore abandoned: the connection was lost"
            );
        }

        self.timers.stop(Timer::Connect);
        self.timers.stop(Timer::Liveness);
        self.settle_pending_on_loss(&link, will_reconnect);
        let opened = link.opened_at.map(|_| link.last_rx);
        self.subscriptions_link_lost(opened);
        self.session_link_lost();

        // The state first, then the events that announce it.
        if will_reconnect {
            let attempt = link.attempt + 1;
            let delay = self.backoff_delay(attempt);
            self.phase = Phase::Backoff { attempt };
            self.timers
                .set(Timer::Backoff, Some(super::later(now, delay)));
            info!(
                connection = link.id.0,
                attempt,
                delay_ms = millis(delay),
                %reason,
                "reconnecting"
            );
            self.announce_state();
            self.lifecycle(LifecycleEvent::Disconnected(reason));
            self.lifecycle(LifecycleEvent::Reconnecting { attempt, delay });
        } else {
            let why = if !self.config.reconnect {
                "reconnect is off"
            } else if permanent_code {
                "permanent close code"
            } else if refused {
                "login refused"
            } else if first_attempt_failed {
                "first connection failed (retry_initial_connect is off)"
            } else {
                "reconnect attempts exhausted"
            };
            info!(
                connection = link.id.0,
                attempts = link.attempt,
                %reason,
                why,
                "not reconnecting"
            );
            // Attempts run out: that is why the client gives up, with the last one's reason.
            let reason = if self.config.reconnect && !retries_left {
                DisconnectReason::RetriesExhausted {
                    attempts: link.attempt,
                    last: Box::new(reason),
                }
            } else {
                reason
            };
            self.phase = Phase::Disconnected;
            self.announce_state();
            self.lifecycle(LifecycleEvent::Disconnected(reason.clone()));
            self.fail_queued();
            self.fail_all_subscriptions(&RequestError::GaveUp(reason));
        }
    }

    fn backoff_delay(&mut self, attempt: u32) -> Duration {
        let base = self.config.backoff.base_delay(attempt);
        let jitter_max = self.config.backoff.jitter.as_millis().min(u64::MAX as u128) as u64;
        // Uniform within a bias of jitter / 2^64: nothing a backoff can notice.
        let jitter = match jitter_max {
            0 => 0,
            u64::MAX => self.rng.next_u64(),
            max => self.rng.next_u64() % (max + 1),
        };
        base + Duration::from_millis(jitter)
    }

    /// Makes every subscription (again), all at once; ready when all have answered.
    pub(super) fn begin_restore(&mut self, now: Instant) {
        let subs = self.live_subscriptions();
        // A first connection only makes the subscriptions asked for while connecting.
        let restore = (self.ever_connected && !subs.is_empty()).then(|| {
            let parent = self.connection_span();
            let span = info_span!(
                parent: &parent,
                "noex_restore",
                subscriptions = subs.len(),
                elapsed_ms = field::Empty,
            );
            debug!(parent: &span, subscriptions = subs.len(), "restoring subscriptions");
            Restore {
                span,
                started: now,
                subscriptions: subs.len(),
            }
        });
        if let Some(link) = self.link_mut() {
            link.stage = Stage::Restoring(restore);
        }
        for sub in subs {
            self.send_subscribe(now, sub, true);
        }
        if self.subs.restores_outstanding() == 0 {
            self.become_ready(now);
        }
    }

    pub(super) fn become_ready(&mut self, now: Instant) {
        let Some(link) = self.link_mut() else { return };
        if let Stage::Restoring(Some(restore)) = std::mem::replace(&mut link.stage, Stage::Ready) {
            let elapsed_ms = millis(now.saturating_duration_since(restore.started));
            restore.span.record("elapsed_ms", elapsed_ms);
            info!(
                parent: &restore.span,
                subscriptions = restore.subscriptions,
                elapsed_ms,
                "subscriptions restored"
            );
        }
        link.attempt = 0;
        self.announce_state();
        if self.ever_connected {
            self.counters.reconnects += 1;
            self.lifecycle(LifecycleEvent::Reconnected);
        } else {
            self.lifecycle(LifecycleEvent::Connected);
        }
        self.ever_connected = true;
        self.flush_outbox();
    }

    /// Whether the state machine says the caller's connection is up.
    #[doc(hidden)]
    pub fn is_connected(&self) -> bool {
        self.state() == ConnectionState::Connected
    }
}
