//! Records as the store returns them: the user's data plus the store's metadata.

use serde::de::{DeserializeOwned, Deserializer, Error as _};
use serde::Deserialize;
use serde_json::{Map, Value};

/// A stored record: the user's data `T` plus the key and the store's metadata
/// (`_version`, `_createdAt`, `_updatedAt`).
///
/// `T` sees every field of the record except the three metadata fields (so a `T` with an
/// `id` field gets the key too). `T` defaults to an untyped [`serde_json::Value`].
///
/// ```
/// use noex_client::Record;
/// #[derive(serde::Deserialize)]
/// struct User { name: String }
/// let json = r#"{"name":"Alice","id":"u1","_version":2,"_createdAt":10,"_updatedAt":20}"#;
/// let record: Record<User> = serde_json::from_str(json).unwrap();
/// assert_eq!(record.key, "u1");
/// assert_eq!(record.version, 2);
/// assert_eq!(record.data.name, "Alice");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Record<T = Value> {
    /// The record's key (the bucket's key field; `id` when decoded outside a bucket).
    pub key: Value,
    /// `_version`: 1 on insert, +1 per update.
    pub version: u64,
    /// `_createdAt`, ms since the epoch.
    pub created_at: i64,
    /// `_updatedAt`, ms since the epoch.
    pub updated_at: i64,
    /// The user's data.
    pub data: T,
}

impl<T: DeserializeOwned> Record<T> {
    /// Builds a record from a JSON object whose key field is `key_field`.
    pub fn from_value(value: Value, key_field: &str) -> Result<Record<T>, serde_json::Error> {
        let Value::Object(mut map) = value else {
            return Err(serde_json::Error::custom("a record must be a JSON object"));
        };
        let version = take_int(&mut map, "_version").unwrap_or(0).max(0) as u64;
        let created_at = take_int(&mut map, "_createdAt").unwrap_or(0);
        let updated_at = take_int(&mut map, "_updatedAt").unwrap_or(0);
        let key = map.get(key_field).cloned().unwrap_or(Value::Null);
        let data = T::deserialize(Value::Object(map))?;
        Ok(Record {
            key,
            version,
            created_at,
            updated_at,
            data,
        })
    }
}

fn take_int(map: &mut Map<String, Value>, field: &str) -> Option<i64> {
    let value = map.remove(field)?;
    value.as_i64().or_else(|| value.as_f64().map(|f| f as i64))
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Record<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Record::from_value(value, "id").map_err(D::Error::custom)
    }
}

/// One page of `paginate`.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T = Value> {
    /// The records of this page.
    pub records: Vec<Record<T>>,
    /// Whether more pages follow.
    pub has_more: bool,
    /// The cursor for the next page (`after`).
    pub next_cursor: Option<Value>,
}
