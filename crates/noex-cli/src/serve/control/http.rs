//! `--control-port`: the control commands over HTTP on loopback: `POST /command` (body:
//! one command line), `GET /status` and `GET /help`, one request per connection.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::command::Command;
use super::execute::{execute, handle_line, Ctx};

/// Largest request (head + body) the control listener reads.
const MAX_REQUEST: usize = 64 * 1024;

/// Serve the HTTP control API on `listener`:
/// `POST /command` (body: one command line) and `GET /status`.
pub(crate) fn spawn(ctx: Ctx, listener: TcpListener) {
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((sock, _)) => {
                    let ctx = ctx.clone();
                    tokio::spawn(async move {
                        let r = tokio::time::timeout(
                            Duration::from_secs(30),
                            http_connection(&ctx, sock),
                        )
                        .await;
                        if let Ok(Err(e)) = r {
                            tracing::debug!(error = %e, "control connection failed");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "control listener accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
}

/// A parsed HTTP request: method, path, body.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Request {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) body: String,
}

/// Parse a request head; `Ok(None)` when more bytes are needed. Returns the request
/// line, the body length and where the body starts.
fn parse_head(buf: &[u8]) -> Result<Option<(String, String, usize, usize)>, String> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| "request head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(path), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err("malformed request line".into());
    };
    if !version.starts_with("HTTP/1.") {
        return Err("only HTTP/1.x is supported".into());
    }
    let mut len = 0usize;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            if k.trim().eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().map_err(|_| "invalid Content-Length")?;
            } else if k.trim().eq_ignore_ascii_case("transfer-encoding") {
                return Err("chunked bodies are not supported: send Content-Length".into());
            }
        }
    }
    Ok(Some((method.to_string(), path.to_string(), len, end + 4)))
}

/// Read one request from `sock`.
pub(crate) async fn read_request<S: tokio::io::AsyncRead + Unpin>(
    sock: &mut S,
) -> Result<Request, String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some((method, path, len, start)) = parse_head(&buf)? {
            if start + len > MAX_REQUEST {
                return Err("request too large".into());
            }
            while buf.len() < start + len {
                let n = sock.read(&mut chunk).await.map_err(|e| e.to_string())?;
                if n == 0 {
                    return Err("connection closed before the body ended".into());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = String::from_utf8(buf[start..start + len].to_vec())
                .map_err(|_| "body is not UTF-8")?;
            return Ok(Request { method, path, body });
        }
        if buf.len() > MAX_REQUEST {
            return Err("request head too large".into());
        }
        let n = sock.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed before the request ended".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Route a request: the status code and the reply line.
pub(crate) async fn route(ctx: &Ctx, req: &Request) -> (u16, String) {
    let path = req.path.split('?').next().unwrap_or_default();
    let reply = match (req.method.as_str(), path) {
        ("POST", "/command" | "/") => handle_line(ctx, &req.body).await,
        ("GET", "/status") => execute(ctx, Command::Status).await,
        ("GET", "/help") => execute(ctx, Command::Help).await,
        (_, "/command" | "/" | "/status" | "/help") => {
            return (405, "error: method not allowed".into())
        }
        _ => {
            return (
                404,
                "error: not found (POST /command, GET /status, GET /help)".into(),
            )
        }
    };
    let code = if reply.starts_with("ok") { 200 } else { 400 };
    (code, reply)
}

async fn http_connection(ctx: &Ctx, mut sock: TcpStream) -> std::io::Result<()> {
    let (code, reply) = match read_request(&mut sock).await {
        Ok(req) => route(ctx, &req).await,
        Err(e) => (400, format!("error: {e}")),
    };
    let reason = match code {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Bad Request",
    };
    let body = format!("{reply}\n");
    let response = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    sock.write_all(response.as_bytes()).await?;
    sock.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Arc;

    use noex_testkit::TestServer;
    use tokio::sync::mpsc;

    #[tokio::test]
    async fn reads_http_requests() {
        let raw = b"POST /command HTTP/1.1\r\nHost: x\r\ncontent-length: 8\r\n\r\ndrop-all";
        let req = read_request(&mut &raw[..]).await.unwrap();
        assert_eq!(
            req,
            Request {
                method: "POST".into(),
                path: "/command".into(),
                body: "drop-all".into()
            }
        );
        let raw = b"GET /status HTTP/1.0\r\n\r\n";
        let req = read_request(&mut &raw[..]).await.unwrap();
        assert_eq!(req.path, "/status");
        assert_eq!(req.body, "");
        assert!(read_request(&mut &b"GARBAGE\r\n\r\n"[..]).await.is_err());
        assert!(read_request(&mut &b"GET / HTTP/1.1\r\n"[..]).await.is_err());
        let raw = b"POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\nshort";
        assert!(read_request(&mut &raw[..]).await.is_err());
        let raw = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(read_request(&mut &raw[..]).await.is_err());
    }

    #[tokio::test]
    async fn routes() {
        let server = Arc::new(TestServer::builder().start().unwrap());
        let (tx, _rx) = mpsc::unbounded_channel();
        let ctx = Ctx::new(server, tx);
        let req = |method: &str, path: &str, body: &str| Request {
            method: method.into(),
            path: path.into(),
            body: body.into(),
        };
        assert_eq!(route(&ctx, &req("GET", "/status", "")).await.0, 200);
        assert_eq!(route(&ctx, &req("POST", "/command", "bogus")).await.0, 400);
        assert_eq!(route(&ctx, &req("GET", "/command", "")).await.0, 405);
        assert_eq!(route(&ctx, &req("GET", "/x", "")).await.0, 404);
    }
}
