//! `--control-stdin`: commands read from standard input, one per line, each reply printed
//! on stdout; the end of input stops the server (so a test that dies takes it along).

use tokio::sync::mpsc;

use super::execute::{handle_line, Ctx};
use crate::stdout::print_line;

/// Read commands from standard input until it closes, answering each on stdout; then
/// ask the main loop to stop. Reads on a plain thread: a blocked read must not keep the
/// runtime from shutting down.
pub(crate) fn spawn(ctx: Ctx) {
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let spawned = std::thread::Builder::new()
        .name("noex-stdin".into())
        .spawn(move || {
            let stdin = std::io::stdin();
            let mut line = String::new();
            loop {
                line.clear();
                match std::io::BufRead::read_line(&mut stdin.lock(), &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if tx.send(line.clone()).is_err() {
                            break;
                        }
                    }
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "could not read standard input");
        return;
    }
    tokio::spawn(async move {
        while let Some(line) = rx.recv().await {
            if line.trim().is_empty() {
                continue;
            }
            let reply = handle_line(&ctx, &line).await;
            print_line(&reply);
        }
        ctx.stop("standard input closed");
    });
}
