//! A local TLS endpoint in front of a test server, with a certificate made at run time.

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::sync::Arc;

/// Terminates TLS on a local port and forwards the bytes to `127.0.0.1:target`.
#[derive(Debug)]
pub struct TlsProxy {
    port: u16,
    ca_der: Vec<u8>,
    /// Dropping it stops the proxy.
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl TlsProxy {
    /// Generates a CA and a `localhost` certificate signed by it, and starts listening.
    pub fn start(target: u16) -> TlsProxy {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::generate().expect("leaf key");
        let leaf = CertificateParams::new(vec!["localhost".to_owned()])
            .expect("leaf params")
            .signed_by(&leaf_key, &issuer)
            .expect("leaf certificate");
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone(), ca_cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
            )
            .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("proxy binds");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let port = listener.local_addr().expect("proxy address").port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        // Its own thread and runtime, so any test runtime (or none) can use it.
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("proxy runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                let serve = async {
                    while let Ok((socket, _)) = listener.accept().await {
                        let acceptor = acceptor.clone();
                        tokio::spawn(async move {
                            let Ok(mut tls) = acceptor.accept(socket).await else {
                                return;
                            };
                            let Ok(mut upstream) =
                                tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                            else {
                                return;
                            };
                            let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
                        });
                    }
                };
                tokio::select! {
                    _ = serve => {}
                    _ = stopped => {}
                }
            });
        });
        TlsProxy {
            port,
            ca_der: CertificateDer::from(ca_cert.der().to_vec()).to_vec(),
            _stop: stop,
        }
    }

    /// The port to connect to (`wss://localhost:PORT`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The CA certificate (DER) to trust.
    pub fn ca_der(&self) -> Vec<u8> {
        self.ca_der.clone()
    }
}
