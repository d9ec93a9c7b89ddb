//! The signals that stop `noex serve`: SIGTERM and Ctrl-C (SIGINT); on other platforms
//! Ctrl-C only.

use super::error::ServeError;

/// The stop signals, caught from its creation on (before it, they end the process).
pub(super) struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl std::fmt::Debug for Signals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signals")
    }
}

impl Signals {
    /// Catch the stop signals from now on.
    #[cfg(unix)]
    pub(super) fn new() -> Result<Signals, ServeError> {
        use tokio::signal::unix::{signal, SignalKind};
        let err = |e: std::io::Error| ServeError::Start(format!("could not handle signals: {e}"));
        Ok(Signals {
            term: signal(SignalKind::terminate()).map_err(err)?,
            int: signal(SignalKind::interrupt()).map_err(err)?,
        })
    }

    #[cfg(not(unix))]
    pub(super) fn new() -> Result<Signals, ServeError> {
        Ok(Signals {})
    }

    /// The next stop signal's name.
    #[cfg(unix)]
    pub(super) async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }

    #[cfg(not(unix))]
    pub(super) async fn next(&mut self) -> &'static str {
        match tokio::signal::ctrl_c().await {
            Ok(()) => "Ctrl-C",
            Err(_) => std::future::pending().await,
        }
    }
}
