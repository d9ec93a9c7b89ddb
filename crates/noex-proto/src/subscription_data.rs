//! A subscription's data as a subscribe answer carried it: checked by whoever reads it.

use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use std::fmt;

use crate::payload::Payload;

/// The data a subscription is made (or made again) with: a store query's first result, as
/// the subscribe answer carried it.
///
/// A subscribe answer is most often a query's whole result, and the core reads the frame
/// around it without reading through it: the data is checked once, by whatever reads it.
/// [`SubscriptionData::deserialize`] and [`SubscriptionData::to_value`] check it as they
/// read it, in one pass; [`SubscriptionData::into_payload`] checks it and gives the
/// [`Payload`]. Data that is not one JSON value (no real server sends it) is an error
/// there, for this one value; the subscription and the connection carry on.
///
/// ```
/// use noex_proto::{Payload, SubscriptionData};
/// let data = SubscriptionData::from(Payload::from_json("[1,2,3]").unwrap());
/// let numbers: Vec<u32> = data.deserialize().unwrap();
/// assert_eq!(numbers, [1, 2, 3]);
/// assert_eq!(data.into_payload().unwrap().json(), "[1,2,3]");
/// ```
#[derive(Clone)]
pub struct SubscriptionData(Data);

#[derive(Clone)]
enum Data {
    /// Checked already (a payload read by a frame decode, or made by the caller).
    Checked(Payload),
    /// Taken out of its frame without being read through.
    Unchecked(Box<str>),
}

impl SubscriptionData {
    /// Data taken out of a frame without being read through (the frame's layout has shown
    /// where it begins and ends).
    pub(crate) fn unchecked(json: &str) -> SubscriptionData {
        SubscriptionData(Data::Unchecked(json.into()))
    }

    /// The JSON text as it came, not checked yet when it is unchecked data.
    pub(crate) fn json_text(&self) -> &str {
        self.text()
    }

    fn text(&self) -> &str {
        match &self.0 {
            Data::Checked(payload) => payload.json(),
            Data::Unchecked(text) => text,
        }
    }

    /// Deserializes the data into `T`, checking that it is one JSON value as it does.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.text())
    }

    /// The data as an untyped JSON tree. Fails for data that is not one JSON value, or
    /// that `serde_json::Value` cannot hold (a number beyond `f64`, such as `1e400`).
    pub fn to_value(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_str(self.text())
    }

    /// The data as a [`Payload`] (raw JSON text), checked. Fails for data that is not one
    /// JSON value.
    pub fn into_payload(self) -> Result<Payload, serde_json::Error> {
        match self.0 {
            Data::Checked(payload) => Ok(payload),
            Data::Unchecked(text) => RawValue::from_string(text.into()).map(Payload::from_box),
        }
    }
}

impl From<Payload> for SubscriptionData {
    fn from(payload: Payload) -> SubscriptionData {
        SubscriptionData(Data::Checked(payload))
    }
}

/// `Debug` shows checked data as [`Payload`] does (a bounded prefix, secrets redacted);
/// data not yet checked only by its size, since it is not known to be JSON.
impl fmt::Debug for SubscriptionData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Data::Checked(payload) => f.debug_tuple("SubscriptionData").field(payload).finish(),
            Data::Unchecked(text) => write!(f, "SubscriptionData(unchecked, {} bytes)", text.len()),
        }
    }
}

/// Two values are equal when their JSON texts are.
impl PartialEq for SubscriptionData {
    fn eq(&self, other: &Self) -> bool {
        self.text() == other.text()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchecked_data_is_checked_by_whatever_reads_it() {
        let good = SubscriptionData::unchecked(r#"[{"a":1}]"#);
        assert_eq!(good.to_value().unwrap(), serde_json::json!([{"a": 1}]));
        assert_eq!(good.clone().into_payload().unwrap().json(), r#"[{"a":1}]"#);
        for bad in [
            r#"[{"a":1}"#,
            r#"1},"x":{"y":2"#,
            "1 2",
            "",
            "[1,]",
            "\"\u{1}\"",
        ] {
            let data = SubscriptionData::unchecked(bad);
            assert!(data.deserialize::<serde_json::Value>().is_err(), "{bad}");
            assert!(
                data.deserialize::<serde::de::IgnoredAny>().is_err(),
                "{bad}"
            );
            assert!(data.to_value().is_err(), "{bad}");
            assert!(data.clone().into_payload().is_err(), "{bad}");
            // Debug never shows text not known to be JSON.
            assert_eq!(
                format!("{data:?}"),
                format!("SubscriptionData(unchecked, {} bytes)", bad.len())
            );
        }
    }

    #[test]
    fn checked_data_shows_as_its_payload_does() {
        let data = SubscriptionData::from(Payload::from_json(r#"{"token":"t","n":1}"#).unwrap());
        assert_eq!(
            format!("{data:?}"),
            r#"SubscriptionData(Payload({"token":"<redacted>","n":1}))"#
        );
        assert_eq!(data, SubscriptionData::unchecked(r#"{"token":"t","n":1}"#));
    }
}
