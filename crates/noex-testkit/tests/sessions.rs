//! Session lifetimes as noex-server 0.1.4 has them, at each place it checks them:
//! `checkAuth` before every request (but `auth.*`, `identity.login`,
//! `identity.loginWithSecret`), `auth.login`, `auth.whoami`, `identity.refreshSession`
//! and `identity.whoami`. On the in-memory server the clock is driven (a short
//! `session_ttl`, no sleeps); over sockets `TestServer::expire_sessions` ends them.

mod common;

use std::time::Duration;

use common::Client;
use noex_testkit::memory::{MemoryOutput, MemoryServer};
use noex_testkit::{AuthMode, BucketDef, TestServer, TestServerBuilder, TokenSession};
use serde_json::{json, Value};

const T0: i64 = 1_796_083_200_000;
const TTL: i64 = 1_000;
const LIMIT: Duration = Duration::from_secs(15);

fn identity() -> TestServerBuilder {
    TestServer::builder()
        .bucket(BucketDef::new("docs"))
        .auth(AuthMode::identity("s3cret"))
        .session_ttl(Duration::from_millis(TTL as u64))
}

// ── in memory, on the driven clock ──────────────────────────────

/// An in-memory server and a request counter.
struct Mem {
    s: MemoryServer,
    id: u64,
}

impl Mem {
    fn new(b: TestServerBuilder) -> Mem {
        Mem {
            s: b.start_in_memory(T0).expect("start"),
            id: 0,
        }
    }

    fn open(&mut self, at: i64) -> u64 {
        let c = self.s.open(at);
        assert!(matches!(
            self.s.poll_output(),
            Some((_, MemoryOutput::Text(_)))
        ));
        c
    }

    fn ask(&mut self, conn: u64, at: i64, mut req: Value) -> Value {
        self.id += 1;
        req["id"] = self.id.into();
        self.s.receive(conn, at, &req.to_string());
        match self.s.poll_output() {
            Some((c, MemoryOutput::Text(t))) if c == conn => {
                serde_json::from_str(&t).expect("JSON")
            }
            other => panic!("expected the answer to {req}, got {other:?}"),
        }
    }

    fn ok(&mut self, conn: u64, at: i64, req: Value) -> Value {
        let a = self.ask(conn, at, req);
        assert_eq!(a["type"], "result", "{a}");
        a["data"].clone()
    }

    fn err(&mut self, conn: u64, at: i64, req: Value) -> String {
        let a = self.ask(conn, at, req);
        assert_eq!(
            (a["type"].clone(), a["code"].clone()),
            (json!("error"), json!("UNAUTHORIZED")),
            "{a}"
        );
        a["message"].as_str().unwrap_or_default().to_string()
    }

    /// A connection logged in as a user `alice` (created by the admin) at `at`: the
    /// connection and the login answer.
    fn alice(&mut self, at: i64) -> (u64, Value) {
        let admin = self.open(at);
        self.ok(
            admin,
            at,
            json!({"type": "identity.loginWithSecret", "secret": "s3cret"}),
        );
        let users = self.ok(admin, at, json!({"type": "identity.listUsers"}));
        if users["total"] == 0 {
            let u = self.ok(admin, at, json!({"type": "identity.createUser", "username": "alice", "password": "alice-pass"}));
            self.ok(
                admin,
                at,
                json!({"type": "identity.assignRole", "userId": u["id"], "roleName": "writer"}),
            );
        }
        self.s.receive_close(admin, at);
        let c = self.open(at);
        let login = self.ok(
            c,
            at,
            json!({"type": "identity.login", "username": "alice", "password": "alice-pass"}),
        );
        (c, login)
    }
}

const STORE_OP: fn() -> Value = || json!({"type": "store.all", "bucket": "docs"});

