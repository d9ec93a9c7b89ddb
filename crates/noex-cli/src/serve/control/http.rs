//! `--control-port`: the control commands over HTTP/1.1 on loopback, served by hyper.
//!
//! `POST /command` (or `POST /`) runs its body as one command; `GET /status` and
//! `GET /help` run `status` and `help`. 200 for an `ok` reply, 400 for `error: ...`,
//! 404/405 for other paths and methods; the reply line is the body (`text/plain`). One
//! request per connection (`Connection: close`). The head and the body (by its
//! `Content-Length`: chunked bodies are refused) are each at most [`MAX_COMMAND`] bytes:
//! a head HTTP cannot read gets 400, a longer one 431, a longer body 400. A connection
//! not answered within [`CONNECTION_DEADLINE`] is closed, and at most [`MAX_CONNECTIONS`]
//! are served at once.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Body, Bytes};
use hyper::header::{HeaderValue, CONNECTION, CONTENT_TYPE, TRANSFER_ENCODING};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::command::Command;
use super::execute::{execute, handle_line, Ctx};
use super::MAX_COMMAND;

/// How long a connection may take from being accepted to the end of its response: a
/// client that sends its request slowly, or never, is cut off then.
const CONNECTION_DEADLINE: Duration = Duration::from_secs(30);

/// Connections served at once; further ones wait to be accepted.
const MAX_CONNECTIONS: usize = 64;

/// Any error of a request body.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Serve the control commands on `listener` until the runtime ends.
pub(crate) fn spawn(ctx: Ctx, listener: TcpListener) {
    tokio::spawn(accept_loop(ctx, listener));
}

async fn accept_loop(ctx: Ctx, listener: TcpListener) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        // Never closed: the semaphore lives as long as the loop.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((socket, _)) => {
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    connection(ctx, socket).await;
                    drop(slot);
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "control listener accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// One connection: one request, its response, then the connection is closed.
async fn connection(ctx: Ctx, socket: TcpStream) {
    let service = service_fn(move |req| {
        let ctx = ctx.clone();
        async move { Ok::<_, Infallible>(respond(&ctx, req).await) }
    });
    let served = http1::Builder::new()
        .keep_alive(false)
        .max_header_size(MAX_COMMAND)
        .max_buf_size(MAX_COMMAND)
        .serve_connection(TokioIo::new(socket), service);
    match tokio::time::timeout(CONNECTION_DEADLINE, served).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(error = %e, "control connection failed"),
        Err(_) => tracing::debug!("control connection cut off at its deadline"),
    }
}

/// The response to `req`: its status code, and the reply line as a text body.
async fn respond<B>(ctx: &Ctx, req: Request<B>) -> Response<Full<Bytes>>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let (status, reply) = route(ctx, req).await;
    let mut response = Response::new(Full::new(Bytes::from(format!("{reply}\n"))));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Route `req` and run its command: the status code and the reply line.
async fn route<B>(ctx: &Ctx, req: Request<B>) -> (StatusCode, String)
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let reply = match (req.method(), req.uri().path()) {
        (&Method::POST, "/command" | "/") => match read_command(req).await {
            Ok(line) => handle_line(ctx, &line).await,
            Err(e) => format!("error: {e}"),
        },
        (&Method::GET, "/status") => execute(ctx, Command::Status).await,
        (&Method::GET, "/help") => execute(ctx, Command::Help).await,
        (_, "/command" | "/" | "/status" | "/help") => {
            return (
                StatusCode::METHOD_NOT_ALLOWED,
                "error: method not allowed".into(),
            )
        }
        _ => {
            return (
                StatusCode::NOT_FOUND,
                "error: not found (POST /command, GET /status, GET /help)".into(),
            )
        }
    };
    let status = if reply.starts_with("ok") {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    (status, reply)
}

