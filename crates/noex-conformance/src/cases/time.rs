//! Time: sessions that expire and are renewed, tokens that expire, listeners that start
//! after `connect()`, links that go silent before their first ping, and rules events lost
//! while a link was silently dead.
//!
//! These cases run on real sockets and the OS clock, so they use short lifetimes and
//! intervals (a session of 1.5 s, pings every 400 ms) and bounds that hold on a loaded
//! machine; each says which of its bounds allow for scheduling and by how much.
//!
//! The session cases with credentials are written against [`ServerControl`] and a URL, so
//! `noex-tokio/tests/conformance_serve.rs` runs them against `noex serve` as a process too.

use super::users_server;
use crate::{fast_options, unique, Ctx, EventLog};
use futures::future::join_all;
use futures::StreamExt;
use noex_client::runtime::Backend;
use noex_client::{
    Client, ConnectionState, Delivery, DisconnectReason, Error, ErrorCode, LifecycleEvent, NewRole,
    NewUser, RuleMessage, RuleUpdate, TokenRequest,
};
use noex_testkit::{AuthMode, TestServer, TokenSession};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const WAIT: Duration = Duration::from_secs(10);
/// The admin secret of the identity servers of these cases.
pub const ADMIN_SECRET: &str = "time-admin-secret";
/// The lifetime of a built-in identity session in these cases (`sessionTtl`).
pub const SESSION_TTL: Duration = Duration::from_millis(1500);
/// The password of every user [`store_user`] makes.
const PASSWORD: &str = "writer-pass-123";
/// The heartbeat of the liveness cases.
const PING: Duration = Duration::from_millis(400);

/// What the session cases need of the server beyond its URL: the embedded server's
/// methods, or `noex serve`'s control commands.
pub trait ServerControl: Sync {
    /// Every session expires now (see [`TestServer::expire_sessions`]).
    fn expire_sessions(&self);
    /// Delay the handling of every request (`Duration::ZERO`: off).
    fn set_delay(&self, delay: Duration);
}

impl ServerControl for TestServer {
    fn expire_sessions(&self) {
        TestServer::expire_sessions(self)
    }
    fn set_delay(&self, delay: Duration) {
        TestServer::set_delay(self, delay)
    }
}

/// A user of the built-in identity with a role that allows the store operations on its
/// own bucket, made by [`store_user`].
#[derive(Debug, Clone)]
pub struct StoreUser {
    /// The bucket the user may use (key `id`, generated).
    pub bucket: String,
    /// The user's name; the password is the same for every such user.
    pub username: String,
}

impl StoreUser {
    fn options(&self) -> noex_client::ClientOptions {
        fast_options().credentials(&self.username, PASSWORD)
    }
}

/// Makes a bucket, a role allowed `store.insert/get/count/all` on it and a user with that
/// role, as the superadmin (`identity.loginWithSecret` with `admin_secret`); names are
/// unique, so a shared server does not matter.
pub async fn store_user(ctx: &Ctx, admin_secret: &str) -> StoreUser {
    let admin = ctx.connect(fast_options()).await;
    let id = admin.identity();
    id.login_with_secret(admin_secret)
        .await
        .expect("superadmin login");
    let bucket = unique("notes");
    admin
        .store()
        .define_bucket(
            &bucket,
            json!({"key": "id", "schema": {
                "id": {"type": "string", "generated": "uuid"},
                "writer": {"type": "number"},
                "seq": {"type": "number"}
            }}),
        )
        .await
        .expect("bucket defined");
    let role = unique("notes-rw");
    id.create_role(NewRole::new(&role).permissions(json!([{
        "allow": ["store.insert", "store.get", "store.count", "store.all"],
        "buckets": [bucket]
    }])))
    .await
    .expect("role created");
    let username = unique("writer");
    let user = id
        .create_user(NewUser::new(&username, PASSWORD))
        .await
        .expect("user created");
    id.assign_role(&user.id, &role)
        .await
        .expect("role assigned");
    admin.disconnect().await;
    StoreUser { bucket, username }
}

/// A built-in identity server whose sessions live [`SESSION_TTL`].
fn identity_server(backend: &Backend) -> Ctx {
    Ctx::with_server(
        backend,
        TestServer::builder()
            .auth(AuthMode::identity(ADMIN_SECRET))
            .session_ttl(SESSION_TTL),
    )
}

