//! Subscription counts and limits of `state::Core`, driven without sockets.

use std::collections::HashMap;

use serde_json::{json, Value};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use super::{Core, Outbound};
use crate::config::{BucketDef, QueryDef, TestServerBuilder};

/// A connection id the server never registered.
const NEVER_OPEN: u64 = 1_000_000;

/// A server without sockets: connections registered by hand, requests fed to
/// `on_text`, answers read from each connection's queue.
struct Harness {
    core: Core,
    out: HashMap<u64, UnboundedReceiver<Outbound>>,
    next_id: u64,
}

impl Harness {
    fn new(per_conn: usize, total: usize) -> Harness {
        let builder = TestServerBuilder::default()
            .bucket(BucketDef::new("users"))
            .query("all", QueryDef::all("users"))
            .max_subscriptions_per_connection(per_conn)
            .max_total_subscriptions(total);
        Harness {
            core: Core::new(builder.config).expect("core"),
            out: HashMap::new(),
            next_id: 0,
        }
    }

    fn open(&mut self) -> u64 {
        let (out, rx) = unbounded_channel();
        let (ctl, _ctl) = unbounded_channel();
        let conn = self
            .core
            .register(([127, 0, 0, 1], 9).into(), out, ctl)
            .expect("registered");
        self.out.insert(conn, rx);
        conn
    }

    fn close(&mut self, conn: u64) {
        self.core.unregister(conn);
        self.out.remove(&conn);
    }

    /// Send `req` on `conn`; its answer (`None` on a connection that is not open).
    fn ask(&mut self, conn: u64, mut req: Value) -> Option<Value> {
        self.next_id += 1;
        req["id"] = self.next_id.into();
        self.core.on_text(conn, &req.to_string());
        let rx = self.out.get_mut(&conn)?;
        let mut answer = None;
        while let Ok(frame) = rx.try_recv() {
            if let Outbound::Text(t) = frame {
                let v: Value = serde_json::from_str(&t).expect("json frame");
                if v["id"] == self.next_id {
                    answer = Some(v);
                }
            }
        }
        answer
    }

    /// The data of a successful answer.
    fn ok(&mut self, conn: u64, req: Value) -> Value {
        let a = self.ask(conn, req.clone()).expect("an answer");
        assert_eq!(a["type"], "result", "{req} → {a}");
        a["data"].clone()
    }

    /// The message of an error answer.
    fn err(&mut self, conn: u64, req: Value) -> String {
        let a = self.ask(conn, req.clone()).expect("an answer");
        assert_eq!(a["type"], "error", "{req} → {a}");
        a["message"].as_str().unwrap_or_default().to_string()
    }

    /// Subscription id of a new store subscription.
    fn store_sub(&mut self, conn: u64) -> Value {
        self.ok(conn, json!({"type": "store.subscribe", "query": "all"}))["subscriptionId"].clone()
    }

    /// Subscription id of a new rules subscription.
    fn rules_sub(&mut self, conn: u64) -> Value {
        self.ok(conn, json!({"type": "rules.subscribe", "pattern": "a.*"}))["subscriptionId"]
            .clone()
    }

    fn unsub(&mut self, conn: u64, kind: &str, id: &Value) -> Value {
        self.ok(
            conn,
            json!({"type": format!("{kind}.unsubscribe"), "subscriptionId": id}),
        )
    }

    /// `(storeSubscriptionCount, rulesSubscriptionCount)` of each open connection, by
    /// connection id, as `server.connections` reports them.
    fn reported(&mut self, asker: u64) -> Vec<(String, u64, u64)> {
        let list = self.ok(asker, json!({"type": "server.connections"}));
        list.as_array()
            .expect("array")
            .iter()
            .map(|c| {
                (
                    c["connectionId"].as_str().unwrap_or_default().to_string(),
                    c["storeSubscriptionCount"].as_u64().unwrap_or(u64::MAX),
                    c["rulesSubscriptionCount"].as_u64().unwrap_or(u64::MAX),
                )
            })
            .collect()
    }
}

fn per_conn_message(max: usize) -> String {
    format!("Subscription limit reached (max {max} per connection)")
}

