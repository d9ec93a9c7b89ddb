//! `noex watch query NAME` and `noex watch topic PATTERN`: a subscription followed until
//! Ctrl-C. Piped (or `--json`): one JSON line per update on stdout (with `--changes`, one
//! per record added, updated or removed), connection state changes on stderr. On a
//! terminal: the live view of [`tui`].

mod tui;
mod updates;

use std::io::Write;
use std::time::Duration;

use futures::StreamExt;
use noex_tokio::{
    Backoff, Changes, ClientOptions, ConnectionState, Error, LifecycleEvent, LiveQuery, Record,
    RuleMessage, RuleUpdate, Subscription,
};
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

use self::updates::{record_json, state_name, Target, Update};
use crate::client::args::{ConnArgs, WatchArgs, WatchCommand};
use crate::client::connect::{connect_client, resolve_login, show_duration};
use crate::client::failure::Failure;
use crate::client::input::object_arg;
use crate::client::output::Format;
use crate::timefmt;

/// How a query is followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Follow {
    /// Its whole result on every push (store.subscribe).
    Whole,
    /// Its records' changes (a live view), with the whole view after each change when
    /// `view`; whole results when the result is not a list of records.
    Changes {
        /// Whether every update carries the view (for the live view on a terminal).
        view: bool,
    },
}

/// The most change updates held while the connection is away (see [`piped`]); more are
/// written as they come.
const MAX_HELD: usize = 64;

