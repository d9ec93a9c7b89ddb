//! A whole core driven by an arbitrary script, with its invariants checked.
#![no_main]
#![forbid(unsafe_code)]

#[path = "../../crates/noex-proto/tests/fuzz_bodies/mod.rs"]
mod fuzz_bodies;

libfuzzer_sys::fuzz_target!(|script: fuzz_bodies::Script| {
    fuzz_bodies::core_script(&script);
});
