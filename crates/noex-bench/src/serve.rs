//! The server side: the embedded test server in a child process (so the benchmark process
//! measures only the client), controlled over stdin/stdout.

use noex_testkit::{BucketDef, QueryDef, TestServer};
use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The bucket every benchmark reads.
pub(crate) const BUCKET: &str = "bench";
/// Records in it; keys are `k0` … `k999`.
pub(crate) const RECORDS: usize = 1000;
/// Records in the group the large query returns.
pub(crate) const BIG_GROUP: usize = 100;
/// A small bucket (10 records) for the count query.
pub(crate) const SMALL_BUCKET: &str = "bench-small";
/// A count query over the small bucket (small answers, cheap for the server).
pub(crate) const COUNT_QUERY: &str = "bench-count";
/// Records of one group (parameter `group`; `big` has 100 records).
pub(crate) const GROUP_QUERY: &str = "bench-group";

/// Copy `c` of the records `serve --copies C --records N` asks for (none without it): a
/// bucket with the same fields as [`BUCKET`] and `N` records, keys `k0` … `k{N-1}`, the
/// same in every copy.
pub(crate) fn copy_bucket(c: usize) -> String {
    format!("copy-{c}")
}

/// Every record of [`copy_bucket`] `c`, in insertion order.
pub(crate) fn copy_query(c: usize) -> String {
    format!("copy-{c}-all")
}

/// The record key for index `i`.
pub(crate) fn key(i: usize) -> String {
    format!("k{}", i % RECORDS)
}

/// A benchmark record: `{"id": "k{i}", "group": …, "n": i, "text": "lorem ipsum dolor sit
/// amet"}`, in group `big` for the first [`BIG_GROUP`], in `g{i % 10}` after.
fn record(i: usize) -> serde_json::Value {
    let group = if i < BIG_GROUP {
        "big".to_string()
    } else {
        format!("g{}", i % 10)
    };
    json!({"id": format!("k{i}"), "group": group, "n": i, "text": "lorem ipsum dolor sit amet"})
}

/// `noex-bench serve [--copies C --records N]`: runs the test server until stdin ends. Prints
/// `ready <url>`, then answers each command line (`drop`, `stall`, `resume`,
/// `settle [n]`: wait until closed connections have let go of their subscriptions and at
/// most `n`, default 0, are held) with `ok`, except `touch <bucket> <key> <n>`, which it
/// does not answer: it sets the record's `n` to `n` through a client connection of its
/// own (made at the first `touch`), as an application's update, so that every
/// subscription to a query with that record gets a push. `--copies C --records N` adds
/// `C` buckets ([`copy_bucket`]) of `N` records each, with a query of all of each
/// ([`copy_query`]).
pub(crate) fn serve(args: &[String]) {
    let number = |n: &String| -> usize {
        n.parse()
            .unwrap_or_else(|_| panic!("serve: {n:?} is not a number"))
    };
    let (copies, records) = match args {
        [] => (0, 0),
        [c, copies, r, records] if c == "--copies" && r == "--records" => {
            (number(copies), number(records))
        }
        other => panic!("serve [--copies C --records N], not {other:?}"),
    };
    let fields = |def: BucketDef| {
        def.field("id", json!({"type": "string"}))
            .field("group", json!({"type": "string"}))
            .field("n", json!({"type": "number"}))
            .field("text", json!({"type": "string"}))
    };
    let mut builder = TestServer::builder()
        .bucket(fields(BucketDef::new(BUCKET)))
        .bucket(BucketDef::new(SMALL_BUCKET).field("n", json!({"type": "number"})))
        .query(COUNT_QUERY, QueryDef::count(SMALL_BUCKET))
        .query(GROUP_QUERY, QueryDef::where_param(BUCKET, "group"))
        .max_subscriptions_per_connection(100_000)
        .max_total_subscriptions(1_000_000);
    for c in 0..copies {
        builder = builder
            .bucket(fields(BucketDef::new(copy_bucket(c))))
            .query(copy_query(c), QueryDef::all(copy_bucket(c)));
    }
    let server = builder.start().expect("test server starts");
    for i in 0..RECORDS {
        server.insert(BUCKET, record(i)).expect("insert");
    }
    for c in 0..copies {
        for i in 0..records {
            server.insert(&copy_bucket(c), record(i)).expect("insert");
        }
    }
    for n in 0..10 {
        server
            .insert(SMALL_BUCKET, json!({"n": n}))
            .expect("insert");
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "ready {}", server.url());
    let _ = out.flush();
    let mut updater = None;
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        match line.trim() {
            touch if touch.starts_with("touch ") => {
                let updater = updater.get_or_insert_with(|| Updater::start(server.url()));
                let mut words = touch.split_whitespace().skip(1);
                match (
                    words.next(),
                    words.next(),
                    words.next().map(str::parse::<u64>),
                ) {
                    (Some(bucket), Some(key), Some(Ok(n))) => updater.touch(bucket, key, n),
                    _ => panic!("touch <bucket> <key> <n>, not {touch:?}"),
                }
                continue;
            }
            "drop" => server.drop_connections(),
            settle if settle == "settle" || settle.starts_with("settle ") => {
                // Until closed connections are gone with their subscriptions (the server
                // frees them when it unregisters a connection) and at most the number
                // given (default 0) are left, at most 10 s.
                let arg = settle["settle".len()..].trim();
                let Ok(left) = (if arg.is_empty() {
                    Ok(0)
                } else {
                    arg.parse::<usize>()
                }) else {
                    let _ = writeln!(out, "settle takes a number of subscriptions");
                    let _ = out.flush();
                    continue;
                };
                let until = Instant::now() + Duration::from_secs(10);
                while server.subscription_count() > left && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(1));
                }
                if server.subscription_count() > left {
                    let _ = writeln!(out, "subscriptions still held after 10 s");
                    let _ = out.flush();
                    continue;
                }
            }
            "stall" => server.stall(),
            "resume" => server.resume(),
            "quit" => break,
            other => {
                let _ = writeln!(out, "unknown command {other:?}");
                let _ = out.flush();
                continue;
            }
        }
        let _ = writeln!(out, "ok");
        let _ = out.flush();
    }
    drop(updater);
    server.stop();
}

