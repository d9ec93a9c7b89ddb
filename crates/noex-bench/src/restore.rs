//! The restore part: 1 000 subscriptions restored after the server drops the connection,
//! ours against a raw client that subscribes the same way by hand.
//!
//! Three clients take turns, one repetition each: ours, the raw client, and a second raw
//! client whose ratio to the first tells how far apart two identical clients measure in
//! this run (the measurement's own spread). Each turn has a server process of its own,
//! fresh: the client subscribes, the server lets go of those subscriptions (ours: the
//! server drops the connection; raw: it closes it), and the timed restore follows. On a
//! server shared by the turns, each turn met a heap shaped by the turns before it, and
//! two identical raw clients measured up to 18% apart in one run.
//!
//! Each client runs on a thread of its own with its own runtime (so each allocates in an
//! arena of its own), keeps what it received until its clock stops, and reports its wall
//! time, its process's CPU time and the server's CPU time within the same wall time. The
//! order of the three turns rotates from round to round, so each client takes each place
//! equally often. `NOEX_BENCH_TURNS=1` prints every turn's wall time to stderr.

use std::collections::HashMap;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::measure::{cpu_time, cpu_time_of, percentile};
use crate::raw::Raw;
use crate::serve::Server;
use crate::{block_on, ours, row, runtime, verdict, Names, Plan, Row};

/// One timed restore: wall time, the client process's CPU time, and the server's CPU time
/// within the same wall time (`None` for a server not on this machine).
struct Timed {
    wall: Duration,
    client_cpu: Duration,
    server_cpu: Option<Duration>,
}

/// What one case measures for one client, turn by turn.
#[derive(Default)]
struct Samples {
    wall: Vec<Duration>,
    client_cpu: Vec<Duration>,
    server_cpu: Vec<Duration>,
}

impl Samples {
    fn push(&mut self, timed: Timed) {
        self.wall.push(timed.wall);
        self.client_cpu.push(timed.client_cpu);
        self.server_cpu.extend(timed.server_cpu);
    }
}

/// What a raw client's thread is asked to do, on the server at a URL (with its process id).
enum RawStep {
    /// Connect, subscribe, and close the connection.
    Subscribe(String),
    /// Connect and subscribe (timed); close after the clock stops.
    Restore(String, Option<u32>),
}

/// A raw client on a thread of its own.
struct RawWorker {
    go: Sender<RawStep>,
    done: Receiver<Option<Timed>>,
    thread: JoinHandle<()>,
}

/// What the case is: the query, its params, and the server.
#[derive(Clone)]
struct Case {
    query: String,
    params: Option<Value>,
    n: usize,
    threads: usize,
}

impl Case {
    /// The raw client's whole burst of subscribes, every answer received.
    async fn burst(&self, raw: &mut Raw) -> HashMap<String, Value> {
        let subs = raw
            .subscribe_burst(&self.query, self.params.clone(), self.n)
            .await;
        assert_eq!(subs.len(), self.n);
        subs
    }
}

/// CPU time used between two readings, when both were taken.
fn used(from: Option<Duration>, to: Option<Duration>) -> Option<Duration> {
    Some(to? - from?)
}

impl RawWorker {
    fn spawn(name: &str, case: Case) -> RawWorker {
        let (go, go_rx) = channel::<RawStep>();
        let (done_tx, done) = channel::<Option<Timed>>();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let rt = runtime(case.threads);
                while let Ok(step) = go_rx.recv() {
                    let case = case.clone();
                    let timed = rt.block_on(async move {
                        tokio::spawn(async move {
                            let (url, server_pid) = match step {
                                RawStep::Subscribe(url) => {
                                    let mut raw = Raw::connect(&url).await;
                                    drop(case.burst(&mut raw).await);
                                    raw.close().await;
                                    return None;
                                }
                                RawStep::Restore(url, server_pid) => (url, server_pid),
                            };
                            let mut raw = Raw::connect(&url).await;
                            let s0 = server_pid.map(cpu_time_of);
                            let c0 = cpu_time();
                            let t0 = Instant::now();
                            let subs = case.burst(&mut raw).await;
                            let timed = Timed {
                                wall: t0.elapsed(),
                                client_cpu: cpu_time() - c0,
                                server_cpu: used(s0, server_pid.map(cpu_time_of)),
                            };
                            drop(subs);
                            raw.close().await;
                            Some(timed)
                        })
                        .await
                        .expect("raw restore")
                    });
                    done_tx.send(timed).expect("report a turn");
                }
            })
            .expect("a thread for a raw client");
        RawWorker { go, done, thread }
    }

    /// One turn on a fresh server: subscribes, closes, waits until the server has let go
    /// of the subscriptions, then connects and subscribes again, timed.
    fn turn(&self) -> Timed {
        let mut server = Server::spawn();
        let url = server.url().to_string();
        self.go
            .send(RawStep::Subscribe(url.clone()))
            .expect("the raw client is running");
        self.done.recv().expect("the raw client subscribes");
        server.command("settle");
        self.go
            .send(RawStep::Restore(url, server.pid()))
            .expect("the raw client is running");
        self.done
            .recv()
            .expect("the raw client reports")
            .expect("a timed restore")
    }

    fn finish(self) {
        drop(self.go);
        self.thread.join().expect("a raw client's thread");
    }
}

/// What the thread running our client tells the benchmark.
enum OursReport {
    /// Drop the connection now (the restore that follows is being timed).
    Drop,
    /// Restored: from the `welcome` to every subscription's fresh data.
    Done(Timed),
}

/// Our client on a thread of its own.
struct OursWorker {
    go: tokio::sync::mpsc::UnboundedSender<(String, Option<u32>)>,
    report: Receiver<OursReport>,
    thread: JoinHandle<()>,
}

