//! End-to-end tests of the client commands: the built `noex` binary against an in-process
//! testkit server.

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use noex_testkit::{AuthMode, BucketDef, HandshakeFault, TestServer, TokenSession};
use serde_json::{json, Value};

const DEADLINE: Duration = Duration::from_secs(30);

/// What a finished `noex` run left.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Each stdout line as JSON (fails the test when one is not).
    fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
            .collect()
    }

    /// The only stdout line, as JSON.
    fn value(&self) -> Value {
        let mut lines = self.json_lines();
        assert_eq!(lines.len(), 1, "one value expected: {self:?}");
        lines.remove(0)
    }

    fn ok(self) -> Run {
        assert_eq!(self.code, Some(0), "{self:?}");
        self
    }
}

/// Runs `noex args...` with a clean environment plus `env`, `stdin` as standard input, and
/// kills it past the deadline.
fn noex_with(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_noex"));
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for var in [
        "NOEX_URL",
        "NOEX_TOKEN",
        "NOEX_PASSWORD",
        "NO_COLOR",
        "NOEX_LOG",
        "RUST_LOG",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    let mut child = cmd.spawn().expect("noex starts");
    let mut input = child.stdin.take().expect("stdin");
    let text = stdin.unwrap_or_default().to_string();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(text.as_bytes());
    });
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("noex {args:?} did not finish in {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let _ = writer.join();
    Run {
        code: status.code(),
        stdout: reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    }
}

/// `noex args... --url URL`.
fn noex(server: &TestServer, args: &[&str]) -> Run {
    noex_with(args, &[("NOEX_URL", &server.url())], None)
}

