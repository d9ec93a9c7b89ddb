//! The server side: the embedded test server in a child process (so the benchmark process
//! measures only the client), controlled over stdin/stdout.

use noex_testkit::{BucketDef, QueryDef, TestServer};
use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
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

/// The record key for index `i`.
pub(crate) fn key(i: usize) -> String {
    format!("k{}", i % RECORDS)
}

/// `noex-bench serve`: runs the test server until stdin ends. Prints `ready <url>`, then
/// answers each command line (`drop`, `stall`, `resume`, `settle [n]`: wait until closed
/// connections have let go of their subscriptions and at most `n`, default 0, are held)
/// with `ok`.
pub(crate) fn serve() {
    let server = TestServer::builder()
        .bucket(
            BucketDef::new(BUCKET)
                .field("id", json!({"type": "string"}))
                .field("group", json!({"type": "string"}))
                .field("n", json!({"type": "number"}))
                .field("text", json!({"type": "string"})),
        )
        .bucket(BucketDef::new(SMALL_BUCKET).field("n", json!({"type": "number"})))
        .query(COUNT_QUERY, QueryDef::count(SMALL_BUCKET))
        .query(GROUP_QUERY, QueryDef::where_param(BUCKET, "group"))
        .max_subscriptions_per_connection(100_000)
        .max_total_subscriptions(1_000_000)
        .start()
        .expect("test server starts");
    for i in 0..RECORDS {
        let group = if i < BIG_GROUP {
            "big".to_string()
        } else {
            format!("g{}", i % 10)
        };
        server
            .insert(
                BUCKET,
                json!({"id": key(i), "group": group, "n": i, "text": "lorem ipsum dolor sit amet"}),
            )
            .expect("insert");
    }
    for n in 0..10 {
        server
            .insert(SMALL_BUCKET, json!({"n": n}))
            .expect("insert");
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "ready {}", server.url());
    let _ = out.flush();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        match line.trim() {
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
    server.stop();
}

/// The server a benchmark runs against: a child process with the test server, or a real
/// noex-server (no fault injection).
pub(crate) enum Server {
    /// `noex-bench serve` in a child process.
    Child {
        /// The child.
        child: Child,
        /// Its commands.
        stdin: ChildStdin,
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
        let exe = std::env::current_exe().expect("current exe");
        let mut child = Command::new(exe)
            .arg("serve")
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
            stdin,
            stdout,
            url,
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
            writeln!(stdin, "{command}").expect("write command");
            stdin.flush().expect("flush command");
            let mut line = String::new();
            stdout.read_line(&mut line).expect("read answer");
            assert_eq!(line.trim(), "ok", "server answered {line:?} to {command}");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Server::Child { child, stdin, .. } = self {
            let _ = writeln!(stdin, "quit");
            let _ = stdin.flush();
            let _ = child.wait();
        }
    }
}
