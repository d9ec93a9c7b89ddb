//! The typed path against bare serde_json on the same bytes, in the same run.
//!
//! - `decode100/record`: a result of 100 records decoded into `Vec<Record<User>>` (the
//!   decoder the bucket handle uses: metadata read on the way, the rest streamed into
//!   `User`, no `serde_json::Value` in between), against
//!   `decode100/serde_json_raw`: `serde_json::from_str::<Vec<Raw>>` of the same text, `Raw`
//!   being `User` with the metadata as plain fields. `…_noid` rows: the same with a `User`
//!   that has no `id` field (the key is then copied once, into `Record::key`, as in `Raw`).
//! - `insert/ops`: `ops::store::insert` of a `User` and the request frame's text, against
//!   `insert/serde_json`: `serde_json::to_string` of the same request.
//!
//! `cargo bench -p noex-client --bench typed` prints each row's time; the ratios are
//! printed at the end (`typed: … ratio`).

use criterion::{criterion_group, Criterion};
use noex_client::Record;
use noex_proto::ops;
use serde::{Deserialize, Serialize};
use std::hint::black_box;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct User {
    name: String,
    age: u32,
    role: String,
    email: String,
    id: String,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Raw {
    name: String,
    age: u32,
    role: String,
    email: String,
    id: String,
    _version: u64,
    #[serde(rename = "_createdAt")]
    created_at: i64,
    #[serde(rename = "_updatedAt")]
    updated_at: i64,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct UserNoId {
    name: String,
    age: u32,
    role: String,
    email: String,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct RawNoId {
    name: String,
    age: u32,
    role: String,
    email: String,
    id: String,
    _version: u64,
    #[serde(rename = "_createdAt")]
    created_at: i64,
    #[serde(rename = "_updatedAt")]
    updated_at: i64,
}

fn user(i: usize) -> User {
    User {
        name: format!("User {i}"),
        age: 20 + (i % 50) as u32,
        role: "user".into(),
        email: format!("user{i}@example.com"),
        id: format!("d3d56717-a2d4-4dc3-aba3-{i:012}"),
    }
}

fn records_text() -> String {
    let records: Vec<serde_json::Value> = (0..100)
        .map(|i| {
            let mut v = serde_json::to_value(user(i)).unwrap();
            let o = v.as_object_mut().unwrap();
            o.insert("_version".into(), 3.into());
            o.insert("_createdAt".into(), 1795739063897_u64.into());
            o.insert("_updatedAt".into(), 1795739063901_u64.into());
            v
        })
        .collect();
    serde_json::to_string(&records).unwrap()
}

/// Mean time per iteration of `f`, measured over `for` (for the printed ratios).
fn mean(mut f: impl FnMut(), time: Duration) -> f64 {
    for _ in 0..100 {
        f();
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < time {
        for _ in 0..100 {
            f();
        }
        n += 100;
    }
    start.elapsed().as_secs_f64() / n as f64
}

fn bench_decode(c: &mut Criterion) {
    let text = records_text();
    let got: Vec<Record<User>> = serde_json::from_str(&text).unwrap();
    assert_eq!(got.len(), 100);
    assert_eq!(got[7].version, 3);
    assert_eq!(got[7].key, got[7].data.id.as_str());
    let mut group = c.benchmark_group("decode100");
    group.bench_function("record", |b| {
        b.iter(|| black_box(serde_json::from_str::<Vec<Record<User>>>(black_box(&text)).unwrap()))
    });
    group.bench_function("serde_json_raw", |b| {
        b.iter(|| black_box(serde_json::from_str::<Vec<Raw>>(black_box(&text)).unwrap()))
    });
    group.bench_function("record_noid", |b| {
        b.iter(|| {
            black_box(serde_json::from_str::<Vec<Record<UserNoId>>>(black_box(&text)).unwrap())
        })
    });
    group.bench_function("serde_json_raw_noid", |b| {
        b.iter(|| black_box(serde_json::from_str::<Vec<RawNoId>>(black_box(&text)).unwrap()))
    });
    group.finish();
}

#[derive(Serialize)]
struct InsertRequest<'a> {
    id: u64,
    #[serde(rename = "type")]
    kind: &'static str,
    bucket: &'a str,
    data: &'a User,
}

fn encode_ours(u: &User) -> String {
    ops::store::insert("users", u).into_frame(7)
}

fn encode_serde(u: &User) -> String {
    serde_json::to_string(&InsertRequest {
        id: 7,
        kind: "store.insert",
        bucket: "users",
        data: u,
    })
    .unwrap()
}

fn bench_encode(c: &mut Criterion) {
    let u = user(42);
    assert_eq!(encode_ours(&u), encode_serde(&u));
    let mut group = c.benchmark_group("insert");
    group.bench_function("ops", |b| b.iter(|| black_box(encode_ours(black_box(&u)))));
    group.bench_function("serde_json", |b| {
        b.iter(|| black_box(encode_serde(black_box(&u))))
    });
    group.finish();
}

/// The ratios, measured again side by side (interleaved, so drift hits both alike).
fn ratios() {
    let text = records_text();
    let u = user(42);
    let time = Duration::from_millis(500);
    let mut rows = Vec::new();
    type Pair = (&'static str, Box<dyn FnMut()>, Box<dyn FnMut()>, f64);
    let t1 = text.clone();
    let t2 = text.clone();
    let t3 = text.clone();
    let t4 = text.clone();
    let t5 = text.clone();
    let t6 = text;
    let (u1, u2) = (u.clone(), u);
    let pairs: Vec<Pair> = vec![
        (
            "decode 100 records: Vec<Record<User>> / Vec<Raw>",
            Box::new(move || {
                black_box(serde_json::from_str::<Vec<Record<User>>>(&t1).unwrap());
            }),
            Box::new(move || {
                black_box(serde_json::from_str::<Vec<Raw>>(&t2).unwrap());
            }),
            1.1,
        ),
        (
            "decode 100 records, T without id: Vec<Record<T>> / Vec<Raw>",
            Box::new(move || {
                black_box(serde_json::from_str::<Vec<Record<UserNoId>>>(&t3).unwrap());
            }),
            Box::new(move || {
                black_box(serde_json::from_str::<Vec<RawNoId>>(&t4).unwrap());
            }),
            1.1,
        ),
        (
            "for reference, through a Value tree (the bucket's path before): / Vec<Raw>",
            Box::new(move || {
                let values: Vec<serde_json::Value> = serde_json::from_str(&t5).unwrap();
                let records: Vec<Record<User>> = values
                    .into_iter()
                    .map(|v| Record::from_value(v, "id").unwrap())
                    .collect();
                black_box(records);
            }),
            Box::new(move || {
                black_box(serde_json::from_str::<Vec<Raw>>(&t6).unwrap());
            }),
            f64::INFINITY,
        ),
        (
            "encode an insert: ops::store::insert(..).into_frame(id) / serde_json::to_string",
            Box::new(move || {
                black_box(encode_ours(&u1));
            }),
            Box::new(move || {
                black_box(encode_serde(&u2));
            }),
            1.1,
        ),
    ];
    for (what, mut ours, mut bare, target) in pairs {
        let (mut a, mut b) = (0.0, 0.0);
        for _ in 0..5 {
            a += mean(&mut ours, time / 5);
            b += mean(&mut bare, time / 5);
        }
        let ratio = a / b;
        rows.push(format!(
            "typed: {what}: {:.2} µs / {:.2} µs = ratio {ratio:.3}{}",
            a / 5.0 * 1e6,
            b / 5.0 * 1e6,
            if target.is_infinite() {
                String::new()
            } else if ratio <= target {
                format!(" (target ≤ {target}: met)")
            } else {
                format!(" (target ≤ {target}: MISSED)")
            }
        ));
    }
    for row in rows {
        println!("{row}");
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench_decode, bench_encode
}

/// `NOEX_TYPED_ONLY=NAME:N` runs one row's function `N` times and nothing else, for
/// instruction counts, which stay put where wall time does not on a noisy machine:
/// `valgrind --tool=callgrind` at `N` and at 0, the difference divided by `N`. NAME is one
/// of `decode`, `decode_raw`, `decode_noid`, `decode_raw_noid`, `encode`, `encode_serde`.
fn only(spec: &str) {
    let (name, n) = spec.split_once(':').expect("NOEX_TYPED_ONLY=NAME:N");
    let n: usize = n.parse().expect("N");
    let text = records_text();
    let u = user(42);
    for _ in 0..n {
        match name {
            "decode" => drop(black_box(
                serde_json::from_str::<Vec<Record<User>>>(black_box(&text)).unwrap(),
            )),
            "decode_raw" => drop(black_box(
                serde_json::from_str::<Vec<Raw>>(black_box(&text)).unwrap(),
            )),
            "decode_noid" => drop(black_box(
                serde_json::from_str::<Vec<Record<UserNoId>>>(black_box(&text)).unwrap(),
            )),
            "decode_raw_noid" => drop(black_box(
                serde_json::from_str::<Vec<RawNoId>>(black_box(&text)).unwrap(),
            )),
            "encode" => drop(black_box(encode_ours(black_box(&u)))),
            "encode_serde" => drop(black_box(encode_serde(black_box(&u)))),
            other => panic!("NOEX_TYPED_ONLY: unknown row {other}"),
        }
    }
}

fn main() {
    if let Ok(spec) = std::env::var("NOEX_TYPED_ONLY") {
        return only(&spec);
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
    ratios();
}
