//! The frames each connection sent, kept for assertions.

/// The text frames one connection sent to the server, in order.
///
/// Its `Debug` output shows only the frame count: frames may carry tokens or passwords.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionLog {
    /// The connection id as the server reports it (`conn-N`).
    pub id: String,
    /// Every text frame received from the client, verbatim, in arrival order (pongs
    /// and unparsable frames included), up to the first 100 000.
    pub frames: Vec<String>,
    /// Frames received after the first 100 000, counted but not kept (so that a long
    /// run's memory stays bounded).
    pub frames_not_logged: u64,
}

impl std::fmt::Debug for ConnectionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionLog")
            .field("id", &self.id)
            .field("frames", &self.frames.len())
            .field("frames_not_logged", &self.frames_not_logged)
            .finish()
    }
}
