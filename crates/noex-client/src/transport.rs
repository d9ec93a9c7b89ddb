//! Pieces every WebSocket adapter needs: where to connect, TLS configuration, and the
//! conversion between tungstenite messages and the client's frames.

use crate::runtime::TransportError;

/// Where a `ws://` or `wss://` URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// Port (default 80 for `ws`, 443 for `wss`).
    pub port: u16,
    /// Whether TLS is needed (`wss`).
    pub tls: bool,
}

impl Target {
    /// Parses a WebSocket URL.
    ///
    /// ```
    /// use noex_client::transport::Target;
    /// let t = Target::parse("wss://example.com/ws").unwrap();
    /// assert_eq!((t.host.as_str(), t.port, t.tls), ("example.com", 443, true));
    /// assert!(Target::parse("http://example.com").is_err());
    /// ```
    pub fn parse(url: &str) -> Result<Target, TransportError> {
        let parsed = url::Url::parse(url)
            .map_err(|e| TransportError(format!("invalid URL {url:?}: {e}")))?;
        let tls = match parsed.scheme() {
            "ws" => false,
            "wss" => true,
            other => {
                return Err(TransportError(format!(
                    "unsupported URL scheme {other:?} (use ws:// or wss://)"
                )))
            }
        };
        let host = match parsed.host() {
            Some(url::Host::Domain(d)) => d.to_owned(),
            Some(url::Host::Ipv4(a)) => a.to_string(),
            Some(url::Host::Ipv6(a)) => a.to_string(),
            None => return Err(TransportError(format!("URL {url:?} has no host"))),
        };
        let port = parsed.port().unwrap_or(if tls { 443 } else { 80 });
        Ok(Target { host, port, tls })
    }

    /// The error for a failed TCP connect to this target.
    pub fn connect_error(&self, error: impl std::fmt::Display) -> TransportError {
        TransportError(format!(
            "connecting to {}:{}: {error}",
            self.host, self.port
        ))
    }
}

/// The error for a failed TLS handshake.
pub fn tls_error(error: impl std::fmt::Display) -> TransportError {
    TransportError(format!("TLS handshake: {error}"))
}

#[cfg(feature = "rustls")]
mod tls {
    use crate::runtime::{TlsOptions, TransportError};
    use rustls::pki_types::{CertificateDer, ServerName};
    use std::sync::Arc;

    /// A rustls client configuration trusting the public web roots and the extra roots
    /// of `options`.
    pub fn client_config(
        options: &TlsOptions,
    ) -> Result<Arc<rustls::ClientConfig>, TransportError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for der in &options.root_certificates {
            roots
                .add(CertificateDer::from(der.clone()))
                .map_err(|e| TransportError(format!("invalid root certificate: {e}")))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TransportError(format!("TLS setup: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Arc::new(config))
    }

    /// The TLS server name for `host`.
    pub fn server_name(host: &str) -> Result<ServerName<'static>, TransportError> {
        ServerName::try_from(host.to_owned())
            .map_err(|e| TransportError(format!("invalid TLS server name {host:?}: {e}")))
    }
}

#[cfg(feature = "rustls")]
pub use tls::{client_config, server_name};

#[cfg(feature = "tungstenite")]
mod messages {
    use crate::runtime::{Incoming, Outgoing, TransportError};
    use tungstenite::protocol::frame::coding::CloseCode;
    use tungstenite::protocol::CloseFrame;
    use tungstenite::Message;

    /// A tungstenite read as the client's frame; `None` for frames the client ignores
    /// (WebSocket-level pings and pongs, which tungstenite answers itself).
    pub fn incoming(message: Result<Message, tungstenite::Error>) -> Option<Incoming> {
        match message {
            Ok(Message::Text(text)) => Some(Incoming::Text(text.as_str().to_owned())),
            Ok(Message::Binary(bytes)) => Some(Incoming::Binary(bytes.to_vec())),
            Ok(Message::Close(frame)) => Some(match frame {
                Some(frame) => Incoming::Closed {
                    code: Some(u16::from(frame.code)),
                    reason: frame.reason.as_str().to_owned(),
                },
                None => Incoming::Closed {
                    code: None,
                    reason: String::new(),
                },
            }),
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => None,
            Err(error) => Some(Incoming::Closed {
                code: None,
                reason: error.to_string(),
            }),
        }
    }

    /// The client's frame as a tungstenite message.
    pub fn outgoing(frame: Outgoing) -> Message {
        match frame {
            Outgoing::Text(text) => Message::Text(text.into()),
            Outgoing::Close { code, reason } => Message::Close(Some(CloseFrame {
                code: CloseCode::from(code),
                reason: reason.into(),
            })),
        }
    }

    /// A tungstenite error as a transport error.
    pub fn error(error: tungstenite::Error) -> TransportError {
        TransportError(error.to_string())
    }
}

#[cfg(feature = "tungstenite")]
pub use messages::{error, incoming, outgoing};

/// Turns a tungstenite stream into the client's [`crate::runtime::FrameStream`]: frames
/// until the first close or error, which ends it.
#[cfg(feature = "tungstenite")]
pub fn frame_stream<S>(stream: S) -> crate::runtime::FrameStream
where
    S: futures::Stream<Item = Result<tungstenite::Message, tungstenite::Error>> + Send + 'static,
{
    use crate::runtime::Incoming;
    use futures::StreamExt;
    let mut done = false;
    Box::pin(
        stream
            .filter_map(|m| futures::future::ready(incoming(m)))
            .take_while(move |frame| {
                let keep = !done;
                if matches!(frame, Incoming::Closed { .. }) {
                    done = true;
                }
                futures::future::ready(keep)
            }),
    )
}

/// Turns a tungstenite sink into the client's [`crate::runtime::FrameSink`].
#[cfg(feature = "tungstenite")]
pub fn frame_sink<S>(sink: S) -> crate::runtime::FrameSink
where
    S: futures::Sink<tungstenite::Message, Error = tungstenite::Error> + Send + 'static,
{
    use futures::SinkExt;
    Box::pin(
        sink.sink_map_err(error)
            .with(|frame| futures::future::ready(Ok::<_, TransportError>(outgoing(frame)))),
    )
}
