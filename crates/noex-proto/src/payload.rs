//! JSON payloads kept as raw text until the caller decides their type.

use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use std::fmt;

/// A JSON value from the server, kept as its raw text.
///
/// The core never builds a `serde_json::Value` tree for answers and pushes: the caller
/// deserializes straight into its own type with [`Payload::deserialize`], or asks for a
/// [`serde_json::Value`] with [`Payload::to_value`].
///
/// ```
/// use noex_proto::Payload;
/// let p = Payload::from_json(r#"{"name":"Alice","age":30}"#).unwrap();
/// #[derive(serde::Deserialize)]
/// struct User { name: String, age: u32 }
/// let u: User = p.deserialize().unwrap();
/// assert_eq!((u.name.as_str(), u.age), ("Alice", 30));
/// assert!(!p.is_null());
/// assert!(Payload::null().is_null());
/// ```
#[derive(Clone)]
pub struct Payload(Box<RawValue>);

impl Payload {
    /// The JSON `null`.
    pub fn null() -> Payload {
        Payload(RawValue::NULL.to_owned())
    }

    /// Checks that `json` is one valid JSON value and keeps it.
    pub fn from_json(json: &str) -> Result<Payload, serde_json::Error> {
        let raw: &RawValue = serde_json::from_str(json)?;
        Ok(Payload(raw.to_owned()))
    }

    /// A payload of JSON already checked (a `RawValue` is one JSON value).
    pub(crate) fn from_box(raw: Box<RawValue>) -> Payload {
        Payload(raw)
    }

    pub(crate) fn from_raw(raw: Option<&RawValue>) -> Payload {
        match raw {
            Some(raw) => Payload(raw.to_owned()),
            None => Payload::null(),
        }
    }

    /// Serializes a value into a payload.
    pub fn from_value<T: serde::Serialize + ?Sized>(
        value: &T,
    ) -> Result<Payload, serde_json::Error> {
        serde_json::value::to_raw_value(value).map(Payload)
    }

    /// The raw JSON text.
    pub fn json(&self) -> &str {
        self.0.get()
    }

    /// Whether the payload is JSON `null`.
    pub fn is_null(&self) -> bool {
        self.0.get() == "null"
    }

    /// Deserializes the payload into `T`.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.0.get())
    }

    /// The payload as an untyped JSON tree. Fails only for JSON that `serde_json::Value`
    /// cannot hold (a number beyond `f64`, such as `1e400`).
    pub fn to_value(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_str(self.0.get())
    }
}

/// `Debug` shows the JSON, at most its first 200 characters (then `…`
/// and the total size in bytes), with the value of every key that names a secret replaced
/// by `"<redacted>"`: a key ending in `token`, `password` or `secret` (`token`,
/// `sessionToken`, `password`, `newPassword`, `currentPassword`, `secret`, `adminSecret`,
/// …) or one of `apiKey`, `api_key`, `authorization`, `credentials`, case-insensitively,
/// at any depth. A login answer (`{token, expiresAt, user}`) can be logged safely; use
/// [`Payload::json`] to look at the whole text on purpose.
///
/// ```
/// use noex_proto::Payload;
/// let p = Payload::from_json(r#"{"token":"s3cr3t","user":{"id":"u1"}}"#).unwrap();
/// assert_eq!(format!("{p:?}"), r#"Payload({"token":"<redacted>","user":{"id":"u1"}})"#);
/// let long = Payload::from_value(&vec![7; 1000]).unwrap();
/// assert!(format!("{long:?}").ends_with("… (2001 bytes))"));
/// ```
impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let json = self.0.get();
        f.write_str("Payload(")?;
        let mut out = Bounded {
            f,
            left: DEBUG_PREFIX_CHARS,
        };
        let complete = write_redacted(json, &mut out)?;
        if !complete {
            write!(out.f, "… ({} bytes)", json.len())?;
        }
        out.f.write_str(")")
    }
}

/// How many characters of its JSON a payload's `Debug` shows at most.
const DEBUG_PREFIX_CHARS: usize = 200;

/// What stands in for a secret value.
const REDACTED: &str = "\"<redacted>\"";

/// Whether the value of the object key `key` (its raw text between the quotes) is a
/// secret that must not be shown.
fn is_secret_key(key: &str) -> bool {
    let key = key.as_bytes();
    let ends_with = |suffix: &[u8]| {
        key.len() >= suffix.len() && key[key.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
    };
    ends_with(b"token")
        || ends_with(b"password")
        || ends_with(b"secret")
        || [&b"apikey"[..], b"api_key", b"authorization", b"credentials"]
            .iter()
            .any(|name| key.eq_ignore_ascii_case(name))
}

/// A formatter that takes at most `left` more characters.
struct Bounded<'a, 'b> {
    f: &'a mut fmt::Formatter<'b>,
    left: usize,
}

impl Bounded<'_, '_> {
    /// Writes as much of `text` as fits; `Ok(false)` when it did not all fit.
    fn put(&mut self, text: &str) -> Result<bool, fmt::Error> {
        if self.left == 0 {
            return Ok(text.is_empty());
        }
        match text.char_indices().nth(self.left) {
            Some((cut, _)) => {
                self.f.write_str(text.get(..cut).unwrap_or(""))?;
                self.left = 0;
                Ok(false)
            }
            None => {
                self.left -= text.chars().count();
                self.f.write_str(text)?;
                Ok(true)
            }
        }
    }
}

/// The index just past the string that starts with the quote at `start` (or the end of
/// the text when it is not closed).
fn string_end(bytes: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// The index just past the JSON value that starts at `start`.
fn value_end(bytes: &[u8], start: usize) -> usize {
    let mut depth = 0usize;
    let mut i = start;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i = string_end(bytes, i);
                if depth == 0 {
                    return i;
                }
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                if depth <= 1 {
                    return if depth == 1 { i + 1 } else { i };
                }
                depth -= 1;
            }
            b',' if depth == 0 => return i,
            _ => {}
        }
        i += 1;
    }
    bytes.len()
}