fn is_unauthorized(e: &Error) -> bool {
    e.is(&ErrorCode::Unauthorized)
}

/// What a loop of requests saw.
#[derive(Debug, Default)]
struct Run {
    /// Sequence numbers of the writes that succeeded.
    written: Vec<u64>,
    reads: u64,
    /// Every failure, as `Debug`.
    errors: Vec<String>,
    unauthorized: usize,
}

impl Run {
    fn failed(&mut self, what: &str, e: Error) {
        if is_unauthorized(&e) {
            self.unauthorized += 1;
        }
        self.errors.push(format!("{what}: {e:?}"));
    }
}

/// Writes `{writer, seq}` and reads it back, alternately, `pace` apart, until `stop`.
async fn write_read_loop(
    ctx: &Ctx,
    client: &Client,
    bucket: &str,
    writer: u64,
    pace: Duration,
    stop: impl Fn() -> bool,
) -> Run {
    let records = client.store().bucket(bucket);
    let mut run = Run::default();
    let mut seq = 0;
    while !stop() {
        seq += 1;
        match records.insert(json!({"writer": writer, "seq": seq})).await {
            Ok(record) => {
                run.written.push(seq);
                if !pace.is_zero() {
                    ctx.sleep(pace).await;
                }
                match records.get(&record.key).await {
                    Ok(Some(_)) => run.reads += 1,
                    Ok(None) => run.errors.push(format!("read {seq}: not found")),
                    Err(e) => run.failed("read", e),
                }
            }
            Err(e) => run.failed("write", e),
        }
        if !pace.is_zero() {
            ctx.sleep(pace).await;
        }
    }
    run
}

/// Every record of `bucket` by writer: the sequence numbers stored, with repeats.
async fn stored(client: &Client, bucket: &str) -> BTreeMap<u64, Vec<u64>> {
    let mut by_writer: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for record in client.store().bucket(bucket).all().await.expect("all") {
        let field = |name: &str| record.data[name].as_u64().expect("a number field");
        by_writer
            .entry(field("writer"))
            .or_default()
            .push(field("seq"));
    }
    for seqs in by_writer.values_mut() {
        seqs.sort_unstable();
    }
    by_writer
}

fn session_events(log: &EventLog) -> Vec<LifecycleEvent> {
    log.events()
        .into_iter()
        .filter(|e| {
            matches!(
                e,
                LifecycleEvent::SessionRenewed { .. }
                    | LifecycleEvent::SessionExpired
                    | LifecycleEvent::TokenRefreshed
                    | LifecycleEvent::Disconnected(_)
            )
        })
        .collect()
}

/// A `.credentials(..)` client writing and reading every 50 ms for four session lifetimes
/// (`ttl`) on `ctx`'s server, whose sessions live `ttl`: no error of any kind, the session
/// renewed at least three times before it expired, never expired, on one connection.
pub async fn stays_logged_in(ctx: &Ctx, user: &StoreUser, ttl: Duration) {
    let client = ctx.connect(user.options()).await;
    let (log, _guard) = EventLog::attach(&client);
    let started = Instant::now();
    let lifetimes = ttl * 4;
    let run = write_read_loop(
        ctx,
        &client,
        &user.bucket,
        1,
        Duration::from_millis(50),
        || started.elapsed() >= lifetimes,
    )
    .await;
    let counters = client.counters().await.expect("counters");
    assert!(
        run.errors.is_empty(),
        "{} errors ({} UNAUTHORIZED) in four lifetimes: {:?}; session events {:?}",
        run.errors.len(),
        run.unauthorized,
        run.errors,
        session_events(&log)
    );
    // Non-vacuous: the requests really ran through the four lifetimes (about 60 of each
    // when nothing is loaded; a machine ten times slower still makes 6).
    assert!(
        run.written.len() >= 6 && run.reads >= 6,
        "{} writes, {} reads",
        run.written.len(),
        run.reads
    );
    // Renewals at 3/4 of the remaining life: about 5 in four lifetimes.
    let renewed = log.count(|e| matches!(e, LifecycleEvent::SessionRenewed { .. }));
    assert!(
        counters.sessions_renewed >= 3,
        "{counters:?}; {:?}",
        session_events(&log)
    );
    assert!(renewed >= 3, "{:?}", session_events(&log));
    assert!(
        log.events().iter().all(|e| match e {
            LifecycleEvent::SessionRenewed {
                expires_in: Some(left),
            } => *left > ttl / 2 && *left <= ttl + Duration::from_millis(50),
            LifecycleEvent::SessionRenewed { expires_in: None } => false,
            _ => true,
        }),
        "each renewal says how long the new session lasts (the server's `expiresAt` placed \
         on the client's clock: within 50 ms of the lifetime): {:?}",
        session_events(&log)
    );
    assert_eq!(counters.sessions_expired, 0, "{counters:?}");
    assert_eq!(counters.requests_reauthorized, 0, "{counters:?}");
    assert_eq!(counters.reconnects, 0, "{counters:?}");
    assert_eq!(
        log.count(|e| matches!(e, LifecycleEvent::Disconnected(_))),
        0,
        "{:?}",
        log.events()
    );
    let stored = stored(&client, &user.bucket).await;
    assert_eq!(stored.get(&1), Some(&run.written), "each write stored once");
    assert!(!format!("{:?}", log.events()).contains(PASSWORD));
    client.disconnect().await;
}

