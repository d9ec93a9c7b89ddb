//! `noex-bench`: the noex client against a minimal raw client (tokio-tungstenite +
//! serde_json, ids in a map) doing the same work over the same server, in one run, reported
//! as ratios.
//!
//! ```text
//! cargo run --release -p noex-bench                 # full run against the test server
//! cargo run --release -p noex-bench -- --quick      # seconds; what CI runs
//! cargo run --release -p noex-bench -- --threads 2  # multi-threaded tokio runtime
//! cargo run --release -p noex-bench -- --only throughput,latency
//! cargo run --release -p noex-bench -- --only burst         # 100 000 requests at once
//! cargo run --release -p noex-bench -- --only startup       # `noex serve` start-up time
//! cargo run --release -p noex-bench -- --only push,live      # CPU per push, live views
//! NOEX_URL=ws://127.0.0.1:8080 cargo run --release -p noex-bench
//! NOEX_REAL_LAUNCHER="node /path/to/start-server.mjs" \
//!     cargo run --release -p noex-bench -- --only startup   # … and the real launcher's
//! ```
//!
//! The test server runs in a child process (`noex-bench serve`), so this process's CPU time
//! and memory are the client's own. Memory is measured in further child processes
//! (`noex-bench mem …`), one per measurement, so earlier allocations do not blur it.
//! The parts: `throughput`, `cpu`, `latency`, `restore`, `memory`, `burst`, `push`,
//! `live`, `startup`.
//! The `restore` part starts a fresh test server for every timed turn and reports, beside
//! the ratio to raw, the ratio of two identical raw clients: the run's own spread (see
//! `restore.rs`).
//!
//! The `push` and `live` parts measure the client's CPU time per `push` of a store query's
//! result (100 records read into `Vec<Record<T>>`; a 1 000-record live view with one record
//! changed per push), each on a test server of its own, against the raw client reading the
//! same frames into the same type, with a second raw client for the run's own spread (see
//! `push.rs`); `live` also measures the memory a live view holds against the records' own
//! size, in child processes (see `view_memory.rs`). For profilers, `noex-bench turn
//! <typed|live|raw> <records> <pushes>` has one such client read `pushes` pushes alone
//! (see `push::turn_child`).
//!
//! ## `startup`
//!
//! How long `noex serve --fixture '<json>'` (this workspace's `noex` binary, in the Python
//! client's test-launcher role) takes from process spawn to its first stdout line (the
//! `ws://` URL) has been read, as a test runner waits for it: median and p90 of
//! `--startup-runs N` starts (default 20; 3 with `--quick`), each followed by SIGTERM and
//! a wait for a clean exit (the median time to exit is reported too). With
//! `NOEX_REAL_LAUNCHER` set to a command (split on whitespace, the fixture JSON appended as
//! its last argument), e.g. `node /path/to/start-server.mjs` (the `noex-client` 0.1.1
//! sdist's `tests/fixtures/start-server.mjs` with `node_modules/@hamicek/{noex-server,
//! noex-store,noex-rules}` resolvable from its directory), the real server's launcher is
//! timed the same way, alternating with `noex serve`, and the `raw` column holds its
//! figures; `noex vs raw` is then noex serve's time over the real launcher's. Without it
//! that column reads `not run`. Both get the same fixture (a bucket with a schema and
//! three queries; see `startup::FIXTURE`) and one untimed start first.
//!
//! The `noex` binary is `NOEX_BIN` if set; otherwise the benchmark runs `cargo build -p
//! noex-cli --bin noex --message-format=json-render-diagnostics` with its own target
//! directory and profile (derived from its executable's path; `--release` when run with
//! `--release`) and takes the executable cargo reports. The startup part needs no test
//! server, so `--only startup` starts none.
#![forbid(unsafe_code)]

mod measure;
mod ours;
mod push;
mod raw;
mod restore;
mod serve;
mod startup;
mod view_memory;

use measure::{cpu_time, histogram, peak_rss_bytes, quantile, rss_bytes, start_peak};
use raw::Raw;
use serde_json::json;
use serve::{Server, BUCKET, COUNT_QUERY, GROUP_QUERY, RECORDS};
use std::future::Future;
use std::time::{Duration, Instant};

/// What to run and how long.
#[derive(Debug, Clone)]
struct Plan {
    quick: bool,
    threads: usize,
    only: Option<Vec<String>>,
    duration: Duration,
    latency_samples: usize,
    restore_subs: usize,
    restore_reps: usize,
    memory_n: usize,
    /// Requests issued at once by the burst part: the large and the small burst.
    burst_n: [usize; 2],
    /// Timed starts of each launcher in the startup part.
    startup_runs: usize,
    /// The push part: counted rounds, and pushes each client reads per round.
    push_rounds: usize,
    push_slice: usize,
    /// The live part's CPU measurement, as the push part's.
    live_rounds: usize,
    live_slice: usize,
    /// Records in the live views whose memory the live part measures.
    view_sizes: Vec<usize>,
}

