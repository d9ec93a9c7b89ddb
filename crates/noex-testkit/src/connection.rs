//! One client connection: welcome, reading requests, writing answers and pushes,
//! heartbeat, close codes, and the per-connection side of fault injection.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::clock::Clock;
use crate::faults::{HandshakeFault, Shared};
use crate::handshake::{self, Ws};
use crate::heartbeat::{Beat, Heartbeat};
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
        Yes(u64, Duration, Clock),
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
                    let _ = out_tx.send(Outbound::Text(core.welcome()));
                    Admit::Yes(id, core.cfg.heartbeat, core.clock.clone())
                }
            }
        }
    };
    let (id, heartbeat, clock) = match admit {
        Admit::Yes(id, hb, clock) => (id, hb, clock),
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
    let beat = Beating {
        every: heartbeat,
        clock,
    };
    run(&shared, &mut ws, id, beat, &mut out_rx, &mut ctl_rx).await;
    shared.core().unregister(id);
    tracing::debug!(id, "connection closed");
}

/// Frames on their way to the peer: taken from the connection's channel as soon as they
/// are queued, and written as far as the socket takes them without waiting, so that a
/// peer that does not read never keeps the connection from reading (the real server
/// buffers what its socket does not take, too).
#[derive(Default)]
struct Outgoing {
    queue: VecDeque<Message>,
    unflushed: bool,
}

impl Outgoing {
    /// Writes what the socket takes now; `Err` when the socket failed.
    fn poll_write(&mut self, ws: &mut Ws, cx: &mut Context<'_>) -> Result<(), WsError> {
        while !self.queue.is_empty() {
            match ws.poll_ready_unpin(cx) {
                Poll::Ready(Ok(())) => {
                    if let Some(frame) = self.queue.pop_front() {
                        ws.start_send_unpin(frame)?;
                        self.unflushed = true;
                    }
                }
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => break,
            }
        }
        if self.unflushed {
            match ws.poll_flush_unpin(cx) {
                Poll::Ready(Ok(())) => self.unflushed = false,
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => {}
            }
        }
        Ok(())
    }

    /// Writes everything queued, waiting for the socket (before a close).
    async fn drain(&mut self, ws: &mut Ws) -> Result<(), WsError> {
        while let Some(frame) = self.queue.pop_front() {
            ws.feed(frame).await?;
        }
        ws.flush().await
    }
}

/// What the connection's socket side has for the loop.
enum Io {
    /// A frame from the peer (or its end).
    Incoming(Option<Result<Message, WsError>>),
    /// A close was queued for the peer (after everything queued before it).
    Close(u16, String),
    /// The connection was unregistered, or writing failed.
    Gone,
}

/// Takes what is queued for the peer and writes what the socket takes (unless `closing`),
/// then reads the next frame from the peer. Answers therefore go out while a burst of
/// requests is still arriving, as the real server sends each answer when it has it.
fn poll_io(
    cx: &mut Context<'_>,
    ws: &mut Ws,
    out_rx: &mut mpsc::UnboundedReceiver<Outbound>,
    outgoing: &mut Outgoing,
    closing: bool,
) -> Poll<Io> {
    if !closing {
        loop {
            match out_rx.poll_recv(cx) {
                Poll::Ready(Some(Outbound::Text(t))) => outgoing.queue.push_back(Message::text(t)),
                Poll::Ready(Some(Outbound::Binary(b))) => {
                    outgoing.queue.push_back(Message::binary(b))
                }
                Poll::Ready(Some(Outbound::Close(code, reason))) => {
                    return Poll::Ready(Io::Close(code, reason))
                }
                Poll::Ready(None) => return Poll::Ready(Io::Gone),
                Poll::Pending => break,
            }
        }
        if outgoing.poll_write(ws, cx).is_err() {
            return Poll::Ready(Io::Gone);
        }
    }
    ws.poll_next_unpin(cx).map(Io::Incoming)
}

/// A connection's heartbeat interval and the clock its pings carry.
struct Beating {
    every: Duration,
    clock: Clock,
}

async fn run(
    shared: &Shared,
    ws: &mut Ws,
    id: u64,
    beat: Beating,
    out_rx: &mut mpsc::UnboundedReceiver<Outbound>,
    ctl_rx: &mut mpsc::UnboundedReceiver<Ctl>,
) {
    let mut stall_rx = shared.stall_watch();
    let mut stalled = *stall_rx.borrow_and_update();
    let mut ticker = tokio::time::interval_at(Instant::now() + beat.every, beat.every);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut heartbeat = Heartbeat::default();
    // Set once we sent a close frame: then we only wait for the peer's reply.
    let mut closing: Option<Instant> = None;
    let far = Instant::now() + Duration::from_secs(86_400 * 365);
    let mut outgoing = Outgoing::default();

    loop {
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
                    heartbeat.forget_ping();
                    ticker.reset();
                }
            }
            _ = tokio::time::sleep_until(deadline), if closing.is_some() => return,
            io = poll_fn(|cx| poll_io(cx, ws, out_rx, &mut outgoing, closing.is_some())),
                if !stalled => match io {
                Io::Gone => return,
                Io::Close(code, reason) => {
                    let _ = outgoing.drain(ws).await;
                    close_with(ws, code, &reason).await;
                    closing = Some(Instant::now() + CLOSE_LINGER);
                }
                Io::Incoming(Some(Err(WsError::Capacity(e)))) => {
                    tracing::debug!(id, error = %e, "frame too large");
                    close_with(ws, 1009, "").await;
                    return;
                }
                Io::Incoming(None | Some(Err(_))) => return,
                Io::Incoming(Some(Ok(Message::Text(text)))) => {
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
                        heartbeat.pong(ts);
                    }
                }
                Io::Incoming(Some(Ok(Message::Binary(_)))) => {
                    if closing.is_none() {
                        close_with(ws, 1003, "binary_not_supported").await;
                        closing = Some(Instant::now() + CLOSE_LINGER);
                    }
                }
                Io::Incoming(Some(Ok(_))) => {}
            },
            _ = ticker.tick(), if !stalled && closing.is_none() => {
                match heartbeat.tick(beat.clock.now_ms()) {
                    Beat::Timeout => {
                        tracing::debug!(id, "heartbeat timeout");
                        close_with(ws, 4001, "heartbeat_timeout").await;
                        closing = Some(Instant::now() + CLOSE_LINGER);
                    }
                    Beat::Ping(now) => {
                        outgoing.queue.push_back(Message::text(protocol::ping(now)));
                    }
                }
            }
        }
    }
}
