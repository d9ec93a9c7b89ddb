//! `noex bench`: one operation sent over and over on C connections with N requests in
//! flight on each, for a duration; then requests per second and latency percentiles.
//! A progress bar runs on stderr when it is a terminal.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::FuturesUnordered;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use noex_tokio::proto::ops::Operation;
use noex_tokio::ClientOptions;
use serde_json::json;

use crate::call::lookup;
use crate::client_args::BenchArgs;
use crate::connect::{connect_client, resolve_login, show_duration};
use crate::exit::Failure;
use crate::input::call_fields;
use crate::output::Format;
use crate::stdout::print_line;

/// What one connection measured.
#[derive(Debug, Default)]
struct Tally {
    /// Latencies of the successful requests, in microseconds.
    latencies: Vec<u64>,
    errors: u64,
    first_error: Option<Failure>,
}

/// The `p`-th percentile (0..=100) of sorted values, nearest rank.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

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
                let mut tally = Tally::default();
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
                            tally.latencies.push(took.as_micros() as u64);
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
    let mut latencies: Vec<u64> = tallies
        .iter()
        .flat_map(|t| t.latencies.iter().copied())
        .collect();
    latencies.sort_unstable();
    let errors: u64 = tallies.iter().map(|t| t.errors).sum();
    let first_error = tallies.into_iter().find_map(|t| t.first_error);
    let ok = latencies.len() as u64;
    let secs = elapsed.as_secs_f64().max(1e-9);
    let rate = ok as f64 / secs;
    let (p50, p90, p99) = (
        percentile(&latencies, 50.0),
        percentile(&latencies, 90.0),
        percentile(&latencies, 99.0),
    );
    let max = latencies.last().copied().unwrap_or(0);
    if format.human() {
        print_line(&format!("op           {}", kind.name()));
        print_line(&format!(
            "load         {} connections × {} in flight",
            args.connections, args.depth
        ));
        print_line(&format!("duration     {secs:.2} s"));
        print_line(&format!("requests     {ok} ok, {errors} errors"));
        print_line(&format!("throughput   {rate:.1} req/s"));
        print_line(&format!(
            "latency      p50 {}  p90 {}  p99 {}  max {}",
            ms(p50),
            ms(p90),
            ms(p99),
            ms(max)
        ));
    } else {
        let us = |v: u64| v as f64 / 1000.0;
        print_line(
            &json!({
                "op": kind.name(),
                "connections": args.connections,
                "depth": args.depth,
                "seconds": secs,
                "requests": ok,
                "errors": errors,
                "reqPerSec": rate,
                "latencyMs": {"p50": us(p50), "p90": us(p90), "p99": us(p99), "max": us(max)},
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

    #[test]
    fn percentiles_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&[], 50.0), 0);
        assert_eq!(percentile(&[7], 90.0), 7);
    }
}
