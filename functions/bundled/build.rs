//! Builds docket's bundled evaluators from the guest workspace in `plugins/`
//! for `wasm32-wasip2` and generates constants with the components' bytes,
//! so the `docket` binary and the Lambda functions carry them.

use docket_guest_build::{Guest, embed_guests};

fn main() {
    embed_guests(&[
        Guest {
            constant: "DECALOGO",
            dir: "examples/decalogo",
            krate: "decalogo",
            doc: "The `decalogo` development-plan evaluator.",
        },
        Guest {
            constant: "WORDSTATS",
            dir: "examples/wordstats",
            krate: "wordstats",
            doc: "The minimal `wordstats` evaluator.",
        },
    ]);
}
