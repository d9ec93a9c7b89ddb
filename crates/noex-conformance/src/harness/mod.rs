//! A deterministic harness for the whole async client: [`SimRuntime`], an executor on a
//! virtual clock, and [`SimNetwork`], a connector onto an in-memory server on the same
//! clock with a hostile network's faults. The client (driver, answer cells, slot
//! semaphore, callbacks) runs unchanged on it, days of virtual time in seconds.

mod runtime;

pub use runtime::{Limits, SimRuntime};
