//! Runtime-agnostic async client for [noex-server](https://github.com/hamicek/noex-server).
//!
//! This crate holds everything async that does not depend on a particular runtime: the
//! [`Client`] handle, the typed API ([`Client::store`], [`Client::rules`], [`Client::auth`],
//! [`Client::identity`], [`Client::audit`], [`Client::procedures`], [`Client::server`]),
//! subscriptions as [`futures::Stream`]s and callbacks, lifecycle events, and the driver
//! loop that runs the [`noex_proto`] core. It is written against two small traits,
//! [`Runtime`](runtime::Runtime) and [`Connector`](runtime::Connector); `noex-tokio`, `noex-smol` and
//! `noex-async-std` implement them, and so
//! can you for another runtime or transport.
//!
//! Most users depend on an adapter instead:
//!
//! ```
//! use noex_client::{Client, ClientOptions, Error, ErrorCode};
//! use serde_json::json;
//!
//! /// Works on any adapter's client.
//! async fn rename(client: &Client, key: &str, name: &str) -> Result<(), Error> {
//!     let users = client.store().bucket("users");
//!     match users.update(key, json!({"name": name})).await {
//!         Ok(record) => println!("now at version {}", record.version),
//!         // The write may have reached the server: look before trying again.
//!         Err(e) if e.may_have_been_applied() => {
//!             let current = users.get(key).await?;
//!             println!("unsure; the record is now {current:?}");
//!         }
//!         Err(e) if e.is(&ErrorCode::ValidationError) => println!("invalid: {e}"),
//!         Err(e) => return Err(e),
//!     }
//!     Ok(())
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let server = noex_testkit::TestServer::builder()
//! #     .bucket_json("users", json!({"key": "id", "schema": {"id": {"type": "string"}}}))
//! #     .start()?;
//! # let url = server.url();
//! tokio::runtime::Runtime::new()?.block_on(async {
//!     let client = Client::new(noex_tokio::Tokio);
//!     let welcome = client.connect(&url, ClientOptions::new()).await?;
//!     assert_eq!(welcome.version, "1.0.0");
//!     client.store().bucket("users").insert(json!({"id": "u1", "name": "Alice"})).await?;
//!     rename(&client, "u1", "Alicia").await?;
//!     Ok::<_, Error>(())
//! })?;
//! # Ok(())
//! # }
//! ```
//!
//! # API conventions
//! One rule each, everywhere:
//! - **Arguments** are owned `impl Serialize` (references work too), so futures over
//!   temporaries compose with `join!`. A value that cannot be serialised fails the call with
//!   [`Error::Serde`] before anything is sent.
//! - **Optional arguments** go through a builder the method returns, awaited when ready:
//!   `store().subscribe::<T>("q").params(..).await`, `bucket.paginate(10).after(cursor)`,
//!   `identity().list_users().page(2)`, `procedures().call::<T>("x").input(..)`,
//!   `store().live::<T>("q").key_field("sku")`. No method takes a positional `Option`.
//! - **Filters** are `impl Into<`[`Filter`]`>`: the typed builder or raw JSON;
//!   [`Filter::all`] means every record.
//! - **Answers** are typed: records as [`Record<T>`], everything else as a struct of this
//!   crate that keeps fields it does not know in its `extra` map; acknowledgements too
//!   (`BucketDefined`, `RuleRegistered`, …). A field the server always sends is required: when
//!   absent, decoding fails with [`Error::Serde`]; one it may leave out is an `Option`.
//! - **Data the application defines** is read into its type: `subscribe::<T>`,
//!   `get_fact::<T>`, `call::<T>`, `transaction::<T>`, `Bucket::typed::<T>` (no `_as` twins;
//!   `serde_json::Value` when untyped).
//! - **Unsubscribing** never fails in a way a caller can act on: every `unsubscribe` by a
//!   handle returns nothing and waits until the client has processed it.
//! - **In a stream, `Err` is a failure**: one value that could not be read (the stream
//!   carries on) or the end (then `None`). Notices that end nothing are items
//!   ([`RuleUpdate::Missed`], [`RuleUpdate::Lagged`]), so a callback that unwraps every item
//!   never panics after a reconnect, and `?` in a read loop stops only on a real failure.
//!
//! # Behaviour under faults
//! - Requests fail with a typed [`Error`]; connection failures say whether the request may
//!   have reached the server ([`Error::may_have_been_applied`]).
//! - After a lost connection the client reconnects with backoff, logs in again, and makes
//!   every subscription again in one pipelined burst; each subscription then yields fresh
//!   data. Pending requests fail with [`Error::Disconnected`], except reads marked
//!   retry-safe, which are sent again. Writes are never sent twice.
//! - A silent server (no pings, no frames) is noticed by a watchdog, from the connection's
//!   first frame on, and the connection is replaced.
//! - Logged-in sessions stay logged in: with [`ClientOptions::credentials`] (or the
//!   caller's own `identity().login`) the session is renewed before it expires, and a
//!   request the server refused because it expired anyway is sent again after a new login
//!   (the server checks the session before running anything, so the refused copy was not
//!   executed); [`ClientOptions::token_provider`] does the same with tokens from the
//!   application.
//! - A request made while the client waits for a connection waits for it (within its
//!   deadline); at most [`ClientOptions::max_in_flight`] requests are in flight, and a
//!   caller past it waits for a slot.
//!
//! # Ownership
//! - The driver owns every connection attempt; after [`Client::disconnect`] the client holds
//!   no socket and no task.
//! - Dropping a request's or a subscribe's future withdraws what it asked for.
//! - Lifecycle and `on_update` callbacks run isolated: a panic is reported, never fatal.
//! - Streams end honestly: `None` on [`Client::disconnect`], one [`Error::GaveUp`] and then
//!   `None` when the client gives up for good; rules subscriptions announce missed events
//!   after a reconnect with [`RuleUpdate::Missed`] (an item: a stream's `Err` is always a
//!   failure, see [`Error`]).
//! - The driver reads time from [`Runtime::now`](runtime::Runtime::now), so the whole client runs on a virtual
//!   clock where the runtime has one.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod api;
mod client;
mod driver;
mod error;
mod kinded;
mod options;
mod reply;
mod rule_events;
pub mod runtime;
mod shared;
mod slot;
mod subscription;
mod sync;
pub mod transport;
mod transport_error;
pub mod ws_connector;

