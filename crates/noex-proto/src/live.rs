//! Live views: what changed between two results of a store query, decided on the raw
//! records by key, without the caller's type.
//!
//! noex-server pushes a query's whole result on every change. [`LiveKeys`] remembers, for
//! the last result it saw, each record's key and content (16 bytes a record: a hash of the
//! key and a hash of the record's JSON text), and [`LiveKeys::apply`] tells, for the next
//! result, which records are new, which changed (same key, other content: a new
//! `_version`, or a record replaced under its key, which the store's `insert` does with
//! `_version` 1 again), which are unchanged and which are gone. A record whose text is one
//! the last result had is that record, unchanged, known by the hash of its text alone; only
//! the others are read, for their key. The caller then reads only the records that are new
//! or changed, once, into its own type: one record changed in a result of a thousand costs
//! one scan of the result's text and one record read.
//!
//! Whatever lies between two results the caller reads (several pushes, or a reconnect's
//! fresh result after a time away) comes out as one set of changes: the difference between
//! the two.
//!
//! ```
//! use noex_proto::live::{LiveKeys, Origin};
//! use noex_proto::SubscriptionData;
//! use noex_proto::Payload;
//!
//! let data = |json: &str| SubscriptionData::from(Payload::from_json(json).unwrap());
//! let mut keys = LiveKeys::new("id");
//! let first = data(r#"[{"id":"a","_version":1},{"id":"b","_version":1}]"#);
//! let changes = keys.apply(&first).unwrap();
//! assert_eq!(changes.added(), 2);
//!
//! let next = data(r#"[{"id":"b","_version":2},{"id":"c","_version":1}]"#);
//! let changes = keys.apply(&next).unwrap();
//! assert!(matches!(changes.records[0], Origin::Updated { previous: 1, .. }));
//! assert!(matches!(changes.records[1], Origin::Added { .. }));
//! assert_eq!(changes.removed, vec![0]);
//! ```

use crate::subscription_data::SubscriptionData;
use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::Deserializer;
use serde_json::value::RawValue;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasherDefault, DefaultHasher, Hash, Hasher};

/// Why a result cannot be read as a list of keyed records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LiveError {
    /// The result is not a JSON array (a count, a scalar, an object): the query does not
    /// give records.
    #[error("the query's result is not a list of records")]
    NotAList,
    /// An element of the result is not a JSON object.
    #[error("element {index} of the result is not a record")]
    NotARecord {
        /// Its position.
        index: usize,
    },
    /// A record has no key field.
    #[error("record {index} has no `{field}` field")]
    MissingKey {
        /// Its position.
        index: usize,
        /// The key field looked for.
        field: String,
    },
    /// Two records of one result have the same key.
    #[error("records of one result share a key (record {index})")]
    DuplicateKey {
        /// The position of the second.
        index: usize,
    },
    /// The result is not valid JSON.
    #[error("the result is not valid JSON: {0}")]
    Malformed(String),
}

/// Where a record of the new result comes from.
#[derive(Debug, Clone, Copy)]
pub enum Origin<'a> {
    /// The record at `previous` in the last result, unchanged (same key, same content).
    Kept {
        /// Its position in the last result.
        previous: usize,
    },
    /// The record at `previous` in the last result, changed (a new version, or replaced
    /// under its key): `record` is the new one.
    Updated {
        /// Its position in the last result.
        previous: usize,
        /// The new record's JSON.
        record: &'a RawValue,
    },
    /// A record the last result did not have.
    Added {
        /// Its JSON.
        record: &'a RawValue,
    },
}

/// The difference between the last result and the new one.
#[derive(Debug, Clone)]
pub struct RawChanges<'a> {
    /// For each record of the new result, in the server's order: where it comes from.
    pub records: Vec<Origin<'a>>,
    /// The positions in the last result of the records no longer there, in order.
    pub removed: Vec<usize>,
    /// The new result's keys and contents, for [`LiveKeys::accept`].
    next: Vec<Entry>,
}

