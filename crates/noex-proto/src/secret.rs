//! A string that never shows itself in `Debug` output or logs.

use std::fmt;

/// A secret value: a token, a password or an admin secret.
///
/// `Debug` and `Display` print `<redacted>`; the value is reachable only through
/// [`Secret::expose`], so it cannot end up in logs by accident.
///
/// ```
/// use noex_proto::Secret;
/// let s = Secret::new("hunter2");
/// assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
/// assert_eq!(s.expose(), "hunter2");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}

/// Shows a URL without its user info, query and fragment, which may carry credentials
/// (`ws://user:pass@host/?token=…` shows as `ws://<redacted>@host/?<redacted>`). Works
/// on any text without allocating.
///
/// ```
/// use noex_proto::RedactedUrl;
/// let shown = RedactedUrl("wss://alice:pw@example.com/ws?token=t").to_string();
/// assert_eq!(shown, "wss://<redacted>@example.com/ws?<redacted>");
/// ```
pub struct RedactedUrl<'a>(pub &'a str);

/// `Debug` redacts as `Display` does: the URL may carry credentials.
impl fmt::Debug for RedactedUrl<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

impl fmt::Display for RedactedUrl<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = self.0;
        let (scheme, rest) = match url.find("://") {
            Some(at) => url.split_at(at + 3),
            None => ("", url),
        };
        let end = rest.find(['?', '#']).unwrap_or(rest.len());
        let (rest, tail) = rest.split_at(end);
        let authority_end = rest.find('/').unwrap_or(rest.len());
        let (authority, path) = rest.split_at(authority_end);
        let host = match authority.rfind('@') {
            Some(at) => authority.get(at + 1..).unwrap_or(""),
            None => authority,
        };
        f.write_str(scheme)?;
        if host.len() != authority.len() {
            f.write_str("<redacted>@")?;
        }
        f.write_str(host)?;
        f.write_str(path)?;
        if !tail.is_empty() {
            f.write_str("?<redacted>")?;
        }
        Ok(())
    }
}
