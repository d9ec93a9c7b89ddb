//! Times as text: RFC 3339 in UTC with milliseconds (`humantime`), and durations read
//! from the command line.

use std::time::{Duration, SystemTime};

/// `2026-01-02T03:04:05.678Z`.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Now, as [`rfc3339`].
pub(crate) fn now() -> String {
    rfc3339(SystemTime::now())
}

/// `03:04:05` (UTC), for the live view.
pub(crate) fn clock(t: SystemTime) -> String {
    let full = rfc3339(t);
    full.get(11..19).unwrap_or_default().to_string()
}

/// `500ms`, `2s`, `1.5s`, `1m`, or a bare number of milliseconds.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (num, unit_ms) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1000.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60_000.0)
    } else {
        (t, 1.0)
    };
    let bad = || format!("invalid duration \"{s}\" (expected e.g. 500ms, 2s, 1.5s, 1m)");
    let n: f64 = num.trim().parse().map_err(|_| bad())?;
    if !n.is_finite() || n < 0.0 {
        return Err(bad());
    }
    let ms = n * unit_ms;
    if ms > 1e12 {
        return Err(bad());
    }
    Ok(Duration::from_micros((ms * 1000.0).round() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn utc_with_milliseconds() {
        let t = UNIX_EPOCH + Duration::from_millis(1_767_323_045_678);
        assert_eq!(rfc3339(t), "2026-01-02T03:04:05.678Z");
        assert_eq!(clock(t), "03:04:05");
    }
}
