//! [noex-server](https://github.com/hamicek/noex-server) client for the async-std runtime.
//!
//! A thin adapter: it opens sockets with async-std and async-tungstenite (`wss://` through
//! rustls) and runs the runtime-agnostic [`noex_client`] driver on async-std. The whole
//! client API is re-exported.
//!
//! ```
//! use noex_async_std::ClientOptions;
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
//!     assert_eq!(users.count(None).await?, 1);
//!     Ok::<_, noex_async_std::Error>(())
//! })?;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use futures::future::BoxFuture;
use futures::{AsyncRead, AsyncWrite, FutureExt};
use noex_client::transport::{frame_sink, frame_stream, Target};
pub use noex_client::*;
use std::time::Duration;

/// The async-std backend: pass it to [`Client::new`], or use [`connect`].
#[derive(Debug, Clone, Copy, Default)]
pub struct AsyncStd;

impl Runtime for AsyncStd {
    fn spawn(&self, task: BoxFuture<'static, ()>) {
        async_std::task::spawn(task);
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        async_std::task::sleep(duration).boxed()
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

impl Connector for AsyncStd {
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
            let tcp = async_std::net::TcpStream::connect((target.host.as_str(), target.port))
                .await
                .map_err(|e| target.connect_error(e))?;
            let _ = tcp.set_nodelay(true);
            let io: Box<dyn Io> = if target.tls {
                let connector = futures_rustls::TlsConnector::from(transport::client_config(&tls)?);
                let stream = connector
                    .connect(transport::server_name(&target.host)?, tcp)
                    .await
                    .map_err(transport::tls_error)?;
                Box::new(stream)
            } else {
                Box::new(tcp)
            };
            let (ws, _) = async_tungstenite::client_async(url.as_str(), io)
                .await
                .map_err(transport::error)?;
            let (sink, stream) = ws.split();
            Ok((frame_sink(sink), frame_stream(stream)))
        }
        .boxed()
    }
}

impl From<AsyncStd> for Backend {
    fn from(runtime: AsyncStd) -> Backend {
        Backend::new(runtime)
    }
}

/// Connects to `url` and returns a connected client.
pub async fn connect(url: &str, options: ClientOptions) -> Result<Client> {
    Client::connect_with(AsyncStd, url, options).await
}
