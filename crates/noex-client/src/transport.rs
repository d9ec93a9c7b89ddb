//! Pieces every WebSocket adapter needs: where to connect, TLS configuration, and the
//! conversion between tungstenite messages and the client's frames.
//!
//! For adapters that bring their own WebSocket stack (the adapters of this project use
//! [`crate::ws_connector`], which uses these). Its signatures name tungstenite 0.30 and
//! rustls 0.23 types: moving to a new major version of either is a breaking change of this
//! module, and of this module only.

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
        // The parser the WebSocket handshake uses too (tungstenite reads the URL as an
        // `http::Uri`): a URL accepted here is one the handshake accepts.
        let uri: http::Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| invalid("not a URL").with_source(e))?;
        // Lowercase only, as the handshake requires.
        let tls = match uri.scheme_str() {
            Some("ws") => false,
            Some("wss") => true,
            _ => return Err(invalid("unsupported scheme (use ws:// or wss://)")),
        };
        let authority = uri.authority().ok_or_else(|| invalid("no host"))?;
        // `[user[:password]@]host[:port]`; `http` finds the host but reads the port leniently
        // (one that is not a number, or too large, would read as none).
        let raw_host = authority.host();
        let host_and_port = authority
            .as_str()
            .rsplit_once('@')
            .map_or(authority.as_str(), |(_, after)| after);
        let port_text = host_and_port
            .strip_prefix(raw_host)
            .ok_or_else(|| invalid("invalid host"))?;
        let host = match raw_host.strip_prefix('[') {
            Some(bracketed) => {
                let address = bracketed
                    .strip_suffix(']')
                    .and_then(|a| a.parse::<std::net::Ipv6Addr>().ok())
                    .ok_or_else(|| invalid("invalid IPv6 address"))?;
                address.to_string()
            }
            None if raw_host.is_empty() => return Err(invalid("no host")),
            None => raw_host.to_owned(),
        };
        let port = match port_text {
            // `ws://host:/` is the default port, as `ws://host/`.
            "" | ":" if tls => 443,
            "" | ":" => 80,
            _ => port_text
                .strip_prefix(':')
                .filter(|digits| digits.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|digits| digits.parse::<u16>().ok())
                .ok_or_else(|| invalid("invalid port"))?,
        };
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
    use rustls::crypto::CryptoProvider;
    use rustls::pki_types::{CertificateDer, ServerName};
    use std::sync::Arc;

    /// A rustls client configuration trusting the public web roots and the extra roots
    /// of `options`, with the crypto provider of [`crypto_provider`].
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
        let config = rustls::ClientConfig::builder_with_provider(crypto_provider()?)
            .with_safe_default_protocol_versions()
            .map_err(|e| {
                TransportError::new(TransportErrorKind::Tls, "TLS setup failed").with_source(e)
            })?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Arc::new(config))
    }

    /// The rustls crypto provider that `wss://` connections use: the one the application
    /// installed process-wide ([`CryptoProvider::install_default`]) when there is one, so
    /// that one choice holds for every rustls user in the process; otherwise aws-lc-rs with
    /// the `aws-lc-rs` feature, *ring* with the `ring` feature. With neither feature and
    /// nothing installed, a [`TransportErrorKind::Tls`] error saying so.
    pub fn crypto_provider() -> Result<Arc<CryptoProvider>, TransportError> {
        if let Some(installed) = CryptoProvider::get_default() {
            return Ok(installed.clone());
        }
        from_features().map(Arc::new).ok_or_else(|| {
            TransportError::new(
                TransportErrorKind::Tls,
                "no rustls crypto provider: enable the `ring` or `aws-lc-rs` feature, or \
                 install one with rustls::crypto::CryptoProvider::install_default",
            )
        })
    }

    #[cfg(feature = "aws-lc-rs")]
    fn from_features() -> Option<CryptoProvider> {
        Some(rustls::crypto::aws_lc_rs::default_provider())
    }

    // rustls 0.23.48 deprecated this function (*ring* has no post-quantum key exchange)
    // without a replacement: choosing *ring* is the point of the `ring` feature.
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    #[allow(deprecated)]
    fn from_features() -> Option<CryptoProvider> {
        Some(rustls::crypto::ring::default_provider())
    }

    #[cfg(not(any(feature = "ring", feature = "aws-lc-rs")))]
    fn from_features() -> Option<CryptoProvider> {
        None
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
pub use tls::{client_config, crypto_provider, server_name};

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
        use tungstenite::error::ProtocolError as P;
        use tungstenite::Error as E;
        use TransportErrorKind as K;
        let handshake = (K::Handshake, "WebSocket handshake failed");
        // Every variant by name (the enum is exhaustive): a new one in a later tungstenite
        // is a compile error here, not a silent `Other`.
        let (kind, message) = match &error {
            E::ConnectionClosed | E::AlreadyClosed => (K::Closed, "WebSocket connection closed"),
            E::Io(_) => (K::Io, "WebSocket I/O failed"),
            E::Tls(_) => (K::Tls, "TLS failed"),
            E::Url(_) => (K::InvalidUrl, "invalid WebSocket URL"),
            // The server answered the upgrade with something other than 101 (its response
            // is the source), or the request could not be built.
            E::Http(_) | E::HttpFormat(_) => handshake,
            E::Protocol(P::SendAfterClosing) => (K::Closed, "WebSocket connection closing"),
            // A 101 answer that is not a valid WebSocket upgrade.
            E::Protocol(
                P::WrongHttpMethod
                | P::WrongHttpVersion
                | P::MissingConnectionUpgradeHeader
                | P::MissingUpgradeWebSocketHeader
                | P::MissingSecWebSocketVersionHeader
                | P::MissingSecWebSocketKey
                | P::InvalidSecWebSocketKey
                | P::SecWebSocketAcceptKeyMismatch
                | P::SecWebSocketSubProtocolError(_)
                | P::JunkAfterRequest
                | P::CustomResponseSuccessful
                | P::InvalidHeader(_)
                | P::HandshakeIncomplete
                | P::HttparseError(_),
            ) => handshake,
            E::Protocol(_) => (K::Other, "WebSocket protocol error"),
            E::Capacity(_) | E::WriteBufferFull(_) | E::Utf8(_) | E::AttackAttempt => {
                (K::Other, "WebSocket error")
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> (String, u16, bool) {
        let t = Target::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        (t.host, t.port, t.tls)
    }

    fn refused(url: &str) -> String {
        let e = Target::parse(url).expect_err(url);
        assert_eq!(e.kind(), TransportErrorKind::InvalidUrl, "{url}");
        e.to_string()
    }

    #[test]
    fn websocket_urls_name_host_port_and_tls() {
        let cases: [(&str, (&str, u16, bool)); 11] = [
            ("ws://example.com", ("example.com", 80, false)),
            ("wss://example.com", ("example.com", 443, true)),
            ("ws://example.com/", ("example.com", 80, false)),
            ("ws://example.com:", ("example.com", 80, false)),
            ("wss://example.com:/ws", ("example.com", 443, true)),
            (
                "ws://127.0.0.1:8080/ws?token=1#top",
                ("127.0.0.1", 8080, false),
            ),
            ("wss://example.com:65535", ("example.com", 65535, true)),
            (
                "ws://user:secret@example.com:81/",
                ("example.com", 81, false),
            ),
            ("ws://[::1]:8080/", ("::1", 8080, false)),
            ("wss://[2001:DB8:0:0:0:0:0:1]", ("2001:db8::1", 443, true)),
            ("ws://Example.COM", ("Example.COM", 80, false)),
        ];
        for (url, (host, port, tls)) in cases {
            assert_eq!(target(url), (host.to_owned(), port, tls), "{url}");
        }
    }

    #[test]
    fn what_the_handshake_would_refuse_is_an_invalid_url() {
        for (url, why) in [
            ("http://example.com", "unsupported scheme"),
            ("WS://example.com", "unsupported scheme"),
            ("example.com:80", "unsupported scheme"),
            ("/just/a/path", "unsupported scheme"),
            ("ws://", "not a URL"),
            ("ws://:80/", "no host"),
            ("ws://example.com:65536", "invalid port"),
            ("ws://example.com:+80", "invalid port"),
            ("ws://example.com:8a", "invalid port"),
            ("ws://[::1:8080/", "not a URL"),
            ("ws://[not-an-address]/", "invalid IPv6 address"),
            ("ws://exa mple.com/", "not a URL"),
            ("ws://bücher.example/", "not a URL"),
            ("", "not a URL"),
        ] {
            let message = refused(url);
            assert!(message.contains(why), "{url}: {message}");
        }
    }

    #[test]
    fn a_refused_url_never_shows_its_user_info_or_query() {
        for url in [
            "http://user:hunter2@example.com/?token=hunter2",
            "ws://user:hunter2@example.com:99999/",
            "ws://user:hunter2@[zz]/",
        ] {
            let e = Target::parse(url).expect_err(url);
            let shown = format!("{e} {e:?} {}", e.chain_text());
            assert!(!shown.contains("hunter2"), "{shown}");
        }
    }

    #[cfg(feature = "tungstenite")]
    #[test]
    fn tungstenite_errors_are_classified_by_variant() {
        use tungstenite::error::{CapacityError, ProtocolError as P, UrlError};
        use tungstenite::Error as E;
        use TransportErrorKind as K;
        let not_found = http::Response::builder()
            .status(404)
            .body(None)
            .expect("a response");
        let cases = [
            (E::ConnectionClosed, K::Closed),
            (E::AlreadyClosed, K::Closed),
            (E::Protocol(P::SendAfterClosing), K::Closed),
            (E::Io(std::io::ErrorKind::ConnectionReset.into()), K::Io),
            (E::Url(UrlError::NoHostName), K::InvalidUrl),
            (E::Http(Box::new(not_found)), K::Handshake),
            (E::Protocol(P::MissingUpgradeWebSocketHeader), K::Handshake),
            (E::Protocol(P::SecWebSocketAcceptKeyMismatch), K::Handshake),
            (E::Protocol(P::HandshakeIncomplete), K::Handshake),
            (E::Protocol(P::ResetWithoutClosingHandshake), K::Other),
            (E::Protocol(P::UnmaskedFrameFromClient), K::Other),
            (E::Capacity(CapacityError::TooManyHeaders), K::Other),
            (E::Utf8("bad".into()), K::Other),
            (E::AttackAttempt, K::Other),
        ];
        for (tungstenite_error, kind) in cases {
            let shown = tungstenite_error.to_string();
            let e = error(tungstenite_error);
            assert_eq!(e.kind(), kind, "{shown}");
            let source = std::error::Error::source(&e).expect("the tungstenite error");
            assert!(source.downcast_ref::<tungstenite::Error>().is_some());
        }
    }

    #[cfg(feature = "rustls")]
    #[test]
    fn tls_configurations_have_the_features_crypto_provider() {
        use rustls::NamedGroup;
        // The workspace's tests build the adapters with their default provider feature.
        let config = client_config(&crate::TlsOptions::default()).expect("a configuration");
        let groups: Vec<NamedGroup> = config
            .crypto_provider()
            .kx_groups
            .iter()
            .map(|group| group.name())
            .collect();
        assert!(groups.contains(&NamedGroup::X25519), "{groups:?}");
        if cfg!(feature = "aws-lc-rs") {
            assert_eq!(
                groups.first(),
                Some(&NamedGroup::X25519MLKEM768),
                "{groups:?}"
            );
        }
    }
}
