//! The conformance suite: every behaviour a noex client adapter must show, written once and
//! run against each of the three adapters (see `noex-tokio/tests/conformance.rs`,
//! `noex-smol/tests/conformance.rs` and `noex-async-std/tests/conformance.rs`).
//!
//! Cases are plain async functions taking a [`Ctx`]. [`conformance_suite!`] turns the list
//! into `#[test]` functions for one runtime. Cases marked server-independent run against
//! a fresh embedded test server, and also against a real noex-server when the environment
//! variable `NOEX_URL` names one (no auth, rules enabled): they create their own buckets and
//! queries under unique names through the admin operations.
//!
//! [`harness`] runs the client on virtual time against an in-memory server with network
//! faults, deterministically: the cases that depend on exact timing and the long runs
//! (`tests/virtual_time.rs`, `tests/long_run.rs`) use it. [`Eventually`] is the one
//! poll-until helper of every test crate.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cases;
pub mod chaos;
pub mod harness;
pub mod noex_bin;
pub mod tls_proxy;
mod wait;

pub use wait::Eventually;

use futures::future::{self, BoxFuture, Either};
use noex_client::runtime::Backend;
use noex_client::{Backoff, Client, ClientOptions, LifecycleEvent};
use noex_testkit::{TestServer, TestServerBuilder};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long one case may take before it fails.
pub const CASE_TIMEOUT: Duration = Duration::from_secs(60);

/// What a case runs with.
#[derive(Clone, Debug)]
pub struct Ctx {
    /// The adapter under test.
    pub backend: Backend,
    /// The server's URL.
    pub url: String,
    /// The embedded server, when the case runs against one.
    pub server: Option<Arc<TestServer>>,
}

impl Ctx {
    /// A context on a fresh embedded server built by `builder`.
    pub fn with_server(backend: &Backend, builder: TestServerBuilder) -> Ctx {
        let server = builder.start().expect("test server starts");
        Ctx {
            backend: backend.clone(),
            url: server.url(),
            server: Some(Arc::new(server)),
        }
    }

    /// The embedded server (fault-injection cases only).
    pub fn server(&self) -> &TestServer {
        self.server
            .as_deref()
            .expect("this case needs the embedded test server")
    }

    /// Whether the case runs against the embedded server.
    pub fn is_testkit(&self) -> bool {
        self.server.is_some()
    }

    /// Connects a new client with `options`.
    pub async fn connect(&self, options: ClientOptions) -> Client {
        let client = Client::new(self.backend.clone());
        client
            .connect(&self.url, options)
            .await
            .expect("client connects");
        client
    }

    /// Waits `duration` on the adapter's runtime.
    pub async fn sleep(&self, duration: Duration) {
        self.backend.runtime.sleep(duration).await
    }

    /// Polls `check` every 20 ms until it is true; panics after `within`.
    pub async fn eventually<F, Fut>(&self, within: Duration, what: &str, check: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        Eventually::new(|d| self.sleep(d))
            .every(Duration::from_millis(20))
            .within(within)
            .until_async(what, check)
            .await
    }

    /// Runs `fut` with a deadline; `None` when it did not finish in time.
    pub async fn within<T>(&self, limit: Duration, fut: impl Future<Output = T>) -> Option<T> {
        let sleep = self.backend.runtime.sleep(limit);
        match future::select(Box::pin(fut), sleep).await {
            Either::Left((value, _)) => Some(value),
            Either::Right(_) => None,
        }
    }
}

/// Options for fault tests: fast, deterministic reconnects.
pub fn fast_options() -> ClientOptions {
    ClientOptions::new()
        .backoff(Backoff {
            initial: Duration::from_millis(50),
            multiplier: 2.0,
            max: Duration::from_millis(400),
            jitter: Duration::ZERO,
            max_retries: None,
        })
        .request_timeout(Duration::from_secs(5))
        .seed(7)
}

/// A name no other run uses (for buckets and queries on a shared real server).
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{nanos}-{n}", std::process::id())
}

/// Records every lifecycle event of a client.
#[derive(Clone, Default, Debug)]
pub struct EventLog(Arc<Mutex<Vec<LifecycleEvent>>>);

impl EventLog {
    /// Starts recording `client`'s events; keep the guard alive.
    pub fn attach(client: &Client) -> (EventLog, noex_client::ListenerGuard) {
        let log = EventLog::default();
        let sink = log.0.clone();
        let guard = client.on(move |event| {
            sink.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(event.clone())
        });
        (log, guard)
    }

    /// The events so far.
    pub fn events(&self) -> Vec<LifecycleEvent> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How many events match.
    pub fn count(&self, pred: impl Fn(&LifecycleEvent) -> bool) -> usize {
        self.events().iter().filter(|e| pred(e)).count()
    }
}

