//! Builds the guest workspace in `plugins/` for `wasm32-wasip2` and
//! generates constants with the components' bytes, so the `docket` binary
//! carries its bundled evaluators and host tests load the real artifacts.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;
use std::process::Command;

/// (constant name, crate name, what it is)
const COMPONENTS: &[(&str, &str, &str)] = &[
    (
        "DECALOGO",
        "decalogo",
        "The `decalogo` development-plan evaluator.",
    ),
    (
        "WORDSTATS",
        "wordstats",
        "The minimal `wordstats` evaluator.",
    ),
    (
        "HOSTILE",
        "hostile",
        "A test evaluator that misbehaves on request.",
    ),
    (
        "READER",
        "reader",
        "A test evaluator whose component imports `wasi:filesystem`.",
    ),
    (
        "DIALER",
        "dialer",
        "A test evaluator whose component imports `wasi:sockets`.",
    ),
    (
        "OTHER_WORLD",
        "otherworld",
        "A test component for another WIT world than docket's.",
    ),
];

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let plugins = manifest_dir.join("../../plugins");
    for watched in [
        "wit",
        "sdk",
        "examples",
        "tests",
        "Cargo.toml",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", plugins.join(watched).display());
    }
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("set by cargo"));
    let target_dir = out_dir.join("wasm");
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--locked",
            "--target",
            "wasm32-wasip2",
        ])
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
    for (constant, krate, doc) in COMPONENTS {
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