#[test]
fn check_auth_refuses_an_expired_session_once() {
    let mut m = Mem::new(identity());
    let (c, login) = m.alice(T0);
    assert_eq!(login["expiresAt"], T0 + TTL);
    m.ok(c, T0 + TTL, STORE_OP()); // `expiresAt < now` only after expiresAt
    assert_eq!(m.err(c, T0 + TTL + 1, STORE_OP()), "Session expired");
    assert_eq!(
        m.err(c, T0 + TTL + 1, STORE_OP()),
        "Authentication required"
    );
    // identity.logout goes through checkAuth too.
    assert_eq!(
        m.err(c, T0 + TTL + 1, json!({"type": "identity.logout"})),
        "Authentication required"
    );
    // A new identity.login is let through and starts a fresh session.
    let again = m.ok(
        c,
        T0 + 2000,
        json!({"type": "identity.login", "username": "alice", "password": "alice-pass"}),
    );
    assert_eq!(again["expiresAt"], T0 + 2000 + TTL);
    m.ok(c, T0 + 2000, STORE_OP());
}

#[test]
fn auth_login_with_an_expired_identity_token_is_an_invalid_token() {
    let mut m = Mem::new(identity());
    let (_, login) = m.alice(T0);
    let token = login["token"].clone();
    // While valid, the token resumes the session elsewhere, with its expiry.
    let d = m.open(T0 + 500);
    let r = m.ok(d, T0 + 500, json!({"type": "auth.login", "token": token}));
    assert_eq!(
        (r["roles"].clone(), r["expiresAt"].clone()),
        (json!(["writer"]), json!(T0 + TTL))
    );
    assert_eq!(m.err(d, T0 + TTL + 1, STORE_OP()), "Session expired");
    // validateSession deletes the expired session: Invalid token, every time.
    let e = m.open(T0 + TTL + 1);
    assert_eq!(
        m.err(
            e,
            T0 + TTL + 1,
            json!({"type": "auth.login", "token": token})
        ),
        "Invalid token"
    );
    assert_eq!(
        m.err(
            e,
            T0 + TTL + 2,
            json!({"type": "auth.login", "token": token})
        ),
        "Invalid token"
    );
}

#[test]
fn auth_login_with_an_expired_static_token_has_expired() {
    let tokens = [
        TokenSession::new("old", "u1", ["writer"]).expires_at(T0 - 1),
        TokenSession::new("soon", "u1", ["writer"]).expires_at(T0 + 500),
    ];
    let mut m = Mem::new(
        TestServer::builder()
            .bucket(BucketDef::new("docs"))
            .auth(AuthMode::tokens(tokens)),
    );
    let c = m.open(T0);
    assert_eq!(
        m.err(c, T0, json!({"type": "auth.login", "token": "old"})),
        "Token has expired"
    );
    assert_eq!(
        m.ok(c, T0, json!({"type": "auth.whoami"})),
        json!({"authenticated": false})
    );
    m.ok(c, T0, json!({"type": "auth.login", "token": "soon"}));
    m.ok(c, T0 + 500, STORE_OP());
    assert_eq!(m.err(c, T0 + 501, STORE_OP()), "Session expired");
    assert_eq!(
        m.err(c, T0 + 501, json!({"type": "auth.login", "token": "soon"})),
        "Token has expired"
    );
}

#[test]
fn auth_whoami_drops_an_expired_session() {
    let mut m = Mem::new(identity());
    let (c, _) = m.alice(T0);
    let who = m.ok(c, T0 + TTL, json!({"type": "auth.whoami"}));
    assert_eq!(
        (who["authenticated"].clone(), who["expiresAt"].clone()),
        (json!(true), json!(T0 + TTL))
    );
    assert_eq!(
        m.ok(c, T0 + TTL + 1, json!({"type": "auth.whoami"})),
        json!({"authenticated": false})
    );
    // The session is gone, not expired: the next request is unauthenticated.
    assert_eq!(
        m.err(c, T0 + TTL + 1, STORE_OP()),
        "Authentication required"
    );
}