#[test]
fn per_connection_limit_is_reached_exactly_at_max() {
    let mut h = Harness::new(3, 1_000);
    let (a, b) = (h.open(), h.open());
    let a1 = h.store_sub(a);
    let a2 = h.rules_sub(a);
    h.store_sub(a);
    for req in [
        json!({"type": "store.subscribe", "query": "all"}),
        json!({"type": "rules.subscribe", "pattern": "b"}),
    ] {
        assert_eq!(h.err(a, req), per_conn_message(3));
    }
    // Another connection has its own budget, and filling it leaves `a` at its limit.
    let b1 = h.rules_sub(b);
    h.rules_sub(b);
    h.store_sub(b);
    assert_eq!(
        h.err(b, json!({"type": "rules.subscribe", "pattern": "c"})),
        per_conn_message(3)
    );
    // Unsubscribing another connection's subscription, an unknown one, or one of the
    // other kind fails and frees nothing.
    let other = json!({"type": "store.unsubscribe", "subscriptionId": b1});
    h.err(a, other);
    h.err(
        a,
        json!({"type": "store.unsubscribe", "subscriptionId": "sub-999"}),
    );
    h.err(
        a,
        json!({"type": "store.unsubscribe", "subscriptionId": a2}),
    );
    h.err(
        a,
        json!({"type": "rules.unsubscribe", "subscriptionId": a1}),
    );
    assert_eq!(
        h.err(a, json!({"type": "store.subscribe", "query": "all"})),
        per_conn_message(3)
    );
    // One rules unsubscribe frees exactly one place, for either kind.
    h.unsub(a, "rules", &a2);
    h.err(
        a,
        json!({"type": "rules.unsubscribe", "subscriptionId": a2}),
    );
    h.store_sub(a);
    assert_eq!(
        h.err(a, json!({"type": "rules.subscribe", "pattern": "d"})),
        per_conn_message(3)
    );
    // One store unsubscribe, likewise.
    h.unsub(a, "store", &a1);
    let a4 = h.rules_sub(a);
    assert_eq!(
        h.err(a, json!({"type": "store.subscribe", "query": "all"})),
        per_conn_message(3)
    );
    // Closing `b` frees nothing of `a`'s budget; a new connection starts at zero.
    h.close(b);
    assert_eq!(
        h.err(a, json!({"type": "store.subscribe", "query": "all"})),
        per_conn_message(3)
    );
    let c = h.open();
    for _ in 0..3 {
        h.rules_sub(c);
    }
    assert_eq!(
        h.err(c, json!({"type": "store.subscribe", "query": "all"})),
        per_conn_message(3)
    );
    // Freeing two places allows exactly two more.
    h.unsub(a, "rules", &a4);
    let a3_store = h
        .core
        .store
        .subs
        .iter()
        .find(|s| s.conn == a)
        .map(|s| s.id.clone());
    h.unsub(
        a,
        "store",
        &Value::from(a3_store.expect("a store subscription")),
    );
    h.rules_sub(a);
    h.store_sub(a);
    assert_eq!(
        h.err(a, json!({"type": "rules.subscribe", "pattern": "e"})),
        per_conn_message(3)
    );
    assert_eq!(h.core.subscription_count(), 6);
}

#[test]
fn dead_store_subscriptions_still_count_until_unsubscribed() {
    let mut h = Harness::new(2, 1_000);
    let a = h.open();
    h.ok(
        a,
        json!({"type": "store.defineQuery", "name": "q", "config": {"bucket": "users"}}),
    );
    let q = h.ok(a, json!({"type": "store.subscribe", "query": "q"}))["subscriptionId"].clone();
    h.rules_sub(a);
    h.ok(a, json!({"type": "store.undefineQuery", "name": "q"}));
    // The server still holds the dead subscription: the connection is at its limit.
    assert_eq!(
        h.err(a, json!({"type": "rules.subscribe", "pattern": "x"})),
        per_conn_message(2)
    );
    assert_eq!(h.reported(a), [(format!("conn-{a}"), 1, 1)]);
    assert_eq!(h.core.subscription_count(), 2);
    assert_eq!(h.unsub(a, "store", &q), json!({"unsubscribed": true}));
    assert_eq!(h.reported(a), [(format!("conn-{a}"), 0, 1)]);
    h.store_sub(a);
}

