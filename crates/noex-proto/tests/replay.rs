//! Replay of the recorded transcripts (`fixtures/transcripts/*.jsonl`): every server frame
//! decodes to the right kind; a core driven through each recording issues the recorded
//! requests (through the typed catalogue), every answer correlates to a request the core
//! issued and reaches it, and every push reaches its subscription.

mod common;

use common::*;
use noex_proto::codec::decode;
use noex_proto::{
    ConnectionState, CoreError, Event, LifecycleEvent, PushChannel, RequestError, RequestId,
    SubscriptionEvent, SubscriptionId, SubscriptionSpec,
};
use noex_proto::{ServerFrame, SystemEvent};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};

#[test]
fn every_server_frame_decodes_to_its_kind() {
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for name in TRANSCRIPTS {
        for (dir, frame) in transcript(name) {
            if dir != "s2c" {
                continue;
            }
            let text = frame.to_string();
            let decoded = decode(&text).unwrap_or_else(|e| panic!("{name}: {text}: {e}"));
            let kind = frame["type"].as_str().unwrap();
            match (&decoded, kind) {
                (ServerFrame::Welcome(w), "welcome") => {
                    assert_eq!(w.version, "1.0.0");
                    assert_eq!(w.requires_auth, frame["requiresAuth"].as_bool().unwrap());
                    assert_eq!(w.server_time, frame["serverTime"].as_i64());
                }
                (ServerFrame::Result { id, data }, "result") => {
                    assert_eq!(Some(*id), frame["id"].as_u64());
                    assert_eq!(value(data), frame["data"]);
                }
                (ServerFrame::Error { id, error }, "error") => {
                    assert_eq!(Some(*id), frame["id"].as_u64());
                    assert_eq!(error.code.as_str(), frame["code"].as_str().unwrap());
                    assert!(!matches!(error.code, noex_proto::ErrorCode::Other(_)));
                    assert_eq!(error.message, frame["message"].as_str().unwrap());
                    assert_eq!(
                        error.details.as_ref().map(value),
                        frame.get("details").cloned()
                    );
                }
                (
                    ServerFrame::Push {
                        channel,
                        subscription_id,
                        data,
                    },
                    "push",
                ) => {
                    let expected = match frame["channel"].as_str().unwrap() {
                        "subscription" => PushChannel::Subscription,
                        "event" => PushChannel::Event,
                        other => panic!("unexpected channel {other}"),
                    };
                    assert_eq!(channel, &expected);
                    assert_eq!(subscription_id, frame["subscriptionId"].as_str().unwrap());
                    assert_eq!(value(data), frame["data"]);
                }
                (ServerFrame::Ping { timestamp }, "ping") => {
                    assert_eq!(value(timestamp), frame["timestamp"]);
                }
                (ServerFrame::System(SystemEvent::Shutdown { grace_period }), "system") => {
                    assert_eq!(*grace_period, Some(ms(500)));
                }
                (other, kind) => panic!("{name}: {kind} decoded as {other:?}"),
            }
            *kinds.entry(kind.to_owned()).or_default() += 1;
        }
    }
    for kind in ["welcome", "result", "error", "push", "ping", "system"] {
        assert!(
            kinds.get(kind).copied().unwrap_or(0) > 0,
            "no {kind} frame seen"
        );
    }
}

/// What replaying one transcript produced.
struct Replay {
    h: Harness,
    /// Recorded (connection index, id) → the core's request.
    requests: HashMap<(usize, u64), Issued>,
    /// Recorded server id (`sub-N`) → the client handle.
    subs: HashMap<String, SubscriptionId>,
    pushes: BTreeMap<SubscriptionId, Vec<Value>>,
    answers_fed: usize,
    answers_skipped: Vec<(usize, u64)>,
    pongs: usize,
}

#[derive(Clone, Copy, Debug)]
enum Issued {
    Request(RequestId),
    Subscribe(SubscriptionId, u64),
    Unsubscribe(u64),
}

