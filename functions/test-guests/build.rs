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
            constant: "OTHER_WORLD",
            dir: "tests/otherworld",
            krate: "otherworld",
            doc: "A test component for another WIT world than docket's.",
        },
    ]);
}
