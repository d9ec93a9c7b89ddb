//! [`IdTable`]: a map keyed by ids that are issued in increasing order and mostly end in
//! about that order, such as the core's request ids.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

/// Slots per block of the window.
const BLOCK: usize = 32;

/// Slots a window may hold beyond twice its live entries before its oldest entries move
/// out of it (see [`IdTable`]).
const SLACK: usize = 2 * BLOCK;

/// A map from increasing `u64` ids to values, as dense as a vector for ids that end in
/// about the order they were issued, and still bounded when some do not.
///
/// The recent ids live in a window: a queue of fixed-size blocks of slots, one slot per id
/// (no hashing, no tree nodes, filled in order, and never copied to grow). An id that ends
/// frees its slot; a block at either end of the window is freed once all its slots are.
/// An id that stays while many later ones end (a slow request among fast ones) would keep
/// the window from moving on, so once the window holds more than twice as many slots as
/// live entries (plus a small slack), its oldest entries move to an ordered map beside it.
/// The window therefore never holds more than about twice as many slots as live entries,
/// whatever the order of endings.
///
/// The core keeps its pending requests in one, and a driver can keep what it owes each
/// request (a reply channel, a waker) in another, keyed by [`crate::RequestId`].
///
/// ```
/// use noex_proto::__private::IdTable;
/// let mut table = IdTable::new();
/// for id in 1..=5 {
///     table.insert(id, id * 10);
/// }
/// assert_eq!(table.remove(2), Some(20));
/// assert_eq!(table.get(3), Some(&30));
/// assert_eq!(table.ids().collect::<Vec<_>>(), [1, 3, 4, 5]);
/// assert_eq!(table.first(), Some((1, &10)));
/// assert_eq!(table.len(), 4);
/// ```
pub struct IdTable<V> {
    /// The id of the first block's first slot; a multiple of [`BLOCK`].
    base: u64,
    blocks: VecDeque<Box<Block<V>>>,
    /// Live entries in the window.
    in_window: usize,
    /// Entries older than the window (every key is below `base`).
    spill: BTreeMap<u64, V>,
}

struct Block<V> {
    live: usize,
    slots: [Option<V>; BLOCK],
}

impl<V> Block<V> {
    fn new() -> Box<Block<V>> {
        Box::new(Block {
            live: 0,
            slots: std::array::from_fn(|_| None),
        })
    }
}

impl<V> Default for IdTable<V> {
    fn default() -> Self {
        IdTable::new()
    }
}

impl<V: fmt::Debug> fmt::Debug for IdTable<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<V> IdTable<V> {
    /// An empty table.
    pub fn new() -> IdTable<V> {
        IdTable {
            base: 0,
            blocks: VecDeque::new(),
            in_window: 0,
            spill: BTreeMap::new(),
        }
    }