impl Plan {
    fn from_args(args: &[String]) -> Plan {
        let mut plan = Plan {
            quick: false,
            threads: 0,
            only: None,
            duration: Duration::from_secs(3),
            latency_samples: 20_000,
            restore_subs: 1000,
            restore_reps: 25,
            memory_n: 10_000,
            burst_n: [100_000, 10_000],
            startup_runs: 20,
            push_rounds: 40,
            push_slice: 25,
            live_rounds: 60,
            live_slice: 5,
            view_sizes: vec![1_000, 10_000],
        };
        let mut startup_runs = None;
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            match arg.as_str() {
                "--quick" => {
                    plan.quick = true;
                    plan.duration = Duration::from_millis(200);
                    plan.latency_samples = 300;
                    plan.restore_subs = 20;
                    plan.restore_reps = 1;
                    plan.memory_n = 500;
                    plan.burst_n = [5_000, 500];
                    plan.startup_runs = 3;
                    plan.push_rounds = 2;
                    plan.push_slice = 5;
                    plan.live_rounds = 2;
                    plan.live_slice = 2;
                    plan.view_sizes = vec![1_000];
                }
                "--threads" => {
                    plan.threads = it
                        .next()
                        .and_then(|n| n.parse().ok())
                        .unwrap_or_else(|| usage("--threads needs a number"));
                }
                "--startup-runs" => {
                    startup_runs = Some(
                        it.next()
                            .and_then(|n| n.parse().ok())
                            .filter(|&n: &usize| n > 0)
                            .unwrap_or_else(|| usage("--startup-runs needs a positive number")),
                    );
                }
                "--only" => {
                    let list = it.next().unwrap_or_else(|| usage("--only needs a list"));
                    plan.only = Some(list.split(',').map(str::to_owned).collect());
                }
                "--help" | "-h" => usage(""),
                other => usage(&format!("unknown argument {other:?}")),
            }
        }
        if let Some(n) = startup_runs {
            plan.startup_runs = n;
        }
        plan
    }

    fn runs(&self, part: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|only| only.iter().any(|o| o == part))
    }
}

fn usage(problem: &str) -> ! {
    if !problem.is_empty() {
        eprintln!("noex-bench: {problem}");
    }
    eprintln!(
        "usage: noex-bench [--quick] [--threads N] [--startup-runs N]\n\
         \x20      [--only throughput,latency,cpu,restore,memory,burst,push,live,startup]\n\
         \x20      (NOEX_URL=ws://… to run against a real noex-server;\n\
         \x20       NOEX_REAL_LAUNCHER=\"node …/start-server.mjs\" to time the real launcher's startup;\n\
         \x20       NOEX_BIN=…/noex to use that noex binary)"
    );
    std::process::exit(2)
}

/// The runtime the plan asks for (`threads == 0`: current-thread).
fn runtime(threads: usize) -> tokio::runtime::Runtime {
    let mut builder = if threads == 0 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    builder.enable_all().build().expect("tokio runtime")
}

/// Runs `body` on the runtime the plan asks for (`threads == 0`: current-thread).
fn block_on<T: Send + 'static>(
    threads: usize,
    body: impl Future<Output = T> + Send + 'static,
) -> T {
    let rt = runtime(threads);
    rt.block_on(async move { tokio::spawn(body).await.expect("benchmark task") })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => serve::serve(&args[1..]),
        Some("mem") => mem_child(&args[1..]),
        Some("turn") => push::turn_child(&args[1..]),
        Some("client") => push::client_child(&args[1..]),
        _ => bench(Plan::from_args(&args), &args),
    }
}

/// Names of the bucket and queries on the server under test.
#[derive(Debug, Clone)]
struct Names {
    bucket: String,
    count_query: String,
    group_query: String,
}

/// On a real server: a fresh bucket with the benchmark's records and the two queries.
async fn setup_external(url: String) -> Names {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let names = Names {
        bucket: format!("bench{stamp}"),
        count_query: format!("bench{stamp}-count"),
        group_query: format!("bench{stamp}-group"),
    };
    let client = ours::connect(&url).await;
    let store = client.store();
    store
        .define_bucket(
            &names.bucket,
            &json!({"key": "id", "schema": {
                "id": {"type": "string"}, "group": {"type": "string"},
                "n": {"type": "number"}, "text": {"type": "string"}
            }}),
        )
        .await
        .expect("define bucket");
    let bucket = store.bucket(&names.bucket);
    let inserts = (0..RECORDS).map(|i| {
        let group = if i < serve::BIG_GROUP {
            "big".to_string()
        } else {
            format!("g{}", i % 10)
        };
        let record =
            json!({"id": serve::key(i), "group": group, "n": i, "text": "lorem ipsum dolor sit amet"});
        let bucket = bucket.clone();
        async move { bucket.insert(&record).await.expect("insert") }
    });
    futures::future::join_all(inserts).await;
    store
        .define_query(
            &names.count_query,
            &json!({"bucket": names.bucket, "aggregate": {"function": "count"}}),
        )
        .await
        .expect("define count query");
    store
        .define_query(
            &names.group_query,
            &json!({"bucket": names.bucket, "filter": {"group": "{{ params.group }}"}}),
        )
        .await
        .expect("define group query");
    client.disconnect().await;
    names
}

