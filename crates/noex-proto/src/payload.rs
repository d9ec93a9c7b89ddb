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

/// `Debug` shows only the size: a payload can carry a session token (a login answer), and
/// secrets must never reach logs. Use [`Payload::json`] to look inside on purpose.
impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Payload(<{} bytes>)", self.0.get().len())
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
}
