//! `noex`: command line tools for noex-server. The client commands (`noex call`, `noex get`,
//! ...) talk to a server through the public SDK (`noex-tokio`); `noex serve` runs an
//! in-memory server (the noex-testkit server) with the real `noex-server` command line, the
//! Python client's test-launcher fixture format, and fault injection (see the README).

mod args;
mod bench;
mod builder;
mod call;
mod chaos;
mod check;
mod client_args;
mod completions;
mod config_file;
mod connect;
mod control;
mod error;
mod exit;
mod fixture;
mod input;
mod output;
mod serve;
mod settings;
mod shortcuts;
mod stdout;
mod timefmt;
mod tui;
mod updates;
mod watch;

use clap::error::ErrorKind;
use clap::Parser;

use crate::args::{Cli, Command};
use crate::error::CliError;

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

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => match e.kind() {
            ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
            // The client commands: clap's message, status 2 (usage).
            _ if std::env::args().nth(1).as_deref() != Some("serve") => e.exit(),
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
    // A one-shot client command logs only errors unless asked (NOEX_LOG).
    let serve = matches!(cli.command, Command::Serve(_));
    init_tracing(if serve { "warn,noex=info" } else { "error" });
    let client = match cli.command {
        Command::Serve(args) => {
            if let Err(e) = serve::run(args) {
                fail(&e.lines(), e.exit_code());
            }
            return;
        }
        Command::Call(a) => call::run(&a),
        Command::Ops(a) => call::list(&a),
        Command::Get(a) => shortcuts::get(&a),
        Command::Insert(a) => shortcuts::insert(&a),
        Command::Query(a) => shortcuts::query(&a),
        Command::Emit(a) => shortcuts::emit(&a),
        Command::Fact(a) => shortcuts::fact(&a),
        Command::Stats(a) => shortcuts::stats(&a),
        Command::Whoami(a) => shortcuts::whoami(&a),
        Command::Completions(a) => completions::run(&a),
        Command::Watch(a) => watch::run(&a),
        Command::Bench(a) => bench::run(&a),
    };
    if let Err(e) = client {
        fail(&e.lines(), e.exit_code());
    }
}

fn fail(lines: &[String], code: i32) -> ! {
    for line in lines {
        eprintln!("{line}");
    }
    std::process::exit(code)
}
