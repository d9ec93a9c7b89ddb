//! What `noex serve` prints as the real CLI does: its startup banner and its version.

use super::settings::{Auth, ServerSettings};

/// The version the real CLI reports (its banner and `--version`).
pub(super) const SERVER_VERSION: &str = "0.1.0";

/// The real CLI's startup banner, with the address actually listened on.
pub(super) fn banner(
    s: &ServerSettings,
    persistence: &str,
    url: &str,
    control: Option<&str>,
) -> String {
    let mut b = format!(
        "noex-server v{SERVER_VERSION}\n  URL:          {url}\n  Persistence:  {persistence}\n  \
         Auth:         {}\n  Rules:        {}\n  Audit:        {}\n  Error details: {}\n  \
         Origins:      {}\n  Max conn/IP:  {}",
        if matches!(s.auth, Auth::BuiltIn { .. }) {
            "built-in"
        } else {
            "disabled"
        },
        if s.rules { "enabled" } else { "disabled" },
        if s.audit.is_some() {
            "enabled"
        } else {
            "disabled"
        },
        if s.expose_error_details {
            "exposed"
        } else {
            "hidden"
        },
        s.allowed_origins
            .as_ref()
            .map_or("any".to_string(), |o| o.join(", ")),
        s.max_connections_per_ip
            .map_or("unlimited".to_string(), |n| n.to_string()),
    );
    if let Some(c) = control {
        b.push_str(&format!("\n  Control:      {c}"));
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::settings::Audit;

    #[test]
    fn banner_matches_the_real_cli() {
        let s = ServerSettings::default();
        assert_eq!(
            banner(&s, "memory", "ws://127.0.0.1:8080", None),
            "noex-server v0.1.0\n  URL:          ws://127.0.0.1:8080\n  Persistence:  memory\n  \
             Auth:         disabled\n  Rules:        enabled\n  Audit:        disabled\n  \
             Error details: exposed\n  Origins:      any\n  Max conn/IP:  unlimited"
        );
        let s = ServerSettings {
            auth: Auth::BuiltIn {
                admin_secret: "x".into(),
                session_ttl_ms: None,
            },
            rules: false,
            audit: Some(Audit::default()),
            expose_error_details: false,
            allowed_origins: Some(vec!["a".into(), "b".into()]),
            max_connections_per_ip: Some(3),
            ..Default::default()
        };
        let b = banner(&s, "memory", "ws://127.0.0.1:1", Some("http://127.0.0.1:2"));
        assert!(b.contains("Auth:         built-in"));
        assert!(b.contains("Rules:        disabled"));
        assert!(b.contains("Audit:        enabled"));
        assert!(b.contains("Error details: hidden"));
        assert!(b.contains("Origins:      a, b"));
        assert!(b.contains("Max conn/IP:  3"));
        assert!(b.ends_with("\n  Control:      http://127.0.0.1:2"));
        assert!(!b.contains('x') || !b.contains("admin"));
    }
}