/// A `.credentials(..)` client with four writers and a reader going: `control` makes every
/// session expire while requests are in flight (the server delays each request by 20 ms
/// around it, so some are) and being issued. Every request succeeds, the session expires
/// once and is made again, refused requests are sent again, and each write is stored
/// exactly once.
pub async fn expired_session_made_again(ctx: &Ctx, user: &StoreUser, control: &dyn ServerControl) {
    let client = ctx.connect(user.options()).await;
    let (log, _guard) = EventLog::attach(&client);
    let stop = AtomicBool::new(false);
    let writers = join_all((1..=4).map(|w| {
        write_read_loop(ctx, &client, &user.bucket, w, Duration::ZERO, || {
            stop.load(Ordering::SeqCst)
        })
    }));
    let reader = async {
        let mut run = Run::default();
        let records = client.store().bucket(&user.bucket);
        while !stop.load(Ordering::SeqCst) {
            match records.count(noex_client::Filter::all()).await {
                Ok(_) => run.reads += 1,
                Err(e) => run.failed("count", e),
            }
        }
        run
    };
    let conductor = async {
        ctx.sleep(Duration::from_millis(300)).await;
        control.set_delay(Duration::from_millis(20));
        ctx.sleep(Duration::from_millis(100)).await;
        control.expire_sessions();
        ctx.sleep(Duration::from_millis(300)).await;
        control.set_delay(Duration::ZERO);
        ctx.sleep(Duration::from_millis(300)).await;
        stop.store(true, Ordering::SeqCst);
    };
    let (writers, reader, ()) = futures::join!(writers, reader, conductor);
    let counters = client.counters().await.expect("counters");
    let events = session_events(&log);
    let mut errors: Vec<String> = writers.iter().flat_map(|r| r.errors.clone()).collect();
    errors.extend(reader.errors.clone());
    let unauthorized: usize =
        writers.iter().map(|r| r.unauthorized).sum::<usize>() + reader.unauthorized;
    assert!(
        errors.is_empty(),
        "{} requests failed ({unauthorized} UNAUTHORIZED): {errors:?}; {events:?}; {counters:?}",
        errors.len()
    );
    assert!(reader.reads >= 1, "the reader ran");
    assert_eq!(
        log.count(|e| matches!(e, LifecycleEvent::SessionExpired)),
        1,
        "{events:?}"
    );
    let expired_at = events
        .iter()
        .position(|e| matches!(e, LifecycleEvent::SessionExpired))
        .expect("expired");
    assert!(
        matches!(
            events.get(expired_at + 1),
            Some(LifecycleEvent::SessionRenewed { .. })
        ),
        "the session is made again right after it expired: {events:?}"
    );
    assert_eq!(counters.sessions_expired, 1, "{counters:?}");
    assert!(counters.sessions_renewed >= 1, "{counters:?}");
    assert!(counters.requests_reauthorized >= 1, "{counters:?}");
    assert_eq!(
        counters.reconnects, 0,
        "on the same connection: {counters:?}"
    );
    assert_eq!(
        log.count(|e| matches!(e, LifecycleEvent::Disconnected(_))),
        0,
        "{events:?}"
    );
    let stored = stored(&client, &user.bucket).await;
    for (w, run) in (1..).zip(&writers) {
        assert!(!run.written.is_empty(), "writer {w} wrote nothing");
        assert_eq!(
            stored.get(&w),
            Some(&run.written),
            "writer {w}: each write stored exactly once"
        );
    }
    assert_eq!(stored.len(), writers.len(), "{stored:?}");
    client.disconnect().await;
}

