//! The one place where [`ServerSettings`] meet the testkit: [`apply`] maps every setting
//! onto [`TestServerBuilder`].

use std::time::Duration;

use noex_testkit::{
    AuthMode, BucketDef, HeartbeatConfig, Permissions, QueryDef, RateLimit, TestServerBuilder,
    TokenSession,
};
use serde_json::{Map, Value};

use super::settings::{Audit, AuditTier, Auth, Bucket, QueryKind, ServerSettings};

/// A bucket definition: [`BucketDef`] keeps the schema's field order; TTL and `maxSize`
/// need the JSON form.
fn bucket(b: TestServerBuilder, bucket: &Bucket) -> TestServerBuilder {
    if bucket.ttl.is_none() && bucket.max_size.is_none() {
        let mut def = BucketDef::new(&bucket.name);
        for (field, definition) in &bucket.fields {
            def = def.field(field, definition.clone());
        }
        for index in &bucket.indexes {
            def = def.index(index);
        }
        return b.bucket(def);
    }
    let mut config = Map::new();
    config.insert("key".into(), "id".into());
    let schema: Map<String, Value> = bucket.fields.iter().cloned().collect();
    config.insert("schema".into(), Value::Object(schema));
    if !bucket.indexes.is_empty() {
        config.insert("indexes".into(), bucket.indexes.clone().into());
    }
    if let Some(ttl) = &bucket.ttl {
        config.insert("ttl".into(), ttl.clone());
    }
    if let Some(n) = bucket.max_size {
        config.insert("maxSize".into(), n.into());
    }
    b.bucket_json(&bucket.name, Value::Object(config))
}

