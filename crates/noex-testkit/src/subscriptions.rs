//! Subscription bookkeeping shared by the store and the rule engine: the subscriptions
//! in registration order, indexed by connection, so that counting one connection's
//! subscriptions, unsubscribing one and dropping a connection's do not scan them all.

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Subscriptions of type `T`, each registered under a connection and a subscription id.
///
/// Iteration is in registration order (pushes are sent in it) and removal keeps that
/// order, as a `Vec` with order-preserving removal would. A connection's count, removal
/// by `(connection, id)` and dropping a connection cost O(log n) per subscription
/// concerned, not a scan of all of them.
///
/// Ids are unique per connection in practice (the server mints `sub-N`); a repeated one is
/// nevertheless kept as a further subscription, counted and removable.
#[derive(Debug, Clone)]
pub(crate) struct SubRegistry<T> {
    /// The subscriptions by registration number: iterating is registration order.
    items: BTreeMap<u64, T>,
    /// For each connection holding subscriptions (and only those): `(subscription id,
    /// registration number)` of each of them. Its length is the connection's count.
    by_conn: HashMap<u64, BTreeSet<(String, u64)>>,
    /// The registration number of the next subscription.
    next: u64,
}

impl<T> Default for SubRegistry<T> {
    fn default() -> Self {
        SubRegistry {
            items: BTreeMap::new(),
            by_conn: HashMap::new(),
            next: 0,
        }
    }
}

impl<T> SubRegistry<T> {
    /// Register `item` as subscription `id` of connection `conn`, after all others.
    pub(crate) fn insert(&mut self, conn: u64, id: String, item: T) {
        let seq = self.next;
        // 2^64 registrations cannot happen; wrapping keeps this free of overflow panics.
        self.next = self.next.wrapping_add(1);
        self.items.insert(seq, item);
        self.by_conn.entry(conn).or_default().insert((id, seq));
    }

    /// All subscriptions, of every connection (open or not).
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    /// Subscriptions of connection `conn`.
    pub(crate) fn conn_count(&self, conn: u64) -> usize {
        self.by_conn.get(&conn).map_or(0, BTreeSet::len)
    }

