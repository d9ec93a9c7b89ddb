//! One WebSocket connector for every runtime async-tungstenite serves (feature
//! `async-tungstenite`).
//!
//! An adapter brings only what differs between runtimes, a TCP connect; [`connect`] does
//! the rest once: it parses the URL, runs the TLS handshake for `wss://` (rustls through
//! futures-rustls, trusting the public web roots plus [`TlsOptions::root_certificates`], with
//! the crypto provider of `transport::crypto_provider`; feature `rustls`, which `ring` and
//! `aws-lc-rs` turn on) and the WebSocket handshake (async-tungstenite), and hands back the
//! client's [`FrameSink`] and [`FrameStream`]. Without the `rustls` feature it opens `ws://`
//! URLs only, and a `wss://` URL is a [`TransportErrorKind::Tls`](crate::TransportErrorKind)
//! error (before any connect). `noex-tokio`, `noex-async-std` and `noex-smol` are
//! built on it; so can an adapter for any runtime whose TCP stream implements (or can be
//! wrapped to implement) `futures`' [`AsyncRead`] and [`AsyncWrite`].
//!
//! ```
//! use futures::future::BoxFuture;
//! use noex_client::runtime::{Connector, FrameSink, FrameStream};
//! use noex_client::{TlsOptions, TransportError};
//!
//! /// The connector of an adapter for some runtime.
//! struct MyRuntime;
//!
//! impl Connector for MyRuntime {
//!     fn connect(
//!         &self,
//!         url: &str,
//!         tls: &TlsOptions,
//!     ) -> BoxFuture<'static, Result<(FrameSink, FrameStream), TransportError>> {
//!         noex_client::ws_connector::connect(url, tls, |host, port| async move {
//!             // Open a TCP connection to (host, port) with the runtime here.
//!             my_runtime_tcp_connect(&host, port).await
//!         })
//!     }
//! }
//! # async fn my_runtime_tcp_connect(
//! #     _host: &str,
//! #     _port: u16,
//! # ) -> std::io::Result<futures::io::Cursor<Vec<u8>>> {
//! #     Err(std::io::ErrorKind::ConnectionRefused.into())
//! # }
//!
//! // A refused TCP connect comes back as a transport error naming the target.
//! let result = futures::executor::block_on(
//!     MyRuntime.connect("ws://127.0.0.1:9/", &TlsOptions::default()),
//! );
//! let error = result.err().expect("refused");
//! assert!(error.to_string().contains("127.0.0.1:9"), "{error}");
//! ```
#![cfg(feature = "async-tungstenite")]

use crate::options::TlsOptions;
use crate::runtime::{FrameSink, FrameStream};
use crate::transport::{self, frame_sink, frame_stream, Target};
use crate::transport_error::TransportError;
use async_tungstenite::tungstenite::protocol::WebSocketConfig;
use futures::future::BoxFuture;
#[cfg(feature = "rustls")]
use futures::future::Either;
use futures::{AsyncRead, AsyncWrite, FutureExt};
use std::future::Future;
use std::io;

/// Bytes the WebSocket reads from the socket at most per read. tungstenite zero-fills
/// this much of its buffer before every read attempt, and the driver attempts one each
/// time it wakes (for a command or a timer as well as for the socket), so its default
/// (128 KiB) cost several microseconds per request at one request in flight; larger
/// frames are still read whole, in more reads. Measured with `noex-bench --only latency`:
/// p50 overhead over the raw client +6.2 µs at 128 KiB, +0.1 µs at 16 KiB.
const READ_BUFFER: usize = 16 * 1024;

