//! Its own test binary: tracing caches callsite interest process-wide, so a test running
//! beside others on other threads can miss spans.
//! Why `connect` failed, as typed errors with their sources, and what the client logs
//! through `tracing` on the way (never a secret).

#[path = "../../noex-proto/tests/support/capture.rs"]
mod capture;
mod common;

use capture::Capture;
use common::{options, token_server, TOKEN};
use noex_client::{Client, LifecycleEvent};
use std::sync::Mutex;
use std::time::Duration;

/// The whole client (driver and core) on one thread, so the scoped subscriber sees it all.
#[tokio::test(flavor = "current_thread")]
async fn a_token_login_and_a_reconnect_log_no_secret() {
    let capture = Capture::default();
    let _default = tracing::subscriber::set_default(capture.clone());
    let server = token_server();
    let client = Client::new(noex_tokio::Tokio);
    let (reconnected_tx, reconnected) = futures::channel::oneshot::channel();
    let reconnected_tx = Mutex::new(Some(reconnected_tx));
    let _guard = client.on(move |event| {
        if matches!(event, LifecycleEvent::Reconnected) {
            if let Some(tx) = reconnected_tx.lock().unwrap().take() {
                let _ = tx.send(());
            }
        }
    });
    client
        .connect(&server.url(), options().token(TOKEN))
        .await
        .unwrap();
    server.drop_connections();
    tokio::time::timeout(Duration::from_secs(10), reconnected)
        .await
        .expect("reconnected in time")
        .unwrap();
    client.disconnect().await;

    let text = capture.text();
    assert!(!text.contains(TOKEN), "the token was logged:\n{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("EVENT INFO") && l.contains("message=reconnecting")),
        "no reconnect at info:\n{text}"
    );
    assert!(
        text.lines()
            .filter(|l| l.starts_with("SPAN#") && l.contains(" INFO noex_connection"))
            .count()
            >= 2,
        "{text}"
    );
}
