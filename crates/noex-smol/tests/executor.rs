//! The client on an executor of the caller's own: it runs there, and after `disconnect()` no
//! task of the client is left on it and no socket is open.

use noex_conformance::Eventually;
use noex_smol::{Client, ClientOptions, Smol};
use noex_testkit::TestServer;
use std::sync::Arc;

/// Polls `check` every 10 ms, for at most 5 s.
async fn eventually(what: &str, check: impl FnMut() -> bool) {
    Eventually::new(smol::Timer::after).until(what, check).await
}

#[test]
fn runs_on_a_given_executor_and_leaves_nothing_behind() {
    let server = TestServer::builder().start().expect("server");
    let executor = Arc::new(smol::Executor::new());
    let client = Client::new(Smol::with_executor(executor.clone()));
    smol::block_on(executor.run(async {
        client
            .connect(&server.url(), ClientOptions::new())
            .await
            .expect("connects");
        assert!(
            !executor.is_empty(),
            "the driver runs on the given executor"
        );
        let orders = client
            .rules()
            .subscribe("order.*")
            .await
            .expect("subscribes");
        client.server().stats().await.expect("stats");
        client.disconnect().await;
        drop(orders);
        eventually("no task of the client left", || executor.is_empty()).await;
        eventually("no socket left", || server.open_sockets() == 0).await;
    }));
}
