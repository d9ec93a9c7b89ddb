//! Chaos over real sockets on smol: a workload of live subscriptions, writes and reads
//! (some of their futures dropped at random moments) while the embedded server drops,
//! stalls and closes connections and stalls, delays or resets handshakes at random.
//!
//! The CI-sized run (200 faults, 60 subscriptions) runs with the other tests. The long run:
//! `CHAOS_FAULTS=5000 cargo test --release -p noex-smol --test chaos -- --ignored --nocapture`.
//! Replay a seed with `CHAOS_SEED=<seed>`.

use noex_conformance::chaos::{self, ChaosConfig};

fn run(config: ChaosConfig) {
    println!(
        "chaos on smol, seed {} (replay with CHAOS_SEED={0})",
        config.seed
    );
    let report = smol::block_on(chaos::run_with_deadline(
        noex_smol::Smol::global().into(),
        config,
    ));
    println!("{report}");
}

#[test]
fn chaos_ci() {
    run(ChaosConfig::from_env(200));
}

#[test]
#[ignore = "long run: CHAOS_FAULTS=5000 cargo test --release -p noex-smol --test chaos -- --ignored"]
fn chaos_long() {
    run(ChaosConfig::from_env(5000));
}