#[test]
fn identity_whoami_is_refused_by_check_auth_once_expired() {
    let mut m = Mem::new(identity());
    let fresh = m.open(T0);
    assert_eq!(
        m.err(fresh, T0, json!({"type": "identity.whoami"})),
        "Authentication required"
    );
    let (c, _) = m.alice(T0);
    let who = m.ok(c, T0 + TTL, json!({"type": "identity.whoami"}));
    assert_eq!(
        (who["authenticated"].clone(), who["roles"].clone()),
        (json!(true), json!(["writer"]))
    );
    assert_eq!(
        m.err(c, T0 + TTL + 1, json!({"type": "identity.whoami"})),
        "Session expired"
    );
    assert_eq!(
        m.ok(c, T0 + TTL + 1, json!({"type": "auth.whoami"})),
        json!({"authenticated": false})
    );
    assert_eq!(
        m.err(c, T0 + TTL + 1, json!({"type": "identity.whoami"})),
        "Authentication required"
    );
}

#[test]
fn refresh_session_replaces_the_session_and_needs_an_identity_login() {
    let mut m = Mem::new(identity());
    let (c, login) = m.alice(T0);
    let old = login["token"].clone();
    let r = m.ok(c, T0 + 300, json!({"type": "identity.refreshSession"}));
    assert_ne!(r["token"], old);
    assert_eq!(r["expiresAt"], T0 + 300 + TTL);
    assert_eq!(r["user"]["username"], "alice");
    // The connection now lives by the new expiry.
    m.ok(c, T0 + 300 + TTL, STORE_OP());
    // The old token is deleted; the new one resumes the session elsewhere.
    let d = m.open(T0 + 400);
    assert_eq!(
        m.err(d, T0 + 400, json!({"type": "auth.login", "token": old})),
        "Invalid token"
    );
    m.ok(
        d,
        T0 + 400,
        json!({"type": "auth.login", "token": r["token"]}),
    );
    // auth.login does not give the connection a session token to refresh.
    assert_eq!(
        m.err(d, T0 + 400, json!({"type": "identity.refreshSession"})),
        "No active session to refresh"
    );
    // After expiry, checkAuth answers first.
    assert_eq!(
        m.err(
            c,
            T0 + 301 + TTL,
            json!({"type": "identity.refreshSession"})
        ),
        "Session expired"
    );
    assert_eq!(
        m.err(
            c,
            T0 + 301 + TTL,
            json!({"type": "identity.refreshSession"})
        ),
        "Authentication required"
    );
}

#[test]
fn refresh_of_a_deleted_stored_session_is_invalid_or_expired() {
    let mut m = Mem::new(identity());
    let (c, login) = m.alice(T0);
    // The admin resets alice's password: her stored sessions are deleted, the
    // connection's own session stays.
    let admin = m.open(T0 + 10);
    m.ok(
        admin,
        T0 + 10,
        json!({"type": "identity.loginWithSecret", "secret": "s3cret"}),
    );
    m.ok(admin, T0 + 10, json!({"type": "identity.resetPassword", "userId": login["user"]["id"], "newPassword": "new-pass-123"}));
    m.ok(c, T0 + 20, STORE_OP());
    assert_eq!(
        m.err(c, T0 + 20, json!({"type": "identity.refreshSession"})),
        "Invalid or expired session"
    );
}

#[test]
fn expire_sessions_in_memory_ends_identity_sessions() {
    let mut m = Mem::new(identity().session_ttl(Duration::from_secs(3600)));
    let (c, login) = m.alice(T0);
    m.s.expire_sessions();
    assert_eq!(m.err(c, T0, STORE_OP()), "Session expired");
    let d = m.open(T0);
    assert_eq!(
        m.err(
            d,
            T0,
            json!({"type": "auth.login", "token": login["token"]})
        ),
        "Invalid token"
    );
}

#[test]
fn default_session_ttl_is_24_hours() {
    let mut m = Mem::new(TestServer::builder().auth(AuthMode::identity("s3cret")));
    let c = m.open(T0);
    let login = m.ok(
        c,
        T0,
        json!({"type": "identity.loginWithSecret", "secret": "s3cret"}),
    );
    assert_eq!(login["expiresAt"], T0 + 24 * 3_600_000);
}

