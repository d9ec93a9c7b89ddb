//! Shared by the `noex` binary's integration tests.
#![allow(dead_code)]

use std::io::Write;

use noex_testkit::{TestServer, TestServerBuilder};
use serde_json::json;

/// A server builder with a `users` bucket (generated `id`, `name`, `age`).
pub(crate) fn users_builder() -> TestServerBuilder {
    TestServer::builder().bucket_json(
        "users",
        json!({"key": "id", "schema": {
            "id": {"type": "string", "generated": "uuid"},
            "name": {"type": "string"},
            "age": {"type": "number"}
        }}),
    )
}

/// How long a pseudo-terminal test waits for anything before it fails.
pub(crate) const PTY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(20);

/// A program in a pseudo-terminal (portable-pty) whose output is parsed as it arrives
/// (vt100), so a test can wait for the screen to show something. Killed on drop.
pub(crate) struct Pty {
    /// The parsed screen.
    pub(crate) parser: std::sync::Arc<std::sync::Mutex<vt100::Parser>>,
    /// Rows of the terminal.
    pub(crate) rows: u16,
    /// Columns of the terminal.
    pub(crate) cols: u16,
    child: Box<dyn portable_pty::Child + Send + Sync>,
    writer: Box<dyn Write + Send>,
    master: Box<dyn portable_pty::MasterPty + Send>,
    /// Closed (disconnected) when the reader has seen the end of the output.
    output_end: std::sync::mpsc::Receiver<()>,
}

impl Pty {
    /// Starts `program args` in a `rows`×`cols` pseudo-terminal (TERM=xterm-256color,
    /// without NOEX_TOKEN).
    pub(crate) fn spawn(program: &str, args: &[&str], rows: u16, cols: u16) -> Pty {
        use portable_pty::{native_pty_system, CommandBuilder, PtySize};

        let pair = native_pty_system()
            .openpty(PtySize {
                rows,
                cols,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("pty");
        let mut cmd = CommandBuilder::new(program);
        cmd.args(args);
        cmd.env("TERM", "xterm-256color");
        cmd.env_remove("NOEX_TOKEN");
        let child = pair.slave.spawn_command(cmd).expect("the program starts");
        drop(pair.slave);
        let mut reader = pair.master.try_clone_reader().expect("reader");
        let writer = pair.master.take_writer().expect("writer");
        let parser = std::sync::Arc::new(std::sync::Mutex::new(vt100::Parser::new(
            std::num::NonZeroU16::new(rows).expect("rows"),
            std::num::NonZeroU16::new(cols).expect("cols"),
            0,
        )));
        let feed = parser.clone();
        let (end_tx, output_end) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            let _end = end_tx;
            let mut buf = [0u8; 4096];
            while let Ok(n) = std::io::Read::read(&mut reader, &mut buf) {
                if n == 0 {
                    return;
                }
                feed.lock().unwrap().process(&buf[..n]);
            }
        });
        Pty {
            parser,
            rows,
            cols,
            child,
            writer,
            master: pair.master,
            output_end,
        }
    }

    /// The screen's text now.
    pub(crate) fn text(&self) -> String {
        self.parser.lock().unwrap().screen().contents()
    }

    /// Waits until the screen's text satisfies `what` and returns it; fails the test at
    /// the deadline with the screen as it is.
    pub(crate) fn wait_for(&self, what: impl Fn(&str) -> bool, label: &str) -> String {
        let end = std::time::Instant::now() + PTY_DEADLINE;
        loop {
            let text = self.text();
            if what(&text) {
                return text;
            }
            assert!(
                std::time::Instant::now() < end,
                "screen never showed {label}:\n{text}"
            );
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
    }

    /// Types `bytes` (keys) into the terminal.
    pub(crate) fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("write to the pty");
        self.writer.flush().expect("flush the pty");
    }

    /// Whether the program is still running.
    pub(crate) fn running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Waits for the program to exit and for the last of its output to be parsed; fails
    /// the test (killing the program) at the deadline.
    pub(crate) fn wait_exit(&mut self, label: &str) -> portable_pty::ExitStatus {
        let end = std::time::Instant::now() + PTY_DEADLINE;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if std::time::Instant::now() > end {
                let _ = self.child.kill();
                panic!("the program did not exit {label}:\n{}", self.text());
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let left = end.saturating_duration_since(std::time::Instant::now());
        match self.output_end.recv_timeout(left) {
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {}
            other => panic!("the output did not end after the exit: {other:?}"),
        }
        status
    }

    /// Whether the terminal is in raw mode (canonical input and signals off), from the
    /// pty's termios. The flags are read from their `Debug` text so the tests need not
    /// depend on portable-pty's version of nix. `None` where the pty cannot tell.
    pub(crate) fn raw_mode(&self) -> Option<bool> {
        let termios = self.master.get_termios()?;
        let flags = format!("{:?}", termios.local_flags);
        Some(!flags.contains("ICANON") && !flags.contains("ISIG"))
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
