//! Runs the fuzz target bodies on stable Rust: over the committed seed corpus in
//! `fuzz/corpus-seed/<target>/` (minimised crashers included as regression cases), and over
//! a batch of pseudo-random inputs from a fixed seed.

mod fuzz_bodies;

use arbitrary::{Arbitrary, Unstructured};
use std::path::PathBuf;

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus-seed")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

/// Decodes bytes into a script exactly as `libfuzzer_sys::fuzz_target!` does.
fn script(bytes: &[u8]) -> Option<fuzz_bodies::Script> {
    fuzz_bodies::Script::arbitrary_take_rest(Unstructured::new(bytes)).ok()
}

/// A small xorshift generator, so the batch is the same on every run.
fn pseudo_random_inputs(count: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut x = seed;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..count)
        .map(|_| {
            let len = (next() % 1_200) as usize;
            (0..len).map(|_| next() as u8).collect()
        })
        .collect()
}

#[test]
fn decode_frame_seed_corpus() {
    let files = corpus("decode_frame");
    assert!(files.len() >= 20, "seed corpus missing");
    for (path, bytes) in files {
        eprintln!("{}", path.display());
        fuzz_bodies::decode_frame(&bytes);
    }
}

#[test]
fn decode_frame_pseudo_random() {
    for bytes in pseudo_random_inputs(500, 0x5eed) {
        fuzz_bodies::decode_frame(&bytes);
    }
}

#[test]
fn core_script_seed_corpus() {
    let files = corpus("core_script");
    assert!(files.len() >= 10, "seed corpus missing");
    let mut ran = 0;
    let mut seen = fuzz_bodies::Exercised::default();
    for (path, bytes) in files {
        if let Some(script) = script(&bytes) {
            eprintln!("{}: {} steps", path.display(), script.steps.len());
            seen += fuzz_bodies::core_script(&script);
            ran += 1;
        }
    }
    assert!(ran >= 10);
    // The `scenario-*` seeds reach the ground the newer invariants are about: frames of
    // ended requests dropped unwritten, cancels, the in-flight cap, giving up, restores.
    assert!(
        seen.frames_dropped > 0
            && seen.cancelled > 0
            && seen.refused_full > 0
            && seen.gave_up > 0
            && seen.restored > 0,
        "{seen:?}"
    );
}

#[test]
fn core_script_pseudo_random() {
    let mut steps = 0;
    let mut seen = fuzz_bodies::Exercised::default();
    for bytes in pseudo_random_inputs(300, 0xc0ffee) {
        if let Some(script) = script(&bytes) {
            steps += script.steps.len();
            seen += fuzz_bodies::core_script(&script);
        }
    }
    assert!(steps > 1_000, "too few steps exercised: {steps}");
    assert!(seen.cancelled > 0, "{seen:?}");
}
