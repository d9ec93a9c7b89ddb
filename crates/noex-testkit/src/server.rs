//! The server thread: its own tokio runtime, the accept loop, restart and stop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::core::Outbound;
use crate::faults::Shared;

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
}

/// Bind on 127.0.0.1:`port` (0 = ephemeral).
pub(crate) fn bind(port: u16) -> std::io::Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))?;
    l.set_nonblocking(true)?;
    Ok(l)
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
    let mut std_listener = Some(first);
    let mut port = 0u16;
    loop {
        let listener = match std_listener.take() {
            Some(l) => TcpListener::from_std(l),
            None => match bind(port) {
                Ok(l) => TcpListener::from_std(l),
                Err(e) => Err(e),
            },
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
                    Some(Cmd::Stop { done }) => {
                        let _ = done.send(Ok(()));
                        return;
                    }
                    None => return,
                }
            }
        };
        port = listener.local_addr().map(|a| a.port()).unwrap_or(port);
        let mut conns: JoinSet<()> = JoinSet::new();
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
                cmd = cmds.recv() => break cmd,
            }
        };
        drop(listener);
        close_all(&shared, &mut conns).await;
        match cmd {
            Some(Cmd::Restart { keep_data, done }) => {
                shared.core().restart(keep_data);
                match bind(port) {
                    Ok(l) => {
                        std_listener = Some(l);
                        let _ = done.send(Ok(()));
                    }
                    Err(e) => {
                        let _ = done.send(Err(e.to_string()));
                    }
                }
            }
            Some(Cmd::Stop { done }) => {
                let _ = done.send(Ok(()));
                return;
            }
            None => return,
        }
    }
}