// ── over sockets, through expire_sessions() ─────────────────────

async fn within<F: std::future::Future<Output = ()>>(f: F) {
    tokio::time::timeout(LIMIT, f)
        .await
        .expect("test timed out");
}

async fn unauthorized(c: &mut Client, req: Value) -> String {
    let (code, msg, _) = c.err(req).await;
    assert_eq!(code, "UNAUTHORIZED");
    msg
}

#[tokio::test]
async fn expire_sessions_over_sockets_at_every_checkpoint() {
    within(async {
        let server = identity().session_ttl(Duration::from_secs(3600)).start().expect("start");
        let url = server.url();
        let mut admin = Client::open(&url).await;
        admin.ok(json!({"type": "identity.loginWithSecret", "secret": "s3cret"})).await;
        let u = admin.ok(json!({"type": "identity.createUser", "username": "alice", "password": "alice-pass"})).await;
        admin.ok(json!({"type": "identity.assignRole", "userId": u["id"], "roleName": "writer"})).await;
        let login = json!({"type": "identity.login", "username": "alice", "password": "alice-pass"});

        // One connection per checkpoint, all logged in, then every session expires.
        let mut check = Client::open(&url).await;
        let token = check.ok(login.clone()).await["token"].clone();
        let mut who_auth = Client::open(&url).await;
        who_auth.ok(login.clone()).await;
        let mut who_identity = Client::open(&url).await;
        who_identity.ok(login.clone()).await;
        let mut refresh = Client::open(&url).await;
        refresh.ok(login.clone()).await;
        server.expire_sessions();

        assert_eq!(unauthorized(&mut check, STORE_OP()).await, "Session expired");
        assert_eq!(unauthorized(&mut check, STORE_OP()).await, "Authentication required");
        assert_eq!(who_auth.ok(json!({"type": "auth.whoami"})).await, json!({"authenticated": false}));
        assert_eq!(unauthorized(&mut who_auth, STORE_OP()).await, "Authentication required");
        assert_eq!(unauthorized(&mut who_identity, json!({"type": "identity.whoami"})).await, "Session expired");
        assert_eq!(unauthorized(&mut refresh, json!({"type": "identity.refreshSession"})).await, "Session expired");
        assert_eq!(unauthorized(&mut refresh, json!({"type": "identity.refreshSession"})).await, "Authentication required");
        assert_eq!(unauthorized(&mut admin, STORE_OP()).await, "Session expired");
        let mut late = Client::open(&url).await;
        assert_eq!(unauthorized(&mut late, json!({"type": "auth.login", "token": token})).await, "Invalid token");

        // Sessions made afterwards live their full time.
        let fresh = late.ok(login.clone()).await;
        late.ok(STORE_OP()).await;
        let mut resumed = Client::open(&url).await;
        resumed.ok(json!({"type": "auth.login", "token": fresh["token"]})).await;
        resumed.ok(STORE_OP()).await;
    })
    .await;
}

#[tokio::test]
async fn expire_sessions_over_sockets_ends_static_token_sessions() {
    within(async {
        let server = TestServer::builder()
            .bucket(BucketDef::new("docs"))
            .auth(AuthMode::tokens([TokenSession::new(
                "tok",
                "u1",
                ["writer"],
            )]))
            .start()
            .expect("start");
        let mut c = Client::open(&server.url()).await;
        let r = c.ok(json!({"type": "auth.login", "token": "tok"})).await;
        assert_eq!(r["expiresAt"], Value::Null);
        server.expire_sessions();
        assert_eq!(unauthorized(&mut c, STORE_OP()).await, "Session expired");
        // The token itself has no expiry: logging in again works.
        c.ok(json!({"type": "auth.login", "token": "tok"})).await;
        c.ok(STORE_OP()).await;
    })
    .await;
}
