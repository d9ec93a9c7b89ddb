//! The conformance suite on smol.

noex_conformance::conformance_suite!(block_on: smol::block_on, backend: noex_smol::Smol::global());
