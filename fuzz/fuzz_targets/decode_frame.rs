//! Any bytes as a server text frame: decoding and the core must never panic.
#![no_main]
#![forbid(unsafe_code)]

#[path = "../../crates/noex-proto/tests/fuzz_bodies/mod.rs"]
mod fuzz_bodies;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_bodies::decode_frame(data));
