//! The conformance suite on tokio.

fn block_on<F: std::future::Future<Output = ()>>(future: F) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(future)
}

noex_conformance::conformance_suite!(block_on: block_on, backend: noex_tokio::Tokio);
