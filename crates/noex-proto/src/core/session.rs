//! The session: how the core logs in on each connection, keeps the session alive while
//! connected, and logs in again when the server says it expired.
//!
//! What the core knows about its session lives in [`Session`]: where logins come from
//! (the configuration, or the caller's own `identity.login`), the session token to resume
//! on the next connection, when the session expires (the server's `expiresAt` placed on
//! the caller's clock through the `welcome`'s `serverTime`), and what is under way (a
//! renewal, a new login, a token asked of the provider). The renewal is a timer in the one
//! timer table ([`Timer::SessionRenew`]), set to three quarters of the session's remaining
//! life whenever a login or renewal answers.
//!
//! noex-server checks the session before it runs a request (`checkAuth`): a request
//! refused with `UNAUTHORIZED` "Session expired" or "Authentication required" was never
//! executed. Such a request is held, the core logs in again on the same connection, and
//! the request goes out again within its own deadline; it is never reported as "outcome
//! unknown" for that refused copy.

use super::pending::{LoginMode, LoginStep, Pending, Purpose};
use super::{ClientCore, Stage, Timer};
use crate::config::Auth;
use crate::error::RequestError;
use crate::error_code::ErrorCode;
use crate::event::{CoreError, DisconnectReason, LifecycleEvent, Output, SubscriptionId};
use crate::frame::ServerError;
use crate::ops::{self, OpKind, Operation, Presented};
use crate::payload::Payload;
use crate::secret::Secret;
use std::time::Instant;
use tracing::{debug, info};

/// The messages with which noex-server's `checkAuth` refuses a request before running it.
const SESSION_EXPIRED: &str = "Session expired";
const AUTHENTICATION_REQUIRED: &str = "Authentication required";
/// `auth.login`'s refusal of a token whose session has expired.
const TOKEN_EXPIRED: &str = "Token has expired";

/// Identifies one request for a token made with [`Output::FetchToken`]; give the token
/// back with [`ClientCore::provide_token`] under the same id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenFetchId(pub u64);

/// Where logins come from.
#[derive(Debug, Clone, PartialEq)]
enum Source {
    /// A token presented with `auth.login`; it cannot be renewed.
    Token(Secret),
    /// `identity.login` with these credentials.
    Credentials { username: String, password: Secret },
    /// `identity.loginWithSecret` with this secret.
    Secret(Secret),
    /// A token asked of the caller's provider for each login.
    Provider,
}

/// A token asked of the provider and not yet given.
#[derive(Debug, Clone, Copy)]
struct Fetch {
    id: u64,
    refresh: bool,
    mode: LoginMode,
}

/// The session sub-state.
#[derive(Debug)]
pub(super) struct Session {
    source: Option<Source>,
    /// Whether `source` came from the caller's own login (and goes with its logout).
    learned: bool,
    /// The session token to present with `auth.login` on the next connection.
    token: Option<Secret>,
    /// When the session expires on the caller's clock, when the server said.
    expires_at: Option<Instant>,
    /// The caller logged out on purpose on this connection: no login again on it.
    logged_out: bool,
    /// A renewal or a new login in flight on the current link.
    renewal: Option<LoginMode>,
    /// The first refusal of the requests held for a new login (what they end with if it
    /// fails).
    refusal: Option<ServerError>,
    /// Subscribes the session check refused, to make again after the new login.
    refused_subscribes: Vec<SubscriptionId>,
    /// Unsubscribes the session check refused (the server id and the operation), to send
    /// again after the new login.
    refused_unsubscribes: Vec<(String, Box<Operation>)>,
    /// A token asked of the provider and not yet given.
    fetch: Option<Fetch>,
    next_fetch: u64,
}

