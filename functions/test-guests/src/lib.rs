//! The test plugins from `plugins/tests`, built for `wasm32-wasip2` by this
//! crate's build script and embedded as bytes, so tests and benchmarks run
//! the real artifacts: a plugin that misbehaves on request, two that import
//! what docket denies, and a component for another world. A dev-dependency
//! only (or of test-support libraries): production binaries embed just the
//! bundled evaluators of `docket-bundled`.
#![deny(missing_docs)]

include!(concat!(env!("OUT_DIR"), "/components.rs"));
