//! The conformance suite on async-std.

noex_conformance::conformance_suite!(block_on: async_std::task::block_on, backend: noex_async_std::AsyncStd);
