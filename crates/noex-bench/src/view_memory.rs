//! The memory a live view holds (`store().live::<Item>`: its `view()` and its keys and
//! versions) against the records' own size: a `Vec<Record<Item>>` of the same records
//! (what `store().subscribe::<Vec<Record<Item>>>` gave, shrunk to fit: the records and
//! nothing more).
//!
//! Measured as resident memory in fresh child processes (`noex-bench mem live <view|vec>
//! <n>`; the workspace forbids `unsafe`, which a counting global allocator needs), each
//! with a server of its own holding `n` records ([`crate::serve::copy_bucket`]). A child opens two views
//! (or subscriptions) of the whole bucket and reads each one's initial result, which
//! warms up the allocator with the reading's own buffers (the frame, the records read
//! once); then it opens `k` more, reading each, and reports the growth of its resident
//! memory over those `k`, divided by `k`: what one more view holds, read to the page over
//! several views. Both sides hold the same subscription besides (a few hundred bytes).
//!
//! The child also reports the same figure computed from the sizes it can see: the
//! records (`size_of::<Record<Item>>()` each, and their strings' capacities), plus, for
//! the view, 16 bytes a record for its keys and versions (what `LiveKeys` documents):
//! requested bytes, without the allocator's own overhead.

use futures::StreamExt;
use noex_tokio::{LiveQuery, Record, Subscription};
use serde_json::Value;

use crate::measure::rss_bytes;
use crate::push::Item;
use crate::serve::{copy_query, Server};
use crate::{block_on, mem_run, ours, row, thousands, verdict, Plan, Row};

/// The heap a record's strings hold.
fn record_heap(record: &Record<Item>) -> usize {
    let key = match &record.key {
        Value::String(s) => s.capacity(),
        _ => 0,
    };
    key + record.data.id.capacity() + record.data.group.capacity() + record.data.text.capacity()
}

/// Bytes of `records` held in a vector of capacity `capacity`.
fn records_size(records: &[Record<Item>], capacity: usize) -> usize {
    capacity * size_of::<Record<Item>>() + records.iter().map(record_heap).sum::<usize>()
}

/// What one view (or subscription) keeps alive.
enum Held {
    View(LiveQuery<Item>),
    Vec {
        /// Kept open, as the view's is.
        _subscription: Subscription<Vec<Record<Item>>>,
        records: Vec<Record<Item>>,
    },
}

impl Held {
    /// The computed size (see the module docs).
    fn computed(&self) -> usize {
        match self {
            // The view is built with the capacity of its records.
            Held::View(live) => {
                records_size(live.view(), live.view().len()) + 16 * live.view().len()
            }
            Held::Vec { records, .. } => records_size(records, records.capacity()),
        }
    }
}

/// `noex-bench mem live <view|vec> <n>`: prints `bytes <growth per view>`, `views <k>`
/// and `computed <bytes per view>`.
pub(crate) fn child(what: &str, n: usize) {
    let server = Server::spawn_with(&["--copies", "1", "--records", &n.to_string()]);
    let query = copy_query(0);
    let url = server.url().to_string();
    let what = what.to_string();
    let views = (20_000 / n.max(1)).max(3);
    let (bytes, computed) = block_on(0, async move {
        let client = ours::connect(&url).await;
        let store = client.store();
        let open = || async {
            match what.as_str() {
                "view" => {
                    let mut live = store.live::<Item>(&query).await.expect("live query");
                    let first = live.next().await.expect("a result").expect("records");
                    assert_eq!(first.added.len(), n);
                    Held::View(live)
                }
                "vec" => {
                    let mut sub = store
                        .subscribe::<Vec<Record<Item>>>(&query)
                        .await
                        .expect("subscribe");
                    let mut records = sub.next().await.expect("a result").expect("records");
                    assert_eq!(records.len(), n);
                    records.shrink_to_fit();
                    Held::Vec {
                        _subscription: sub,
                        records,
                    }
                }
                other => crate::usage(&format!("mem live <view|vec> <n>, not {other:?}")),
            }
        };
        let mut held = Vec::with_capacity(views + 2);
        for _ in 0..2 {
            held.push(open().await);
        }
        let before = rss_bytes();
        for _ in 0..views {
            held.push(open().await);
        }
        let after = rss_bytes();
        let computed = held[0].computed();
        drop(held);
        client.disconnect().await;
        (after.saturating_sub(before) as f64 / views as f64, computed)
    });
    drop(server);
    println!("bytes {bytes:.0}");
    println!("views {views}");
    println!("computed {computed}");
}

/// The memory rows of the `live` part.
pub(crate) fn rows(plan: &Plan, rows: &mut Vec<Row>) {
    for &n in &plan.view_sizes {
        let view = mem_run("live", "view", n, &["bytes", "views", "computed"]);
        let vec = mem_run("live", "vec", n, &["bytes", "views", "computed"]);
        let r = view[0] / vec[0].max(1.0);
        let computed = view[2] / vec[2].max(1.0);
        rows.push(row(
            format!(
                "memory of a live view, {} records (bytes per view, over {:.0} views; raw \
                 column: Vec<Record<T>> of the same records, shrunk to fit)",
                thousands(n),
                view[1]
            ),
            format!("{:.0}", view[0]),
            format!("{:.0}", vec[0]),
            format!("{r:.3}×"),
            &format!(
                "≤ 1.1×: {} (computed from the sizes: {:.0} / {:.0} bytes, {computed:.3}×)",
                verdict(r <= 1.1),
                view[2],
                vec[2]
            ),
        ));
    }
}
