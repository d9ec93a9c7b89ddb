//! Why `connect` failed, as typed errors with their sources.

mod common;

use common::{options, token_server};
use noex_client::{DisconnectReason, Error, ErrorCode, TransportErrorKind};
use noex_testkit::TestServer;

#[tokio::test]
async fn a_refused_login_carries_the_servers_code() {
    let server = token_server();
    let err = noex_tokio::connect(&server.url(), options().token("wrong-token-9"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&ErrorCode::Unauthorized), "{err:?}");
    assert!(
        matches!(
            &err,
            Error::GaveUp(DisconnectReason::AuthRejected {
                code: ErrorCode::Unauthorized,
                ..
            })
        ),
        "{err:?}"
    );
    assert!(!err.may_have_been_applied());
    assert!(!format!("{err:?}{err}").contains("wrong-token-9"));
}

#[tokio::test]
async fn a_permanent_close_code_on_connect_is_typed() {
    let server = TestServer::builder()
        .max_connections_per_ip(1)
        .start()
        .expect("server");
    let first = noex_tokio::connect(&server.url(), options()).await.unwrap();
    let err = noex_tokio::connect(&server.url(), options())
        .await
        .unwrap_err();
    assert_eq!(err.close_code(), Some(4003), "{err:?}");
    match &err {
        Error::GaveUp(DisconnectReason::Closed {
            code: Some(4003),
            reason,
        }) => assert_eq!(reason, "too_many_connections"),
        other => panic!("{other:?}"),
    }
    first.disconnect().await;
}

#[tokio::test]
async fn transport_errors_keep_their_kind_and_source() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}", closed.local_addr().unwrap());
    drop(closed);
    let err = noex_tokio::connect(&url, options()).await.unwrap_err();
    let Error::Transport(transport) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(transport.kind(), TransportErrorKind::Connect);
    let source = std::error::Error::source(&err).expect("a source");
    assert!(
        source.downcast_ref::<std::io::Error>().is_some(),
        "{source:?}"
    );
    assert!(err.to_string().contains("127.0.0.1"), "{err}");

    let err = noex_tokio::connect("http://user:pw-77@example.com", options())
        .await
        .unwrap_err();
    match &err {
        Error::Transport(t) => assert_eq!(t.kind(), TransportErrorKind::InvalidUrl),
        other => panic!("{other:?}"),
    }
    assert!(!format!("{err:?}{err}").contains("pw-77"), "{err:?}");
}
