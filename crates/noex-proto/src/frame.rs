//! The wire format: decoding server frames and encoding client frames.
//!
//! One WebSocket text frame holds one JSON object. Requests carry their payload fields at
//! the top level beside `id` and `type`. Server frames are told apart by `type`; unknown
//! fields are ignored, and anything that cannot be understood becomes a [`FrameError`]
//! rather than a panic.

use crate::error_code::ErrorCode;
use crate::payload::Payload;
use crate::subscription_data::SubscriptionData;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::time::Duration;

/// The server's `welcome` frame: the first frame of every connection.
#[derive(Debug, Clone, PartialEq)]
pub struct WelcomeInfo {
    /// Protocol version, e.g. `"1.0.0"`.
    pub version: String,
    /// The server's clock at connection time, in milliseconds since the Unix epoch.
    pub server_time: Option<i64>,
    /// Whether requests need a login first.
    pub requires_auth: bool,
}

/// An `error` answer from the server.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerError {
    /// The error code.
    pub code: ErrorCode,
    /// The server's message.
    pub message: String,
    /// Structured details, when the server sent them (validation issues, `retryAfterMs`).
    pub details: Option<Payload>,
}

impl ServerError {
    /// For `RATE_LIMITED`: how long the server asks the client to wait.
    pub fn retry_after(&self) -> Option<Duration> {
        #[derive(Deserialize)]
        struct Details {
            #[serde(rename = "retryAfterMs")]
            retry_after_ms: f64,
        }
        let details: Details = self.details.as_ref()?.deserialize().ok()?;
        // `try_`: a huge value from the network must not panic.
        Duration::try_from_secs_f64(details.retry_after_ms / 1000.0).ok()
    }
}

/// Which stream a `push` belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PushChannel {
    /// A store query result (`store.subscribe`).
    Subscription,
    /// A rules event (`rules.subscribe`).
    Event,
    /// A channel this crate does not know.
    Other(String),
}

/// A `system` notice from the server.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SystemEvent {
    /// The server is shutting down; connections close after the grace period.
    Shutdown {
        /// The grace period the server announced.
        grace_period: Option<Duration>,
    },
    /// The session was revoked; the server closes with 4002 next.
    SessionRevoked {
        /// Why, as the server says.
        reason: Option<String>,
    },
    /// An event this crate does not know.
    Other {
        /// The `event` field.
        event: String,
    },
}

/// A decoded server frame.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ServerFrame {
    /// `welcome`.
    Welcome(WelcomeInfo),
    /// `result`: success for request `id`.
    Result {
        /// The request id.
        id: u64,
        /// The answer (`null` when absent).
        data: Payload,
    },
    /// `error`: failure for request `id` (`0` when the server could not read a request).
    Error {
        /// The request id, `0` when none.
        id: u64,
        /// What went wrong.
        error: ServerError,
    },
    /// `push`: a subscription update.
    Push {
        /// The channel.
        channel: PushChannel,
        /// The server's subscription id (`sub-N`).
        subscription_id: String,
        /// The pushed data.
        data: Payload,
    },
    /// `ping`: must be answered with a `pong` echoing `timestamp`.
    Ping {
        /// The ping's timestamp, verbatim.
        timestamp: Payload,
    },
    /// `system`.
    System(SystemEvent),
}

/// Why a frame from the server could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// Not valid JSON, or not a JSON object.
    #[error("frame is not a JSON object: {0}")]
    NotJson(String),
    /// No string `type` field.
    #[error("frame has no \"type\"")]
    MissingType,
    /// A `type` this crate does not know.
    #[error("unknown frame type {0:?}")]
    UnknownType(String),
    /// A field is missing or has the wrong type.
    #[error("frame of type {kind:?}: field {field:?} is missing or invalid")]
    BadField {
        /// The frame's type.
        kind: &'static str,
        /// The field.
        field: &'static str,
    },
    /// A binary frame, which the protocol does not use.
    #[error("binary frame ({0} bytes); the protocol uses text frames only")]
    Binary(usize),
}

