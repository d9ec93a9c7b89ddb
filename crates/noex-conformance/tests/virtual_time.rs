//! Cases that depend on exact timing, run once on the deterministic harness (virtual
//! time, in-memory server) instead of on every adapter's real clock.

#[test]
fn stalled_writes_not_sent_are_absent() {
    noex_conformance::cases::outcomes::stalled_writes_not_sent_are_absent();
}
