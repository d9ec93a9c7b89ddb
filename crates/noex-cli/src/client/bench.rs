//! `noex bench`: one operation sent over and over on C connections with N requests in
//! flight on each, for a duration; then requests per second and latency percentiles.
//! A progress bar runs on stderr when it is a terminal.
//!
//! The latencies go into an HDR histogram ([`hdrhistogram::Histogram`], microseconds, 3
//! significant digits) per connection, added up at the end; the percentiles are read with
//! [`Histogram::value_at_quantile`] (nearest rank, within 0.1 %). The benchmark binary
//! `noex-bench` records and reads its latencies the same way. A bench runs for a duration,
//! not a number of requests, so a histogram is also better than a list of every latency,
//! which would grow with every request (8 bytes each, without end): a histogram's size
//! does not depend on the number of requests, only (logarithmically) on the largest
//! latency, 16 KiB per connection for latencies under 2 ms, 88 KiB up to a second and at
//! most 184 KiB up to an hour.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::FuturesUnordered;
use futures::StreamExt;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use noex_tokio::proto::ops::Operation;
use noex_tokio::ClientOptions;
use serde_json::json;

use crate::client::args::BenchArgs;
use crate::client::call::lookup;
use crate::client::connect::{connect_client, resolve_login, show_duration};
use crate::client::failure::Failure;
use crate::client::input::call_fields;
use crate::client::output::Format;
use crate::stdout::print_line;

/// Significant decimal digits of the latency histograms.
const SIGNIFICANT_DIGITS: u8 = 3;

/// An empty latency histogram (microseconds; it grows to fit the largest latency).
fn histogram() -> Histogram<u64> {
    Histogram::new(SIGNIFICANT_DIGITS).expect("3 significant digits are valid")
}

/// Records one latency in a histogram of [`histogram`], growing it as needed.
/// (`saturating_record` would not grow it: it clamps to the current top, 2 ms at first.)
fn record(latencies: &mut Histogram<u64>, took: Duration) {
    let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
    if latencies.record(us).is_err() {
        // Beyond what it can grow to: counted at its top.
        latencies.saturating_record(us);
    }
}

/// What one connection measured.
#[derive(Debug)]
struct Tally {
    /// Latencies of the successful requests, in microseconds.
    latencies: Histogram<u64>,
    /// Error answers.
    errors: u64,
    /// The first error answer.
    first_error: Option<Failure>,
}

impl Tally {
    /// Nothing measured yet.
    fn new() -> Tally {
        Tally {
            latencies: histogram(),
            errors: 0,
            first_error: None,
        }
    }
}

/// The latency percentiles of the successful requests, in microseconds (0 when none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Percentiles {
    /// The median.
    p50: u64,
    /// The 90th percentile.
    p90: u64,
    /// The 99th percentile.
    p99: u64,
    /// The largest (the top of its histogram bucket).
    max: u64,
}

impl Percentiles {
    /// Read from a histogram of [`histogram`].
    fn of(latencies: &Histogram<u64>) -> Percentiles {
        Percentiles {
            p50: latencies.value_at_quantile(0.50),
            p90: latencies.value_at_quantile(0.90),
            p99: latencies.value_at_quantile(0.99),
            max: latencies.max(),
        }
    }

    /// The human report's `latency` line.
    fn human(&self) -> String {
        format!(
            "latency      p50 {}  p90 {}  p99 {}  max {}",
            ms(self.p50),
            ms(self.p90),
            ms(self.p99),
            ms(self.max)
        )
    }

    /// The JSON report's `latencyMs` object.
    fn json(&self) -> serde_json::Value {
        let ms = |us: u64| us as f64 / 1000.0;
        json!({"p50": ms(self.p50), "p90": ms(self.p90), "p99": ms(self.p99), "max": ms(self.max)})
    }
}

/// Microseconds as milliseconds for the human report: `7.550 ms`.
fn ms(us: u64) -> String {
    format!("{:.3} ms", us as f64 / 1000.0)
}