/// One line of the result table.
struct Row {
    what: String,
    ours: String,
    raw: String,
    ratio: String,
    target: String,
}

fn row(what: impl Into<String>, ours: String, raw: String, ratio: String, target: &str) -> Row {
    Row {
        what: what.into(),
        ours,
        raw,
        ratio,
        target: target.into(),
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

fn bench(plan: Plan, args: &[String]) {
    let external = std::env::var("NOEX_URL").ok();
    // Every part but startup talks to a server.
    let needs_server = ["throughput", "cpu", "latency", "restore", "memory", "burst"]
        .iter()
        .any(|part| plan.runs(part));
    let server = needs_server.then(|| match &external {
        Some(url) => Server::External { url: url.clone() },
        None => Server::spawn(),
    });
    let url = server
        .as_ref()
        .map(|s| s.url().to_string())
        .unwrap_or_default();
    let names = match &external {
        Some(url) if needs_server => block_on(plan.threads, setup_external(url.clone())),
        _ => Names {
            bucket: BUCKET.into(),
            count_query: COUNT_QUERY.into(),
            group_query: GROUP_QUERY.into(),
        },
    };
    let mut rows = Vec::new();

    if plan.runs("throughput") || plan.runs("cpu") {
        eprintln!("noex-bench: throughput and CPU …");
        throughput(&plan, &url, &names, &mut rows);
    }
    if plan.runs("latency") {
        eprintln!("noex-bench: latency …");
        latency(&plan, &url, &names, &mut rows);
    }
    let can_inject = server.as_ref().is_some_and(Server::can_inject);
    if plan.runs("restore") {
        if can_inject {
            eprintln!("noex-bench: subscription restore …");
            restore::restore(&plan, &names, &mut rows);
        } else {
            rows.push(row(
                "subscription restore",
                "skipped".into(),
                "skipped".into(),
                "-".into(),
                "needs the test server (drops connections, 1000 subs per connection)",
            ));
        }
    }
    if plan.runs("memory") {
        if can_inject {
            eprintln!("noex-bench: memory …");
            memory(&plan, &mut rows);
        } else {
            rows.push(row(
                "memory",
                "skipped".into(),
                "skipped".into(),
                "-".into(),
                "needs the test server (stall, 10 000 subs per connection)",
            ));
        }
    }
    if plan.runs("burst") {
        if can_inject {
            eprintln!("noex-bench: burst …");
            burst(&plan, &mut rows);
        } else {
            rows.push(row(
                "peak memory, requests issued at once",
                "skipped".into(),
                "skipped".into(),
                "-".into(),
                "needs the test server (measured in child processes with their own server)",
            ));
        }
    }
    drop(server);
    for (part, what) in [
        ("push", "client CPU per push"),
        ("live", "live views: CPU per push, memory"),
    ] {
        if !plan.runs(part) {
            continue;
        }
        if external.is_some() {
            rows.push(row(
                what,
                "skipped".into(),
                "skipped".into(),
                "-".into(),
                "needs the test server (updates records on the clients' cue)",
            ));
            continue;
        }
        eprintln!("noex-bench: {what} …");
        if part == "push" {
            push::push(&plan, &mut rows);
        } else {
            push::live(&plan, &mut rows);
            view_memory::rows(&plan, &mut rows);
        }
    }
    let mut notes = Vec::new();
    if plan.runs("startup") {
        eprintln!("noex-bench: startup …");
        startup(&plan, &mut rows, &mut notes);
    }

    let command = format!("cargo run --release -p noex-bench -- {}", args.join(" "));
    println!();
    println!("command: {}", command.trim_end());
    println!(
        "server: {}; runtime: {}; mode: {}; build: {}",
        if needs_server || plan.runs("push") || plan.runs("live") {
            external
                .as_deref()
                .unwrap_or("noex-testkit in a child process")
        } else {
            "none"
        },
        if plan.threads == 0 {
            "tokio current-thread".to_string()
        } else {
            format!("tokio multi-thread, {} workers", plan.threads)
        },
        if plan.quick { "quick" } else { "full" },
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
    );
    println!();
    println!("| benchmark | noex | raw | noex vs raw | target |");
    println!("|---|---:|---:|---:|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} |",
            r.what, r.ours, r.raw, r.ratio, r.target
        );
    }
    if !notes.is_empty() {
        println!();
        for note in notes {
            println!("{note}");
        }
    }
}

/// Start-up time of `noex serve --fixture` and, with `NOEX_REAL_LAUNCHER`, of the real
/// server's launcher (see the module docs).
fn startup(plan: &Plan, rows: &mut Vec<Row>, notes: &mut Vec<String>) {
    let explicit = plan.only.is_some();
    let bin = match startup::noex_binary() {
        Ok(bin) => bin,
        Err(why) if explicit => {
            eprintln!("noex-bench: startup: {why}");
            std::process::exit(1)
        }
        Err(why) => {
            rows.push(row(
                "startup, spawn → URL line",
                "skipped".into(),
                "skipped".into(),
                "-".into(),
                &format!(
                    "no noex binary ({}); set NOEX_BIN",
                    why.lines().next().unwrap_or("")
                ),
            ));
            return;
        }
    };
    let noex = startup::Launcher::noex_serve(&bin);
    let real = startup::Launcher::real_from_env();
    let mut launchers = vec![&noex];
    launchers.extend(real.as_ref());
    let runs = plan.startup_runs;
    let samples = startup::run(&launchers, runs).unwrap_or_else(|why| {
        eprintln!("noex-bench: startup: {why}");
        std::process::exit(1)
    });
    let ours = startup::summarise(&samples[0]);
    let theirs = samples.get(1).map(|s| startup::summarise(s));
    let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1e3);
    let mut add = |what: &str, ours: Duration, theirs: Option<Duration>| {
        let (raw, ratio, target) = match theirs {
            Some(t) => (
                ms(t),
                format!("{:.3}×", ours.as_secs_f64() / t.as_secs_f64().max(1e-9)),
                format!(
                    "reported: the real launcher takes {:.1}× as long",
                    t.as_secs_f64() / ours.as_secs_f64().max(1e-9)
                ),
            ),
            None => (
                "not run".into(),
                "-".into(),
                "reported (NOEX_REAL_LAUNCHER: the real launcher)".into(),
            ),
        };
        rows.push(row(what, ms(ours), raw, ratio, &target));
    };
    add(
        &format!("startup, spawn → URL line, median of {runs} (ms)"),
        ours.p50,
        theirs.map(|t| t.p50),
    );
    add(
        &format!("startup, spawn → URL line, p90 of {runs} (ms)"),
        ours.p90,
        theirs.map(|t| t.p90),
    );
    add(
        &format!("stop, SIGTERM → exit, median of {runs} (ms)"),
        ours.stop,
        theirs.map(|t| t.stop),
    );
    notes.push(format!("startup, noex column: {}", noex.shown()));
    notes.push(match &real {
        Some(real) => format!("startup, raw column (NOEX_REAL_LAUNCHER): {}", real.shown()),
        None => "startup, raw column: not run (set NOEX_REAL_LAUNCHER to the real server's \
                 launcher, e.g. \"node /path/to/start-server.mjs\")"
            .into(),
    });
}

