//! `noex`: command line tools for noex-server. The client commands (`noex call`, `noex get`,
//! ...; [`client`]) talk to a server through the public SDK (`noex-tokio`); `noex serve`
//! ([`serve`]) runs an in-memory server (the noex-testkit server) with the real
//! `noex-server` command line, the Python client's test-launcher fixture format, and fault
//! injection (see the README).

mod cli;
mod client;
mod completions;
mod exit;
mod serve;
mod stdout;
mod timefmt;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

fn init_tracing(default: &str) {
    let filter = std::env::var("NOEX_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| default.into());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

fn main() -> ExitCode {
    // A bad `noex` command line gets clap's message and status 2.
    match Cli::parse().command {
        Command::Serve(line) => {
            init_tracing("warn,noex=info");
            exit::serve(serve::run(line.args))
        }
        Command::Client(command) => {
            // A one-shot client command logs only errors unless asked (NOEX_LOG).
            init_tracing("error");
            exit::client(client::run(command))
        }
        Command::Completions(args) => {
            completions::run(&args);
            ExitCode::SUCCESS
        }
    }
}