/// Opens `url` (`ws://` or `wss://`) over the TCP stream that `dial(host, port)` connects,
/// and returns the connection's two halves: what a [`Connector`](crate::runtime::Connector) returns.
///
/// `dial` is called once, with the URL's host (an IPv6 address without brackets) and port
/// (80 or 443 when the URL gives none); it is not called when the URL is invalid. Its error
/// becomes a connect error naming the target; TLS and WebSocket handshake failures become
/// transport errors too. The returned future owns everything it needs (`'static`), and
/// dropping it abandons the attempt and closes whatever it opened.
pub fn connect<D, F, S>(
    url: &str,
    tls: &TlsOptions,
    dial: D,
) -> BoxFuture<'static, Result<(FrameSink, FrameStream), TransportError>>
where
    D: FnOnce(String, u16) -> F + Send + 'static,
    F: Future<Output = io::Result<S>> + Send + 'static,
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let url = url.to_owned();
    #[cfg(feature = "rustls")]
    let tls = tls.clone();
    #[cfg(not(feature = "rustls"))]
    let _ = tls;
    async move {
        let target = Target::parse(&url)?;
        #[cfg(not(feature = "rustls"))]
        if target.tls {
            return Err(TransportError::new(
                crate::TransportErrorKind::Tls,
                "wss:// needs TLS, which this build leaves out: enable the `ring` or \
                 `aws-lc-rs` feature (of the adapter, e.g. noex-tokio)",
            ));
        }
        let tcp = dial(target.host.clone(), target.port)
            .await
            .map_err(|e| target.connect_error(e))?;
        #[cfg(feature = "rustls")]
        let io = if target.tls {
            let connector = futures_rustls::TlsConnector::from(transport::client_config(&tls)?);
            let stream = connector
                .connect(transport::server_name(&target.host)?, tcp)
                .await
                .map_err(transport::tls_error)?;
            Either::Left(stream)
        } else {
            Either::Right(tcp)
        };
        #[cfg(not(feature = "rustls"))]
        let io = tcp;
        let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
        let (ws, _) = async_tungstenite::client_async_with_config(url.as_str(), io, Some(config))
            .await
            .map_err(transport::error)?;
        let (sink, stream) = ws.split();
        Ok((frame_sink(sink), frame_stream(stream)))
    }
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    type Memory = futures::io::Cursor<Vec<u8>>;

    #[test]
    fn an_invalid_url_never_dials() {
        let dialled = Arc::new(AtomicBool::new(false));
        let flag = dialled.clone();
        let result = futures::executor::block_on(connect(
            "http://example.com/",
            &TlsOptions::default(),
            move |_, _| {
                flag.store(true, Ordering::SeqCst);
                futures::future::ready(Ok::<Memory, _>(Memory::default()))
            },
        ));
        assert!(result.is_err());
        assert!(!dialled.load(Ordering::SeqCst));
    }

    #[test]
    fn dials_the_urls_host_and_default_port() {
        for (url, expected) in [
            ("ws://example.com/ws", ("example.com", 80)),
            ("wss://example.com", ("example.com", 443)),
            ("ws://[::1]:8080/", ("::1", 8080)),
        ] {
            let seen = Arc::new(std::sync::Mutex::new(None));
            let record = seen.clone();
            let result = futures::executor::block_on(connect(
                url,
                &TlsOptions::default(),
                move |host, port| {
                    *record.lock().expect("lock") = Some((host, port));
                    futures::future::ready(Err::<Memory, _>(io::Error::from(
                        io::ErrorKind::ConnectionRefused,
                    )))
                },
            ));
            let error = result.err().expect("refused");
            assert!(error.to_string().contains(expected.0), "{error}");
            let seen = seen.lock().expect("lock").clone();
            assert_eq!(seen, Some((expected.0.to_owned(), expected.1)));
        }
    }

    #[test]
    fn a_peer_that_is_not_a_websocket_server_fails_the_handshake() {
        for reply in [
            // Plain HTTP: the upgrade is refused.
            &b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"[..],
            // A 101 that is not a WebSocket upgrade.
            &b"HTTP/1.1 101 Switching Protocols\r\nupgrade: h2c\r\nconnection: upgrade\r\n\r\n"[..],
        ] {
            let reply = reply.to_vec();
            let result = futures::executor::block_on(connect(
                "ws://example.com/",
                &TlsOptions::default(),
                move |_, _| futures::future::ready(Ok(ScriptedPeer(Memory::new(reply)))),
            ));
            let error = result.err().expect("a handshake error");
            assert_eq!(
                error.kind(),
                crate::TransportErrorKind::Handshake,
                "{}",
                error.chain_text()
            );
        }
    }

    /// Reads a scripted reply, swallows writes.
    struct ScriptedPeer(Memory);

    impl AsyncRead for ScriptedPeer {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &mut [u8],
        ) -> std::task::Poll<io::Result<usize>> {
            std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for ScriptedPeer {
        fn poll_write(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<io::Result<usize>> {
            std::task::Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn poll_close(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }
}
