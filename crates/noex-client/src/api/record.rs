//! Records as the store returns them: the user's data plus the store's metadata.

use serde::de::value::{BorrowedStrDeserializer, StrDeserializer, StringDeserializer};
use serde::de::{
    DeserializeOwned, DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor,
};
use serde::Deserialize;
use serde_json::Value;
use std::fmt;
use std::marker::PhantomData;

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

/// One page of [`Bucket::paginate`](crate::Bucket::paginate).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Page<T = Value> {
    /// The records of this page.
    pub records: Vec<Record<T>>,
    /// Whether more pages follow.
    pub has_more: bool,
    /// The cursor for the next page (`.after(cursor)`): the last record's key; `None` when
    /// the page is empty.
    pub next_cursor: Option<Value>,
}

impl<T: DeserializeOwned> Record<T> {
    /// Builds a record from a JSON object whose key field is `key_field`.
    pub fn from_value(value: Value, key_field: &str) -> Result<Record<T>, serde_json::Error> {
        RecordSeed::new(key_field).deserialize(value)
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Record<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        RecordSeed::new("id").deserialize(deserializer)
    }
}

/// Decodes one [`Record<T>`] straight from the record's JSON object, with no
/// intermediate tree: the metadata fields are read as they go by, every other field is
/// streamed into `T`, and the key field is also kept as [`Record::key`].
pub(crate) struct RecordSeed<'k, T> {
    key_field: &'k str,
    _type: PhantomData<fn() -> T>,
}

impl<'k, T> RecordSeed<'k, T> {
    pub(crate) fn new(key_field: &'k str) -> Self {
        RecordSeed {
            key_field,
            _type: PhantomData,
        }
    }
}

impl<T> Clone for RecordSeed<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for RecordSeed<'_, T> {}

impl<'de, T: DeserializeOwned> DeserializeSeed<'de> for RecordSeed<'_, T> {
    type Value = Record<T>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Record<T>, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, T: DeserializeOwned> Visitor<'de> for RecordSeed<'_, T> {
    type Value = Record<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a record (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Record<T>, A::Error> {
        let mut fields = DataFields {
            map,
            key_field: self.key_field,
            meta: Meta::default(),
            pending_key: false,
            key: None,
        };
        let data = T::deserialize(&mut fields)?;
        // Read to the end of the object (`T`'s own visitor normally has), so the metadata
        // after its last field is seen too.
        fields.skip_rest()?;
        let DataFields { meta, key, .. } = fields;
        Ok(Record {
            key: key.unwrap_or(Value::Null),
            version: meta.version.unwrap_or(0).max(0) as u64,
            created_at: meta.created_at.unwrap_or(0),
            updated_at: meta.updated_at.unwrap_or(0),
            data,
        })
    }
}

/// The store's metadata fields, as they go by.
#[derive(Default)]
struct Meta {
    version: Option<i64>,
    created_at: Option<i64>,
    updated_at: Option<i64>,
}

/// A metadata value: an integer, a float (truncated), anything else ignored.
struct MetaInt(Option<i64>);

impl<'de> Deserialize<'de> for MetaInt {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(MetaIntVisitor)
    }
}

struct MetaIntVisitor;

impl<'de> Visitor<'de> for MetaIntVisitor {
    type Value = MetaInt;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number")
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<MetaInt, E> {
        Ok(MetaInt(Some(v)))
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<MetaInt, E> {
        Ok(MetaInt(Some(i64::try_from(v).unwrap_or(v as f64 as i64))))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<MetaInt, E> {
        Ok(MetaInt(Some(v as i64)))
    }
    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<MetaInt, E> {
        Ok(MetaInt(None))
    }
    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<MetaInt, E> {
        Ok(MetaInt(None))
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<MetaInt, E> {
        Ok(MetaInt(None))
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<MetaInt, E> {
        Ok(MetaInt(None))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<MetaInt, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<MetaInt, S::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(MetaInt(None))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MetaInt, A::Error> {
        while map
            .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
            .is_some()
        {}
        Ok(MetaInt(None))
    }
}

/// A record object's key, borrowed from the frame when it has no escapes.
enum FieldName<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl FieldName<'_> {
    fn as_str(&self) -> &str {
        match self {
            FieldName::Borrowed(s) => s,
            FieldName::Owned(s) => s,
        }
    }
}

impl<'de> Deserialize<'de> for FieldName<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl<'de> Visitor<'de> for NameVisitor {
            type Value = FieldName<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                v: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(FieldName::Borrowed(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(FieldName::Owned(v.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(FieldName::Owned(v))
            }
        }
        deserializer.deserialize_str(NameVisitor)
    }
}

/// The record's object as `T` sees it: every field but the metadata, which is read on the
/// way; the key field's value is kept as well.
struct DataFields<'k, A> {
    map: A,
    key_field: &'k str,
    meta: Meta,
    /// Whether the value about to be read is the key field's.
    pending_key: bool,
    key: Option<Value>,
}

impl<'de, A: MapAccess<'de>> DataFields<'_, A> {
    /// The next field that is not metadata, handed to `seed`.
    fn next_data_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        loop {
            let Some(name) = self.map.next_key::<FieldName<'de>>()? else {
                return Ok(None);
            };
            let slot = match name.as_str() {
                "_version" => &mut self.meta.version,
                "_createdAt" => &mut self.meta.created_at,
                "_updatedAt" => &mut self.meta.updated_at,
                other => {
                    self.pending_key = other == self.key_field;
                    return match name {
                        FieldName::Borrowed(s) => {
                            seed.deserialize(BorrowedStrDeserializer::new(s)).map(Some)
                        }
                        FieldName::Owned(s) => {
                            seed.deserialize(StringDeserializer::new(s)).map(Some)
                        }
                    };
                }
            };
            *slot = self.map.next_value::<MetaInt>()?.0;
        }
    }
}

impl<'de, A: MapAccess<'de>> DataFields<'_, A> {
    /// Reads every field left (the metadata and the key field still recorded).
    fn skip_rest(&mut self) -> Result<(), A::Error> {
        let mut access = self;
        while access.next_key::<serde::de::IgnoredAny>()?.is_some() {
            access.next_value::<serde::de::IgnoredAny>()?;
        }
        Ok(())
    }
}

