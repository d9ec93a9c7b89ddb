//! The WebSocket handshake of an accepted TCP socket, with the handshake faults applied.

use std::io::Cursor;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, Chain, Join};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::WebSocketStream;

use crate::faults::{HandshakeFault, Shared};

/// At most this many bytes are read (and kept for the handshake) during a delay.
const MAX_EARLY_BYTES: usize = 64 * 1024;

/// The socket under the WebSocket: bytes read during a handshake delay come first.
pub(crate) type Stream = Join<Chain<Cursor<Vec<u8>>, OwnedReadHalf>, OwnedWriteHalf>;
/// A connection after its handshake.
pub(crate) type Ws = WebSocketStream<Stream>;

/// Apply `fault` to `tcp`, then do the WebSocket handshake; `None` when there is no
/// connection to serve (fault, client gone, server stopping, handshake failed).
pub(crate) async fn accept(
    shared: &Shared,
    mut tcp: TcpStream,
    addr: SocketAddr,
    fault: HandshakeFault,
) -> Option<Ws> {
    let early = match fault {
        HandshakeFault::Normal => Vec::new(),
        HandshakeFault::Delay(d) => delay(shared, &mut tcp, d).await?,
        HandshakeFault::Stall => {
            stall(shared, &mut tcp).await;
            tracing::debug!(%addr, "stalled handshake ended");
            return None;
        }
        HandshakeFault::Reset => {
            if let Err(e) = tcp.set_zero_linger() {
                tracing::debug!(%addr, error = %e, "could not set SO_LINGER 0");
            }
            tracing::debug!(%addr, "resetting connection");
            return None;
        }
    };
    let _ = tcp.set_nodelay(true);
    let (read, write) = tcp.into_split();
    let stream = tokio::io::join(Cursor::new(early).chain(read), write);
    let (max_payload, origins) = {
        let core = shared.core();
        (core.cfg.max_payload_bytes, core.cfg.allowed_origins.clone())
    };
    // A 16 KiB read buffer: tungstenite zero-fills this much before every read attempt,
    // and each connection's task attempts one whenever it wakes (as for the client's
    // driver, see noex-client's `ws_connector`).
    let config = WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .max_message_size(Some(max_payload))
        .max_frame_size(Some(max_payload));
    // Origin validation as the real server's upgrade handler: a present Origin header
    // that is not listed gets 403 Forbidden; no header is always fine.
    // The signature is tungstenite's `Callback`.
    #[allow(clippy::result_large_err)]
    let check_origin = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        let Some(allowed) = &origins else {
            return Ok(resp);
        };
        match req.headers().get("origin") {
            None => Ok(resp),
            Some(o) if o.to_str().is_ok_and(|o| allowed.iter().any(|a| a == o)) => Ok(resp),
            Some(_) => {
                tracing::debug!(%addr, "origin not allowed");
                let mut r = ErrorResponse::new(None);
                *r.status_mut() = StatusCode::FORBIDDEN;
                Err(r)
            }
        }
    };
    match tokio_tungstenite::accept_hdr_async_with_config(stream, check_origin, Some(config)).await
    {
        Ok(ws) => Some(ws),
        Err(e) => {
            tracing::debug!(%addr, error = %e, "websocket handshake failed");
            None
        }
    }
}

/// Read until the peer closes (end of stream or read error). With `keep` the bytes are
/// appended to it, otherwise discarded; once `MAX_EARLY_BYTES` are kept, reading pauses
/// and this never resolves.
async fn read_until_closed(tcp: &mut (impl AsyncRead + Unpin), mut keep: Option<&mut Vec<u8>>) {
    let mut buf = [0u8; 4096];
    loop {
        if keep.as_ref().is_some_and(|k| k.len() >= MAX_EARLY_BYTES) {
            // Enough kept; stop reading (and noticing a close) until the handshake.
            return std::future::pending().await;
        }
        match tcp.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if let Some(k) = keep.as_mut() {
                    k.extend_from_slice(&buf[..n]);
                }
            }
        }
    }
}

/// Hold the socket without answering until the client closes it or the server stops.
async fn stall(shared: &Shared, tcp: &mut TcpStream) {
    tokio::select! {
        _ = read_until_closed(tcp, None) => {}
        _ = shared.stopping() => {}
    }
}

/// Wait `d`, keeping what the client sends meanwhile; `None` when the client closed or the
/// server stops first.
async fn delay(shared: &Shared, tcp: &mut TcpStream, d: Duration) -> Option<Vec<u8>> {
    let mut early = Vec::new();
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = read_until_closed(tcp, Some(&mut early)) => return None,
        _ = shared.stopping() => return None,
    }
    Some(early)
}