#[test]
fn global_limit_counts_only_open_connections() {
    let mut h = Harness::new(100, 4);
    // Subscriptions held for a connection that is not open (requests handled for an
    // id never registered) are not counted server-wide, only against that id's limit.
    h.core.on_text(
        NEVER_OPEN,
        r#"{"id":1,"type":"store.subscribe","query":"all"}"#,
    );
    h.core.on_text(
        NEVER_OPEN,
        r#"{"id":2,"type":"rules.subscribe","pattern":"z"}"#,
    );
    assert_eq!(h.core.store.subs.conn_count(NEVER_OPEN), 1);
    assert_eq!(h.core.subscription_count(), 0);
    let global = "Global subscription limit reached (max 4)";
    let (a, b) = (h.open(), h.open());
    h.store_sub(a);
    let a2 = h.rules_sub(a);
    h.rules_sub(b);
    let b2 = h.store_sub(b);
    assert_eq!(h.core.subscription_count(), 4);
    assert_eq!(
        h.err(a, json!({"type": "store.subscribe", "query": "all"})),
        global
    );
    assert_eq!(
        h.err(b, json!({"type": "rules.subscribe", "pattern": "q"})),
        global
    );
    // The per-connection limit is checked first.
    h.core.cfg.max_subscriptions = 2;
    assert_eq!(
        h.err(a, json!({"type": "rules.subscribe", "pattern": "q"})),
        per_conn_message(2)
    );
    h.core.cfg.max_subscriptions = 100;
    // One unsubscribe frees one place server-wide.
    h.unsub(b, "store", &b2);
    assert_eq!(h.core.subscription_count(), 3);
    let c = h.open();
    h.store_sub(c);
    assert_eq!(
        h.err(c, json!({"type": "store.subscribe", "query": "all"})),
        global
    );
    // A connection closing frees its places.
    h.close(a);
    assert_eq!(h.core.subscription_count(), 2);
    h.err(
        c,
        json!({"type": "rules.unsubscribe", "subscriptionId": a2}),
    );
    h.rules_sub(c);
    h.store_sub(b);
    assert_eq!(
        h.err(b, json!({"type": "store.subscribe", "query": "all"})),
        global
    );
    assert_eq!(h.core.subscription_count(), 4);
    // `server.stats` totals are every subscription held, as before.
    let stats = h.ok(b, json!({"type": "server.stats"}));
    assert_eq!(stats["connections"]["totalStoreSubscriptions"], 3);
    assert_eq!(stats["connections"]["totalRulesSubscriptions"], 3);
}

#[test]
fn server_connections_reports_each_connections_counts() {
    let mut h = Harness::new(100, 1_000);
    let (a, b, c) = (h.open(), h.open(), h.open());
    let name = |id: u64| format!("conn-{id}");
    let a1 = h.store_sub(a);
    let b1 = h.rules_sub(b);
    let a2 = h.rules_sub(a);
    h.store_sub(a);
    h.store_sub(b);
    h.rules_sub(b);
    assert_eq!(
        h.reported(c),
        [(name(a), 2, 1), (name(b), 1, 2), (name(c), 0, 0)]
    );
    h.unsub(a, "store", &a1);
    assert_eq!(
        h.reported(c),
        [(name(a), 1, 1), (name(b), 1, 2), (name(c), 0, 0)]
    );
    h.unsub(a, "rules", &a2);
    h.unsub(b, "rules", &b1);
    assert_eq!(
        h.reported(a),
        [(name(a), 1, 0), (name(b), 1, 1), (name(c), 0, 0)]
    );
    h.close(b);
    assert_eq!(h.reported(c), [(name(a), 1, 0), (name(c), 0, 0)]);
    let d = h.open();
    h.rules_sub(d);
    assert_eq!(
        h.reported(d),
        [(name(a), 1, 0), (name(c), 0, 0), (name(d), 0, 1)]
    );
    // A restart ends every subscription.
    h.core.restart(true);
    assert_eq!(
        h.reported(d),
        [(name(a), 0, 0), (name(c), 0, 0), (name(d), 0, 0)]
    );
    assert_eq!(h.core.subscription_count(), 0);
}

