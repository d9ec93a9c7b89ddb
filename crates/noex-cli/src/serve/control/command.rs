//! The control commands' line syntax: one command per line, a keyword (any case) and its
//! arguments, parsed into a [`Command`] or refused with the reason.

use std::time::Duration;

use noex_testkit::HandshakeFault;

use crate::timefmt::parse_duration;

/// One fault or query command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    /// Close every connection abruptly (no close frame).
    DropAll,
    /// Close every connection with this close frame.
    Close { code: u16, reason: String },
    /// Stop reading and writing on every connection; resume after the duration if given.
    Stall(Option<Duration>),
    /// End a stall.
    Resume,
    /// Delay every request by this much (zero: off).
    Delay(Duration),
    /// Handshake behaviour for new connections.
    Handshake(HandshakeFault),
    /// `system`/`shutdown` with this grace period, then close 1000; the server keeps
    /// running and accepts connections again afterwards.
    Shutdown(Duration),
    /// `system`/`session_revoked` and close 4002 for every client.
    Revoke(String),
    /// Every session expires now: logged-in clients' next request answers
    /// `UNAUTHORIZED` `Session expired`.
    ExpireSessions,
    /// Restart on the same port, keeping or resetting the data.
    Restart { keep_data: bool },
    /// Send a raw text frame to every client.
    SendText(String),
    /// Counters as JSON.
    Status,
    /// Stop the server and exit (graceful as on SIGTERM).
    Stop,
    /// The list of commands.
    Help,
}

/// The command summary printed by `help` (one line per command, `|`-separated so the
/// reply stays one line).
pub(crate) const HELP: &str = "commands: drop-all | close CODE [REASON] | stall [DURATION] | \
resume | delay DURATION | handshake stall|reset|normal|delay DURATION | shutdown [GRACE] | \
revoke [REASON] | expire-sessions | restart [keep|reset] | send-text TEXT | status | stop | \
help";

fn close_code(s: &str) -> Result<u16, String> {
    let code: u16 = s
        .parse()
        .map_err(|_| format!("invalid close code \"{s}\" (expected 1000-4999)"))?;
    // 1004-1006 and 1015 are reserved and must not be sent; 1016-2999 are unassigned.
    let valid = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
    if valid {
        Ok(code)
    } else {
        Err(format!(
            "close code {code} cannot be sent (use 1000-1003, 1007-1014 or 3000-4999)"
        ))
    }
}

