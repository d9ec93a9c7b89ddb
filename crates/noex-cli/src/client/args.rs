//! The client commands' command line: connection and output flags shared by every
//! command that talks to a server, and each command's arguments.

use std::time::Duration;

use clap::{Args, Subcommand};

use crate::timefmt::parse_duration;

/// The client commands (each a subcommand of `noex`).
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Send any operation by its wire name and print the answer.
    #[command(after_help = CALL_HELP)]
    Call(CallArgs),
    /// List every operation: whether it reads or writes, its answer and its fields.
    Ops(OpsArgs),
    /// Read one record (store.get).
    Get(GetArgs),
    /// Insert a record (store.insert).
    Insert(InsertArgs),
    /// Records matching a filter (store.where), or all of them (store.all).
    Query(QueryArgs),
    /// Emit an event (rules.emit).
    Emit(EmitArgs),
    /// Facts of the rule engine: get, set, delete, query.
    Fact(FactArgs),
    /// Server statistics (server.stats).
    Stats(PlainArgs),
    /// Who the connection is logged in as (auth.whoami; identity.whoami with --user).
    Whoami(PlainArgs),
    /// Follow a query's result or a topic's events live, until Ctrl-C.
    Watch(WatchArgs),
    /// A quick load test: one operation over and over, then req/s and latencies.
    Bench(BenchArgs),
}

/// `noex call --help` examples and exit statuses.
const CALL_HELP: &str = "\
Examples:
  noex call store.insert '{\"bucket\":\"users\",\"data\":{\"name\":\"Alice\"}}'
  noex call store.get bucket=users key=u1
  noex call store.first bucket=users n=2
  echo '{\"bucket\":\"users\"}' | noex call store.all -

Exit status: 0 ok, 1 other failure, 2 usage (bad arguments, bad JSON, unknown operation),
3 error answer from the server, 4 timeout, 5 connection failed.";

/// Where to connect and how to log in.
#[derive(Debug, Clone, Args)]
pub(crate) struct ConnArgs {
    /// Server URL.
    #[arg(
        long,
        env = "NOEX_URL",
        hide_env_values = true,
        default_value = "ws://127.0.0.1:8080"
    )]
    pub(crate) url: String,
    /// Log in with this token (auth.login); NOEX_TOKEN is read when not given.
    #[arg(long, conflicts_with = "user")]
    pub(crate) token: Option<String>,
    /// Log in as this user (identity.login); the password comes from NOEX_PASSWORD or a
    /// prompt.
    #[arg(long)]
    pub(crate) user: Option<String>,
    /// Deadline for connecting and for the answer (500ms, 5s, 1m, ...).
    #[arg(long, default_value = "10s", value_parser = parse_duration_arg)]
    pub(crate) timeout: Duration,
    /// Describe the connection and the request on stderr (secrets are never shown).
    #[arg(short, long)]
    pub(crate) verbose: bool,
}

fn parse_duration_arg(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err("the timeout must be more than 0".into());
    }
    Ok(d)
}

/// How answers are printed.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct OutputArgs {
    /// Compact JSON, one value per line (the default when stdout is not a terminal).
    #[arg(long)]
    pub(crate) json: bool,
    /// No colours (NO_COLOR does the same).
    #[arg(long = "no-color")]
    pub(crate) no_color: bool,
}

/// `noex call`.
#[derive(Debug, Args)]
pub(crate) struct CallArgs {
    /// The operation's wire name (`store.insert`, `rules.emit`, ...; see `noex ops`).
    #[arg(value_name = "OP", index = 1)]
    pub(crate) op: String,
    /// The fields: a JSON object, `-` (a JSON object on stdin) and/or `key=value` pairs
    /// (the value is JSON when it parses as JSON, else a string). Later ones win.
    #[arg(value_name = "FIELDS", index = 2)]
    pub(crate) fields: Vec<String>,
    #[command(flatten)]
    pub(crate) conn: ConnArgs,
    #[command(flatten)]
    pub(crate) out: OutputArgs,
}

/// `noex ops`.
#[derive(Debug, Args)]
pub(crate) struct OpsArgs {
    /// Show only this operation (its wire name), with each of its fields.
    #[arg(value_name = "OP")]
    pub(crate) op: Option<String>,
    #[command(flatten)]
    pub(crate) out: OutputArgs,
}

/// `noex get`.
#[derive(Debug, Args)]
pub(crate) struct GetArgs {
    /// The bucket.
    pub(crate) bucket: String,
    /// The key (a JSON number is sent as a number, anything else as a string).
    pub(crate) key: String,
    #[command(flatten)]
    pub(crate) conn: ConnArgs,
    #[command(flatten)]
    pub(crate) out: OutputArgs,
}

