//! `--control-stdin`: commands read from standard input, one per line, each reply printed
//! on stdout; the end of input stops the server (so a test that dies takes it along).

use std::io::{BufRead, Read};

use tokio::sync::mpsc;

use super::execute::{handle_line, Ctx};
use super::MAX_COMMAND;
use crate::stdout::print_line;

/// Read commands from standard input until it closes, answering each on stdout; then
/// ask the main loop to stop. Reads on a plain thread: a blocked read must not keep the
/// runtime from shutting down. Lines wait for their turn in a short queue (the reader
/// waits while it is full), and a line longer than [`MAX_COMMAND`] is refused unread.
pub(crate) fn spawn(ctx: Ctx) {
    let (tx, mut rx) = mpsc::channel::<Result<String, String>>(16);
    let spawned = std::thread::Builder::new()
        .name("noex-stdin".into())
        .spawn(move || {
            let mut stdin = std::io::stdin().lock();
            while let Some(line) = read_line(&mut stdin) {
                if tx.blocking_send(line).is_err() {
                    break;
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "could not read standard input");
        return;
    }
    tokio::spawn(async move {
        while let Some(line) = rx.recv().await {
            let reply = match line {
                Ok(line) if line.trim().is_empty() => continue,
                Ok(line) => handle_line(&ctx, &line).await,
                Err(e) => format!("error: {e}"),
            };
            print_line(&reply);
        }
        ctx.stop("standard input closed");
    });
}

/// The next line (`Err` when it is too long or not UTF-8); `None` at the end of input or
/// on a read error.
fn read_line(input: &mut impl BufRead) -> Option<Result<String, String>> {
    let mut line = Vec::new();
    let limit = u64::try_from(MAX_COMMAND).unwrap_or(u64::MAX) + 1;
    match input.by_ref().take(limit).read_until(b'\n', &mut line) {
        Ok(0) | Err(_) => return None,
        Ok(_) => {}
    }
    if line.len() > MAX_COMMAND && line.last() != Some(&b'\n') {
        // The rest of the line is read and dropped.
        return match input.skip_until(b'\n') {
            Ok(_) => Some(Err(format!("command longer than {MAX_COMMAND} bytes"))),
            Err(_) => None,
        };
    }
    Some(String::from_utf8(line).map_err(|_| "command is not UTF-8".to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_lines_and_refuses_overlong_ones() {
        let mut bytes = b"status\n".to_vec();
        bytes.extend(std::iter::repeat_n(b'x', MAX_COMMAND + 10));
        bytes.extend_from_slice(b"\nhelp\n\xff\n");
        let mut input = &bytes[..];
        assert_eq!(read_line(&mut input), Some(Ok("status\n".into())));
        assert_eq!(
            read_line(&mut input),
            Some(Err(format!("command longer than {MAX_COMMAND} bytes")))
        );
        assert_eq!(read_line(&mut input), Some(Ok("help\n".into())));
        assert_eq!(
            read_line(&mut input),
            Some(Err("command is not UTF-8".into()))
        );
        assert_eq!(read_line(&mut input), None);
    }
}
