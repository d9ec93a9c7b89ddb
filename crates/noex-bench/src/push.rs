//! The push and live parts: the client's CPU time per `push` of a store query's result,
//! ours against the raw client reading the same frames into the same type, with a second
//! raw client for the run's own spread.
//!
//! - `push`: a subscription to a 100-record query, read by ours as
//!   `store().subscribe::<Vec<Record<Item>>>`; the raw client reads each frame
//!   (`{"type":"push",…,"data":[…]}`) with serde_json into a struct whose `data` is a
//!   `Vec<Record<Item>>`, straight from the WebSocket message's text (reading the socket
//!   16 KiB at a time, as noex-client's connector does).
//! - `live`: a 1 000-record query read by ours as `store().live::<Item>` and as
//!   `store().subscribe::<Vec<Record<Item>>>`, and by the raw client as above.
//!
//! Every client is a process of its own (`noex-bench client …`: a fresh allocator and
//! nothing else in it) with a copy of the records of its own (a bucket each on one test
//! server, byte for byte the same records, [`copy_bucket`]), subscribed for the whole
//! part. Every push follows one update of one record of the result (the server child's
//! `touch`, made by a client in the server's process), so each push carries the whole
//! result with one record changed. This process asks for the update, the client reads
//! the push and says so (one short line on its stdout), and only then is the next update
//! asked for: so every push is read, by every client (ours keeps only the latest unread
//! result of a store query: a client that fell behind would read fewer than it was
//! sent).
//!
//! The clients take turns in rounds: in each round each client reads a slice of pushes
//! while the others wait, the order rotating from round to round; a round of warm-up
//! pushes comes first. Turns of a few milliseconds, interleaved this finely, meet the
//! same load on a shared machine. A client's CPU time is its process's (every thread,
//! from `/proc/PID/task`), read between rounds; the rows give the median over the rounds
//! of each client's CPU time per push, and the ratio of the medians.
//! `NOEX_BENCH_TURNS=1` prints every round's figure and each client's page faults per
//! push. (With the clients as threads of one process instead, whether glibc's allocator
//! handed memory back to the kernel after every push, and took page faults for it on the
//! next, depended on where the other threads' allocations happened to lie; in a process
//! of its own each client meets the allocator as it would alone.)

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use futures::StreamExt;
use noex_tokio::{Client, LiveQuery, Record, Subscription};
use serde::Deserialize;

use crate::measure::{cpu_time_of, page_faults_of, percentile};
use crate::raw::Raw;
use crate::serve::{copy_bucket, copy_query, Server, Trigger};
use crate::{block_on, ours, row, verdict, Plan, Row};

/// What the raw client reads from the socket at most at a time: what noex-client's
/// connector reads (its `READ_BUFFER`), so that both sides zero-fill and read alike and
/// the rows compare what each does with a push once it has arrived (with tungstenite's
/// default, 128 KiB, zero-filling alone cost the raw client about a fifth of its
/// instructions per 100-record push).
const READ_BUFFER: usize = 16 * 1024;

/// The benchmark bucket's records as the application's type.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Item {
    /// The key (`k0` …).
    pub(crate) id: String,
    /// `big` or `g0` … `g9`.
    pub(crate) group: String,
    /// The record's number.
    pub(crate) n: u64,
    /// A short text.
    pub(crate) text: String,
}

/// How a client reads the pushes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reader {
    /// Ours: `store().subscribe::<Vec<Record<Item>>>`.
    Typed,
    /// Ours: `store().live::<Item>`.
    Live,
    /// The raw client: serde_json into `Vec<Record<Item>>`.
    Raw,
}

impl Reader {
    fn name(self) -> &'static str {
        match self {
            Reader::Typed => "typed",
            Reader::Live => "live",
            Reader::Raw => "raw",
        }
    }

    fn parse(name: &str) -> Option<Reader> {
        [Reader::Typed, Reader::Live, Reader::Raw]
            .into_iter()
            .find(|r| r.name() == name)
    }
}

/// A connected client, subscribed to its copy of the records (ours: the client kept
/// alive with its subscription or view).
#[allow(dead_code)] // The clients are held, not read.
enum Reading {
    Typed(Subscription<Vec<Record<Item>>>, Client),
    Live(Box<LiveQuery<Item>>, Client),
    Raw(Box<Raw>, String),
}

