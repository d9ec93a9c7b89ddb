//! `noex serve`: build the settings, start the testkit server, print what the real CLI
//! (or, with `--fixture`, the Python test launcher) prints, then serve until SIGTERM,
//! Ctrl-C, a `stop` command, or the end of standard input (with `--control-stdin`).

use std::sync::Arc;
use std::time::Duration;

use noex_testkit::TestServer;
use tokio::sync::mpsc;

use crate::args::{ServeArgs, HELP};
use crate::builder::apply;
use crate::control::{self, Ctx};
use crate::error::CliError;
use crate::settings::{Auth, ServerSettings};
use crate::stdout::print_line;
use crate::{chaos, config_file, fixture};

/// The version the real CLI reports (its banner and `--version`).
const SERVER_VERSION: &str = "0.1.0";

/// What to print once listening.
#[derive(Debug, Clone, PartialEq)]
enum Output {
    /// The real CLI's banner.
    Banner { persistence: String },
    /// The launcher's one line.
    Url,
}

/// The real CLI's startup banner, with the address actually listened on.
fn banner(s: &ServerSettings, persistence: &str, url: &str, control: Option<&str>) -> String {
    let mut b = format!(
        "noex-server v{SERVER_VERSION}\n  URL:          {url}\n  Persistence:  {persistence}\n  \
         Auth:         {}\n  Rules:        {}\n  Audit:        {}\n  Error details: {}\n  \
         Origins:      {}\n  Max conn/IP:  {}",
        if matches!(s.auth, Auth::BuiltIn { .. }) {
            "built-in"
        } else {
            "disabled"
        },
        if s.rules { "enabled" } else { "disabled" },
        if s.audit.is_some() {
            "enabled"
        } else {
            "disabled"
        },
        if s.expose_error_details {
            "exposed"
        } else {
            "hidden"
        },
        s.allowed_origins
            .as_ref()
            .map_or("any".to_string(), |o| o.join(", ")),
        s.max_connections_per_ip
            .map_or("unlimited".to_string(), |n| n.to_string()),
    );
    if let Some(c) = control {
        b.push_str(&format!("\n  Control:      {c}"));
    }
    b
}

/// Everything decided before starting.
#[derive(Debug)]
struct Plan {
    settings: ServerSettings,
    output: Output,
    chaos: Option<(u64, Vec<chaos::Kind>, Duration)>,
}

fn plan(args: &ServeArgs) -> Result<Plan, CliError> {
    let chaos = match args.chaos {
        Some(seed) => {
            let kinds = match &args.chaos_faults {
                Some(list) => chaos::parse_kinds(list).map_err(CliError::Usage)?,
                None => chaos::DEFAULT_KINDS.to_vec(),
            };
            let mean = args.chaos_interval.unwrap_or(Duration::from_secs(2));
            if mean.is_zero() {
                return Err(CliError::Usage(
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

/// Run `noex serve`; returns the exit status.
pub(crate) fn run(args: ServeArgs) -> Result<(), CliError> {
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
        .map_err(|e| CliError::Start(format!("could not start the runtime: {e}")))?;
    let result = runtime.block_on(serve(args, plan));
    // Background tasks (chaos, control connections) end here.
    runtime.shutdown_timeout(Duration::from_millis(500));
    result
}

async fn serve(args: ServeArgs, plan: Plan) -> Result<(), CliError> {
    // Handle signals before anyone learns the URL: a SIGTERM right after the URL line
    // must stop the server gracefully, not kill the process.
    let mut signals = Signals::new()?;
    let builder = apply(&plan.settings, TestServer::builder());
    let server = tokio::task::spawn_blocking(move || builder.start())
        .await
        .map_err(|e| CliError::Start(e.to_string()))?
        .map_err(|e| CliError::Start(e.to_string()))?;
    let server = Arc::new(server);

    // Bind the control port before printing anything: the URL line must come first and
    // the control line right after it.
    let control = match args.control_port {
        Some(port) => {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .map_err(|e| {
                    CliError::Start(format!("could not bind the control port {port}: {e}"))
                })?;
            let addr = listener
                .local_addr()
                .map_err(|e| CliError::Start(e.to_string()))?;
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
        control::spawn_http(ctx.clone(), listener);
    }
    if args.control_stdin {
        control::spawn_stdin(ctx.clone());
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

/// SIGTERM and Ctrl-C (SIGINT); on other platforms Ctrl-C only.
struct Signals {
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
    #[cfg(unix)]
    fn new() -> Result<Signals, CliError> {
        use tokio::signal::unix::{signal, SignalKind};
        let err = |e: std::io::Error| CliError::Start(format!("could not handle signals: {e}"));
        Ok(Signals {
            term: signal(SignalKind::terminate()).map_err(err)?,
            int: signal(SignalKind::interrupt()).map_err(err)?,
        })
    }

    #[cfg(not(unix))]
    fn new() -> Result<Signals, CliError> {
        Ok(Signals {})
    }

    #[cfg(unix)]
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }

    #[cfg(not(unix))]
    async fn next(&mut self) -> &'static str {
        match tokio::signal::ctrl_c().await {
            Ok(()) => "Ctrl-C",
            Err(_) => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Audit;

    #[test]
    fn banner_matches_the_real_cli() {
        let s = ServerSettings::default();
        assert_eq!(
            banner(&s, "memory", "ws://127.0.0.1:8080", None),
            "noex-server v0.1.0\n  URL:          ws://127.0.0.1:8080\n  Persistence:  memory\n  \
             Auth:         disabled\n  Rules:        enabled\n  Audit:        disabled\n  \
             Error details: exposed\n  Origins:      any\n  Max conn/IP:  unlimited"
        );
        let s = ServerSettings {
            auth: Auth::BuiltIn {
                admin_secret: "x".into(),
                session_ttl_ms: None,
            },
            rules: false,
            audit: Some(Audit::default()),
            expose_error_details: false,
            allowed_origins: Some(vec!["a".into(), "b".into()]),
            max_connections_per_ip: Some(3),
            ..Default::default()
        };
        let b = banner(&s, "memory", "ws://127.0.0.1:1", Some("http://127.0.0.1:2"));
        assert!(b.contains("Auth:         built-in"));
        assert!(b.contains("Rules:        disabled"));
        assert!(b.contains("Audit:        enabled"));
        assert!(b.contains("Error details: hidden"));
        assert!(b.contains("Origins:      a, b"));
        assert!(b.contains("Max conn/IP:  3"));
        assert!(b.ends_with("\n  Control:      http://127.0.0.1:2"));
        assert!(!b.contains('x') || !b.contains("admin"));
    }
}
