//! `noex serve`'s command line: the real `noex-server` flags (same names, same defaults,
//! flags over config file) plus the testing extras (`--fixture`, `--chaos`,
//! `--control-port`, `--control-stdin`, `--shutdown-grace`). It is parsed apart from the
//! `noex` command line, with its own help, version and error messages, as the real CLI's.

use std::ffi::OsString;
use std::time::Duration;

use clap::Parser;

use super::error::ServeError;
use crate::timefmt::parse_duration;

/// `noex serve` flags. Values the real CLI reads as strings and converts itself (port,
/// max connections per IP) are kept as strings here and converted as it does.
#[derive(Debug, Default, Parser)]
#[command(
    name = "serve",
    bin_name = "noex serve",
    about = "Run an in-memory noex-server (accepts the `noex-server` command line)",
    disable_help_flag = true,
    disable_version_flag = true,
    args_override_self = true
)]
pub(crate) struct ServeArgs {
    /// Port (default: 8080).
    #[arg(short = 'p', long)]
    pub(crate) port: Option<String>,
    /// Host (default: 0.0.0.0).
    #[arg(short = 'H', long)]
    pub(crate) host: Option<String>,
    /// JSON config file.
    #[arg(short = 'c', long)]
    pub(crate) config: Option<String>,
    /// Instance name (default: noex-server).
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// memory | file | sqlite (only memory is supported).
    #[arg(long)]
    pub(crate) persistence: Option<String>,
    /// Directory for the file adapter (accepted, unused: memory only).
    #[arg(long = "data-dir")]
    pub(crate) data_dir: Option<String>,
    /// Path to the SQLite DB (accepted, unused: memory only).
    #[arg(long)]
    pub(crate) db: Option<String>,
    /// Enable built-in authentication.
    #[arg(long)]
    pub(crate) auth: bool,
    /// Admin secret (required with --auth).
    #[arg(long = "admin-secret")]
    pub(crate) admin_secret: Option<String>,
    /// Disable the rules engine.
    #[arg(long = "no-rules")]
    pub(crate) no_rules: bool,
    /// Enable the audit log.
    #[arg(long)]
    pub(crate) audit: bool,
    /// Hide error details in responses.
    #[arg(long = "no-error-details")]
    pub(crate) no_error_details: bool,
    /// Comma-separated allowed Origin headers.
    #[arg(long = "allowed-origins")]
    pub(crate) allowed_origins: Option<String>,
    /// Max WebSocket connections per IP.
    #[arg(long = "max-connections-per-ip")]
    pub(crate) max_connections_per_ip: Option<String>,
    /// Show help.
    #[arg(short = 'h', long)]
    pub(crate) help: bool,
    /// Show the version.
    #[arg(short = 'v', long)]
    pub(crate) version: bool,

    /// The Python client's test-launcher config (JSON, or @file); prints the URL first.
    #[arg(long, conflicts_with_all = [
        "port", "host", "config", "name", "persistence", "data_dir", "db", "auth",
        "admin_secret", "no_rules", "audit", "no_error_details", "allowed_origins",
        "max_connections_per_ip",
    ])]
    pub(crate) fixture: Option<String>,
    /// Inject random faults, reproducibly from this seed.
    #[arg(long)]
    pub(crate) chaos: Option<u64>,
    /// Mean time between chaos faults (default 2s).
    #[arg(long = "chaos-interval", requires = "chaos", value_parser = parse_duration_arg)]
    pub(crate) chaos_interval: Option<Duration>,
    /// Comma-separated fault kinds chaos may pick.
    #[arg(long = "chaos-faults", requires = "chaos")]
    pub(crate) chaos_faults: Option<String>,
    /// Serve fault commands over HTTP on 127.0.0.1:PORT (0 = any free port).
    #[arg(long = "control-port")]
    pub(crate) control_port: Option<u16>,
    /// Read fault commands from standard input (one per line); end of input stops.
    #[arg(long = "control-stdin")]
    pub(crate) control_stdin: bool,
    /// On SIGTERM/Ctrl-C, send `system`/`shutdown` with this grace period first.
    #[arg(long = "shutdown-grace", value_parser = parse_duration_arg)]
    pub(crate) shutdown_grace: Option<Duration>,
}