/// Requests/s and CPU per request, ours and raw, one connection at several depths and
/// four connections.
/// Rounds of alternating raw and ours per throughput measurement.
const ROUNDS: u32 = 6;

fn throughput(plan: &Plan, url: &str, names: &Names, rows: &mut Vec<Row>) {
    let duration = plan.duration;
    let quick = plan.quick;
    let bucket = names.bucket.clone();
    let url = url.to_string();
    let results = block_on(plan.threads, async move {
        let client = ours::connect(&url).await;
        let mut raw = Raw::connect(&url).await;
        // Warm up both.
        ours::get_loop(&client, &bucket, 10, Instant::now() + duration / 4).await;
        raw.get_loop(&bucket, 10, Instant::now() + duration / 4)
            .await;
        // Each measurement is split into rounds that alternate raw and ours, so a slow
        // stretch of a noisy machine hits both alike; counts, times and CPU are summed.
        let rounds = if quick { 1 } else { ROUNDS };
        let slice = duration / rounds;
        type M = (u64, Duration, Duration);
        let add = |m: &mut M, (n, t, c): M| {
            m.0 += n;
            m.1 += t;
            m.2 += c;
        };
        let mut results = Vec::new();
        for depth in [1usize, 10, 100, 1000] {
            eprintln!("noex-bench:   depth {depth}");
            let mut raw_m: M = (0, Duration::ZERO, Duration::ZERO);
            let mut ours_m: M = (0, Duration::ZERO, Duration::ZERO);
            for _ in 0..rounds {
                let (cpu0, t0) = (cpu_time(), Instant::now());
                let n = raw.get_loop(&bucket, depth, Instant::now() + slice).await;
                add(&mut raw_m, (n as u64, t0.elapsed(), cpu_time() - cpu0));
                let (cpu0, t0) = (cpu_time(), Instant::now());
                let n = ours::get_loop(&client, &bucket, depth, Instant::now() + slice).await;
                add(&mut ours_m, (n as u64, t0.elapsed(), cpu_time() - cpu0));
            }
            results.push((format!("1 connection, {depth} in flight"), ours_m, raw_m));
        }
        client.disconnect().await;
        raw.close().await;

        // Four connections, 100 in flight each.
        let mut clients = Vec::new();
        let mut raws = Vec::new();
        for _ in 0..4 {
            clients.push(ours::connect(&url).await);
            raws.push(Raw::connect(&url).await);
        }
        let mut raw_m: M = (0, Duration::ZERO, Duration::ZERO);
        let mut ours_m: M = (0, Duration::ZERO, Duration::ZERO);
        for _ in 0..rounds {
            let (cpu0, t0) = (cpu_time(), Instant::now());
            let until = Instant::now() + slice;
            let tasks: Vec<_> = raws
                .drain(..)
                .map(|mut raw| {
                    let bucket = bucket.clone();
                    tokio::spawn(async move {
                        let n = raw.get_loop(&bucket, 100, until).await;
                        (raw, n)
                    })
                })
                .collect();
            let mut n = 0;
            for t in tasks {
                let (raw, got) = t.await.expect("raw task");
                n += got;
                raws.push(raw);
            }
            add(&mut raw_m, (n, t0.elapsed(), cpu_time() - cpu0));
            let (cpu0, t0) = (cpu_time(), Instant::now());
            let until = Instant::now() + slice;
            let tasks: Vec<_> = clients
                .iter()
                .map(|client| {
                    let client = client.clone();
                    let bucket = bucket.clone();
                    tokio::spawn(async move { ours::get_loop(&client, &bucket, 100, until).await })
                })
                .collect();
            let mut n = 0;
            for t in tasks {
                n += t.await.expect("client task");
            }
            add(&mut ours_m, (n, t0.elapsed(), cpu_time() - cpu0));
        }
        for raw in raws {
            raw.close().await;
        }
        results.push(("4 connections, 100 in flight each".into(), ours_m, raw_m));
        for c in clients {
            c.disconnect().await;
        }
        results
    });
    let mut cpu_rows = Vec::new();
    for (what, (on, ot, ocpu), (rn, rt, rcpu)) in results {
        let ours_rate = on as f64 / ot.as_secs_f64();
        let raw_rate = rn as f64 / rt.as_secs_f64();
        let ratio = ours_rate / raw_rate;
        if plan.runs("throughput") {
            rows.push(row(
                format!("throughput, {what} (req/s)"),
                format!("{ours_rate:.0}"),
                format!("{raw_rate:.0}"),
                format!("{:.0}%", ratio * 100.0),
                &format!("≥ 90%: {}", verdict(ratio >= 0.9)),
            ));
        }
        let ours_cpu = ocpu.as_secs_f64() * 1e6 / on.max(1) as f64;
        let raw_cpu = rcpu.as_secs_f64() * 1e6 / rn.max(1) as f64;
        let cpu_ratio = ours_cpu / raw_cpu;
        cpu_rows.push(row(
            format!("client CPU per request, {what} (µs)"),
            format!("{ours_cpu:.1}"),
            format!("{raw_cpu:.1}"),
            format!("{cpu_ratio:.2}×"),
            &format!("≤ 1.5×: {}", verdict(cpu_ratio <= 1.5)),
        ));
    }
    if plan.runs("cpu") {
        rows.extend(cpu_rows);
    }
}

