//! Builds the test plugins from the guest workspace in `plugins/` for
//! `wasm32-wasip2` and generates constants with the components' bytes, so
//! host, CLI and end-to-end tests load the real artifacts.

use docket_guest_build::{Guest, embed_guests};

fn main() {
    embed_guests(&[
        Guest {
            constant: "HOSTILE",
            dir: "tests/hostile",
            krate: "hostile",
            doc: "A test evaluator that misbehaves on request.",
        },
        Guest {
            constant: "READER",
            dir: "tests/reader",
            krate: "reader",
            doc: "A test evaluator whose component imports `wasi:filesystem`.",
        },
        Guest {
            constant: "DIALER",
            dir: "tests/dialer",
            krate: "dialer",
            doc: "A test evaluator whose component imports `wasi:sockets`.",
        },
        Guest {
            constant: "TALLY",
            dir: "tests/tally",
            krate: "tally",
            doc: "A test evaluator whose summary is a fold (contract 0.2.0).",
        },
        Guest {
            constant: "LEGACY",
            dir: "tests/legacy",
            krate: "legacy",
            doc: "A test evaluator built against contract 0.1.0.",
        },
        Guest {
            constant: "OTHER_WORLD",
            dir: "tests/otherworld",
            krate: "otherworld",
            doc: "A test component for another WIT world than docket's.",
        },
    ]);
}
