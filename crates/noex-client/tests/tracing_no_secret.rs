//! Its own test binary: tracing caches callsite interest process-wide, so a test running
//! beside others on other threads can miss spans.
//! Why `connect` failed, as typed errors with their sources, and what the client logs
//! through `tracing` on the way (never a secret).

use noex_client::{Backoff, Client, ClientOptions, LifecycleEvent};
use noex_testkit::{AuthMode, TestServer, TokenSession};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

const TOKEN: &str = "writer-token-Qv93-never-logged";

fn options() -> ClientOptions {
    ClientOptions::new()
        .backoff(Backoff {
            initial: Duration::from_millis(20),
            multiplier: 2.0,
            max: Duration::from_millis(100),
            jitter: Duration::ZERO,
            max_retries: None,
        })
        .seed(7)
}

fn token_server() -> TestServer {
    TestServer::builder()
        .auth(AuthMode::Tokens(vec![TokenSession::new(
            TOKEN,
            "writer-1",
            ["writer"],
        )]))
        .start()
        .expect("server")
}

#[derive(Clone, Default)]
struct Capture {
    lines: Arc<Mutex<Vec<String>>>,
    next_id: Arc<AtomicU64>,
}

struct Fields<'a>(&'a mut String);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }
}

impl Capture {
    fn push(&self, line: String) {
        self.lines.lock().unwrap().push(line);
    }
    fn text(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::TRACE)
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let mut line = format!(
            "SPAN {} {}",
            span.metadata().level(),
            span.metadata().name()
        );
        span.record(&mut Fields(&mut line));
        self.push(line);
        Id::from_u64(id)
    }
    fn record(&self, _: &Id, values: &Record<'_>) {
        let mut line = String::from("RECORD");
        values.record(&mut Fields(&mut line));
        self.push(line);
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut line = format!(
            "EVENT {} {}",
            event.metadata().level(),
            event.metadata().target()
        );
        event.record(&mut Fields(&mut line));
        self.push(line);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

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
            .filter(|l| l.starts_with("SPAN INFO noex_connection"))
            .count()
            >= 2,
        "{text}"
    );
}
