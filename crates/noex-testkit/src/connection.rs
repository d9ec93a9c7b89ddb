//! One client connection: welcome, reading requests, writing answers and pushes,
//! heartbeat, close codes, and the per-connection side of fault injection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use crate::faults::{HandshakeFault, Shared};
use crate::handshake::{self, Ws};
use crate::protocol;
use crate::sockets::OpenSocket;
use crate::state::{Ctl, Outbound, TextOutcome};

/// How long to wait for the client's close reply after sending a close frame.
const CLOSE_LINGER: Duration = Duration::from_secs(2);

async fn close_with(ws: &mut Ws, code: u16, reason: &str) {
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: reason.to_string().into(),
    };
    let _ = ws.close(Some(frame)).await;
}

/// Wait briefly for the peer to finish the closing handshake.
async fn linger(ws: &mut Ws) {
    let _ = tokio::time::timeout(CLOSE_LINGER, async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

/// Serve one accepted TCP connection until it ends. `_open` counts the socket as open
/// until this returns (parameters are dropped after the socket, a local).
pub(crate) async fn serve(
    _open: OpenSocket,
    shared: Arc<Shared>,
    tcp: TcpStream,
    addr: SocketAddr,
    fault: HandshakeFault,
) {
    let Some(mut ws) = handshake::accept(&shared, tcp, addr, fault).await else {
        return;
    };
    let (out_tx, mut out_rx) = mpsc::unbounded_channel();
    let (ctl_tx, mut ctl_rx) = mpsc::unbounded_channel();
    enum Admit {
        Yes(u64, Duration),
        ShuttingDown,
        TooMany,
    }
    let admit = {
        let mut core = shared.core();
        if core.shutting_down {
            Admit::ShuttingDown
        } else {
            match core.register(addr, out_tx.clone(), ctl_tx) {
                None => Admit::TooMany,
                Some(id) => {
                    let _ = out_tx.send(Outbound::Text(protocol::welcome(core.requires_auth())));
                    Admit::Yes(id, core.cfg.heartbeat)
                }
            }
        }
    };
    let (id, heartbeat) = match admit {
        Admit::Yes(id, hb) => (id, hb),
        Admit::ShuttingDown => {
            close_with(&mut ws, 1001, "server_shutting_down").await;
            linger(&mut ws).await;
            return;
        }
        Admit::TooMany => {
            tracing::debug!(%addr, "per-IP connection limit reached");
            close_with(&mut ws, 4003, "too_many_connections").await;
            linger(&mut ws).await;
            return;
        }
    };
    tracing::debug!(%addr, id, "connection opened");
    run(&shared, &mut ws, id, heartbeat, &mut out_rx, &mut ctl_rx).await;
    shared.core().unregister(id);
    tracing::debug!(id, "connection closed");
}

/// Sends what `out_rx` gave (`out`) and what is queued behind it. `false` when the
/// connection is gone (the channel closed, or a write failed).
async fn send_out(
    ws: &mut Ws,
    out: Option<Outbound>,
    out_rx: &mut mpsc::UnboundedReceiver<Outbound>,
    closing: &mut Option<Instant>,
) -> bool {
    let first = match out {
        None => return false,
        Some(Outbound::Text(t)) => Message::text(t),
        Some(Outbound::Binary(b)) => Message::binary(b),
        Some(Outbound::Close(code, reason)) => {
            close_with(ws, code, &reason).await;
            *closing = Some(Instant::now() + CLOSE_LINGER);
            return true;
        }
    };
    match send_queued(ws, first, out_rx).await {
        Err(_) => false,
        Ok(Some((code, reason))) => {
            close_with(ws, code, &reason).await;
            *closing = Some(Instant::now() + CLOSE_LINGER);
            true
        }
        Ok(None) => true,
    }
}

/// Sends `first` and every text or binary frame already queued behind it, then flushes once.
/// A close met in the queue ends the batch and is returned, for the caller to send after
/// what came before it.
async fn send_queued(
    ws: &mut Ws,
    first: Message,
    out_rx: &mut mpsc::UnboundedReceiver<Outbound>,
) -> Result<Option<(u16, String)>, tokio_tungstenite::tungstenite::Error> {
    ws.feed(first).await?;
    let mut close = None;
    while let Ok(next) = out_rx.try_recv() {
        match next {
            Outbound::Text(t) => ws.feed(Message::text(t)).await?,
            Outbound::Binary(b) => ws.feed(Message::binary(b)).await?,
            Outbound::Close(code, reason) => {
                close = Some((code, reason));
                break;
            }
        }
    }
    ws.flush().await?;
    Ok(close)
}

async fn run(
    shared: &Shared,
    ws: &mut Ws,
    id: u64,
    heartbeat: Duration,
    out_rx: &mut mpsc::UnboundedReceiver<Outbound>,
    ctl_rx: &mut mpsc::UnboundedReceiver<Ctl>,
) {
    let mut stall_rx = shared.stall_watch();
    let mut stalled = *stall_rx.borrow_and_update();
    let mut ticker = tokio::time::interval_at(Instant::now() + heartbeat, heartbeat);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // As the real server: the time of the last ping sent (0: none yet) and the timestamp
    // carried by the last pong (not its arrival time). At a tick, a ping whose pong
    // timestamp is older than the ping closes the connection.
    let mut last_ping_at = 0.0f64;
    let mut last_pong_at = 0.0f64;
    // Set once we sent a close frame: then we only wait for the peer's reply.
    let mut closing: Option<Instant> = None;
    let far = Instant::now() + Duration::from_secs(86_400 * 365);
    // Whether a request waiting to be read goes before queued answers (set after answers
    // went out, cleared after a request was read).
    let mut inbound_turn = false;

    loop {
        // Answers and pushes go out before the next request is read, as the real server
        // sends each answer as soon as it has it: a burst of requests is answered while it
        // is still arriving, not all at its end. When both wait, turns alternate, so neither
        // side can hold the other off.
        if !inbound_turn && !stalled && closing.is_none() {
            if let Ok(out) = out_rx.try_recv() {
                inbound_turn = true;
                if !send_out(ws, Some(out), out_rx, &mut closing).await {
                    return;
                }
                continue;
            }
        }
        let deadline = closing.unwrap_or(far);
        tokio::select! {
            biased;
            ctl = ctl_rx.recv() => match ctl {
                Some(Ctl::Drop) => {
                    tracing::debug!(id, "dropping connection abruptly");
                    return;
                }
                None => return,
            },
            changed = stall_rx.changed() => {
                if changed.is_err() {
                    return;
                }
                stalled = *stall_rx.borrow_and_update();
                if !stalled {
                    last_ping_at = 0.0;
                    ticker.reset();
                }
            }
            _ = tokio::time::sleep_until(deadline), if closing.is_some() => return,
            msg = ws.next(), if !stalled => match msg {
                Some(Err(tokio_tungstenite::tungstenite::Error::Capacity(e))) => {
                    tracing::debug!(id, error = %e, "frame too large");
                    close_with(ws, 1009, "").await;
                    return;
                }
                None | Some(Err(_)) => return,
                Some(Ok(Message::Text(text))) => {
                    inbound_turn = false;
                    if closing.is_some() {
                        continue;
                    }
                    let delay = shared.delay();
                    if !delay.is_zero() {
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => {}
                            ctl = ctl_rx.recv() => {
                                if matches!(ctl, Some(Ctl::Drop) | None) {
                                    return;
                                }
                            }
                        }
                    }
                    let outcome = shared.core().on_text(id, text.as_str());
                    if let TextOutcome::Pong(ts) = outcome {
                        last_pong_at = ts;
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    if closing.is_none() {
                        close_with(ws, 1003, "binary_not_supported").await;
                        closing = Some(Instant::now() + CLOSE_LINGER);
                    }
                }
                Some(Ok(_)) => {}
            },
            out = out_rx.recv(), if !stalled && closing.is_none() => {
                inbound_turn = true;
                if !send_out(ws, out, out_rx, &mut closing).await {
                    return;
                }
            }
            _ = ticker.tick(), if !stalled && closing.is_none() => {
                if last_ping_at > 0.0 && last_pong_at < last_ping_at {
                    tracing::debug!(id, "heartbeat timeout");
                    close_with(ws, 4001, "heartbeat_timeout").await;
                    closing = Some(Instant::now() + CLOSE_LINGER);
                } else {
                    let now = crate::json::now_ms();
                    let ping = protocol::ping(now);
                    if ws.send(Message::text(ping)).await.is_err() {
                        return;
                    }
                    last_ping_at = now as f64;
                }
            }
        }
    }
}