/// `noex watch ...`.
pub(crate) fn run(args: &WatchArgs) -> Result<(), Failure> {
    let (target, conn, out, changes) = match &args.command {
        WatchCommand::Query {
            name,
            params,
            key,
            changes,
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
                key: key.clone(),
            };
            (target, conn, out, *changes)
        }
        WatchCommand::Topic { pattern, conn, out } => {
            (Target::Topic(pattern.clone()), conn, out, false)
        }
    };
    // `--changes` is a line format: JSON lines even on a terminal.
    let human = Format::resolve(out).human() && !changes;
    let follow = if human || changes {
        Follow::Changes { view: human }
    } else {
        Follow::Whole
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
        let rx = subscribe(&client, &target, follow, conn).await?;
        let result = if human {
            tui::run(&target, rx).await
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
    follow: Follow,
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
    match (target, follow) {
        (Target::Query { name, params, .. }, Follow::Whole) => {
            let mut subscribe = client.store().subscribe::<Value>(name);
            if let Some(params) = params {
                subscribe = subscribe.params(params.clone());
            }
            let sub = subscribe.await.map_err(|e| Failure::from_sdk(&e, &shown))?;
            tokio::spawn(forward_whole(sub, tx, shown));
        }
        (Target::Query { name, params, key }, Follow::Changes { view }) => {
            let mut live = client.store().live::<Value>(name).key_field(key);
            if let Some(params) = params {
                live = live.params(params.clone());
            }
            let live = live.await.map_err(|e| Failure::from_sdk(&e, &shown))?;
            let whole = WholeQuery {
                client: client.clone(),
                name: name.clone(),
                params: params.clone(),
            };
            tokio::spawn(forward_changes(live, view, whole, tx, shown));
        }
        (Target::Topic(pattern), _) => {
            let mut sub = client
                .rules()
                .subscribe(pattern)
                .await
                .map_err(|e| Failure::from_sdk(&e, &shown))?;
            tokio::spawn(async move {
                while let Some(item) = sub.next().await {
                    let update = match item {
                        Ok(RuleUpdate::Event(m)) => event_update(m),
                        Ok(RuleUpdate::Missed { from, to }) => Update::Gap { from, to },
                        Ok(RuleUpdate::Lagged { missed }) => Update::Lagged(missed),
                        Ok(_) => continue,
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

/// A query's whole results, one update each, until the subscription ends.
async fn forward_whole(
    mut sub: Subscription<Value>,
    tx: mpsc::UnboundedSender<Update>,
    shown: String,
) {
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
}

/// What is needed to subscribe to a query's whole results instead of its changes.
struct WholeQuery {
    client: noex_tokio::Client,
    name: String,
    params: Option<Value>,
}

/// A live query's changes (and its view, when `view`), one update each, until it ends.
/// When its result is not a list of records (a count, a scalar; or records without the
/// key field), the live query is dropped and the query's whole results follow instead.
async fn forward_changes(
    mut live: LiveQuery<Value>,
    view: bool,
    whole: WholeQuery,
    tx: mpsc::UnboundedSender<Update>,
    shown: String,
) {
    let reason = loop {
        let update = match live.next().await {
            Some(Ok(changes)) => Update::Changes {
                changes,
                view: view.then(|| live.view().to_vec()),
            },
            Some(Err(Error::Live { error, .. })) => break error.to_string(),
            Some(Err(e)) => Update::End(Failure::from_sdk(&e, &shown)),
            None => Update::End(closed()),
        };
        let end = matches!(update, Update::End(_));
        if tx.send(update).is_err() || end {
            return;
        }
    };
    // Unsubscribes (when the stream has not ended by itself).
    drop(live);
    if tx.send(Update::Whole(reason)).is_err() {
        return;
    }
    let mut subscribe = whole.client.store().subscribe::<Value>(&whole.name);
    if let Some(params) = whole.params {
        subscribe = subscribe.params(params);
    }
    match subscribe.await {
        Ok(sub) => forward_whole(sub, tx, shown).await,
        Err(e) => {
            let _ = tx.send(Update::End(Failure::from_sdk(&e, &shown)));
        }
    }
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
    event.insert("source".into(), Value::String(e.source));
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

/// One line per record that changed: `{"at":…,"op":…,"key":…,"record":{…}}` (in this
/// order), the added first, then the updated, then the removed. `false` when the reader of
/// stdout has gone.
fn change_lines(changes: &Changes<Value>) -> bool {
    let at = Value::String(timefmt::now());
    let ops: [(&str, &[Record<Value>]); 3] = [
        ("added", &changes.added),
        ("updated", &changes.updated),
        ("removed", &changes.removed),
    ];
    let mut out = std::io::stdout().lock();
    for (op, records) in ops {
        for record in records {
            let text = format!(
                r#"{{"at":{at},"op":"{op}","key":{},"record":{}}}"#,
                record.key,
                record_json(record)
            );
            if writeln!(out, "{text}").is_err() {
                return false;
            }
        }
    }
    out.flush().is_ok()
}

/// The piped mode: JSON lines until Ctrl-C, a closed stdout or the end of the
/// subscription.
///
/// Changes that arrive while the connection is away (after it was lost, before the
/// client says the subscription is restored) are held until then, so that what was
/// missed comes after the `restored` line (a reconnect's changes reach this loop on
/// their own path, and usually before the lifecycle event).
async fn piped(mut rx: mpsc::UnboundedReceiver<Update>) -> Result<(), Failure> {
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut away = false;
    let mut held: Vec<Changes<Value>> = Vec::new();
    let result = loop {
        let update = tokio::select! {
            _ = &mut ctrl_c => break Ok(()),
            u = rx.recv() => match u {
                Some(u) => u,
                None => break Err(closed()),
            },
        };
        let at = Value::String(timefmt::now());
        let (value, to_stderr) = match update {
            Update::Changes { changes, .. } => {
                if away && held.len() < MAX_HELD {
                    held.push(changes);
                } else if !change_lines(&changes) {
                    return Ok(());
                }
                continue;
            }
            Update::Data(data) => (json!({"at": at, "data": data}), false),
            Update::Whole(reason) => (
                json!({"at": at, "fallback": "data", "reason": reason}),
                true,
            ),
            Update::Event { topic, event } => {
                (json!({"at": at, "topic": topic, "event": event}), false)
            }
            Update::Gap { from, to } => (
                json!({"at": at, "gap": {"from": timefmt::rfc3339(from), "to": timefmt::rfc3339(to)}}),
                false,
            ),
            Update::Lagged(missed) => (json!({"at": at, "lagged": missed}), false),
            Update::State(s) => {
                away |= matches!(
                    s,
                    ConnectionState::Reconnecting | ConnectionState::Disconnected
                );
                (json!({"at": at, "state": state_name(s)}), true)
            }
            Update::Reconnected => {
                let _ = line(
                    &mut std::io::stderr().lock(),
                    &json!({"at": at, "state": "restored"}),
                );
                away = false;
                for changes in held.drain(..) {
                    if !change_lines(&changes) {
                        return Ok(());
                    }
                }
                continue;
            }
            Update::End(failure) => break Err(failure),
        };
        if to_stderr {
            let _ = line(&mut std::io::stderr().lock(), &value);
        } else if !line(&mut std::io::stdout().lock(), &value) {
            return Ok(());
        }
    };
    // What was held is not lost when the watch ends.
    for changes in &held {
        if !change_lines(changes) {
            break;
        }
    }
    result
}
