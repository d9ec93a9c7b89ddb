//! The conformance suite on async-std.

// The adapter is deprecated in favour of noex-smol; it is still tested.
#![allow(deprecated)]

noex_conformance::conformance_suite!(block_on: async_std::task::block_on, backend: noex_async_std::AsyncStd);