impl Session {
    pub(super) fn new(auth: Option<Auth>) -> Session {
        let source = auth.map(|auth| match auth {
            Auth::Token(token) => Source::Token(token),
            Auth::Credentials { username, password } => Source::Credentials { username, password },
            Auth::Provider => Source::Provider,
        });
        Session {
            source,
            learned: false,
            token: None,
            expires_at: None,
            logged_out: false,
            renewal: None,
            refusal: None,
            refused_subscribes: Vec::new(),
            refused_unsubscribes: Vec::new(),
            fetch: None,
            next_fetch: 1,
        }
    }

    pub(super) fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// Whether the core can log in again by itself when the session expires: it then keeps
    /// every request until answered, to send one the server refused again.
    pub(super) fn can_login_again(&self) -> bool {
        matches!(
            self.source,
            Some(Source::Credentials { .. } | Source::Secret(_) | Source::Provider)
        )
    }

    /// Whether a new login is under way on the live connection (requests wait for it).
    pub(super) fn relogging(&self) -> bool {
        self.renewal == Some(LoginMode::Relogin)
    }

    /// Forgets what belonged to the connection that ended.
    fn link_lost(&mut self) {
        self.renewal = None;
        self.fetch = None;
        self.logged_out = false;
        self.refusal = None;
        self.refused_subscribes.clear();
        self.refused_unsubscribes.clear();
    }
}

/// Whether `error` is noex-server's `checkAuth` refusing a request of `kind` before
/// running it (logins and `auth.*` are never checked, so never refused this way).
fn refused_by_session_check(kind: OpKind, error: &ServerError) -> bool {
    let checked = !matches!(
        kind,
        OpKind::AuthLogin
            | OpKind::AuthLogout
            | OpKind::AuthWhoami
            | OpKind::IdentityLogin
            | OpKind::IdentityLoginWithSecret
    );
    checked
        && error.code == ErrorCode::Unauthorized
        && (error.message == SESSION_EXPIRED || error.message == AUTHENTICATION_REQUIRED)
}

/// The parts of a login's answer the core reads.
#[derive(serde::Deserialize)]
struct LoginAnswer {
    token: Option<String>,
    #[serde(rename = "expiresAt")]
    expires_at: Option<f64>,
}

impl LoginAnswer {
    fn read(data: &Payload) -> LoginAnswer {
        data.deserialize::<LoginAnswer>().unwrap_or(LoginAnswer {
            token: None,
            expires_at: None,
        })
    }
}

impl ClientCore {
    /// Gives the token asked for with [`Output::FetchToken`] `id` (or why there is none).
    /// An answer for a request that is no longer current (the connection it was for is
    /// gone, or it timed out after the request timeout) is ignored.
    pub fn provide_token(&mut self, now: Instant, id: TokenFetchId, token: Result<Secret, String>) {
        let Some(fetch) = self.session.fetch.take_if(|f| f.id == id.0) else {
            debug!(fetch = id.0, "a token nobody waits for any more");
            return;
        };
        self.timers.stop(Timer::TokenFetch);
        self.counters.tokens_fetched += 1;
        match token {
            Ok(token) => {
                let step = LoginStep::Provided {
                    refreshed: fetch.refresh,
                };
                self.send_login(now, ops::auth::login(&token), step, fetch.mode);
            }
            Err(message) => {
                info!(refresh = fetch.refresh, "the token provider gave no token");
                self.lifecycle(LifecycleEvent::Error(CoreError::TokenProvider(message)));
                self.login_failed(now, fetch.mode);
            }
        }
    }

    /// The token provider did not answer in time.
    pub(super) fn token_fetch_timed_out(&mut self, now: Instant) {
        if let Some(fetch) = self.session.fetch.take() {
            self.lifecycle(LifecycleEvent::Error(CoreError::TokenProvider(
                "the token provider did not answer within the request timeout".into(),
            )));
            self.login_failed(now, fetch.mode);
        }
    }

