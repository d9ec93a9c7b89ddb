//! Times as text: RFC 3339 in UTC with milliseconds (`humantime`).

use std::time::SystemTime;

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