    /// How many entries it holds.
    pub fn len(&self) -> usize {
        self.in_window + self.spill.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Slots in the window.
    fn window_len(&self) -> usize {
        self.blocks.len() * BLOCK
    }

    /// The block and slot for `id`, if `id` is in the window's range.
    fn slot(&self, id: u64) -> Option<(usize, usize)> {
        let offset = usize::try_from(id.checked_sub(self.base)?).ok()?;
        let block = offset / BLOCK;
        (block < self.blocks.len()).then_some((block, offset % BLOCK))
    }

    /// Adds `value` under `id`, returning the value it replaces. Ids are expected to come in
    /// increasing order; any other order works, only less densely.
    pub fn insert(&mut self, id: u64, value: V) -> Option<V> {
        if id < self.base {
            return self.spill.insert(id, value);
        }
        if self.blocks.is_empty() {
            self.base = id - id % BLOCK as u64;
        }
        if self.slot(id).is_none() {
            let end = self.base.saturating_add(self.window_len() as u64);
            let blocks_needed = (id - end) / BLOCK as u64 + 1;
            if blocks_needed > (self.blocks.len() + SLACK / BLOCK) as u64 {
                // Far ahead of the window: everything in it is older, and moves out.
                self.spill_all();
                self.base = id - id % BLOCK as u64;
                self.blocks.push_back(Block::new());
            } else {
                self.blocks.extend((0..blocks_needed).map(|_| Block::new()));
            }
        }
        let (block, slot) = self.slot(id)?;
        let block = &mut self.blocks[block];
        let old = block.slots[slot].replace(value);
        if old.is_none() {
            block.live += 1;
            self.in_window += 1;
            self.compact();
        }
        old
    }

    /// The value under `id`.
    pub fn get(&self, id: u64) -> Option<&V> {
        match self.slot(id) {
            Some((block, slot)) => self.blocks[block].slots[slot].as_ref(),
            None => self.spill.get(&id),
        }
    }

    /// The value under `id`, mutably.
    pub fn get_mut(&mut self, id: u64) -> Option<&mut V> {
        match self.slot(id) {
            Some((block, slot)) => self.blocks[block].slots[slot].as_mut(),
            None => self.spill.get_mut(&id),
        }
    }

    /// Whether it holds `id`.
    pub fn contains(&self, id: u64) -> bool {
        self.get(id).is_some()
    }

    /// Removes and returns the value under `id`.
    pub fn remove(&mut self, id: u64) -> Option<V> {
        let Some((block, slot)) = self.slot(id) else {
            return self.spill.remove(&id);
        };
        let block = &mut self.blocks[block];
        let value = block.slots[slot].take()?;
        block.live -= 1;
        self.in_window -= 1;
        self.trim();
        self.compact();
        Some(value)
    }

    /// The entry with the smallest id.
    pub fn first(&self) -> Option<(u64, &V)> {
        if let Some((&id, value)) = self.spill.first_key_value() {
            return Some((id, value));
        }
        // The window's first block holds a live entry (see `trim`).
        let block = self.blocks.front()?;
        let (slot, value) = block
            .slots
            .iter()
            .enumerate()
            .find_map(|(slot, v)| Some((slot, v.as_ref()?)))?;
        Some((self.base + slot as u64, value))
    }

    /// The ids, in increasing order.
    pub fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.iter().map(|(id, _)| id)
    }

