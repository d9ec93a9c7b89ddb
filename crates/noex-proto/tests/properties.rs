//! Property tests over random interleavings of requests, subscribes, unsubscribes, server
//! frames (answers to random pending ids, pushes, pings, garbage), time jumps, closes from
//! the server, reconnects and a final client close. The driver (shared with the fuzz
//! targets) plays a transport that writes frames in order and drops those the core no
//! longer wants ([`noex_proto::ClientCore::wants_frame`]), and checks after every step that:
//! - each accepted request resolves exactly once (never after a cancel, never twice);
//! - "not sent" was never acknowledged as written and never reached the server (a timeout
//!   says so only for a frame never written, which is then dropped); "outcome unknown" was
//!   handed out; the frame of an ended request is never wanted;
//! - writes are never sent twice;
//! - requests are accepted only with a free slot under the in-flight cap, and while not
//!   connected only when queueing and a connection is coming;
//! - the counters add up: `requests_issued == requests_ended() + requests_pending`, and the
//!   gauges match the core;
//! - with no connection coming (`Disconnected`), no subscription or request is left;
//! - no event comes for a subscription after it ended; close ends (never fails) them;
//! - nothing comes out after an intentional close, and nothing pending survives it;
//! - the same seed and inputs give the same outputs.
//!
//! A second property lets the server cooperate after the random part and checks that every
//! live subscription is registered again on the final connection, and that the server holds
//! no subscription without a live handle (those dropped before their answer are undone).

mod fuzz_bodies;

use fuzz_bodies::{run_script, Script, Step};
use noex_proto::ConnectionState;
use proptest::prelude::*;
use std::time::Instant;

fn step(with_close: bool) -> BoxedStrategy<Step> {
    let steps = prop_oneof![
        2 => Just(Step::Connect),
        6 => (
            any::<u8>(),
            proptest::option::of(0u16..20_000),
            proptest::option::of(any::<bool>())
        )
            .prop_map(|(op, timeout_ms, retry)| Step::Request { op, timeout_ms, retry }),
        3 => (any::<bool>(), 0u8..6).prop_map(|(rules, name)| Step::Subscribe { rules, name }),
        2 => any::<u8>().prop_map(|pick| Step::Unsubscribe { pick }),
        1 => any::<u8>().prop_map(|pick| Step::Cancel { pick }),
        3 => Just(Step::Opened),
        1 => Just(Step::ConnectFailed),
        3 => any::<bool>().prop_map(|requires_auth| Step::Welcome { requires_auth }),
        8 => (any::<u8>(), prop::bool::weighted(0.8), any::<u8>())
            .prop_map(|(pick, ok, shape)| Step::Answer { pick, ok, shape }),
        1 => (0u16..60, any::<bool>()).prop_map(|(id, ok)| Step::AnswerId { id, ok }),
        3 => any::<u8>().prop_map(|pick| Step::Push { pick }),
        2 => any::<u32>().prop_map(|timestamp| Step::Ping { timestamp }),
        1 => (any::<u8>(), any::<[u8; 8]>()).prop_map(|(pick, bytes)| Step::Garbage { pick, bytes }),
        1 => any::<u8>().prop_map(|len| Step::Binary { len }),
        3 => any::<u8>().prop_map(|back| Step::Written { back }),
        2 => any::<u8>().prop_map(|code| Step::ServerClose { code }),
        1 => Just(Step::Shutdown),
        1 => Just(Step::SessionRevoked),
        4 => (0u16..5_000).prop_map(|ms| Step::Advance { ms }),
        1 => (0u8..40).prop_map(|secs| Step::Sleep { secs }),
        1 => Just(Step::Stale),
    ];
    if with_close {
        prop_oneof![60 => steps, 1 => Just(Step::Close)].boxed()
    } else {
        steps.boxed()
    }
}

fn script(with_close: bool, max_steps: usize) -> impl Strategy<Value = Script> {
    (
        any::<u64>(),
        any::<bool>(),
        any::<bool>(),
        0u8..3,
        0u8..3,
        any::<bool>(),
        prop::collection::vec(step(with_close), 0..max_steps),
    )
        .prop_map(
            |(seed, queue, retry_reads, auth, liveness, retry_initial, steps)| Script {
                seed,
                queue,
                retry_reads,
                auth,
                liveness,
                retry_initial,
                steps,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Exactly-once resolution, honest delivery, no re-sent writes, nothing after close,
    /// nothing pending after the final close, determinism.
    #[test]
    fn invariants_hold_for_random_interleavings(script in script(true, 150)) {
        fuzz_bodies::core_script(&script);
    }

    /// After any number of reconnects, every live subscription is made again (and becomes
    /// active) on the connection the core ends up on.
    #[test]
    fn every_live_subscription_is_restored(script in script(false, 120)) {
        let base = Instant::now();
        let (mut d, mut core) = run_script(&script, base);
        let healed = d.heal(&mut core, base);
        if healed {
            prop_assert_eq!(core.state(), ConnectionState::Connected);
            let live: Vec<_> = core.subscription_ids().collect();
            let mut expected = d.subs.clone();
            expected.sort();
            prop_assert_eq!(&live, &expected, "live subscriptions differ from the caller's");
            prop_assert_eq!(
                d.registry.len(),
                live.len(),
                "server-side subscriptions {:?} for live handles {:?}", &d.registry, &live
            );
            let sent = d.sent_on_current();
            for id in live {
                prop_assert!(core.is_subscription_active(id), "{:?} not active", id);
                let label = &d.specs[&id];
                prop_assert!(
                    sent.iter().any(|f| {
                        f["type"].as_str().is_some_and(|t| t.ends_with(".subscribe"))
                            && (f["query"] == label.as_str() || f["pattern"] == label.as_str())
                    }),
                    "{:?} ({}) not subscribed on the final connection", id, label
                );
            }
        }
        d.finish(&mut core, base);
    }

    /// Many server closes in a row: the subscription set survives every reconnect.
    #[test]
    fn subscriptions_survive_many_reconnects(
        seed in any::<u64>(),
        names in prop::collection::btree_set(0u8..20, 1..8),
        closes in prop::collection::vec((any::<u8>(), 0u16..3_000), 1..12),
    ) {
        let mut steps = vec![Step::Connect, Step::Opened, Step::Welcome { requires_auth: false }];
        for name in &names {
            steps.push(Step::Subscribe { rules: name % 3 == 0, name: *name });
        }
        for (code, ms) in closes {
            steps.push(Step::Answer { pick: 0, ok: true, shape: 0 });
            // Only codes that reconnect (see CLOSE_CODES: None, 1000, 1001, 1006, 4000, 4001).
            let code = [0u8, 1, 2, 4, 5, 6][code as usize % 6];
            steps.push(Step::ServerClose { code });
            steps.push(Step::Advance { ms });
        }
        let script = Script {
            seed, queue: false, retry_reads: false, auth: 0, liveness: 2, retry_initial: false, steps,
        };
        let base = Instant::now();
        let (mut d, mut core) = run_script(&script, base);
        prop_assert!(d.heal(&mut core, base));
        prop_assert_eq!(core.subscription_count(), names.len());
        for id in core.subscription_ids().collect::<Vec<_>>() {
            prop_assert!(core.is_subscription_active(id));
        }
        d.finish(&mut core, base);
    }
}