fn replay(name: &str) -> Replay {
    let mut r = Replay {
        h: Harness::new(Harness::config()),
        requests: HashMap::new(),
        subs: HashMap::new(),
        pushes: BTreeMap::new(),
        answers_fed: 0,
        answers_skipped: Vec::new(),
        pongs: 0,
    };
    let h = &mut r.h;
    h.connect();
    let mut connection = 0_usize;
    let mut first_welcome = true;
    let mut last_session_token: Option<String> = None;
    for (dir, frame) in transcript(name) {
        match dir.as_str() {
            "note" => {
                let note = frame.as_str().unwrap();
                if let Some(rest) = note.strip_prefix("connection closed: code=") {
                    let code: u16 = rest.split_whitespace().next().unwrap().parse().unwrap();
                    let reason = rest.split("reason=").nth(1).unwrap_or("");
                    h.server_close(Some(code), reason);
                }
            }
            "c2s" => {
                let Some(op) = recorded_op(&frame) else {
                    continue; // deliberate garbage and the pong probes
                };
                let rec_id = frame["id"].as_u64().unwrap();
                let kind = frame["type"].as_str().unwrap();
                let issued = match kind {
                    "store.subscribe" | "rules.subscribe" => {
                        let spec = if kind == "store.subscribe" {
                            SubscriptionSpec::query(
                                frame["query"].as_str().unwrap(),
                                frame.get("params").cloned(),
                            )
                        } else {
                            SubscriptionSpec::rules(frame["pattern"].as_str().unwrap())
                        };
                        let sub = h.subscribe(spec);
                        Issued::Subscribe(sub, h.last_send().id().unwrap())
                    }
                    "store.unsubscribe" | "rules.unsubscribe"
                        if r.subs
                            .contains_key(frame["subscriptionId"].as_str().unwrap()) =>
                    {
                        let sub = r.subs[frame["subscriptionId"].as_str().unwrap()];
                        assert!(h.unsubscribe(sub));
                        Issued::Unsubscribe(h.last_send().id().unwrap())
                    }
                    _ => Issued::Request(h.request(op)),
                };
                // The core sent exactly the recorded frame, under its own id.
                let sent = h.last_send().clone();
                let mut expected = frame.clone();
                expected["id"] = json!(sent.id().unwrap());
                assert_eq!(sent.json, expected, "{name}: request {rec_id}");
                r.requests.insert((connection, rec_id), issued);
            }
            "s2c" => match frame["type"].as_str().unwrap() {
                "welcome" => {
                    if !first_welcome {
                        connection += 1;
                        // The server went away: wait for the core's reconnect.
                        let before = h.opens.len();
                        while h.opens.len() == before {
                            assert!(h.step(), "{name}: no reconnect");
                        }
                    }
                    first_welcome = false;
                    h.opened();
                    h.frame_json(frame.clone());
                    // A session from the previous connection is resumed by the core itself;
                    // the recorded server would accept the token it handed out.
                    if let Some(token) = &last_session_token {
                        let login = h.last_send().clone();
                        if login.connection == h.conn() && login.kind() == "auth.login" {
                            assert_eq!(login.json["token"], token.as_str());
                            h.answer(login.id().unwrap(), json!({"userId": "resumed"}));
                        }
                    }
                    assert_eq!(h.core.state(), ConnectionState::Connected, "{name}");
                }
                "result" | "error" => {
                    let rec_id = frame["id"].as_u64().unwrap();
                    if rec_id == 0 {
                        h.clear_events_only();
                        h.frame_json(frame.clone());
                        assert!(matches!(h.core_errors()[..], [CoreError::Server(_)]));
                        continue;
                    }
                    let Some(issued) = r.requests.get(&(connection, rec_id)).copied() else {
                        r.answers_skipped.push((connection, rec_id));
                        continue;
                    };
                    if frame["type"] == "result" {
                        if let Some(token) = frame["data"]["token"].as_str() {
                            last_session_token = Some(token.to_owned());
                        }
                    }
                    let mut answer = frame.clone();
                    let core_id = match issued {
                        Issued::Request(id) => id.0,
                        Issued::Subscribe(_, id) | Issued::Unsubscribe(id) => id,
                    };
                    answer["id"] = json!(core_id);
                    h.clear_events_only();
                    h.frame_json(answer);
                    r.answers_fed += 1;
                    check_answer(name, &frame, issued, h, &mut r.subs);
                }
                "push" => {
                    let server_id = frame["subscriptionId"].as_str().unwrap();
                    let sub = *r
                        .subs
                        .get(server_id)
                        .unwrap_or_else(|| panic!("{name}: push for unknown {server_id}"));
                    h.clear_events_only();
                    h.frame_json(frame.clone());
                    assert_eq!(
                        h.sub_events(),
                        vec![&SubscriptionEvent::Update {
                            id: sub,
                            data: noex_proto::Payload::from_json(&frame["data"].to_string())
                                .unwrap()
                                .into()
                        }],
                        "{name}: push for {server_id}"
                    );
                    r.pushes.entry(sub).or_default().push(frame["data"].clone());
                }
                "ping" => {
                    h.frame_json(frame.clone());
                    assert_eq!(
                        h.last_send().json,
                        json!({"type": "pong", "timestamp": frame["timestamp"]})
                    );
                    r.pongs += 1;
                }
                "system" => {
                    h.clear_events_only();
                    h.frame_json(frame.clone());
                    assert!(matches!(
                        h.lifecycle()[..],
                        [LifecycleEvent::ServerShutdown { .. }]
                    ));
                }
                other => panic!("unexpected {other}"),
            },
            _ => unreachable!(),
        }
    }
    r
}

