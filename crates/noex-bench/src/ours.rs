//! The same work through the noex client.

use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use hdrhistogram::Histogram;
use noex_tokio::{Backoff, Bucket, Client, ClientOptions, LifecycleEvent, Record, Subscription};
use serde_json::Value;
use std::future::Future;
use std::future::IntoFuture;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Options for the benchmarks: immediate reconnects, generous deadlines.
pub(crate) fn options() -> ClientOptions {
    ClientOptions::new()
        .backoff(Backoff {
            initial: Duration::ZERO,
            multiplier: 1.0,
            max: Duration::ZERO,
            jitter: Duration::ZERO,
            max_retries: None,
        })
        .request_timeout(Duration::from_secs(120))
        .seed(1)
}

/// Connects a client.
pub(crate) async fn connect(url: &str) -> Client {
    noex_tokio::connect(url, options())
        .await
        .expect("client connects")
}

/// `store.get` requests with `depth` in flight until `until`; returns how many ended.
pub(crate) async fn get_loop(client: &Client, bucket: &str, depth: usize, until: Instant) -> u64 {
    let bucket = client.store().bucket(bucket);
    let mut in_flight = FuturesUnordered::new();
    let mut issued = 0;
    for _ in 0..depth {
        in_flight.push(bucket.get(crate::serve::key(issued)));
        issued += 1;
    }
    let mut done = 0;
    while let Some(result) = in_flight.next().await {
        result.expect("get");
        done += 1;
        if Instant::now() < until {
            in_flight.push(bucket.get(crate::serve::key(issued)));
            issued += 1;
        }
    }
    done
}

/// Sequential `store.get` round trips, their latencies in a histogram
/// ([`crate::measure::histogram`]).
pub(crate) async fn latencies(client: &Client, bucket: &str, n: usize) -> Histogram<u64> {
    let bucket = client.store().bucket(bucket);
    let mut out = crate::measure::histogram();
    for i in 0..n {
        let start = Instant::now();
        bucket.get(crate::serve::key(i)).await.expect("get");
        crate::measure::record(&mut out, start.elapsed());
    }
    out
}

/// Makes `n` subscriptions (concurrently) and reads each one's initial value.
pub(crate) async fn subscribe_many(
    client: &Client,
    query: &str,
    params: Option<Value>,
    n: usize,
) -> Vec<Subscription<Value>> {
    let store = client.store();
    let mut subs: Vec<Subscription<Value>> = futures::future::join_all((0..n).map(|_| {
        let subscribe = store.subscribe::<Value>(query);
        match &params {
            Some(params) => subscribe.params(params.clone()).into_future(),
            None => subscribe.into_future(),
        }
    }))
    .await
    .into_iter()
    .map(|s| s.expect("subscribe"))
    .collect();
    read_one_each(&mut subs).await;
    subs
}

/// Waits until every subscription has yielded one value, and returns the values (so that,
/// as the raw client's answers, they are freed after the clock stops): one `next()`
/// future per subscription in a `FuturesUnordered`, so that each push wakes only its own
/// future (a loop polling every subscription on every wake would cost the client O(n²)
/// polls).
pub(crate) async fn read_one_each(subs: &mut [Subscription<Value>]) -> Vec<Value> {
    let mut values = Vec::with_capacity(subs.len());
    let mut firsts: FuturesUnordered<_> = subs
        .iter_mut()
        .enumerate()
        .map(|(i, sub)| async move { (i, sub.next().await) })
        .collect();
    while let Some((i, first)) = firsts.next().await {
        match first {
            Some(Ok(value)) => values.push(value),
            other => panic!("subscription {i} ended: {other:?}"),
        }
    }
    values
}

/// When the next `welcome` arrived, with the server's CPU time then.
pub(crate) type WelcomeClock = Arc<Mutex<Option<(Instant, Option<Duration>)>>>;

/// Records when the next `welcome` arrives, and the CPU time the server process
/// `server` (`None`: not on this machine) has used by then.
pub(crate) fn welcome_clock(
    client: &Client,
    server: Option<u32>,
) -> (WelcomeClock, noex_tokio::ListenerGuard) {
    let at: WelcomeClock = Arc::new(Mutex::new(None));
    let sink = at.clone();
    let guard = client.on(move |event| {
        if matches!(event, LifecycleEvent::Welcome(_)) {
            let now = Instant::now();
            let cpu = server.map(crate::measure::cpu_time_of);
            *sink.lock().unwrap_or_else(|e| e.into_inner()) = Some((now, cpu));
        }
    });
    (at, guard)
}

/// `n` `store.get` requests issued at once: every future made before any is polled.
pub(crate) fn issue(
    bucket: &Bucket,
    n: usize,
) -> FuturesUnordered<impl Future<Output = noex_tokio::Result<Option<Record>>> + '_> {
    (0..n).map(|i| bucket.get(crate::serve::key(i))).collect()
}

/// Issues `n` `store.get` requests at once and waits for them all; returns how many
/// answered with a record. A failed request panics.
pub(crate) async fn burst(client: &Client, bucket: &str, n: usize) -> usize {
    let bucket = client.store().bucket(bucket);
    let mut in_flight = issue(&bucket, n);
    let mut done = 0;
    while let Some(result) = in_flight.next().await {
        if result.expect("get in a burst").is_some() {
            done += 1;
        }
    }
    done
}

/// The size of one caller's `store.get` future itself (what it holds inline, before any
/// heap allocation it makes when polled).
pub(crate) fn get_future_size(client: &Client, bucket: &str) -> usize {
    let bucket = client.store().bucket(bucket);
    let future = bucket.get(crate::serve::key(0));
    size_of_val(&future)
}

/// The callers' side of a burst alone: the same `n` futures as [`burst`], on a client
/// where every request but one waits for a slot (`max_in_flight` 1, server stalled so
/// none ends). Polls them until all `n` count as pending, calls `at_peak` (the
/// measurement), then drops them (which withdraws the requests). Returns what `at_peak`
/// returned.
pub(crate) async fn waiting_burst<T>(
    client: &Client,
    bucket: &str,
    n: usize,
    at_peak: impl FnOnce() -> T,
) -> T {
    let bucket = client.store().bucket(bucket);
    let mut waiting = issue(&bucket, n);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(waiting.next().now_or_never().is_none(), "a request ended");
        let pending = client.counters().await.expect("counters").requests_pending;
        if pending == n as u64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {pending} of {n} requests pending"
        );
        tokio::task::yield_now().await;
    }
    let measured = at_peak();
    drop(waiting);
    measured
}
