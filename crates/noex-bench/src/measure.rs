//! The process's own CPU time and memory, from `/proc` (Linux; zero elsewhere).

use std::time::Duration;

/// CPU time used by every thread of this process so far: the sum of
/// `/proc/self/task/*/schedstat` (nanoseconds), or `/proc/self/stat` utime + stime
/// (clock ticks, assumed 100 Hz) where that is unavailable.
pub(crate) fn cpu_time() -> Duration {
    let mut total: u64 = 0;
    let mut found = false;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let path = task.path().join("schedstat");
            if let Some(ns) = std::fs::read_to_string(path)
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            {
                total += ns;
                found = true;
            }
        }
    }
    if found {
        return Duration::from_nanos(total);
    }
    let ticks = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the command name (which may contain spaces) in parentheses.
            let rest = &s[s.rfind(')')? + 2..];
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: u64 = fields.get(11)?.parse().ok()?;
            let stime: u64 = fields.get(12)?.parse().ok()?;
            Some(utime + stime)
        })
        .unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// Resident memory of this process in bytes, from `/proc/self/statm`.
pub(crate) fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}

/// Starts a peak measurement: resets the kernel's peak-RSS mark (`VmHWM`) to the current
/// resident size (writes `5` to `/proc/self/clear_refs`, Linux ≥ 4.0) and returns that
/// size. Where the reset is refused, the mark stays at the process's earlier peak, which a
/// fresh measurement process keeps small.
pub(crate) fn start_peak() -> u64 {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    rss_bytes()
}

/// The peak resident memory of this process in bytes since [`start_peak`] (`VmHWM` in
/// `/proc/self/status`).
pub(crate) fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map(|kib| kib * 1024)
        .unwrap_or(0)
}

/// The `q` quantile (0..=1) of `samples` (sorted in place).
pub(crate) fn percentile(samples: &mut [Duration], q: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort_unstable();
    let i = ((samples.len() - 1) as f64 * q).round() as usize;
    samples[i.min(samples.len() - 1)]
}
