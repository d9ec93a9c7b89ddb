//! Sans-IO protocol core for noex-server.
#![forbid(unsafe_code)]
