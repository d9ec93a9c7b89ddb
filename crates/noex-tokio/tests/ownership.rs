//! What the tokio adapter leaves behind, and the clock it runs on: after `disconnect()` no
//! task of the client is alive and no socket is open; the whole client follows tokio's
//! clock, so it runs under paused (virtual) time.

use noex_conformance::Eventually;
use noex_testkit::{HandshakeFault, TestServer};
use noex_tokio::{Backoff, Client, ClientOptions, Error};
use std::time::Duration;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Polls `check` every 10 ms, for at most 5 s.
async fn eventually(what: &str, check: impl FnMut() -> bool) {
    Eventually::new(tokio::time::sleep).until(what, check).await
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

#[test]
fn disconnect_leaves_no_task_and_no_socket() {
    let server = TestServer::builder().start().expect("server");
    runtime().block_on(async {
        tokio::time::timeout(Duration::from_secs(30), async {
            let baseline = alive_tasks();
            let client = noex_tokio::connect(&server.url(), ClientOptions::new())
                .await
                .expect("connects");
            let orders = client
                .rules()
                .subscribe("order.*")
                .await
                .expect("subscribes");
            client.server().stats().await.expect("stats");
            assert!(alive_tasks() > baseline, "the driver runs as a task");
            client.disconnect().await;
            eventually("no task of the client left", || alive_tasks() == baseline).await;
            eventually("no socket left", || server.open_sockets() == 0).await;
            drop(orders);

            // The same while attempts are stalled in the handshake.
            server.set_handshake_fault(HandshakeFault::Stall);
            let client = Client::new(noex_tokio::Tokio);
            let options = ClientOptions::new()
                .connect_timeout(Duration::from_millis(100))
                .retry_initial_connect(true)
                .backoff(Backoff {
                    initial: Duration::from_millis(20),
                    jitter: Duration::ZERO,
                    ..Default::default()
                });
            let url = server.url();
            let connecting = client.connect(&url, options);
            let stop = async {
                eventually("attempts", || server.accepted_sockets() >= 4).await;
                client.disconnect().await;
            };
            let (result, ()) = futures::join!(connecting, stop);
            assert!(matches!(result, Err(Error::Closed { .. })), "{result:?}");
            eventually("no task of the client left", || alive_tasks() == baseline).await;
            eventually("no socket left", || server.open_sockets() == 0).await;
        })
        .await
        .expect("test finished in time");
    });
}

#[test]
fn the_whole_client_runs_on_virtual_time() {
    let server = TestServer::builder().start().expect("server");
    server.set_handshake_fault(HandshakeFault::Stall);
    let real = std::time::Instant::now();
    let (result, virtual_elapsed) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("tokio runtime")
        .block_on(async {
            let started = tokio::time::Instant::now();
            // A 60 s connect timeout against a peer that never answers the handshake.
            let options = ClientOptions::new().connect_timeout(Duration::from_secs(60));
            let result = noex_tokio::connect(&server.url(), options).await;
            (result, started.elapsed())
        });
    assert!(matches!(result, Err(Error::Timeout { .. })), "{result:?}");
    assert!(
        virtual_elapsed >= Duration::from_secs(60),
        "{virtual_elapsed:?}"
    );
    // Not a timing measurement: a client on the OS clock would take a whole minute here.
    assert!(
        real.elapsed() < Duration::from_secs(30),
        "{:?}",
        real.elapsed()
    );
}
