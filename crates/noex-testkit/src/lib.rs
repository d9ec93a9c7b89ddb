//! An embedded noex-server for tests.
#![forbid(unsafe_code)]
