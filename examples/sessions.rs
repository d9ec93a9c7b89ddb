//! A session that stays logged in: a `.credentials(..)` client against a server whose
//! sessions last 1.5 s, making requests for four lifetimes. The client renews the session
//! before it expires, and if the server says it expired anyway, logs in again and sends
//! the refused requests again: the application never sees `UNAUTHORIZED`.
//!
//! Runs on the embedded server (built-in identity, 1.5 s sessions). To use a real server,
//! start it with built-in identity and `auth.sessionTtl` 1500, then set `NOEX_URL` and
//! `NOEX_ADMIN_SECRET`.
//!
//! ```text
//! cargo run --example sessions
//! ```

use noex_testkit::{AuthMode, TestServer};
use noex_tokio::{ClientOptions, Filter, Grant, LifecycleEvent, NewUser};
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The sessions' lifetime on the embedded server.
const TTL: Duration = Duration::from_millis(1_500);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (url, secret, _embedded) = match (
        std::env::var("NOEX_URL"),
        std::env::var("NOEX_ADMIN_SECRET"),
    ) {
        (Ok(url), Ok(secret)) => (url, secret, None),
        _ => {
            let secret = "example-admin-secret".to_owned();
            let server = TestServer::builder()
                .auth(AuthMode::identity(secret.clone()))
                .session_ttl(TTL)
                .start()?;
            println!(
                "started the embedded test server with 1.5 s sessions at {}",
                server.url()
            );
            (server.url(), secret, Some(server))
        }
    };

    // An administrator makes a user who may write one bucket.
    let admin = noex_tokio::connect(&url, ClientOptions::new()).await?;
    admin.identity().login_with_secret(&secret).await?;
    let suffix = std::process::id();
    let (username, bucket) = (format!("keeper-{suffix}"), format!("beats-{suffix}"));
    let schema = json!({"key": "id", "schema": {"id": {"type": "string", "generated": "uuid"}}});
    admin.store().define_bucket(&bucket, schema).await?;
    let user = admin
        .identity()
        .create_user(NewUser::new(&username, "keeper-pass-123"))
        .await?;
    admin
        .identity()
        .grant(Grant {
            subject_type: "user".into(),
            subject_id: user.id.clone(),
            resource_type: "bucket".into(),
            resource_name: bucket.clone(),
            operations: vec!["read".into(), "write".into()],
        })
        .await?;

    // The user's client keeps itself logged in.
    let client = noex_tokio::connect(
        &url,
        ClientOptions::new().credentials(&username, "keeper-pass-123"),
    )
    .await?;
    let renewals = Arc::new(AtomicU64::new(0));
    let seen = renewals.clone();
    let _listener = client.on(move |event| {
        if let LifecycleEvent::SessionRenewed { expires_in } = event {
            seen.fetch_add(1, Ordering::Relaxed);
            println!("session renewed, good for {expires_in:?}");
        }
    });
    let beats = client.store().bucket(&bucket);
    let started = Instant::now();
    let (mut ok, mut failed) = (0u64, 0u64);
    while started.elapsed() < TTL * 4 {
        let result = match ok % 2 {
            0 => beats.insert(json!({})).await.map(drop),
            _ => beats.count(Filter::all()).await.map(drop),
        };
        match result {
            Ok(()) => ok += 1,
            Err(e) => {
                failed += 1;
                println!("request failed: {e}");
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let counters = client.counters().await?;
    println!(
        "{ok} requests over four session lifetimes, {failed} failed; {} renewals ({} heard), \
         {} expiries, {} requests sent again after a new login",
        counters.sessions_renewed,
        renewals.load(Ordering::Relaxed),
        counters.sessions_expired,
        counters.requests_reauthorized,
    );

    client.disconnect().await;
    admin.identity().delete_user(&user.id).await?;
    admin.store().drop_bucket(&bucket).await?;
    admin.disconnect().await;
    if failed > 0 {
        return Err(format!("{failed} requests failed").into());
    }
    Ok(())
}