/// With `.credentials(..)` and sessions of 1.5 s, a client making requests for four
/// lifetimes keeps its session: no error, renewed before it expires.
pub async fn session_stays_logged_in_for_four_lifetimes(backend: Backend) {
    let ctx = identity_server(&backend);
    let user = store_user(&ctx, ADMIN_SECRET).await;
    stays_logged_in(&ctx, &user, SESSION_TTL).await;
}

/// Every session expiring while requests are in flight and being issued: the client logs
/// in again and re-sends the refused requests; nothing fails, nothing is stored twice.
pub async fn expired_session_is_made_again_and_refused_requests_resent(backend: Backend) {
    let ctx = identity_server(&backend);
    let user = store_user(&ctx, ADMIN_SECRET).await;
    expired_session_made_again(&ctx, &user, ctx.server()).await;
}

/// What the token provider of [`token_provider_refreshes_expiring_tokens`] was asked.
#[derive(Debug, Default)]
struct Provider {
    /// `refresh` of every request, in order.
    asked: Vec<bool>,
    /// Good tokens handed out.
    handed: usize,
}

/// Tokens whose sessions expire after 1 s, from a provider whose first (cached) token is
/// stale: the client asks for a fresh one when the server refuses it and before each
/// session expires; three lifetimes of requests without an error; no token in any event.
pub async fn token_provider_refreshes_expiring_tokens(backend: Backend) {
    const STALE: &str = "tok-stale-4c1d0b";
    const LIFE: Duration = Duration::from_secs(1);
    let good: Vec<String> = (1..=40).map(|i| format!("tok-good-{i}-8e2b7f")).collect();
    let mut sessions = vec![TokenSession::new(STALE, "svc-1", ["writer"]).expires_at(1)];
    sessions.extend(
        good.iter()
            .map(|t| TokenSession::new(t.as_str(), "svc-1", ["writer"]).expires_in(LIFE)),
    );
    let builder = TestServer::builder()
        .bucket_json(
            "notes",
            json!({"key": "id", "schema": {"id": {"type": "string", "generated": "uuid"}}}),
        )
        .auth(AuthMode::tokens(sessions));
    let ctx = Ctx::with_server(&backend, builder);
    let provider = Arc::new(Mutex::new(Provider::default()));
    let state = provider.clone();
    let tokens = good.clone();
    let options = fast_options().token_provider(move |request: TokenRequest| {
        let mut p = state.lock().unwrap_or_else(|e| e.into_inner());
        p.asked.push(request.refresh);
        let token = if !request.refresh && p.asked.len() == 1 {
            Some(STALE.to_owned())
        } else if request.refresh {
            p.handed += 1;
            tokens.get(p.handed - 1).cloned()
        } else {
            tokens.get(p.handed.max(1) - 1).cloned()
        };
        async move { token.ok_or("out of tokens") }
    });
    // Listening from the start: the first login's `TokenRefreshed` comes before
    // `connect` returns.
    let client = Client::new(backend.clone());
    let (log, _guard) = EventLog::attach(&client);
    client.connect(&ctx.url, options).await.expect("connects");
    // The stale token was tried and refused, then a fresh one logged in.
    let frames = &ctx.server().received_frames()[0].frames;
    let first_two: Vec<bool> = frames
        .iter()
        .take(2)
        .zip([STALE, good[0].as_str()])
        .map(|(frame, token)| frame.contains("auth.login") && frame.contains(token))
        .collect();
    assert_eq!(
        first_two,
        [true, true],
        "auth.login with the stale token, then with the first fresh one"
    );
    let started = Instant::now();
    let run = write_read_loop(&ctx, &client, "notes", 1, Duration::from_millis(50), || {
        started.elapsed() >= LIFE * 3
    })
    .await;
    assert!(
        run.errors.is_empty(),
        "{} errors in three lifetimes: {:?}; {:?}",
        run.errors.len(),
        run.errors,
        session_events(&log)
    );
    assert!(run.written.len() >= 5, "{} writes", run.written.len());
    // A renewal may be under way: wait for a moment when every token handed out has been
    // used (fetched, logged in with, announced).
    let deadline = Instant::now() + WAIT;
    let (asked, counters, refreshed) = loop {
        let counters = client.counters().await.expect("counters");
        let refreshed = log.count(|e| matches!(e, LifecycleEvent::TokenRefreshed));
        let asked = provider
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .asked
            .clone();
        let refreshes = asked.iter().filter(|r| **r).count();
        if counters.tokens_fetched == asked.len() as u64 && refreshed == refreshes {
            break (asked, counters, refreshed);
        }
        assert!(
            Instant::now() < deadline,
            "tokens handed out never all used: asked {asked:?}, {refreshed} refreshed, \
             {counters:?}"
        );
        ctx.sleep(Duration::from_millis(20)).await;
    };
    // First the cached token (stale), then only fresh ones: once refused, then one before
    // each session expired (renewals at 3/4 of the 1 s life: about 4 in 3 s).
    assert_eq!(asked.first(), Some(&false), "{asked:?}");
    assert!(asked[1..].iter().all(|r| *r), "{asked:?}");
    assert!(
        counters.sessions_renewed >= 3,
        "{counters:?}; {:?}",
        session_events(&log)
    );
    assert_eq!(
        asked.len() as u64,
        2 + counters.sessions_renewed,
        "{asked:?}"
    );
    assert_eq!(refreshed as u64, 1 + counters.sessions_renewed);
    assert_eq!(counters.sessions_expired, 0, "{counters:?}");
    assert_eq!(counters.reconnects, 0, "{counters:?}");
    let shown = format!("{:?} {counters:?}", log.events());
    for token in good.iter().map(String::as_str).chain([STALE]) {
        assert!(!shown.contains(token), "a token in the events: {shown}");
    }
    client.disconnect().await;
}

