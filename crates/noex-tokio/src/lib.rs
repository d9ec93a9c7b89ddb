//! [noex-server](https://github.com/hamicek/noex-server) client for the tokio runtime.
//!
//! A thin adapter: it opens sockets with tokio and tokio-tungstenite (`wss://` through
//! rustls) and runs the runtime-agnostic [`noex_client`] driver on tokio. The whole client
//! API is re-exported.
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
//!     let mut live = client.store().subscribe::<Vec<Record>>("all-users", None).await?;
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

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use noex_client::transport::{frame_sink, frame_stream, Target};
pub use noex_client::*;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

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

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

impl Connector for Tokio {
    fn connect(
        &self,
        url: &str,
        tls: &TlsOptions,
    ) -> BoxFuture<'static, Result<(runtime::FrameSink, runtime::FrameStream), TransportError>>
    {
        let url = url.to_owned();
        let tls = tls.clone();
        async move {
            let target = Target::parse(&url)?;
            let tcp = tokio::net::TcpStream::connect((target.host.as_str(), target.port))
                .await
                .map_err(|e| target.connect_error(e))?;
            let _ = tcp.set_nodelay(true);
            let io: Box<dyn Io> = if target.tls {
                let connector = tokio_rustls::TlsConnector::from(transport::client_config(&tls)?);
                let stream = connector
                    .connect(transport::server_name(&target.host)?, tcp)
                    .await
                    .map_err(transport::tls_error)?;
                Box::new(stream)
            } else {
                Box::new(tcp)
            };
            let (ws, _) = tokio_tungstenite::client_async(url.as_str(), io)
                .await
                .map_err(transport::error)?;
            let (sink, stream) = ws.split();
            Ok((frame_sink(sink), frame_stream(stream)))
        }
        .boxed()
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