#[doc(inline)]
pub use surface::*;

/// Everything an application uses: this crate's root re-exports it, and so does each adapter
/// crate (`pub use noex_client::surface::*`), which keeps the adapter glue ([`runtime`],
/// [`transport`], [`ws_connector`]) out of the adapters' APIs. Use the items from the crate root.
#[doc(hidden)]
pub mod surface {
    pub use crate::api::audit::{Audit, AuditEntry, AuditFilter};
    pub use crate::api::auth::{AuthApi, AuthSession, LoggedOut, WhoAmI};
    pub use crate::api::bucket::{Bucket, PaginateBuilder};
    pub use crate::api::identity::{
        Access, AccessGranted, AccessRevoked, AclEntry, Identity, IdentitySession,
        ListUsersBuilder, NewRole, NewUser, Owner, OwnerTransferred, PasswordChanged,
        PasswordReset, Permission, ResourceAccess, Role, RoleAssigned, RoleDeleted, RoleRemoved,
        SessionUser, User, UserDeleted, UserList,
    };
    pub use crate::api::live::{Changes, LiveBuilder, LiveQuery};
    pub use crate::api::procedures::{
        Procedure, ProcedureCallBuilder, ProcedureInfo, ProcedureRegistered, ProcedureResult,
        ProcedureUnregistered, ProcedureUpdated, Procedures,
    };
    pub use crate::api::record::{Page, Record};
    pub use crate::api::rules::{
        EmitOptions, Fact, Rule, RuleEnabled, RuleInfo, RuleRegistered, RuleUnregistered,
        RuleUpdated, Rules, RulesStats, TracingStats, Validation, ValidationIssue,
    };
    pub use crate::api::server::{ConnectionInfo, ConnectionStats, ServerApi, ServerStats};
    pub use crate::api::store::{
        BucketConfig, BucketDefined, BucketDropped, BucketList, BucketSchema, BucketUpdated,
        Feature, QueryDefined, QueryInfo, QueryStats, QueryUndefined, Store, StoreStats,
        SubscribeBuilder, Totals, Transaction, TtlStats, TxOutcome, TxResult,
    };
    pub use crate::client::{Client, EventStream};
    pub use crate::error::{Error, ProtocolError, ProtocolErrorKind, Result, SerdeError};
    pub use crate::options::{ClientOptions, TlsOptions, TokenRequest};
    pub use crate::rule_events::{RuleEvent, RuleMessage, RuleUpdate};
    pub use crate::shared::ListenerGuard;
    pub use crate::slot::BufferPolicy;
    pub use crate::subscription::{CallbackHandle, RuleSubscription, Subscription};
    pub use crate::transport_error::{TransportError, TransportErrorKind};
    pub use noex_proto::live::LiveError;
    pub use noex_proto::ops::identity::Grant;
    pub use noex_proto::ops::{Field, Filter};
    pub use noex_proto::{
        self as proto, Backoff, ConnectionState, CoreError, Counters, Delivery, DisconnectReason,
        ErrorCode, LifecycleEvent, Payload, RequestOptions, SubscriptionId, WelcomeInfo,
    };
}

#[cfg(test)]
mod tests {
    fn shareable<T: Clone + Send + Sync + 'static>() {}
    fn sendable<T: Send + 'static>() {}

    #[test]
    fn handles_can_be_shared_across_tasks() {
        shareable::<crate::Client>();
        shareable::<crate::Bucket>();
        shareable::<crate::api::store::Store>();
        shareable::<crate::Error>();
        sendable::<crate::Subscription<serde_json::Value>>();
        sendable::<crate::EventStream>();
    }
}