/// A static `.token(t)` whose session expires: the next request fails with the server's
/// `UNAUTHORIZED` "Session expired", and the client gives up saying why.
pub async fn static_token_expiry_gives_up_saying_expired(backend: Backend) {
    const TOKEN: &str = "tok-static-51a9";
    const LIFE: Duration = Duration::from_millis(700);
    let builder = users_server().auth(AuthMode::tokens([TokenSession::new(
        TOKEN,
        "u-1",
        ["writer"],
    )
    .expires_in(LIFE)]));
    let ctx = Ctx::with_server(&backend, builder);
    let client = ctx.connect(fast_options().token(TOKEN)).await;
    let connected = Instant::now();
    let (log, _guard) = EventLog::attach(&client);
    let mut count = client
        .store()
        .subscribe::<u64>("user-count")
        .await
        .expect("subscribed");
    assert_eq!(count.next().await.expect("first result").expect("ok"), 0);
    let users = client.store().bucket("users");
    users
        .insert(json!({"name": "Before"}))
        .await
        .expect("before expiry");
    // The login answered before `connect` returned, so the session has expired once
    // LIFE has passed since then (the server reads the same OS clock).
    ctx.sleep((LIFE + Duration::from_millis(100)).saturating_sub(connected.elapsed()))
        .await;
    let err = users
        .insert(json!({"name": "After"}))
        .await
        .expect_err("refused");
    assert!(
        matches!(&err, Error::Server { code: ErrorCode::Unauthorized, message, .. } if message == "Session expired"),
        "{err:?}"
    );
    let ended = ctx
        .within(WAIT, async {
            let mut items = Vec::new();
            while let Some(item) = count.next().await {
                items.push(item);
            }
            items
        })
        .await
        .expect("the subscription ends");
    match ended.last() {
        Some(Err(Error::GaveUp(DisconnectReason::SessionExpired { message }))) => {
            assert_eq!(message, "Session expired")
        }
        other => panic!("expected GaveUp(SessionExpired) last, got {other:?} of {ended:?}"),
    }
    assert!(
        ended[..ended.len() - 1].iter().all(Result::is_ok),
        "{ended:?}"
    );
    assert_eq!(client.state(), ConnectionState::Disconnected);
    assert_eq!(
        log.count(|e| matches!(e, LifecycleEvent::SessionExpired)),
        1,
        "{:?}",
        log.events()
    );
    assert!(
        log.count(|e| matches!(
            e,
            LifecycleEvent::Disconnected(DisconnectReason::SessionExpired { .. })
        )) == 1,
        "{:?}",
        log.events()
    );
    let counters = client.counters().await.expect("counters");
    assert_eq!(counters.sessions_expired, 1, "{counters:?}");
    ctx.sleep(Duration::from_millis(300)).await;
    assert_eq!(
        log.count(|e| matches!(e, LifecycleEvent::Reconnecting { .. })),
        0,
        "no reconnect: {:?}",
        log.events()
    );
    assert_eq!(ctx.server().connection_count(), 0, "no reconnect");
    let now = users
        .count(noex_client::Filter::all())
        .await
        .expect_err("no connection coming");
    assert!(
        matches!(
            now,
            Error::Disconnected {
                delivery: Delivery::NotSent
            } | Error::Closed { .. }
        ),
        "{now:?}"
    );
    assert_eq!(
        ctx.server().records("users").len(),
        1,
        "only the first write"
    );
    assert!(!format!("{:?} {err:?}", log.events()).contains(TOKEN));
}

