//! How `noex` ends: a failed command's lines on stderr, and the exit status. Every status
//! the program exits with is decided here.
//!
//! | status | client commands | `noex serve` |
//! |---|---|---|
//! | 0 | success | success, `--help`, `--version` |
//! | 1 | anything else (an answer the client could not understand, ...) | every failure, as the real `noex-server` CLI |
//! | 2 | usage: bad arguments, bad JSON, unknown operation, missing password | |
//! | 3 | the server answered with an error (including a refused login) | |
//! | 4 | timeout: no connection or no answer within `--timeout` | |
//! | 5 | connection: refused, closed, lost, handshake failed | |
//!
//! A `noex` command line that names no command, or a client command with bad flags, is
//! clap's: its message and status 2 (0 after `--help` and `--version`).

use std::io::Write;
use std::process::ExitCode;

use crate::client::Failure;
use crate::serve::ServeError;

/// The exit status of a failed client command.
fn client_status(failure: &Failure) -> u8 {
    match failure {
        Failure::Other(_) => 1,
        Failure::Usage(_) => 2,
        Failure::Server { .. } => 3,
        Failure::Timeout(_) => 4,
        Failure::Connection(_) => 5,
    }
}

/// The exit status of a failed `noex serve`: 1 whatever the failure, as the real CLI.
fn serve_status(_: &ServeError) -> u8 {
    1
}

/// How a client command ends.
pub(crate) fn client(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => fail(&failure.lines(), client_status(&failure)),
    }
}

/// How `noex serve` ends.
pub(crate) fn serve(result: Result<(), ServeError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error.lines(), serve_status(&error)),
    }
}

/// Print `lines` on stderr (a closed stderr is no reason to fail differently).
fn fail(lines: &[String], status: u8) -> ExitCode {
    let mut stderr = std::io::stderr().lock();
    for line in lines {
        let _ = writeln!(stderr, "{line}");
    }
    ExitCode::from(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(client_status(&Failure::Other("x".into())), 1);
        assert_eq!(client_status(&Failure::Usage("x".into())), 2);
        let server = Failure::Server {
            code: "NOT_FOUND".into(),
            message: "no".into(),
            details: None,
        };
        assert_eq!(client_status(&server), 3);
        assert_eq!(client_status(&Failure::Timeout("x".into())), 4);
        assert_eq!(client_status(&Failure::Connection("x".into())), 5);
        assert_eq!(serve_status(&ServeError::Usage("x".into())), 1);
        assert_eq!(serve_status(&ServeError::Start("x".into())), 1);
    }
}