    /// Starts the login of a new connection: the remembered session first, then the
    /// configured source; straight to the restore when there is neither.
    pub(super) fn begin_login(&mut self, now: Instant) {
        if let Some(link) = self.link_mut() {
            link.stage = Stage::Authenticating;
        }
        self.session.logged_out = false;
        let resumable = !matches!(
            self.session.source,
            Some(Source::Token(_) | Source::Provider)
        );
        match self.session.token.clone() {
            Some(token) if resumable => {
                self.send_login(
                    now,
                    ops::auth::login(&token),
                    LoginStep::Resume,
                    LoginMode::Connect,
                );
            }
            _ => self.login_with_source(now, LoginMode::Connect, false),
        }
    }

    /// Logs in with the source, in `mode`. With no source, a connection goes on to its
    /// restore unauthenticated; a renewal or new login has nothing to do.
    fn login_with_source(&mut self, now: Instant, mode: LoginMode, refresh: bool) {
        let op = match self.session.source.clone() {
            Some(Source::Token(token)) => Some((ops::auth::login(&token), LoginStep::Token)),
            Some(Source::Credentials { username, password }) => Some((
                ops::identity::login(&username, &password),
                LoginStep::Credentials,
            )),
            Some(Source::Secret(secret)) => {
                Some((ops::identity::login_with_secret(&secret), LoginStep::Secret))
            }
            Some(Source::Provider) => {
                self.fetch_token(now, refresh, mode);
                return;
            }
            None => None,
        };
        match (op, mode) {
            (Some((op, step)), mode) => self.send_login(now, op, step, mode),
            (None, LoginMode::Connect) => self.begin_restore(now),
            (None, _) => self.session.renewal = None,
        }
    }

    fn send_login(&mut self, now: Instant, op: Operation, step: LoginStep, mode: LoginMode) {
        self.send_internal(now, op, Purpose::Login { step, mode });
    }

    /// Asks the caller's provider for a token.
    fn fetch_token(&mut self, now: Instant, refresh: bool, mode: LoginMode) {
        let id = self.session.next_fetch;
        self.session.next_fetch += 1;
        self.session.fetch = Some(Fetch { id, refresh, mode });
        self.timers.set(
            Timer::TokenFetch,
            Some(super::later(now, self.config.request_timeout)),
        );
        debug!(fetch = id, refresh, "asking the token provider");
        self.outputs.push_back(Output::FetchToken {
            id: TokenFetchId(id),
            refresh,
        });
    }

    /// The answer to a login, renewal or new login. `op` is the login as sent, when kept.
    pub(super) fn login_answered(
        &mut self,
        now: Instant,
        step: LoginStep,
        mode: LoginMode,
        op: Option<&Operation>,
        result: Result<Payload, RequestError>,
    ) {
        match result {
            Ok(data) => {
                self.session_established(now, step, op, &data);
                if step == (LoginStep::Provided { refreshed: true }) {
                    self.lifecycle(LifecycleEvent::TokenRefreshed);
                }
                match mode {
                    LoginMode::Connect => {
                        self.lifecycle(LifecycleEvent::Authenticated(data));
                        self.begin_restore(now);
                    }
                    LoginMode::Renew | LoginMode::Relogin => {
                        self.session.renewal = None;
                        self.session.refusal = None;
                        // A fresh session: a token asked for another login is not needed.
                        if self.session.fetch.take().is_some() {
                            self.timers.stop(Timer::TokenFetch);
                        }
                        self.counters.sessions_renewed += 1;
                        let expires_in = self
                            .session
                            .expires_at
                            .map(|at| at.saturating_duration_since(now));
                        debug!(?mode, "session renewed");
                        self.lifecycle(LifecycleEvent::SessionRenewed { expires_in });
                        // What a new login was started for goes out now, whichever login
                        // answered first (a renewal may have, while the new login waited).
                        self.send_held_after_login(now);
                    }
                }
            }
            Err(error) => self.login_refused(now, step, mode, error),
        }
    }

    /// Sends what waited for a new session: refused requests, subscribes and
    /// unsubscribes.
    fn send_held_after_login(&mut self, now: Instant) {
        self.resend_refused();
        for sub in std::mem::take(&mut self.session.refused_subscribes) {
            self.send_subscribe(now, sub, false);
        }
        for (server_id, op) in std::mem::take(&mut self.session.refused_unsubscribes) {
            let request = self.send_internal(now, *op, Purpose::Unsubscribe);
            self.mark_reauthorized(request);
            self.subs.unsubscribing(request, server_id);
        }
    }

