//! The `--config` file (same keys as the real CLI's `FileConfig`) and the merge of file
//! and flags into [`ServerSettings`] (flags win), with the real CLI's validation.

use std::path::Path;

use serde_json::Value;

use super::command_line::{js_display, js_number, ServeArgs};
use super::error::ServeError;
use super::json_check::Checker;
use super::settings::{Auth, Backpressure, ConnectionLimits, Heartbeat, RateLimit, ServerSettings};

/// The keys of a config file, as the real CLI's `FileConfig`.
pub(crate) const KEYS: &[&str] = &[
    "port",
    "host",
    "name",
    "persistence",
    "dataDir",
    "db",
    "auth",
    "adminSecret",
    "rules",
    "audit",
    "rateLimit",
    "heartbeat",
    "backpressure",
    "connectionLimits",
    "exposeErrorDetails",
    "allowedOrigins",
    "maxConnectionsPerIp",
    // Not a key of the real CLI (which ignores unknown keys): noex serve applies it.
    "maxPayloadBytes",
];

/// A parsed config file: every key optional.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct FileConfig {
    pub(crate) port: Option<f64>,
    pub(crate) host: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) persistence: Option<String>,
    pub(crate) data_dir: Option<String>,
    pub(crate) db: Option<String>,
    pub(crate) auth: Option<bool>,
    /// `auth.sessionTtl` (ms), from an `auth` object.
    pub(crate) session_ttl_ms: Option<u64>,
    pub(crate) admin_secret: Option<String>,
    pub(crate) rules: Option<bool>,
    pub(crate) audit: Option<bool>,
    pub(crate) rate_limit: Option<RateLimit>,
    pub(crate) heartbeat: Option<Heartbeat>,
    pub(crate) backpressure: Option<Backpressure>,
    pub(crate) connection_limits: Option<ConnectionLimits>,
    pub(crate) expose_error_details: Option<bool>,
    pub(crate) allowed_origins: Option<Vec<String>>,
    pub(crate) max_connections_per_ip: Option<u64>,
    pub(crate) max_payload_bytes: Option<u64>,
}

/// Read and parse the file at `path` (relative to the current directory).
pub(crate) fn load(path: &str) -> Result<FileConfig, ServeError> {
    let abs = std::path::absolute(Path::new(path)).unwrap_or_else(|_| path.into());
    let shown = abs.display();
    let text = std::fs::read_to_string(&abs).map_err(|e| {
        let what = match e.kind() {
            std::io::ErrorKind::NotFound => "ENOENT: no such file or directory".to_string(),
            std::io::ErrorKind::PermissionDenied => "EACCES: permission denied".to_string(),
            std::io::ErrorKind::InvalidData => "file is not valid UTF-8".to_string(),
            _ => e.to_string(),
        };
        ServeError::ConfigFile(vec![format!("{what}, open '{shown}'")])
    })?;
    parse(&text).map_err(ServeError::ConfigFile)
}

