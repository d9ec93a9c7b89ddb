//! The synchronisation types of the hand-made primitives in [`reply`](crate::reply) and
//! [`slot`](crate::slot): those two modules take their `Arc`, `Mutex`, atomics and
//! `AtomicWaker` from here and nowhere else.
//!
//! The point is the loom models in `tests/loom_models.rs`: they compile the very same
//! source files (`#[path = "../src/reply.rs"]`) beside a `sync` module of their own that
//! names loom's types instead, so every interleaving of the real code is checked without a
//! `--cfg loom` build. Here they are plain re-exports: the library's code and speed are
//! exactly those of the std and `futures` types.

pub(crate) use futures::task::AtomicWaker;
pub(crate) use std::sync::atomic::{AtomicU64, Ordering};
pub(crate) use std::sync::{Arc, Mutex, MutexGuard};