impl RawChanges<'_> {
    /// Records that are new.
    pub fn added(&self) -> usize {
        self.records
            .iter()
            .filter(|o| matches!(o, Origin::Added { .. }))
            .count()
    }

    /// Records that changed.
    pub fn updated(&self) -> usize {
        self.records
            .iter()
            .filter(|o| matches!(o, Origin::Updated { .. }))
            .count()
    }

    /// Whether nothing changed: the same records, same contents, same order.
    pub fn is_unchanged(&self) -> bool {
        self.removed.is_empty()
            && self
                .records
                .iter()
                .enumerate()
                .all(|(i, o)| matches!(o, Origin::Kept { previous } if *previous == i))
    }
}

/// One record's identity in a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    key: u64,
    content: u64,
}

/// The keys and contents of the last result a live view read (see the module docs).
#[derive(Debug, Clone)]
pub struct LiveKeys {
    key_field: Box<str>,
    entries: Vec<Entry>,
}

/// A map keyed by hashes already: no hashing again.
type ByHash<V> = HashMap<u64, V, BuildHasherDefault<IdentityHasher>>;

/// Hands a `u64` key through unchanged (the keys are hashes already).
#[derive(Default)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl LiveKeys {
    /// A view of records keyed by `key_field` (`id` for buckets with a generated key),
    /// before any result.
    pub fn new(key_field: &str) -> LiveKeys {
        LiveKeys {
            key_field: key_field.into(),
            entries: Vec::new(),
        }
    }

    /// The key field.
    pub fn key_field(&self) -> &str {
        &self.key_field
    }

    /// Records in the last result read.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the last result read had no record (or none was read yet).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// [`LiveKeys::diff`], then [`LiveKeys::accept`]: the new result becomes the last
    /// one. On an error nothing changes.
    pub fn apply<'a>(&mut self, data: &'a SubscriptionData) -> Result<RawChanges<'a>, LiveError> {
        let mut changes = self.diff(data)?;
        self.accept(&mut changes);
        Ok(changes)
    }

    /// Makes the result [`LiveKeys::diff`] read the last one (once the caller has read
    /// the records it needed: when that fails, it does not accept, and the next result is
    /// told against the same last one).
    pub fn accept(&mut self, changes: &mut RawChanges<'_>) {
        self.entries = std::mem::take(&mut changes.next);
    }

    /// Reads the new result `data` and tells how it differs from the last one, changing
    /// nothing.
    ///
    /// Records are matched by their key (a string key by its text however it was
    /// escaped, any other by its JSON text) and changed when their JSON text differs (the
    /// server writes a record the same way every time), both through 64-bit hashes: two
    /// different keys, or two contents of one key, of one pair of results would have to
    /// share a hash to be confused.
    pub fn diff<'a>(&self, data: &'a SubscriptionData) -> Result<RawChanges<'a>, LiveError> {
        let text = data.json_text();
        if !text.trim_start().starts_with('[') {
            // One JSON value that is not an array, or not JSON at all.
            return Err(match serde_json::from_str::<IgnoredAny>(text) {
                Ok(_) => LiveError::NotAList,
                Err(e) => LiveError::Malformed(e.to_string()),
            });
        }
        let records: Vec<&'a RawValue> =
            serde_json::from_str(text).map_err(|e| LiveError::Malformed(e.to_string()))?;
        // The last result's records by their text and by their key. A record whose text is
        // one of them is that record, unchanged: its key is known without reading it. Only
        // the others (new or changed) are read, for their key.
        let last = &self.entries;
        let mut by_content: ByHash<usize> =
            ByHash::with_capacity_and_hasher(last.len(), Default::default());
        let mut by_key: ByHash<usize> =
            ByHash::with_capacity_and_hasher(last.len(), Default::default());
        for (i, entry) in last.iter().enumerate() {
            by_content.insert(entry.content, i);
            by_key.insert(entry.key, i);
        }
        let mut taken = vec![false; last.len()];
        let mut keys: HashSet<u64, BuildHasherDefault<IdentityHasher>> =
            HashSet::with_capacity_and_hasher(records.len(), Default::default());
        let mut entries = Vec::with_capacity(records.len());
        let mut origins = Vec::with_capacity(records.len());
        for (index, &record) in records.iter().enumerate() {
            let content = content_hash(record);
            let (key, origin) = match by_content.get(&content) {
                Some(&i) if !taken[i] => (last[i].key, Origin::Kept { previous: i }),
                // The same text twice in one result: the same key twice.
                Some(_) => return Err(LiveError::DuplicateKey { index }),
                None => {
                    let key = read_key(record, &self.key_field, index)?;
                    match by_key.get(&key) {
                        Some(&i) if !taken[i] => (
                            key,
                            Origin::Updated {
                                previous: i,
                                record,
                            },
                        ),
                        _ => (key, Origin::Added { record }),
                    }
                }
            };
            if !keys.insert(key) {
                return Err(LiveError::DuplicateKey { index });
            }
            if let Origin::Kept { previous } | Origin::Updated { previous, .. } = origin {
                taken[previous] = true;
            }
            entries.push(Entry { key, content });
            origins.push(origin);
        }
        let removed = (0..taken.len()).filter(|&i| !taken[i]).collect();
        Ok(RawChanges {
            records: origins,
            removed,
            next: entries,
        })
    }
}