impl OursWorker {
    fn spawn(case: Case) -> OursWorker {
        let (go, mut go_rx) = tokio::sync::mpsc::unbounded_channel::<(String, Option<u32>)>();
        let (report_tx, report) = channel::<OursReport>();
        let thread = std::thread::Builder::new()
            .name("ours-restore".into())
            .spawn(move || {
                block_on(case.threads, async move {
                    while let Some((url, server_pid)) = go_rx.recv().await {
                        let client = ours::connect(&url).await;
                        let mut subs =
                            ours::subscribe_many(&client, &case.query, case.params.clone(), case.n)
                                .await;
                        let (clock, guard) = ours::welcome_clock(&client, server_pid);
                        let c0 = cpu_time();
                        report_tx.send(OursReport::Drop).expect("ask for a drop");
                        let values = ours::read_one_each(&mut subs).await;
                        let t1 = Instant::now();
                        let s1 = server_pid.map(cpu_time_of);
                        let cpu = cpu_time() - c0;
                        drop(values);
                        let (t0, s0) = clock
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .expect("a welcome before the restore");
                        let timed = Timed {
                            wall: t1 - t0,
                            client_cpu: cpu,
                            server_cpu: used(s0, s1),
                        };
                        drop((subs, guard));
                        client.disconnect().await;
                        report_tx
                            .send(OursReport::Done(timed))
                            .expect("report a restore");
                    }
                })
            })
            .expect("a thread for our client");
        OursWorker { go, report, thread }
    }

    /// One turn on a fresh server: subscribes; the server drops the connection and lets
    /// go of its subscriptions before it welcomes the new one; the client restores them
    /// all, timed.
    fn turn(&self) -> Timed {
        let mut server = Server::spawn();
        self.go
            .send((server.url().to_string(), server.pid()))
            .expect("our client is running");
        loop {
            match self.report.recv().expect("our client reports") {
                OursReport::Drop => {
                    for command in ["stall", "drop", "settle", "resume"] {
                        server.command(command);
                    }
                }
                OursReport::Done(timed) => return timed,
            }
        }
    }

    fn finish(self) {
        drop(self.go);
        self.thread.join().expect("our client's thread");
    }
}

/// The restore part: for a count query and a 100-record query, time from a new
/// connection's `welcome` to every subscription restored with fresh data, ours against
/// raw, with each side's CPU time and the server's, and the spread of two raw clients.
pub(crate) fn restore(plan: &Plan, names: &Names, rows: &mut Vec<Row>) {
    let n = plan.restore_subs;
    let reps = plan.restore_reps;
    let cases = [
        ("count query", names.count_query.clone(), None::<Value>, 1.3),
        (
            "100-record query",
            names.group_query.clone(),
            Some(json!({"group": "big"})),
            1.05,
        ),
    ];
    for (label, query, params, target) in cases {
        let case = Case {
            query,
            params,
            n,
            threads: plan.threads,
        };
        let ours = OursWorker::spawn(case.clone());
        let raw = RawWorker::spawn("raw-restore", case.clone());
        let raw2 = RawWorker::spawn("raw2-restore", case);
        let (mut o, mut r, mut r2) = (Samples::default(), Samples::default(), Samples::default());
        // The first round warms up and is not counted. The order turns with each round, so
        // that each client takes each place in the round equally often.
        for round in 0..=reps {
            let mut timed = [None, None, None];
            for k in 0..3 {
                let who = (round + k) % 3;
                timed[who] = Some(match who {
                    0 => ours.turn(),
                    1 => raw.turn(),
                    _ => raw2.turn(),
                });
            }
            if round > 0 {
                let [t_ours, t_raw, t_raw2] = timed.map(|t| t.expect("every client took its turn"));
                o.push(t_ours);
                r.push(t_raw);
                r2.push(t_raw2);
            }
        }
        if std::env::var_os("NOEX_BENCH_TURNS").is_some() {
            for (who, samples) in [("ours", &o), ("raw", &r), ("raw2", &r2)] {
                let turns: Vec<String> = samples.wall.iter().map(|&d| ms(d)).collect();
                eprintln!("restore, {label}, {who} (ms): {}", turns.join(" "));
            }
        }
        ours.finish();
        raw.finish();
        raw2.finish();
        let mut push = |what: &str, a: &mut [Duration], b: &mut [Duration], target: Option<f64>| {
            let Some((a, b, ratio)) = medians(a, b) else {
                return;
            };
            let target = match target {
                Some(t) => format!("≤ {t}×: {}", verdict(ratio <= t)),
                None => "-".to_string(),
            };
            rows.push(row(
                format!("{what}, {label} (ms, median of {reps})"),
                ms(a),
                ms(b),
                format!("{ratio:.2}×"),
                &target,
            ));
        };
        push(
            &format!("restore {n} subscriptions"),
            &mut o.wall,
            &mut r.wall,
            Some(target),
        );
        push(
            "client CPU per restore",
            &mut o.client_cpu,
            &mut r.client_cpu,
            None,
        );
        push(
            "server CPU per restore",
            &mut o.server_cpu,
            &mut r.server_cpu,
            None,
        );
        push(
            "restore by a second raw client (the measurement's own spread)",
            &mut r2.wall,
            &mut r.wall,
            None,
        );
    }
}

/// The medians of two samples taken turn by turn, and their ratio (`None` when one is
/// missing).
fn medians(a: &mut [Duration], b: &mut [Duration]) -> Option<(Duration, Duration, f64)> {
    if a.is_empty() || a.len() != b.len() {
        return None;
    }
    let (a, b) = (percentile(a, 0.5), percentile(b, 0.5));
    Some((a, b, a.as_secs_f64() / b.as_secs_f64()))
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}
