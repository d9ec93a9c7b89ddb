//! [noex-server](https://github.com/hamicek/noex-server) client for the smol runtime.
//!
//! A thin adapter: it runs the runtime-agnostic [`noex_client`] driver on smol (tasks on an
//! executor, timers from async-io) and opens TCP connections with smol; TLS (`wss://`
//! through rustls) and the WebSocket handshake are [`noex_client::ws_connector`], shared
//! with the other adapters. The whole client API is re-exported.
//!
//! `wss://` is TLS through rustls, whose crypto provider is a feature: `aws-lc-rs` (the
//! default: rustls' own default provider, post-quantum key exchange first), `ring` (a lighter
//! build, classical key exchange only), or `rustls` (the provider the application installs
//! with `rustls::crypto::CryptoProvider::install_default`). With `default-features = false`
//! and none of them, the client speaks `ws://` only and a `wss://` URL is a
//! [`TransportErrorKind::Tls`] error. A provider installed process-wide is used first in any
//! case.
//!
//! smol is where async-std's users are pointed (async-std is deprecated in favour of it);
//! moving from `noex-async-std` is renaming `AsyncStd` to [`Smol`].
//!
//! ```
//! use futures::StreamExt;
//! use noex_smol::{ClientOptions, Record};
//! use serde_json::json;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let server = noex_testkit::TestServer::builder()
//! #     .bucket_json("users", json!({"key": "id", "schema": {"id": {"type": "string", "generated": "uuid"}}}))
//! #     .query("all-users", noex_testkit::QueryDef::all("users"))
//! #     .start()?;
//! # let url = server.url();
//! smol::block_on(async {
//!     let client = noex_smol::connect(&url, ClientOptions::new()).await?;
//!     let users = client.store().bucket("users");
//!     let mut live = client.store().subscribe::<Vec<Record>>("all-users").await?;
//!     assert!(live.next().await.unwrap()?.is_empty());
//!
//!     let alice = users.insert(&json!({"name": "Alice", "age": 30})).await?;
//!     assert_eq!(alice.version, 1);
//!     assert_eq!(live.next().await.unwrap()?.len(), 1);
//!     client.disconnect().await;
//!     Ok::<_, noex_smol::Error>(())
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
use smol::Executor;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The smol backend: pass it to [`Client::new`], or use [`connect`].
///
/// [`Smol::global`] (the default) spawns the client's tasks on smol's global executor, the
/// one `smol::spawn` uses: it runs on threads of its own (`SMOL_THREADS`, one by default),
/// so the client makes progress whatever the caller blocks on. [`Smol::with_executor`]
/// spawns them on an executor of yours instead; the client then makes progress only while
/// that executor runs, and its tasks end when the executor is dropped.
///
/// ```
/// use noex_smol::{Client, Smol};
/// use std::sync::Arc;
///
/// let executor = Arc::new(smol::Executor::new());
/// let client = Client::new(Smol::with_executor(executor.clone()));
/// // Run the executor while using the client, e.g. `smol::block_on(executor.run(..))`.
/// # drop(client);
/// ```
#[derive(Clone, Default)]
pub struct Smol {
    /// `None`: smol's global executor.
    executor: Option<Arc<Executor<'static>>>,
}

impl Smol {
    /// The client's tasks on smol's global executor (`smol::spawn`).
    pub fn global() -> Smol {
        Smol::default()
    }

    /// The client's tasks on `executor`, which must be running for the client to make
    /// progress.
    pub fn with_executor(executor: Arc<Executor<'static>>) -> Smol {
        Smol {
            executor: Some(executor),
        }
    }
}

impl fmt::Debug for Smol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let executor = if self.executor.is_some() {
            "given"
        } else {
            "global"
        };
        f.debug_struct("Smol").field("executor", &executor).finish()
    }
}

impl Runtime for Smol {
    fn spawn(&self, task: BoxFuture<'static, ()>) {
        match &self.executor {
            Some(executor) => executor.spawn(task).detach(),
            None => smol::spawn(task).detach(),
        }
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        smol::Timer::after(duration).map(drop).boxed()
    }
}

impl Connector for Smol {
    fn connect(
        &self,
        url: &str,
        tls: &TlsOptions,
    ) -> BoxFuture<'static, Result<(FrameSink, FrameStream), TransportError>> {
        ws_connector::connect(url, tls, |host, port| async move {
            let tcp = smol::net::TcpStream::connect((host.as_str(), port)).await?;
            let _ = tcp.set_nodelay(true);
            Ok(tcp)
        })
    }
}

impl From<Smol> for Backend {
    fn from(smol: Smol) -> Backend {
        Backend::new(smol)
    }
}

/// Connects to `url` and returns a connected client, its tasks on smol's global executor.
pub async fn connect(url: &str, options: ClientOptions) -> Result<Client> {
    Client::connect_with(Smol::global(), url, options).await
}
