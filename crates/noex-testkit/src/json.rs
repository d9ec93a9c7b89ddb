//! Small JSON helpers that mimic JavaScript semantics where the real server relies on them.

use std::cmp::Ordering;
use std::fmt;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// JavaScript strict equality (`===`) for JSON values: primitives by value, objects and
/// arrays never equal (they would be distinct references).
pub(crate) fn strict_eq(a: Option<&Value>, b: Option<&Value>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(Value::Null), Some(Value::Null)) => true,
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x == y,
        (Some(Value::Number(x)), Some(Value::Number(y))) => x.as_f64() == y.as_f64(),
        (Some(Value::String(x)), Some(Value::String(y))) => x == y,
        _ => false,
    }
}

/// JavaScript relational comparison restricted to the meaningful cases (number/number,
/// string/string). Anything else is unordered.
pub(crate) fn js_cmp(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// `String(value)` as JavaScript would print it for keys in messages.
pub(crate) fn js_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "null".to_string(),
        Value::Number(n) => number_string(n),
        Value::Bool(b) => b.to_string(),
        Value::Array(a) => a.iter().map(js_string).collect::<Vec<_>>().join(","),
        Value::Object(_) => "[object Object]".to_string(),
    }
}

fn number_string(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e21 => format!("{}", f as i64),
        Some(f) => f.to_string(),
        None => n.to_string(),
    }
}

/// A JSON number from an `f64`, keeping integers integral (as JavaScript prints them).
pub(crate) fn num(f: f64) -> Value {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15 {
        Value::from(f as i64)
    } else {
        serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}

/// Convenience: build an object from pairs.
pub(crate) fn obj<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    let mut m = Map::new();
    for (k, v) in pairs {
        m.insert(k.to_string(), v);
    }
    Value::Object(m)
}

/// Canonical text of a key value, used to index records (`"a"` and `1` stay distinct).
pub(crate) fn key_text(v: &Value) -> String {
    match v {
        Value::Number(n) => format!("n:{}", number_string(n)),
        Value::String(s) => format!("s:{s}"),
        other => format!("j:{other}"),
    }
}

/// The key order of JSON objects, which `serde_json::Map` (sorted) loses. Used for schemas,
/// whose field order decides the order of validation issues.
#[derive(Debug, Clone, Default)]
pub(crate) enum KeyOrder {
    /// An object: its keys in document order, each with the order of its own value.
    Object(Vec<(String, KeyOrder)>),
    /// Anything else.
    #[default]
    Other,
}

impl KeyOrder {
    /// Parse the key order of a JSON text; `Other` when it is not valid JSON.
    pub(crate) fn parse(text: &str) -> KeyOrder {
        serde_json::from_str(text).unwrap_or_default()
    }

    /// The order of the value at `path` (object keys only).
    pub(crate) fn at(&self, path: &[&str]) -> Option<&KeyOrder> {
        let mut cur = self;
        for p in path {
            match cur {
                KeyOrder::Object(items) => {
                    cur = items.iter().rev().find(|(k, _)| k == p).map(|(_, v)| v)?;
                }
                KeyOrder::Other => return None,
            }
        }
        Some(cur)
    }

    /// The keys of this object in document order.
    pub(crate) fn keys(&self) -> Vec<String> {
        match self {
            KeyOrder::Object(items) => items.iter().map(|(k, _)| k.clone()).collect(),
            KeyOrder::Other => Vec::new(),
        }
    }
}

impl<'de> Deserialize<'de> for KeyOrder {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = KeyOrder;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E>(self, _: bool) -> Result<KeyOrder, E> {
                Ok(KeyOrder::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<KeyOrder, E> {
                Ok(KeyOrder::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<KeyOrder, E> {
                Ok(KeyOrder::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<KeyOrder, E> {
                Ok(KeyOrder::Other)
            }
            fn visit_str<E>(self, _: &str) -> Result<KeyOrder, E> {
                Ok(KeyOrder::Other)
            }
            fn visit_unit<E>(self) -> Result<KeyOrder, E> {
                Ok(KeyOrder::Other)
            }
            fn visit_none<E>(self) -> Result<KeyOrder, E> {
                Ok(KeyOrder::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<KeyOrder, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(KeyOrder::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KeyOrder, A::Error> {
                let mut items = Vec::new();
                while let Some(k) = map.next_key::<String>()? {
                    let v = map.next_value::<KeyOrder>()?;
                    items.push((k, v));
                }
                Ok(KeyOrder::Object(items))
            }
        }
        d.deserialize_any(V)
    }
}

/// The entries of `map` in the order given by `order` (keys missing from `order` follow,
/// sorted).
pub(crate) fn ordered_entries(map: &Map<String, Value>, order: &[String]) -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = Vec::with_capacity(map.len());
    for k in order {
        if let Some(v) = map.get(k) {
            if !out.iter().any(|(x, _)| x == k) {
                out.push((k.clone(), v.clone()));
            }
        }
    }
    for (k, v) in map {
        if !out.iter().any(|(x, _)| x == k) {
            out.push((k.clone(), v.clone()));
        }
    }
    out
}

/// Event ids in the style of the rule engine: base-36 time (`now_ms`), a dash, 9 random
/// base-36 chars.
pub(crate) fn event_id(now_ms: i64) -> String {
    let t = u64::try_from(now_ms).unwrap_or(0);
    let rand = uuid::Uuid::new_v4().as_u128();
    format!("{}-{}", base36(u128::from(t), 0), base36(rand, 9))
}

fn base36(mut n: u128, width: usize) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    while n > 0 && (width == 0 || out.len() < width) {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
    }
    while out.len() < width.max(1) {
        out.push(b'0');
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_order_keeps_document_order() {
        let k = KeyOrder::parse(r#"{"config":{"schema":{"z":1,"a":{"b":2},"m":3}}}"#);
        let s = k.at(&["config", "schema"]).map(KeyOrder::keys);
        assert_eq!(s, Some(vec!["z".into(), "a".into(), "m".into()]));
    }

    #[test]
    fn strict_eq_is_js_like() {
        assert!(strict_eq(Some(&json!(1)), Some(&json!(1.0))));
        assert!(!strict_eq(Some(&json!({})), Some(&json!({}))));
        assert!(!strict_eq(None, Some(&Value::Null)));
        assert_eq!(js_string(&json!(2.0)), "2");
        assert_eq!(num(30.0), json!(30));
    }

    #[test]
    fn event_ids_look_right() {
        let id = event_id(1_796_120_576_149);
        assert!(id.starts_with("mx4jtead-"), "{id}");
        assert!(id.contains('-'));
        assert_eq!(id.split('-').nth(1).map(str::len), Some(9));
    }
}
