//! Why `noex serve` failed, and what it prints for it.

use std::fmt;

/// A failure that ends `noex serve` before (or instead of) serving.
///
/// Each variant prints like the real `noex-server` CLI does for the same failure, one
/// line per problem (its exit status, 1 as the real CLI's, is decided in `crate::exit`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ServeError {
    /// The command line could not be parsed (unknown flag, missing value, ...).
    Usage(String),
    /// The config file could not be read, is not JSON, or has unknown keys or bad values.
    /// One message per problem; printed as `Error loading config file: <message>`.
    ConfigFile(Vec<String>),
    /// The merged configuration is invalid (port, auth without secret, persistence).
    /// Printed as `Error: <message>`.
    Invalid(Vec<String>),
    /// The `--fixture` config is not valid. Printed as `Error: invalid fixture: <message>`.
    Fixture(Vec<String>),
    /// The server could not start (port in use, testkit refused the configuration).
    Start(String),
}

impl ServeError {
    /// The lines to print on stderr.
    pub(crate) fn lines(&self) -> Vec<String> {
        match self {
            ServeError::Usage(m) => vec![
                format!("Error: {m}"),
                "Run \"noex serve --help\" for usage information.".to_string(),
            ],
            ServeError::ConfigFile(ms) => ms
                .iter()
                .map(|m| format!("Error loading config file: {m}"))
                .collect(),
            ServeError::Invalid(ms) => ms.iter().map(|m| format!("Error: {m}")).collect(),
            ServeError::Fixture(ms) => ms
                .iter()
                .map(|m| format!("Error: invalid fixture: {m}"))
                .collect(),
            ServeError::Start(m) => vec![format!("Fatal: {m}")],
        }
    }
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.lines().join("\n"))
    }
}

impl std::error::Error for ServeError {}
