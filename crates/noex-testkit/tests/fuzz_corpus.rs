//! Runs the `testkit_request` fuzz body on stable Rust over the committed seed corpus in
//! `fuzz/corpus-seed/testkit_request/` (every recorded client frame, plus garbage).

use std::path::PathBuf;

#[test]
fn seed_corpus_is_answered_without_panics() {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus-seed/testkit_request");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("corpus entry").path())
        .collect();
    files.sort();
    assert!(files.len() >= 4, "seed corpus missing");
    for path in files {
        let bytes = std::fs::read(&path).expect("corpus file");
        let text = String::from_utf8_lossy(&bytes);
        let frames: Vec<&str> = text.split('\n').collect();
        for tokens in [false, true] {
            let answers = noex_testkit::fuzzing::handle_frames(&frames, tokens);
            // Every frame but a well-formed pong gets an answer (pushes may add more).
            let non_pong = frames.iter().filter(|f| !f.contains("\"pong\"")).count();
            assert!(
                answers >= non_pong,
                "{}: {answers} answers for {non_pong} frames",
                path.display()
            );
        }
    }
}