/// A server frame's fields, each kept as raw JSON until its frame type says what it must
/// be. `D` is what `data` is read as: raw JSON, or a subscribe answer (see
/// [`decode_expecting`]).
#[derive(Deserialize)]
#[serde(bound(deserialize = "D: Deserialize<'de>"))]
struct Wire<'a, D = &'a RawValue> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(default = "none")]
    data: Option<D>,
    #[serde(borrow, default)]
    code: Option<&'a RawValue>,
    #[serde(borrow, default)]
    message: Option<&'a RawValue>,
    #[serde(borrow, default)]
    details: Option<&'a RawValue>,
    #[serde(borrow, default)]
    channel: Option<&'a RawValue>,
    #[serde(rename = "subscriptionId", borrow, default)]
    subscription_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    timestamp: Option<&'a RawValue>,
    #[serde(borrow, default)]
    version: Option<&'a RawValue>,
    #[serde(rename = "serverTime", borrow, default)]
    server_time: Option<&'a RawValue>,
    #[serde(rename = "requiresAuth", borrow, default)]
    requires_auth: Option<&'a RawValue>,
    #[serde(borrow, default)]
    event: Option<&'a RawValue>,
    #[serde(rename = "gracePeriodMs", borrow, default)]
    grace_period_ms: Option<&'a RawValue>,
    #[serde(borrow, default)]
    reason: Option<&'a RawValue>,
}

fn none<D>() -> Option<D> {
    None
}

fn field<'a, T: Deserialize<'a>>(
    raw: Option<&'a RawValue>,
    kind: &'static str,
    name: &'static str,
) -> Result<T, FrameError> {
    let raw = raw.ok_or(FrameError::BadField { kind, field: name })?;
    serde_json::from_str(raw.get()).map_err(|_| FrameError::BadField { kind, field: name })
}

fn optional<'a, T: Deserialize<'a>>(raw: Option<&'a RawValue>) -> Option<T> {
    raw.and_then(|raw| serde_json::from_str(raw.get()).ok())
}

fn string(
    raw: Option<&RawValue>,
    kind: &'static str,
    name: &'static str,
) -> Result<String, FrameError> {
    field::<Cow<'_, str>>(raw, kind, name).map(Cow::into_owned)
}

fn request_id(raw: Option<&RawValue>, kind: &'static str) -> Result<u64, FrameError> {
    field::<u64>(raw, kind, "id")
}

fn millis(raw: Option<&RawValue>) -> Option<Duration> {
    let ms: f64 = optional(raw)?;
    // `try_`: negative, NaN or huge values from the network must not panic.
    Duration::try_from_secs_f64(ms / 1000.0).ok()
}

/// Decodes one text frame from the server.
///
/// ```
/// use noex_proto::{codec::decode, ServerFrame};
/// let frame = decode(r#"{"id":4,"type":"result","data":{"name":"Alice"},"extra":1}"#).unwrap();
/// match frame {
///     ServerFrame::Result { id, data } => {
///         assert_eq!(id, 4);
///         assert_eq!(data.json(), r#"{"name":"Alice"}"#);
///     }
///     other => panic!("unexpected {other:?}"),
/// }
/// assert!(decode("{not json").is_err());
/// ```
pub fn decode(text: &str) -> Result<ServerFrame, FrameError> {
    let wire: Wire<'_> =
        serde_json::from_str(text).map_err(|e| FrameError::NotJson(e.to_string()))?;
    from_wire(wire)
}

/// The answer to `store.subscribe` / `rules.subscribe`: the server's subscription id and
/// the query's first result, still raw.
#[derive(Debug)]
pub(crate) struct SubscribeAnswer<'a> {
    pub(crate) subscription_id: String,
    pub(crate) data: AnswerData<'a>,
}

/// A subscribe answer's data, borrowed from its frame.
#[derive(Debug)]
pub(crate) enum AnswerData<'a> {
    /// Read through and checked (`None`: absent or `null`).
    Checked(Option<&'a RawValue>),
    /// Not read through: the frame's layout showed where it begins and ends (see
    /// [`decode_expecting`]).
    Unchecked(&'a str),
}

impl AnswerData<'_> {
    /// The data for the subscription's event: checked or not, as it was read.
    pub(crate) fn into_subscription_data(self) -> SubscriptionData {
        match self {
            AnswerData::Checked(raw) => SubscriptionData::from(Payload::from_raw(raw)),
            AnswerData::Unchecked(text) => SubscriptionData::unchecked(text),
        }
    }
}

/// A subscribe answer as serde reads it.
#[derive(Deserialize)]
struct WireAnswer<'a> {
    #[serde(rename = "subscriptionId")]
    subscription_id: String,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
}

