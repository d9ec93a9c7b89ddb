//! Numbers a caller can read to see what the core has done.

/// Running totals since the core was made, and two gauges.
///
/// Every request the caller issues ends exactly once, counted by how it ended, so at any
/// moment `requests_issued` equals [`Counters::requests_ended`] plus `requests_pending`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counters {
    /// The caller's requests, accepted or refused.
    pub requests_issued: u64,
    /// The caller's requests not yet ended (a gauge).
    pub requests_pending: u64,
    /// Live subscriptions (a gauge).
    pub subscriptions_live: u64,
    /// Text frames received.
    pub frames_in: u64,
    /// Frames handed out to send (requests, pongs).
    pub frames_out: u64,
    /// Requests answered with a result.
    pub requests_ok: u64,
    /// Requests answered with a server error.
    pub requests_server_error: u64,
    /// Requests that reached their deadline.
    pub requests_timed_out: u64,
    /// Requests failed by a lost (or absent) connection, also those refused at once
    /// because no connection was coming.
    pub requests_disconnected: u64,
    /// Requests failed because the client was closed.
    pub requests_closed: u64,
    /// Requests withdrawn by the caller.
    pub requests_cancelled: u64,
    /// Requests refused at once because too many were queued or in flight.
    pub requests_rejected: u64,
    /// Requests actually sent again: retry-safe reads after a reconnect, and requests the
    /// server's session check refused, after a new login (those are also counted in
    /// `requests_reauthorized`).
    pub requests_resent: u64,
    /// Pushes delivered to a subscription.
    pub pushes_delivered: u64,
    /// Pushes held because their subscription's answer was still in flight.
    pub pushes_held: u64,
    /// Pushes that could not be delivered (unknown, unsubscribed or superseded).
    pub pushes_dropped: u64,
    /// Answers for requests that had already ended (timed out or cancelled).
    pub late_answers: u64,
    /// Connections that reached the connected state after the first one.
    pub reconnects: u64,
    /// Frames that could not be understood.
    pub protocol_errors: u64,
    /// Pings received.
    pub pings: u64,
    /// Sessions renewed before they expired, or made again by a new login after they
    /// expired on a live connection.
    pub sessions_renewed: u64,
    /// Sessions the server said had expired on a live connection.
    pub sessions_expired: u64,
    /// Requests the server refused because the session had expired, sent again after
    /// the new login.
    pub requests_reauthorized: u64,
    /// Tokens asked of the token provider and given.
    pub tokens_fetched: u64,
    /// Pings not answered separately because an earlier pong was still waiting for the
    /// socket (a server flooding pings cannot grow the send queue).
    pub pongs_coalesced: u64,
}

impl Counters {
    /// The caller's requests that have ended, whichever way.
    ///
    /// ```
    /// use noex_proto::Counters;
    /// let counters = Counters::default();
    /// assert_eq!(counters.requests_issued, counters.requests_ended() + counters.requests_pending);
    /// ```
    pub fn requests_ended(&self) -> u64 {
        self.requests_ok
            + self.requests_server_error
            + self.requests_timed_out
            + self.requests_disconnected
            + self.requests_closed
            + self.requests_cancelled
            + self.requests_rejected
    }
}