/// The request's body as one command line, read up to [`MAX_COMMAND`] bytes.
async fn read_command<B>(req: Request<B>) -> Result<String, String>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    if req.headers().contains_key(TRANSFER_ENCODING) {
        return Err("chunked bodies are not supported: send Content-Length".into());
    }
    let too_large = || format!("request too large (the limit is {MAX_COMMAND} bytes)");
    let body = req.into_body();
    if body.size_hint().lower() > MAX_COMMAND as u64 {
        return Err(too_large());
    }
    let bytes = match Limited::new(body, MAX_COMMAND).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => return Err(too_large()),
        Err(e) => return Err(format!("could not read the body: {e}")),
    };
    String::from_utf8(bytes.to_vec()).map_err(|_| "body is not UTF-8".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    use noex_testkit::TestServer;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::mpsc;

    const WAIT: Duration = Duration::from_secs(10);

    /// A server to run commands on, and its control port.
    struct Control {
        ctx: Ctx,
        addr: std::net::SocketAddr,
        _stop: mpsc::UnboundedReceiver<&'static str>,
    }

    impl Control {
        async fn start() -> Control {
            let server = Arc::new(TestServer::builder().start().unwrap());
            let (tx, stop) = mpsc::unbounded_channel();
            let ctx = Ctx::new(server, tx);
            let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
            let addr = listener.local_addr().unwrap();
            spawn(ctx.clone(), listener);
            Control {
                ctx,
                addr,
                _stop: stop,
            }
        }

        /// Send `raw` on a new connection; what the server sends until it closes. (A
        /// server that answers before reading everything may reset the connection: what
        /// arrived until then.)
        async fn exchange(&self, raw: &[u8]) -> String {
            let mut socket = TcpStream::connect(self.addr).await.unwrap();
            let _ = socket.write_all(raw).await;
            let mut response = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                let read = tokio::time::timeout(WAIT, socket.read(&mut chunk))
                    .await
                    .expect("the server closes the connection");
                match read {
                    Ok(0) | Err(_) => break,
                    Ok(n) => response.extend_from_slice(&chunk[..n]),
                }
            }
            String::from_utf8_lossy(&response).into_owned()
        }
    }

    fn status_and_body(response: &str) -> (&str, &str) {
        let status = response.get(9..12).unwrap_or_default();
        let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        (status, body)
    }

    fn request(method: &str, path: &str, body: &str) -> Request<Full<Bytes>> {
        Request::builder()
            .method(method)
            .uri(path)
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap()
    }

    #[tokio::test]
    async fn routes_and_status_codes() {
        let control = Control::start().await;
        let ctx = &control.ctx;
        let call = |method, path, body| route(ctx, request(method, path, body));
        let (status, reply) = call("GET", "/status", "").await;
        assert_eq!(status, StatusCode::OK);
        assert!(reply.starts_with("ok {"), "{reply}");
        assert_eq!(call("GET", "/status?verbose=1", "").await.0, StatusCode::OK);
        assert_eq!(
            call("POST", "/command", "drop-all").await,
            (StatusCode::OK, "ok".into())
        );
        assert_eq!(call("POST", "/", "resume").await.0, StatusCode::OK);
        assert!(call("GET", "/help", "").await.1.starts_with("ok commands:"));
        assert_eq!(
            call("POST", "/command", "bogus").await,
            (
                StatusCode::BAD_REQUEST,
                "error: unknown command \"bogus\" (try \"help\")".into()
            )
        );
        assert_eq!(
            call("GET", "/command", "").await.0,
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            call("POST", "/status", "").await.0,
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(call("GET", "/x", "").await.0, StatusCode::NOT_FOUND);
        let (status, reply) = call("POST", "/command", &"x".repeat(MAX_COMMAND + 1)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(reply.starts_with("error: request too large"), "{reply}");
        let mut not_utf8 = request("POST", "/command", "");
        *not_utf8.body_mut() = Full::new(Bytes::from_static(b"\xff"));
        assert_eq!(
            route(ctx, not_utf8).await,
            (StatusCode::BAD_REQUEST, "error: body is not UTF-8".into())
        );
    }

    #[tokio::test]
    async fn one_request_per_connection_over_http() {
        let control = Control::start().await;
        let response = control
            .exchange(b"POST /command HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nhelp")
            .await;
        let (status, body) = status_and_body(&response);
        assert_eq!(status, "200", "{response}");
        assert!(body.starts_with("ok commands:") && body.ends_with('\n'));
        let head = response.to_ascii_lowercase();
        assert!(head.contains("\r\nconnection: close\r\n"), "{response}");
        assert!(head.contains("\r\ncontent-type: text/plain; charset=utf-8\r\n"));

        let response = control.exchange(b"GET /status HTTP/1.0\r\n\r\n").await;
        assert_eq!(status_and_body(&response).0, "200", "{response}");
    }

    #[tokio::test]
    async fn malformed_chunked_and_oversized_requests_are_refused() {
        let control = Control::start().await;
        let response = control.exchange(b"GARBAGE\r\n\r\n").await;
        assert_eq!(status_and_body(&response).0, "400", "{response}");

        let response = control
            .exchange(b"POST /command HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nhelp\r\n0\r\n\r\n")
            .await;
        assert_eq!(
            status_and_body(&response),
            (
                "400",
                "error: chunked bodies are not supported: send Content-Length\n"
            )
        );

        // Refused from its Content-Length, before the body is read.
        let response = control
            .exchange(b"POST /command HTTP/1.1\r\nContent-Length: 1000000000\r\n\r\nhelp")
            .await;
        let (status, body) = status_and_body(&response);
        assert_eq!(status, "400", "{response}");
        assert!(body.starts_with("error: request too large"), "{body}");

        let mut huge_head = b"GET /status HTTP/1.1\r\nX-Filler: ".to_vec();
        huge_head.extend(std::iter::repeat_n(b'a', MAX_COMMAND + 100));
        huge_head.extend_from_slice(b"\r\n\r\n");
        // Answered 431 and closed (the answer may be lost to the reset of the unread rest).
        let response = control.exchange(&huge_head).await;
        assert!(
            response.is_empty() || status_and_body(&response).0 == "431",
            "{response}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_client_is_cut_off_at_the_deadline() {
        let control = Control::start().await;
        let mut socket = TcpStream::connect(control.addr).await.unwrap();
        socket
            .write_all(b"POST /command HTTP/1.1\r\nContent-Le")
            .await
            .unwrap();
        let started = tokio::time::Instant::now();
        let mut response = Vec::new();
        let read = tokio::time::timeout(CONNECTION_DEADLINE * 2, socket.read_to_end(&mut response))
            .await
            .expect("the server closes the connection at its deadline");
        assert!(read.is_ok_and(|n| n == 0), "{response:?}");
        assert!(started.elapsed() >= CONNECTION_DEADLINE - Duration::from_secs(1));
    }
}
