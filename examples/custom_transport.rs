//! A custom transport: drives the `noex-proto` core from a plain thread with a blocking
//! WebSocket (tungstenite), no async runtime anywhere. This is all an adapter does: open
//! what the core asks to open, send what it asks to send, feed back what arrives, and call
//! `handle_timeout` when `poll_timeout` says so.
//!
//! ```text
//! cargo run --example custom_transport
//! ```

mod common;

use noex_proto::{
    ops, ClientCore, Config, ConnectionId, Event, Input, LifecycleEvent, Output, RequestId,
};
use serde_json::json;
use std::io::ErrorKind;
use std::net::TcpStream;
use std::time::{Duration, Instant};
use tungstenite::{Message, WebSocket};

/// What the example does, one request after another.
enum Step {
    DefineBucket,
    Insert(u32),
    Count,
    DropBucket,
    Done,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = common::server();
    let bucket = common::unique("notes");
    let mut core = ClientCore::new(Config::new(&server.url), 42);
    let mut socket: Option<(ConnectionId, WebSocket<TcpStream>)> = None;
    let mut step = Step::DefineBucket;
    let mut waiting: Option<RequestId> = None;

    core.connect(Instant::now());
    loop {
        // 1. Do what the core asks.
        while let Some(output) = core.poll_output() {
            let now = Instant::now();
            match output {
                Output::Open { connection, url } => {
                    let address = url
                        .trim_start_matches("ws://")
                        .split('/')
                        .next()
                        .unwrap_or_default()
                        .to_owned();
                    match TcpStream::connect(&address)
                        .map_err(|e| e.to_string())
                        .and_then(|tcp| {
                            tungstenite::client(url.as_str(), tcp).map_err(|e| e.to_string())
                        }) {
                        Ok((ws, _)) => {
                            socket = Some((connection, ws));
                            core.handle_input(now, connection, Input::Opened);
                        }
                        Err(reason) => core.handle_input(
                            now,
                            connection,
                            Input::ConnectFailed { reason: &reason },
                        ),
                    }
                }
                Output::Send {
                    connection,
                    seq,
                    text,
                    request,
                } => {
                    // A frame whose request has ended meanwhile is dropped, not written.
                    if !core.wants_frame(request) {
                        continue;
                    }
                    if let Some((_, ws)) = socket.as_mut().filter(|(id, _)| *id == connection) {
                        // The frame may leave the client from here on.
                        core.handle_input(now, connection, Input::Written { seq });
                        if let Err(e) = ws.send(Message::text(text)) {
                            let reason = e.to_string();
                            core.handle_input(
                                now,
                                connection,
                                Input::Closed {
                                    code: None,
                                    reason: &reason,
                                },
                            );
                        }
                    }
                }
                Output::Close {
                    connection,
                    code,
                    reason,
                } => {
                    if let Some((_, mut ws)) = socket.take().filter(|(id, _)| *id == connection) {
                        let frame = tungstenite::protocol::CloseFrame {
                            code: code.into(),
                            reason: reason.into(),
                        };
                        let _ = ws.close(Some(frame));
                        let _ = ws.flush();
                    }
                }
                Output::Event(Event::Lifecycle(LifecycleEvent::Connected)) => {
                    println!("connected");
                    let op = ops::store::define_bucket(&bucket, common::users_bucket());
                    waiting = Some(core.request(now, op)?);
                }
                Output::Event(Event::Response { id, result }) if Some(id) == waiting => {
                    let answer = result?;
                    step = match step {
                        Step::DefineBucket => {
                            println!("defined bucket {bucket}");
                            Step::Insert(0)
                        }
                        Step::Insert(n) => {
                            println!("inserted: {}", answer.json());
                            if n + 1 < 3 {
                                Step::Insert(n + 1)
                            } else {
                                Step::Count
                            }
                        }
                        Step::Count => {
                            println!("count: {}", answer.json());
                            Step::DropBucket
                        }
                        Step::DropBucket => {
                            println!("dropped bucket {bucket}");
                            Step::Done
                        }
                        Step::Done => Step::Done,
                    };
                    let next = match step {
                        Step::Insert(n) => Some(ops::store::insert(
                            &bucket,
                            json!({"name": format!("note {n}")}),
                        )),
                        Step::Count => Some(ops::store::count(&bucket, None)),
                        Step::DropBucket => Some(ops::store::drop_bucket(&bucket)),
                        _ => None,
                    };
                    waiting = match next {
                        Some(op) => Some(core.request(now, op)?),
                        None => None,
                    };
                }
                Output::Event(event) => println!("event: {event:?}"),
                // Outputs are `#[non_exhaustive]`: one a newer core adds is ignored here.
                _ => {}
            }
        }
        if matches!(step, Step::Done) {
            core.close(Instant::now());
            while core.poll_output().is_some() {}
            println!("counters: {:?}", core.counters());
            return Ok(());
        }

        // 2. Wait for a frame, but no longer than the core's next deadline.
        let now = Instant::now();
        let wait = core
            .poll_timeout()
            .map(|at| at.saturating_duration_since(now))
            .unwrap_or(Duration::from_millis(100))
            .clamp(Duration::from_millis(1), Duration::from_millis(100));
        if let Some((connection, ws)) = socket.as_mut() {
            let connection = *connection;
            let _ = ws.get_ref().set_read_timeout(Some(wait));
            match ws.read() {
                Ok(Message::Text(text)) => {
                    core.handle_input(Instant::now(), connection, Input::Frame(text.as_str()))
                }
                Ok(Message::Binary(bytes)) => {
                    core.handle_input(Instant::now(), connection, Input::Binary(&bytes))
                }
                Ok(Message::Close(frame)) => {
                    let (code, reason) = frame
                        .map(|f| (Some(u16::from(f.code)), f.reason.to_string()))
                        .unwrap_or((None, String::new()));
                    core.handle_input(
                        Instant::now(),
                        connection,
                        Input::Closed {
                            code,
                            reason: &reason,
                        },
                    );
                    socket = None;
                }
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => {
                    let reason = e.to_string();
                    core.handle_input(
                        Instant::now(),
                        connection,
                        Input::Closed {
                            code: None,
                            reason: &reason,
                        },
                    );
                    socket = None;
                }
            }
        } else {
            std::thread::sleep(wait);
        }

        // 3. Let time pass.
        core.handle_timeout(Instant::now());
    }
}
