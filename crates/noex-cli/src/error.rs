//! The CLI's errors: every failure is a typed value with the message the user sees.

use std::fmt;

/// A failure that ends `noex serve` before (or instead of) serving.
///
/// Each variant prints like the real `noex-server` CLI does for the same failure, one
/// line per problem, and exits with status 1 (the real CLI's only failure status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CliError {
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

impl CliError {
    /// The lines to print on stderr.
    pub(crate) fn lines(&self) -> Vec<String> {
        match self {
            CliError::Usage(m) => vec![
                format!("Error: {m}"),
                "Run \"noex serve --help\" for usage information.".to_string(),
            ],
            CliError::ConfigFile(ms) => ms
                .iter()
                .map(|m| format!("Error loading config file: {m}"))
                .collect(),
            CliError::Invalid(ms) => ms.iter().map(|m| format!("Error: {m}")).collect(),
            CliError::Fixture(ms) => ms
                .iter()
                .map(|m| format!("Error: invalid fixture: {m}"))
                .collect(),
            CliError::Start(m) => vec![format!("Fatal: {m}")],
        }
    }

    /// The process exit status (the real CLI exits with 1 on every failure).
    pub(crate) fn exit_code(&self) -> i32 {
        1
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.lines().join("\n"))
    }
}

impl std::error::Error for CliError {}
