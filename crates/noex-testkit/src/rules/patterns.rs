//! The rule engine's three pattern matchers (noex-rules): `rules.subscribe` patterns
//! (`RuleEngine.matchesTopicPattern`), rule event-trigger topics (`matchesTopic`) and fact
//! keys / timer names (`matchesFactPattern`, `matchesTimerPattern`). They differ on
//! purpose; see the crate docs.

/// A `rules.subscribe` pattern containing `*` against a topic: `*` alone matches every
/// topic; a trailing `*` segment matches the rest at any depth, including nothing (so
/// `order.*` matches `order`); an inner `*` segment matches exactly one (possibly empty)
/// segment; any other segment (`**`, `ord*`) compares literally. Patterns without `*` are
/// looked up exactly by the caller.
pub(crate) fn subscription_matches(pattern: &str, topic: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let p: Vec<&str> = pattern.split('.').collect();
    let t: Vec<&str> = topic.split('.').collect();
    for (i, part) in p.iter().enumerate() {
        if *part == "*" {
            if i == p.len() - 1 {
                return true;
            }
            continue;
        }
        if t.get(i) != Some(part) {
            return false;
        }
    }
    p.len() == t.len()
}

/// `^pattern$` with each `*` as `[^<sep>]+`, built as the engine builds it (only `.` is
/// escaped, for topics), tested on `subject`; a pattern that is no valid regex matches
/// nothing.
fn wildcard_test(pattern: &str, sep: char, subject: &str) -> bool {
    let escaped = if sep == '.' {
        pattern.replace('.', "\\.")
    } else {
        pattern.to_string()
    };
    let class = if sep == '.' { "[^.]+" } else { "[^:]+" };
    let source = format!("^{}$", escaped.replace('*', class));
    regex::RegexBuilder::new(&source)
        .size_limit(1 << 20)
        .build()
        .is_ok_and(|r| r.is_match(subject))
}

/// A rule's event-trigger topic against an event topic (`matchesTopic`): equal; or a
/// trailing `.*` = any deeper topic (not the bare prefix); or each `*` = one or more
/// non-dot characters.
pub(crate) fn topic_matches(topic: &str, pattern: &str) -> bool {
    if pattern == topic {
        return true;
    }
    if let Some(prefix) = pattern.strip_suffix(".*") {
        return topic.len() > prefix.len()
            && topic.starts_with(prefix)
            && topic[prefix.len()..].starts_with('.');
    }
    if pattern.contains('*') {
        return wildcard_test(pattern, '.', topic);
    }
    false
}

/// A fact pattern (or timer-name pattern) against a key (`matchesFactPattern`): equal;
/// or `prefix:*` (no other `*`) = exactly one more segment, possibly empty; or each `*` =
/// one or more non-colon characters.
pub(crate) fn fact_matches(key: &str, pattern: &str) -> bool {
    if pattern == key {
        return true;
    }
    if let Some(head) = pattern.strip_suffix(":*") {
        if !head.contains('*') {
            let prefix = &pattern[..pattern.len() - 1];
            return key.starts_with(prefix) && !key[prefix.len()..].contains(':');
        }
    }
    if pattern.contains('*') {
        return wildcard_test(pattern, ':', key);
    }
    false
}

/// The text before the first `:` (the fact store's prefix index).
pub(crate) fn fact_prefix(key: &str) -> &str {
    key.split(':').next().unwrap_or(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_patterns() {
        assert!(subscription_matches("*", "order.a.b"));
        assert!(subscription_matches("order.*", "order"));
        assert!(subscription_matches("order.*", "order.a.b.c"));
        assert!(subscription_matches("order.*.done", "order..done"));
        assert!(!subscription_matches("order.*.done", "order.done"));
        assert!(!subscription_matches("ord*", "order"));
        assert!(subscription_matches("order.**", "order.**"));
        assert!(!subscription_matches("*.created", "created"));
    }

    #[test]
    fn trigger_topics() {
        assert!(!topic_matches("order", "order.*"));
        assert!(topic_matches("order..done", "order.*"));
        assert!(topic_matches("order", "*"));
        assert!(!topic_matches("order.created", "*"));
        assert!(topic_matches("orders", "ord*"));
        assert!(!topic_matches("ord", "ord*"));
        assert!(topic_matches("order.ab", "order.**"));
        assert!(!topic_matches("order.a", "order.**"));
        assert!(!topic_matches("order..done", "order.*.done"));
    }

    #[test]
    fn fact_patterns() {
        assert!(fact_matches("customer:1", "customer:*"));
        assert!(fact_matches("customer:", "customer:*"));
        assert!(!fact_matches("customer:1:age", "customer:*"));
        assert!(!fact_matches("customer::age", "customer:*:age"));
        assert!(fact_matches("customer:1", "cust*:1"));
        assert!(!fact_matches("customer:1", "customer:**"));
        assert!(fact_matches("customer", "*"));
        assert!(!fact_matches("customer:1", "*"));
        assert_eq!(fact_prefix("a:b:c"), "a");
        assert_eq!(fact_prefix("abc"), "abc");
    }
}