/// The server child's own client for `touch`: updates one record at a time, in order.
struct Updater {
    touches: Option<tokio::sync::mpsc::UnboundedSender<(String, String, u64)>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Updater {
    fn start(url: String) -> Updater {
        let (touches, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, String, u64)>();
        let thread = std::thread::spawn(move || {
            crate::block_on(0, async move {
                // The updater is a plain client of the server it sits beside.
                let client = noex_tokio::connect(&url, noex_tokio::ClientOptions::new())
                    .await
                    .expect("the updater connects");
                while let Some((bucket, key, n)) = rx.recv().await {
                    client
                        .store()
                        .bucket(&bucket)
                        .update(&key, json!({ "n": n }))
                        .await
                        .unwrap_or_else(|e| panic!("touch {bucket} {key}: {e}"));
                }
                client.disconnect().await;
            })
        });
        Updater {
            touches: Some(touches),
            thread: Some(thread),
        }
    }

    fn touch(&self, bucket: &str, key: &str, n: u64) {
        if let Some(touches) = &self.touches {
            let _ = touches.send((bucket.to_owned(), key.to_owned(), n));
        }
    }
}

impl Drop for Updater {
    fn drop(&mut self) {
        drop(self.touches.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The server a benchmark runs against: a child process with the test server, or a real
/// noex-server (no fault injection).
pub(crate) enum Server {
    /// `noex-bench serve` in a child process.
    Child {
        /// The child.
        child: Child,
        /// Its commands (shared with the [`Trigger`]s).
        stdin: Arc<Mutex<ChildStdin>>,
        /// Its answers.
        stdout: BufReader<ChildStdout>,
        /// Its URL.
        url: String,
    },
    /// A real server from `NOEX_URL`.
    External {
        /// Its URL.
        url: String,
    },
}

impl Server {
    /// Starts the child server.
    pub(crate) fn spawn() -> Server {
        Server::spawn_with(&[])
    }

    /// Starts the child server with `noex-bench serve` arguments (`--copies C --records N`).
    pub(crate) fn spawn_with(args: &[&str]) -> Server {
        let exe = std::env::current_exe().expect("current exe");
        let mut child = Command::new(exe)
            .arg("serve")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the server process");
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("server says ready");
        let url = line
            .trim()
            .strip_prefix("ready ")
            .unwrap_or_else(|| panic!("unexpected server output {line:?}"))
            .to_string();
        Server::Child {
            child,
            stdin: Arc::new(Mutex::new(stdin)),
            stdout,
            url,
        }
    }

    /// A handle that asks the child server for updates (`touch`) from any thread;
    /// `None` for an external server.
    pub(crate) fn trigger(&self) -> Option<Trigger> {
        match self {
            Server::Child { stdin, .. } => Some(Trigger {
                stdin: stdin.clone(),
                line: Vec::new(),
            }),
            Server::External { .. } => None,
        }
    }

    /// The URL clients connect to.
    pub(crate) fn url(&self) -> &str {
        match self {
            Server::Child { url, .. } | Server::External { url } => url,
        }
    }

    /// Whether faults can be injected (only into the child server).
    pub(crate) fn can_inject(&self) -> bool {
        matches!(self, Server::Child { .. })
    }

    /// The child server's process id (`None` for an external server).
    pub(crate) fn pid(&self) -> Option<u32> {
        match self {
            Server::Child { child, .. } => Some(child.id()),
            Server::External { .. } => None,
        }
    }

    /// Sends a command to the child and waits for its `ok`.
    pub(crate) fn command(&mut self, command: &str) {
        if let Server::Child { stdin, stdout, .. } = self {
            let mut stdin = stdin.lock().unwrap_or_else(|e| e.into_inner());
            writeln!(stdin, "{command}").expect("write command");
            stdin.flush().expect("flush command");
            drop(stdin);
            let mut line = String::new();
            stdout.read_line(&mut line).expect("read answer");
            assert_eq!(line.trim(), "ok", "server answered {line:?} to {command}");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Server::Child { child, stdin, .. } = self {
            let mut stdin = stdin.lock().unwrap_or_else(|e| e.into_inner());
            let _ = writeln!(stdin, "quit");
            let _ = stdin.flush();
            drop(stdin);
            let _ = child.wait();
        }
    }
}

/// Asks the child server to update a record (`touch`), unanswered: one small write to its
/// stdin, the same for every client measured.
pub(crate) struct Trigger {
    stdin: Arc<Mutex<ChildStdin>>,
    /// The line, built here and written in one `write` (no allocation once it has grown).
    line: Vec<u8>,
}

impl Trigger {
    /// Sets the `n` of record `key` in `bucket` to `n`: every subscription to a query
    /// with that record gets a push.
    pub(crate) fn touch(&mut self, bucket: &str, key: &str, n: u64) {
        self.line.clear();
        let _ = writeln!(self.line, "touch {bucket} {key} {n}");
        let mut stdin = self.stdin.lock().unwrap_or_else(|e| e.into_inner());
        stdin.write_all(&self.line).expect("write touch");
        stdin.flush().expect("flush touch");
    }
}
