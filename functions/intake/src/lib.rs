//! Reading documents for a batch: from disk (`docket run`, `docket
//! submit`) or from bytes (the `ingest` function's S3 objects). Text and
//! Markdown, PDFs (text per page), JSON documents, JSON manifests in the
//! upload body's shape and JSONL. A file that cannot be used becomes a
//! rejected document with the reason: it fails alone.
#![deny(missing_docs)]

pub mod formats;
pub mod intake;
pub mod pdf;

pub use intake::{
    FileReader, Intake, IntakeError, SUPPORTED, extract, read_bytes, read_file, read_inputs,
};
