//! Chaos over real sockets on async-std: a workload of live subscriptions, writes and reads
//! (some of their futures dropped at random moments) while the embedded server drops,
//! stalls and closes connections and stalls, delays or resets handshakes at random.
//!
//! The CI-sized run (200 faults, 60 subscriptions) runs with the other tests. The long run:
//! `CHAOS_FAULTS=5000 cargo test --release -p noex-async-std --test chaos -- --ignored --nocapture`.
//! Replay a seed with `CHAOS_SEED=<seed>`.

// noex-async-std is deprecated in favour of noex-smol (as async-std is); it still works.
#![allow(deprecated)]

use noex_conformance::chaos::{self, ChaosConfig};

fn run(config: ChaosConfig) {
    println!(
        "chaos on async-std, seed {} (replay with CHAOS_SEED={0})",
        config.seed
    );
    let report = async_std::task::block_on(chaos::run_with_deadline(
        noex_async_std::AsyncStd.into(),
        config,
    ));
    println!("{report}");
}

#[test]
fn chaos_ci() {
    run(ChaosConfig::from_env(200));
}

#[test]
#[ignore = "long run: CHAOS_FAULTS=5000 cargo test --release -p noex-async-std --test chaos -- --ignored"]
fn chaos_long() {
    run(ChaosConfig::from_env(5000));
}