/// Runs a case on a fresh default embedded server and, when `NOEX_URL` is set, against it.
pub async fn run_independent(backend: Backend, case: fn(Ctx) -> BoxFuture<'static, ()>) {
    let ctx = Ctx::with_server(&backend, cases::default_server());
    with_deadline(&ctx, case(ctx.clone())).await;
    if let Ok(url) = std::env::var("NOEX_URL") {
        let ctx = Ctx {
            backend,
            url,
            server: None,
        };
        with_deadline(&ctx, case(ctx.clone())).await;
    }
}

/// Runs a case that needs the embedded server's fault injection.
pub async fn run_testkit(backend: Backend, case: fn(Backend) -> BoxFuture<'static, ()>) {
    let ctx = Ctx {
        backend: backend.clone(),
        url: String::new(),
        server: None,
    };
    with_deadline(&ctx, case(backend)).await;
}

async fn with_deadline(ctx: &Ctx, case: impl Future<Output = ()>) {
    if ctx.within(CASE_TIMEOUT, case).await.is_none() {
        panic!("case did not finish within {CASE_TIMEOUT:?}");
    }
}

/// Expands to one `#[test]` per case for a runtime.
///
/// `block_on` runs a future to completion on the runtime; `backend` makes the adapter's
/// [`Backend`].
#[macro_export]
macro_rules! conformance_suite {
    (block_on: $block_on:path, backend: $backend:expr $(,)?) => {
        $crate::conformance_suite!(@independent $block_on, $backend, [
            store_crud_typed_records, store_queries_and_aggregates, store_errors, transactions,
            admin_store_ops, store_subscription_pushes, subscription_callback_and_drop,
            rules_events_and_facts, rules_admin, procedures, server_introspection,
            filter_builder_operators, unsubscribe_and_bare_emit,
            live_insert_update_delete_are_one_keyed_change_each, live_params_on_a_sorted_where_query,
            live_key_field_names_the_bucket_key, live_burst_between_reads_is_merged,
            live_record_replaced_under_its_key_between_reads, live_unsubscribe_drop_and_on_change,
            live_count_query_is_not_a_list,
        ]);
        $crate::conformance_suite!(@testkit $block_on, $backend, [
            count_and_param_queries, restore_after_drop, restore_after_stall, close_codes_that_reconnect,
            close_codes_that_stop, shutdown_notice_then_reconnect, token_login_across_reconnects,
            credentials_login_across_reconnects, identity_api, auth_and_audit, pending_rejected_on_loss,
            retry_safe_read_survives_drop, request_timeout, connect_timeout, bad_frames_leave_client_working,
            dropped_request_future_is_withdrawn, slow_consumer_keeps_latest_only, subscription_limit,
            wss_with_custom_root, stall_resume_drop_outcomes,
            events_stream_and_state, queue_while_disconnected, dropping_last_handle_closes, session_revoked_stops,
            handshake_stall_holds_at_most_one_socket, handshake_delay_and_reset_hold_at_most_one_socket,
            disconnect_releases_the_socket, dropped_subscribe_futures_leave_nothing_on_the_server,
            dropped_futures_while_reconnecting_are_never_sent, panicking_lifecycle_callback_is_isolated,
            panicking_on_update_callback_is_isolated, disconnect_ends_streams_quietly,
            giving_up_ends_streams_with_the_reason, revoked_or_exhausted_ends_streams,
            state_is_set_before_its_event, requests_wait_for_the_connection_by_default,
            in_flight_cap_makes_callers_wait, counters_add_up,
            session_stays_logged_in_for_four_lifetimes,
            expired_session_is_made_again_and_refused_requests_resent,
            token_provider_refreshes_expiring_tokens, static_token_expiry_gives_up_saying_expired,
            listener_after_connect_hears_only_later_events, link_silent_before_first_ping_is_noticed,
            rules_events_while_silently_dead_lie_in_a_gap,
            live_missed_while_the_link_was_silent, live_missed_across_a_server_restart,
            live_missed_across_a_clean_close, live_gives_up_then_ends_and_ends_on_disconnect,
        ]);
    };
    (@independent $block_on:path, $backend:expr, [$($case:ident),* $(,)?]) => {
        $(
            #[test]
            fn $case() {
                $block_on($crate::run_independent(($backend).into(), |ctx| Box::pin($crate::cases::independent::$case(ctx))));
            }
        )*
    };
    (@testkit $block_on:path, $backend:expr, [$($case:ident),* $(,)?]) => {
        $(
            #[test]
            fn $case() {
                $block_on($crate::run_testkit(($backend).into(), |backend| Box::pin($crate::cases::faults::$case(backend))));
            }
        )*
    };
}