/// The counts as the old code computed them: by scanning every subscription.
fn recount(core: &Core, conn: u64) -> (usize, usize) {
    let store = core.store.subs.iter().filter(|s| s.conn == conn).count();
    let rules = core
        .rules
        .as_ref()
        .map_or(0, |r| r.subs().iter().filter(|s| s.conn == conn).count());
    (store, rules)
}

/// Random subscribes, unsubscribes (right and wrong connection, kind and id),
/// closes, opens and restarts: after each step every count agrees with a scan of the
/// subscriptions, and the limits answer as the scan says they should.
#[test]
fn counts_agree_with_a_scan_after_random_operations() {
    let (per_conn, total) = (4, 9);
    let mut h = Harness::new(per_conn, total);
    let mut open: Vec<u64> = (0..3).map(|_| h.open()).collect();
    let mut closed: Vec<u64> = Vec::new();
    let mut ids: Vec<(&str, Value)> = Vec::new();
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |n: u64| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        usize::try_from((seed >> 33) % n).unwrap_or(0)
    };
    for step in 0..3_000 {
        let conn = open[next(open.len() as u64)];
        let (store, rules) = recount(&h.core, conn);
        let everyone: usize = open
            .iter()
            .map(|c| {
                let (s, r) = recount(&h.core, *c);
                s + r
            })
            .sum();
        let expected = if store + rules >= per_conn {
            Some(per_conn_message(per_conn))
        } else if everyone >= total {
            Some(format!("Global subscription limit reached (max {total})"))
        } else {
            None
        };
        match next(12) {
            0..=5 => {
                let (kind, req) = if next(2) == 0 {
                    ("store", json!({"type": "store.subscribe", "query": "all"}))
                } else {
                    (
                        "rules",
                        json!({"type": "rules.subscribe", "pattern": "t.*"}),
                    )
                };
                match &expected {
                    Some(message) => assert_eq!(&h.err(conn, req), message, "step {step}"),
                    None => {
                        let id = h.ok(conn, req)["subscriptionId"].clone();
                        ids.push((kind, id));
                    }
                }
            }
            6..=8 if !ids.is_empty() => {
                let (kind, id) = ids[next(ids.len() as u64)].clone();
                let kind = if next(5) == 0 {
                    if kind == "store" {
                        "rules"
                    } else {
                        "store"
                    }
                } else {
                    kind
                };
                let req = json!({"type": format!("{kind}.unsubscribe"), "subscriptionId": id});
                let _ = h.ask(conn, req);
            }
            9 => {
                if open.len() > 1 {
                    let i = next(open.len() as u64);
                    let c = open.remove(i);
                    h.close(c);
                    closed.push(c);
                }
                open.push(h.open());
            }
            10 if next(30) == 0 => h.core.restart(true),
            _ => {
                // A request for a connection that is not open (a closed one).
                if let Some(c) = closed.last() {
                    let req = r#"{"id":0,"type":"rules.subscribe","pattern":"t.*"}"#;
                    h.core.on_text(*c, req);
                }
            }
        }
        let scanned: usize = open
            .iter()
            .map(|c| {
                let (s, r) = recount(&h.core, *c);
                s + r
            })
            .sum();
        assert_eq!(h.core.subscription_count(), scanned, "step {step}");
        let reported = h.reported(open[0]);
        assert_eq!(reported.len(), open.len());
        for (c, (name, s, r)) in open.iter().zip(reported) {
            assert_eq!(name, format!("conn-{c}"));
            let (store, rules) = recount(&h.core, *c);
            assert_eq!(
                (s, r),
                (store as u64, rules as u64),
                "step {step}, conn {c}"
            );
        }
        for c in &closed {
            let (s, r) = recount(&h.core, *c);
            assert_eq!(h.core.store.subs.conn_count(*c), s, "step {step}");
            let rules = h.core.rules.as_ref().map_or(0, |x| x.subs().conn_count(*c));
            assert_eq!(rules, r, "step {step}");
        }
    }
}
