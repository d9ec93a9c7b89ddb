//! [noex-server](https://github.com/hamicek/noex-server) client for the async-std runtime.
//! **Deprecated: use [`noex-smol`](https://docs.rs/noex-smol)**, as async-std itself is.
//!
//! A thin adapter: it runs the runtime-agnostic [`noex_client`] driver on async-std (tasks
//! and timers) and opens TCP connections with async-std; TLS (`wss://` through rustls) and
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
//! **async-std is deprecated in favour of smol**: its crate page says so ("Deprecated in
//! favor of `smol`"). This adapter stays for applications that run on async-std; new code is
//! better served by `noex-smol`, the same client API on smol (async-std already runs on
//! smol's building blocks, async-io and async-executor, so moving is mostly renaming).
//!
//! ```
//! # #![allow(deprecated)]
//! use noex_async_std::{ClientOptions, Filter};
//! use serde_json::json;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let server = noex_testkit::TestServer::builder()
//! #     .bucket_json("users", json!({"key": "id", "schema": {"id": {"type": "string", "generated": "uuid"}}}))
//! #     .start()?;
//! # let url = server.url();
//! async_std::task::block_on(async {
//!     let client = noex_async_std::connect(&url, ClientOptions::new()).await?;
//!     let users = client.store().bucket("users");
//!     users.insert(&json!({"name": "Alice"})).await?;
//!     assert_eq!(users.count(Filter::all()).await?, 1);
//!     Ok::<_, noex_async_std::Error>(())
//! })?;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use futures::future::BoxFuture;
use futures::FutureExt;
use noex_client::runtime::{Backend, Connector, FrameSink, FrameStream, Runtime};
pub use noex_client::surface::*;
use noex_client::ws_connector;
use std::time::Duration;

/// The async-std backend: pass it to [`Client::new`], or use [`connect`].
#[deprecated(
    since = "0.1.0",
    note = "async-std is deprecated in favour of smol: use noex-smol (`noex_smol::Smol`), the same client API"
)]
#[derive(Debug, Clone, Copy, Default)]
pub struct AsyncStd;

#[allow(deprecated)]
impl Runtime for AsyncStd {
    fn spawn(&self, task: BoxFuture<'static, ()>) {
        async_std::task::spawn(task);
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        async_std::task::sleep(duration).boxed()
    }
}

#[allow(deprecated)]
impl Connector for AsyncStd {
    fn connect(
        &self,
        url: &str,
        tls: &TlsOptions,
    ) -> BoxFuture<'static, Result<(FrameSink, FrameStream), TransportError>> {
        ws_connector::connect(url, tls, |host, port| async move {
            let tcp = async_std::net::TcpStream::connect((host.as_str(), port)).await?;
            let _ = tcp.set_nodelay(true);
            Ok(tcp)
        })
    }
}

#[allow(deprecated)]
impl From<AsyncStd> for Backend {
    fn from(runtime: AsyncStd) -> Backend {
        Backend::new(runtime)
    }
}

/// Connects to `url` and returns a connected client.
#[deprecated(
    since = "0.1.0",
    note = "async-std is deprecated in favour of smol: use noex-smol (`noex_smol::connect`), the same client API"
)]
#[allow(deprecated)]
pub async fn connect(url: &str, options: ClientOptions) -> Result<Client> {
    Client::connect_with(AsyncStd, url, options).await
}
