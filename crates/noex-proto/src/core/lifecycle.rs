//! A connection's life: open, welcome, login, restore, ready, loss, backoff, close.

use super::{ClientCore, Link, LoginStep, Phase, Purpose};
use crate::config::{Auth, Liveness};
use crate::error::{Delivery, RequestError};
use crate::error_code::ErrorCode;
use crate::event::{
    ConnectionId, ConnectionState, CoreError, DisconnectReason, Input, LifecycleEvent, Output,
};
use crate::frame::{self, FrameError, ServerError, ServerFrame, SystemEvent};
use crate::ops;
use crate::payload::Payload;
use rand::RngExt;
use std::time::{Duration, Instant};
use tracing::{debug, trace, warn};

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
            Phase::Backoff { .. } => self.open(now),
            _ => {}
        }
    }

    /// Closes on purpose: every pending request fails with [`RequestError::Closed`], every
    /// subscription ends, the connection (if any) is closed with 1000, and the core stops
    /// for good. Nothing comes out of it afterwards.
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
        let ended: Vec<_> = std::mem::take(&mut self.subscriptions)
            .into_keys()
            .collect();
        for id in ended {
            self.emit(crate::event::Event::Subscription(
                crate::event::SubscriptionEvent::Failed {
                    id,
                    error: RequestError::Closed {
                        delivery: Delivery::NotSent,
                    },
                },
            ));
        }
        self.reset_connection_scoped();
        self.phase = Phase::Closed;
        self.lifecycle(LifecycleEvent::Disconnected(DisconnectReason::ClientClosed));
        self.set_state(ConnectionState::Disconnected);
    }

    fn open(&mut self, now: Instant) {
        let id = ConnectionId(self.next_connection);
        self.next_connection += 1;
        self.link = Some(Link {
            id,
            connect_deadline: Some(super::later(now, self.config.connect_timeout)),
            opened_at: None,
            last_rx: now,
            last_ping: None,
            ping_interval: None,
            written_upto: None,
            last_pong: None,
        });
        self.phase = Phase::Opening;
        debug!(connection = id.0, "opening connection");
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
        match input {
            Input::Opened => {
                if self.phase == Phase::Opening {
                    link.opened_at = Some(now);
                    link.last_rx = now;
                    self.phase = Phase::AwaitingWelcome;
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
                self.protocol_error(FrameError::Binary(bytes.len()));
            }
            Input::Frame(text) => {
                link.last_rx = now;
                self.counters.frames_in += 1;
                match frame::decode(text) {
                    Ok(frame) => self.handle_frame(now, frame),
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
                if let Some(link) = self.link.as_mut() {
                    link.connect_deadline = None;
                }
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
        let sent = self.send_frame(frame::encode_pong(timestamp));
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
            Liveness::Auto { margin } => {
                link.last_ping?;
                let interval = link.ping_interval?;
                Some(super::later(
                    link.last_rx,
                    interval.saturating_mul(2).saturating_add(*margin),
                ))
            }
        }
    }

    /// Advances time: deadlines, connect timeout, backoff, liveness.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.expire_requests(now);
        if let Some(link) = &self.link {
            if link.connect_deadline.is_some_and(|d| d <= now) {
                self.abort_link(now, DisconnectReason::ConnectTimeout, "connect_timeout");
            } else if self.liveness_deadline(link).is_some_and(|d| d <= now) {
                self.abort_link(now, DisconnectReason::LivenessTimeout, "liveness_timeout");
            }
        }
        if let Phase::Backoff { until } = self.phase {
            if until <= now {
                self.open(now);
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
        let auth_rejected = reason == DisconnectReason::AuthRejected;
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
            ?reason,
            will_reconnect,
            "connection lost"
        );

        self.settle_pending_on_loss(&link, will_reconnect);
        self.reset_connection_scoped();
        if !will_reconnect {
            self.fail_unconfirmed_subscriptions();
        }
        self.lifecycle(LifecycleEvent::Disconnected(reason));

        if will_reconnect {
            self.attempt += 1;
            let delay = self.backoff_delay(self.attempt);
            self.phase = Phase::Backoff {
                until: super::later(now, delay),
            };
            self.lifecycle(LifecycleEvent::Reconnecting {
                attempt: self.attempt,
                delay,
            });
            self.set_state(ConnectionState::Reconnecting);
        } else {
            if self.config.reconnect && !retries_left {
                self.lifecycle(LifecycleEvent::Error(CoreError::RetriesExhausted(
                    self.attempt,
                )));
            }
            self.phase = Phase::Disconnected;
            self.fail_queued();
            self.set_state(ConnectionState::Disconnected);
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
        self.by_server_id.clear();
        self.unsubscribed.clear();
        self.abandoned.clear();
        for sub in self.subscriptions.values_mut() {
            sub.server_id = None;
        }
        let superseded = self.held.len() as u64;
        self.counters.pushes_dropped += superseded;
        self.held.clear();
        self.subscribes_in_flight = 0;
        self.restores_outstanding = 0;
    }

    /// Whether `link` may have transmitted the frame `sent`.
    pub(super) fn delivery_of(link: Option<&Link>, sent: super::Sent) -> Delivery {
        match (link, sent) {
            (Some(link), super::Sent::Yes { connection, seq })
                if connection == link.id && link.written_upto.is_some_and(|w| w >= seq) =>
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
                let rejected = matches!(
                    &error,
                    RequestError::Server(ServerError {
                        code: ErrorCode::Unauthorized
                            | ErrorCode::Forbidden
                            | ErrorCode::ValidationError,
                        ..
                    })
                );
                self.lifecycle(LifecycleEvent::Error(CoreError::Login(error)));
                if rejected {
                    self.abort_link_with(
                        now,
                        DisconnectReason::AuthRejected,
                        1000,
                        "auth_rejected",
                    );
                } else {
                    self.abort_link(now, DisconnectReason::LoginFailed, "login_failed");
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
        let subs: Vec<_> = self.subscriptions.keys().copied().collect();
        for sub in subs {
            self.send_subscribe(now, sub, true);
        }
        if self.restores_outstanding == 0 {
            self.become_ready(now);
        }
    }

    pub(super) fn become_ready(&mut self, now: Instant) {
        self.phase = Phase::Ready;
        self.attempt = 0;
        if self.ever_connected {
            self.counters.reconnects += 1;
            self.lifecycle(LifecycleEvent::Reconnected);
        } else {
            self.lifecycle(LifecycleEvent::Connected);
        }
        self.ever_connected = true;
        self.set_state(ConnectionState::Connected);
        self.flush_outbox(now);
    }

    /// Whether the link is authenticated far enough for requests to go out.
    pub(super) fn link_usable(&self) -> bool {
        matches!(self.phase, Phase::Restoring | Phase::Ready)
    }
}