/// Sequential round trips, p50 and p99.
fn latency(plan: &Plan, url: &str, names: &Names, rows: &mut Vec<Row>) {
    let n = plan.latency_samples;
    let bucket = names.bucket.clone();
    let url = url.to_string();
    let (ours_l, raw_l) = block_on(plan.threads, async move {
        let client = ours::connect(&url).await;
        let mut raw = Raw::connect(&url).await;
        ours::latencies(&client, &bucket, n / 10).await;
        raw.latencies(&bucket, n / 10).await;
        // Interleave in slices so drift affects both alike.
        let (mut o, mut r) = (histogram(), histogram());
        for _ in 0..10 {
            r.add(raw.latencies(&bucket, n / 10).await)
                .expect("histograms of one kind add up");
            o.add(ours::latencies(&client, &bucket, n / 10).await)
                .expect("histograms of one kind add up");
        }
        client.disconnect().await;
        raw.close().await;
        (o, r)
    });
    let (o50, o99) = (quantile(&ours_l, 0.50), quantile(&ours_l, 0.99));
    let (r50, r99) = (quantile(&raw_l, 0.50), quantile(&raw_l, 0.99));
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let diff = us(o50) - us(r50);
    rows.push(row(
        "latency p50, sequential store.get (µs)",
        format!("{:.1}", us(o50)),
        format!("{:.1}", us(r50)),
        format!("{diff:+.1} µs"),
        &format!("≤ +15 µs: {}", verdict(diff <= 15.0)),
    ));
    rows.push(row(
        "latency p99, sequential store.get (µs)",
        format!("{:.1}", us(o99)),
        format!("{:.1}", us(r99)),
        format!("{:+.1} µs", us(o99) - us(r99)),
        "-",
    ));
}

