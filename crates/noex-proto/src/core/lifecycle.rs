//! A connection's life: open, welcome, login, restore, ready, loss, backoff, close.

use super::{ClientCore, Link, LoginStep, Phase, Purpose, Timer};
use crate::config::{Auth, Liveness};
use crate::error::{Delivery, RequestError};
use crate::error_code::ErrorCode;
use crate::event::{
    ConnectionId, ConnectionState, CoreError, DisconnectReason, Input, LifecycleEvent, Output,
};
use crate::frame::{self, Decoded, Expect, FrameError, ServerError, ServerFrame, SystemEvent};
use crate::ops;
use crate::payload::Payload;
use rand::RngExt;
use std::time::{Duration, Instant};
use tracing::{debug, field, info, info_span, trace, warn};

/// Close codes after which the server must not be contacted again.
const PERMANENT_CLOSE_CODES: [u16; 3] = [1003, 4002, 4003];

/// Frames waiting for the socket beyond which pongs are coalesced.
const PONG_BACKLOG: u64 = 64;

/// The close code the client uses when it gives up on a connection itself.
const CLIENT_ABORT_CODE: u16 = 4000;

impl ClientCore {
    /// Starts connecting (or does nothing when already connecting, connected, or closed).
    pub fn connect(&mut self, now: Instant) {
        match self.phase {
            Phase::Idle | Phase::Disconnected => {
                self.attempt = 0;
                self.open(now);
            }
            Phase::Backoff => self.open(now),
            _ => {}
        }
    }

    /// Closes on purpose: every pending request fails with [`RequestError::Closed`], every
    /// subscription ends quietly ([`crate::SubscriptionEvent::Ended`]), the connection (if
    /// any) is closed with 1000, and the core stops for good. Nothing comes out of it
    /// afterwards.
    pub fn close(&mut self, _now: Instant) {
        if self.phase == Phase::Closed {
            return;
        }
        if let Some(link) = self.link.take() {
            self.outputs.push_back(Output::Close {
                connection: link.id,
                code: 1000,
                reason: "client closed".into(),
            });
            self.fail_all_pending(Some(&link), |delivery| RequestError::Closed { delivery });
        } else {
            self.fail_all_pending(None, |delivery| RequestError::Closed { delivery });
        }
        self.end_all_subscriptions();
        self.reset_connection_scoped();
        self.restore = None;
        self.timers = Default::default();
        self.phase = Phase::Closed;
        self.set_state(ConnectionState::Disconnected);
        self.lifecycle(LifecycleEvent::Disconnected(DisconnectReason::ClientClosed));
    }