    /// The entries, in increasing order of id.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &V)> + '_ {
        let base = self.base;
        let window = self.blocks.iter().enumerate().flat_map(move |(b, block)| {
            let start = base + (b * BLOCK) as u64;
            block
                .slots
                .iter()
                .enumerate()
                .filter_map(move |(i, v)| Some((start + i as u64, v.as_ref()?)))
        });
        self.spill.iter().map(|(&id, v)| (id, v)).chain(window)
    }

    /// Removes every entry, returning them in increasing order of id.
    pub fn drain(&mut self) -> Vec<(u64, V)> {
        let mut all: Vec<(u64, V)> = std::mem::take(&mut self.spill).into_iter().collect();
        while let Some(block) = self.blocks.pop_front() {
            let start = self.base;
            self.base = self.base.saturating_add(BLOCK as u64);
            all.extend(
                block
                    .slots
                    .into_iter()
                    .enumerate()
                    .filter_map(|(i, v)| Some((start + i as u64, v?))),
            );
        }
        self.in_window = 0;
        all
    }

    /// Frees the empty blocks at both ends of the window.
    fn trim(&mut self) {
        while self.blocks.front().is_some_and(|b| b.live == 0) {
            self.blocks.pop_front();
            self.base = self.base.saturating_add(BLOCK as u64);
        }
        while self.blocks.back().is_some_and(|b| b.live == 0) {
            self.blocks.pop_back();
        }
    }

    /// Moves the window's oldest entries out until it is at least about half full.
    fn compact(&mut self) {
        while self.window_len() > 2 * self.in_window + SLACK {
            let Some(block) = self.blocks.pop_front() else {
                break;
            };
            self.move_out(*block);
            self.trim();
        }
    }

    fn spill_all(&mut self) {
        while let Some(block) = self.blocks.pop_front() {
            self.move_out(*block);
        }
    }

    /// Moves the entries of `block`, just taken from the window's front, to the spill map.
    fn move_out(&mut self, block: Block<V>) {
        let start = self.base;
        self.base = self.base.saturating_add(BLOCK as u64);
        self.in_window -= block.live;
        for (i, value) in block.slots.into_iter().enumerate() {
            if let Some(value) = value {
                self.spill.insert(start + i as u64, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Checks the table against a plain ordered map after every step.
    fn same<V: PartialEq + fmt::Debug + Clone>(table: &IdTable<V>, model: &BTreeMap<u64, V>) {
        assert_eq!(table.len(), model.len());
        let got: Vec<(u64, V)> = table.iter().map(|(k, v)| (k, v.clone())).collect();
        let want: Vec<(u64, V)> = model.iter().map(|(k, v)| (*k, v.clone())).collect();
        assert_eq!(got, want);
        assert_eq!(
            table.first().map(|(k, v)| (k, v.clone())),
            want.first().cloned()
        );
        assert!(table.spill.keys().all(|&k| k < table.base));
        assert!(table.blocks.front().is_none_or(|b| b.live > 0));
        assert!(table.blocks.back().is_none_or(|b| b.live > 0));
        assert_eq!(
            table.blocks.iter().map(|b| b.live).sum::<usize>(),
            table.in_window
        );
        assert!(table.window_len() <= 2 * table.in_window + SLACK + BLOCK);
    }

    #[test]
    fn a_slow_entry_among_fast_ones_keeps_the_window_small() {
        let mut table = IdTable::new();
        let mut model = BTreeMap::new();
        table.insert(1, 1);
        model.insert(1, 1);
        for id in 2..10_000u64 {
            table.insert(id, id);
            model.insert(id, id);
            if id > 3 {
                assert_eq!(table.remove(id - 2), model.remove(&(id - 2)));
            }
            same(&table, &model);
        }
        assert!(
            table.window_len() <= 2 * BLOCK,
            "window {}",
            table.window_len()
        );
        assert_eq!(table.get(1), Some(&1));
        assert_eq!(table.remove(1), Some(1));
    }

    #[test]
    fn ids_out_of_order_and_far_apart() {
        let mut table = IdTable::new();
        let mut model = BTreeMap::new();
        for id in [10u64, 5, 1_000_000, 12, 7, u64::MAX, 11, 0] {
            assert_eq!(table.insert(id, id), model.insert(id, id));
            same(&table, &model);
        }
        assert_eq!(table.insert(12, 0), model.insert(12, 0));
        same(&table, &model);
        for id in [5u64, 99, 1_000_000, 12, u64::MAX] {
            assert_eq!(table.remove(id), model.remove(&id));
            same(&table, &model);
        }
        let drained = table.drain();
        assert_eq!(drained, model.into_iter().collect::<Vec<_>>());
        assert!(table.is_empty());
        table.insert(3, 3);
        assert_eq!(table.first(), Some((3, &3)));
    }

    #[test]
    fn random_steps_match_an_ordered_map() {
        // A small deterministic generator: no dependency for a test.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut table = IdTable::new();
        let mut model = BTreeMap::new();
        let mut issued = 0u64;
        for _ in 0..20_000 {
            match next() % 10 {
                0..=4 => {
                    issued += 1 + next() % 3;
                    assert_eq!(table.insert(issued, issued), model.insert(issued, issued));
                }
                5..=7 => {
                    // Mostly the oldest ones end.
                    let id = model.keys().nth((next() % 3) as usize).copied();
                    if let Some(id) = id {
                        assert_eq!(table.remove(id), model.remove(&id));
                    }
                }
                _ => {
                    let id = issued.saturating_sub(next() % 200);
                    assert_eq!(table.remove(id), model.remove(&id));
                }
            }
            same(&table, &model);
        }
    }
}