    /// `(connection, its subscription count)` for each connection holding any.
    pub(crate) fn conn_counts(&self) -> impl Iterator<Item = (u64, usize)> + '_ {
        self.by_conn.iter().map(|(conn, subs)| (*conn, subs.len()))
    }

    /// The subscriptions in registration order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.items.values()
    }

    /// The subscriptions in registration order, mutably.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> + '_ {
        self.items.values_mut()
    }

    /// Remove the earliest registered subscription `id` of `conn`; `None` when there is
    /// none.
    pub(crate) fn remove_first(&mut self, conn: u64, id: &str) -> Option<T> {
        let subs = self.by_conn.get_mut(&conn)?;
        let lowest = (id.to_string(), 0);
        let key = subs
            .range(&lowest..)
            .next()
            .filter(|(found, _)| found == id)?
            .clone();
        subs.remove(&key);
        if subs.is_empty() {
            self.by_conn.remove(&conn);
        }
        self.items.remove(&key.1)
    }

    /// Remove every subscription `id` of `conn`; returns how many there were.
    pub(crate) fn remove_all(&mut self, conn: u64, id: &str) -> usize {
        let mut n = 0;
        while self.remove_first(conn, id).is_some() {
            n += 1;
        }
        n
    }

    /// Remove all subscriptions of `conn`; returns them in registration order.
    pub(crate) fn remove_conn(&mut self, conn: u64) -> Vec<T> {
        let Some(subs) = self.by_conn.remove(&conn) else {
            return Vec::new();
        };
        let mut seqs: Vec<u64> = subs.into_iter().map(|(_, seq)| seq).collect();
        seqs.sort_unstable();
        seqs.into_iter()
            .filter_map(|seq| self.items.remove(&seq))
            .collect()
    }

    /// Remove every subscription.
    pub(crate) fn clear(&mut self) {
        self.items.clear();
        self.by_conn.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::SubRegistry;

    /// `(conn, id, tag)` of each subscription in iteration order.
    fn listed(r: &SubRegistry<(u64, String, u32)>) -> Vec<(u64, String, u32)> {
        r.iter().cloned().collect()
    }

    fn add(r: &mut SubRegistry<(u64, String, u32)>, conn: u64, id: &str, tag: u32) {
        r.insert(conn, id.to_string(), (conn, id.to_string(), tag));
    }

    #[test]
    fn removal_keeps_registration_order() {
        let mut r = SubRegistry::default();
        for (i, (conn, id)) in [(1, "a"), (2, "b"), (1, "c"), (3, "d"), (2, "e"), (1, "f")]
            .into_iter()
            .enumerate()
        {
            add(&mut r, conn, id, i as u32);
        }
        assert!(r.remove_first(1, "c").is_some());
        assert!(r.remove_first(1, "c").is_none(), "already gone");
        assert!(r.remove_first(2, "a").is_none(), "another connection's id");
        let tags: Vec<u32> = listed(&r).into_iter().map(|s| s.2).collect();
        assert_eq!(tags, [0, 1, 3, 4, 5]);
        let gone: Vec<u32> = r.remove_conn(2).into_iter().map(|s| s.2).collect();
        assert_eq!(
            gone,
            [1, 4],
            "a connection's subscriptions in registration order"
        );
        let tags: Vec<u32> = listed(&r).into_iter().map(|s| s.2).collect();
        assert_eq!(tags, [0, 3, 5]);
        assert_eq!(
            (r.conn_count(1), r.conn_count(2), r.conn_count(3)),
            (2, 0, 1)
        );
        assert_eq!(r.len(), 3);
        // Subscriptions registered later still come last.
        add(&mut r, 2, "g", 6);
        let tags: Vec<u32> = listed(&r).into_iter().map(|s| s.2).collect();
        assert_eq!(tags, [0, 3, 5, 6]);
        r.clear();
        assert_eq!(
            (r.len(), r.conn_count(1), r.conn_counts().count()),
            (0, 0, 0)
        );
    }

    #[test]
    fn repeated_ids_are_separate_subscriptions() {
        let mut r = SubRegistry::default();
        add(&mut r, 1, "x", 0);
        add(&mut r, 1, "y", 1);
        add(&mut r, 1, "x", 2);
        add(&mut r, 2, "x", 3);
        assert_eq!(r.conn_count(1), 3);
        // The earliest one first, as `Vec::position` + `remove` found it.
        assert_eq!(r.remove_first(1, "x").map(|s| s.2), Some(0));
        assert_eq!(r.conn_count(1), 2);
        add(&mut r, 1, "x", 4);
        assert_eq!(r.remove_all(1, "x"), 2);
        assert_eq!(r.conn_count(1), 1);
        assert_eq!(r.conn_count(2), 1);
        let tags: Vec<u32> = listed(&r).into_iter().map(|s| s.2).collect();
        assert_eq!(tags, [1, 3]);
        assert_eq!(r.remove_all(1, "x"), 0);
    }

    /// Random operations against a plain `Vec` model (the old representation): the same
    /// subscriptions in the same order, and every count right, after each step.
    #[test]
    fn matches_a_vec_model() {
        let mut r = SubRegistry::default();
        let mut model: Vec<(u64, String, u32)> = Vec::new();
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |n: u64| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % n
        };
        for step in 0..5_000u32 {
            let conn = next(5);
            // Few ids, so repeats and misses happen.
            let id = format!("s{}", next(12));
            match next(10) {
                0..=4 => {
                    add(&mut r, conn, &id, step);
                    model.push((conn, id, step));
                }
                5..=6 => {
                    let got = r.remove_first(conn, &id);
                    let want = model
                        .iter()
                        .position(|s| s.0 == conn && s.1 == id)
                        .map(|i| model.remove(i));
                    assert_eq!(got, want);
                }
                7 => {
                    let before = model.len();
                    model.retain(|s| !(s.0 == conn && s.1 == id));
                    assert_eq!(r.remove_all(conn, &id), before - model.len());
                }
                8 => {
                    let want: Vec<_> = model.iter().filter(|s| s.0 == conn).cloned().collect();
                    model.retain(|s| s.0 != conn);
                    assert_eq!(r.remove_conn(conn), want);
                }
                _ => {
                    if next(20) == 0 {
                        r.clear();
                        model.clear();
                    }
                }
            }
            assert_eq!(listed(&r), model, "step {step}");
            assert_eq!(r.len(), model.len());
            for c in 0..5 {
                let want = model.iter().filter(|s| s.0 == c).count();
                assert_eq!(r.conn_count(c), want, "step {step}, conn {c}");
            }
            assert!(r.conn_counts().all(|(_, n)| n > 0), "no empty entries");
        }
    }
}