/// Parse a config file's text: JSON, an object, known keys, values of the right type.
pub(crate) fn parse(text: &str) -> Result<FileConfig, Vec<String>> {
    let v: Value = serde_json::from_str(text).map_err(|e| vec![format!("invalid JSON: {e}")])?;
    let mut c = Checker::default();
    let Some(m) = c.object("", &v, KEYS) else {
        return Err(vec![format!(
            "the config file must contain a JSON object (got {})",
            super::json_check::describe(&v)
        )]);
    };
    let mut f = FileConfig::default();
    for (k, v) in m {
        match k.as_str() {
            "port" => f.port = c.number(k, v),
            "host" => f.host = c.non_empty_string(k, v),
            "name" => f.name = c.string(k, v),
            "persistence" => f.persistence = c.string(k, v),
            "dataDir" => f.data_dir = c.string(k, v),
            "db" => f.db = c.string(k, v),
            "auth" => match v {
                // As the real CLI, whose check is the value's truthiness: an object turns
                // auth on. Its `sessionTtl` is the server's `auth.sessionTtl`.
                Value::Object(_) => {
                    if let Some(o) = c.object(k, v, &["sessionTtl"]) {
                        f.auth = Some(true);
                        f.session_ttl_ms = o
                            .get("sessionTtl")
                            .and_then(|t| c.milliseconds("auth.sessionTtl", t));
                    }
                }
                Value::Bool(b) => f.auth = Some(*b),
                _ => c.error(format!(
                    "\"auth\" must be a boolean or an object such as {{\"sessionTtl\": \
                     3600000}} (got {})",
                    super::json_check::describe(v)
                )),
            },
            "adminSecret" => f.admin_secret = c.string(k, v),
            "rules" => f.rules = c.bool(k, v),
            "audit" => f.audit = c.bool(k, v),
            "exposeErrorDetails" => f.expose_error_details = c.bool(k, v),
            "allowedOrigins" => f.allowed_origins = c.strings(k, v),
            "maxConnectionsPerIp" => f.max_connections_per_ip = c.positive_int(k, v),
            "maxPayloadBytes" => f.max_payload_bytes = c.positive_int(k, v),
            "rateLimit" => {
                if let Some(o) = c.object(k, v, &["maxRequests", "windowMs"]) {
                    let max = c.required(k, o, "maxRequests");
                    let max = max.and_then(|v| c.positive_int("rateLimit.maxRequests", v));
                    let win = c.required(k, o, "windowMs");
                    let win = win.and_then(|v| c.positive_int("rateLimit.windowMs", v));
                    if let (Some(max_requests), Some(window_ms)) = (max, win) {
                        f.rate_limit = Some(RateLimit {
                            max_requests,
                            window_ms,
                        });
                    }
                }
            }
            "heartbeat" => {
                if let Some(o) = c.object(k, v, &["intervalMs", "timeoutMs"]) {
                    let i = c.required(k, o, "intervalMs");
                    let i = i.and_then(|v| c.positive_int("heartbeat.intervalMs", v));
                    let t = c.required(k, o, "timeoutMs");
                    let t = t.and_then(|v| c.positive_int("heartbeat.timeoutMs", v));
                    if let (Some(interval_ms), Some(timeout_ms)) = (i, t) {
                        f.heartbeat = Some(Heartbeat {
                            interval_ms,
                            timeout_ms,
                        });
                    }
                }
            }
            "backpressure" => {
                if let Some(o) = c.object(k, v, &["maxBufferedBytes", "highWaterMark"]) {
                    let b = c.required(k, o, "maxBufferedBytes");
                    let b = b.and_then(|v| c.positive_int("backpressure.maxBufferedBytes", v));
                    let h = c.required(k, o, "highWaterMark");
                    let h = h.and_then(|v| c.number("backpressure.highWaterMark", v));
                    let h = match h {
                        Some(h) if h > 0.0 && h <= 1.0 => Some(h),
                        Some(h) => {
                            c.error(format!(
                                "\"backpressure.highWaterMark\" must be a number greater \
                                 than 0 and at most 1 (got number {h})"
                            ));
                            None
                        }
                        None => None,
                    };
                    if let (Some(max_buffered_bytes), Some(high_water_mark)) = (b, h) {
                        f.backpressure = Some(Backpressure {
                            max_buffered_bytes,
                            high_water_mark,
                        });
                    }
                }
            }
            "connectionLimits" => {
                let known = ["maxSubscriptionsPerConnection", "maxTotalSubscriptions"];
                if let Some(o) = c.object(k, v, &known) {
                    let mut l = ConnectionLimits::default();
                    let mut ok = true;
                    if let Some(v) = o.get(known[0]) {
                        l.max_subscriptions_per_connection =
                            c.positive_int("connectionLimits.maxSubscriptionsPerConnection", v);
                        ok &= l.max_subscriptions_per_connection.is_some();
                    }
                    if let Some(v) = o.get(known[1]) {
                        l.max_total_subscriptions =
                            c.positive_int("connectionLimits.maxTotalSubscriptions", v);
                        ok &= l.max_total_subscriptions.is_some();
                    }
                    if ok {
                        f.connection_limits = Some(l);
                    }
                }
            }
            _ => {} // reported by `object`
        }
    }
    c.finish().map(|()| f)
}

