//! Fault commands from outside the process: the line protocol (standard input with
//! `--control-stdin`, or the body of `POST /command` on the `--control-port` HTTP
//! listener), their execution on the running server, and both transports.
//!
//! Every command answers one line: `ok`, `ok <json>` (for `status`), or `error: <why>`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use noex_testkit::{HandshakeFault, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

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

/// What commands act on: the server, and a way to ask the main loop to stop.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub(crate) server: Arc<TestServer>,
    pub(crate) stop: mpsc::UnboundedSender<&'static str>,
    /// Bumped by every `stall`/`resume`: a timed stall resumes only if nothing changed
    /// the stall since.
    stall_generation: Arc<AtomicU64>,
}

impl Ctx {
    pub(crate) fn new(server: Arc<TestServer>, stop: mpsc::UnboundedSender<&'static str>) -> Ctx {
        Ctx {
            server,
            stop,
            stall_generation: Arc::new(AtomicU64::new(0)),
        }
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Run `cmd`; the reply line (`ok ...` or `error: ...`).
pub(crate) async fn execute(ctx: &Ctx, cmd: Command) -> String {
    let server = &ctx.server;
    match cmd {
        Command::DropAll => server.drop_connections(),
        Command::Close { code, reason } => server.close_connections(code, &reason),
        Command::Stall(None) => {
            ctx.stall_generation.fetch_add(1, Ordering::SeqCst);
            server.stall();
        }
        Command::Stall(Some(d)) => {
            let generation = ctx.stall_generation.fetch_add(1, Ordering::SeqCst) + 1;
            server.stall();
            let s = server.clone();
            let current = ctx.stall_generation.clone();
            tokio::spawn(async move {
                tokio::time::sleep(d).await;
                if current.load(Ordering::SeqCst) == generation {
                    s.resume();
                }
            });
        }
        Command::Resume => {
            ctx.stall_generation.fetch_add(1, Ordering::SeqCst);
            server.resume();
        }
        Command::Delay(d) => server.set_delay(d),
        Command::Handshake(f) => server.set_handshake_fault(f),
        Command::Shutdown(grace) => server.send_shutdown(ms(grace)),
        Command::Revoke(reason) => server.revoke_sessions(&reason),
        Command::ExpireSessions => server.expire_sessions(),
        Command::Restart { keep_data } => {
            let s = server.clone();
            let r = tokio::task::spawn_blocking(move || s.try_restart(keep_data)).await;
            match r {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return format!("error: {e}"),
                Err(e) => return format!("error: restart failed: {e}"),
            }
        }
        Command::SendText(t) => server.send_raw_text(&t),
        Command::Status => {
            let status = serde_json::json!({
                "url": server.url(),
                "connections": server.connection_count(),
                "subscriptions": server.subscription_count(),
                "openSockets": server.open_sockets(),
                "acceptedSockets": server.accepted_sockets(),
            });
            return format!("ok {status}");
        }
        Command::Stop => {
            let _ = ctx.stop.send("stop command");
        }
        Command::Help => return format!("ok {HELP}"),
    }
    "ok".into()
}

/// Parse and run one line, logging it (command words only: `send-text` payloads and
/// reasons are not secrets, but keep logs short).
pub(crate) async fn handle_line(ctx: &Ctx, line: &str) -> String {
    match parse(line) {
        Ok(cmd) => {
            tracing::info!(command = ?cmd, "control command");
            execute(ctx, cmd).await
        }
        Err(e) => format!("error: {e}"),
    }
}

/// Read commands from standard input until it closes, answering each on stdout; then
/// ask the main loop to stop. Reads on a plain thread: a blocked read must not keep the
/// runtime from shutting down.
pub(crate) fn spawn_stdin(ctx: Ctx) {
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let spawned = std::thread::Builder::new()
        .name("noex-stdin".into())
        .spawn(move || {
            let stdin = std::io::stdin();
            let mut line = String::new();
            loop {
                line.clear();
                match std::io::BufRead::read_line(&mut stdin.lock(), &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if tx.send(line.clone()).is_err() {
                            break;
                        }
                    }
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "could not read standard input");
        return;
    }
    tokio::spawn(async move {
        while let Some(line) = rx.recv().await {
            if line.trim().is_empty() {
                continue;
            }
            let reply = handle_line(&ctx, &line).await;
            crate::stdout::print_line(&reply);
        }
        let _ = ctx.stop.send("standard input closed");
    });
}

/// Largest request (head + body) the control listener reads.
const MAX_REQUEST: usize = 64 * 1024;

/// Serve the HTTP control API on `listener`:
/// `POST /command` (body: one command line) and `GET /status`.
pub(crate) fn spawn_http(ctx: Ctx, listener: TcpListener) {
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((sock, _)) => {
                    let ctx = ctx.clone();
                    tokio::spawn(async move {
                        let r = tokio::time::timeout(
                            Duration::from_secs(30),
                            http_connection(&ctx, sock),
                        )
                        .await;
                        if let Ok(Err(e)) = r {
                            tracing::debug!(error = %e, "control connection failed");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "control listener accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
}

/// A parsed HTTP request: method, path, body.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Request {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) body: String,
}

/// Parse a request head; `Ok(None)` when more bytes are needed. Returns the request
/// line, the body length and where the body starts.
fn parse_head(buf: &[u8]) -> Result<Option<(String, String, usize, usize)>, String> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| "request head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(path), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err("malformed request line".into());
    };
    if !version.starts_with("HTTP/1.") {
        return Err("only HTTP/1.x is supported".into());
    }
    let mut len = 0usize;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            if k.trim().eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().map_err(|_| "invalid Content-Length")?;
            } else if k.trim().eq_ignore_ascii_case("transfer-encoding") {
                return Err("chunked bodies are not supported: send Content-Length".into());
            }
        }
    }
    Ok(Some((method.to_string(), path.to_string(), len, end + 4)))
}

/// Read one request from `sock`.
pub(crate) async fn read_request<S: tokio::io::AsyncRead + Unpin>(
    sock: &mut S,
) -> Result<Request, String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some((method, path, len, start)) = parse_head(&buf)? {
            if start + len > MAX_REQUEST {
                return Err("request too large".into());
            }
            while buf.len() < start + len {
                let n = sock.read(&mut chunk).await.map_err(|e| e.to_string())?;
                if n == 0 {
                    return Err("connection closed before the body ended".into());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = String::from_utf8(buf[start..start + len].to_vec())
                .map_err(|_| "body is not UTF-8")?;
            return Ok(Request { method, path, body });
        }
        if buf.len() > MAX_REQUEST {
            return Err("request head too large".into());
        }
        let n = sock.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed before the request ended".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Route a request: the status code and the reply line.
pub(crate) async fn route(ctx: &Ctx, req: &Request) -> (u16, String) {
    let path = req.path.split('?').next().unwrap_or_default();
    let reply = match (req.method.as_str(), path) {
        ("POST", "/command" | "/") => handle_line(ctx, &req.body).await,
        ("GET", "/status") => execute(ctx, Command::Status).await,
        ("GET", "/help") => execute(ctx, Command::Help).await,
        (_, "/command" | "/" | "/status" | "/help") => {
            return (405, "error: method not allowed".into())
        }
        _ => {
            return (
                404,
                "error: not found (POST /command, GET /status, GET /help)".into(),
            )
        }
    };
    let code = if reply.starts_with("ok") { 200 } else { 400 };
    (code, reply)
}

async fn http_connection(ctx: &Ctx, mut sock: TcpStream) -> std::io::Result<()> {
    let (code, reply) = match read_request(&mut sock).await {
        Ok(req) => route(ctx, &req).await,
        Err(e) => (400, format!("error: {e}")),
    };
    let reason = match code {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Bad Request",
    };
    let body = format!("{reply}\n");
    let response = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    sock.write_all(response.as_bytes()).await?;
    sock.shutdown().await
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

    #[tokio::test]
    async fn reads_http_requests() {
        let raw = b"POST /command HTTP/1.1\r\nHost: x\r\ncontent-length: 8\r\n\r\ndrop-all";
        let req = read_request(&mut &raw[..]).await.unwrap();
        assert_eq!(
            req,
            Request {
                method: "POST".into(),
                path: "/command".into(),
                body: "drop-all".into()
            }
        );
        let raw = b"GET /status HTTP/1.0\r\n\r\n";
        let req = read_request(&mut &raw[..]).await.unwrap();
        assert_eq!(req.path, "/status");
        assert_eq!(req.body, "");
        assert!(read_request(&mut &b"GARBAGE\r\n\r\n"[..]).await.is_err());
        assert!(read_request(&mut &b"GET / HTTP/1.1\r\n"[..]).await.is_err());
        let raw = b"POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\nshort";
        assert!(read_request(&mut &raw[..]).await.is_err());
        let raw = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(read_request(&mut &raw[..]).await.is_err());
    }

    #[tokio::test]
    async fn executes_against_a_server() {
        let server = Arc::new(TestServer::builder().start().unwrap());
        let (tx, mut rx) = mpsc::unbounded_channel();
        let ctx = Ctx::new(server.clone(), tx);
        let status = handle_line(&ctx, "status").await;
        assert!(status.starts_with("ok {"), "{status}");
        assert!(status.contains("\"connections\":0"));
        for line in [
            "drop-all",
            "close 4001 heartbeat_timeout",
            "stall 10ms",
            "resume",
            "delay 0",
            "handshake normal",
            "shutdown",
            "revoke",
            "expire-sessions",
            "send-text hi",
            "restart",
            "help",
        ] {
            let r = handle_line(&ctx, line).await;
            assert!(r.starts_with("ok"), "{line}: {r}");
        }
        assert_eq!(
            handle_line(&ctx, "nope").await,
            "error: unknown command \"nope\" (try \"help\")"
        );
        let req = Request {
            method: "GET".into(),
            path: "/status".into(),
            body: String::new(),
        };
        assert_eq!(route(&ctx, &req).await.0, 200);
        let req = Request {
            method: "POST".into(),
            path: "/command".into(),
            body: "bogus".into(),
        };
        assert_eq!(route(&ctx, &req).await.0, 400);
        let req = Request {
            method: "GET".into(),
            path: "/command".into(),
            body: String::new(),
        };
        assert_eq!(route(&ctx, &req).await.0, 405);
        let req = Request {
            method: "GET".into(),
            path: "/x".into(),
            body: String::new(),
        };
        assert_eq!(route(&ctx, &req).await.0, 404);
        assert_eq!(handle_line(&ctx, "stop").await, "ok");
        assert_eq!(rx.recv().await, Some("stop command"));
        let s = server.clone();
        tokio::task::spawn_blocking(move || s.stop()).await.unwrap();
    }
}
