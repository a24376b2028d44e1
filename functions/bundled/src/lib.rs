//! The evaluator components shipped with docket, built from `plugins/` for
//! `wasm32-wasip2` by this crate's build script and embedded as bytes: the
//! `docket` binary finds `decalogo` and `wordstats` by name with no files
//! around it, and host tests run the real artifacts. The test plugins are in
//! the dev-only `docket-test-guests`, so no production binary carries them.
#![deny(missing_docs)]

include!(concat!(env!("OUT_DIR"), "/components.rs"));

/// A component shipped with docket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BundledComponent {
    /// The evaluator's name.
    pub name: &'static str,
    /// Its version.
    pub version: &'static str,
    /// The component's bytes.
    pub bytes: &'static [u8],
}

/// The evaluators `docket run` and `docket serve` know by name.
pub const EVALUATORS: &[BundledComponent] = &[
    BundledComponent {
        name: "decalogo",
        version: "0.1.0",
        bytes: DECALOGO,
    },
    BundledComponent {
        name: "wordstats",
        version: "0.1.0",
        bytes: WORDSTATS,
    },
];
