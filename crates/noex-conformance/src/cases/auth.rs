//! Authentication, identity and audit against the embedded server.

use crate::{fast_options, Ctx, EventLog};
use noex_client::{
    AuditFilter, Backend, ClientOptions, ConnectionState, ErrorCode, Grant, LifecycleEvent, NewUser,
};
use noex_testkit::{AuthMode, TestServer, TokenSession};
use serde_json::json;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);
const SECRET: &str = "conformance-admin-secret";

fn first_frame_types(ctx: &Ctx) -> Vec<String> {
    ctx.server()
        .received_frames()
        .iter()
        .filter_map(|log| log.frames.first())
        .filter_map(|f| serde_json::from_str::<serde_json::Value>(f).ok())
        .map(|v| v["type"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A configured token logs in on every connection, including after reconnects.
pub async fn token_login_across_reconnects(backend: Backend) {
    let builder = TestServer::builder()
        .bucket_json(
            "docs",
            json!({"key": "id", "schema": {"id": {"type": "string", "generated": "uuid"}}}),
        )
        .auth(AuthMode::Tokens(vec![TokenSession::new(
            "writer-token",
            "writer-1",
            ["writer"],
        )]));
    let ctx = Ctx::with_server(&backend, builder);
    let client = ctx.connect(fast_options().token("writer-token")).await;
    let (log, _guard) = EventLog::attach(&client);
    client
        .store()
        .bucket("docs")
        .insert(&json!({}))
        .await
        .unwrap();
    ctx.server().drop_connections();
    ctx.eventually(WAIT, "reconnected", || async {
        log.count(|e| matches!(e, LifecycleEvent::Reconnected)) == 1
    })
    .await;
    assert_eq!(client.store().bucket("docs").count(None).await.unwrap(), 1);
    assert_eq!(
        client.auth().whoami().await.unwrap().user_id.as_deref(),
        Some("writer-1")
    );
    assert_eq!(first_frame_types(&ctx), ["auth.login", "auth.login"]);

    // A refused token is reported and stops the client.
    let bad = noex_client::Client::new(backend.clone());
    let err = bad
        .connect(&ctx.url, fast_options().token("wrong"))
        .await
        .unwrap_err();
    assert!(matches!(err, noex_client::Error::Protocol(_)), "{err:?}");
    assert_eq!(bad.state(), ConnectionState::Disconnected);
}

async fn identity_server(backend: &Backend) -> (Ctx, noex_client::Client) {
    let builder = TestServer::builder().auth(AuthMode::Identity {
        admin_secret: SECRET.into(),
    });
    let ctx = Ctx::with_server(backend, builder);
    let admin = ctx.connect(fast_options()).await;
    admin.identity().login_with_secret(SECRET).await.unwrap();
    (ctx, admin)
}

/// Credentials log in once; reconnects resume the session token with `auth.login`.
pub async fn credentials_login_across_reconnects(backend: Backend) {
    let (ctx, admin) = identity_server(&backend).await;
    admin
        .identity()
        .create_user(&NewUser::new("alice", "alice-pass-123").display_name("Alice"))
        .await
        .unwrap();
    admin.disconnect().await;
    let client = ctx
        .connect(fast_options().credentials("alice", "alice-pass-123"))
        .await;
    let (log, _guard) = EventLog::attach(&client);
    assert!(client.identity().whoami().await.unwrap().authenticated);
    ctx.server().drop_connections();
    ctx.eventually(WAIT, "reconnected", || async {
        log.count(|e| matches!(e, LifecycleEvent::Reconnected)) == 1
    })
    .await;
    assert!(client.identity().whoami().await.unwrap().authenticated);
    let types = first_frame_types(&ctx);
    assert_eq!(
        types[types.len() - 2..],
        ["identity.login", "auth.login"],
        "{types:?}"
    );
    let bad = noex_client::Client::new(backend.clone());
    assert!(bad
        .connect(
            &ctx.url,
            fast_options().credentials("alice", "wrong-password")
        )
        .await
        .is_err());
}

/// Every identity operation with the field names the server reads.
pub async fn identity_api(backend: Backend) {
    let (ctx, admin) = identity_server(&backend).await;
    let id = admin.identity();
    let alice = id
        .create_user(&NewUser::new("alice", "alice-pass-123").email("alice@example.com"))
        .await
        .unwrap();
    let user_id = alice["id"].as_str().unwrap().to_owned();
    let dup = id
        .create_user(&NewUser::new("alice", "alice-pass-123"))
        .await
        .unwrap_err();
    assert!(dup.is(&ErrorCode::AlreadyExists));
    assert!(id
        .create_user(&NewUser::new("bob", "short"))
        .await
        .unwrap_err()
        .is(&ErrorCode::ValidationError));
    assert_eq!(id.get_user(&user_id).await.unwrap()["username"], "alice");
    assert_eq!(
        id.update_user(&user_id, &json!({"displayName": "Alice A."}))
            .await
            .unwrap()["displayName"],
        "Alice A."
    );
    assert_eq!(id.list_users(None, None).await.unwrap()["total"], 1);
    let role = id
        .create_role(
            "doc-reader",
            Some("Reads docs"),
            &json!([{"allow": ["store.get", "store.all"], "buckets": ["docs"]}]),
        )
        .await
        .unwrap();
    let role_id = role["id"].as_str().unwrap().to_owned();
    assert_eq!(
        id.update_role(&role_id, &json!({"description": "v2"}))
            .await
            .unwrap()["description"],
        "v2"
    );
    assert!(
        id.list_roles().await.unwrap()["roles"]
            .as_array()
            .unwrap()
            .len()
            >= 2
    );
    assert_eq!(
        id.assign_role(&user_id, "doc-reader").await.unwrap()["assigned"],
        true
    );
    assert!(id.get_user_roles(&user_id).await.unwrap()["roles"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["name"] == "doc-reader"));
    assert_eq!(
        id.remove_role(&user_id, "doc-reader").await.unwrap()["removed"],
        true
    );
    admin
        .store()
        .define_bucket(
            "docs",
            &json!({"key": "id", "schema": {"id": {"type": "string", "generated": "uuid"}}}),
        )
        .await
        .unwrap();
    let grant = Grant {
        subject_type: "user".into(),
        subject_id: user_id.clone(),
        resource_type: "bucket".into(),
        resource_name: "docs".into(),
        operations: vec!["read".into(), "write".into()],
    };
    assert_eq!(id.grant(&grant).await.unwrap()["granted"], true);
    let acl = id.get_acl("bucket", "docs").await.unwrap();
    assert!(acl["entries"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["subjectId"] == user_id.as_str()));
    assert_eq!(
        id.get_owner("bucket", "docs").await.unwrap()["owner"]["userId"],
        "__superadmin__"
    );
    assert!(id.my_access().await.unwrap()["resources"].is_array());
    assert_eq!(
        id.revoke(&Grant {
            operations: vec!["write".into()],
            ..grant
        })
        .await
        .unwrap()["revoked"],
        true
    );
    assert_eq!(
        id.reset_password(&user_id, "alice-pass-789").await.unwrap()["reset"],
        true
    );
    assert_eq!(id.disable_user(&user_id).await.unwrap()["enabled"], false);
    assert_eq!(id.enable_user(&user_id).await.unwrap()["enabled"], true);
    assert_eq!(
        id.transfer_owner("bucket", "docs", &user_id).await.unwrap()["transferred"],
        true
    );

    // A plain user: session, refresh, password change, and admin-only refusals.
    let alice_client = ctx.connect(fast_options()).await;
    let session = alice_client
        .identity()
        .login("alice", "alice-pass-789")
        .await
        .unwrap();
    assert!(
        !format!("{session:?}").contains(session.token.expose()),
        "token never in Debug"
    );
    let refreshed = alice_client.identity().refresh_session().await.unwrap();
    assert_ne!(refreshed.token.expose(), session.token.expose());
    let forbidden = alice_client
        .identity()
        .create_user(&NewUser::new("mallory", "mallory-pass-1"))
        .await
        .unwrap_err();
    assert!(forbidden.is(&ErrorCode::Forbidden), "{forbidden:?}");
    assert_eq!(
        alice_client
            .identity()
            .change_password(&user_id, "alice-pass-789", "alice-pass-000")
            .await
            .unwrap()["changed"],
        true
    );
    alice_client.identity().logout().await.ok();
    assert_eq!(id.delete_role(&role_id).await.unwrap()["deleted"], true);
    assert_eq!(id.delete_user(&user_id).await.unwrap()["deleted"], true);
    assert!(id
        .delete_user(&user_id)
        .await
        .unwrap_err()
        .is(&ErrorCode::NotFound));
    assert!(id.whoami().await.unwrap().authenticated);
    id.logout().await.unwrap();
}

/// auth.login / whoami / logout by hand, a manual login resumed after a reconnect, and
/// audit queries.
pub async fn auth_and_audit(backend: Backend) {
    let builder = TestServer::builder()
        .bucket_json(
            "orders",
            json!({"key": "id", "schema": {"id": {"type": "string", "generated": "uuid"}}}),
        )
        .audit(true)
        .auth(AuthMode::Tokens(vec![
            TokenSession::new("admin-token", "admin-1", ["admin"]),
            TokenSession::new("reader-token", "reader-1", ["reader"]),
        ]));
    let ctx = Ctx::with_server(&backend, builder);
    let client = ctx.connect(fast_options()).await;
    let (log, _guard) = EventLog::attach(&client);
    let before = client.store().buckets().await.unwrap_err();
    assert!(before.is(&ErrorCode::Unauthorized), "{before:?}");
    assert!(client
        .auth()
        .login("nope")
        .await
        .unwrap_err()
        .is(&ErrorCode::Unauthorized));
    let session = client.auth().login("reader-token").await.unwrap();
    assert_eq!(session.user_id, "reader-1");
    assert!(client
        .store()
        .bucket("orders")
        .insert(&json!({}))
        .await
        .unwrap_err()
        .is(&ErrorCode::Forbidden));
    client.auth().logout().await.unwrap();
    assert!(!client.auth().whoami().await.unwrap().authenticated);
    client.auth().login("admin-token").await.unwrap();
    client
        .store()
        .bucket("orders")
        .insert(&json!({}))
        .await
        .unwrap();
    // The manual login survives a reconnect.
    ctx.server().drop_connections();
    ctx.eventually(WAIT, "reconnected", || async {
        log.count(|e| matches!(e, LifecycleEvent::Reconnected)) == 1
    })
    .await;
    assert_eq!(
        client.auth().whoami().await.unwrap().user_id.as_deref(),
        Some("admin-1")
    );
    let entries = client
        .audit()
        .query(&AuditFilter {
            operation: Some("store.insert".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!entries.is_empty());
    assert!(entries.iter().all(|e| e.operation == "store.insert"));
    let errors = client
        .audit()
        .query(&AuditFilter {
            result: Some("error".into()),
            limit: Some(1),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(errors.len() <= 1 && errors.iter().all(|e| e.result == "error"));
    let bad = client
        .audit()
        .query(&AuditFilter {
            limit: Some(0),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(bad.is(&ErrorCode::ValidationError), "{bad:?}");
    let _ = ClientOptions::new();
}

/// A revoked session is reported, and the client does not reconnect (close 4002).
pub async fn session_revoked_stops(backend: Backend) {
    let builder = TestServer::builder().auth(AuthMode::Tokens(vec![TokenSession::new(
        "t",
        "u-1",
        ["writer"],
    )]));
    let ctx = Ctx::with_server(&backend, builder);
    let client = ctx.connect(fast_options().token("t")).await;
    let (log, _guard) = EventLog::attach(&client);
    ctx.server().revoke_sessions("test");
    ctx.eventually(WAIT, "session revoked and stopped", || async {
        client.state() == ConnectionState::Disconnected
            && log.count(|e| matches!(e, LifecycleEvent::SessionRevoked { .. })) == 1
    })
    .await;
    ctx.sleep(Duration::from_millis(300)).await;
    assert_eq!(
        ctx.server().connection_count(),
        0,
        "no reconnect after 4002"
    );
    assert_eq!(
        log.count(|e| matches!(e, LifecycleEvent::Reconnecting { .. })),
        0
    );
}
