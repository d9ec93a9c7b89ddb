//! `noex serve`: an in-memory noex-server (the noex-testkit server) with the real
//! `noex-server` command line, the Python test launcher's `--fixture`, and faults from
//! outside (chaos, control commands). The entry: read the command line, settle the
//! settings ([`config_file`] with the flags, or [`fixture`]), start the testkit server,
//! print what the real CLI (or, with `--fixture`, the launcher) prints, then serve until
//! SIGTERM, Ctrl-C, a `stop` command, or the end of standard input (with `--control-stdin`).

mod banner;
mod chaos;
mod command_line;
mod config_file;
mod control;
mod error;
mod fixture;
mod json_check;
mod settings;
mod signals;
mod testkit_builder;

use std::ffi::OsString;
use std::sync::Arc;
use std::time::Duration;

use noex_testkit::TestServer;
use tokio::sync::mpsc;

use self::banner::{banner, SERVER_VERSION};
use self::control::execute::Ctx;
use self::settings::ServerSettings;
use self::signals::Signals;
use self::testkit_builder::apply;
use crate::stdout::print_line;

pub(crate) use self::command_line::{ServeArgs, HELP};
pub(crate) use self::error::ServeError;

/// What to print once listening.
#[derive(Debug, Clone, PartialEq)]
enum Output {
    /// The real CLI's banner.
    Banner { persistence: String },
    /// The launcher's one line.
    Url,
}

/// Everything decided before starting.
#[derive(Debug)]
struct Plan {
    settings: ServerSettings,
    output: Output,
    chaos: Option<(u64, Vec<chaos::Kind>, Duration)>,
}

fn plan(args: &ServeArgs) -> Result<Plan, ServeError> {
    let chaos = match args.chaos {
        Some(seed) => {
            let kinds = match &args.chaos_faults {
                Some(list) => chaos::parse_kinds(list).map_err(ServeError::Usage)?,
                None => chaos::DEFAULT_KINDS.to_vec(),
            };
            let mean = args.chaos_interval.unwrap_or(Duration::from_secs(2));
            if mean.is_zero() {
                return Err(ServeError::Usage(
                    "--chaos-interval must be more than 0".into(),
                ));
            }
            Some((seed, kinds, mean))
        }
        None => None,
    };
    let (settings, output) = match &args.fixture {
        Some(f) => (fixture::load(f)?, Output::Url),
        None => {
            let file = match &args.config {
                Some(path) => config_file::load(path)?,
                None => config_file::FileConfig::default(),
            };
            let r = config_file::resolve(args, &file)?;
            (
                r.settings,
                Output::Banner {
                    persistence: r.persistence,
                },
            )
        }
    };
    Ok(Plan {
        settings,
        output,
        chaos,
    })
}

/// Run `noex serve` with `args`, the arguments that follow `serve` on the command line.
pub(crate) fn run(args: Vec<OsString>) -> Result<(), ServeError> {
    let args = ServeArgs::parse_line(args)?;
    if args.help {
        print_line(HELP);
        return Ok(());
    }
    if args.version {
        print_line(&format!("noex-server v{SERVER_VERSION}"));
        return Ok(());
    }
    let plan = plan(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| ServeError::Start(format!("could not start the runtime: {e}")))?;
    let result = runtime.block_on(serve(args, plan));
    // Background tasks (chaos, control connections) end here.
    runtime.shutdown_timeout(Duration::from_millis(500));
    result
}

async fn serve(args: ServeArgs, plan: Plan) -> Result<(), ServeError> {
    // Handle signals before anyone learns the URL: a SIGTERM right after the URL line
    // must stop the server gracefully, not kill the process.
    let mut signals = Signals::new()?;
    let builder = apply(&plan.settings, TestServer::builder());
    let server = tokio::task::spawn_blocking(move || builder.start())
        .await
        .map_err(|e| ServeError::Start(e.to_string()))?
        .map_err(|e| ServeError::Start(e.to_string()))?;
    let server = Arc::new(server);

    // Bind the control port before printing anything: the URL line must come first and
    // the control line right after it.
    let control = match args.control_port {
        Some(port) => {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .map_err(|e| {
                    ServeError::Start(format!("could not bind the control port {port}: {e}"))
                })?;
            let addr = listener
                .local_addr()
                .map_err(|e| ServeError::Start(e.to_string()))?;
            Some((listener, format!("http://{addr}")))
        }
        None => None,
    };
    let control_url = control.as_ref().map(|(_, u)| u.clone());
    match &plan.output {
        Output::Url => {
            print_line(&server.url());
            if let Some(u) = &control_url {
                print_line(&format!("control {u}"));
            }
        }
        Output::Banner { persistence } => {
            // As the real banner: the configured host with the port actually bound.
            let url = format!("ws://{}:{}", plan.settings.host, server.port());
            print_line(&banner(
                &plan.settings,
                persistence,
                &url,
                control_url.as_deref(),
            ))
        }
    }

    let (stop_tx, mut stop_rx) = mpsc::unbounded_channel();
    let ctx = Ctx::new(server.clone(), stop_tx);
    if let Some((listener, _)) = control {
        control::http::spawn(ctx.clone(), listener);
    }
    if args.control_stdin {
        control::stdin::spawn(ctx.clone());
    }
    if let Some((seed, kinds, mean)) = plan.chaos {
        tracing::info!(seed, ?kinds, ?mean, "chaos on");
        chaos::spawn(ctx.clone(), seed, kinds, mean);
    }

    let why = tokio::select! {
        s = signals.next() => s,
        r = stop_rx.recv() => r.unwrap_or("stop"),
    };
    tracing::debug!(reason = why, "shutting down");
    if plan.output != Output::Url {
        print_line("\nShutting down...");
    }
    // The real CLI calls `server.stop()` (grace 0): close 1000 `server_shutdown`. With
    // `--shutdown-grace`, clients get `system`/`shutdown` first and that long to leave.
    let grace = args.shutdown_grace.unwrap_or(Duration::ZERO);
    let s = server.clone();
    let mut stopping = tokio::task::spawn_blocking(move || s.shutdown(grace));
    tokio::select! {
        _ = &mut stopping => {}
        s = signals.next() => {
            tracing::info!(signal = s, "second signal: exiting now");
            return Ok(());
        }
    }
    Ok(())
}