    /// An unsubscribe the server refused with `error`: when the session check refused it
    /// and the core can log in again, it is sent again after the new login (`true`), so
    /// the subscription does not stay on the server.
    pub(super) fn unsubscribe_refused(
        &mut self,
        now: Instant,
        request: u64,
        entry: &Pending,
        error: &ServerError,
    ) -> bool {
        let held = refused_by_session_check(entry.kind, error)
            && !self.session.logged_out
            && self.session.can_login_again()
            && !entry.reauthorized;
        let (true, Some(op)) = (held, entry.op.clone()) else {
            return false;
        };
        let Some(server_id) = self.subs.take_unsubscribing(request) else {
            return false;
        };
        self.session.refused_unsubscribes.push((server_id, op));
        if !self.session.relogging() {
            self.start_relogin(now);
        }
        true
    }

    /// The late answer to an unsubscribe that timed out: when the session check refused
    /// it, it is sent again after a new login; otherwise it is over.
    pub(super) fn late_unsubscribe_answered(
        &mut self,
        now: Instant,
        server_id: String,
        op: Box<Operation>,
        result: Result<Payload, RequestError>,
    ) {
        let refused = match &result {
            Err(RequestError::Server(error)) => {
                refused_by_session_check(op.kind(), error) && !self.session.logged_out
            }
            _ => false,
        };
        if !refused || !self.session.can_login_again() {
            self.subs.unsubscribed_done(&server_id);
            return;
        }
        self.session.refused_unsubscribes.push((server_id, op));
        if !self.session.relogging() {
            self.start_relogin(now);
        }
    }

    /// A login, renewal or new login failed with `error`.
    fn login_refused(
        &mut self,
        now: Instant,
        step: LoginStep,
        mode: LoginMode,
        error: RequestError,
    ) {
        let refusal = match &error {
            RequestError::Server(e)
                if matches!(
                    e.code,
                    ErrorCode::Unauthorized | ErrorCode::Forbidden | ErrorCode::ValidationError
                ) =>
            {
                Some(e.clone())
            }
            _ => None,
        };
        info!(
            ?step,
            ?mode,
            error = super::error_kind(&error),
            code = super::error_code(&error),
            "login failed"
        );
        match (mode, step) {
            // The remembered session is gone: the source logs in instead.
            (LoginMode::Connect, LoginStep::Resume) => {
                self.session.token = None;
                if self.session.source.is_none() {
                    self.lifecycle(LifecycleEvent::Error(CoreError::SessionResume(error)));
                }
                self.login_with_source(now, LoginMode::Connect, false);
            }
            // The provider's token was refused: ask it for a fresh one, once.
            (_, LoginStep::Provided { refreshed: false }) if refusal.is_some() => {
                self.fetch_token(now, true, mode);
            }
            // A renewal that fails leaves the session as it was: log in again now when
            // possible (it may have expired already), else let it run out.
            (LoginMode::Renew, _) => {
                if self.session.renewal == Some(LoginMode::Renew) {
                    self.session.renewal = None;
                    if refusal.is_some() && self.session.can_login_again() {
                        self.start_relogin(now);
                    }
                }
            }
            (LoginMode::Connect | LoginMode::Relogin, _) => {
                self.lifecycle(LifecycleEvent::Error(CoreError::Login(error)));
                let provider = matches!(self.session.source, Some(Source::Provider));
                match refusal {
                    // A provider's token that expired on its way: the provider gives
                    // another on the next connection, and what waited goes out then.
                    Some(refusal) if provider && refusal.message == TOKEN_EXPIRED => {
                        self.abort_link(now, DisconnectReason::LoginFailed, "login_failed")
                    }
                    Some(refusal) => {
                        if mode == LoginMode::Relogin {
                            let held = self.session.refusal.take().unwrap_or(refusal.clone());
                            self.fail_refused(&held);
                        }
                        let reason = if refusal.message == TOKEN_EXPIRED {
                            DisconnectReason::SessionExpired {
                                message: refusal.message,
                            }
                        } else {
                            DisconnectReason::AuthRejected {
                                code: refusal.code,
                                message: refusal.message,
                            }
                        };
                        self.abort_link_with(now, reason, 1000, "auth_rejected");
                    }
                    None => self.abort_link(now, DisconnectReason::LoginFailed, "login_failed"),
                }
            }
        }
    }

