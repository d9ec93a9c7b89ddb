//! Request deadlines, in the order they fall due.
//!
//! Most requests have the configured timeout, and since ids are issued as time goes
//! forward, their deadlines fall due in id order: for them a set of ids in order is
//! enough, about a byte a request, no tree. Only requests with a timeout of their own (or
//! a deadline earlier than the last one queued, should the caller's clock go back) are
//! kept ordered by deadline.

use crate::id_table::IdTable;
use std::collections::BTreeSet;
use std::time::Instant;

#[derive(Debug, Default)]
pub(super) struct Deadlines {
    /// Requests with the configured timeout, in id order, which is the order their
    /// deadlines fall due.
    usual: IdTable<()>,
    /// The deadline of the last request queued in `usual`.
    last_usual: Option<Instant>,
    /// Every other deadline.
    other: BTreeSet<(Instant, u64)>,
}

impl Deadlines {
    /// Adds request `id`'s deadline; `usual` when it comes from the configured timeout.
    pub(super) fn add(&mut self, id: u64, deadline: Instant, usual: bool) {
        if usual && self.last_usual.is_none_or(|last| deadline >= last) {
            self.usual.insert(id, ());
            self.last_usual = Some(deadline);
        } else {
            self.other.insert((deadline, id));
        }
    }

    /// Request `id`, with `deadline`, ended.
    pub(super) fn remove(&mut self, id: u64, deadline: Instant) {
        if self.usual.remove(id).is_none() {
            self.other.remove(&(deadline, id));
        }
    }

    /// The deadline that falls due first, and its request. `deadline_of` gives a pending
    /// request's deadline.
    pub(super) fn first(
        &self,
        deadline_of: impl Fn(u64) -> Option<Instant>,
    ) -> Option<(Instant, u64)> {
        let usual = self
            .usual
            .first()
            .and_then(|(id, ())| Some((deadline_of(id)?, id)));
        let other = self.other.first().copied();
        match (usual, other) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::time::Duration;

    #[test]
    fn usual_and_other_deadlines_fall_due_in_order() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut pending: BTreeMap<u64, Instant> = BTreeMap::new();
        let mut deadlines = Deadlines::default();
        let mut add = |deadlines: &mut Deadlines, id: u64, when: Instant, usual: bool| {
            pending.insert(id, when);
            deadlines.add(id, when, usual);
            pending.clone()
        };
        add(&mut deadlines, 1, at(100), true);
        add(&mut deadlines, 2, at(50), false);
        add(&mut deadlines, 3, at(110), true);
        // The clock went back: queued by deadline instead.
        let mut pending = add(&mut deadlines, 4, at(90), true);
        let mut order = Vec::new();
        while let Some((when, id)) = deadlines.first(|id| pending.get(&id).copied()) {
            order.push(id);
            pending.remove(&id);
            deadlines.remove(id, when);
        }
        assert_eq!(order, [2, 4, 1, 3]);
    }
}