impl ServeArgs {
    /// Parse the arguments that follow `noex serve`. A bad command line is refused as the
    /// real CLI refuses it: `Error: <message>` and a pointer to `--help`.
    pub(crate) fn parse_line(args: Vec<OsString>) -> Result<ServeArgs, ServeError> {
        let line = std::iter::once(OsString::from("noex serve")).chain(args);
        ServeArgs::try_parse_from(line).map_err(|e| {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default();
            ServeError::Usage(first.strip_prefix("error: ").unwrap_or(first).to_string())
        })
    }
}

fn parse_duration_arg(s: &str) -> Result<Duration, String> {
    parse_duration(s)
}

/// JavaScript's `Number(string)` for the values the real CLI converts: `None` is NaN.
/// Covers decimal, exponent, `Infinity`, `0x`/`0o`/`0b` and the empty string (0).
pub(crate) fn js_number(s: &str) -> Option<f64> {
    let t = s.trim();
    if t.is_empty() {
        return Some(0.0);
    }
    let radix = |p: &str, r: u32| u64::from_str_radix(p, r).ok().map(|n| n as f64);
    if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        return radix(h, 16);
    }
    if let Some(o) = t.strip_prefix("0o").or_else(|| t.strip_prefix("0O")) {
        return radix(o, 8);
    }
    if let Some(b) = t.strip_prefix("0b").or_else(|| t.strip_prefix("0B")) {
        return radix(b, 2);
    }
    match t {
        "Infinity" | "+Infinity" => return Some(f64::INFINITY),
        "-Infinity" => return Some(f64::NEG_INFINITY),
        _ => {}
    }
    // Rust accepts "inf"/"nan"/"infinity", JavaScript does not.
    if !t
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
    {
        return None;
    }
    t.parse::<f64>().ok()
}

/// A number as JavaScript prints it in a template string (`8080`, `80.5`, `NaN`).
pub(crate) fn js_display(n: Option<f64>) -> String {
    match n {
        None => "NaN".into(),
        Some(f) if f.is_infinite() => {
            if f > 0.0 {
                "Infinity".into()
            } else {
                "-Infinity".into()
            }
        }
        Some(f) if f.fract() == 0.0 && f.abs() < 1e21 => format!("{}", f as i64),
        Some(f) => format!("{f}"),
    }
}

/// The help text: the real CLI's, plus the `noex serve` extras.
pub(crate) const HELP: &str = "\
noex serve - in-memory noex-server for tests (noex-server command line)

USAGE:
  noex serve [OPTIONS]

OPTIONS:
  -p, --port <number>         Port (default: 8080)
  -H, --host <address>        Host (default: 0.0.0.0)
  -c, --config <path>         JSON config file
      --name <string>         Instance name (default: noex-server)

  PERSISTENCE:
      --persistence <type>    memory (file and sqlite are not supported)
      --data-dir <path>       Directory for FileAdapter (unused)
      --db <path>             Path to SQLite DB (unused)

  AUTH:
      --auth                  Enable built-in authentication
      --admin-secret <secret> Admin secret (required with --auth)

  FEATURES:
      --no-rules              Disable rules engine
      --audit                 Enable audit log

  SECURITY:
      --no-error-details      Hide error details in responses (production)
      --allowed-origins <list> Comma-separated allowed Origin headers
      --max-connections-per-ip <n> Max WebSocket connections per IP

  TESTING (noex serve only):
      --fixture <json|@file>  Python client test-launcher config; prints ws://HOST:PORT
                              as the first line of stdout
      --chaos <seed>          Inject random faults (reproducible sequence per seed)
      --chaos-interval <dur>  Mean time between chaos faults (default: 2s)
      --chaos-faults <list>   Fault kinds: drop,close,stall,delay,handshake,shutdown,
                              restart,revoke (default: drop,close,stall,delay,handshake)
      --control-port <port>   Fault commands over HTTP on 127.0.0.1 (0: any free port)
      --control-stdin         Fault commands on stdin, one per line (EOF stops the server)
      --shutdown-grace <dur>  On SIGTERM/Ctrl-C send system/shutdown and wait this long
                              (default: 0, as the real CLI)

  -h, --help                  Show this help message
  -v, --version               Show version number

CLI flags override values from the config file.
Durations: 500ms, 2s, 1.5s, 1m or a number of milliseconds.

EXAMPLES:
  # Default (memory, port 8080)
  noex serve

  # Auth + custom port
  noex serve --auth --admin-secret s3cret --port 3000

  # From config file + port override
  noex serve --config server.json --port 9090

  # Python test launcher replacement, random faults, HTTP control
  noex serve --fixture '{\"buckets\":[]}' --chaos 42 --control-port 0";

#[cfg(test)]
mod tests {
    use super::*;