/// Whether `e` belongs to a connection coming up (what a listener registered after
/// `connect()` returned must not hear for that connection).
fn coming_up(e: &LifecycleEvent) -> bool {
    matches!(
        e,
        LifecycleEvent::Connected
            | LifecycleEvent::StateChanged(ConnectionState::Connected)
            | LifecycleEvent::Welcome(_)
    )
}

/// A callback and an event stream registered right after `connect()` returns hear nothing
/// of that connection coming up, and do hear what happens later (a drop and the
/// reconnect). Fifty clients, to give a race a chance to show.
pub async fn listener_after_connect_hears_only_later_events(backend: Backend) {
    const CLIENTS: usize = 50;
    let ctx = Ctx::with_server(&backend, users_server());
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let client = Client::new(backend.clone());
        client
            .connect(&ctx.url, fast_options())
            .await
            .expect("connects");
        let (log, guard) = EventLog::attach(&client);
        let stream = client.events();
        clients.push((client, log, guard, stream));
    }
    for (i, (_, log, _, _)) in clients.iter().enumerate() {
        let early: Vec<_> = log.events().into_iter().filter(coming_up).collect();
        assert!(early.is_empty(), "client {i}'s callback heard {early:?}");
    }
    ctx.server().drop_connections();
    for (i, (client, log, _, stream)) in clients.iter_mut().enumerate() {
        ctx.eventually(WAIT, "the callback hears the reconnect", || async {
            log.count(|e| matches!(e, LifecycleEvent::Reconnected)) >= 1
        })
        .await;
        let mut heard = Vec::new();
        let reconnected = ctx
            .within(WAIT, async {
                while let Some(event) = stream.next().await {
                    let done = matches!(event, LifecycleEvent::Reconnected);
                    heard.push(event);
                    if done {
                        return true;
                    }
                }
                false
            })
            .await;
        assert_eq!(reconnected, Some(true), "client {i}'s stream: {heard:?}");
        for (what, events) in [("callback", log.events()), ("stream", heard)] {
            let first_loss = events
                .iter()
                .position(|e| matches!(e, LifecycleEvent::Disconnected(_)));
            let Some(first_loss) = first_loss else {
                panic!("client {i}'s {what} never heard the drop: {events:?}");
            };
            assert!(
                !events[..first_loss].iter().any(coming_up),
                "client {i}'s {what} heard the first connection come up: {events:?}"
            );
            assert!(
                !events
                    .iter()
                    .any(|e| matches!(e, LifecycleEvent::Connected)),
                "client {i}'s {what}: {events:?}"
            );
        }
        assert!(client.is_connected());
    }
    for (client, ..) in &clients {
        client.disconnect().await;
    }
}

/// When a connection is ready, and when the watchdog gave up on one.
#[derive(Debug, Default)]
struct Times {
    reconnected: Option<Instant>,
    liveness: Option<Instant>,
}