    /// No token came from the provider for a login in `mode`.
    fn login_failed(&mut self, now: Instant, mode: LoginMode) {
        match mode {
            LoginMode::Renew => self.session.renewal = None,
            LoginMode::Connect | LoginMode::Relogin => {
                self.abort_link(now, DisconnectReason::LoginFailed, "login_failed")
            }
        }
    }

    /// A login or renewal answered: remember what it established and plan the renewal.
    fn session_established(
        &mut self,
        now: Instant,
        step: LoginStep,
        op: Option<&Operation>,
        data: &Payload,
    ) {
        let answer = LoginAnswer::read(data);
        let identity = matches!(
            step,
            LoginStep::Credentials | LoginStep::Secret | LoginStep::Refresh
        );
        if identity {
            if let Some(token) = answer.token {
                self.session.token = Some(token.into());
            }
        } else if let (LoginStep::Resume, Some(Presented::Token(token))) =
            (step, op.and_then(Operation::presented))
        {
            self.session.token = Some(token.clone());
        }
        self.session.logged_out = false;
        let expires_at = answer
            .expires_at
            .filter(|ms| ms.is_finite())
            .and_then(|ms| self.link().and_then(|l| l.local_time(ms as i64)));
        if let Some(link) = self.link_mut() {
            link.identity_session = identity;
        }
        self.session.expires_at = expires_at;
        self.plan_renewal(now);
    }

    /// Sets the renewal timer to three quarters of the session's remaining life, when the
    /// session can be renewed.
    fn plan_renewal(&mut self, now: Instant) {
        let renewable =
            self.session.can_login_again() || self.link().is_some_and(|l| l.identity_session);
        let at = match self.session.expires_at {
            Some(expires) if renewable => {
                let left = expires.saturating_duration_since(now);
                Some(super::later(now, left.mul_f64(0.75)))
            }
            _ => None,
        };
        self.timers.set(Timer::SessionRenew, at);
    }

    /// The renewal timer fired: renew on the live connection (a connection being made
    /// logs in anyway and plans the next renewal from its answer).
    pub(super) fn renew_session(&mut self, now: Instant) {
        if !self.link_usable() || self.session.renewal.is_some() || self.session.fetch.is_some() {
            return;
        }
        self.session.renewal = Some(LoginMode::Renew);
        debug!("renewing the session");
        if self.link().is_some_and(|l| l.identity_session) {
            self.send_login(
                now,
                ops::identity::refresh_session(),
                LoginStep::Refresh,
                LoginMode::Renew,
            );
        } else {
            self.login_with_source(now, LoginMode::Renew, true);
        }
    }

    /// Logs in again on the live connection: the session expired.
    fn start_relogin(&mut self, now: Instant) {
        if !self.link_usable() {
            return;
        }
        self.session.renewal = Some(LoginMode::Relogin);
        self.counters.sessions_expired += 1;
        info!("the session expired; logging in again");
        self.lifecycle(LifecycleEvent::SessionExpired);
        self.login_with_source(now, LoginMode::Relogin, true);
    }