/// The key field's value as `T` sees it, read from the [`Record::key`] already decoded:
/// scalars are handed over without a copy of the tree (a string as `&str`, which `T`
/// copies only if it keeps it).
struct KeyDeserializer<'a, E> {
    value: &'a Value,
    _error: PhantomData<fn() -> E>,
}

impl<'a, E> KeyDeserializer<'a, E> {
    fn new(value: &'a Value) -> Self {
        KeyDeserializer {
            value,
            _error: PhantomData,
        }
    }
}

impl<'de, E: serde::de::Error> Deserializer<'de> for KeyDeserializer<'_, E> {
    type Error = E;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        match self.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::String(s) => visitor.visit_str(s),
            Value::Number(n) => n.clone().deserialize_any(visitor).map_err(E::custom),
            other => other.clone().deserialize_any(visitor).map_err(E::custom),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        match self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, E> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, E> {
        match self.value {
            Value::String(s) => visitor.visit_enum(StrDeserializer::<E>::new(s)),
            other => other
                .clone()
                .deserialize_enum(name, variants, visitor)
                .map_err(E::custom),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct seq tuple tuple_struct map struct identifier
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for &mut DataFields<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        self.next_data_key_seed(seed)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        if std::mem::take(&mut self.pending_key) {
            let key: Value = self.map.next_value()?;
            let value = seed.deserialize(KeyDeserializer::<A::Error>::new(&key))?;
            self.key = Some(key);
            Ok(value)
        } else {
            self.map.next_value_seed(seed)
        }
    }

    fn size_hint(&self) -> Option<usize> {
        self.map.size_hint()
    }
}

impl<'de, A: MapAccess<'de>> Deserializer<'de> for &mut DataFields<'_, A> {
    type Error = A::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, A::Error> {
        visitor.visit_map(self)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, A::Error> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, A::Error> {
        self.deserialize_ignored_any(serde::de::IgnoredAny)?;
        visitor.visit_unit()
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, A::Error> {
        self.skip_rest()?;
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit_struct seq tuple tuple_struct map struct enum identifier
    }
}

/// Decodes a JSON array of records.
pub(crate) struct RecordsSeed<'k, T>(pub(crate) RecordSeed<'k, T>);

impl<'de, T: DeserializeOwned> DeserializeSeed<'de> for RecordsSeed<'_, T> {
    type Value = Vec<Record<T>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, T: DeserializeOwned> Visitor<'de> for RecordsSeed<'_, T> {
    type Value = Vec<Record<T>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of records")
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
        let mut records = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(record) = seq.next_element_seed(self.0)? {
            records.push(record);
        }
        Ok(records)
    }
}

/// Decodes `null` (no record) or a record.
pub(crate) struct OptionalRecordSeed<'k, T>(pub(crate) RecordSeed<'k, T>);

impl<'de, T: DeserializeOwned> DeserializeSeed<'de> for OptionalRecordSeed<'_, T> {
    type Value = Option<Record<T>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_option(self)
    }
}

impl<'de, T: DeserializeOwned> Visitor<'de> for OptionalRecordSeed<'_, T> {
    type Value = Option<Record<T>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a record or null")
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        self.0.deserialize(deserializer).map(Some)
    }
}

/// Decodes one page of `paginate`: `{records, hasMore, nextCursor}`.
pub(crate) struct PageSeed<'k, T>(pub(crate) RecordSeed<'k, T>);

