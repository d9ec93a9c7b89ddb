//! `noex watch query NAME` and `noex watch topic PATTERN`: a subscription followed until
//! Ctrl-C. Piped (or `--json`): one JSON line per update on stdout, connection state
//! changes on stderr. On a terminal: the live view of [`crate::tui`].

use std::io::Write;
use std::time::Duration;

use futures::StreamExt;
use noex_tokio::{Backoff, ClientOptions, Error, LifecycleEvent, RuleMessage};
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

use crate::client_args::{ConnArgs, WatchArgs, WatchCommand};
use crate::connect::{connect_client, resolve_login, show_duration};
use crate::exit::Failure;
use crate::input::object_arg;
use crate::output::Format;
use crate::timefmt;
use crate::updates::{state_name, Target, Update};

/// `noex watch ...`.
pub(crate) fn run(args: &WatchArgs) -> Result<(), Failure> {
    let (target, conn, out) = match &args.command {
        WatchCommand::Query {
            name,
            params,
            conn,
            out,
        } => {
            let params = match params {
                Some(p) => Some(Value::Object(object_arg(p, "the parameters")?)),
                None => None,
            };
            let target = Target::Query {
                name: name.clone(),
                params,
            };
            (target, conn, out)
        }
        WatchCommand::Topic { pattern, conn, out } => (Target::Topic(pattern.clone()), conn, out),
    };
    let login = resolve_login(conn)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Other(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(async {
        let options = ClientOptions::new().reconnect(true).backoff(Backoff {
            initial: Duration::from_millis(250),
            multiplier: 2.0,
            max: Duration::from_secs(5),
            jitter: Duration::from_millis(250),
            max_retries: None,
        });
        let client = connect_client(conn, &login, options).await?;
        let rx = subscribe(&client, &target, conn).await?;
        let result = if Format::resolve(out).human() {
            crate::tui::run(&target, rx).await
        } else {
            piped(rx).await
        };
        client.disconnect().await;
        result
    })
}

/// Subscribes and forwards the subscription's items and the connection's lifecycle
/// events to one channel.
async fn subscribe(
    client: &noex_tokio::Client,
    target: &Target,
    conn: &ConnArgs,
) -> Result<mpsc::UnboundedReceiver<Update>, Failure> {
    let shown = show_duration(conn.timeout);
    let (tx, rx) = mpsc::unbounded_channel();
    let events_tx = tx.clone();
    let mut events = client.events();
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            let update = match event {
                LifecycleEvent::StateChanged(s) => Update::State(s),
                LifecycleEvent::Reconnected => Update::Reconnected,
                _ => continue,
            };
            if events_tx.send(update).is_err() {
                break;
            }
        }
    });
    match target {
        Target::Query { name, params } => {
            let mut sub = client
                .store()
                .subscribe::<Value>(name, params.clone())
                .await
                .map_err(|e| Failure::from_sdk(&e, &shown))?;
            tokio::spawn(async move {
                while let Some(item) = sub.next().await {
                    let update = match item {
                        Ok(v) => Update::Data(v),
                        Err(e) => Update::End(Failure::from_sdk(&e, &shown)),
                    };
                    if tx.send(update).is_err() {
                        return;
                    }
                }
                let _ = tx.send(Update::End(closed()));
            });
        }
        Target::Topic(pattern) => {
            let mut sub = client
                .rules()
                .subscribe(pattern)
                .await
                .map_err(|e| Failure::from_sdk(&e, &shown))?;
            tokio::spawn(async move {
                while let Some(item) = sub.next().await {
                    let update = match item {
                        Ok(m) => event_update(m),
                        Err(Error::Gap { from, to }) => Update::Gap { from, to },
                        Err(Error::Lagged { missed }) => Update::Lagged(missed),
                        Err(e) => Update::End(Failure::from_sdk(&e, &shown)),
                    };
                    if tx.send(update).is_err() {
                        return;
                    }
                }
                let _ = tx.send(Update::End(closed()));
            });
        }
    }
    Ok(rx)
}

fn closed() -> Failure {
    Failure::Connection("the subscription ended: the connection closed".into())
}

/// A rules message as JSON, in the server's field names.
fn event_update(m: RuleMessage) -> Update {
    let e = m.event;
    let mut event = Map::new();
    event.insert("id".into(), Value::String(e.id));
    event.insert("topic".into(), Value::String(e.topic));
    event.insert("data".into(), e.data);
    event.insert("timestamp".into(), Value::from(e.timestamp));
    if let Some(s) = e.source {
        event.insert("source".into(), Value::String(s));
    }
    if let Some(c) = e.correlation_id {
        event.insert("correlationId".into(), Value::String(c));
    }
    if let Some(c) = e.causation_id {
        event.insert("causationId".into(), Value::String(c));
    }
    for (k, v) in e.extra {
        event.entry(k).or_insert(v);
    }
    Update::Event {
        topic: m.topic,
        event: Value::Object(event),
    }
}

/// Writes one line and flushes; `false` when the reader has gone (`| head`).
fn line(out: &mut impl Write, value: &Value) -> bool {
    writeln!(out, "{value}").and_then(|()| out.flush()).is_ok()
}

/// The piped mode: JSON lines until Ctrl-C, a closed stdout or the end of the
/// subscription.
async fn piped(mut rx: mpsc::UnboundedReceiver<Update>) -> Result<(), Failure> {
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let update = tokio::select! {
            _ = &mut ctrl_c => return Ok(()),
            u = rx.recv() => match u {
                Some(u) => u,
                None => return Err(closed()),
            },
        };
        let at = Value::String(timefmt::now());
        let (value, to_stderr) = match update {
            Update::Data(data) => (json!({"at": at, "data": data}), false),
            Update::Event { topic, event } => {
                (json!({"at": at, "topic": topic, "event": event}), false)
            }
            Update::Gap { from, to } => (
                json!({"at": at, "gap": {"from": timefmt::rfc3339(from), "to": timefmt::rfc3339(to)}}),
                false,
            ),
            Update::Lagged(missed) => (json!({"at": at, "lagged": missed}), false),
            Update::State(s) => (json!({"at": at, "state": state_name(s)}), true),
            Update::Reconnected => (json!({"at": at, "state": "restored"}), true),
            Update::End(failure) => return Err(failure),
        };
        if to_stderr {
            let _ = line(&mut std::io::stderr().lock(), &value);
        } else if !line(&mut std::io::stdout().lock(), &value) {
            return Ok(());
        }
    }
}