fn check_answer(
    name: &str,
    frame: &Value,
    issued: Issued,
    h: &Harness,
    subs: &mut HashMap<String, SubscriptionId>,
) {
    let ok = frame["type"] == "result";
    match issued {
        Issued::Request(id) => match h.response(id) {
            Ok(data) => {
                assert!(ok, "{name}: error answer became Ok");
                assert_eq!(value(data), frame["data"], "{name}");
            }
            Err(RequestError::Server(e)) => {
                assert!(!ok, "{name}: result became an error");
                assert_eq!(e.code.as_str(), frame["code"].as_str().unwrap());
            }
            Err(other) => panic!("{name}: {other:?}"),
        },
        Issued::Subscribe(sub, _) => {
            let events = h.sub_events();
            if ok {
                let server_id = frame["data"]["subscriptionId"].as_str().unwrap();
                subs.insert(server_id.to_owned(), sub);
                let SubscriptionEvent::Ready { id, data } = events[0] else {
                    panic!("{name}: {events:?}")
                };
                assert_eq!(*id, sub);
                assert_eq!(data.as_ref().map(value), frame["data"].get("data").cloned());
                assert!(h.core.is_subscription_active(sub));
            } else {
                assert!(matches!(
                    events[..],
                    [SubscriptionEvent::Failed { id, error: RequestError::Server(_) }] if *id == sub
                ));
            }
        }
        Issued::Unsubscribe(_) => {
            // Internal: no event for the caller.
            assert!(h
                .events
                .iter()
                .all(|e| !matches!(e, Event::Response { .. } | Event::Subscription(_))));
        }
    }
}

#[test]
fn replay_basic() {
    let r = replay("basic");
    // Answers to the deliberately malformed requests (no catalogue constructor) are the
    // only ones not fed: foo.bar, store.nope, insert without bucket, transaction with an
    // invalid op, emit without topic.
    let mut skipped: Vec<u64> = r.answers_skipped.iter().map(|(_, id)| *id).collect();
    skipped.sort();
    assert_eq!(skipped, vec![33, 77, 78, 79, 83]);
    assert_eq!(r.answers_fed, 86 - skipped.len());
    // Pushes: sub-1 twice, sub-3 once, sub-5 once, sub-6 (rules events) four times.
    let counts: BTreeMap<&str, usize> = ["sub-1", "sub-3", "sub-5", "sub-6"]
        .iter()
        .map(|s| (*s, r.pushes.get(&r.subs[*s]).map_or(0, Vec::len)))
        .collect();
    assert_eq!(
        counts,
        BTreeMap::from([("sub-1", 2), ("sub-3", 1), ("sub-5", 1), ("sub-6", 4)])
    );
    assert_eq!(r.pongs, 2);
    // Four connections: normal close, heartbeat close 4001, shutdown, then 1003 (final).
    assert_eq!(r.h.opens.len(), 4);
    assert_eq!(r.h.core.state(), ConnectionState::Disconnected);
    assert_eq!(r.h.core.pending_entries(), 0);
    assert_eq!(r.h.core.counters().reconnects, 3);
}

#[test]
fn replay_identity() {
    let r = replay("identity");
    assert!(r.answers_skipped.is_empty(), "{:?}", r.answers_skipped);
    assert_eq!(r.answers_fed, 52 + 5);
    assert_eq!(r.h.opens.len(), 2);
    assert_eq!(r.h.core.pending_requests(), 0);
}

#[test]
fn replay_procedures_audit() {
    let r = replay("procedures-audit");
    assert!(r.answers_skipped.is_empty(), "{:?}", r.answers_skipped);
    assert_eq!(r.answers_fed, 31);
    assert_eq!(r.h.core.pending_requests(), 0);
    // The caller's own auth.login is remembered for the next connection.
    assert!(r.h.core.has_session_token());
}

#[test]
fn requests_correlate_to_the_ids_the_core_issued() {
    for name in TRANSCRIPTS {
        let r = replay(name);
        let issued: Vec<u64> = r.h.sends.iter().filter_map(|s| s.id()).collect();
        for req in r.requests.values() {
            let id = match req {
                Issued::Request(id) => id.0,
                Issued::Subscribe(_, id) | Issued::Unsubscribe(id) => *id,
            };
            assert!(issued.contains(&id), "{name}: {id} never sent");
        }
        // Every response event belongs to a request the core issued, exactly once.
        let mut seen = std::collections::BTreeSet::new();
        for e in &r.h.log {
            if let noex_proto::Output::Event(Event::Response { id, .. }) = e {
                assert!(
                    issued.contains(&id.0),
                    "{name}: response for unknown {id:?}"
                );
                assert!(seen.insert(*id), "{name}: {id:?} answered twice");
            }
        }
    }
}