impl Reading {
    /// Connects, subscribes to `query` and reads the initial result of `records` records.
    async fn open(reader: Reader, url: &str, query: &str, records: usize) -> Reading {
        match reader {
            Reader::Typed => {
                let client = ours::connect(url).await;
                let mut sub = client
                    .store()
                    .subscribe::<Vec<Record<Item>>>(query)
                    .await
                    .expect("subscribe");
                let first = sub.next().await.expect("a result").expect("records");
                assert_eq!(first.len(), records);
                Reading::Typed(sub, client)
            }
            Reader::Live => {
                let client = ours::connect(url).await;
                let mut live = client
                    .store()
                    .live::<Item>(query)
                    .await
                    .expect("live query");
                let first = live.next().await.expect("a result").expect("records");
                assert_eq!(first.added.len(), records);
                Reading::Live(Box::new(live), client)
            }
            Reader::Raw => {
                let mut raw = Raw::connect_reading(url, READ_BUFFER).await;
                let subs = raw.subscribe_burst(query, None, 1).await;
                let (id, first) = subs.into_iter().next().expect("a subscription");
                assert_eq!(first.as_array().map(Vec::len), Some(records));
                Reading::Raw(Box::new(raw), id)
            }
        }
    }

    /// Reads the next push; for a live view, returns the number of the record it says
    /// changed.
    async fn next(&mut self, records: usize) -> Option<u64> {
        match self {
            Reading::Typed(sub, _) => {
                let result = sub.next().await.expect("a push").expect("records");
                assert_eq!(result.len(), records);
                None
            }
            Reading::Live(live, _) => {
                let changes = live.next().await.expect("a push").expect("changes");
                // One push, one record changed (the one updated): the pushes are read one
                // by one.
                assert_eq!(changes.updated.len(), 1, "{changes:?}");
                assert_eq!(live.view().len(), records);
                Some(changes.updated[0].data.n)
            }
            Reading::Raw(raw, id) => {
                let result: Vec<Record<Item>> = raw.next_push(id).await;
                assert_eq!(result.len(), records);
                None
            }
        }
    }
}

/// `noex-bench client <typed|live|raw> <query> <records> <threads> <url>`: a client
/// that subscribes to `query` (`records` records) on a runtime of its own (`threads` 0:
/// current-thread), prints `ready`, then reads pushes until its stdin ends, printing
/// `read` after each (`read N` for a live view: N the `n` of the record it says changed).
pub(crate) fn client_child(args: &[String]) {
    const USAGE: &str = "client <typed|live|raw> <query> <records> <threads> <url>";
    let [reader, query, records, threads, url] = args else {
        crate::usage(USAGE)
    };
    let reader = Reader::parse(reader).unwrap_or_else(|| crate::usage(USAGE));
    let number = |n: &String| -> usize { n.parse().unwrap_or_else(|_| crate::usage(USAGE)) };
    let (records, threads) = (number(records), number(threads));
    let (query, url) = (query.clone(), url.clone());
    // The end of stdin ends the process.
    std::thread::spawn(|| {
        let mut line = String::new();
        while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {
            line.clear();
        }
        std::process::exit(0)
    });
    block_on(threads, async move {
        let mut reading = Reading::open(reader, &url, &query, records).await;
        let mut out = std::io::stdout();
        writeln!(out, "ready").expect("stdout");
        out.flush().expect("stdout");
        loop {
            let read = match reading.next(records).await {
                Some(n) => format!("read {n}\n"),
                None => "read\n".to_string(),
            };
            out.write_all(read.as_bytes()).expect("stdout");
            out.flush().expect("stdout");
        }
    })
}

/// A client process (`noex-bench client …`), reading its copy of the records.
struct ClientProc {
    child: Child,
    stdout: BufReader<ChildStdout>,
    reader: Reader,
    bucket: String,
    records: usize,
    line: String,
}

