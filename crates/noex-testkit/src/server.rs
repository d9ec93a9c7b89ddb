//! The server thread: its own tokio runtime, the accept loop, restart and stop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::faults::Shared;
use crate::protocol;
use crate::state::Outbound;

/// How long stop/restart wait for connections to finish their closing handshake.
const CLOSE_WAIT: Duration = Duration::from_millis(300);

/// Commands from the handle to the server thread.
pub(crate) enum Cmd {
    Restart {
        keep_data: bool,
        done: std::sync::mpsc::Sender<Result<(), String>>,
    },
    Stop {
        done: std::sync::mpsc::Sender<Result<(), String>>,
    },
    /// Stop as the real server's `stop({gracePeriodMs})`: stop accepting, send the
    /// `shutdown` notice, wait for the clients to leave (at most `grace`), close the rest.
    Shutdown {
        grace: Duration,
        done: std::sync::mpsc::Sender<Result<(), String>>,
    },
}

/// Bind on `host`:`port` (0 = ephemeral; the first address `host` resolves to).
pub(crate) fn bind(host: &str, port: u16) -> std::io::Result<std::net::TcpListener> {
    use std::net::ToSocketAddrs;
    let addr: SocketAddr = (host, port).to_socket_addrs()?.next().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::AddrNotAvailable,
            format!("host \"{host}\" resolves to no address"),
        )
    })?;
    let l = std::net::TcpListener::bind(addr)?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// The graceful part of a shutdown: the notice, then wait for the clients to leave.
async fn graceful(shared: &Shared, grace: Duration) {
    let ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX);
    {
        let mut core = shared.core();
        core.shutting_down = true;
        if ms == 0 || core.connection_count() == 0 {
            return;
        }
        let mut fields = serde_json::Map::new();
        fields.insert("gracePeriodMs".into(), ms.into());
        let frame = protocol::system("shutdown", fields);
        core.broadcast(|| Outbound::Text(frame.clone()));
    }
    let _ = tokio::time::timeout(grace, async {
        while shared.core().connection_count() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

async fn close_all(shared: &Shared, conns: &mut JoinSet<()>) {
    // Ends stalled and delayed handshakes at once.
    shared.set_stopping(true);
    shared
        .core()
        .broadcast(|| Outbound::Close(1000, "server_shutdown".into()));
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    conns.abort_all();
    while conns.join_next().await.is_some() {}
    shared.set_stopping(false);
}

/// The server's main loop; returns when stopped.
pub(crate) async fn main_loop(
    shared: Arc<Shared>,
    first: std::net::TcpListener,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
) {
    let ttl_every = shared.core().cfg.ttl_check_interval;
    // The listening socket outlives restarts: a restart closes every connection and
    // resets the state, and the port stays this server's (given up and bound again, it
    // could be taken meanwhile, e.g. as another socket's ephemeral port).
    let mut kept: Option<TcpListener> = None;
    let mut std_listener = Some(first);
    loop {
        let listener = match (kept.take(), std_listener.take()) {
            (Some(l), _) => Ok(l),
            (None, Some(l)) => TcpListener::from_std(l),
            (None, None) => Err(std::io::Error::other("no listening socket")),
        };
        let listener = match listener {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "test server could not listen");
                // Wait for a command that can report the failure.
                match cmds.recv().await {
                    Some(Cmd::Restart { done, .. }) => {
                        let _ = done.send(Err(e.to_string()));
                        continue;
                    }
                    Some(Cmd::Stop { done } | Cmd::Shutdown { done, .. }) => {
                        let _ = done.send(Ok(()));
                        return;
                    }
                    None => return,
                }
            }
        };
        let mut conns: JoinSet<()> = JoinSet::new();
        let mut ttl = tokio::time::interval(ttl_every.unwrap_or(Duration::from_secs(3600)));
        ttl.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Rule engine timers (`set_timer`) are checked at this resolution.
        let mut timers = tokio::time::interval(Duration::from_millis(10));
        timers.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let cmd = loop {
            tokio::select! {
                acc = listener.accept() => match acc {
                    Ok((tcp, addr)) => {
                        let open = shared.sockets.accepted_one();
                        let fault = shared.handshake_fault();
                        conns.spawn(crate::connection::serve(open, shared.clone(), tcp, addr, fault));
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                },
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
                _ = ttl.tick(), if ttl_every.is_some() => {
                    shared.core().purge_expired();
                }
                _ = timers.tick() => {
                    shared.core().fire_timers();
                }
                cmd = cmds.recv() => break cmd,
            }
        };
        if let Some(Cmd::Restart { .. }) = &cmd {
            kept = Some(listener);
        } else {
            drop(listener);
        }
        if let Some(Cmd::Shutdown { grace, .. }) = &cmd {
            let grace = *grace;
            tokio::select! {
                _ = graceful(&shared, grace) => {}
                // Connections keep being served (and end) meanwhile.
                _ = async { while conns.join_next().await.is_some() {} } => {}
            }
        }
        close_all(&shared, &mut conns).await;
        match cmd {
            Some(Cmd::Restart { keep_data, done }) => {
                shared.core().restart(keep_data);
                let _ = done.send(Ok(()));
            }
            Some(Cmd::Stop { done } | Cmd::Shutdown { done, .. }) => {
                let _ = done.send(Ok(()));
                return;
            }
            None => return,
        }
    }
}