/// Reads a record's key (hashed), and nothing else of it.
fn read_key(record: &RawValue, key_field: &str, index: usize) -> Result<u64, LiveError> {
    let mut de = serde_json::Deserializer::from_str(record.get());
    let found = (&mut de)
        .deserialize_map(EntryVisitor { key_field })
        .map_err(|_| LiveError::NotARecord { index })?;
    found.ok_or_else(|| LiveError::MissingKey {
        index,
        field: key_field.to_owned(),
    })
}

/// A hash of a record's JSON text.
fn content_hash(record: &RawValue) -> u64 {
    let mut hasher = DefaultHasher::new();
    hasher.write(record.get().as_bytes());
    hasher.finish()
}

/// A key's hash: of the string for a string key (however it was escaped), of the JSON
/// text for any other.
fn key_hash(raw: &RawValue) -> u64 {
    let mut hasher = DefaultHasher::new();
    match serde_json::from_str::<FieldName<'_>>(raw.get()) {
        Ok(text) => {
            0u8.hash(&mut hasher);
            text.0.hash(&mut hasher);
        }
        Err(_) => {
            1u8.hash(&mut hasher);
            raw.get().hash(&mut hasher);
        }
    }
    hasher.finish()
}

/// A record's key hash.
struct EntryVisitor<'k> {
    key_field: &'k str,
}

impl<'de> Visitor<'de> for EntryVisitor<'_> {
    type Value = Option<u64>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a record")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut key = None;
        while let Some(name) = map.next_key::<FieldName<'de>>()? {
            if name.0 == self.key_field {
                let raw: &'de RawValue = map.next_value()?;
                key = Some(key_hash(raw));
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(key)
    }
}

/// A field name, borrowed when it has no escapes.
struct FieldName<'de>(std::borrow::Cow<'de, str>);

impl<'de> de::Deserialize<'de> for FieldName<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Name;
        impl<'de> Visitor<'de> for Name {
            type Value = FieldName<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(FieldName(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(FieldName(std::borrow::Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(Name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_that_is_not_json_is_malformed_and_changes_nothing() {
        let mut keys = LiveKeys::new("id");
        keys.apply(&SubscriptionData::unchecked(r#"[{"id":"a"}]"#))
            .unwrap();
        for bad in [r#"[{"id":"a"}"#, r#"{"id":1"#, "", "[1,]"] {
            let data = SubscriptionData::unchecked(bad);
            assert!(
                matches!(keys.apply(&data), Err(LiveError::Malformed(_))),
                "{bad}"
            );
        }
        assert_eq!(keys.len(), 1);
    }
}