fn users_server() -> TestServer {
    common::users_builder().start().expect("server starts")
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn call_takes_json_key_values_and_stdin() {
    let s = users_server();
    let a = noex(
        &s,
        &[
            "call",
            "store.insert",
            r#"{"bucket":"users","data":{"name":"Alice","age":30}}"#,
        ],
    )
    .ok()
    .value();
    assert_eq!(a["name"], "Alice");
    let id = a["id"].as_str().unwrap().to_string();

    let b = noex(
        &s,
        &[
            "call",
            "store.insert",
            "bucket=users",
            r#"data={"name":"Bob","age":20}"#,
        ],
    )
    .ok()
    .value();
    assert_eq!(b["age"], 20);

    let got = noex(
        &s,
        &["call", "store.get", "bucket=users", &format!("key={id}")],
    )
    .ok()
    .value();
    assert_eq!(got["name"], "Alice");

    let first = noex_with(
        &["call", "store.first", "-", "n=1"],
        &[("NOEX_URL", &s.url())],
        Some(r#"{"bucket": "users", "n": 5}"#),
    )
    .ok()
    .value();
    assert_eq!(first.as_array().unwrap().len(), 1);

    // The URL as a flag too; a number stays a number.
    let count = noex_with(
        &["call", "store.count", "bucket=users", "--url", &s.url()],
        &[],
        None,
    )
    .ok();
    assert_eq!(count.stdout, "2\n");
}

#[test]
fn shortcuts_for_the_store() {
    let s = users_server();
    for (name, age) in [("Alice", 30), ("Bob", 20), ("Carol", 40)] {
        let r = noex(
            &s,
            &[
                "insert",
                "users",
                &format!(r#"{{"name":"{name}","age":{age}}}"#),
            ],
        )
        .ok()
        .value();
        assert_eq!(r["_version"], 1);
    }
    let dave = noex_with(
        &["insert", "users", "-"],
        &[("NOEX_URL", &s.url())],
        Some(r#"{"name": "Dave", "age": 50}"#),
    )
    .ok()
    .value();
    let id = dave["id"].as_str().unwrap();
    assert_eq!(noex(&s, &["get", "users", id]).ok().value()["name"], "Dave");
    assert_eq!(
        noex(&s, &["get", "users", "nobody"]).ok().value(),
        Value::Null
    );

    let all = noex(&s, &["query", "users"]).ok().value();
    assert_eq!(all.as_array().unwrap().len(), 4);
    let old = noex(&s, &["query", "users", r#"{"age": {"$gte": 35}}"#])
        .ok()
        .value();
    let mut names: Vec<&str> = old
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["Carol", "Dave"]);
}

#[test]
fn shortcuts_for_rules_and_server() {
    let s = users_server();
    let e = noex(&s, &["emit", "orders.created", r#"{"id": 7}"#])
        .ok()
        .value();
    assert_eq!(e["topic"], "orders.created");
    assert_eq!(e["data"], json!({"id": 7}));
    let bare = noex(&s, &["emit", "ping"]).ok().value();
    assert_eq!(bare["topic"], "ping");

    let set = noex(&s, &["fact", "set", "user:1:name", "Alice"])
        .ok()
        .value();
    assert_eq!(set["value"], "Alice");
    noex(&s, &["fact", "set", "user:1:age", "30"]).ok();
    assert_eq!(
        noex(&s, &["fact", "set", "neg", "-5"]).ok().value()["value"],
        -5
    );
    noex(&s, &["fact", "delete", "neg"]).ok();
    noex(&s, &["fact", "set", "other", r#"{"a": [1]}"#]).ok();
    assert_eq!(noex(&s, &["fact", "get", "user:1:age"]).ok().value(), 30);
    assert_eq!(
        noex(&s, &["fact", "get", "other"]).ok().value(),
        json!({"a": [1]})
    );
    let matched = noex(&s, &["fact", "query", "user:1:*"]).ok().value();
    assert_eq!(matched.as_array().unwrap().len(), 2);
    let all = noex(&s, &["fact", "query"]).ok().value();
    assert_eq!(all.as_array().unwrap().len(), 3);
    assert_eq!(
        noex(&s, &["fact", "delete", "other"]).ok().value(),
        json!({"deleted": true})
    );
    assert_eq!(
        noex(&s, &["fact", "get", "other"]).ok().value(),
        Value::Null
    );

    let stats = noex(&s, &["stats"]).ok().value();
    assert_eq!(stats["name"], "noex-server");
    assert!(stats["connectionCount"].is_number());
}

#[test]
fn piped_output_is_one_compact_value_per_line_without_colours() {
    let s = users_server();
    noex(&s, &["insert", "users", r#"{"name":"A"}"#]).ok();
    for args in [
        &["query", "users"][..],
        &["query", "users", "--json"][..],
        &["stats", "--no-color"][..],
        &["ops"][..],
    ] {
        let r = noex(&s, args).ok();
        assert!(!r.stdout.contains('\u{1b}'), "{args:?}: {r:?}");
        assert!(!r.stdout.contains("\n\n"));
        r.json_lines();
    }
}

#[test]
fn ops_lists_every_operation_with_read_or_write() {
    let r = noex_with(&["ops"], &[], None).ok();
    let ops = r.json_lines();
    assert!(ops.len() >= 80, "{}", ops.len());
    let find = |name: &str| ops.iter().find(|o| o["name"] == name).cloned().unwrap();
    assert_eq!(find("store.insert")["access"], "write");
    assert_eq!(find("store.get")["access"], "read");
    assert_eq!(find("identity.login")["secret"], true);
    assert_eq!(find("server.stats")["access"], "read");
}

#[test]
fn ops_json_lines_carry_each_operations_fields() {
    let ops = noex_with(&["ops", "--json"], &[], None).ok().json_lines();
    let find = |name: &str| ops.iter().find(|o| o["name"] == name).cloned().unwrap();
    assert_eq!(
        find("store.insert")["fields"],
        json!([
            {"name": "bucket", "required": true, "type": "string"},
            {"name": "data", "required": true, "type": "object"}
        ])
    );
    assert_eq!(
        find("store.paginate")["fields"],
        json!([
            {"name": "bucket", "required": true, "type": "string"},
            {"name": "limit", "required": true, "type": "integer"},
            {"name": "after", "required": false, "type": "any"}
        ])
    );
    assert_eq!(find("server.stats")["fields"], json!([]));
    for op in &ops {
        assert!(op["fields"].is_array(), "{op}");
    }

    // One operation: the same object, alone.
    let one = noex_with(&["ops", "store.paginate"], &[], None)
        .ok()
        .value();
    assert_eq!(one, find("store.paginate"));
}

#[test]
fn ops_of_an_unknown_operation_suggests_close_names() {
    let r = noex_with(&["ops", "store.inser"], &[], None);
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(
        r.stderr.contains("unknown operation `store.inser`"),
        "{r:?}"
    );
    assert!(r.stderr.contains("did you mean: store.insert"), "{r:?}");
    assert!(r.stdout.is_empty(), "{r:?}");
}

/// Runs `noex args...` with stdout on a pseudo-terminal and returns what it printed
/// (`\r\n` turned back into `\n`).
fn noex_on_a_terminal(args: &[&str]) -> String {
    use portable_pty::{native_pty_system, CommandBuilder, PtySize};

    let pair = native_pty_system()
        .openpty(PtySize {
            rows: 50,
            cols: 200,
            pixel_width: 0,
            pixel_height: 0,
        })
        .expect("pty");
    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_noex"));
    cmd.args(args);
    cmd.env("TERM", "xterm-256color");
    cmd.env_remove("NO_COLOR");
    let mut child = pair.slave.spawn_command(cmd).expect("noex starts");
    drop(pair.slave);
    let mut reader = pair.master.try_clone_reader().expect("reader");
    let output = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let mut buf = [0u8; 4096];
        // The end of the output is an error (EIO) on Linux once the child has gone.
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            bytes.extend_from_slice(&buf[..n]);
        }
        bytes
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(started.elapsed() < DEADLINE, "noex {args:?} did not finish");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "{status:?}");
    drop(pair.master);
    let bytes = output.join().unwrap();
    String::from_utf8_lossy(&bytes).replace("\r\n", "\n")
}

#[test]
fn ops_on_a_terminal_is_a_table_with_the_fields() {
    let text = noex_on_a_terminal(&["ops"]);
    let row = |name: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no row for {name}:\n{text}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(
        row("store.insert"),
        "store.insert write record bucket, data"
    );
    assert_eq!(
        row("store.count"),
        "store.count read number bucket, filter?"
    );
    assert_eq!(
        row("auth.login"),
        "auth.login write object token (carries a secret)"
    );
    assert_eq!(row("server.stats"), "server.stats read object");
    assert!(text.lines().count() >= 80, "{text}");

    let text = noex_on_a_terminal(&["ops", "store.count"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "store.count",
            "  access  read",
            "  answer  number",
            "  fields  bucket  string  required",
            "          filter  object  optional",
            "  call    noex call store.count bucket=<string> [filter=<object>]",
        ],
        "{text}"
    );
}

#[test]
fn unknown_operations_and_bad_json_are_usage_errors() {
    let s = users_server();
    let r = noex(&s, &["call", "store.inser", "bucket=users"]);
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(
        r.stderr.contains("unknown operation `store.inser`"),
        "{r:?}"
    );
    assert!(r.stderr.contains("did you mean: store.insert"), "{r:?}");
    assert!(r.stdout.is_empty());

    let r = noex(&s, &["call", "setFact", "key=a", "value=1"]);
    assert_eq!(r.code, Some(2));
    assert!(r.stderr.contains("rules.setFact"), "{r:?}");

    let r = noex(
        &s,
        &[
            "call",
            "store.insert",
            r#"{"bucket": "users", "data": {"name": }}"#,
        ],
    );
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(
        r.stderr
            .contains("invalid JSON in argument 1 at line 1, column 38"),
        "{r:?}"
    );
    assert!(r.stderr.contains('^'), "{r:?}");

    let r = noex(&s, &["insert", "users", "[1, 2]"]);
    assert_eq!(r.code, Some(2));
    assert!(
        r.stderr.contains("must be a JSON object, got an array"),
        "{r:?}"
    );

    let r = noex_with(
        &["query", "users", "-"],
        &[("NOEX_URL", &s.url())],
        Some("{\n  \"age\": ,\n}"),
    );
    assert_eq!(r.code, Some(2));
    assert!(
        r.stderr
            .contains("invalid JSON in stdin at line 2, column 10"),
        "{r:?}"
    );

    let r = noex(&s, &["call", "store.all", "bucket"]);
    assert_eq!(r.code, Some(2));
    assert!(
        r.stderr
            .contains("not a JSON object, `-` (stdin) or key=value"),
        "{r:?}"
    );

    // Clap's own usage errors are status 2 too.
    assert_eq!(noex(&s, &["call"]).code, Some(2));
    assert_eq!(noex(&s, &["get", "users"]).code, Some(2));
    assert_eq!(noex(&s, &["stats", "--timeout", "soon"]).code, Some(2));
    assert_eq!(noex(&s, &["bogus"]).code, Some(2));
    assert_eq!(noex(&s, &["stats", "--url", "not a url"]).code, Some(2));
}

#[test]
fn exit_status_per_failure_class() {
    let s = users_server();
    // 3: the server answered with an error.
    let r = noex(&s, &["get", "nobucket", "k"]);
    assert_eq!(r.code, Some(3), "{r:?}");
    assert!(r.stderr.starts_with("error: BUCKET_NOT_DEFINED: "), "{r:?}");
    let r = noex(&s, &["call", "store.insert", "bucket=users", "data=7"]);
    assert_eq!(r.code, Some(3), "{r:?}");

    // 5: nothing listens.
    let url = format!("ws://127.0.0.1:{}", closed_port());
    let r = noex_with(&["stats", "--url", &url], &[], None);
    assert_eq!(r.code, Some(5), "{r:?}");
    assert!(r.stderr.starts_with("error: connection: "), "{r:?}");

    // 4: no answer in time.
    s.set_delay(Duration::from_secs(3));
    let started = Instant::now();
    let r = noex(&s, &["stats", "--timeout", "300ms"]);
    assert_eq!(r.code, Some(4), "{r:?}");
    assert!(r.stderr.starts_with("error: timeout: "), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    s.set_delay(Duration::ZERO);
    noex(&s, &["stats"]).ok();

    // 4 also when the connection itself does not come in time.
    s.set_handshake_fault(HandshakeFault::Stall);
    let r = noex(&s, &["stats", "--timeout", "300ms"]);
    assert_eq!(r.code, Some(4), "{r:?}");
    assert!(r.stderr.contains("no connection"), "{r:?}");
    // 5 when the handshake is refused.
    s.set_handshake_fault(HandshakeFault::Reset);
    let r = noex(&s, &["stats", "--timeout", "2s"]);
    assert_eq!(r.code, Some(5), "{r:?}");
    s.set_handshake_fault(HandshakeFault::Normal);
    noex(&s, &["stats"]).ok();
}

#[test]
fn tokens_log_in_and_are_never_printed() {
    let secret = "tok-very-secret-123";
    let s = TestServer::builder()
        .auth(AuthMode::tokens([TokenSession::new(
            secret,
            "alice",
            ["admin"],
        )]))
        .start()
        .unwrap();
    for run in [
        noex_with(
            &["whoami", "-v", "--token", secret],
            &[("NOEX_URL", &s.url())],
            None,
        ),
        noex_with(
            &["whoami", "-v"],
            &[("NOEX_URL", &s.url()), ("NOEX_TOKEN", secret)],
            None,
        ),
    ] {
        let r = run.ok();
        let me = r.value();
        assert_eq!(me["userId"], "alice", "{r:?}");
        assert!(r.stderr.contains("noex: sending auth.whoami"), "{r:?}");
        assert!(
            !r.stdout.contains(secret) && !r.stderr.contains(secret),
            "{r:?}"
        );
    }
    let r = noex_with(
        &["whoami", "-v", "--token", "wrong-token-456"],
        &[("NOEX_URL", &s.url())],
        None,
    );
    assert_eq!(r.code, Some(3), "{r:?}");
    assert!(!r.stderr.contains("wrong-token-456"), "{r:?}");
    // The verbose request of an operation that carries a secret hides its fields.
    let r = noex_with(
        &["call", "-v", "auth.login", &format!("token={secret}")],
        &[("NOEX_URL", &s.url())],
        None,
    );
    assert!(!r.stderr.contains(secret), "{r:?}");
    assert!(r.stderr.contains("fields hidden"), "{r:?}");
}

#[test]
fn users_log_in_with_a_password_from_the_environment() {
    let s = TestServer::builder()
        .auth(AuthMode::identity("admin-secret-xyz"))
        .bucket(
            BucketDef::new("notes")
                .key("id")
                .field("id", json!({"type": "string", "generated": "uuid"})),
        )
        .start()
        .unwrap();
    let url = s.url();
    let password = "pw-alice-98765";
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = noex_tokio::connect(&url, noex_tokio::ClientOptions::new())
            .await
            .unwrap();
        let op = noex_tokio::proto::ops::identity::login_with_secret(
            &noex_tokio::proto::Secret::new("admin-secret-xyz"),
        );
        client.request(op).await.unwrap();
        let op = noex_tokio::proto::ops::identity::create_user(
            "alice",
            &noex_tokio::proto::Secret::new(password),
            &serde_json::Map::new(),
        );
        client.request(op).await.unwrap();
        client.disconnect().await;
    });

    let r = noex_with(
        &["whoami", "--user", "alice", "-v"],
        &[("NOEX_URL", &url), ("NOEX_PASSWORD", password)],
        None,
    )
    .ok();
    assert_eq!(r.value()["authenticated"], true, "{r:?}");
    assert!(r.stderr.contains("logging in as alice"), "{r:?}");
    assert!(
        !r.stdout.contains(password) && !r.stderr.contains(password),
        "{r:?}"
    );

    let r = noex_with(
        &["stats", "--user", "alice", "-v"],
        &[("NOEX_URL", &url), ("NOEX_PASSWORD", "wrong-password-1")],
        None,
    );
    assert_eq!(r.code, Some(3), "{r:?}");
    assert!(!r.stderr.contains("wrong-password-1"), "{r:?}");

    // No password and no terminal to ask on: a usage error, not a hang.
    let r = noex_with(&["stats", "--user", "alice"], &[("NOEX_URL", &url)], None);
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(r.stderr.contains("NOEX_PASSWORD"), "{r:?}");
}

#[test]
fn completions_name_the_commands_and_operations() {
    for shell in ["bash", "zsh", "fish"] {
        let r = noex_with(&["completions", shell], &[], None).ok();
        for word in ["call", "insert", "whoami", "store.insert", "rules.setFact"] {
            assert!(r.stdout.contains(word), "{shell}: {word}");
        }
        if shell == "bash" {
            // The names complete `noex call OP`, `noex ops OP` and `noex bench --op OP`.
            let places = r.stdout.matches("store.insert store.get").count();
            assert!(places >= 3, "operation names offered in {places} places");
        }
    }
    assert_eq!(noex_with(&["completions", "tcsh"], &[], None).code, Some(2));
}
