//! A request in the pending table: why it is there, whether its frame went out, and what
//! is kept of it. Plain data, shared by the requests, subscriptions and session modules.

use crate::error::Delivery;
use crate::event::SubscriptionId;
use crate::ops::{OpKind, Operation};
use std::time::Instant;

/// Which login the core is attempting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LoginStep {
    /// `auth.login` with the remembered session token.
    Resume,
    /// `auth.login` with the configured token.
    Token,
    /// `identity.login` with the credentials.
    Credentials,
    /// `identity.loginWithSecret` with the secret.
    Secret,
    /// `auth.login` with the provider's token; `refreshed` when it was asked for a new one.
    Provided { refreshed: bool },
    /// `identity.refreshSession`.
    Refresh,
}

/// Why a login is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LoginMode {
    /// The login of a new connection, before anything else goes out on it.
    Connect,
    /// Renewing the session before it expires; requests go on meanwhile.
    Renew,
    /// Logging in again on a live connection whose session expired; requests wait.
    Relogin,
}

/// Why a request is in the pending table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Purpose {
    /// The caller's request.
    User,
    /// A login, a session renewal or a login again after the session expired.
    Login { step: LoginStep, mode: LoginMode },
    /// Making a subscription; `restore` when part of a reconnect's restore burst.
    Subscribe { sub: SubscriptionId, restore: bool },
    /// Removing a subscription on the server.
    Unsubscribe,
}

/// Whether a pending request's frame has been handed out, and as which frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sent {
    No,
    /// Handed out as frame `seq` (sequence numbers are never reused, so the link it went
    /// out on is the one whose numbers it falls among).
    Yes {
        seq: std::num::NonZeroU64,
    },
}

#[derive(Debug)]
pub(super) struct Pending {
    pub(super) kind: OpKind,
    pub(super) purpose: Purpose,
    pub(super) deadline: Instant,
    pub(super) retry: bool,
    pub(super) sent: Sent,
    /// Kept until sent; kept until answered for retry-safe reads, for logins (their
    /// token or credentials are remembered on success), and for every request while a
    /// session can be made again (a request the server refused because the session had
    /// expired goes out again after the new login). Boxed: every pending request has an
    /// entry, most of them without.
    pub(super) op: Option<Box<Operation>>,
    /// For a request sent again (a retry-safe read after a reconnect): whether an earlier
    /// copy may have reached the server. It then stays "outcome unknown" whatever happens
    /// later. A copy the server refused for its session was not applied.
    pub(super) earlier: Delivery,
    /// Whether its frame was ever handed out (so the next one counts as re-sent).
    pub(super) handed_out: bool,
    /// Whether it was already held for a new login on this connection (it is not held
    /// twice on one connection).
    pub(super) reauthorized: bool,
}

impl Pending {
    /// `delivery`, unless an earlier copy may already have reached the server.
    pub(super) fn delivery(&self, delivery: Delivery) -> Delivery {
        match self.earlier {
            Delivery::OutcomeUnknown => Delivery::OutcomeUnknown,
            Delivery::NotSent => delivery,
        }
    }
}
