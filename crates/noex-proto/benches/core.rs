//! The core's own cost beside JSON parsing.
//!
//! - `result/core`: one request through a connected core: `request` → the `Send` drained →
//!   a `result` frame carrying a typical record → the `Response` event drained.
//! - `push100/core`: one `push` carrying 100 records through a registered subscription → the
//!   `Update` event drained.
//! - `subscribe100/core`: one subscribe → the `Send` drained → its answer carrying 100
//!   records (members in the server's order) → the `Ready` event drained: what a restore
//!   costs the core per subscription.
//!
//! - `live1000/apply`: [`LiveKeys::apply`] on a 1 000-record result with one record
//!   changed since the last (two results taken in turn, each one change from the other):
//!   what a live view reads of every push before it reads the changed record.
//!
//! Each of the first three is paired with `serde_json::from_str::<serde_json::Value>` on
//! the same bytes (`…/serde_json_value`), the baseline the issue asks the ratio against;
//! `live1000` with `serde_json::from_str::<Vec<Rec>>` of the same text
//! (`live1000/serde_json_records`, `Rec` a derived struct of the records' fields): what
//! reading each push into the application's records costs.

use criterion::{criterion_group, criterion_main, Criterion};
use noex_proto::live::LiveKeys;
use noex_proto::{
    ops, ClientCore, Config, ConnectionId, Event, Input, Output, Payload, SubscriptionData,
    SubscriptionSpec,
};
use serde_json::json;
use std::hint::black_box;
use std::time::{Duration, Instant};

fn record(i: usize) -> serde_json::Value {
    json!({
        "name": format!("User {i}"), "age": 20 + (i % 50), "role": "user",
        "email": format!("user{i}@example.com"),
        "id": "d3d56717-a2d4-4dc3-aba3-5b24ff8818fc",
        "_version": 3, "_createdAt": 1795739063897_u64, "_updatedAt": 1795739063901_u64
    })
}

