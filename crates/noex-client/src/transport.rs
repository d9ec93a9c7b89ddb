//! Pieces every WebSocket adapter needs: where to connect, TLS configuration, and the
//! conversion between tungstenite messages and the client's frames.

use crate::transport_error::{TransportError, TransportErrorKind};

/// An error that a transport helper can keep as the [`std::error::Error::source`] of a
/// [`TransportError`]: any `std::error::Error + Send + Sync` (an `io::Error`, a rustls or
/// tungstenite error), or a `String`/`&str` message.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

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
    /// Parses a WebSocket URL. A failure is a [`TransportErrorKind::InvalidUrl`] whose
    /// message shows the URL without its user info and query (which may carry secrets).
    ///
    /// ```
    /// use noex_client::transport::Target;
    /// use noex_client::TransportErrorKind;
    /// let t = Target::parse("wss://example.com/ws").unwrap();
    /// assert_eq!((t.host.as_str(), t.port, t.tls), ("example.com", 443, true));
    /// let e = Target::parse("http://user:hunter2@example.com").unwrap_err();
    /// assert_eq!(e.kind(), TransportErrorKind::InvalidUrl);
    /// assert!(!format!("{e:?}").contains("hunter2"));
    /// ```
    pub fn parse(url: &str) -> Result<Target, TransportError> {
        let invalid = |what: &str| {
            TransportError::new(
                TransportErrorKind::InvalidUrl,
                format!("invalid URL {}: {what}", noex_proto::RedactedUrl(url)),
            )
        };
        let parsed = url::Url::parse(url).map_err(|e| invalid("not a URL").with_source(e))?;
        let tls = match parsed.scheme() {
            "ws" => false,
            "wss" => true,
            _ => return Err(invalid("unsupported scheme (use ws:// or wss://)")),
        };
        let host = match parsed.host() {
            Some(url::Host::Domain(d)) => d.to_owned(),
            Some(url::Host::Ipv4(a)) => a.to_string(),
            Some(url::Host::Ipv6(a)) => a.to_string(),
            None => return Err(invalid("no host")),
        };
        let port = parsed.port().unwrap_or(if tls { 443 } else { 80 });
        Ok(Target { host, port, tls })
    }

    /// The error for a failed TCP connect to this target: a
    /// [`TransportErrorKind::Connect`] with `error` as its source.
    pub fn connect_error(&self, error: impl Into<Cause>) -> TransportError {
        TransportError::new(
            TransportErrorKind::Connect,
            format!("connecting to {}:{} failed", self.host, self.port),
        )
        .with_source(error)
    }
}

/// The error for a failed TLS handshake: a [`TransportErrorKind::Tls`] with `error` as its
/// source.
pub fn tls_error(error: impl Into<Cause>) -> TransportError {
    TransportError::new(TransportErrorKind::Tls, "TLS handshake failed").with_source(error)
}

#[cfg(feature = "rustls")]
mod tls {
    use crate::{TlsOptions, TransportError, TransportErrorKind};
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
            roots.add(CertificateDer::from(der.clone())).map_err(|e| {
                TransportError::new(TransportErrorKind::Tls, "invalid root certificate")
                    .with_source(e)
            })?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| {
                TransportError::new(TransportErrorKind::Tls, "TLS setup failed").with_source(e)
            })?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Arc::new(config))
    }

    /// The TLS server name for `host`.
    pub fn server_name(host: &str) -> Result<ServerName<'static>, TransportError> {
        ServerName::try_from(host.to_owned()).map_err(|e| {
            TransportError::new(
                TransportErrorKind::InvalidUrl,
                format!("invalid TLS server name {host:?}"),
            )
            .with_source(e)
        })
    }
}

#[cfg(feature = "rustls")]
pub use tls::{client_config, server_name};

#[cfg(feature = "tungstenite")]
mod messages {
    use crate::runtime::{Incoming, Outgoing};
    use crate::{TransportError, TransportErrorKind};
    use tungstenite::protocol::frame::coding::CloseCode;
    use tungstenite::protocol::CloseFrame;
    use tungstenite::Message;

    /// A tungstenite read as the client's frame; `None` for frames the client ignores
    /// (WebSocket-level pings and pongs, which tungstenite answers itself).
    pub fn incoming(message: Result<Message, tungstenite::Error>) -> Option<Incoming> {
        match message {
            Ok(Message::Text(text)) => Some(Incoming::Text(text.into())),
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

    /// A tungstenite error as a transport error, with a kind from its variant and the
    /// tungstenite error as its source.
    pub fn error(error: tungstenite::Error) -> TransportError {
        use tungstenite::Error as E;
        let (kind, message) = match &error {
            E::ConnectionClosed | E::AlreadyClosed => {
                (TransportErrorKind::Closed, "WebSocket connection closed")
            }
            E::Io(_) => (TransportErrorKind::Io, "WebSocket I/O failed"),
            E::Tls(_) => (TransportErrorKind::Tls, "TLS failed"),
            E::Url(_) => (TransportErrorKind::InvalidUrl, "invalid WebSocket URL"),
            // `Http` and `HttpFormat` exist only with tungstenite's `handshake` feature;
            // their messages say what they are.
            _ if error.to_string().starts_with("HTTP") => {
                (TransportErrorKind::Handshake, "WebSocket handshake failed")
            }
            E::Protocol(tungstenite::error::ProtocolError::SendAfterClosing) => {
                (TransportErrorKind::Closed, "WebSocket connection closing")
            }
            E::Protocol(_) => (TransportErrorKind::Other, "WebSocket protocol error"),
            _ => (TransportErrorKind::Other, "WebSocket error"),
        };
        TransportError::new(kind, message).with_source(error)
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
