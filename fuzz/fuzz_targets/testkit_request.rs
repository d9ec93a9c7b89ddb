//! The embedded test server's request parser and handlers: arbitrary client frames (one per
//! line) must get answers, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let tokens = data.first().is_some_and(|b| b & 1 == 1);
    let frames: Vec<&str> = text.split('\n').collect();
    noex_testkit::fuzzing::handle_frames(&frames, tokens);
});