/// Runs `noex-bench mem <who> <what> <n>` and returns the value of each `name` it prints
/// (`name value` lines), in order. A child that fails or leaves one out fails the run.
fn mem_run(who: &str, what: &str, n: usize, names: &[&str]) -> Vec<f64> {
    let exe = std::env::current_exe().expect("current exe");
    let out = std::process::Command::new(exe)
        .args(["mem", who, what, &n.to_string()])
        .output()
        .expect("memory child");
    let text = String::from_utf8_lossy(&out.stdout);
    let fail = |why: &str| -> ! {
        panic!(
            "memory child {who} {what} {n} {why}: {}; said {text:?}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    };
    if !out.status.success() {
        fail("failed");
    }
    names
        .iter()
        .map(|name| {
            text.lines()
                .find_map(|l| {
                    let (key, value) = l.split_once(' ')?;
                    (key == *name).then(|| value.trim().parse::<f64>().ok())?
                })
                .unwrap_or_else(|| fail(&format!("printed no {name}")))
        })
        .collect()
}

/// `n` split into the batches the memory child subscribes in (at most 250 each).
fn batches(n: usize) -> impl Iterator<Item = usize> {
    const BATCH: usize = 250;
    (0..n.div_ceil(BATCH)).map(move |i| BATCH.min(n - i * BATCH))
}

/// `n` with a space between thousands: `100 000`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// Memory per subscription and per pending request, each measured in a fresh process.
fn memory(plan: &Plan, rows: &mut Vec<Row>) {
    let n = plan.memory_n;
    let measure = |who: &str, what: &str| -> f64 { mem_run(who, what, n, &["bytes"])[0] };
    for (what, label) in [
        (
            "subs",
            format!("memory per live subscription, {n} subscriptions (bytes)"),
        ),
        (
            "pending",
            format!("memory per pending request, {n} in flight (bytes)"),
        ),
    ] {
        let ours = measure("ours", what) / n as f64;
        let raw = measure("raw", what) / n as f64;
        rows.push(row(
            label,
            format!("{ours:.0}"),
            format!("{raw:.0}"),
            format!("{:.2}×", ours / raw.max(1.0)),
            "reported",
        ));
    }
}

/// Peak memory while requests are issued at once, each figure measured in a fresh process
/// as the growth of its peak RSS: the large and the small burst with the client's default
/// `max_in_flight`, the raw client (no cap) as the baseline, the callers' futures alone
/// (the same futures, every one waiting for a slot), and the large burst with the cap
/// lifted. The client's own memory at the peak is the burst's peak less its callers'
/// futures: bounded when it does not grow from the small burst to the large one.
fn burst(plan: &Plan, rows: &mut Vec<Row>) {
    let cap = noex_tokio::proto::Config::new("").max_in_flight;
    let inline = std::cell::Cell::new(0.0);
    let measure = |who: &str, n: usize| -> f64 {
        let got = mem_run(who, "burst", n, &["bytes", "secs", "done", "inline"]);
        let (bytes, secs, done) = (got[0], got[1], got[2]);
        if who == "ours-waiting" {
            inline.set(got[3]);
        }
        assert_eq!(
            done as usize, n,
            "burst {who} {n}: {done} of {n} requests answered (or pending, for ours-waiting)"
        );
        eprintln!(
            "noex-bench:   {who}, {} at once: all {}, peak +{bytes:.0} bytes, {secs:.2} s",
            thousands(n),
            if who == "ours-waiting" {
                "pending at the peak"
            } else {
                "answered"
            },
        );
        bytes
    };
    let mb = |b: f64| format!("{b:.0}");
    let [big, small] = plan.burst_n;
    // (n, ours peak, raw peak, callers' futures alone)
    let mut m = Vec::new();
    for n in [big, small] {
        m.push((
            n,
            measure("ours", n),
            measure("raw", n),
            measure("ours-waiting", n),
        ));
    }
    let uncapped = measure("ours-uncapped", big);
    for &(n, ours, raw, _) in &m {
        rows.push(row(
            format!(
                "peak memory, {} requests issued at once (bytes)",
                thousands(n)
            ),
            mb(ours),
            mb(raw),
            format!("{:.2}×", ours / raw.max(1.0)),
            &format!(
                "reported: ours includes the callers' {} futures, raw has none",
                thousands(n)
            ),
        ));
    }
    for &(n, ours, raw, _) in &m {
        rows.push(row(
            format!("peak memory per request, {} at once (bytes)", thousands(n)),
            format!("{:.0}", ours / n as f64),
            format!("{:.0}", raw / n as f64),
            format!("{:.2}×", ours / raw.max(1.0)),
            "reported",
        ));
    }
    for &(n, _, _, waiting) in &m {
        rows.push(row(
            format!(
                "callers' futures alone, {} waiting (bytes per request)",
                thousands(n)
            ),
            format!("{:.0}", waiting / n as f64),
            "-".into(),
            "-".into(),
            &format!(
                "reported: the same futures, all waiting for a slot (max_in_flight 1, server \
                 stalled); {:.0} bytes of each inline",
                inline.get()
            ),
        ));
    }
    let own: Vec<(usize, f64, f64)> = m
        .iter()
        .map(|&(n, ours, raw, waiting)| (n, ours - waiting, raw))
        .collect();
    // The verdicts need both bursts past the cap (the full run: 10 000 and 100 000);
    // below it the client holds every request, like raw.
    let past_cap = small >= cap;
    let not_judged = format!(
        "not judged: {} requests do not reach max_in_flight {}",
        thousands(small),
        thousands(cap)
    );
    for (i, &(n, ours, raw)) in own.iter().enumerate() {
        let target = if i == 0 && past_cap {
            format!("ours ≤ raw: {}", verdict(ours <= raw))
        } else if i == 0 {
            not_judged.clone()
        } else {
            "reported".to_string()
        };
        rows.push(row(
            format!(
                "client's own memory at the peak, {} at once (bytes: peak − callers' futures)",
                thousands(n)
            ),
            mb(ours),
            mb(raw),
            format!("{:.2}×", ours / raw.max(1.0)),
            &target,
        ));
    }
    let added = (big - small) as f64;
    let ours_growth = (own[0].1 - own[1].1) / added;
    let raw_growth = (own[0].2 - own[1].2) / added;
    let target = if past_cap {
        format!(
            "bounded (ours ≤ 10% of raw): {}",
            verdict(ours_growth <= 0.1 * raw_growth)
        )
    } else {
        not_judged
    };
    rows.push(row(
        format!(
            "client's own memory per added request, {} → {} at once (bytes)",
            thousands(small),
            thousands(big)
        ),
        format!("{ours_growth:+.1}"),
        format!("{raw_growth:+.1}"),
        format!("{:.2}×", ours_growth / raw_growth.max(1.0)),
        &target,
    ));
    rows.push(row(
        format!(
            "peak memory, {} at once, cap lifted (max_in_flight {}) (bytes)",
            thousands(big),
            thousands(big)
        ),
        mb(uncapped),
        mb(m[0].2),
        format!("{:.2}×", uncapped / m[0].2.max(1.0)),
        &format!(
            "reported: with the default cap ({}) ours peaks at {:.0}% of this",
            thousands(cap),
            m[0].1 / uncapped.max(1.0) * 100.0
        ),
    ));
}

/// `noex-bench mem <ours|raw> <subs|pending> <n>`: prints `bytes <RSS growth>` for `n`
/// live subscriptions (count query) or `n` requests in flight (server stalled).
///
/// `noex-bench mem <ours|ours-uncapped|raw> burst <n>`: issues `n` `store.get` requests
/// at once and waits for them all; prints `bytes <peak RSS growth>` (the kernel's
/// high-water mark, reset before the burst), `secs <duration>` and `done <answered>`.
/// `ours` has the default `max_in_flight`, `ours-uncapped` has `max_in_flight` = `n`.
/// `ours-waiting` measures the callers' futures alone: the same `n` futures, every one
/// waiting for a slot (`max_in_flight` 1, server stalled), then dropped; its `done` is
/// the number pending at the peak.
fn mem_child(args: &[String]) {
    const USAGE: &str =
        "mem <ours|raw> <subs|pending> <n> | mem <ours|ours-uncapped|ours-waiting|raw> burst <n> \
         | mem live <view|vec> <n>";
    let (who, what) = match args {
        [who, what, _] => (who.clone(), what.clone()),
        _ => usage(USAGE),
    };
    let n: usize = args[2].parse().unwrap_or_else(|_| usage("mem: n"));
    if who == "live" {
        return view_memory::child(&what, n);
    }
    if what == "burst" {
        return burst_child(&who, n);
    }
    let mut server = Server::spawn();
    let url = server.url().to_string();
    let (stall_tx, stall_rx) = std::sync::mpsc::channel::<&'static str>();
    let (ack_tx, ack_rx) = std::sync::mpsc::channel::<()>();
    let ack_rx = std::sync::Mutex::new(ack_rx);
    let worker = std::thread::spawn(move || {
        block_on(0, async move {
            let command = |c: &'static str| {
                stall_tx.send(c).expect("command");
                ack_rx
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .recv()
                    .expect("ack");
            };
            match (who.as_str(), what.as_str()) {
                ("ours", "subs") => {
                    let client = ours::connect(&url).await;
                    drop(ours::subscribe_many(&client, COUNT_QUERY, None, 100).await);
                    ours::latencies(&client, BUCKET, 100).await;
                    let before = rss_bytes();
                    // In batches, as views open: the figure is what live subscriptions
                    // hold, not the high-water mark of one burst of `n` subscribes.
                    let mut subs = Vec::with_capacity(n);
                    for batch in batches(n) {
                        subs.extend(ours::subscribe_many(&client, COUNT_QUERY, None, batch).await);
                    }
                    let after = rss_bytes();
                    drop(subs);
                    client.disconnect().await;
                    after.saturating_sub(before)
                }
                ("raw", "subs") => {
                    let mut raw = Raw::connect(&url).await;
                    drop(raw.subscribe_burst(COUNT_QUERY, None, 100).await);
                    raw.latencies(BUCKET, 100).await;
                    let before = rss_bytes();
                    let mut subs = std::collections::HashMap::with_capacity(n);
                    for batch in batches(n) {
                        subs.extend(raw.subscribe_burst(COUNT_QUERY, None, batch).await);
                    }
                    let after = rss_bytes();
                    drop(subs);
                    raw.close().await;
                    after.saturating_sub(before)
                }
                ("ours", "pending") => {
                    use futures::{FutureExt, StreamExt};
                    // Every one of the `n` requests in flight, as the raw client has them.
                    let options = ours::options().max_in_flight(n);
                    let client = noex_tokio::connect(&url, options)
                        .await
                        .expect("client connects");
                    ours::latencies(&client, BUCKET, 100).await;
                    let bucket = client.store().bucket(BUCKET);
                    let before = rss_bytes();
                    command("stall");
                    let mut in_flight: futures::stream::FuturesUnordered<_> =
                        (0..n).map(|i| bucket.get(serve::key(i))).collect();
                    for _ in 0..3 {
                        assert!(in_flight.next().now_or_never().is_none());
                    }
                    // Commands are handled in order: once this answers, every request is
                    // in the core's pending table.
                    client.counters().await.expect("counters");
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    let after = rss_bytes();
                    command("resume");
                    let mut done = 0;
                    while let Some(r) = in_flight.next().await {
                        r.expect("get");
                        done += 1;
                    }
                    assert_eq!(done, n);
                    client.disconnect().await;
                    after.saturating_sub(before)
                }
                ("raw", "pending") => {
                    let mut raw = Raw::connect(&url).await;
                    raw.latencies(BUCKET, 100).await;
                    let before = rss_bytes();
                    command("stall");
                    raw.send_gets(BUCKET, n).await;
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    let after = rss_bytes();
                    assert_eq!(raw.in_flight(), n);
                    command("resume");
                    raw.drain().await;
                    raw.close().await;
                    after.saturating_sub(before)
                }
                _ => usage(USAGE),
            }
        })
    });
    while let Ok(c) = stall_rx.recv() {
        server.command(c);
        let _ = ack_tx.send(());
    }
    let bytes = worker.join().expect("memory worker");
    println!("bytes {bytes}");
}

/// `noex-bench mem <ours|ours-uncapped|ours-waiting|raw> burst <n>`: see [`mem_child`].
fn burst_child(who: &str, n: usize) {
    let mut server = Server::spawn();
    let url = server.url().to_string();
    let who = who.to_string();
    let (bytes, secs, count) = block_on(0, async move {
        let options = match who.as_str() {
            "ours" => ours::options(),
            "ours-uncapped" => ours::options().max_in_flight(n),
            "ours-waiting" => ours::options().max_in_flight(1),
            "raw" => {
                let mut raw = Raw::connect(&url).await;
                raw.latencies(BUCKET, 100).await;
                let before = start_peak();
                let t0 = Instant::now();
                let done = raw.burst(BUCKET, n).await;
                let secs = t0.elapsed().as_secs_f64();
                let peak = peak_rss_bytes();
                raw.close().await;
                println!("inline 0");
                return (peak.saturating_sub(before), secs, done);
            }
            _ => usage("mem <ours|ours-uncapped|ours-waiting|raw> burst <n>"),
        };
        let client = noex_tokio::connect(&url, options)
            .await
            .expect("client connects");
        println!("inline {}", ours::get_future_size(&client, BUCKET));
        ours::latencies(&client, BUCKET, 100).await;
        let result = if who == "ours-waiting" {
            server.command("stall");
            let before = start_peak();
            let t0 = Instant::now();
            let peak = ours::waiting_burst(&client, BUCKET, n, peak_rss_bytes).await;
            let secs = t0.elapsed().as_secs_f64();
            server.command("resume");
            (peak.saturating_sub(before), secs, n)
        } else {
            let before = start_peak();
            let t0 = Instant::now();
            let done = ours::burst(&client, BUCKET, n).await;
            let secs = t0.elapsed().as_secs_f64();
            let peak = peak_rss_bytes();
            (peak.saturating_sub(before), secs, done)
        };
        client.disconnect().await;
        drop(server);
        result
    });
    println!("bytes {bytes}");
    println!("secs {secs}");
    // For `ours-waiting`: the requests pending (all waiting but one) at the peak.
    println!("done {count}");
}