/// The server pings every 400 ms; after a drop, the server goes silent as soon as the new
/// link is ready, before its first ping. The watchdog, using the interval learned on the
/// first link, gives up within 2.25 intervals (900 ms) of the new link's last frame.
pub async fn link_silent_before_first_ping_is_noticed(backend: Backend) {
    let ctx = Ctx::with_server(&backend, users_server().heartbeat(PING));
    let client = ctx.connect(fast_options()).await;
    let (log, _guard) = EventLog::attach(&client);
    let times = Arc::new(Mutex::new(Times::default()));
    let server = ctx.server.clone().expect("embedded server");
    let seen = times.clone();
    let _stall = client.on(move |event| {
        let mut t = seen.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            // Silent from the new link's first moment: no ping will have come.
            LifecycleEvent::Reconnected if t.reconnected.is_none() => {
                server.stall();
                t.reconnected = Some(Instant::now());
            }
            LifecycleEvent::Disconnected(DisconnectReason::LivenessTimeout)
                if t.liveness.is_none() =>
            {
                t.liveness = Some(Instant::now())
            }
            _ => {}
        }
    });
    // Two pings (the interval is learned), then drop right after a fresh one, so the
    // next is 400 ms away.
    let pings = || async { client.counters().await.expect("counters").pings };
    ctx.eventually(WAIT, "two pings", || async { pings().await >= 2 })
        .await;
    let before = pings().await;
    ctx.eventually(WAIT, "a fresh ping", || async { pings().await > before })
        .await;
    let pings_before = pings().await;
    ctx.server().drop_connections();
    ctx.eventually(WAIT, "the silent link given up", || async {
        times
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .liveness
            .is_some()
    })
    .await;
    let (reconnected, liveness) = {
        let t = times.lock().unwrap_or_else(|e| e.into_inner());
        (
            t.reconnected.expect("reconnected"),
            t.liveness.expect("liveness"),
        )
    };
    let pings_after = pings().await;
    ctx.server().resume();
    let silent = liveness.saturating_duration_since(reconnected);
    // The bound: 1.2 s of silence after the last frame (the watchdog itself fires at
    // 900 ms), plus 300 ms for scheduling on a loaded machine. The `Reconnected` event is
    // after the new link's last frame, so measuring from it can only shorten the time.
    assert!(
        silent <= Duration::from_millis(1200 + 300),
        "the silent link was given up {silent:?} after it was ready; {:?}",
        log.events()
    );
    // Not at once either: the link got the time the interval says.
    assert!(
        silent >= Duration::from_millis(500),
        "given up after only {silent:?}"
    );
    assert_eq!(
        pings_after, pings_before,
        "no ping on the new link: the case tested the watchdog before the first ping"
    );
    // And it comes back once the server speaks again.
    ctx.eventually(WAIT, "reconnected after the silence", || async {
        log.count(|e| matches!(e, LifecycleEvent::Reconnected)) >= 2
    })
    .await;
    assert_eq!(
        client
            .store()
            .bucket("users")
            .count(noex_client::Filter::all())
            .await
            .unwrap(),
        0
    );
}

