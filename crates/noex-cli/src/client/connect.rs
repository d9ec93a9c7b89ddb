//! Connecting with the connection flags and sending one operation, on the public SDK
//! (`noex_tokio`). Passwords come from `NOEX_PASSWORD` or a prompt that does not echo;
//! nothing secret is ever printed, with `-v` or without.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use noex_tokio::proto::ops::{OpKind, Operation};
use noex_tokio::{ClientOptions, Payload};
use serde_json::{Map, Value};

use crate::client::args::ConnArgs;
use crate::client::failure::Failure;

/// How the connection logs in.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Login {
    /// No login.
    Anonymous,
    /// `auth.login` with a token.
    Token(String),
    /// `identity.login` with a user name and password.
    User {
        /// The user name.
        name: String,
        /// The password.
        password: String,
    },
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Login::Anonymous => f.write_str("Anonymous"),
            Login::Token(_) => f.write_str("Token(<redacted>)"),
            Login::User { name, .. } => write!(f, "User({name:?}, <redacted>)"),
        }
    }
}

/// The login the flags and environment ask for; prompts for a password when needed.
pub(crate) fn resolve_login(conn: &ConnArgs) -> Result<Login, Failure> {
    if let Some(name) = &conn.user {
        let password = match std::env::var("NOEX_PASSWORD") {
            Ok(p) if !p.is_empty() => p,
            _ => prompt_password(name)?,
        };
        return Ok(Login::User {
            name: name.clone(),
            password,
        });
    }
    let token = conn
        .token
        .clone()
        .or_else(|| std::env::var("NOEX_TOKEN").ok())
        .filter(|t| !t.is_empty());
    Ok(token.map_or(Login::Anonymous, Login::Token))
}

fn prompt_password(user: &str) -> Result<String, Failure> {
    let missing = || {
        Failure::Usage(format!(
            "no password for --user {user}: set NOEX_PASSWORD or run on a terminal to be asked"
        ))
    };
    if !std::io::stdin().is_terminal() && !std::io::stderr().is_terminal() {
        return Err(missing());
    }
    rpassword::prompt_password(format!("Password for {user}: ")).map_err(|_| missing())
}

/// The URL without what could be a secret (user info, query string).
pub(crate) fn display_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((_, host)) => format!("<redacted>@{host}"),
        None => authority.to_string(),
    };
    let path = match path.split_once('?') {
        Some((p, _)) => format!("{p}?<redacted>"),
        None => path.to_string(),
    };
    if scheme.is_empty() {
        format!("{authority}{path}")
    } else {
        format!("{scheme}://{authority}{path}")
    }
}

/// Whether a field name names a secret (its value is hidden in `-v` output).
fn secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["token", "password", "secret"]
        .iter()
        .any(|s| n.ends_with(s))
        || ["apikey", "api_key", "authorization", "credentials"].contains(&n.as_str())
}

