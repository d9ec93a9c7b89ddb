//! A deterministic harness for the whole async client: [`SimRuntime`], an executor on a
//! virtual clock, and [`SimNetwork`], a connector onto an in-memory server
//! ([`noex_testkit::memory::MemoryServer`]) on the same clock with a hostile network's
//! faults. The client (driver, answer cells, slot semaphore, callbacks) runs unchanged on
//! it, days of virtual time in seconds, and the same test gives the same run every time
//! (give the client a [`noex_client::ClientOptions::seed`]: its reconnect jitter is the
//! only randomness it has).
//!
//! Tasks spawned on a [`SimRuntime`] (the client's driver, the network's pump) hold the
//! runtime: end a test with [`SimRuntime::shutdown`] to free them.

mod halves;
mod links;
mod network;
mod runtime;
mod wire;

pub use network::{SimNetwork, START_MS, URL};
pub use runtime::{Limits, SimRuntime};
pub use wire::{
    ConnectFault, Direction, Fate, FrameEvent, LinkInfo, NetStats, Transfer, Verdict, Wire,
};
