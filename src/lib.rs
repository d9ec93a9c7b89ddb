//! Runnable examples for noex-rs live in `examples/`.
#![forbid(unsafe_code)]
