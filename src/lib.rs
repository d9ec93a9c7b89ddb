//! Runnable examples for noex-rs live in `examples/`. The README below is compiled as this
//! crate's documentation, so its Rust examples are checked by `cargo test --doc`.
#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
