//! The cases.

pub mod auth;
pub mod faults;
pub mod independent;
pub mod live;
pub mod outcomes;
pub mod resources;
pub mod time;

use noex_testkit::{QueryDef, TestServer, TestServerBuilder};
use serde_json::json;

/// The embedded server the server-independent cases run on: empty, rules on, no auth.
pub fn default_server() -> TestServerBuilder {
    TestServer::builder()
}

/// A server with a `users` bucket and the recorded queries (`all-users`,
/// `users-by-role` with a `role` parameter, `user-count`).
pub fn users_server() -> TestServerBuilder {
    TestServer::builder()
        .bucket_json(
            "users",
            json!({"key": "id", "schema": {
                "id": {"type": "string", "generated": "uuid"},
                "name": {"type": "string", "required": true},
                "age": {"type": "number"},
                "role": {"type": "string", "default": "user"}
            }}),
        )
        .query("all-users", QueryDef::all("users"))
        .query("users-by-role", QueryDef::where_param("users", "role"))
        .query("user-count", QueryDef::count("users"))
}