    fn serve(args: &[&str]) -> Result<ServeArgs, ServeError> {
        ServeArgs::parse_line(args.iter().map(OsString::from).collect())
    }

    #[test]
    fn every_real_flag_parses() {
        let a = serve(&[
            "-p",
            "3000",
            "-H",
            "127.0.0.1",
            "-c",
            "x.json",
            "--name",
            "n",
            "--persistence",
            "memory",
            "--data-dir",
            "d",
            "--db",
            "x.db",
            "--auth",
            "--admin-secret",
            "s",
            "--no-rules",
            "--audit",
            "--no-error-details",
            "--allowed-origins",
            "a,b",
            "--max-connections-per-ip",
            "5",
        ])
        .unwrap();
        assert_eq!(a.port.as_deref(), Some("3000"));
        assert_eq!(a.host.as_deref(), Some("127.0.0.1"));
        assert_eq!(a.config.as_deref(), Some("x.json"));
        assert_eq!(a.name.as_deref(), Some("n"));
        assert_eq!(a.persistence.as_deref(), Some("memory"));
        assert_eq!(a.data_dir.as_deref(), Some("d"));
        assert_eq!(a.db.as_deref(), Some("x.db"));
        assert!(a.auth && a.no_rules && a.audit && a.no_error_details);
        assert_eq!(a.admin_secret.as_deref(), Some("s"));
        assert_eq!(a.allowed_origins.as_deref(), Some("a,b"));
        assert_eq!(a.max_connections_per_ip.as_deref(), Some("5"));
    }

    #[test]
    fn long_forms_equals_and_repeats() {
        let a = serve(&["--port=1", "--port", "2", "--host=h", "--config=c"]).unwrap();
        assert_eq!(a.port.as_deref(), Some("2"));
        assert_eq!(a.host.as_deref(), Some("h"));
        assert_eq!(a.config.as_deref(), Some("c"));
    }

    #[test]
    fn help_and_version_are_flags_of_serve() {
        assert!(serve(&["-h"]).unwrap().help);
        assert!(serve(&["--help"]).unwrap().help);
        assert!(serve(&["-v"]).unwrap().version);
        assert!(serve(&["--version"]).unwrap().version);
    }

    #[test]
    fn unknown_flags_and_missing_values_are_errors() {
        assert_eq!(
            serve(&["--bogus"]).unwrap_err(),
            ServeError::Usage("unexpected argument '--bogus' found".into())
        );
        assert!(serve(&["--port"]).is_err());
        assert!(serve(&["--auth=true"]).is_err());
        assert!(serve(&["positional"]).is_err());
    }

    #[test]
    fn fixture_conflicts_with_server_flags() {
        assert!(serve(&["--fixture", "{}", "--port", "1"]).is_err());
        assert!(serve(&["--fixture", "{}", "--auth"]).is_err());
        let a = serve(&["--fixture", "{}", "--chaos", "7", "--control-port", "0"]).unwrap();
        assert_eq!(a.fixture.as_deref(), Some("{}"));
        assert_eq!(a.chaos, Some(7));
        assert_eq!(a.control_port, Some(0));
    }

    #[test]
    fn chaos_options_need_chaos() {
        assert!(serve(&["--chaos-interval", "1s"]).is_err());
        let a = serve(&["--chaos", "1", "--chaos-interval", "250ms"]).unwrap();
        assert_eq!(a.chaos_interval, Some(Duration::from_millis(250)));
        assert!(serve(&["--chaos", "x"]).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("250"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("abc").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("1e300s").is_err());
    }

    #[test]
    fn js_numbers() {
        assert_eq!(js_number("8080"), Some(8080.0));
        assert_eq!(js_number(" 80 "), Some(80.0));
        assert_eq!(js_number(""), Some(0.0));
        assert_eq!(js_number("0x10"), Some(16.0));
        assert_eq!(js_number("80.5"), Some(80.5));
        assert_eq!(js_number("1e3"), Some(1000.0));
        assert_eq!(js_number("abc"), None);
        assert_eq!(js_number("inf"), None);
        assert_eq!(js_number("Infinity"), Some(f64::INFINITY));
        assert_eq!(js_display(None), "NaN");
        assert_eq!(js_display(Some(80.0)), "80");
        assert_eq!(js_display(Some(80.5)), "80.5");
        assert_eq!(js_display(Some(-1.0)), "-1");
        assert_eq!(js_display(Some(f64::INFINITY)), "Infinity");
    }
}