fn skip_whitespace(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && bytes[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// Writes `json` with secret values redacted until `out` is full; `Ok(true)` when all of
/// it was written. Works on any text (valid JSON or not) and never panics: every cut is
/// at an ASCII byte, so on a character boundary.
fn write_redacted(json: &str, out: &mut Bounded<'_, '_>) -> Result<bool, fmt::Error> {
    let bytes = json.as_bytes();
    let piece = |a: usize, b: usize| json.get(a..b).unwrap_or("");
    // Text up to `copied` has been written.
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'"' {
            i += 1;
            continue;
        }
        let end = string_end(bytes, i);
        let colon = skip_whitespace(bytes, end);
        let is_key = bytes.get(colon) == Some(&b':');
        if is_key && is_secret_key(piece(i + 1, end.saturating_sub(1).max(i + 1))) {
            let value = skip_whitespace(bytes, colon + 1);
            if !out.put(piece(copied, value))? || !out.put(REDACTED)? {
                return Ok(false);
            }
            i = value_end(bytes, value);
            copied = i;
        } else {
            i = end;
        }
    }
    out.put(piece(copied, bytes.len()))
}

impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn debug(json: &str) -> String {
        format!("{:?}", Payload::from_json(json).expect("JSON"))
    }

    /// Redacted text with a budget of `left` characters.
    struct Show<'a>(&'a str, usize);

    impl fmt::Display for Show<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            let mut out = Bounded { f, left: self.1 };
            write_redacted(self.0, &mut out).map(drop)
        }
    }

    #[test]
    fn small_payloads_show_whole() {
        assert_eq!(debug(r#"{"a":[1,"x"]}"#), r#"Payload({"a":[1,"x"]})"#);
        assert_eq!(debug("null"), "Payload(null)");
        assert_eq!(debug(r#""token""#), r#"Payload("token")"#);
    }

    #[test]
    fn secrets_are_redacted_at_any_depth_whatever_their_type() {
        let json = r#"{"token":"t0k","expiresAt":5,"user":{"id":"u","password" : "p4ss","roles":["r"]},
            "adminSecret":{"nested":"s3"},"sessionToken":null,"Authorization":"Bearer b34r","apiKey":7,
            "list":[{"newPassword":"n3w","currentPassword":"0ld"}],"secret":"x\"y"}"#;
        let shown = Show(json, 10_000).to_string();
        for secret in ["t0k", "p4ss", "s3", "b34r", "n3w", "0ld", "x\\"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(
            shown.contains(r#""user":{"id":"u","password" : "<redacted>","roles":["r"]}"#),
            "{shown}"
        );
        assert!(shown.contains(r#""expiresAt":5"#), "{shown}");
        assert!(shown.contains(r#""apiKey":"<redacted>""#), "{shown}");
        assert!(shown.contains(r#""sessionToken":"<redacted>""#), "{shown}");
        assert!(shown.ends_with(r#""secret":"<redacted>"}"#), "{shown}");
        // Cut short, it still shows no secret.
        let cut = debug(json);
        assert!(cut.ends_with("… (269 bytes))"), "{cut}");
        assert!(!cut.contains("b34r") && !cut.contains("p4ss"), "{cut}");
    }

    #[test]
    fn values_named_like_secrets_are_not_keys() {
        assert_eq!(
            debug(r#"{"type":"token","k":"password"}"#),
            r#"Payload({"type":"token","k":"password"})"#
        );
    }

    #[test]
    fn long_payloads_are_cut_on_a_char_boundary() {
        let text = "é".repeat(300);
        let p = Payload::from_value(&text).expect("JSON");
        let shown = format!("{p:?}");
        let expected = format!("Payload(\"{}… ({} bytes))", "é".repeat(199), text.len() + 2);
        assert_eq!(shown, expected);
    }

    #[test]
    fn a_cut_never_shows_a_secret() {
        let json = format!(
            r#"{{"pad":"{}","token":"{}"}}"#,
            "x".repeat(175),
            "s".repeat(50)
        );
        let shown = debug(&json);
        assert!(!shown.contains("sss"), "{shown}");
        assert!(
            shown.ends_with(&format!("… ({} bytes))", json.len())),
            "{shown}"
        );
    }

    #[test]
    fn never_panics_on_any_text() {
        // Payloads are valid JSON, but the scanner must not rely on it.
        let samples = [
            "",
            "\"",
            "\"\\",
            "{\"token\"",
            "{\"token\":",
            "{\"token\": ",
            "{\"token\":\"ab",
            "{\"token\":{[\"",
            "}}]]",
            "{\"a\\\":1}",
            "\"é\":\"ü",
            "{\"secret\":]",
        ];
        for text in samples {
            for left in [0, 1, 5, 500] {
                let shown = Show(text, left).to_string();
                assert!(shown.chars().count() <= left.max(REDACTED.len()), "{shown}");
            }
        }
    }
}