    /// A caller's request the server refused with `error`: when the session check refused
    /// it and the core can log in again, it is held for the new login (`None`); otherwise
    /// it is given back to be answered with the refusal. A configured token whose session
    /// expired ends the connection for good: it cannot be renewed.
    pub(super) fn session_refused(
        &mut self,
        now: Instant,
        id: u64,
        entry: Pending,
        error: ServerError,
    ) -> Option<(Pending, ServerError)> {
        if !refused_by_session_check(entry.kind, &error) || self.session.logged_out {
            return Some((entry, error));
        }
        if self.session.can_login_again() {
            if let Some(entry) = self.hold_refused(id, entry) {
                return Some((entry, error));
            }
            if self.session.refusal.is_none() {
                self.session.refusal = Some(error);
            }
            if !self.session.relogging() {
                self.start_relogin(now);
            }
            return None;
        }
        if matches!(self.session.source, Some(Source::Token(_))) && error.message == SESSION_EXPIRED
        {
            let kind = entry.kind;
            let reason = DisconnectReason::SessionExpired {
                message: error.message.clone(),
            };
            self.respond(id, kind, Err(RequestError::Server(error)));
            self.counters.sessions_expired += 1;
            self.lifecycle(LifecycleEvent::SessionExpired);
            self.abort_link_with(now, reason, 1000, "session_expired");
            return None;
        }
        Some((entry, error))
    }

    /// A subscribe the server refused with `error`: when the session check refused it
    /// and the core can log in again, it is made again after the new login (`true`).
    pub(super) fn subscribe_refused(
        &mut self,
        now: Instant,
        sub: SubscriptionId,
        error: &RequestError,
    ) -> bool {
        let RequestError::Server(error) = error else {
            return false;
        };
        let held = refused_by_session_check(OpKind::StoreSubscribe, error)
            && !self.session.logged_out
            && self.session.can_login_again()
            && !self.session.refused_subscribes.contains(&sub)
            && self.session.refused_subscribes.len() < self.config.max_in_flight;
        if held {
            self.session.refused_subscribes.push(sub);
            if !self.session.relogging() {
                self.start_relogin(now);
            }
        }
        held
    }

    /// Keeps what the caller's own successful requests say about the session: a login
    /// is remembered (and its credentials kept to log in again, as configured ones are),
    /// a logout forgets it.
    pub(super) fn observe_session(&mut self, now: Instant, entry: &Pending, data: &Payload) {
        let presented = entry.op.as_deref().and_then(Operation::presented).cloned();
        match (entry.kind, presented) {
            (OpKind::AuthLogin, Some(Presented::Token(token))) => {
                self.session.token = Some(token);
                self.session_established(now, LoginStep::Token, None, data);
            }
            (OpKind::IdentityLogin, Some(Presented::Credentials { username, password })) => {
                self.learn(Source::Credentials { username, password });
                self.session_established(now, LoginStep::Credentials, None, data);
            }
            (OpKind::IdentityLoginWithSecret, Some(Presented::Secret(secret))) => {
                self.learn(Source::Secret(secret));
                self.session_established(now, LoginStep::Secret, None, data);
            }
            (OpKind::IdentityRefreshSession, _) => {
                self.session_established(now, LoginStep::Refresh, None, data);
            }
            (OpKind::AuthLogout | OpKind::IdentityLogout, _) => {
                self.session.token = None;
                self.session.expires_at = None;
                self.session.logged_out = true;
                if self.session.learned {
                    self.session.source = None;
                    self.session.learned = false;
                }
                self.timers.stop(Timer::SessionRenew);
            }
            _ => {}
        }
    }

    /// The caller logged in by itself: its login becomes the source, unless one is
    /// configured.
    fn learn(&mut self, source: Source) {
        if self.session.source.is_none() || self.session.learned {
            self.session.source = Some(source);
            self.session.learned = true;
        }
    }

    /// The server revoked the session: it is not resumed.
    pub(super) fn session_revoked(&mut self) {
        self.session.token = None;
        self.session.expires_at = None;
        self.timers.stop(Timer::SessionRenew);
    }

    /// The connection ended: what was under way on it is over.
    pub(super) fn session_link_lost(&mut self) {
        self.session.link_lost();
        self.timers.stop(Timer::TokenFetch);
    }
}
