//! Build-script support shared by the crates that embed guest components
//! (`docket-bundled`, `docket-test-guests`): builds the named crates of the
//! guest workspace in `plugins/` for `wasm32-wasip2` and writes
//! `$OUT_DIR/components.rs`, one `pub const NAME: &[u8]` per component, for
//! the crate to `include!`.
//!
//! ```no_run
//! // build.rs
//! use docket_guest_build::{Guest, embed_guests};
//!
//! embed_guests(&[Guest {
//!     constant: "WORDSTATS",
//!     dir: "examples/wordstats",
//!     krate: "wordstats",
//!     doc: "The minimal `wordstats` evaluator.",
//! }]);
//! ```
#![deny(missing_docs)]

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;
use std::process::Command;

/// A guest crate to build and embed.
#[derive(Debug, Clone, Copy)]
pub struct Guest {
    /// The generated constant's name.
    pub constant: &'static str,
    /// The crate's directory in the guest workspace (watched for changes).
    pub dir: &'static str,
    /// The crate's name, which is also its component's file name.
    pub krate: &'static str,
    /// The constant's doc comment.
    pub doc: &'static str,
}

/// Builds `guests` (release, `--locked`) into `$OUT_DIR/wasm` and writes
/// `$OUT_DIR/components.rs` with a constant holding each component's bytes.
/// Cargo reruns the build script when the WIT, the SDK, a guest's crate or
/// the guest workspace's manifest or lock file change. The guest workspace
/// is `plugins/`, two levels above the calling crate (both callers live in
/// `functions/`).
///
/// # Panics
/// When the guest build fails — with a hint when the `wasm32-wasip2` target
/// is not installed — or a component is missing afterwards; a build script
/// fails by panicking.
pub fn embed_guests(guests: &[Guest]) {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let plugins = manifest_dir.join("../../plugins");
    let shared = ["wit", "sdk", "Cargo.toml", "Cargo.lock"];
    for watched in shared.into_iter().chain(guests.iter().map(|g| g.dir)) {
        println!("cargo:rerun-if-changed={}", plugins.join(watched).display());
    }
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("set by cargo"));
    let target_dir = out_dir.join("wasm");
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build.args([
        "build",
        "--release",
        "--locked",
        "--target",
        "wasm32-wasip2",
    ]);
    for guest in guests {
        build.args(["-p", guest.krate]);
    }
    let output = build
        .arg("--manifest-path")
        .arg(plugins.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        // The host build's flags are not the guest's.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .expect("run cargo for the guest plugins");
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let hint =
            if stderr.contains("wasm32-wasip2") && stderr.contains("target may not be installed") {
                "\n\nInstall the guest target with: rustup target add wasm32-wasip2\n"
            } else {
                ""
            };
        panic!("building the guest plugins failed:\n{stderr}{hint}");
    }
    let mut generated = String::new();
    for Guest {
        constant,
        krate,
        doc,
        ..
    } in guests
    {
        let path = target_dir.join(format!("wasm32-wasip2/release/{krate}.wasm"));
        assert!(path.exists(), "{} was not built", path.display());
        writeln!(generated, "/// {doc}").expect("format");
        writeln!(
            generated,
            "pub const {constant}: &[u8] = include_bytes!({:?});",
            path.display().to_string()
        )
        .expect("format");
    }
    fs::write(out_dir.join("components.rs"), generated).expect("write components.rs");
}
