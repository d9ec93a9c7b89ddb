//! Authentication and identity: an admin creates a user and a role, grants access, and the
//! user logs in with credentials that the client re-presents after a reconnect.
//!
//! Runs on the embedded server in identity mode. To use a real server instead, set
//! `NOEX_URL` and `NOEX_ADMIN_SECRET` (built-in identity enabled).
//!
//! ```text
//! cargo run --example auth_identity
//! ```

use noex_testkit::{AuthMode, TestServer};
use noex_tokio::{ClientOptions, Grant, NewUser};
use serde_json::json;

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
                .start()?;
            println!(
                "started the embedded test server (identity mode) at {}",
                server.url()
            );
            (server.url(), secret, Some(server))
        }
    };

    // The administrator.
    let admin = noex_tokio::connect(&url, ClientOptions::new()).await?;
    let session = admin.identity().login_with_secret(&secret).await?;
    println!("admin session (token hidden): {session:?}");
    let suffix = std::process::id();
    let username = format!("alice-{suffix}");
    let bucket = format!("docs-{suffix}");
    admin
        .store()
        .define_bucket(
            &bucket,
            json!({"key": "id", "schema": {"id": {"type": "string", "generated": "uuid"}}}),
        )
        .await?;
    let user = admin
        .identity()
        .create_user(
            NewUser::new(&username, "alice-pass-123")
                .display_name("Alice")
                .metadata([("team", "docs")]),
        )
        .await?;
    let user_id = user.id.clone();
    admin
        .identity()
        .grant(Grant {
            subject_type: "user".into(),
            subject_id: user_id.clone(),
            resource_type: "bucket".into(),
            resource_name: bucket.clone(),
            operations: vec!["read".into(), "write".into()],
        })
        .await?;
    for entry in admin.identity().get_acl("bucket", &bucket).await? {
        println!(
            "ACL of {bucket}: {} {} may {:?}",
            entry.subject_type, entry.subject_name, entry.operations
        );
    }

    // The user, logging in with credentials (kept by the client for reconnects).
    let alice = noex_tokio::connect(
        &url,
        ClientOptions::new().credentials(&username, "alice-pass-123"),
    )
    .await?;
    println!("alice: {:?}", alice.identity().whoami().await?);
    alice
        .store()
        .bucket(&bucket)
        .insert(json!({"title": "Hello"}))
        .await?;
    match alice
        .identity()
        .create_user(NewUser::new("mallory", "mallory-pass-1"))
        .await
    {
        Err(e) => println!("alice may not create users: {e}"),
        Ok(_) => println!("unexpected: alice created a user"),
    }

    alice.disconnect().await;
    admin.identity().delete_user(&user_id).await?;
    admin.store().drop_bucket(&bucket).await?;
    admin.disconnect().await;
    Ok(())
}
