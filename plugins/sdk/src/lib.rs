//! The Rust guest SDK for docket evaluators.
//!
//! An evaluator is a type implementing [`Evaluator`] — in practice one plain
//! function — exported with [`export_evaluator!`]. The SDK hides the
//! bindings generated from the `docket:evaluator@0.2.0` WIT world and hands
//! you idiomatic types: JSON values for config, metadata and data, enums for
//! severities and errors.
//!
//! ```ignore
//! use docket_sdk::{Document, Evaluation, Evaluator, PluginError, Score};
//!
//! struct Length;
//!
//! impl Evaluator for Length {
//!     fn evaluate(document: Document, _config: serde_json::Value) -> Result<Evaluation, PluginError> {
//!         let words = document.content.split_whitespace().count() as f64;
//!         Ok(Evaluation {
//!             scores: vec![Score::new("length", words.min(1000.0), 1000.0)],
//!             ..Evaluation::default()
//!         })
//!     }
//! }
//!
//! docket_sdk::export_evaluator!(Length);
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2`: the result is
//! a component docket can run. The same crate compiles natively, so
//! evaluators are unit-tested with plain `cargo test`.
#![deny(missing_docs)]

// The generated bindings name this crate by its public path, from inside too.
#[cfg(target_arch = "wasm32")]
extern crate self as docket_sdk;

use serde_json::Value;

pub mod text;

/// Where a chunk sits in its document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChunkInfo {
    /// 0-based position among the document's chunks.
    pub index: u32,
    /// How many chunks the document has (1 when unsplit).
    pub count: u32,
    /// First page (1-based) of a paged document's chunk.
    pub first_page: Option<u32>,
    /// Last page (1-based, inclusive).
    pub last_page: Option<u32>,
    /// Byte offset of the chunk's text in the whole document.
    pub offset: u64,
}

/// The document (or chunk) to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The document's id.
    pub id: String,
    /// Its title.
    pub title: String,
    /// The chunk's text. Pages are separated by form feeds.
    pub content: String,
    /// Client metadata.
    pub metadata: Value,
    /// Where the chunk sits.
    pub chunk: ChunkInfo,
}

impl Document {
    /// A whole (unsplit) document with this text, for tests.
    pub fn new(id: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            title: String::new(),
            content: content.into(),
            metadata: Value::Null,
            chunk: ChunkInfo {
                count: 1,
                ..ChunkInfo::default()
            },
        }
    }
}

/// A named score: `value` out of `max`. The batch summary reports
/// `avg_<name>_score`.
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    /// The name.
    pub name: String,
    /// The value reached.
    pub value: f64,
    /// The most that could be reached.
    pub max: f64,
}

impl Score {
    /// A score `value` of `max` named `name`.
    pub fn new(name: impl Into<String>, value: f64, max: f64) -> Self {
        Self {
            name: name.into(),
            value,
            max,
        }
    }
}

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Evidence that something is present.
    Info,
    /// Something is weak or incomplete.
    Warning,
    /// A requirement is not met.
    Violation,
}

/// A byte range of the chunk's `content` and the text shown as evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// The text shown (the range, possibly with context).
    pub snippet: String,
}

/// One observation.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// Stable machine-readable code.
    pub code: String,
    /// How serious.
    pub severity: Severity,
    /// What a person reads.
    pub message: String,
    /// Where, when it points somewhere.
    pub evidence: Option<Span>,
}

/// What an evaluator says about a document.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Evaluation {
    /// Named scores.
    pub scores: Vec<Score>,
    /// Findings.
    pub findings: Vec<Finding>,
    /// Labels.
    pub labels: Vec<String>,
    /// Free-form JSON kept with the result.
    pub data: Value,
}

/// Errors an evaluator reports itself (traps and limits are the host's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginError {
    /// The document cannot be evaluated (a DATA failure; not retried).
    InvalidDocument(String),
    /// The configuration is invalid (a CONFIGURATION failure).
    InvalidConfig(String),
    /// Anything else (a PERMANENT failure).
    Internal(String),
}

/// An evaluator. Only [`Evaluator::evaluate`] is required.
pub trait Evaluator {
    /// Scores one document or chunk. `config` is the job's configuration
    /// (a JSON object; `{}` when none was given).
    ///
    /// # Errors
    /// A [`PluginError`] saying why the document or config is unusable.
    fn evaluate(document: Document, config: Value) -> Result<Evaluation, PluginError>;

    /// Merges a document's chunk evaluations, in order, with spans already
    /// relative to the whole document. `None` (the default) lets the host
    /// merge: size-weighted mean of scores, findings concatenated.
    fn merge_chunks(chunks: Vec<Evaluation>) -> Option<Evaluation> {
        let _ = chunks;
        None
    }

    /// Summarizes a group of the job's completed documents (in submission
    /// order, each with its scores, labels and data; findings left out)
    /// into a partial summary for the batch summary. A job comes in one
    /// group or several, each within one call's input limit; the groups'
    /// partials are combined by [`Evaluator::combine_summaries`]. `None`
    /// (the default) means the evaluator has no summary.
    fn summarize(evaluations: Vec<Evaluation>) -> Option<Value> {
        let _ = evaluations;
        None
    }

    /// Combines the partial summaries of consecutive groups, in order,
    /// into one of the same kind, as if [`Evaluator::summarize`] had been
    /// given their documents at once (the host folds from the left).
    /// Implement it with `summarize`: the default (`None`) leaves a job of
    /// more than one group without a summary, and its results say why.
    fn combine_summaries(partials: Vec<Value>) -> Option<Value> {
        let _ = partials;
        None
    }
}

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

/// Bindings generated from the WIT world. Not part of the API.
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
#[allow(missing_docs, unsafe_code)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "evaluator",
        pub_export_macro: true,
        export_macro_name: "__export_bindings",
        default_bindings_module: "docket_sdk::bindings",
        runtime_path: "docket_sdk::__wit_bindgen::rt",
    });
}

/// Conversions between the bindings and the SDK types, used by
/// [`export_evaluator!`]. Not part of the API.
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod __private {
    use super::*;
    use crate::bindings as wit;

    fn severity_from(s: wit::Severity) -> Severity {
        match s {
            wit::Severity::Info => Severity::Info,
            wit::Severity::Warning => Severity::Warning,
            wit::Severity::Violation => Severity::Violation,
        }
    }

    fn severity_to(s: Severity) -> wit::Severity {
        match s {
            Severity::Info => wit::Severity::Info,
            Severity::Warning => wit::Severity::Warning,
            Severity::Violation => wit::Severity::Violation,
        }
    }

    fn evaluation_from(e: wit::Evaluation) -> Evaluation {
        Evaluation {
            scores: e
                .scores
                .into_iter()
                .map(|s| Score::new(s.name, s.value, s.max))
                .collect(),
            findings: e
                .findings
                .into_iter()
                .map(|f| Finding {
                    code: f.code,
                    severity: severity_from(f.severity),
                    message: f.message,
                    evidence: f.evidence.map(|s| Span {
                        start: s.start,
                        end: s.end,
                        snippet: s.snippet,
                    }),
                })
                .collect(),
            labels: e.labels,
            data: serde_json::from_str(&e.data).unwrap_or(Value::Null),
        }
    }

    fn evaluation_to(e: Evaluation) -> wit::Evaluation {
        wit::Evaluation {
            scores: e
                .scores
                .into_iter()
                .map(|s| wit::Score {
                    name: s.name,
                    value: s.value,
                    max: s.max,
                })
                .collect(),
            findings: e
                .findings
                .into_iter()
                .map(|f| wit::Finding {
                    code: f.code,
                    severity: severity_to(f.severity),
                    message: f.message,
                    evidence: f.evidence.map(|s| wit::Span {
                        start: s.start,
                        end: s.end,
                        snippet: s.snippet,
                    }),
                })
                .collect(),
            labels: e.labels,
            data: if e.data.is_null() {
                String::from("null")
            } else {
                e.data.to_string()
            },
        }
    }

    pub fn evaluate<E: Evaluator>(
        document: wit::Document,
        config: String,
    ) -> Result<wit::Evaluation, wit::PluginError> {
        let config: Value = if config.trim().is_empty() {
            Value::Object(Default::default())
        } else {
            serde_json::from_str(&config)
                .map_err(|e| wit::PluginError::InvalidConfig(format!("config is not JSON: {e}")))?
        };
        let document = Document {
            id: document.id,
            title: document.title,
            content: document.content,
            metadata: serde_json::from_str(&document.metadata).unwrap_or(Value::Null),
            chunk: ChunkInfo {
                index: document.chunk.index,
                count: document.chunk.count,
                first_page: document.chunk.first_page,
                last_page: document.chunk.last_page,
                offset: document.chunk.offset,
            },
        };
        E::evaluate(document, config)
            .map(evaluation_to)
            .map_err(|e| match e {
                PluginError::InvalidDocument(m) => wit::PluginError::InvalidDocument(m),
                PluginError::InvalidConfig(m) => wit::PluginError::InvalidConfig(m),
                PluginError::Internal(m) => wit::PluginError::Internal(m),
            })
    }

    pub fn merge_chunks<E: Evaluator>(chunks: Vec<wit::Evaluation>) -> Option<wit::Evaluation> {
        E::merge_chunks(chunks.into_iter().map(evaluation_from).collect()).map(evaluation_to)
    }

    pub fn summarize<E: Evaluator>(evaluations: Vec<wit::Evaluation>) -> Option<String> {
        E::summarize(evaluations.into_iter().map(evaluation_from).collect()).map(|v| v.to_string())
    }

    pub fn combine_summaries<E: Evaluator>(partials: Vec<String>) -> Option<String> {
        let partials = partials
            .iter()
            .map(|p| serde_json::from_str(p).unwrap_or(Value::Null))
            .collect();
        E::combine_summaries(partials).map(|v| v.to_string())
    }
}

/// Exports `$ty` (an [`Evaluator`]) as the component's `evaluate`,
/// `merge-chunks`, `summarize` and `combine-summaries`. Expands to nothing when not compiling for
/// WebAssembly, so the crate still builds and tests natively.
#[macro_export]
macro_rules! export_evaluator {
    ($ty:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct __DocketGuest;
            impl $crate::bindings::Guest for __DocketGuest {
                fn evaluate(
                    document: $crate::bindings::Document,
                    config: ::std::string::String,
                ) -> ::std::result::Result<
                    $crate::bindings::Evaluation,
                    $crate::bindings::PluginError,
                > {
                    $crate::__private::evaluate::<$ty>(document, config)
                }
                fn merge_chunks(
                    chunks: ::std::vec::Vec<$crate::bindings::Evaluation>,
                ) -> ::std::option::Option<$crate::bindings::Evaluation> {
                    $crate::__private::merge_chunks::<$ty>(chunks)
                }
                fn summarize(
                    evaluations: ::std::vec::Vec<$crate::bindings::Evaluation>,
                ) -> ::std::option::Option<::std::string::String> {
                    $crate::__private::summarize::<$ty>(evaluations)
                }
                fn combine_summaries(
                    partials: ::std::vec::Vec<::std::string::String>,
                ) -> ::std::option::Option<::std::string::String> {
                    $crate::__private::combine_summaries::<$ty>(partials)
                }
            }
    $crate::bindings::__export_bindings!(__DocketGuest with_types_in $crate::bindings);
        };
    };
}