/// Parse one command line (leading/trailing blanks ignored, keyword case-insensitive).
pub(crate) fn parse(line: &str) -> Result<Command, String> {
    let line = line.trim();
    let (word, rest) = match line.split_once(char::is_whitespace) {
        Some((w, r)) => (w, r.trim()),
        None => (line, ""),
    };
    let no_args = |c: Command| {
        if rest.is_empty() {
            Ok(c)
        } else {
            Err(format!("\"{word}\" takes no arguments"))
        }
    };
    match word.to_ascii_lowercase().as_str() {
        "" => Err("empty command (try \"help\")".into()),
        "drop-all" | "drop" => no_args(Command::DropAll),
        "close" => {
            let (code, reason) = match rest.split_once(char::is_whitespace) {
                Some((c, r)) => (c, r.trim()),
                None => (rest, ""),
            };
            if code.is_empty() {
                return Err("usage: close CODE [REASON]".into());
            }
            let code = close_code(code)?;
            if reason.len() > 123 {
                return Err("close reason is longer than 123 bytes".into());
            }
            Ok(Command::Close {
                code,
                reason: reason.to_string(),
            })
        }
        "stall" => {
            if rest.is_empty() {
                Ok(Command::Stall(None))
            } else {
                parse_duration(rest).map(|d| Command::Stall(Some(d)))
            }
        }
        "resume" => no_args(Command::Resume),
        "delay" => {
            if rest.is_empty() {
                return Err("usage: delay DURATION (0 turns it off)".into());
            }
            parse_duration(rest).map(Command::Delay)
        }
        "handshake" => {
            let (mode, arg) = match rest.split_once(char::is_whitespace) {
                Some((m, a)) => (m, a.trim()),
                None => (rest, ""),
            };
            let fault = match (mode.to_ascii_lowercase().as_str(), arg) {
                ("stall", "") => HandshakeFault::Stall,
                ("reset", "") => HandshakeFault::Reset,
                ("normal" | "off", "") => HandshakeFault::Normal,
                ("delay", d) if !d.is_empty() => HandshakeFault::Delay(parse_duration(d)?),
                _ => {
                    return Err(
                        "usage: handshake stall | handshake reset | handshake delay DURATION \
                         | handshake normal"
                            .into(),
                    )
                }
            };
            Ok(Command::Handshake(fault))
        }
        "shutdown" => {
            if rest.is_empty() {
                Ok(Command::Shutdown(Duration::ZERO))
            } else {
                parse_duration(rest).map(Command::Shutdown)
            }
        }
        "revoke" => Ok(Command::Revoke(rest.to_string())),
        "expire-sessions" => no_args(Command::ExpireSessions),
        "restart" => match rest.to_ascii_lowercase().as_str() {
            "" | "keep" => Ok(Command::Restart { keep_data: true }),
            "reset" => Ok(Command::Restart { keep_data: false }),
            _ => Err("usage: restart [keep|reset]".into()),
        },
        "send-text" => {
            if rest.is_empty() {
                Err("usage: send-text TEXT".into())
            } else {
                Ok(Command::SendText(rest.to_string()))
            }
        }
        "status" => no_args(Command::Status),
        "stop" | "quit" | "exit" => no_args(Command::Stop),
        "help" => no_args(Command::Help),
        other => Err(format!("unknown command \"{other}\" (try \"help\")")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_command() {
        let ok = |s: &str| parse(s).unwrap();
        assert_eq!(ok("drop-all"), Command::DropAll);
        assert_eq!(ok("  DROP  "), Command::DropAll);
        assert_eq!(
            ok("close 4003 too many connections"),
            Command::Close {
                code: 4003,
                reason: "too many connections".into()
            }
        );
        assert_eq!(
            ok("close 1000"),
            Command::Close {
                code: 1000,
                reason: String::new()
            }
        );
        assert_eq!(ok("stall"), Command::Stall(None));
        assert_eq!(
            ok("stall 500ms"),
            Command::Stall(Some(Duration::from_millis(500)))
        );
        assert_eq!(ok("resume"), Command::Resume);
        assert_eq!(ok("delay 2s"), Command::Delay(Duration::from_secs(2)));
        assert_eq!(ok("delay 0"), Command::Delay(Duration::ZERO));
        assert_eq!(
            ok("handshake stall"),
            Command::Handshake(HandshakeFault::Stall)
        );
        assert_eq!(
            ok("handshake reset"),
            Command::Handshake(HandshakeFault::Reset)
        );
        assert_eq!(
            ok("handshake normal"),
            Command::Handshake(HandshakeFault::Normal)
        );
        assert_eq!(
            ok("handshake delay 1s"),
            Command::Handshake(HandshakeFault::Delay(Duration::from_secs(1)))
        );
        assert_eq!(ok("shutdown"), Command::Shutdown(Duration::ZERO));
        assert_eq!(
            ok("shutdown 1500ms"),
            Command::Shutdown(Duration::from_millis(1500))
        );
        assert_eq!(ok("revoke"), Command::Revoke(String::new()));
        assert_eq!(ok("revoke bye"), Command::Revoke("bye".into()));
        assert_eq!(ok("expire-sessions"), Command::ExpireSessions);
        assert_eq!(ok("EXPIRE-SESSIONS"), Command::ExpireSessions);
        assert_eq!(ok("restart"), Command::Restart { keep_data: true });
        assert_eq!(ok("restart keep"), Command::Restart { keep_data: true });
        assert_eq!(ok("restart reset"), Command::Restart { keep_data: false });
        assert_eq!(
            ok("send-text {\"type\":\"x\"}"),
            Command::SendText("{\"type\":\"x\"}".into())
        );
        assert_eq!(ok("status"), Command::Status);
        assert_eq!(ok("stop"), Command::Stop);
        assert_eq!(ok("help"), Command::Help);
    }

    #[test]
    fn rejects_bad_commands_with_reasons() {
        let err = |s: &str| parse(s).unwrap_err();
        assert_eq!(err(""), "empty command (try \"help\")");
        assert_eq!(err("explode"), "unknown command \"explode\" (try \"help\")");
        assert_eq!(err("close"), "usage: close CODE [REASON]");
        assert_eq!(
            err("close abc"),
            "invalid close code \"abc\" (expected 1000-4999)"
        );
        assert!(err("close 1005").contains("cannot be sent"));
        assert!(err("close 2500").contains("cannot be sent"));
        assert!(err("close 5000").contains("cannot be sent"));
        assert_eq!(
            err(&format!("close 1000 {}", "x".repeat(124))),
            "close reason is longer than 123 bytes"
        );
        assert!(err("stall forever").starts_with("invalid duration"));
        assert!(err("delay").starts_with("usage: delay"));
        assert!(err("handshake").starts_with("usage: handshake"));
        assert!(err("handshake delay").starts_with("usage: handshake"));
        assert!(err("handshake explode").starts_with("usage: handshake"));
        assert_eq!(err("restart now"), "usage: restart [keep|reset]");
        assert_eq!(err("send-text"), "usage: send-text TEXT");
        assert_eq!(err("drop-all now"), "\"drop-all\" takes no arguments");
        assert_eq!(err("status x"), "\"status\" takes no arguments");
        assert_eq!(
            err("expire-sessions now"),
            "\"expire-sessions\" takes no arguments"
        );
    }
}
