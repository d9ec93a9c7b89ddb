//! An entry point for fuzzing the server's request handling without sockets. Not a stable
//! API: it exists for `fuzz/` and the corpus tests.

use crate::config::{AuthMode, BucketDef, QueryDef, TestServerBuilder};
use crate::state::{Core, Outbound};
use serde_json::json;

/// Feeds `frames` (client text frames, any bytes) to a fresh in-memory server with a
/// bucket, queries, rules, audit and token auth, on one connection. Returns how many frames
/// the server sent back. It must never panic, whatever the frames.
pub fn handle_frames(frames: &[&str], tokens: bool) -> usize {
    let mut builder = TestServerBuilder::default()
        .bucket(
            BucketDef::new("users")
                .field("name", json!({"type": "string", "required": true}))
                .field("age", json!({"type": "number", "min": 0, "max": 150}))
                .field("role", json!({"type": "string", "default": "user"})),
        )
        .query("all-users", QueryDef::all("users"))
        .query("users-by-role", QueryDef::where_param("users", "role"))
        .query("user-count", QueryDef::count("users"))
        .audit(true);
    if tokens {
        builder = builder.auth(AuthMode::Tokens(vec![crate::TokenSession::new(
            "admin-token",
            "admin-1",
            ["admin"],
        )]));
    }
    let Ok(mut core) = Core::new(builder.config) else {
        return 0;
    };
    let (out, mut sent) = tokio::sync::mpsc::unbounded_channel::<Outbound>();
    let (ctl, _ctl_rx) = tokio::sync::mpsc::unbounded_channel();
    let Some(conn) = core.register(([127, 0, 0, 1], 9).into(), out, ctl) else {
        return 0;
    };
    for frame in frames {
        core.on_text(conn, frame);
    }
    let mut count = 0;
    while sent.try_recv().is_ok() {
        count += 1;
    }
    core.unregister(conn);
    count
}

#[cfg(test)]
mod tests {
    use crate::state::Core;

    #[test]
    fn frame_logs_are_bounded() {
        let mut core = Core::new(crate::config::Config::default()).expect("core");
        let (out, _sent) = tokio::sync::mpsc::unbounded_channel();
        let (ctl, _ctl) = tokio::sync::mpsc::unbounded_channel();
        let conn = core
            .register(([127, 0, 0, 1], 9).into(), out, ctl)
            .expect("registered");
        for _ in 0..100_010 {
            core.on_text(conn, r#"{"type":"pong","timestamp":1}"#);
        }
        let logs = core.logs();
        assert_eq!(logs[0].frames.len(), 100_000);
        assert_eq!(logs[0].frames_not_logged, 10);
        for _ in 0..1_005 {
            let (out, _sent) = tokio::sync::mpsc::unbounded_channel();
            let (ctl, _ctl) = tokio::sync::mpsc::unbounded_channel();
            let id = core
                .register(([127, 0, 0, 1], 9).into(), out, ctl)
                .expect("registered");
            core.unregister(id);
        }
        assert_eq!(core.logs().len(), 1_000);
    }

    #[test]
    fn every_frame_gets_an_answer() {
        let frames = [
            r#"{"id":1,"type":"auth.login","token":"admin-token"}"#,
            r#"{"id":2,"type":"store.insert","bucket":"users","data":{"name":"A"}}"#,
            "{not json",
            r#"{"id":3,"type":"store.subscribe","query":"user-count"}"#,
        ];
        // Four answers plus no push (the subscription comes after the insert).
        assert_eq!(super::handle_frames(&frames, true), 4);
    }
}
