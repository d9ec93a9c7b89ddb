//! The `noex` command line: which command runs. Each command's own arguments are its
//! side's: the client commands' in [`crate::client::args`]; `noex serve` takes the real
//! `noex-server` command line, which it parses itself (`crate::serve::ServeArgs`).

use std::ffi::OsString;

use clap::{Args, Parser, Subcommand};

use crate::{client, serve};

/// The `noex` command.
#[derive(Debug, Parser)]
#[command(name = "noex", version, about = "Command line tools for noex-server", long_about = None)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run an in-memory noex-server (accepts the `noex-server` command line).
    #[command(
        disable_help_flag = true,
        disable_version_flag = true,
        override_help = serve::HELP
    )]
    Serve(ServeLine),
    #[command(flatten)]
    Client(client::Command),
    /// Print a shell completion script (bash, zsh, fish, ...).
    Completions(CompletionsArgs),
}

/// What follows `noex serve`, as given: the `noex-server` command line, which `noex serve`
/// parses itself, with its own `--help`, `--version` and error messages (the real CLI's).
#[derive(Debug, Args)]
pub(crate) struct ServeLine {
    /// The `noex-server` options (see `noex serve --help`).
    #[arg(
        value_name = "OPTIONS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub(crate) args: Vec<OsString>,
}

/// `noex completions`.
#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell.
    pub(crate) shell: clap_complete::Shell,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        Cli::try_parse_from(std::iter::once("noex").chain(args.iter().copied())).map(|c| c.command)
    }

    #[test]
    fn serve_takes_its_command_line_whole() {
        for line in [
            &[][..],
            &["--bogus"],
            &["-p", "0", "--host=127.0.0.1"],
            &["--help"],
            &["-v"],
            &["positional", "--fixture", "{}"],
        ] {
            match parse(&[&["serve"][..], line].concat()) {
                Ok(Command::Serve(s)) => assert_eq!(s.args, line, "{line:?}"),
                other => panic!("{line:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_client_commands_are_commands_of_noex() {
        assert!(matches!(
            parse(&["call", "server.stats"]),
            Ok(Command::Client(client::Command::Call(_)))
        ));
        assert!(matches!(
            parse(&["completions", "bash"]),
            Ok(Command::Completions(_))
        ));
        assert!(parse(&["serv"]).is_err());
        assert!(parse(&["--bogus", "serve"]).is_err());
    }
}
