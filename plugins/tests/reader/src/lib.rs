//! A test evaluator that tries to read a file: its component imports
//! `wasi:filesystem`, which a deployment may refuse at publish time (and
//! which finds no files in docket's sandbox either way).

use docket_sdk::{Document, Evaluation, Evaluator, PluginError};
use serde_json::{Value, json};

/// The evaluator.
pub struct Reader;

impl Evaluator for Reader {
    fn evaluate(_document: Document, _config: Value) -> Result<Evaluation, PluginError> {
        let found = std::fs::read_to_string("/etc/hostname").is_ok();
        Ok(Evaluation {
            data: json!({ "read_a_file": found }),
            ..Evaluation::default()
        })
    }
}

docket_sdk::export_evaluator!(Reader);