impl<'a> From<WireAnswer<'a>> for SubscribeAnswer<'a> {
    fn from(wire: WireAnswer<'a>) -> SubscribeAnswer<'a> {
        SubscribeAnswer {
            subscription_id: wire.subscription_id,
            data: AnswerData::Checked(wire.data),
        }
    }
}

impl<'a> SubscribeAnswer<'a> {
    /// Reads a subscribe answer out of a `result`'s data.
    pub(crate) fn parse(data: &'a Payload) -> Result<SubscribeAnswer<'a>, serde_json::Error> {
        serde_json::from_str::<WireAnswer<'_>>(data.json()).map(SubscribeAnswer::from)
    }
}

/// A frame decoded by [`decode_expecting`].
#[derive(Debug)]
pub(crate) enum Decoded<'a> {
    /// Any frame, as [`decode`] gives it.
    Frame(ServerFrame),
    /// The `result` for request `id`, a subscribe, already read as its answer.
    Subscribed {
        /// The request id.
        id: u64,
        /// The answer, its data borrowed from the frame.
        answer: SubscribeAnswer<'a>,
    },
    /// A `push` on channel `subscription` or `event` laid out as the server writes it,
    /// its data handed on unread.
    Pushed {
        /// The server's subscription id.
        subscription_id: &'a str,
        /// The data, not read through: checked by whatever reads it.
        data: &'a str,
    },
}

/// What the caller of [`decode_expecting`] expects of a `result` for a request id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expect {
    /// Nothing in particular: [`decode`] it.
    Frame,
    /// A subscribe answer; its data is dropped (a rules subscription, or one given up), so
    /// it is read through and checked here.
    Answer,
    /// A subscribe answer whose data is handed on, to be checked by whatever reads it.
    AnswerWithData,
}

/// [`decode`], except that a `result` for a request the caller expects a subscribe answer
/// for is read as that answer in the same pass, and its data (often most of the frame) is
/// read at most once.
///
/// The frame's own prefix (`{"id":N,"type":"result"`, as the server writes it) says which
/// request it answers before anything is decoded; it is only a hint.
///
/// - [`Expect::AnswerWithData`]: a frame laid out exactly as noex-server writes a subscribe
///   answer, `{"id":N,"type":"result","data":{"subscriptionId":"S","data":V}}` (no
///   whitespace, `S` without escapes), is taken apart by that layout alone and `V` is
///   handed on unread ([`AnswerData::Unchecked`]). When `V` is one JSON value the frame is
///   exactly that object, so this is what [`decode`] reads; when it is not, whoever reads
///   `V` gets the error.
/// - Otherwise ([`Expect::Answer`], or any other layout) the frame is decoded by serde with
///   the answer's data read through, and whenever it is not exactly a `result` for that id
///   carrying a well-formed answer, it is decoded again by [`decode`], so anything unusual
///   is told exactly as [`decode`] tells it.
pub(crate) fn decode_expecting(
    text: &str,
    expect: impl FnOnce(u64) -> Expect,
) -> Result<Decoded<'_>, FrameError> {
    if let Some((subscription_id, data)) = push_layout(text) {
        return Ok(Decoded::Pushed {
            subscription_id,
            data,
        });
    }
    let Some(id) = result_id_hint(text) else {
        return decode(text).map(Decoded::Frame);
    };
    let expected = expect(id);
    if expected == Expect::AnswerWithData {
        if let Some((subscription_id, data)) = answer_layout(text, id) {
            let answer = SubscribeAnswer {
                subscription_id: subscription_id.to_owned(),
                data: AnswerData::Unchecked(data),
            };
            return Ok(Decoded::Subscribed { id, answer });
        }
    }
    if expected != Expect::Frame {
        if let Ok(wire) = serde_json::from_str::<Wire<'_, WireAnswer<'_>>>(text) {
            let is_result = wire.kind.as_deref() == Some("result");
            let same_id = optional::<u64>(wire.id) == Some(id);
            if let (true, true, Some(answer)) = (is_result, same_id, wire.data) {
                let answer = SubscribeAnswer::from(answer);
                return Ok(Decoded::Subscribed { id, answer });
            }
        }
    }
    decode(text).map(Decoded::Frame)
}

/// JSON's whitespace.
const JSON_WHITESPACE: [char; 4] = [' ', '\t', '\n', '\r'];

