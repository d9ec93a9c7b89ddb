//! The few things the client needs from an async runtime and a transport.
//!
//! An adapter (`noex-tokio`, `noex-async-std`, or your own) implements [`Runtime`] (spawn a
//! task, sleep) and [`Connector`] (open a WebSocket and hand back a text-frame
//! `Sink` + `Stream`). Everything else — the driver loop, the typed API, subscriptions — is
//! written once in this crate.

use crate::options::TlsOptions;
use crate::transport_error::TransportError;
use futures::future::BoxFuture;
use futures::{Sink, Stream};
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Spawning, sleeping and the time.
pub trait Runtime: Send + Sync + 'static {
    /// Runs `task` in the background.
    fn spawn(&self, task: BoxFuture<'static, ()>);
    /// Completes after `duration`.
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;
    /// The current time, on the clock `sleep` runs on. The client reads time only from
    /// here, so a runtime with a virtual clock (tokio's paused time, a simulation) drives
    /// the whole client. The default is the OS clock.
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A frame from the transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A text frame.
    Text(FrameText),
    /// A binary frame (the protocol does not use them; the core reports it).
    Binary(Vec<u8>),
    /// The connection closed, with the close frame's code and reason when one came.
    Closed {
        /// The close code.
        code: Option<u16>,
        /// The close reason.
        reason: String,
    },
}

/// The text of a frame from the transport: a `String` it owns, or (with the
/// `tungstenite` feature) the bytes tungstenite read it into, kept without a copy.
///
/// ```
/// use noex_client::runtime::FrameText;
/// let text = FrameText::from(String::from(r#"{"type":"ping","timestamp":1}"#));
/// assert!(text.as_str().starts_with(r#"{"type""#));
/// // `Debug` shows the size, never the text (a frame may carry a session token).
/// assert_eq!(format!("{text:?}"), "FrameText(29 bytes)");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct FrameText(TextRepr);

#[derive(Clone, PartialEq, Eq)]
enum TextRepr {
    Owned(String),
    #[cfg(feature = "tungstenite")]
    Read(tungstenite::Utf8Bytes),
}

impl FrameText {
    /// The frame's text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            TextRepr::Owned(text) => text,
            #[cfg(feature = "tungstenite")]
            TextRepr::Read(text) => text.as_str(),
        }
    }
}

impl From<String> for FrameText {
    fn from(text: String) -> FrameText {
        FrameText(TextRepr::Owned(text))
    }
}

impl From<&str> for FrameText {
    fn from(text: &str) -> FrameText {
        FrameText(TextRepr::Owned(text.to_owned()))
    }
}

/// Takes the text tungstenite read as it is: no copy.
#[cfg(feature = "tungstenite")]
impl From<tungstenite::Utf8Bytes> for FrameText {
    fn from(text: tungstenite::Utf8Bytes) -> FrameText {
        FrameText(TextRepr::Read(text))
    }
}

impl AsRef<str> for FrameText {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for FrameText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FrameText({} bytes)", self.as_str().len())
    }
}

/// A frame for the transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// A text frame.
    Text(String),
    /// A close frame, after which the transport shuts down.
    Close {
        /// The close code.
        code: u16,
        /// The close reason.
        reason: String,
    },
}

/// The sending half of an open connection.
pub type FrameSink = Pin<Box<dyn Sink<Outgoing, Error = TransportError> + Send>>;
/// The receiving half of an open connection. It ends after [`Incoming::Closed`] (or without
/// it when the socket just ended).
pub type FrameStream = Pin<Box<dyn Stream<Item = Incoming> + Send>>;

/// Opens WebSocket connections.
pub trait Connector: Send + Sync + 'static {
    /// Opens `url` (`ws://` or `wss://`) and returns its two halves.
    fn connect(
        &self,
        url: &str,
        tls: &TlsOptions,
    ) -> BoxFuture<'static, Result<(FrameSink, FrameStream), TransportError>>;
}

/// What a [`crate::Client`] runs on: a runtime and a connector. Made with
/// [`Backend::new`] (one value that is both, as adapters provide) or
/// [`Backend::from_parts`]; its parts are readable (`backend.runtime.sleep(..)`).
#[derive(Clone)]
#[non_exhaustive]
pub struct Backend {
    /// Spawning and sleeping.
    pub runtime: Arc<dyn Runtime>,
    /// Opening connections.
    pub connector: Arc<dyn Connector>,
}

impl Backend {
    /// A backend whose runtime and connector are the same value (what adapters provide).
    pub fn new<B: Runtime + Connector + Clone>(both: B) -> Backend {
        Backend {
            runtime: Arc::new(both.clone()),
            connector: Arc::new(both),
        }
    }

    /// A backend from a runtime and a connector that are different values (a custom
    /// transport on an adapter's runtime, a simulated network on a virtual clock).
    pub fn from_parts(runtime: Arc<dyn Runtime>, connector: Arc<dyn Connector>) -> Backend {
        Backend { runtime, connector }
    }
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Backend")
    }
}