/// `noex bench`.
pub(crate) fn run(args: &BenchArgs) -> Result<(), Failure> {
    let kind = lookup(&args.op)?;
    let fields = call_fields(&args.fields)?;
    let op = Operation::new(kind).with_fields(&fields);
    if let Some(e) = op.encode_error() {
        return Err(Failure::Usage(format!("cannot encode the request: {e}")));
    }
    if args.duration.is_zero() {
        return Err(Failure::Usage("--duration must be more than 0".into()));
    }
    let format = Format::resolve(&args.out);
    let login = resolve_login(&args.conn)?;
    let shown = show_duration(args.conn.timeout);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.min(args.connections as usize).max(1))
        .enable_all()
        .build()
        .map_err(|e| Failure::Other(format!("cannot start the runtime: {e}")))?;
    let depth = args.depth as usize;
    let (tallies, elapsed) = runtime.block_on(async {
        let mut clients = Vec::new();
        for _ in 0..args.connections {
            let options = ClientOptions::new()
                .reconnect(false)
                .heartbeat(false)
                .max_in_flight(depth.max(1));
            clients.push(connect_client(&args.conn, &login, options).await?);
        }
        let done = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let bar = if std::io::stderr().is_terminal() {
            ProgressBar::with_draw_target(
                Some(args.duration.as_millis() as u64),
                ProgressDrawTarget::stderr(),
            )
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template("{bar:30} {elapsed}/{duration} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let started = Instant::now();
        let deadline = started + args.duration;
        let ticker = {
            let (bar, done, failed) = (bar.clone(), done.clone(), failed.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let t = started.elapsed();
                    let n = done.load(Ordering::Relaxed);
                    bar.set_position(t.as_millis() as u64);
                    bar.set_message(format!(
                        "{n} requests, {:.0} req/s, {} errors",
                        n as f64 / t.as_secs_f64().max(1e-9),
                        failed.load(Ordering::Relaxed)
                    ));
                }
            })
        };
        let mut tasks = Vec::new();
        for client in &clients {
            let (client, op, done, failed, shown) = (
                client.clone(),
                op.clone(),
                done.clone(),
                failed.clone(),
                shown.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let mut tally = Tally::new();
                let mut in_flight = FuturesUnordered::new();
                let send = |op: Operation| {
                    let client = client.clone();
                    async move {
                        let t = Instant::now();
                        let answer = client.request(op).await;
                        (answer, t.elapsed())
                    }
                };
                for _ in 0..depth {
                    in_flight.push(send(op.clone()));
                }
                while let Some((answer, took)) = in_flight.next().await {
                    match answer {
                        Ok(_) => {
                            record(&mut tally.latencies, took);
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            tally.errors += 1;
                            failed.fetch_add(1, Ordering::Relaxed);
                            tally
                                .first_error
                                .get_or_insert_with(|| Failure::from_sdk(&e, &shown));
                        }
                    }
                    if Instant::now() < deadline {
                        in_flight.push(send(op.clone()));
                    }
                }
                tally
            }));
        }
        let mut tallies = Vec::new();
        for task in tasks {
            match task.await {
                Ok(t) => tallies.push(t),
                Err(e) => return Err(Failure::Other(format!("a connection's task failed: {e}"))),
            }
        }
        let elapsed = started.elapsed();
        ticker.abort();
        bar.finish_and_clear();
        for client in clients {
            client.disconnect().await;
        }
        Ok((tallies, elapsed))
    })?;
    let mut latencies = histogram();
    for t in &tallies {
        latencies
            .add(&t.latencies)
            .map_err(|e| Failure::Other(format!("cannot add up the latencies: {e}")))?;
    }
    let errors: u64 = tallies.iter().map(|t| t.errors).sum();
    let first_error = tallies.into_iter().find_map(|t| t.first_error);
    let ok = latencies.len();
    let secs = elapsed.as_secs_f64().max(1e-9);
    let rate = ok as f64 / secs;
    let percentiles = Percentiles::of(&latencies);
    if format.human() {
        print_line(&format!("op           {}", kind.name()));
        print_line(&format!(
            "load         {} connections × {} in flight",
            args.connections, args.depth
        ));
        print_line(&format!("duration     {secs:.2} s"));
        print_line(&format!("requests     {ok} ok, {errors} errors"));
        print_line(&format!("throughput   {rate:.1} req/s"));
        print_line(&percentiles.human());
    } else {
        print_line(
            &json!({
                "op": kind.name(),
                "connections": args.connections,
                "depth": args.depth,
                "seconds": secs,
                "requests": ok,
                "errors": errors,
                "reqPerSec": rate,
                "latencyMs": percentiles.json(),
            })
            .to_string(),
        );
    }
    if let Some(e) = first_error.as_ref().filter(|_| ok > 0) {
        let mut lines = e.lines();
        if let Some(first) = lines.first_mut() {
            *first = format!("{first} (first of {errors} errors)");
        }
        for l in &lines {
            eprintln!("{l}");
        }
    }
    match first_error {
        Some(e) if ok == 0 => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A histogram of the latencies `1..=100` ms, recorded as `bench` records them.
    fn known() -> Histogram<u64> {
        let mut h = histogram();
        for ms in (1..=100u64).rev() {
            record(&mut h, Duration::from_millis(ms));
        }
        h
    }

    #[test]
    fn percentiles_of_known_latencies() {
        let p = Percentiles::of(&known());
        // Nearest rank, each within the histogram's 0.1 %.
        for (got, want) in [
            (p.p50, 50_000),
            (p.p90, 90_000),
            (p.p99, 99_000),
            (p.max, 100_000),
        ] {
            assert!(
                (want..=want + want / 1000).contains(&got),
                "{got} µs, want {want}"
            );
        }
        assert_eq!(
            p.human(),
            "latency      p50 50.015 ms  p90 90.047 ms  p99 99.007 ms  max 100.031 ms"
        );
        let j = p.json();
        assert!((j["p50"].as_f64().unwrap() - 50.0).abs() < 0.05, "{j}");
        assert!((j["max"].as_f64().unwrap() - 100.0).abs() < 0.1, "{j}");
    }

    #[test]
    fn percentiles_of_per_connection_tallies_added_up() {
        // Two connections' histograms, added up as `run` does, read as one.
        let mut a = histogram();
        let mut b = histogram();
        for us in 1..=1000u64 {
            record(
                if us % 2 == 0 { &mut a } else { &mut b },
                Duration::from_micros(us),
            );
        }
        let mut all = histogram();
        all.add(&a).unwrap();
        all.add(&b).unwrap();
        assert_eq!(all.len(), 1000);
        let p = Percentiles::of(&all);
        // Below 2048 µs the histogram is exact.
        assert_eq!(
            p,
            Percentiles {
                p50: 500,
                p90: 900,
                p99: 990,
                max: 1000
            }
        );
    }

    #[test]
    fn no_latencies_read_as_zero() {
        let p = Percentiles::of(&histogram());
        assert_eq!(
            p,
            Percentiles {
                p50: 0,
                p90: 0,
                p99: 0,
                max: 0
            }
        );
        assert_eq!(
            p.human(),
            "latency      p50 0.000 ms  p90 0.000 ms  p99 0.000 ms  max 0.000 ms"
        );
    }
}