/// The subscription id `S` and the data `V` (unread) of a frame laid out exactly
/// `{"id":N,"type":"result","data":{"subscriptionId":"S","data":V}}` with `N` the decimal
/// `id` (no leading zero) and `S` free of escapes and control characters; JSON whitespace
/// may follow the frame. `None` for any other layout.
fn answer_layout(text: &str, id: u64) -> Option<(&str, &str)> {
    let rest = text.strip_prefix("{\"id\":")?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let (number, rest) = rest.split_at(digits);
    let canonical = number == "0" || !number.starts_with('0');
    if !canonical || number.parse::<u64>().ok()? != id {
        return None;
    }
    let rest = rest.strip_prefix(r#","type":"result","data":{"subscriptionId":""#)?;
    id_and_data(rest, "}}")
}

/// The subscription id `S` and the data `V` (unread) of a frame laid out exactly
/// `{"type":"push","channel":"C","subscriptionId":"S","data":V}` as noex-server writes a
/// push (`C` `subscription` or `event`, `S` free of escapes and control characters; JSON
/// whitespace may follow). When `V` is one JSON value the frame is exactly that push, which
/// is what [`decode`] reads; when it is not, whoever reads `V` gets the error. `None` for
/// any other layout, which is decoded as [`decode`] does.
fn push_layout(text: &str) -> Option<(&str, &str)> {
    let rest = text.strip_prefix(r#"{"type":"push","channel":""#)?;
    let rest = rest
        .strip_prefix(r#"subscription","subscriptionId":""#)
        .or_else(|| rest.strip_prefix(r#"event","subscriptionId":""#))?;
    id_and_data(rest, "}")
}

/// The end of both layouts: `S","data":V` then `closing` (and JSON whitespace), where `rest`
/// begins just after the opening quote of `S`; `S` must be free of escapes and control
/// characters and `V` not empty.
fn id_and_data<'t>(rest: &'t str, closing: &str) -> Option<(&'t str, &'t str)> {
    let (subscription_id, rest) = rest.split_at(rest.find('"')?);
    if subscription_id.bytes().any(|b| b == b'\\' || b < 0x20) {
        return None;
    }
    let data = rest
        .strip_prefix(r#"","data":"#)?
        .trim_end_matches(JSON_WHITESPACE)
        .strip_suffix(closing)?;
    (!data.trim_matches(JSON_WHITESPACE).is_empty()).then_some((subscription_id, data))
}

/// The request id of a frame that begins `{"id":N,"type":"result"` (whitespace allowed
/// between the tokens), read without decoding the rest.
fn result_id_hint(text: &str) -> Option<u64> {
    fn token<'t>(rest: &'t str, expected: &str) -> Option<&'t str> {
        rest.trim_start().strip_prefix(expected)
    }
    let rest = token(text, "{")?;
    let rest = token(rest, "\"id\"")?;
    let rest = token(rest, ":")?.trim_start();
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let id = rest[..digits].parse().ok()?;
    let rest = token(&rest[digits..], ",")?;
    let rest = token(rest, "\"type\"")?;
    let rest = token(rest, ":")?;
    token(rest, "\"result\"").map(|_| id)
}

fn from_wire(wire: Wire<'_>) -> Result<ServerFrame, FrameError> {
    let kind = wire.kind.as_deref().ok_or(FrameError::MissingType)?;
    match kind {
        "result" => Ok(ServerFrame::Result {
            id: request_id(wire.id, "result")?,
            data: Payload::from_raw(wire.data),
        }),
        "push" => {
            let channel = match string(wire.channel, "push", "channel")?.as_str() {
                "subscription" => PushChannel::Subscription,
                "event" => PushChannel::Event,
                other => PushChannel::Other(other.to_owned()),
            };
            Ok(ServerFrame::Push {
                channel,
                subscription_id: string(wire.subscription_id, "push", "subscriptionId")?,
                data: Payload::from_raw(wire.data),
            })
        }
        "error" => {
            let code: Cow<'_, str> = field(wire.code, "error", "code")?;
            Ok(ServerFrame::Error {
                id: optional::<u64>(wire.id).unwrap_or(0),
                error: ServerError {
                    code: ErrorCode::parse(&code),
                    message: optional::<String>(wire.message).unwrap_or_default(),
                    details: wire
                        .details
                        .filter(|d| d.get() != "null")
                        .map(|d| Payload::from_raw(Some(d))),
                },
            })
        }
        "ping" => {
            let timestamp = wire.timestamp.ok_or(FrameError::BadField {
                kind: "ping",
                field: "timestamp",
            })?;
            Ok(ServerFrame::Ping {
                timestamp: Payload::from_raw(Some(timestamp)),
            })
        }
        "welcome" => Ok(ServerFrame::Welcome(WelcomeInfo {
            version: optional::<String>(wire.version).unwrap_or_default(),
            server_time: optional::<f64>(wire.server_time).map(|t| t as i64),
            requires_auth: optional::<bool>(wire.requires_auth).unwrap_or(false),
        })),
        "system" => {
            let event = string(wire.event, "system", "event")?;
            Ok(ServerFrame::System(match event.as_str() {
                "shutdown" => SystemEvent::Shutdown {
                    grace_period: millis(wire.grace_period_ms),
                },
                "session_revoked" => SystemEvent::SessionRevoked {
                    reason: optional(wire.reason),
                },
                _ => SystemEvent::Other { event },
            }))
        }
        other => Err(FrameError::UnknownType(other.to_owned())),
    }
}

/// Encodes a request: `{"id":N,"type":"…",<fields>}`.
///
/// `fields` is the payload's members already encoded as JSON without the surrounding
/// braces (see [`crate::ops::Operation`]), so encoding is a concatenation.
pub fn encode_request(id: u64, kind: &str, fields: &str) -> String {
    encode_request_bytes(id, kind, fields.as_bytes())
}

/// [`encode_request`] with the fields as UTF-8 bytes: one buffer, written once.
pub(crate) fn encode_request_bytes(id: u64, kind: &str, fields: &[u8]) -> String {
    let mut out = Vec::with_capacity(32 + kind.len() + fields.len());
    out.extend_from_slice(b"{\"id\":");
    // An id is a u64: serde_json writes it as digits, and cannot fail on a Vec.
    let _ = serde_json::to_writer(&mut out, &id);
    out.extend_from_slice(b",\"type\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.push(b'"');
    if !fields.is_empty() {
        out.push(b',');
        out.extend_from_slice(fields);
    }
    out.push(b'}');
    // Every part is UTF-8 (the fields come from serde_json or a `&str`).
    String::from_utf8(out).unwrap_or_default()
}

/// [`encode_request`] around `fields` in place: the header goes in front of them in the
/// same buffer, so a frame built from an operation costs no second allocation.
pub(crate) fn request_frame(id: u64, kind: &str, mut fields: Vec<u8>) -> String {
    let start = fields.len();
    fields.extend_from_slice(b"{\"id\":");
    push_decimal(&mut fields, id);
    fields.extend_from_slice(b",\"type\":\"");
    fields.extend_from_slice(kind.as_bytes());
    fields.push(b'"');
    if start > 0 {
        fields.push(b',');
        // Members, header, `,` → header, `,`, members.
        let header = fields.len() - start;
        fields.rotate_right(header);
    }
    fields.push(b'}');
    // Every part is UTF-8 (the fields come from serde_json, the kind is a `&str`).
    String::from_utf8(fields).unwrap_or_default()
}

/// Appends `n` in decimal (what `write!` would, without the formatting machinery).
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// Encodes the answer to a ping, echoing its timestamp verbatim.
///
/// ```
/// use noex_proto::{codec::encode_pong, Payload};
/// let ts = Payload::from_json("1795739065397").unwrap();
/// assert_eq!(encode_pong(&ts), r#"{"type":"pong","timestamp":1795739065397}"#);
/// ```
pub fn encode_pong(timestamp: &Payload) -> String {
    format!("{{\"type\":\"pong\",\"timestamp\":{}}}", timestamp.json())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What `decode_expecting` gives (expecting `expect` for request `subscribe`), told in
    /// `decode`'s terms: a subscribe answer becomes the `result` frame it was read from,
    /// with the answer's parts beside it (`subscriptionId|data`). The frame is `None` when
    /// the answer's data was handed on unread and is not one JSON value: whoever reads it
    /// gets the error, and `decode` may read the frame otherwise (as a `result` with other
    /// members after the data, say).
    fn expecting_as(
        text: &str,
        subscribe: u64,
        expect: Expect,
    ) -> (Option<Result<ServerFrame, FrameError>>, Option<String>) {
        let wanted = |id| {
            if id == subscribe {
                expect
            } else {
                Expect::Frame
            }
        };
        match decode_expecting(text, wanted) {
            Ok(Decoded::Subscribed { id, answer }) => {
                assert_ne!(expect, Expect::Frame, "{text}");
                let data = match answer.data {
                    AnswerData::Checked(raw) => raw.map_or("null", RawValue::get).to_owned(),
                    AnswerData::Unchecked(text) => {
                        assert_eq!(expect, Expect::AnswerWithData, "{text}");
                        match serde_json::from_str::<&RawValue>(text) {
                            Ok(raw) => raw.get().to_owned(),
                            Err(_) => return (None, Some(answer.subscription_id)),
                        }
                    }
                };
                let frame = decode(text).expect("a subscribe answer is a frame");
                assert!(matches!(&frame, ServerFrame::Result { id: i, .. } if *i == id));
                let ServerFrame::Result { data: whole, .. } = &frame else {
                    unreachable!()
                };
                let again = SubscribeAnswer::parse(whole).expect("the answer reads again");
                assert_eq!(again.subscription_id, answer.subscription_id);
                let AnswerData::Checked(again_data) = again.data else {
                    unreachable!("parse reads through")
                };
                let again_data = again_data.map_or("null", RawValue::get);
                assert_eq!(again_data, data, "{text}");
                (
                    Some(Ok(frame)),
                    Some(format!("{}|{data}", answer.subscription_id)),
                )
            }
            Ok(Decoded::Pushed {
                subscription_id,
                data,
            }) => match serde_json::from_str::<&RawValue>(data) {
                Ok(raw) => {
                    let frame = decode(text).expect("a push is a frame");
                    assert!(
                        matches!(&frame, ServerFrame::Push { subscription_id: s, data: d, .. }
                        if s == subscription_id && d.json() == raw.get())
                    );
                    (Some(Ok(frame)), None)
                }
                Err(_) => (None, Some(subscription_id.to_owned())),
            },
            Ok(Decoded::Frame(frame)) => (Some(Ok(frame)), None),
            Err(e) => (Some(Err(e)), None),
        }
    }

    #[test]
    fn a_push_as_the_server_writes_it_hands_its_data_on_unread() {
        let cases = [
            (
                r#"{"type":"push","channel":"subscription","subscriptionId":"sub-1","data":[{"a":1}]}"#,
                "sub-1",
                r#"[{"a":1}]"#,
            ),
            (
                r#"{"type":"push","channel":"event","subscriptionId":"sub-2","data":{"topic":"t"}}"#,
                "sub-2",
                r#"{"topic":"t"}"#,
            ),
            (
                "{\"type\":\"push\",\"channel\":\"subscription\",\"subscriptionId\":\"s\",\"data\":3}\n",
                "s",
                "3",
            ),
        ];
        for (text, sub, data) in cases {
            match decode_expecting(text, |_| Expect::Frame) {
                Ok(Decoded::Pushed {
                    subscription_id,
                    data: unread,
                }) => assert_eq!((subscription_id, unread), (sub, data), "{text}"),
                other => panic!("{text}: {other:?}"),
            }
            assert_eq!(expecting(text, 0).0, decode(text), "{text}");
        }
        // Any other layout is read through, as `decode` reads it.
        let others = [
            r#"{"type":"push","channel":"other","subscriptionId":"s","data":1}"#,
            r#"{"type":"push","channel":"subscription","subscriptionId":"s\u0031","data":1}"#,
            r#"{"channel":"subscription","type":"push","subscriptionId":"s","data":1}"#,
            r#"{"type":"push","channel":"subscription","subscriptionId":"s","data":}"#,
            r#"{"type":"push","channel":"subscription","subscriptionId":"s"}"#,
            r#"{"type": "push","channel":"subscription","subscriptionId":"s","data":1}"#,
        ];
        for text in others {
            assert!(
                !matches!(
                    decode_expecting(text, |_| Expect::Frame),
                    Ok(Decoded::Pushed { .. })
                ),
                "{text}"
            );
        }
        // Data that is not one JSON value is an error for whoever reads it.
        let broken = r#"{"type":"push","channel":"subscription","subscriptionId":"s","data":[1}"#;
        assert_eq!(
            expecting_as(broken, 0, Expect::Frame),
            (None, Some("s".to_owned()))
        );
    }

    /// [`expecting_as`] for a subscribe whose data is dropped (read through).
    fn expecting(text: &str, subscribe: u64) -> (Result<ServerFrame, FrameError>, Option<String>) {
        let (frame, answer) = expecting_as(text, subscribe, Expect::Answer);
        (frame.expect("read through"), answer)
    }

    #[test]
    fn a_subscribe_result_is_read_as_its_answer_in_one_decode() {
        let text = r#"{"id":7,"type":"result","data":{"subscriptionId":"sub-3","data":[{"a":1}]}}"#;
        let (frame, answer) = expecting(text, 7);
        assert_eq!(frame, decode(text));
        assert_eq!(answer.as_deref(), Some(r#"sub-3|[{"a":1}]"#));
        // Whitespace between the tokens, as a re-encoded recording has it.
        let spaced = r#" { "id" : 7 , "type" : "result", "data": {"subscriptionId": "sub-3"}}"#;
        assert_eq!(expecting(spaced, 7).1.as_deref(), Some("sub-3|null"));
    }

    #[test]
    fn a_subscribe_answer_as_the_server_writes_it_hands_its_data_on_unread() {
        let cases = [
            (r#"{"id":7,"type":"result","data":{"subscriptionId":"sub-3","data":[{"a":1}]}}"#, "[{\"a\":1}]"),
            (r#"{"id":7,"type":"result","data":{"subscriptionId":"sub-3","data":null}}"#, "null"),
            (r#"{"id":7,"type":"result","data":{"subscriptionId":"sub-3","data":3}}"#, "3"),
            (r#"{"id":7,"type":"result","data":{"subscriptionId":"sub-3","data":"}}"}}"#, r#""}}""#),
            (r#"{"id":7,"type":"result","data":{"subscriptionId":"é-1","data":[]}} "#, "[]"),
            (
                "{\"id\":7,\"type\":\"result\",\"data\":{\"subscriptionId\":\"s\",\"data\": [1] }}\r\n",
                " [1] ",
            ),
        ];
        for (text, data) in cases {
            match decode_expecting(text, |_| Expect::AnswerWithData) {
                Ok(Decoded::Subscribed {
                    id: 7,
                    answer:
                        SubscribeAnswer {
                            data: AnswerData::Unchecked(unread),
                            ..
                        },
                }) => assert_eq!(unread, data, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
            // And it is what the frame's full decode reads.
            let (frame, answer) = expecting_as(text, 7, Expect::AnswerWithData);
            assert_eq!(frame, Some(decode(text)), "{text}");
            assert_eq!(answer, expecting(text, 7).1, "{text}");
        }
        // Any other layout is read through, as `decode` reads it.
        let others = [
            r#"{"id":7,"type":"result","data":{"subscriptionId":"s\u0031","data":[]}}"#,
            r#"{"id":07,"type":"result","data":{"subscriptionId":"s","data":[]}}"#,
            r#"{"id":7 ,"type":"result","data":{"subscriptionId":"s","data":[]}}"#,
            r#"{"id":7,"type":"result","data":{"data":[],"subscriptionId":"s"}}"#,
            r#"{"id":7,"type":"result","data":{"subscriptionId":"s","data":[]} }"#,
            r#"{"id":7,"type":"result","data":{"subscriptionId":"s","data":}}"#,
            r#"{"id":7,"type":"result","data":{"subscriptionId":"s"}}"#,
        ];
        for text in others {
            let checked = !matches!(
                decode_expecting(text, |_| Expect::AnswerWithData),
                Ok(Decoded::Subscribed {
                    answer: SubscribeAnswer {
                        data: AnswerData::Unchecked(_),
                        ..
                    },
                    ..
                })
            );
            assert!(checked, "{text}");
            assert_eq!(
                expecting_as(text, 7, Expect::AnswerWithData),
                expecting_as(text, 7, Expect::Answer),
                "{text}"
            );
        }
    }

    #[test]
    fn unread_data_that_is_not_json_is_an_error_for_whoever_reads_it() {
        // Each is in the server's layout; none of the data between is one JSON value.
        let cases = [
            r#"{"id":7,"type":"result","data":{"subscriptionId":"s","data":[1}}"#,
            r#"{"id":7,"type":"result","data":{"subscriptionId":"s","data":1},"x":{"y":2}}"#,
            r#"{"id":7,"type":"result","data":{"subscriptionId":"s","data":1,"data":{}}}"#,
            r#"{"id":7,"type":"result","data":{"subscriptionId":"s","data":1 2}}"#,
        ];
        for text in cases {
            let (frame, answer) = expecting_as(text, 7, Expect::AnswerWithData);
            assert_eq!((frame, answer.as_deref()), (None, Some("s")), "{text}");
        }
    }

    #[test]
    fn anything_else_is_decoded_as_decode_does() {
        let cases = [
            // Not a subscribe.
            (
                r#"{"id":8,"type":"result","data":{"subscriptionId":"sub-1"}}"#,
                7,
            ),
            // A malformed answer: the core fails the subscription, as before.
            (r#"{"id":7,"type":"result","data":[1,2]}"#, 7),
            (r#"{"id":7,"type":"result","data":{"subscriptionId":5}}"#, 7),
            (r#"{"id":7,"type":"result","data":null}"#, 7),
            (r#"{"id":7,"type":"result"}"#, 7),
            // The prefix lies: a second id or type, a different kind, broken JSON.
            (
                r#"{"id":7,"type":"result","id":8,"data":{"subscriptionId":"s"}}"#,
                7,
            ),
            (
                r#"{"id":7,"type":"result","type":"error","data":{"subscriptionId":"s"}}"#,
                7,
            ),
            (
                r#"{"id":7,"type":"resultx","data":{"subscriptionId":"s"}}"#,
                7,
            ),
            (
                r#"{"id":7,"type":"result","data":{"subscriptionId":"s"}"#,
                7,
            ),
            (
                r#"{"id":07,"type":"result","data":{"subscriptionId":"s"}}"#,
                7,
            ),
            (
                r#"{"id":7.5,"type":"result","data":{"subscriptionId":"s"}}"#,
                7,
            ),
            (r#"{"id":99999999999999999999,"type":"result"}"#, 7),
        ];
        for (text, subscribe) in cases {
            let (frame, answer) = expecting(text, subscribe);
            assert_eq!(answer, None, "{text}");
            assert_eq!(frame, decode(text), "{text}");
        }
    }

    fn piece() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "{",
            "}",
            "[",
            "]",
            ",",
            ":",
            " ",
            "\"id\"",
            "\"type\"",
            "\"result\"",
            "\"error\"",
            "\"data\"",
            "\"subscriptionId\"",
            "\"sub-1\"",
            "7",
            "07",
            "-7",
            "7.0",
            "null",
            "1e3",
            "\"\\u0041\"",
            "\"a\\\"b\"",
            "true",
            "{\"id\":7,\"type\":\"result\",",
        ])
    }

    fn expect() -> impl Strategy<Value = Expect> {
        prop::sample::select(vec![Expect::Frame, Expect::Answer, Expect::AnswerWithData])
    }

    proptest! {
        /// Over frames built from the pieces a subscribe answer is made of: whatever
        /// `decode_expecting` reads is what `decode` reads, and a subscribe answer is one
        /// only when `decode`'s `result` carries exactly that answer (or, handed on
        /// unread, data that is not one JSON value).
        #[test]
        fn decode_expecting_agrees_with_decode(
            pieces in prop::collection::vec(piece(), 0..24),
            expect in expect(),
        ) {
            let text: String = pieces.concat();
            let (frame, _) = expecting_as(&text, 7, expect);
            if let Some(frame) = frame {
                prop_assert_eq!(frame, decode(&text));
            }
        }

        /// The same, over answers whose inner data (and what follows it) is made up.
        #[test]
        fn decode_expecting_agrees_inside_an_answer(
            pieces in prop::collection::vec(piece(), 0..12),
            expect in expect(),
        ) {
            let text = format!(
                r#"{{"id":7,"type":"result","data":{{"subscriptionId":"sub-1","data":{}}}}}"#,
                pieces.concat()
            );
            let (frame, answer) = expecting_as(&text, 7, expect);
            match frame {
                Some(frame) => prop_assert_eq!(frame, decode(&text)),
                // Handed on unread and not JSON: in the server's layout, so the data is
                // everything between.
                None => {
                    prop_assert_eq!(expect, Expect::AnswerWithData);
                    prop_assert_eq!(answer.as_deref(), Some("sub-1"));
                    prop_assert!(serde_json::from_str::<&RawValue>(&pieces.concat()).is_err());
                }
            }
        }
    }
}