/// `noex insert`.
#[derive(Debug, Args)]
pub(crate) struct InsertArgs {
    /// The bucket.
    pub(crate) bucket: String,
    /// The record: a JSON object, or `-` to read it from stdin.
    pub(crate) data: String,
    #[command(flatten)]
    pub(crate) conn: ConnArgs,
    #[command(flatten)]
    pub(crate) out: OutputArgs,
}

/// `noex query`.
#[derive(Debug, Args)]
pub(crate) struct QueryArgs {
    /// The bucket.
    pub(crate) bucket: String,
    /// A filter (JSON object, or `-` for stdin), e.g. '{"age": {"$gte": 30}}'; without
    /// one, every record.
    pub(crate) filter: Option<String>,
    #[command(flatten)]
    pub(crate) conn: ConnArgs,
    #[command(flatten)]
    pub(crate) out: OutputArgs,
}

/// `noex emit`.
#[derive(Debug, Args)]
pub(crate) struct EmitArgs {
    /// The topic.
    pub(crate) topic: String,
    /// The event's data (any JSON value, or `-` for stdin).
    #[arg(allow_negative_numbers = true)]
    pub(crate) data: Option<String>,
    #[command(flatten)]
    pub(crate) conn: ConnArgs,
    #[command(flatten)]
    pub(crate) out: OutputArgs,
}

/// `noex fact`.
#[derive(Debug, Args)]
pub(crate) struct FactArgs {
    #[command(subcommand)]
    pub(crate) command: FactCommand,
}

/// `noex fact` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum FactCommand {
    /// Read a fact (rules.getFact).
    Get {
        /// The fact's key.
        key: String,
        #[command(flatten)]
        conn: ConnArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Set a fact (rules.setFact); the value is JSON when it parses as JSON, else a string.
    Set {
        /// The fact's key.
        key: String,
        /// The value (`-`: JSON on stdin).
        #[arg(allow_negative_numbers = true)]
        value: String,
        #[command(flatten)]
        conn: ConnArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Delete a fact (rules.deleteFact).
    Delete {
        /// The fact's key.
        key: String,
        #[command(flatten)]
        conn: ConnArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Facts whose key matches a pattern (rules.queryFacts); every fact without one
    /// (rules.getAllFacts).
    Query {
        /// The pattern, e.g. `user:*`.
        pattern: Option<String>,
        #[command(flatten)]
        conn: ConnArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
}

/// Commands with connection and output flags only (`stats`, `whoami`).
#[derive(Debug, Args)]
pub(crate) struct PlainArgs {
    #[command(flatten)]
    pub(crate) conn: ConnArgs,
    #[command(flatten)]
    pub(crate) out: OutputArgs,
}

/// `noex watch`.
#[derive(Debug, Args)]
pub(crate) struct WatchArgs {
    #[command(subcommand)]
    pub(crate) command: WatchCommand,
}

/// `noex watch` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum WatchCommand {
    /// A defined query's result, live (a live view of its records: store.subscribe).
    Query {
        /// The query's name.
        name: String,
        /// The query's parameters: a JSON object, or `-` for stdin.
        #[arg(long)]
        params: Option<String>,
        /// The records' key field (the bucket's key).
        #[arg(long, value_name = "FIELD", default_value = "id")]
        key: String,
        /// One JSON line per record added, updated or removed (JSON lines even on a
        /// terminal).
        #[arg(long)]
        changes: bool,
        #[command(flatten)]
        conn: ConnArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Events whose topic matches a pattern, live (rules.subscribe).
    Topic {
        /// The pattern, e.g. `order.*`.
        pattern: String,
        #[command(flatten)]
        conn: ConnArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
}

/// `noex bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// The operation sent over and over (its wire name; see `noex ops`).
    #[arg(long, default_value = "server.stats")]
    pub(crate) op: String,
    /// Its fields, as for `noex call`: a JSON object, `-` and/or `key=value` pairs.
    #[arg(value_name = "FIELDS")]
    pub(crate) fields: Vec<String>,
    /// Requests in flight on each connection.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub(crate) depth: u32,
    /// Client connections.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub(crate) connections: u32,
    /// How long to send (500ms, 10s, 1m, ...).
    #[arg(long, default_value = "10s", value_parser = parse_duration_arg)]
    pub(crate) duration: Duration,
    #[command(flatten)]
    pub(crate) conn: ConnArgs,
    #[command(flatten)]
    pub(crate) out: OutputArgs,
}