/// What the merge produced besides the server settings (for the banner).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Resolved {
    pub(crate) settings: ServerSettings,
    /// Always `memory` after validation.
    pub(crate) persistence: String,
}

/// Merge flags over the file over the defaults, then validate as the real CLI does
/// (every problem reported, each as `Error: <message>`).
pub(crate) fn resolve(args: &ServeArgs, file: &FileConfig) -> Result<Resolved, ServeError> {
    let mut errors = Vec::new();
    let defaults = ServerSettings::default();

    let port: Option<f64> = match &args.port {
        Some(raw) => js_number(raw),
        None => Some(file.port.unwrap_or(f64::from(defaults.port))),
    };
    let port = match port {
        Some(p) if p.fract() == 0.0 && (0.0..=65535.0).contains(&p) => p as u16,
        other => {
            errors.push(format!(
                "Invalid port: {} (must be integer 0-65535)",
                js_display(other)
            ));
            0
        }
    };

    let host = args
        .host
        .clone()
        .or_else(|| file.host.clone())
        .unwrap_or(defaults.host);
    let name = args
        .name
        .clone()
        .or_else(|| file.name.clone())
        .unwrap_or(defaults.name);
    let persistence = args
        .persistence
        .clone()
        .or_else(|| file.persistence.clone())
        .unwrap_or_else(|| "memory".into());
    let auth = args.auth || file.auth.unwrap_or(false);
    let admin_secret = args
        .admin_secret
        .clone()
        .or_else(|| file.admin_secret.clone());
    let rules = if args.no_rules {
        false
    } else {
        file.rules.unwrap_or(true)
    };
    let audit = args.audit || file.audit.unwrap_or(false);
    let expose_error_details = if args.no_error_details {
        false
    } else {
        file.expose_error_details.unwrap_or(true)
    };
    let allowed_origins = match &args.allowed_origins {
        Some(list) => Some(list.split(',').map(|o| o.trim().to_string()).collect()),
        None => file.allowed_origins.clone(),
    };
    let max_connections_per_ip = match &args.max_connections_per_ip {
        Some(raw) => match js_number(raw) {
            Some(n) if n.fract() == 0.0 && (1.0..=9_007_199_254_740_991.0).contains(&n) => {
                Some(n as u64)
            }
            other => {
                errors.push(format!(
                    "Invalid max connections per IP: {} (must be a positive integer)",
                    js_display(other)
                ));
                None
            }
        },
        None => file.max_connections_per_ip,
    };

    if auth && admin_secret.as_deref().is_none_or(str::is_empty) {
        errors.push("--admin-secret is required when --auth is enabled".into());
    }
    match persistence.as_str() {
        "memory" => {}
        "file" | "sqlite" => errors.push(format!(
            "Persistence \"{persistence}\" is not supported by noex serve: it keeps \
             all data in memory (use --persistence memory or leave it out)"
        )),
        other => errors.push(format!(
            "Unknown persistence type: {other} (must be memory, file, or sqlite)"
        )),
    }
    if !errors.is_empty() {
        return Err(ServeError::Invalid(errors));
    }

    let auth = match (auth, admin_secret) {
        (true, Some(admin_secret)) => Auth::BuiltIn {
            admin_secret,
            session_ttl_ms: file.session_ttl_ms,
        },
        _ => Auth::None,
    };
    let settings = ServerSettings {
        port,
        host,
        name,
        rules,
        audit: audit.then(Default::default),
        auth,
        buckets: Vec::new(),
        queries: Vec::new(),
        rate_limit: file.rate_limit,
        heartbeat: file.heartbeat,
        backpressure: file.backpressure,
        connection_limits: file.connection_limits,
        expose_error_details,
        allowed_origins,
        max_connections_per_ip,
        max_payload_bytes: file.max_payload_bytes,
    };
    Ok(Resolved {
        settings,
        persistence,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse_v(v: Value) -> Result<FileConfig, Vec<String>> {
        parse(&v.to_string())
    }

    fn err(v: Value) -> Vec<String> {
        parse_v(v).unwrap_err()
    }

    #[test]
    fn every_key_parses() {
        let f = parse_v(json!({
            "port": 3000, "host": "127.0.0.1", "name": "n", "persistence": "memory",
            "dataDir": "d", "db": "x.db", "auth": true, "adminSecret": "s", "rules": false,
            "audit": true,
            "rateLimit": {"maxRequests": 100, "windowMs": 1000},
            "heartbeat": {"intervalMs": 500, "timeoutMs": 200},
            "backpressure": {"maxBufferedBytes": 1024, "highWaterMark": 0.5},
            "connectionLimits": {"maxSubscriptionsPerConnection": 3, "maxTotalSubscriptions": 9},
            "exposeErrorDetails": false, "allowedOrigins": ["http://a"],
            "maxConnectionsPerIp": 4, "maxPayloadBytes": 2048
        }))
        .unwrap();
        assert_eq!(f.port, Some(3000.0));
        assert_eq!(f.host.as_deref(), Some("127.0.0.1"));
        assert_eq!(f.name.as_deref(), Some("n"));
        assert_eq!(f.persistence.as_deref(), Some("memory"));
        assert_eq!(f.data_dir.as_deref(), Some("d"));
        assert_eq!(f.db.as_deref(), Some("x.db"));
        assert_eq!(f.auth, Some(true));
        assert_eq!(f.admin_secret.as_deref(), Some("s"));
        assert_eq!(f.rules, Some(false));
        assert_eq!(f.audit, Some(true));
        assert_eq!(
            f.rate_limit,
            Some(RateLimit {
                max_requests: 100,
                window_ms: 1000
            })
        );
        assert_eq!(
            f.heartbeat,
            Some(Heartbeat {
                interval_ms: 500,
                timeout_ms: 200
            })
        );
        assert_eq!(
            f.backpressure,
            Some(Backpressure {
                max_buffered_bytes: 1024,
                high_water_mark: 0.5
            })
        );
        assert_eq!(
            f.connection_limits,
            Some(ConnectionLimits {
                max_subscriptions_per_connection: Some(3),
                max_total_subscriptions: Some(9)
            })
        );
        assert_eq!(f.expose_error_details, Some(false));
        assert_eq!(f.allowed_origins, Some(vec!["http://a".to_string()]));
        assert_eq!(f.max_connections_per_ip, Some(4));
        assert_eq!(f.max_payload_bytes, Some(2048));
    }

    #[test]
    fn empty_object_is_all_defaults() {
        assert_eq!(parse("{}").unwrap(), FileConfig::default());
    }

    #[test]
    fn invalid_json_and_non_object() {
        let e = parse("{port: 1}").unwrap_err();
        assert_eq!(e.len(), 1);
        assert!(
            e[0].starts_with("invalid JSON: key must be a string"),
            "{e:?}"
        );
        assert!(parse("").unwrap_err()[0].starts_with("invalid JSON:"));
        assert_eq!(
            parse("[1]").unwrap_err(),
            vec!["the config file must contain a JSON object (got an array of 1 items)"]
        );
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = err(json!({"prot": 1}));
        assert_eq!(e.len(), 1);
        assert!(
            e[0].starts_with("unknown key \"prot\" (known keys: port, host,"),
            "{e:?}"
        );
        assert_eq!(
            err(json!({"heartbeat": {"intervalMs": 1, "timeoutMs": 1, "every": 2}})),
            vec!["unknown key \"heartbeat.every\" (known keys of \"heartbeat\": intervalMs, timeoutMs)"]
        );
    }

    #[test]
    fn bad_values_name_the_key() {
        let cases: Vec<(Value, &str)> = vec![
            (json!({"port": "80"}), "\"port\" must be a number (got a string of 2 characters)"),
            (json!({"host": ""}), "\"host\" must be a non-empty string (got a string of 0 characters)"),
            (json!({"name": 1}), "\"name\" must be a string (got number 1)"),
            (json!({"persistence": true}), "\"persistence\" must be a string (got boolean true)"),
            (json!({"dataDir": null}), "\"dataDir\" must be a string (got null)"),
            (json!({"db": []}), "\"db\" must be a string (got an array of 0 items)"),
            (json!({"auth": "yes"}), "\"auth\" must be a boolean or an object such as {\"sessionTtl\": 3600000} (got a string of 3 characters)"),
            (json!({"auth": {"sessionTtl": 0}}), "\"auth.sessionTtl\" must be a positive integer of milliseconds (got number 0)"),
            (json!({"auth": {"sessionTtl": "1h"}}), "\"auth.sessionTtl\" must be a positive integer of milliseconds (got a string of 2 characters)"),
            (json!({"auth": {"ttl": 1}}), "unknown key \"auth.ttl\" (known keys of \"auth\": sessionTtl)"),
            (json!({"adminSecret": 5}), "\"adminSecret\" must be a string (got number 5)"),
            (json!({"rules": 1}), "\"rules\" must be a boolean (got number 1)"),
            (json!({"audit": {}}), "\"audit\" must be a boolean (got an object)"),
            (json!({"exposeErrorDetails": 0}), "\"exposeErrorDetails\" must be a boolean (got number 0)"),
            (json!({"allowedOrigins": "x"}), "\"allowedOrigins\" must be an array of strings (got a string of 1 characters)"),
            (json!({"allowedOrigins": ["a", 1]}), "\"allowedOrigins[1]\" must be a string (got number 1)"),
            (json!({"maxConnectionsPerIp": 0}), "\"maxConnectionsPerIp\" must be a positive integer (got number 0)"),
            (json!({"maxPayloadBytes": 1.5}), "\"maxPayloadBytes\" must be a positive integer (got number 1.5)"),
            (json!({"rateLimit": 5}), "\"rateLimit\" must be an object (got number 5)"),
            (json!({"rateLimit": {"windowMs": 1}}), "\"rateLimit.maxRequests\" is required"),
            (json!({"rateLimit": {"maxRequests": 1}}), "\"rateLimit.windowMs\" is required"),
            (json!({"rateLimit": {"maxRequests": -1, "windowMs": 1}}), "\"rateLimit.maxRequests\" must be a positive integer (got number -1)"),
            (json!({"rateLimit": {"maxRequests": 1, "windowMs": 1.5}}), "\"rateLimit.windowMs\" must be a positive integer (got number 1.5)"),
            (json!({"heartbeat": {"timeoutMs": 1}}), "\"heartbeat.intervalMs\" is required"),
            (json!({"heartbeat": {"intervalMs": 1}}), "\"heartbeat.timeoutMs\" is required"),
            (json!({"heartbeat": {"intervalMs": 0, "timeoutMs": 1}}), "\"heartbeat.intervalMs\" must be a positive integer (got number 0)"),
            (json!({"heartbeat": {"intervalMs": 1, "timeoutMs": "1"}}), "\"heartbeat.timeoutMs\" must be a positive integer (got a string of 1 characters)"),
            (json!({"backpressure": {"highWaterMark": 0.5}}), "\"backpressure.maxBufferedBytes\" is required"),
            (json!({"backpressure": {"maxBufferedBytes": 1}}), "\"backpressure.highWaterMark\" is required"),
            (json!({"backpressure": {"maxBufferedBytes": 0, "highWaterMark": 0.5}}), "\"backpressure.maxBufferedBytes\" must be a positive integer (got number 0)"),
            (json!({"backpressure": {"maxBufferedBytes": 1, "highWaterMark": 2}}), "\"backpressure.highWaterMark\" must be a number greater than 0 and at most 1 (got number 2)"),
            (json!({"backpressure": {"maxBufferedBytes": 1, "highWaterMark": "x"}}), "\"backpressure.highWaterMark\" must be a number (got a string of 1 characters)"),
            (json!({"connectionLimits": []}), "\"connectionLimits\" must be an object (got an array of 0 items)"),
            (json!({"connectionLimits": {"maxSubscriptionsPerConnection": 0}}), "\"connectionLimits.maxSubscriptionsPerConnection\" must be a positive integer (got number 0)"),
            (json!({"connectionLimits": {"maxTotalSubscriptions": null}}), "\"connectionLimits.maxTotalSubscriptions\" must be a positive integer (got null)"),
        ];
        for (input, expected) in cases {
            assert_eq!(err(input.clone()), vec![expected.to_string()], "{input}");
        }
    }

    #[test]
    fn every_problem_is_reported() {
        let e = err(json!({"port": "x", "auth": 1, "bogus": true}));
        assert_eq!(e.len(), 3, "{e:?}");
    }

    #[test]
    fn secrets_are_not_echoed() {
        let e = err(json!({"adminSecret": ["hunter2"]}));
        assert!(!e[0].contains("hunter2"));
    }

    fn args(list: &[&str]) -> ServeArgs {
        ServeArgs::parse_line(list.iter().map(std::ffi::OsString::from).collect()).unwrap()
    }

    #[test]
    fn defaults_match_the_real_cli() {
        let r = resolve(&args(&[]), &FileConfig::default()).unwrap();
        let s = r.settings;
        assert_eq!(s.port, 8080);
        assert_eq!(s.host, "0.0.0.0");
        assert_eq!(s.name, "noex-server");
        assert_eq!(r.persistence, "memory");
        assert_eq!(s.auth, Auth::None);
        assert!(s.rules);
        assert_eq!(s.audit, None);
        assert!(s.expose_error_details);
        assert_eq!(s.allowed_origins, None);
        assert_eq!(s.max_connections_per_ip, None);
        assert_eq!(s.rate_limit, None);
        assert_eq!(s.heartbeat, None);
    }

    #[test]
    fn flags_override_the_file() {
        let file = parse_v(json!({
            "port": 1000, "host": "10.0.0.1", "name": "f", "rules": true, "audit": false,
            "exposeErrorDetails": true, "allowedOrigins": ["f"], "maxConnectionsPerIp": 2,
            "auth": false, "adminSecret": "file-secret",
            "heartbeat": {"intervalMs": 100, "timeoutMs": 50}
        }))
        .unwrap();
        let r = resolve(
            &args(&[
                "-p",
                "2000",
                "-H",
                "127.0.0.1",
                "--name",
                "c",
                "--no-rules",
                "--audit",
                "--no-error-details",
                "--allowed-origins",
                " a , b",
                "--max-connections-per-ip",
                "7",
                "--auth",
            ]),
            &file,
        )
        .unwrap();
        let s = r.settings;
        assert_eq!(s.port, 2000);
        assert_eq!(s.host, "127.0.0.1");
        assert_eq!(s.name, "c");
        assert!(!s.rules);
        assert!(s.audit.is_some());
        assert!(!s.expose_error_details);
        assert_eq!(s.allowed_origins, Some(vec!["a".into(), "b".into()]));
        assert_eq!(s.max_connections_per_ip, Some(7));
        assert_eq!(
            s.auth,
            Auth::BuiltIn {
                admin_secret: "file-secret".into(),
                session_ttl_ms: None,
            }
        );
        assert_eq!(s.heartbeat.map(|h| h.interval_ms), Some(100));
    }

    #[test]
    fn an_auth_object_turns_auth_on_with_its_session_ttl() {
        let file = parse_v(json!({"auth": {"sessionTtl": 1500}, "adminSecret": "s"})).unwrap();
        assert_eq!((file.auth, file.session_ttl_ms), (Some(true), Some(1500)));
        let s = resolve(&args(&[]), &file).unwrap().settings;
        assert_eq!(
            s.auth,
            Auth::BuiltIn {
                admin_secret: "s".into(),
                session_ttl_ms: Some(1500),
            }
        );
        let file = parse_v(json!({"auth": {}})).unwrap();
        assert_eq!((file.auth, file.session_ttl_ms), (Some(true), None));
        assert_eq!(
            invalid(&[], file),
            vec!["--admin-secret is required when --auth is enabled"]
        );
    }

    #[test]
    fn file_values_apply_without_flags() {
        let file = parse_v(json!({"port": 0, "rules": false, "audit": true,
            "exposeErrorDetails": false, "host": "localhost"}))
        .unwrap();
        let r = resolve(&args(&[]), &file).unwrap();
        assert_eq!(r.settings.port, 0);
        assert!(!r.settings.rules);
        assert!(r.settings.audit.is_some());
        assert!(!r.settings.expose_error_details);
        assert_eq!(r.settings.host, "localhost");
    }

    fn invalid(list: &[&str], file: FileConfig) -> Vec<String> {
        match resolve(&args(list), &file) {
            Err(ServeError::Invalid(e)) => e,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn validation_messages_match_the_real_cli() {
        assert_eq!(
            invalid(&["-p", "abc"], FileConfig::default()),
            vec!["Invalid port: NaN (must be integer 0-65535)"]
        );
        assert_eq!(
            invalid(&["-p", "70000"], FileConfig::default()),
            vec!["Invalid port: 70000 (must be integer 0-65535)"]
        );
        assert_eq!(
            invalid(&["-p", "80.5"], FileConfig::default()),
            vec!["Invalid port: 80.5 (must be integer 0-65535)"]
        );
        assert_eq!(
            invalid(&["--port=-1"], FileConfig::default()),
            vec!["Invalid port: -1 (must be integer 0-65535)"]
        );
        let file = FileConfig {
            port: Some(1.5),
            ..Default::default()
        };
        assert_eq!(
            invalid(&[], file),
            vec!["Invalid port: 1.5 (must be integer 0-65535)"]
        );
        assert_eq!(
            invalid(&["--auth"], FileConfig::default()),
            vec!["--admin-secret is required when --auth is enabled"]
        );
        assert_eq!(
            invalid(&["--auth", "--admin-secret", ""], FileConfig::default()),
            vec!["--admin-secret is required when --auth is enabled"]
        );
        assert_eq!(
            invalid(&["--persistence", "redis"], FileConfig::default()),
            vec!["Unknown persistence type: redis (must be memory, file, or sqlite)"]
        );
        let e = invalid(&["--persistence", "sqlite"], FileConfig::default());
        assert!(e[0].starts_with("Persistence \"sqlite\" is not supported by noex serve"));
        assert_eq!(
            invalid(&["--max-connections-per-ip", "0"], FileConfig::default()),
            vec!["Invalid max connections per IP: 0 (must be a positive integer)"]
        );
        // Several problems: all reported.
        assert_eq!(
            invalid(
                &["-p", "x", "--auth", "--persistence", "y"],
                FileConfig::default()
            )
            .len(),
            3
        );
    }

    #[test]
    fn port_from_flag_is_a_js_number() {
        let r = resolve(&args(&["-p", "0x10"]), &FileConfig::default()).unwrap();
        assert_eq!(r.settings.port, 16);
        let r = resolve(&args(&["-p", ""]), &FileConfig::default()).unwrap();
        assert_eq!(r.settings.port, 0);
    }

    #[test]
    fn missing_file_reads_like_node() {
        match load("/nonexistent/dir/cfg.json") {
            Err(ServeError::ConfigFile(e)) => assert_eq!(
                e,
                vec!["ENOENT: no such file or directory, open '/nonexistent/dir/cfg.json'"]
            ),
            other => panic!("{other:?}"),
        }
    }
}