fn epoch_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A rules subscription on a link that goes silently dead: 20 events emitted during the
/// silence are lost, and every one not delivered lies inside the `RuleUpdate::Missed` reported
/// after the reconnect, also those emitted before the client noticed the loss.
///
/// The stall silences every connection of the server (a second client could not emit),
/// so the events come from the server's rule engine: a rule started just before the
/// stall sets 20 timers, 20 ms to 1.255 s ahead, each emitting `tick.N` when it fires;
/// a second rule, on `tick.*`, sets the fact `tick:N` in the same engine step, whose
/// `timestamp` (ms since the epoch, the server's OS clock) is read back afterwards as the
/// event's (equal, or 1 ms later when the clock ticked in between).
pub async fn rules_events_while_silently_dead_lie_in_a_gap(backend: Backend) {
    const TICKS: u64 = 20;
    // Converting the server's ms timestamps and the client's Instants to the wall clock.
    const SLACK_MS: i64 = 5;
    let ctx = Ctx::with_server(&backend, TestServer::builder().heartbeat(PING));
    let client = ctx.connect(fast_options()).await;
    let (log, _guard) = EventLog::attach(&client);
    let noticed = Arc::new(Mutex::new(None::<SystemTime>));
    let seen = noticed.clone();
    let _watch = client.on(move |event| {
        if matches!(
            event,
            LifecycleEvent::Disconnected(DisconnectReason::LivenessTimeout)
        ) {
            seen.lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert_with(SystemTime::now);
        }
    });
    let rules = client.rules();
    let timers: Vec<Value> = (0..TICKS)
        .map(|i| {
            json!({"type": "set_timer", "timer": {
                "name": format!("tick-{i}"),
                "duration": 20 + 65 * i,
                "onExpire": {"topic": format!("tick.{i}"), "data": {"i": i}}
            }})
        })
        .collect();
    rules
        .register_rule(
            json!({"id": "silence-ticks", "name": "ticks", "priority": 1,
            "enabled": true, "tags": [], "conditions": [],
            "trigger": {"type": "event", "topic": "silence.start"}, "actions": timers}),
        )
        .await
        .expect("timer rule");
    rules
        .register_rule(
            json!({"id": "tick-facts", "name": "tick facts", "priority": 1,
            "enabled": true, "tags": [], "conditions": [],
            "trigger": {"type": "event", "topic": "tick.*"},
            "actions": [{"type": "set_fact", "key": "tick:${event.i}", "value": true}]}),
        )
        .await
        .expect("fact rule");
    let mut ticks = rules.subscribe("tick.*").await.expect("subscribed");
    // The interval learned from two pings.
    ctx.eventually(WAIT, "two pings", || async {
        client.counters().await.expect("counters").pings >= 2
    })
    .await;
    rules
        .emit("silence.start", json!({}))
        .await
        .expect("timers started");
    let stalled_at = SystemTime::now();
    ctx.server().stall();
    ctx.eventually(WAIT, "the dead link noticed", || async {
        noticed.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    })
    .await;
    // Silent until every timer has fired (the last at 1.255 s).
    let silence = Duration::from_millis(1400);
    let since = SystemTime::now()
        .duration_since(stalled_at)
        .unwrap_or_default();
    ctx.sleep(silence.saturating_sub(since)).await;
    let resumed_at = SystemTime::now();
    ctx.server().resume();
    let noticed_at = noticed
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .expect("noticed");

    let mut delivered = BTreeSet::new();
    let mut gap = None;
    let read = ctx
        .within(WAIT, async {
            while let Some(item) = ticks.next().await {
                match item {
                    Ok(RuleUpdate::Event(RuleMessage { event, .. })) => {
                        delivered.insert(event.data["i"].as_u64().expect("i"));
                    }
                    Ok(RuleUpdate::Missed { from, to }) => {
                        gap = Some((from, to));
                        return;
                    }
                    Ok(other) => panic!("unexpected {other:?}"),
                    Err(other) => panic!("unexpected {other:?}"),
                }
            }
        })
        .await;
    assert!(read.is_some(), "no gap reported; {:?}", log.events());
    let (from, to) = gap.expect("gap");
    assert!(from <= to, "{from:?} > {to:?}");
    let facts = rules.query_facts("tick:*").await.expect("facts");
    let emitted: BTreeMap<u64, i64> = facts
        .iter()
        .filter_map(|f| Some((f.key.strip_prefix("tick:")?.parse().ok()?, f.timestamp)))
        .collect();
    assert_eq!(emitted.len() as u64, TICKS, "{facts:?}");
    let (from_ms, to_ms) = (epoch_ms(from), epoch_ms(to));
    let lost: Vec<(u64, i64)> = emitted
        .iter()
        .filter(|(i, _)| !delivered.contains(i))
        .map(|(i, ts)| (*i, *ts))
        .collect();
    let outside: Vec<_> = lost
        .iter()
        .filter(|(_, ts)| *ts - 1 < from_ms - SLACK_MS || *ts > to_ms + SLACK_MS)
        .collect();
    assert!(
        outside.is_empty(),
        "events not delivered outside the gap [{from_ms}, {to_ms}] (stalled at {}, \
         noticed at {}, resumed at {}): {outside:?}; delivered {delivered:?}",
        epoch_ms(stalled_at),
        epoch_ms(noticed_at),
        epoch_ms(resumed_at)
    );
    // Non-vacuous: events were lost, some of them before the loss was noticed, and the
    // gap starts at the last frame (before the stall), not when the loss was noticed.
    assert!(
        lost.iter()
            .any(|(_, ts)| *ts < epoch_ms(noticed_at) - SLACK_MS),
        "no event lost before the loss was noticed at {}: {lost:?}",
        epoch_ms(noticed_at)
    );
    assert!(
        from_ms <= epoch_ms(stalled_at) + SLACK_MS,
        "the gap starts at {from_ms}, after the stall at {}",
        epoch_ms(stalled_at)
    );
    assert!(
        to_ms + SLACK_MS >= epoch_ms(resumed_at),
        "the gap ends at {to_ms}, before the resume at {}",
        epoch_ms(resumed_at)
    );
    // The stream carries on.
    rules
        .emit("tick.after", json!({"i": 99}))
        .await
        .expect("emit");
    let next = ctx.within(WAIT, ticks.next()).await;
    assert!(
        matches!(&next, Some(Some(Ok(RuleUpdate::Event(m)))) if m.topic == "tick.after"),
        "{next:?}"
    );
}
