//! Authentication, identity and audit against the embedded server.

use crate::{fast_options, Ctx, EventLog};
use noex_client::runtime::Backend;
use noex_client::{
    AuditFilter, ClientOptions, ConnectionState, ErrorCode, Grant, LifecycleEvent, NewRole, NewUser,
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
    assert_eq!(
        client
            .store()
            .bucket("docs")
            .count(noex_client::Filter::all())
            .await
            .unwrap(),
        1
    );
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
    // The server's code comes through, typed: the login was refused for good.
    assert_eq!(err.code(), Some(&ErrorCode::Unauthorized), "{err:?}");
    assert!(
        matches!(
            err,
            noex_client::Error::GaveUp(noex_client::DisconnectReason::AuthRejected { .. })
        ),
        "{err:?}"
    );
    assert!(!err.may_have_been_applied());
    assert!(!format!("{err:?}").contains("wrong"), "{err:?}");
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
        .create_user(NewUser::new("alice", "alice-pass-123").display_name("Alice"))
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
    let err = bad
        .connect(
            &ctx.url,
            fast_options().credentials("alice", "wrong-password"),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&ErrorCode::Unauthorized), "{err:?}");
    assert!(err.is(&ErrorCode::Unauthorized));
    assert!(!format!("{err:?}").contains("wrong-password"), "{err:?}");
}

/// Every identity operation with the field names the server reads.
pub async fn identity_api(backend: Backend) {
    let (ctx, admin) = identity_server(&backend).await;
    let id = admin.identity();
    let alice = id
        .create_user(
            NewUser::new("alice", "alice-pass-123")
                .email("alice@example.com")
                .metadata([("team", json!("ops")), ("level", json!(3))]),
        )
        .await
        .unwrap();
    let user_id = alice.id.clone();
    assert_eq!(alice.email.as_deref(), Some("alice@example.com"));
    assert!(alice.enabled);
    assert!(alice.created_at > 0);
    let metadata = alice.metadata.clone().expect("metadata kept");
    assert_eq!(
        (metadata["team"].clone(), metadata["level"].clone()),
        (json!("ops"), json!(3))
    );
    let dup = id
        .create_user(NewUser::new("alice", "alice-pass-123"))
        .await
        .unwrap_err();
    assert!(dup.is(&ErrorCode::AlreadyExists));
    assert!(id
        .create_user(NewUser::new("bob", "short"))
        .await
        .unwrap_err()
        .is(&ErrorCode::ValidationError));
    let disabled = id
        .create_user(NewUser::new("dora", "dora-pass-123").enabled(false))
        .await
        .unwrap();
    assert!(!disabled.enabled);
    id.delete_user(&disabled.id).await.unwrap();
    let got = id.get_user(&user_id).await.unwrap();
    assert_eq!(got.username, "alice");
    assert_eq!(got.metadata, alice.metadata);
    assert_eq!(
        id.update_user(&user_id, json!({"displayName": "Alice A."}))
            .await
            .unwrap()
            .display_name
            .as_deref(),
        Some("Alice A.")
    );
    let users = id.list_users().await.unwrap();
    assert_eq!((users.total, users.users.len()), (1, 1));
    assert_eq!(users.page, 1);
    assert!((&users).into_iter().any(|u| u.id == user_id));
    let role = id
        .create_role(
            NewRole::new("doc-reader")
                .description("Reads docs")
                .permissions(json!([{"allow": ["store.get", "store.all"], "buckets": ["docs"]}])),
        )
        .await
        .unwrap();
    let role_id = role.id.clone();
    assert!(!role.system);
    assert_eq!(role.permissions[0].allow, ["store.get", "store.all"]);
    assert_eq!(
        role.permissions[0].buckets.as_deref(),
        Some(&["docs".to_owned()][..])
    );
    // A role without permissions (the server's default: none).
    let bare = id.create_role(NewRole::new("auditor")).await.unwrap();
    assert_eq!(
        (bare.name.as_str(), bare.description.as_deref()),
        ("auditor", None)
    );
    assert!(bare.permissions.is_empty(), "{bare:?}");
    id.delete_role(&bare.id).await.unwrap();
    assert_eq!(
        id.update_role(&role_id, json!({"description": "v2"}))
            .await
            .unwrap()
            .description
            .as_deref(),
        Some("v2")
    );
    let roles = id.list_roles().await.unwrap();
    assert!(roles.len() >= 2);
    assert!(roles.iter().any(|r| r.name == "superadmin" && r.system));
    id.assign_role(&user_id, "doc-reader").await.unwrap();
    assert!(id
        .get_user_roles(&user_id)
        .await
        .unwrap()
        .iter()
        .any(|r| r.name == "doc-reader"));
    id.remove_role(&user_id, "doc-reader").await.unwrap();
    admin
        .store()
        .define_bucket(
            "docs",
            json!({"key": "id", "schema": {"id": {"type": "string", "generated": "uuid"}}}),
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
    id.grant(grant.clone()).await.unwrap();
    let acl = id.get_acl("bucket", "docs").await.unwrap();
    let entry = acl
        .iter()
        .find(|e| e.subject_id == user_id)
        .expect("alice in the ACL");
    assert_eq!(entry.operations, ["read", "write"]);
    assert_eq!(entry.subject_name, "alice");
    assert!(!entry.is_owner);
    let owner = id
        .get_owner("bucket", "docs")
        .await
        .unwrap()
        .expect("owned");
    assert_eq!(owner.user_id, "__superadmin__");
    let access = id.my_access().await.unwrap();
    assert_eq!(access.user.id, "__superadmin__");
    assert!(access
        .resources
        .iter()
        .any(|r| r.resource_name == "docs" && r.is_owner));
    id.revoke(Grant {
        operations: vec!["write".into()],
        ..grant
    })
    .await
    .unwrap();
    id.reset_password(&user_id, "alice-pass-789").await.unwrap();
    assert!(!id.disable_user(&user_id).await.unwrap().enabled);
    assert!(id.enable_user(&user_id).await.unwrap().enabled);
    id.transfer_owner("bucket", "docs", &user_id).await.unwrap();
    assert_eq!(
        id.get_owner("bucket", "docs")
            .await
            .unwrap()
            .expect("owned")
            .user_id,
        user_id
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
    assert_eq!(session.user.username, "alice");
    let refreshed = alice_client.identity().refresh_session().await.unwrap();
    assert_ne!(refreshed.token.expose(), session.token.expose());
    let forbidden = alice_client
        .identity()
        .create_user(NewUser::new("mallory", "mallory-pass-1"))
        .await
        .unwrap_err();
    assert!(forbidden.is(&ErrorCode::Forbidden), "{forbidden:?}");
    alice_client
        .identity()
        .change_password(&user_id, "alice-pass-789", "alice-pass-000")
        .await
        .unwrap();
    alice_client.identity().logout().await.ok();
    id.delete_role(&role_id).await.unwrap();
    id.delete_user(&user_id).await.unwrap();
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
        .query(AuditFilter::all().operation("store.insert"))
        .await
        .unwrap();
    assert!(!entries.is_empty());
    assert!(entries.iter().all(|e| e.operation == "store.insert"));
    let errors = client
        .audit()
        .query(AuditFilter::all().result("error").limit(1))
        .await
        .unwrap();
    assert!(errors.len() <= 1 && errors.iter().all(|e| e.result == "error"));
    let bad = client
        .audit()
        .query(AuditFilter::all().limit(0))
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
