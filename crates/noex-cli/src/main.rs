//! `noex`: command line tools for noex-server. `noex serve` runs an in-memory server
//! (the noex-testkit server) with the real `noex-server` command line, the Python
//! client's test-launcher fixture format, and fault injection (see the README).

mod args;
mod builder;
mod chaos;
mod check;
mod config_file;
mod control;
mod error;
mod fixture;
mod serve;
mod settings;
mod stdout;

use clap::error::ErrorKind;
use clap::Parser;

use crate::args::{Cli, Command};
use crate::error::CliError;

fn init_tracing() {
    let filter = std::env::var("NOEX_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "warn,noex=info".into());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => match e.kind() {
            ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
            _ => {
                // The real CLI: `Error: <message>` and a pointer to --help, status 1.
                let text = e.to_string();
                let first = text.lines().next().unwrap_or_default();
                let message = first.strip_prefix("error: ").unwrap_or(first);
                let err = CliError::Usage(message.to_string());
                for line in err.lines() {
                    eprintln!("{line}");
                }
                std::process::exit(err.exit_code());
            }
        },
    };
    init_tracing();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
    };
    if let Err(e) = result {
        for line in e.lines() {
            eprintln!("{line}");
        }
        std::process::exit(e.exit_code());
    }
}
