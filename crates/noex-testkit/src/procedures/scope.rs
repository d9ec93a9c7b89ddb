//! What the steps of one call read and write: the call's input and the results earlier
//! steps stored under their `as` names, and the `{{ ref }}` templates that read them
//! (noex-server `reference-resolver.ts`). A value that is one whole `{{ ref }}` becomes
//! the value referred to; refs inside other text are written into it (nothing for a
//! missing or null value); objects and arrays are resolved all the way down.

use indexmap::IndexMap;
use serde_json::{Map, Value};

/// The input and the named results of one call.
pub(super) struct Scope {
    input: Value,
    results: IndexMap<String, Value>,
}

impl Scope {
    pub(super) fn new(input: Map<String, Value>) -> Scope {
        Scope {
            input: Value::Object(input),
            results: IndexMap::new(),
        }
    }

    /// The result stored as `name`.
    pub(super) fn result(&self, name: &str) -> Option<&Value> {
        self.results.get(name)
    }

    /// Store a result as `name` (a later one of that name takes its place).
    pub(super) fn set_result(&mut self, name: &str, v: Value) {
        self.results.insert(name.to_string(), v);
    }

    /// The results, in the order their names were first stored.
    pub(super) fn into_results(self) -> IndexMap<String, Value> {
        self.results
    }

    /// `resolveRef`: `input.<path>`, or `<result>` / `<result>.<path>`, through objects,
    /// array indexes and `length`.
    pub(super) fn resolve_ref(&self, path: &str) -> Option<Value> {
        let mut parts = path.split('.');
        let root = parts.next()?;
        let mut cur = if root == "input" {
            self.input.clone()
        } else {
            self.results.get(root)?.clone()
        };
        for p in parts {
            cur = match &cur {
                Value::Object(m) => m.get(p)?.clone(),
                Value::Array(a) if p == "length" => a.len().into(),
                Value::Array(a) => a.get(p.parse::<usize>().ok()?)?.clone(),
                Value::String(s) if p == "length" => s.encode_utf16().count().into(),
                _ => return None,
            };
        }
        Some(cur)
    }

    /// `resolveValue`: every template in `v` resolved.
    pub(super) fn resolve(&self, v: &Value) -> Value {
        match v {
            Value::String(s) => self.resolve_str(s),
            Value::Array(a) => Value::Array(a.iter().map(|x| self.resolve(x)).collect()),
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), self.resolve(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    fn resolve_str(&self, s: &str) -> Value {
        let t = s;
        if let Some(inner) = t.strip_prefix("{{").and_then(|x| x.strip_suffix("}}")) {
            if !inner.contains('}') && !inner.contains("{{") {
                return self.resolve_ref(inner.trim()).unwrap_or(Value::Null);
            }
        }
        if !s.contains("{{") {
            return Value::String(s.to_string());
        }
        let mut out = String::new();
        let mut rest = s;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            match after.find("}}") {
                Some(end) if !after[..end].contains('}') => {
                    let v = self.resolve_ref(after[..end].trim());
                    match v {
                        None | Some(Value::Null) => {}
                        Some(Value::String(x)) => out.push_str(&x),
                        Some(other) => out.push_str(&other.to_string()),
                    }
                    rest = &after[end + 2..];
                }
                _ => {
                    out.push_str("{{");
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        Value::String(out)
    }
}
