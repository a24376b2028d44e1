//! What each function binary links: `upload`, `ingest` and `webhook` (this
//! package) no plugin engine and no SQLite; `processor` and `finalizer`
//! (`docket-lambda-evaluators`) the engine and still no SQLite. Read from
//! the dependency graph cargo resolves for the build (normal edges: what
//! is linked, not build scripts' tools).

// Test code: a failed unwrap fails the test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

/// The crates `package` links, by name.
fn linked(package: &str) -> BTreeSet<String> {
    let output = std::process::Command::new(env!("CARGO"))
        .args(["tree", "--offline", "--locked", "-e", "normal"])
        .args(["--prefix", "none", "--format", "{lib}", "-p", package])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| line.trim_end_matches(" (*)").to_owned())
        .filter(|name| !name.is_empty())
        .collect()
}

#[test]
fn upload_ingest_and_webhook_link_no_plugin_engine_and_no_sqlite() {
    let functions = linked("docket-lambda");
    assert!(functions.contains("docket_api"), "{functions:?}");
    assert!(functions.contains("docket_registry"), "{functions:?}");
    for absent in [
        "wasmtime",
        "cranelift_codegen",
        "docket_plugin_host",
        "libsqlite3_sys",
    ] {
        assert!(!functions.contains(absent), "docket-lambda links {absent}");
    }
    let evaluating = linked("docket-lambda-evaluators");
    assert!(evaluating.contains("wasmtime"), "{evaluating:?}");
    assert!(evaluating.contains("docket_plugin_host"), "{evaluating:?}");
    assert!(
        !evaluating.contains("libsqlite3_sys"),
        "the processor links SQLite"
    );
}
