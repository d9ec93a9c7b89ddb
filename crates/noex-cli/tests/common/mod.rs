//! Shared by the `noex` binary's integration tests.
#![allow(dead_code)]

use noex_testkit::{TestServer, TestServerBuilder};
use serde_json::json;

/// A server builder with a `users` bucket (generated `id`, `name`, `age`).
pub(crate) fn users_builder() -> TestServerBuilder {
    TestServer::builder().bucket_json(
        "users",
        json!({"key": "id", "schema": {
            "id": {"type": "string", "generated": "uuid"},
            "name": {"type": "string"},
            "age": {"type": "number"}
        }}),
    )
}
