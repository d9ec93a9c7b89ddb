//! [noex-server](https://github.com/hamicek/noex-server) client for the tokio runtime.
//!
//! A thin adapter: it runs the runtime-agnostic [`noex_client`] driver on tokio (tasks,
//! timers and clock) and opens TCP connections with tokio; TLS (`wss://` through rustls) and
//! the WebSocket handshake are [`noex_client::ws_connector`], shared with the other adapters.
//! The whole client API is re-exported.
//!
//! `wss://` is TLS through rustls, whose crypto provider is a feature: `aws-lc-rs` (the
//! default: rustls' own default provider, post-quantum key exchange first), `ring` (a lighter
//! build, classical key exchange only), or `rustls` (the provider the application installs
//! with `rustls::crypto::CryptoProvider::install_default`). With `default-features = false`
//! and none of them, the client speaks `ws://` only and a `wss://` URL is a
//! [`TransportErrorKind::Tls`] error. A provider installed process-wide is used first in any
//! case.
//!
//! ```
//! use noex_tokio::{ClientOptions, Record};
//! use futures::StreamExt;
//! use serde_json::json;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let server = noex_testkit::TestServer::builder()
//! #     .bucket_json("users", json!({"key": "id", "schema": {"id": {"type": "string", "generated": "uuid"}}}))
//! #     .query("all-users", noex_testkit::QueryDef::all("users"))
//! #     .start()?;
//! # let url = server.url();
//! tokio::runtime::Runtime::new()?.block_on(async {
//!     let client = noex_tokio::connect(&url, ClientOptions::new()).await?;
//!     let users = client.store().bucket("users");
//!     let mut live = client.store().subscribe::<Vec<Record>>("all-users").await?;
//!     assert!(live.next().await.unwrap()?.is_empty());
//!
//!     let alice = users.insert(&json!({"name": "Alice", "age": 30})).await?;
//!     assert_eq!(alice.version, 1);
//!     assert_eq!(live.next().await.unwrap()?.len(), 1);
//!     client.disconnect().await;
//!     Ok::<_, noex_tokio::Error>(())
//! })?;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use async_tungstenite::tokio::TokioAdapter;
use futures::future::BoxFuture;
use futures::FutureExt;
use noex_client::runtime::{Backend, Connector, FrameSink, FrameStream, Runtime};
pub use noex_client::surface::*;
use noex_client::ws_connector;
use std::time::Duration;

/// The tokio backend: pass it to [`Client::new`], or use [`connect`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Tokio;

impl Runtime for Tokio {
    fn spawn(&self, task: BoxFuture<'static, ()>) {
        tokio::spawn(task);
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        tokio::time::sleep(duration).boxed()
    }

    /// tokio's clock: under paused time (`tokio::time::pause`) the whole client runs on
    /// virtual time.
    fn now(&self) -> std::time::Instant {
        tokio::time::Instant::now().into_std()
    }
}

impl Connector for Tokio {
    fn connect(
        &self,
        url: &str,
        tls: &TlsOptions,
    ) -> BoxFuture<'static, Result<(FrameSink, FrameStream), TransportError>> {
        ws_connector::connect(url, tls, |host, port| async move {
            let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            let _ = tcp.set_nodelay(true);
            Ok(TokioAdapter::new(tcp))
        })
    }
}

impl From<Tokio> for Backend {
    fn from(tokio: Tokio) -> Backend {
        Backend::new(tokio)
    }
}

/// Connects to `url` and returns a connected client. Must be called within a tokio runtime.
pub async fn connect(url: &str, options: ClientOptions) -> Result<Client> {
    Client::connect_with(Tokio, url, options).await
}
