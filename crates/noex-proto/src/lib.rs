//! Sans-IO protocol core for [noex-server](https://github.com/hamicek/noex-server).
//!
//! `noex-proto` decides everything about talking to noex-server that can be decided without
//! IO: framing, the operation catalogue, request correlation and deadlines, the connection
//! lifecycle, reconnect timing, auth sequencing, subscription bookkeeping and restore,
//! heartbeat answers and the liveness watchdog. It depends on no async runtime, no WebSocket
//! crate and no timer; it never reads the clock (time is passed in) and draws randomness
//! only from its seed. Any transport can drive it: feed inputs, drain outputs.
//!
//! ```
//! use noex_proto::{ClientCore, Config, ConnectionState, Event, Input, Output, ops};
//! use serde_json::json;
//! use std::time::Instant;
//!
//! let mut core = ClientCore::new(Config::new("ws://127.0.0.1:8080"), 42);
//! let now = Instant::now();
//! core.connect(now);
//! // The core asks for a connection…
//! let Some(Output::Open { connection, .. }) = core.poll_output() else { panic!() };
//! # while core.poll_output().is_some() {}
//! // …the transport opens it and the server says welcome.
//! core.handle_input(now, connection, Input::Opened);
//! core.handle_input(now, connection, Input::Frame(
//!     r#"{"type":"welcome","version":"1.0.0","serverTime":1,"requiresAuth":false}"#));
//! assert_eq!(core.state(), ConnectionState::Connected);
//! # while core.poll_output().is_some() {}
//!
//! // A request becomes a frame to send…
//! let id = core.request(now, ops::store::get("users", &json!("u1"))).unwrap();
//! let Some(Output::Send { text, .. }) = core.poll_output() else { panic!() };
//! assert_eq!(text, r#"{"id":1,"type":"store.get","bucket":"users","key":"u1"}"#);
//! // …and the answer becomes an event.
//! core.handle_input(now, connection, Input::Frame(r#"{"id":1,"type":"result","data":null}"#));
//! let Some(Output::Event(Event::Response { id: answered, result })) = core.poll_output() else { panic!() };
//! assert_eq!(answered, id);
//! assert!(result.unwrap().is_null());
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod config;
mod core;
mod counters;
mod disconnect;
mod error;
mod error_code;
mod event;
mod frame;
mod id_table;
pub mod live;
pub mod ops;
mod payload;
mod secret;
mod subscription;
mod subscription_data;

/// The wire codec the core uses, for tools, fuzzing and transports that want to look at
/// frames themselves. A client never needs it: [`ClientCore`] encodes and decodes.
pub mod codec {
    pub use crate::frame::{decode, encode_pong, encode_request};
}

pub use crate::config::{Auth, Backoff, Config, Liveness};
pub use crate::core::{ClientCore, RequestOptions, TokenFetchId};
pub use crate::counters::Counters;
pub use crate::error::{Delivery, RequestError};
pub use crate::error_code::ErrorCode;
pub use crate::event::{
    ConnectionId, ConnectionState, CoreError, DisconnectReason, Event, Gap, Input, LifecycleEvent,
    Output, RequestId, SubscriptionEvent, SubscriptionId,
};
pub use crate::frame::{
    FrameError, PushChannel, ServerError, ServerFrame, SystemEvent, WelcomeInfo,
};

/// Not part of the API: what the client crates of this project share with the core.
/// Nothing here is covered by semantic versioning.
#[doc(hidden)]
pub mod __private {
    pub use crate::id_table::IdTable;
}
pub use crate::payload::Payload;
pub use crate::secret::{RedactedUrl, Secret};
pub use crate::subscription::SubscriptionSpec;
pub use crate::subscription_data::SubscriptionData;