impl ClientProc {
    /// Starts client `copy` and waits until it has read its initial result.
    fn spawn(copy: usize, reader: Reader, server: &Server, records: usize, threads: usize) -> Self {
        let exe = std::env::current_exe().expect("current exe");
        let mut child = Command::new(exe)
            .args([
                "client",
                reader.name(),
                &copy_query(copy),
                &records.to_string(),
                &threads.to_string(),
                server.url(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn a client process");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut client = ClientProc {
            child,
            stdout,
            reader,
            bucket: copy_bucket(copy),
            records,
            line: String::new(),
        };
        client.expect_line("ready");
        client
    }

    fn expect_line(&mut self, want: &str) {
        self.line.clear();
        self.stdout
            .read_line(&mut self.line)
            .expect("a client's line");
        assert_eq!(
            self.line.trim_end(),
            want,
            "the client said {:?}",
            self.line
        );
    }

    /// Has the client read `count` pushes, the first after an update of record `from`,
    /// one after the other.
    fn pushes(&mut self, trigger: &mut Trigger, from: usize, count: usize) {
        for i in from..from + count {
            let k = i % self.records;
            trigger.touch(&self.bucket, &format!("k{k}"), k as u64);
            match self.reader {
                Reader::Live => self.expect_line(&format!("read {k}")),
                _ => self.expect_line("read"),
            }
        }
    }

    /// Its CPU time so far (every thread).
    fn cpu(&self) -> Duration {
        cpu_time_of(self.child.id())
    }

    /// Its page faults so far.
    fn faults(&self) -> u64 {
        page_faults_of(self.child.id())
    }

    fn finish(mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// What a part measures.
struct Case {
    /// Records in each result.
    records: usize,
    /// Pushes each client reads per round.
    slice: usize,
    /// Counted rounds, after one of warm-up.
    rounds: usize,
    threads: usize,
}

/// Runs `readers` (each on a copy of the records) in rotating rounds; returns each one's
/// CPU time per push, round by round.
fn measure(readers: &[(&str, Reader)], case: &Case) -> Vec<Vec<Duration>> {
    let copies = readers.len().to_string();
    let records = case.records.to_string();
    let server = Server::spawn_with(&["--copies", &copies, "--records", &records]);
    let mut trigger = server.trigger().expect("the test server");
    let mut clients: Vec<ClientProc> = readers
        .iter()
        .enumerate()
        .map(|(copy, &(_, reader))| {
            ClientProc::spawn(copy, reader, &server, case.records, case.threads)
        })
        .collect();
    let n = clients.len();
    let mut from = 0;
    let mut per_push = vec![Vec::with_capacity(case.rounds); n];
    let (mut cpu, mut faults) = (vec![Duration::ZERO; n], vec![0; n]);
    let mut faults_counted = vec![0; n];
    for round in 0..=case.rounds {
        for k in 0..n {
            clients[(round + k) % n].pushes(&mut trigger, from, case.slice);
        }
        from += case.slice;
        for (w, client) in clients.iter().enumerate() {
            let (now, now_faults) = (client.cpu(), client.faults());
            // Round 0 warms up.
            if round > 0 {
                per_push[w].push(now.saturating_sub(cpu[w]) / case.slice as u32);
                faults_counted[w] += now_faults.saturating_sub(faults[w]);
            }
            (cpu[w], faults[w]) = (now, now_faults);
        }
    }
    for client in clients {
        client.finish();
    }
    drop(server);
    if std::env::var_os("NOEX_BENCH_TURNS").is_some() {
        let pushes = (case.rounds * case.slice).max(1) as f64;
        for (((name, _), samples), faults) in readers.iter().zip(&per_push).zip(&faults_counted) {
            let rounds: Vec<String> = samples.iter().map(|d| us(*d)).collect();
            eprintln!(
                "{name}, {} records, CPU per push by round (µs): {}; page faults per push: {:.1}",
                case.records,
                rounds.join(" "),
                *faults as f64 / pushes
            );
        }
    }
    per_push
}

fn median(samples: &mut [Duration]) -> Duration {
    percentile(samples, 0.5)
}

fn us(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-12)
}

/// `noex-bench turn <typed|live|raw> <records> <pushes>`: one client process alone on a
/// server of its own reads 5 pushes, then `pushes` more; prints `cpu_per_push_us <µs>`
/// and `page_faults_per_push <n>` (the client process's, over the last `pushes`). For
/// profilers: under `valgrind --tool=callgrind --trace-children=yes
/// --trace-children-skip-by-arg=serve`, the client process's instructions at `pushes` =
/// N less those at 0, over N, are its instructions per push.
pub(crate) fn turn_child(args: &[String]) {
    const USAGE: &str = "turn <typed|live|raw> <records> <pushes>";
    let [reader, records, pushes] = args else {
        crate::usage(USAGE)
    };
    let number = |n: &String| -> usize { n.parse().unwrap_or_else(|_| crate::usage(USAGE)) };
    let (records, pushes) = (number(records), number(pushes));
    let reader = Reader::parse(reader).unwrap_or_else(|| crate::usage(USAGE));
    let server = Server::spawn_with(&["--copies", "1", "--records", &records.to_string()]);
    let mut trigger = server.trigger().expect("the test server");
    let mut client = ClientProc::spawn(0, reader, &server, records, 0);
    client.pushes(&mut trigger, 0, 5);
    let (cpu, faults) = (client.cpu(), client.faults());
    client.pushes(&mut trigger, 5, pushes);
    let cpu = client.cpu().saturating_sub(cpu);
    let faults = client.faults().saturating_sub(faults);
    client.finish();
    drop(server);
    let per = |x: f64| x / pushes.max(1) as f64;
    println!("cpu_per_push_us {:.1}", per(cpu.as_secs_f64() * 1e6));
    println!("page_faults_per_push {:.1}", per(faults as f64));
}

/// The `push` part: CPU per push of a 100-record result read into `Vec<Record<Item>>`.
pub(crate) fn push(plan: &Plan, rows: &mut Vec<Row>) {
    let case = Case {
        records: 100,
        slice: plan.push_slice,
        rounds: plan.push_rounds,
        threads: plan.threads,
    };
    let readers = [
        ("ours", Reader::Typed),
        ("raw", Reader::Raw),
        ("raw2", Reader::Raw),
    ];
    let mut m = measure(&readers, &case);
    let (ours, raw, raw2) = (median(&mut m[0]), median(&mut m[1]), median(&mut m[2]));
    let label = format!(
        "µs, median of {} rounds of {} pushes each",
        case.rounds, case.slice
    );
    let r = ratio(ours, raw);
    rows.push(row(
        format!("client CPU per push, 100-record result into Vec<Record<T>> ({label})"),
        us(ours),
        us(raw),
        format!("{r:.2}×"),
        &format!("≤ 1.05×: {}", verdict(r <= 1.05)),
    ));
    rows.push(row(
        format!("client CPU per push, 100 records, a second raw client (the run's own spread) ({label})"),
        us(raw2),
        us(raw),
        format!("{:.2}×", ratio(raw2, raw)),
        "reported",
    ));
}

/// The `live` part's CPU rows: a 1 000-record live view with one record changed per
/// push, against reading each push into `Vec<Record<Item>>` (raw, and ours).
pub(crate) fn live(plan: &Plan, rows: &mut Vec<Row>) {
    let case = Case {
        records: 1000,
        slice: plan.live_slice,
        rounds: plan.live_rounds,
        threads: plan.threads,
    };
    let readers = [
        ("ours-live", Reader::Live),
        ("ours-typed", Reader::Typed),
        ("raw", Reader::Raw),
        ("raw2", Reader::Raw),
    ];
    let mut m = measure(&readers, &case);
    let [live, typed, raw, raw2] = [0, 1, 2, 3].map(|i| median(&mut m[i]));
    let label = format!(
        "µs, median of {} rounds of {} pushes each",
        case.rounds, case.slice
    );
    let r = ratio(live, raw);
    rows.push(row(
        format!("client CPU per push, live view of 1 000 records, 1 changed ({label})"),
        us(live),
        us(raw),
        format!("{r:.2}×"),
        &format!("< 1.0× (raw into Vec<Record<T>>): {}", verdict(r < 1.0)),
    ));
    let r = ratio(live, typed);
    rows.push(row(
        format!(
            "client CPU per push, live view (noex column) vs ours \
             subscribe::<Vec<Record<T>>> (raw column), 1 000 records ({label})"
        ),
        us(live),
        us(typed),
        format!("{r:.2}×"),
        &format!("< 1.0×: {}", verdict(r < 1.0)),
    ));
    rows.push(row(
        format!("client CPU per push, 1 000 records into Vec<Record<T>> ({label})"),
        us(typed),
        us(raw),
        format!("{:.2}×", ratio(typed, raw)),
        "reported",
    ));
    rows.push(row(
        format!(
            "client CPU per push, 1 000 records, a second raw client (the run's own spread) \
             ({label})"
        ),
        us(raw2),
        us(raw),
        format!("{:.2}×", ratio(raw2, raw)),
        "reported",
    ));
}
