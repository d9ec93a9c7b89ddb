//! `--chaos SEED`: random faults at random times, the same sequence of faults (kinds and
//! parameters) for the same seed. Each fault runs through the control commands, so it is
//! logged like one (`RUST_LOG`/`NOEX_LOG` at `info` shows them).

use std::time::Duration;

use noex_testkit::HandshakeFault;

use super::control::command::Command;
use super::control::execute::{execute, Ctx};

/// The fault kinds chaos can pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Drop,
    Close,
    Stall,
    Delay,
    Handshake,
    Shutdown,
    Restart,
    Revoke,
}

/// The kinds used when `--chaos-faults` is not given: all of them recoverable by a
/// reconnecting client without losing server state.
pub(crate) const DEFAULT_KINDS: &[Kind] = &[
    Kind::Drop,
    Kind::Close,
    Kind::Stall,
    Kind::Delay,
    Kind::Handshake,
];

/// Parse `--chaos-faults` (comma-separated kind names).
pub(crate) fn parse_kinds(list: &str) -> Result<Vec<Kind>, String> {
    let mut kinds = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let k = match name {
            "drop" => Kind::Drop,
            "close" => Kind::Close,
            "stall" => Kind::Stall,
            "delay" => Kind::Delay,
            "handshake" => Kind::Handshake,
            "shutdown" => Kind::Shutdown,
            "restart" => Kind::Restart,
            "revoke" => Kind::Revoke,
            other => {
                return Err(format!(
                    "--chaos-faults: unknown fault \"{other}\" (expected drop, close, stall, \
                     delay, handshake, shutdown, restart or revoke)"
                ))
            }
        };
        if !kinds.contains(&k) {
            kinds.push(k);
        }
    }
    if kinds.is_empty() {
        return Err("--chaos-faults: no fault kinds given".into());
    }
    Ok(kinds)
}

/// SplitMix64: small, seedable, good enough for picking faults.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next_u64() % items.len() as u64) as usize]
    }
}

/// Close codes a reconnecting client should recover from, with their usual reasons.
const CLOSES: &[(u16, &str)] = &[
    (1000, "server_shutdown"),
    (1001, "server_shutting_down"),
    (1011, "internal_error"),
    (1012, "service_restart"),
    (4001, "heartbeat_timeout"),
];

/// One planned fault: the command, and for windowed faults how long before it is undone
/// (with the command that undoes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Step {
    pub(crate) wait: Duration,
    pub(crate) command: Command,
    pub(crate) undo: Option<(Duration, Command)>,
}

/// The next fault: a pure function of the RNG state, the kinds and the mean interval.
pub(crate) fn next_step(rng: &mut Rng, kinds: &[Kind], mean: Duration) -> Step {
    let mean_ms = u64::try_from(mean.as_millis())
        .unwrap_or(u64::MAX / 4)
        .max(1);
    // Uniform in [mean/2, 3·mean/2].
    let wait = Duration::from_millis(rng.range(mean_ms / 2, mean_ms + mean_ms / 2));
    let window = |rng: &mut Rng| Duration::from_millis(rng.range(500, 3000));
    let (command, undo) = match rng.pick(kinds) {
        Kind::Drop => (Command::DropAll, None),
        Kind::Close => {
            let (code, reason) = *rng.pick(CLOSES);
            (
                Command::Close {
                    code,
                    reason: reason.into(),
                },
                None,
            )
        }
        Kind::Stall => (
            Command::Stall(Some(Duration::from_millis(rng.range(100, 3000)))),
            None,
        ),
        Kind::Delay => {
            let d = Duration::from_millis(rng.range(50, 1000));
            (
                Command::Delay(d),
                Some((window(rng), Command::Delay(Duration::ZERO))),
            )
        }
        Kind::Handshake => {
            let fault = match rng.range(0, 2) {
                0 => HandshakeFault::Stall,
                1 => HandshakeFault::Reset,
                _ => HandshakeFault::Delay(Duration::from_millis(rng.range(200, 3000))),
            };
            (
                Command::Handshake(fault),
                Some((window(rng), Command::Handshake(HandshakeFault::Normal))),
            )
        }
        Kind::Shutdown => (
            Command::Shutdown(Duration::from_millis(rng.range(100, 2000))),
            None,
        ),
        Kind::Restart => (Command::Restart { keep_data: true }, None),
        Kind::Revoke => (Command::Revoke("chaos".into()), None),
    };
    Step {
        wait,
        command,
        undo,
    }
}

/// Run chaos until the task is aborted.
pub(crate) fn spawn(ctx: Ctx, seed: u64, kinds: Vec<Kind>, mean: Duration) {
    tokio::spawn(async move {
        let mut rng = Rng::new(seed);
        let mut n = 0u64;
        loop {
            let step = next_step(&mut rng, &kinds, mean);
            tokio::time::sleep(step.wait).await;
            n += 1;
            tracing::info!(n, seed, command = ?step.command, "chaos fault");
            let reply = execute(&ctx, step.command).await;
            if reply != "ok" {
                tracing::warn!(n, %reply, "chaos fault failed");
            }
            if let Some((after, undo)) = step.undo {
                tokio::time::sleep(after).await;
                tracing::info!(n, command = ?undo, "chaos fault undone");
                execute(&ctx, undo).await;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_faults() {
        let plan = |seed| {
            let mut rng = Rng::new(seed);
            (0..50)
                .map(|_| next_step(&mut rng, DEFAULT_KINDS, Duration::from_secs(2)))
                .collect::<Vec<_>>()
        };
        assert_eq!(plan(42), plan(42));
        assert_ne!(plan(42), plan(43));
    }

    #[test]
    fn steps_stay_in_range_and_cover_every_kind() {
        let all = parse_kinds("drop,close,stall,delay,handshake,shutdown,restart,revoke").unwrap();
        let mut rng = Rng::new(7);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..2000 {
            let s = next_step(&mut rng, &all, Duration::from_millis(1000));
            assert!(s.wait >= Duration::from_millis(500) && s.wait <= Duration::from_millis(1500));
            seen.insert(std::mem::discriminant(&s.command));
            if let Command::Close { code, .. } = s.command {
                assert!(CLOSES.iter().any(|(c, _)| *c == code));
            }
        }
        assert_eq!(seen.len(), 8);
    }

    #[test]
    fn kinds_parse() {
        assert_eq!(
            parse_kinds("drop, close,drop").unwrap(),
            vec![Kind::Drop, Kind::Close]
        );
        assert!(parse_kinds("").is_err());
        assert!(parse_kinds("nuke")
            .unwrap_err()
            .contains("unknown fault \"nuke\""));
    }
}
