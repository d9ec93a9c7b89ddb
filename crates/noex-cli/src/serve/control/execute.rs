//! Running control commands on the server: each answers one line, `ok`, `ok <json>` (for
//! `status` and `help`), or `error: <why>`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use noex_testkit::TestServer;
use tokio::sync::mpsc;

use super::command::{parse, Command, HELP};

/// What commands act on: the server, and a way to ask the main loop to stop.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    server: Arc<TestServer>,
    stop: mpsc::UnboundedSender<&'static str>,
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

    /// Ask the main loop to stop the server and exit, saying why.
    pub(crate) fn stop(&self, why: &'static str) {
        let _ = self.stop.send(why);
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
        Command::Stop => ctx.stop("stop command"),
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(handle_line(&ctx, "stop").await, "ok");
        assert_eq!(rx.recv().await, Some("stop command"));
        let s = server.clone();
        tokio::task::spawn_blocking(move || s.stop()).await.unwrap();
    }
}
