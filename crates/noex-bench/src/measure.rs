//! The process's own CPU time and memory, from `/proc` (Linux; zero elsewhere), and
//! latency percentiles from an [`hdrhistogram::Histogram`].

use std::time::Duration;

use hdrhistogram::Histogram;

/// CPU time used by every thread of this process so far: the sum of
/// `/proc/self/task/*/schedstat` (nanoseconds), or `/proc/self/stat` utime + stime
/// (clock ticks, assumed 100 Hz) where that is unavailable.
pub(crate) fn cpu_time() -> Duration {
    cpu_time_in("self")
}

/// CPU time used by every thread of process `pid` so far, as [`cpu_time`] reads it.
pub(crate) fn cpu_time_of(pid: u32) -> Duration {
    cpu_time_in(&pid.to_string())
}

/// Page faults (minor and major) process `pid` has taken so far, from `/proc/{pid}/stat`
/// (zero where that is unavailable).
pub(crate) fn page_faults_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the command name in parentheses: minflt is the 8th, majflt
            // the 10th.
            let rest = &s[s.rfind(')')? + 2..];
            let fields: Vec<&str> = rest.split_whitespace().collect();
            Some(fields.get(7)?.parse::<u64>().ok()? + fields.get(9)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0)
}

/// CPU time used by every thread of the process `/proc/{pid}` describes.
fn cpu_time_in(pid: &str) -> Duration {
    let mut total: u64 = 0;
    let mut found = false;
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
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
    let ticks = std::fs::read_to_string(format!("/proc/{pid}/stat"))
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

/// Significant decimal digits the latency histograms keep: a recorded value reads back
/// within 0.1 % of itself.
const SIGNIFICANT_DIGITS: u8 = 3;

/// An empty latency histogram in nanoseconds (3 significant digits; it grows to fit the
/// largest value recorded). `noex bench` (noex-cli) records in the same kind of
/// histogram and reads its percentiles the same way, with [`Histogram::value_at_quantile`].
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new(SIGNIFICANT_DIGITS).expect("3 significant digits are valid")
}

/// Records one latency in a histogram from [`histogram`], growing it as needed
/// (`saturating_record` alone would clamp to its current top instead).
pub(crate) fn record(histogram: &mut Histogram<u64>, latency: Duration) {
    let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
    if histogram.record(ns).is_err() {
        histogram.saturating_record(ns);
    }
}

/// The `q` quantile (0..=1) of a histogram from [`histogram`]: nearest rank
/// ([`Histogram::value_at_quantile`]); zero when it is empty.
pub(crate) fn quantile(histogram: &Histogram<u64>, q: f64) -> Duration {
    Duration::from_nanos(histogram.value_at_quantile(q))
}

/// The `q` quantile (0..=1) of `samples`, through a histogram ([`quantile`]). (`&mut` for
/// the callers that passed their samples to be sorted in place; they are left as they are.)
pub(crate) fn percentile(samples: &mut [Duration], q: f64) -> Duration {
    let mut h = histogram();
    for s in samples.iter() {
        record(&mut h, *s);
    }
    quantile(&h, q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank_within_the_histogram_precision() {
        let mut samples: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        samples.reverse();
        let close = |got: Duration, want_us: u64| {
            let want = want_us as f64 * 1000.0;
            let got = got.as_nanos() as f64;
            assert!(
                (got - want).abs() <= want * 0.001,
                "{got} ns, want {want} ns"
            );
        };
        close(percentile(&mut samples, 0.5), 50);
        close(percentile(&mut samples, 0.99), 99);
        close(percentile(&mut samples, 1.0), 100);
        close(percentile(&mut samples, 0.0), 1);
        assert_eq!(percentile(&mut [], 0.5), Duration::ZERO);
        let mut h = histogram();
        record(&mut h, Duration::from_secs(90));
        close(quantile(&h, 0.5), 90_000_000);
    }
}
