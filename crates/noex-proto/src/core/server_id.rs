//! The server's id for a subscription, kept small: noex-server hands out `sub-<n>`, held
//! here as its number (no allocation per live subscription); any other id is kept as text.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum ServerId {
    /// `sub-<n>`, written canonically (no sign, no leading zero).
    Seq(u64),
    /// Anything else, verbatim.
    Text(Box<str>),
}

impl ServerId {
    pub(super) fn new(id: &str) -> ServerId {
        let canonical = |digits: &str| {
            !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit())
                && (digits == "0" || !digits.starts_with('0'))
        };
        match id.strip_prefix("sub-") {
            Some(digits) if canonical(digits) => match digits.parse() {
                Ok(n) => ServerId::Seq(n),
                Err(_) => ServerId::Text(id.into()),
            },
            _ => ServerId::Text(id.into()),
        }
    }
}

/// Writes the id exactly as the server sent it.
impl fmt::Display for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerId::Seq(n) => write!(f, "sub-{n}"),
            ServerId::Text(text) => f.write_str(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ServerId;

    #[test]
    fn ids_round_trip_exactly() {
        for id in [
            "sub-1",
            "sub-0",
            "sub-18446744073709551615",
            "sub-18446744073709551616",
            "sub-007",
            "sub-",
            "sub--1",
            "sub-+1",
            "rules-3",
            "",
            "ünï",
        ] {
            assert_eq!(ServerId::new(id).to_string(), id);
        }
        assert_eq!(ServerId::new("sub-42"), ServerId::Seq(42));
        assert!(matches!(ServerId::new("sub-007"), ServerId::Text(_)));
    }
}
