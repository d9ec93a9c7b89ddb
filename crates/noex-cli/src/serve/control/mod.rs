//! Fault commands from outside the process: their line syntax ([`command`]), their
//! execution on the running server ([`execute`]), and the two ways they arrive: standard
//! input with `--control-stdin` ([`stdin`]) and `POST /command` on the `--control-port`
//! HTTP listener ([`http`]). Chaos (`--chaos`) runs its faults through [`execute`] too.
//!
//! Every command answers one line: `ok`, `ok <json>` (for `status`), or `error: <why>`.

pub(crate) mod command;
pub(crate) mod execute;
pub(crate) mod http;
pub(crate) mod stdin;

/// The longest command either listener takes (a line on standard input, a request body
/// over HTTP), in bytes.
const MAX_COMMAND: usize = 64 * 1024;
