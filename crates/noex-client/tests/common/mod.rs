//! Shared by the client's integration tests: a server that takes one token, and options
//! that reconnect fast.
#![allow(dead_code)]

use noex_client::{Backoff, ClientOptions};
use noex_testkit::{AuthMode, TestServer, TokenSession};
use std::time::Duration;

pub(crate) const TOKEN: &str = "writer-token-Qv93-never-logged";

pub(crate) fn options() -> ClientOptions {
    ClientOptions::new()
        .backoff(Backoff {
            initial: Duration::from_millis(20),
            multiplier: 2.0,
            max: Duration::from_millis(100),
            jitter: Duration::ZERO,
            max_retries: None,
        })
        .seed(7)
}

pub(crate) fn token_server() -> TestServer {
    TestServer::builder()
        .auth(AuthMode::Tokens(vec![TokenSession::new(
            TOKEN,
            "writer-1",
            ["writer"],
        )]))
        .start()
        .expect("server")
}