    fn open(&mut self, now: Instant) {
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
            attempt = self.attempt,
        );
        debug!(parent: &span, "opening connection");
        self.link = Some(Link {
            id,
            opened_at: None,
            last_rx: now,
            last_ping: None,
            ping_interval: None,
            first_seq: self.next_seq,
            written_upto: None,
            last_pong: None,
            span,
        });
        self.phase = Phase::Opening;
        self.outputs.push_back(Output::Open {
            connection: id,
            url: self.config.url.clone(),
        });
        let state = if self.ever_connected {
            ConnectionState::Reconnecting
        } else {
            ConnectionState::Connecting
        };
        self.set_state(state);
    }

    /// Feeds something the transport observed on `connection`.
    pub fn handle_input(&mut self, now: Instant, connection: ConnectionId, input: Input<'_>) {
        let Some(link) = self.link.as_mut().filter(|l| l.id == connection) else {
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
                if self.phase == Phase::Opening {
                    link.opened_at = Some(now);
                    link.last_rx = now;
                    self.phase = Phase::AwaitingWelcome;
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
                let (pending, subs) = (&self.requests.pending, &self.subs);
                // A subscribe's answer is read in the frame's one decode; its data is
                // handed on unread when the subscription takes it (checked by whatever
                // reads it), and read through when it is dropped.
                let expect = |id| match pending.get(id).map(|p| p.purpose) {
                    Some(Purpose::Subscribe { sub, .. }) => {
                        let takes_data = subs
                            .live
                            .get(&sub)
                            .is_some_and(|entry| entry.spec.has_initial_data());
                        if takes_data {
                            Expect::AnswerWithData
                        } else {
                            Expect::Answer
                        }
                    }
                    _ => Expect::Frame,
                };
                match frame::decode_expecting(text, expect) {
                    Ok(Decoded::Frame(frame)) => self.handle_frame(now, frame),
                    Ok(Decoded::Subscribed { id, answer }) => {
                        self.handle_subscribe_answer(now, id, answer)
                    }
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
            } => self.handle_push(subscription_id, data),
            ServerFrame::Ping { timestamp } => self.handle_ping(now, &timestamp),
            ServerFrame::Welcome(info) => {
                if self.phase != Phase::AwaitingWelcome {
                    self.counters.protocol_errors += 1;
                    self.lifecycle(LifecycleEvent::Error(CoreError::Unexpected("welcome")));
                    return;
                }
                self.timers.stop(Timer::Connect);
                let requires_auth = info.requires_auth;
                self.lifecycle(LifecycleEvent::Welcome(info));
                if requires_auth {
                    self.begin_login(now, None);
                } else {
                    self.begin_restore(now);
                }
            }
            ServerFrame::System(SystemEvent::Shutdown { grace_period }) => {
                self.lifecycle(LifecycleEvent::ServerShutdown { grace_period });
            }
            ServerFrame::System(SystemEvent::SessionRevoked { reason }) => {
                self.session_token = None;
                self.lifecycle(LifecycleEvent::SessionRevoked { reason });
            }
            ServerFrame::System(SystemEvent::Other { event }) => {
                debug!(%event, "unknown system event ignored");
            }
        }
    }

    fn handle_ping(&mut self, now: Instant, timestamp: &Payload) {
        if let Some(link) = self.link.as_mut() {
            let previous = link.last_ping.or(link.opened_at);
            if let Some(previous) = previous {
                let interval = now.saturating_duration_since(previous);
                if !interval.is_zero() {
                    link.ping_interval = Some(interval);
                }
            }
            link.last_ping = Some(now);
        }
        self.arm_liveness();
        self.counters.pings += 1;
        // A server that floods pings while not reading must not make the send queue grow:
        // when the socket is backed up and an earlier pong still waits for it, that one
        // answers for both.
        let next_seq = self.next_seq;
        let waiting = self
            .link
            .as_ref()
            .and_then(|l| {
                let written = l.written_upto.unwrap_or(0);
                let backlog = next_seq.saturating_sub(written + 1);
                l.last_pong
                    .map(|pong| written < pong && backlog >= PONG_BACKLOG)
            })
            .unwrap_or(false);
        if waiting {
            self.counters.pongs_coalesced += 1;
            return;
        }
        let sent = self.send_frame(frame::encode_pong(timestamp), None);
        if let (Some(link), Some((_, seq))) = (self.link.as_mut(), sent) {
            link.last_pong = Some(seq);
        }
    }

    /// When the liveness watchdog fires for `link`, if it is armed.
    pub(super) fn liveness_deadline(&self, link: &Link) -> Option<Instant> {
        link.opened_at?;
        match &self.config.liveness {
            Liveness::Off => None,
            Liveness::Fixed(timeout) => Some(super::later(link.last_rx, *timeout)),
            Liveness::Auto { min_margin } => {
                link.last_ping?;
                let interval = link.ping_interval?;
                let margin = (interval / 4).max(*min_margin);
                Some(super::later(
                    link.last_rx,
                    interval.saturating_mul(2).saturating_add(margin),
                ))
            }
        }
    }

    /// Re-arms the liveness watchdog after something arrived (or the interval changed).
    fn arm_liveness(&mut self) {
        let at = self.link.as_ref().and_then(|l| self.liveness_deadline(l));
        self.timers.set(Timer::Liveness, at);
    }

    /// Advances time: deadlines, connect timeout, backoff, liveness.
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
                    self.abort_link(now, DisconnectReason::LivenessTimeout, "liveness_timeout")
                }
                Timer::Backoff => {
                    if self.phase == Phase::Backoff {
                        self.open(now);
                    }
                }
            }
        }
    }

    /// Closes the current connection from the client's side and handles the loss.
    pub(super) fn abort_link(&mut self, now: Instant, reason: DisconnectReason, text: &str) {
        if let Some(link) = &self.link {
            self.outputs.push_back(Output::Close {
                connection: link.id,
                code: CLIENT_ABORT_CODE,
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
        let Some(link) = self.link.take() else { return };
        let permanent_code = code.is_some_and(|c| PERMANENT_CLOSE_CODES.contains(&c));
        let auth_rejected = matches!(reason, DisconnectReason::AuthRejected { .. });
        let first_attempt_failed = !self.ever_connected && !self.config.retry_initial_connect;
        let retries_left = self
            .config
            .backoff
            .max_retries
            .is_none_or(|max| self.attempt < max);
        let will_reconnect = self.config.reconnect
            && !permanent_code
            && !auth_rejected
            && !first_attempt_failed
            && retries_left;
        debug!(
            connection = link.id.0,
            %reason,
            will_reconnect,
            "connection lost"
        );
        if let Some(restore) = self.restore.take() {
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
        for sub in self.subs.live.values_mut() {
            if sub.server_id.is_some() && sub.lost_at.is_none() {
                sub.lost_at = Some(now);
            }
        }
        self.reset_connection_scoped();

        // The state first, then the events that announce it.
        if will_reconnect {
            self.attempt += 1;
            let delay = self.backoff_delay(self.attempt);
            self.phase = Phase::Backoff;
            self.timers
                .set(Timer::Backoff, Some(super::later(now, delay)));
            info!(
                connection = link.id.0,
                attempt = self.attempt,
                delay_ms = millis(delay),
                %reason,
                "reconnecting"
            );
            self.set_state(ConnectionState::Reconnecting);
            self.lifecycle(LifecycleEvent::Disconnected(reason));
            self.lifecycle(LifecycleEvent::Reconnecting {
                attempt: self.attempt,
                delay,
            });
        } else {
            let why = if !self.config.reconnect {
                "reconnect is off"
            } else if permanent_code {
                "permanent close code"
            } else if auth_rejected {
                "credentials refused"
            } else if first_attempt_failed {
                "first connection failed (retry_initial_connect is off)"
            } else {
                "reconnect attempts exhausted"
            };
            info!(
                connection = link.id.0,
                attempts = self.attempt,
                %reason,
                why,
                "not reconnecting"
            );
            self.phase = Phase::Disconnected;
            self.set_state(ConnectionState::Disconnected);
            self.lifecycle(LifecycleEvent::Disconnected(reason.clone()));
            if self.config.reconnect && !retries_left {
                self.lifecycle(LifecycleEvent::Error(CoreError::RetriesExhausted(
                    self.attempt,
                )));
            }
            self.fail_queued();
            self.fail_all_subscriptions(&RequestError::GaveUp(reason));
        }
    }

    fn backoff_delay(&mut self, attempt: u32) -> Duration {
        let base = self.config.backoff.base_delay(attempt);
        let jitter_max = self.config.backoff.jitter.as_millis().min(u64::MAX as u128) as u64;
        let jitter = if jitter_max == 0 {
            0
        } else {
            self.rng.random_range(0..=jitter_max)
        };
        base + Duration::from_millis(jitter)
    }

    /// Forgets everything that belonged to one connection.
    pub(super) fn reset_connection_scoped(&mut self) {
        let subs = &mut self.subs;
        subs.by_server_id.clear();
        subs.unsubscribed.clear();
        subs.unsubscribing.clear();
        subs.abandoned.clear();
        subs.late.clear();
        for sub in subs.live.values_mut() {
            sub.server_id = None;
        }
        self.counters.pushes_dropped += subs.held.len() as u64;
        subs.held.clear();
        subs.in_flight = 0;
        subs.restores_outstanding = 0;
    }

    /// Whether `link` may have transmitted the frame `sent`.
    pub(super) fn delivery_of(link: Option<&Link>, sent: super::Sent) -> Delivery {
        match (link, sent) {
            (Some(link), super::Sent::Yes { seq })
                if seq.get() >= link.first_seq
                    && link.written_upto.is_some_and(|w| w >= seq.get()) =>
            {
                Delivery::OutcomeUnknown
            }
            _ => Delivery::NotSent,
        }
    }

    /// Starts the configured login, or the remembered session. `after` is the step that
    /// just failed, if any.
    pub(super) fn begin_login(&mut self, now: Instant, after: Option<LoginStep>) {
        self.phase = Phase::Authenticating;
        let step = match after {
            None if self.session_token.is_some() => Some(LoginStep::Session),
            None | Some(LoginStep::Session) => match &self.config.auth {
                Some(Auth::Token(_)) => Some(LoginStep::Token),
                Some(Auth::Credentials { .. }) => Some(LoginStep::Credentials),
                None => None,
            },
            Some(_) => None,
        };
        let op = match (step, &self.config.auth) {
            (Some(LoginStep::Session), _) => self.session_token.as_ref().map(ops::auth::login),
            (Some(LoginStep::Token), Some(Auth::Token(token))) => Some(ops::auth::login(token)),
            (Some(LoginStep::Credentials), Some(Auth::Credentials { username, password })) => {
                Some(ops::identity::login(username, password))
            }
            _ => None,
        };
        match (step, op) {
            (Some(step), Some(op)) => {
                self.send_internal(now, op, Purpose::Login(step));
            }
            _ => self.begin_restore(now),
        }
    }

    /// The answer to a login step.
    pub(super) fn login_answered(
        &mut self,
        now: Instant,
        step: LoginStep,
        result: Result<Payload, RequestError>,
    ) {
        match result {
            Ok(data) => {
                if step == LoginStep::Credentials {
                    self.remember_token(&data);
                }
                self.lifecycle(LifecycleEvent::Authenticated(data));
                self.begin_restore(now);
            }
            Err(error) if step == LoginStep::Session => {
                self.session_token = None;
                let fallback = self.config.auth.is_some();
                if !fallback {
                    self.lifecycle(LifecycleEvent::Error(CoreError::SessionResume(error)));
                }
                self.begin_login(now, Some(LoginStep::Session));
            }
            Err(error) => {
                let rejected = match &error {
                    RequestError::Server(ServerError {
                        code:
                            code @ (ErrorCode::Unauthorized
                            | ErrorCode::Forbidden
                            | ErrorCode::ValidationError),
                        message,
                        ..
                    }) => Some(DisconnectReason::AuthRejected {
                        code: code.clone(),
                        message: message.clone(),
                    }),
                    _ => None,
                };
                info!(
                    error = super::error_kind(&error),
                    code = super::error_code(&error),
                    "login failed"
                );
                self.lifecycle(LifecycleEvent::Error(CoreError::Login(error)));
                match rejected {
                    Some(reason) => self.abort_link_with(now, reason, 1000, "auth_rejected"),
                    None => self.abort_link(now, DisconnectReason::LoginFailed, "login_failed"),
                }
            }
        }
    }

    fn abort_link_with(&mut self, now: Instant, reason: DisconnectReason, code: u16, text: &str) {
        if let Some(link) = &self.link {
            self.outputs.push_back(Output::Close {
                connection: link.id,
                code,
                reason: text.to_owned(),
            });
        }
        self.connection_lost(now, reason, None);
    }

    /// Remembers the `token` of a login answer for the next connection.
    pub(super) fn remember_token(&mut self, data: &Payload) {
        #[derive(serde::Deserialize)]
        struct Answer {
            token: String,
        }
        if let Ok(answer) = data.deserialize::<Answer>() {
            self.session_token = Some(answer.token.into());
        }
    }

    /// Sends every subscription again, all at once; ready when all have answered.
    pub(super) fn begin_restore(&mut self, now: Instant) {
        self.phase = Phase::Restoring;
        let subs: Vec<_> = self.subs.live.keys().copied().collect();
        // A first connection only makes the subscriptions asked for while connecting.
        if self.ever_connected && !subs.is_empty() {
            let parent = self.connection_span();
            let span = info_span!(
                parent: &parent,
                "noex_restore",
                subscriptions = subs.len(),
                elapsed_ms = field::Empty,
            );
            debug!(parent: &span, subscriptions = subs.len(), "restoring subscriptions");
            self.restore = Some(super::Restore {
                span,
                started: now,
                subscriptions: subs.len(),
            });
        }
        for sub in subs {
            self.send_subscribe(now, sub, true);
        }
        if self.subs.restores_outstanding == 0 {
            self.become_ready(now);
        }
    }

    pub(super) fn become_ready(&mut self, now: Instant) {
        if let Some(restore) = self.restore.take() {
            let elapsed_ms = millis(now.saturating_duration_since(restore.started));
            restore.span.record("elapsed_ms", elapsed_ms);
            info!(
                parent: &restore.span,
                subscriptions = restore.subscriptions,
                elapsed_ms,
                "subscriptions restored"
            );
        }
        self.phase = Phase::Ready;
        self.attempt = 0;
        self.set_state(ConnectionState::Connected);
        if self.ever_connected {
            self.counters.reconnects += 1;
            self.lifecycle(LifecycleEvent::Reconnected);
        } else {
            self.lifecycle(LifecycleEvent::Connected);
        }
        self.ever_connected = true;
        self.flush_outbox();
    }

    /// Whether the link is authenticated far enough for requests to go out.
    pub(super) fn link_usable(&self) -> bool {
        matches!(self.phase, Phase::Restoring | Phase::Ready)
    }
}

/// A duration in whole milliseconds, for logs.
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
