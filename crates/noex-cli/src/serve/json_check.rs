//! Typed reading of JSON values with error messages that name the key.
//!
//! Every reader takes the dotted path of the value (`heartbeat.intervalMs`,
//! `buckets[0].name`) and records a message in the [`Checker`] instead of failing, so
//! one run reports every problem of a file.

use serde_json::{Map, Value};

/// Collects the problems found while reading a JSON document.
#[derive(Debug, Default)]
pub(crate) struct Checker {
    pub(crate) errors: Vec<String>,
}

/// A short description of a JSON value for messages: its type and (for scalars) value.
/// Strings are never printed in full (they may be secrets): only their length.
pub(crate) fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("a string of {} characters", s.chars().count()),
        Value::Array(a) => format!("an array of {} items", a.len()),
        Value::Object(_) => "an object".into(),
    }
}

/// `a.b` or `b` when `parent` is empty.
pub(crate) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

impl Checker {
    pub(crate) fn error(&mut self, message: String) {
        self.errors.push(message);
    }

    pub(crate) fn finish(self) -> Result<(), Vec<String>> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(self.errors)
        }
    }

    fn wrong(&mut self, path: &str, expected: &str, v: &Value) {
        if path.is_empty() {
            self.error(format!(
                "the top level must be {expected} (got {})",
                describe(v)
            ));
        } else {
            self.error(format!(
                "\"{path}\" must be {expected} (got {})",
                describe(v)
            ));
        }
    }

    /// An object; reports unknown keys (those not in `known`).
    pub(crate) fn object<'a>(
        &mut self,
        path: &str,
        v: &'a Value,
        known: &[&str],
    ) -> Option<&'a Map<String, Value>> {
        let Value::Object(m) = v else {
            self.wrong(path, "an object", v);
            return None;
        };
        for k in m.keys() {
            if !known.contains(&k.as_str()) {
                let p = join(path, k);
                self.error(format!(
                    "unknown key \"{p}\" (known keys{}: {})",
                    if path.is_empty() {
                        String::new()
                    } else {
                        format!(" of \"{path}\"")
                    },
                    known.join(", ")
                ));
            }
        }
        Some(m)
    }

    /// A required member.
    pub(crate) fn required<'a>(
        &mut self,
        path: &str,
        m: &'a Map<String, Value>,
        key: &str,
    ) -> Option<&'a Value> {
        let v = m.get(key);
        if v.is_none() {
            self.error(format!("\"{}\" is required", join(path, key)));
        }
        v
    }

    pub(crate) fn bool(&mut self, path: &str, v: &Value) -> Option<bool> {
        match v {
            Value::Bool(b) => Some(*b),
            _ => {
                self.wrong(path, "a boolean", v);
                None
            }
        }
    }

    pub(crate) fn string(&mut self, path: &str, v: &Value) -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            _ => {
                self.wrong(path, "a string", v);
                None
            }
        }
    }

    pub(crate) fn non_empty_string(&mut self, path: &str, v: &Value) -> Option<String> {
        match v {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            _ => {
                self.wrong(path, "a non-empty string", v);
                None
            }
        }
    }

    /// An integer ≥ 1.
    pub(crate) fn positive_int(&mut self, path: &str, v: &Value) -> Option<u64> {
        match v.as_u64().or_else(|| whole(v)) {
            Some(n) if n >= 1 => Some(n),
            _ => {
                self.wrong(path, "a positive integer", v);
                None
            }
        }
    }

    /// A duration in milliseconds: an integer ≥ 1.
    pub(crate) fn milliseconds(&mut self, path: &str, v: &Value) -> Option<u64> {
        match v.as_u64().or_else(|| whole(v)) {
            Some(n) if n >= 1 => Some(n),
            _ => {
                self.wrong(path, "a positive integer of milliseconds", v);
                None
            }
        }
    }

    /// An integer ≥ 0 and ≤ `max`.
    pub(crate) fn int_in(&mut self, path: &str, v: &Value, max: u64) -> Option<u64> {
        match v.as_u64().or_else(|| whole(v)) {
            Some(n) if n <= max => Some(n),
            _ => {
                self.wrong(path, &format!("an integer from 0 to {max}"), v);
                None
            }
        }
    }

    /// Any number.
    pub(crate) fn number(&mut self, path: &str, v: &Value) -> Option<f64> {
        match v.as_f64() {
            Some(n) => Some(n),
            None => {
                self.wrong(path, "a number", v);
                None
            }
        }
    }

    /// An array of strings.
    pub(crate) fn strings(&mut self, path: &str, v: &Value) -> Option<Vec<String>> {
        let Value::Array(items) = v else {
            self.wrong(path, "an array of strings", v);
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match item {
                Value::String(s) => out.push(s.clone()),
                _ => {
                    self.wrong(&format!("{path}[{i}]"), "a string", item);
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }
}

/// A float that is a whole non-negative number (`5.0`), as JavaScript sees it.
fn whole(v: &Value) -> Option<u64> {
    let f = v.as_f64()?;
    (f.fract() == 0.0 && (0.0..=9_007_199_254_740_991.0).contains(&f)).then_some(f as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn describe_never_prints_strings() {
        assert_eq!(describe(&json!("hunter2")), "a string of 7 characters");
        assert_eq!(describe(&json!(5)), "number 5");
        assert_eq!(describe(&json!(null)), "null");
        assert_eq!(describe(&json!([1])), "an array of 1 items");
    }

    #[test]
    fn positive_int_accepts_whole_floats_only() {
        let mut c = Checker::default();
        assert_eq!(c.positive_int("a", &json!(5)), Some(5));
        assert_eq!(c.positive_int("a", &json!(5.0)), Some(5));
        assert_eq!(c.positive_int("a", &json!(5.5)), None);
        assert_eq!(c.positive_int("a", &json!(0)), None);
        assert_eq!(c.positive_int("a", &json!(-1)), None);
        assert_eq!(c.errors.len(), 3);
        assert_eq!(
            c.errors[0],
            "\"a\" must be a positive integer (got number 5.5)"
        );
    }

    #[test]
    fn unknown_keys_are_named_with_their_path() {
        let mut c = Checker::default();
        c.object(
            "heartbeat",
            &json!({"intervalMs": 1, "x": 2}),
            &["intervalMs"],
        );
        assert_eq!(
            c.errors,
            vec!["unknown key \"heartbeat.x\" (known keys of \"heartbeat\": intervalMs)"]
        );
    }
}