/// `value` with the values of secret-named keys replaced, at any depth.
pub(crate) fn redact(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if secret_name(k) {
                        Value::String("<redacted>".into())
                    } else {
                        redact(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        other => other.clone(),
    }
}

fn verbose(conn: &ConnArgs, line: impl FnOnce() -> String) {
    if conn.verbose {
        eprintln!("noex: {}", line());
    }
}

/// A duration as the user wrote it, more or less (`5s`, `300ms`).
pub(crate) fn show_duration(d: Duration) -> String {
    format!("{d:?}")
}

/// Connects as the flags say, sends `kind` with `fields`, and returns the answer. With
/// `fallback`, an `UNKNOWN_OPERATION` answer is followed by the fallback operation on the
/// same connection.
pub(crate) fn execute(
    conn: &ConnArgs,
    kind: OpKind,
    fields: &Map<String, Value>,
    fallback: Option<OpKind>,
) -> Result<Payload, Failure> {
    let login = resolve_login(conn)?;
    let op = Operation::new(kind).with_fields(fields);
    if let Some(e) = op.encode_error() {
        return Err(Failure::Usage(format!("cannot encode the request: {e}")));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Other(format!("cannot start the runtime: {e}")))?;
    let timeout = conn.timeout;
    let shown = show_duration(timeout);
    let mut options = ClientOptions::new()
        .reconnect(false)
        .heartbeat(false)
        .retry_initial_connect(false)
        .connect_timeout(timeout)
        .request_timeout(timeout);
    verbose(conn, || format!("connecting to {}", display_url(&conn.url)));
    match &login {
        Login::Anonymous => {}
        Login::Token(t) => {
            verbose(conn, || "logging in with a token (auth.login)".into());
            options = options.token(t.clone());
        }
        Login::User { name, password } => {
            verbose(conn, || format!("logging in as {name} (identity.login)"));
            options = options.credentials(name.clone(), password.clone());
        }
    }
    runtime.block_on(async {
        let started = Instant::now();
        // The SDK bounds the connection by `connect_timeout`; this bounds the login too.
        let client = match tokio::time::timeout(
            timeout + Duration::from_millis(500),
            noex_tokio::connect(&conn.url, options),
        )
        .await
        {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => return Err(connect_failure(&e, &conn.url, &shown)),
            Err(_) => return Err(Failure::Timeout(format!("no connection within {shown}"))),
        };
        verbose(conn, || {
            format!("connected in {} ms", started.elapsed().as_millis())
        });
        let mut answer = send(conn, &client, kind, fields, op, &shown).await;
        if let (Some(other), Err(Failure::Server { code, .. })) = (fallback, &answer) {
            if code == "UNKNOWN_OPERATION" {
                verbose(conn, || format!("{} is unknown here, trying {}", kind.name(), other.name()));
                let op = Operation::new(other).with_fields(fields);
                let second = send(conn, &client, other, fields, op, &shown).await;
                // When neither is known, the first answer says more.
                if !matches!(&second, Err(Failure::Server { code, .. }) if code == "UNKNOWN_OPERATION") {
                    answer = second;
                }
            }
        }
        client.disconnect().await;
        answer
    })
}

async fn send(
    conn: &ConnArgs,
    client: &noex_tokio::Client,
    kind: OpKind,
    fields: &Map<String, Value>,
    op: Operation,
    shown: &str,
) -> Result<Payload, Failure> {
    verbose(conn, || {
        if kind.carries_secret() {
            format!(
                "sending {} (fields hidden: it carries a secret)",
                kind.name()
            )
        } else {
            format!(
                "sending {} {}",
                kind.name(),
                redact(&Value::Object(fields.clone()))
            )
        }
    });
    let started = Instant::now();
    let answer = client.request(op).await;
    verbose(conn, || match &answer {
        Ok(p) => format!(
            "answer in {} ms ({} bytes)",
            started.elapsed().as_millis(),
            p.json().len()
        ),
        Err(_) => format!("failed after {} ms", started.elapsed().as_millis()),
    });
    answer.map_err(|e| Failure::from_sdk(&e, shown))
}

/// Connects a long-lived client (`watch`, `bench`): `options` plus the login and the
/// `--timeout` of the flags. The first connection is not retried; a failure is a
/// [`Failure`] as for the one-shot commands.
pub(crate) async fn connect_client(
    conn: &ConnArgs,
    login: &Login,
    mut options: ClientOptions,
) -> Result<noex_tokio::Client, Failure> {
    let timeout = conn.timeout;
    let shown = show_duration(timeout);
    options = options
        .retry_initial_connect(false)
        .connect_timeout(timeout)
        .request_timeout(timeout);
    match login {
        Login::Anonymous => {}
        Login::Token(t) => options = options.token(t.clone()),
        Login::User { name, password } => {
            options = options.credentials(name.clone(), password.clone());
        }
    }
    verbose(conn, || format!("connecting to {}", display_url(&conn.url)));
    match tokio::time::timeout(
        timeout + Duration::from_millis(500),
        noex_tokio::connect(&conn.url, options),
    )
    .await
    {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => Err(connect_failure(&e, &conn.url, &shown)),
        Err(_) => Err(Failure::Timeout(format!("no connection within {shown}"))),
    }
}

fn connect_failure(e: &noex_tokio::Error, url: &str, shown: &str) -> Failure {
    match Failure::from_sdk(e, shown) {
        Failure::Connection(m) => {
            Failure::Connection(format!("cannot connect to {}: {m}", display_url(url)))
        }
        Failure::Timeout(_) => Failure::Timeout(format!(
            "no connection to {} within {shown}",
            display_url(url)
        )),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn urls_lose_their_secrets() {
        assert_eq!(display_url("ws://127.0.0.1:8080"), "ws://127.0.0.1:8080");
        assert_eq!(
            display_url("ws://u:p@h:1/x?token=t"),
            "ws://<redacted>@h:1/x?<redacted>"
        );
        assert_eq!(display_url("wss://h?t=1"), "wss://h?<redacted>");
    }

    #[test]
    fn secret_fields_are_redacted() {
        let v = redact(&json!({"user": "a", "password": "p", "x": [{"sessionToken": "t"}]}));
        assert_eq!(
            v,
            json!({"user": "a", "password": "<redacted>", "x": [{"sessionToken": "<redacted>"}]})
        );
        assert!(!format!("{:?}", Login::Token("tok".into())).contains("tok"));
    }
}