impl<'de, T: DeserializeOwned> DeserializeSeed<'de> for PageSeed<'_, T> {
    type Value = Page<T>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, T: DeserializeOwned> Visitor<'de> for PageSeed<'_, T> {
    type Value = Page<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a page of records")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut records = None;
        let mut has_more = None;
        let mut next_cursor = None;
        while let Some(name) = map.next_key::<FieldName<'de>>()? {
            match name.as_str() {
                "records" => records = Some(map.next_value_seed(RecordsSeed(self.0))?),
                "hasMore" => has_more = Some(map.next_value::<bool>()?),
                "nextCursor" => next_cursor = map.next_value::<Option<Value>>()?,
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(Page {
            records: records.ok_or_else(|| A::Error::missing_field("records"))?,
            has_more: has_more.ok_or_else(|| A::Error::missing_field("hasMore"))?,
            next_cursor,
        })
    }
}

/// Decodes `text` (one JSON value) with `seed`.
pub(crate) fn decode_with<T, S>(text: &str, seed: S) -> Result<T, serde_json::Error>
where
    S: for<'de> DeserializeSeed<'de, Value = T>,
{
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = seed.deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, PartialEq, Deserialize)]
    struct User {
        name: String,
        #[serde(default)]
        id: Option<String>,
    }

    #[test]
    fn metadata_is_read_and_the_rest_goes_to_t() {
        let text = r#"{"_version":2,"name":"A","_createdAt":10.9,"id":"u1","_updatedAt":20}"#;
        let r: Record<User> = serde_json::from_str(text).unwrap();
        assert_eq!((r.version, r.created_at, r.updated_at), (2, 10, 20));
        assert_eq!(r.key, json!("u1"));
        assert_eq!(
            r.data,
            User {
                name: "A".into(),
                id: Some("u1".into())
            }
        );
        let untyped: Record = serde_json::from_str(text).unwrap();
        assert_eq!(untyped.data, json!({"name": "A", "id": "u1"}));
    }

    #[test]
    fn the_same_as_from_a_value() {
        let value = json!({"email":"e","_version":-3,"_createdAt":"x","n":[1,{"a":null}]});
        let direct: Record = decode_with(&value.to_string(), RecordSeed::new("email")).unwrap();
        let from_value: Record = Record::from_value(value, "email").unwrap();
        assert_eq!(direct, from_value);
        assert_eq!((direct.version, direct.created_at), (0, 0));
        assert_eq!(direct.key, json!("e"));
        assert_eq!(direct.data, json!({"email":"e","n":[1,{"a":null}]}));
    }

    #[test]
    fn a_key_t_does_not_read_is_kept_and_an_escaped_one_too() {
        #[derive(Debug, Deserialize)]
        struct Name {
            name: String,
        }
        let r: Record<Name> = serde_json::from_str(r#"{"name":"x","i\u0064":7}"#).unwrap();
        assert_eq!((r.key, r.data.name.as_str()), (json!(7), "x"));
    }

    #[test]
    fn lists_options_and_pages() {
        let list = r#"[{"id":1,"_version":1},{"id":2,"_version":5}]"#;
        let records: Vec<Record> = decode_with(list, RecordsSeed(RecordSeed::new("id"))).unwrap();
        assert_eq!(
            records.iter().map(|r| r.version).collect::<Vec<_>>(),
            [1, 5]
        );
        let none: Option<Record> =
            decode_with("null", OptionalRecordSeed(RecordSeed::new("id"))).unwrap();
        assert!(none.is_none());
        let page = r#"{"records":[{"k":"a"}],"hasMore":true,"nextCursor":"a","x":1}"#;
        let page: Page = decode_with(page, PageSeed(RecordSeed::new("k"))).unwrap();
        assert_eq!(page.records[0].key, json!("a"));
        assert!(page.has_more);
        assert_eq!(page.next_cursor, Some(json!("a")));
        let last = r#"{"records":[],"hasMore":false}"#;
        let last: Page = decode_with(last, PageSeed(RecordSeed::new("k"))).unwrap();
        assert_eq!((last.has_more, last.next_cursor), (false, None));
    }

    #[test]
    fn a_page_without_has_more_is_an_error() {
        let page = r#"{"records":[],"nextCursor":"a"}"#;
        let err = decode_with::<Page, _>(page, PageSeed(RecordSeed::new("id"))).unwrap_err();
        assert!(err.to_string().contains("hasMore"), "{err}");
    }

    #[test]
    fn not_an_object_is_an_error() {
        assert!(serde_json::from_str::<Record>("[1]").is_err());
        assert!(decode_with::<Vec<Record>, _>("{}", RecordsSeed(RecordSeed::new("id"))).is_err());
        assert!(serde_json::from_str::<Record<User>>(r#"{"id":"u"}"#).is_err());
    }
}