fn connected_core(now: Instant) -> (ClientCore, ConnectionId) {
    let mut core = ClientCore::new(Config::new("ws://bench"), 1);
    core.connect(now);
    let conn = ConnectionId(1);
    core.handle_input(now, conn, Input::Opened);
    core.handle_input(
        now,
        conn,
        Input::Frame(r#"{"type":"welcome","version":"1.0.0","serverTime":1,"requiresAuth":false}"#),
    );
    while core.poll_output().is_some() {}
    (core, conn)
}

fn result_frame(id: u64) -> String {
    json!({"id": id, "type": "result", "data": record(1)}).to_string()
}

fn bench_result(c: &mut Criterion) {
    let mut group = c.benchmark_group("result");
    let now = Instant::now();
    let (mut core, conn) = connected_core(now);
    let key = json!("d3d56717-a2d4-4dc3-aba3-5b24ff8818fc");
    let mut next_id = 1_u64;
    group.bench_function("core", |b| {
        b.iter_custom(|iters| {
            // Frames are prepared outside the measurement: each answers the next id.
            let frames: Vec<String> = (0..iters).map(|i| result_frame(next_id + i)).collect();
            let start = Instant::now();
            for frame in &frames {
                let id = core.request(now, ops::store::get("users", &key)).unwrap();
                let Some(Output::Send { text, .. }) = core.poll_output() else {
                    panic!("no send")
                };
                black_box(text);
                core.handle_input(now, conn, Input::Frame(frame));
                let Some(Output::Event(Event::Response { id: got, result })) = core.poll_output()
                else {
                    panic!("no response")
                };
                assert_eq!(got, id);
                black_box(result.unwrap());
            }
            let elapsed = start.elapsed();
            next_id += iters;
            elapsed
        })
    });
    let sample = result_frame(123_456);
    group.bench_function("serde_json_value", |b| {
        b.iter(|| black_box(serde_json::from_str::<serde_json::Value>(black_box(&sample)).unwrap()))
    });
    group.finish();
}

fn bench_push(c: &mut Criterion) {
    let mut group = c.benchmark_group("push100");
    let now = Instant::now();
    let (mut core, conn) = connected_core(now);
    core.subscribe(now, SubscriptionSpec::query("all-users", None))
        .unwrap();
    let Some(Output::Send { text, .. }) = core.poll_output() else {
        panic!("no subscribe")
    };
    let req: serde_json::Value = serde_json::from_str(&text).unwrap();
    let answer = json!({"id": req["id"], "type": "result",
                        "data": {"subscriptionId": "sub-1", "data": []}})
    .to_string();
    core.handle_input(now, conn, Input::Frame(&answer));
    while core.poll_output().is_some() {}
    let records: Vec<_> = (0..100).map(record).collect();
    let push = json!({"type": "push", "channel": "subscription", "subscriptionId": "sub-1",
                      "data": records})
    .to_string();
    group.bench_function("core", |b| {
        b.iter(|| {
            core.handle_input(now, conn, Input::Frame(black_box(&push)));
            let Some(Output::Event(event)) = core.poll_output() else {
                panic!("no update")
            };
            black_box(event)
        })
    });
    group.bench_function("serde_json_value", |b| {
        b.iter(|| black_box(serde_json::from_str::<serde_json::Value>(black_box(&push)).unwrap()))
    });
    group.finish();
}

fn bench_subscribe(c: &mut Criterion) {
    let mut group = c.benchmark_group("subscribe100");
    let now = Instant::now();
    let (mut core, conn) = connected_core(now);
    let records = serde_json::Value::Array((0..100).map(record).collect());
    let answer = |id: u64| {
        format!(
            r#"{{"id":{id},"type":"result","data":{{"subscriptionId":"sub-{id}","data":{records}}}}}"#
        )
    };
    let mut next_id = None::<u64>;
    group.bench_function("core", |b| {
        b.iter_custom(|iters| {
            // Request ids are consecutive; the first is learnt from the first subscribe, and
            // frames are prepared outside the measurement.
            let first = *next_id.get_or_insert_with(|| {
                core.subscribe(now, SubscriptionSpec::query("all-users", None))
                    .unwrap();
                let Some(Output::Send {
                    request: Some(id), ..
                }) = core.poll_output()
                else {
                    panic!("no subscribe")
                };
                core.handle_input(now, conn, Input::Frame(&answer(id.0)));
                while core.poll_output().is_some() {}
                id.0 + 1
            });
            let frames: Vec<String> = (first..first + iters).map(answer).collect();
            let start = Instant::now();
            for (frame, id) in frames.iter().zip(first..) {
                core.subscribe(now, SubscriptionSpec::query("all-users", None))
                    .unwrap();
                let Some(Output::Send {
                    request: Some(sent),
                    ..
                }) = core.poll_output()
                else {
                    panic!("no subscribe")
                };
                assert_eq!(sent.0, id);
                core.handle_input(now, conn, Input::Frame(frame));
                let Some(Output::Event(event)) = core.poll_output() else {
                    panic!("no ready")
                };
                black_box(event);
            }
            let elapsed = start.elapsed();
            next_id = Some(first + iters);
            elapsed
        })
    });
    let sample = answer(123_456);
    group.bench_function("serde_json_value", |b| {
        b.iter(|| black_box(serde_json::from_str::<serde_json::Value>(black_box(&sample)).unwrap()))
    });
    group.finish();
}

/// A record of the live result: `record(i)`'s fields, its own key, version `version`.
fn live_record(i: usize, version: u64) -> serde_json::Value {
    let mut record = record(i);
    record["id"] = json!(format!("user-{i:04}"));
    record["_version"] = json!(version);
    record
}

/// The records' own type, as an application would declare it.
#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct Rec {
    id: String,
    name: String,
    age: u32,
    role: String,
    email: String,
    #[serde(rename = "_version")]
    version: u64,
    #[serde(rename = "_createdAt")]
    created_at: i64,
    #[serde(rename = "_updatedAt")]
    updated_at: i64,
}

fn bench_live(c: &mut Criterion) {
    let mut group = c.benchmark_group("live1000");
    // Two results, record 500's version one apart: each apply sees one record changed.
    let result = |changed: u64| {
        let records: Vec<_> = (0..1000)
            .map(|i| live_record(i, if i == 500 { 3 + changed } else { 3 }))
            .collect();
        serde_json::Value::Array(records).to_string()
    };
    let texts = [result(0), result(1)];
    let data = texts
        .each_ref()
        .map(|t| SubscriptionData::from(Payload::from_json(t).unwrap()));
    let mut keys = LiveKeys::new("id");
    keys.apply(&data[0]).unwrap();
    let mut turn = 0;
    group.bench_function("apply", |b| {
        b.iter(|| {
            turn ^= 1;
            let changes = keys.apply(black_box(&data[turn])).unwrap();
            assert_eq!(changes.updated(), 1);
            black_box(changes.records.len())
        })
    });
    group.bench_function("serde_json_records", |b| {
        b.iter(|| black_box(serde_json::from_str::<Vec<Rec>>(black_box(&texts[0])).unwrap()))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench_result, bench_push, bench_subscribe, bench_live
}
criterion_main!(benches);