fn usize_of(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Map `s` onto `b`: every setting the real server has is honoured.
pub(crate) fn apply(s: &ServerSettings, mut b: TestServerBuilder) -> TestServerBuilder {
    b = b.port(s.port).host(&s.host);
    b = b.name(&s.name);
    b = b.rules(s.rules);

    // Auth.
    b = match &s.auth {
        Auth::None => b.auth(AuthMode::None),
        Auth::BuiltIn {
            admin_secret,
            session_ttl_ms,
        } => {
            b = b.auth(AuthMode::identity(admin_secret.clone()));
            match session_ttl_ms {
                Some(ms) => b.session_ttl(Duration::from_millis(*ms)),
                None => b,
            }
        }
        Auth::Sessions {
            sessions,
            required,
            check_roles,
        } => {
            b = b.auth(AuthMode::tokens(sessions.iter().map(|t| {
                let session = TokenSession::new(&t.token, &t.user_id, t.roles.iter());
                match t.expires_at {
                    Some(ms) => session.expires_at(ms),
                    None => session,
                }
            })));
            b = b.auth_required(*required);
            match check_roles {
                Some(roles) => b.permissions(Permissions::check_roles(roles.iter())),
                None => b,
            }
        }
    };

    // Audit: the real server records the admin tier unless told otherwise.
    match &s.audit {
        None => b = b.audit(false),
        Some(Audit { tiers }) => {
            let tiers = tiers.clone().unwrap_or_else(|| vec![AuditTier::Admin]);
            b = b.audit(true).audit_tiers(tiers.iter().map(|t| t.as_str()));
        }
    }

    // Store.
    for def in &s.buckets {
        b = bucket(b, def);
    }
    for q in &s.queries {
        let def = match &q.kind {
            QueryKind::All => QueryDef::all(&q.bucket),
            QueryKind::Where { field } => QueryDef::where_param(&q.bucket, field),
            QueryKind::Count => QueryDef::count(&q.bucket),
        };
        b = b.query(&q.name, def);
    }

    // Limits and lifecycle.
    if let Some(r) = s.rate_limit {
        let max = u32::try_from(r.max_requests).unwrap_or(u32::MAX);
        b = b.rate_limit(RateLimit::new(max, r.window_ms));
    }
    if let Some(h) = s.heartbeat {
        b = b.heartbeat_config(HeartbeatConfig {
            interval_ms: h.interval_ms,
            timeout_ms: h.timeout_ms,
        });
    }
    // `backpressure` is validated and accepted; noex-server 0.1.4 never applies it either
    // (nothing it sends goes through the check), so there is nothing to do.
    if let Some(l) = s.connection_limits {
        if let Some(n) = l.max_subscriptions_per_connection {
            b = b.max_subscriptions_per_connection(usize_of(n));
        }
        if let Some(n) = l.max_total_subscriptions {
            b = b.max_total_subscriptions(usize_of(n));
        }
    }
    b = b.expose_error_details(s.expose_error_details);
    if let Some(origins) = &s.allowed_origins {
        b = b.allowed_origins(origins.iter());
    }
    if let Some(n) = s.max_connections_per_ip {
        b = b.max_connections_per_ip(usize_of(n));
    }
    if let Some(n) = s.max_payload_bytes {
        b = b.max_payload_bytes(usize_of(n));
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::settings::{
        Backpressure, ConnectionLimits, Heartbeat, Query, RateLimit, Session,
    };
    use serde_json::json;

    fn starts(s: &ServerSettings) -> noex_testkit::TestServer {
        let s = ServerSettings {
            port: 0,
            host: "127.0.0.1".into(),
            ..s.clone()
        };
        apply(&s, noex_testkit::TestServer::builder())
            .start()
            .expect("the settings start a server")
    }

    #[test]
    fn defaults_start() {
        starts(&ServerSettings::default()).stop();
    }

    #[test]
    fn every_setting_starts_a_server() {
        let s = ServerSettings {
            name: "other".into(),
            backpressure: Some(Backpressure {
                max_buffered_bytes: 1,
                high_water_mark: 0.5,
            }),
            host: "127.0.0.1".into(),
            audit: Some(Audit {
                tiers: Some(vec![AuditTier::Write, AuditTier::Admin]),
            }),
            auth: Auth::Sessions {
                sessions: vec![],
                required: false,
                check_roles: Some(vec!["admin".into()]),
            },
            buckets: vec![Bucket {
                name: "b".into(),
                fields: vec![],
                indexes: vec![],
                ttl: Some(json!(1000)),
                max_size: Some(5),
            }],
            rate_limit: Some(RateLimit {
                max_requests: 1,
                window_ms: 1,
            }),
            heartbeat: Some(Heartbeat {
                interval_ms: 100,
                timeout_ms: 50,
            }),
            connection_limits: Some(ConnectionLimits {
                max_subscriptions_per_connection: Some(1),
                max_total_subscriptions: Some(2),
            }),
            expose_error_details: false,
            allowed_origins: Some(vec!["x".into()]),
            max_connections_per_ip: Some(2),
            max_payload_bytes: Some(4096),
            ..Default::default()
        };
        starts(&s).stop();
    }

    /// The identity's `expiresAt` after `identity.loginWithSecret` at time `t0`.
    fn login_expiry(auth: Auth, t0: i64) -> i64 {
        use noex_testkit::memory::MemoryOutput;
        let s = ServerSettings {
            auth,
            ..Default::default()
        };
        let mut server = apply(&s, noex_testkit::TestServer::builder())
            .start_in_memory(t0)
            .expect("in-memory server");
        let c = server.open(t0);
        let _welcome = server.poll_output();
        server.receive(
            c,
            t0,
            r#"{"id":1,"type":"identity.loginWithSecret","secret":"s"}"#,
        );
        let Some((_, MemoryOutput::Text(answer))) = server.poll_output() else {
            panic!("an answer");
        };
        let answer: Value = serde_json::from_str(&answer).expect("JSON");
        answer["data"]["expiresAt"].as_i64().expect("expiresAt")
    }

    #[test]
    fn built_in_auth_session_ttl_reaches_the_server() {
        let t0 = 1_796_083_200_000;
        let auth = |session_ttl_ms| Auth::BuiltIn {
            admin_secret: "s".into(),
            session_ttl_ms,
        };
        assert_eq!(login_expiry(auth(Some(1500)), t0), t0 + 1500);
        assert_eq!(login_expiry(auth(None), t0), t0 + 86_400_000);
    }

    #[test]
    fn fixture_like_settings_start_a_server() {
        let s = ServerSettings {
            port: 0,
            host: "127.0.0.1".into(),
            audit: Some(Audit { tiers: None }),
            auth: Auth::Sessions {
                sessions: vec![Session {
                    token: "t".into(),
                    user_id: "u".into(),
                    roles: vec!["admin".into()],
                    expires_at: None,
                }],
                required: true,
                check_roles: None,
            },
            buckets: vec![
                Bucket {
                    name: "users".into(),
                    fields: vec![
                        ("id".into(), json!({"type": "string", "generated": "uuid"})),
                        ("name".into(), json!({"type": "string", "required": true})),
                    ],
                    indexes: vec!["name".into()],
                    ttl: None,
                    max_size: None,
                },
                Bucket {
                    name: "cache".into(),
                    fields: vec![("id".into(), json!({"type": "string", "generated": "uuid"}))],
                    indexes: vec![],
                    ttl: Some(json!("1h")),
                    max_size: Some(2),
                },
            ],
            queries: vec![Query {
                name: "by-name".into(),
                bucket: "users".into(),
                kind: QueryKind::Where {
                    field: "name".into(),
                },
            }],
            heartbeat: Some(Heartbeat {
                interval_ms: 1000,
                timeout_ms: 1000,
            }),
            max_connections_per_ip: Some(3),
            ..Default::default()
        };
        let server = apply(&s, noex_testkit::TestServer::builder())
            .start()
            .expect("starts");
        server.insert("users", json!({"name": "a"})).unwrap();
        assert!(server.insert("users", json!({})).is_err());
        for _ in 0..3 {
            server.insert("cache", json!({})).unwrap();
        }
        assert_eq!(server.records("cache").len(), 2, "maxSize applies");
        server.stop();
    }
}
