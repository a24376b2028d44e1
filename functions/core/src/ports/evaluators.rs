//! [`Evaluators`]: resolve and run the plugins that score documents.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::evaluation::Evaluation;
use crate::failure::{Failure, FailureCategory};
use crate::model::{ChunkInfo, EvaluatorRef};

/// What an evaluator sees of a document (or chunk).
#[derive(Debug, Clone, Copy)]
pub struct DocumentView<'a> {
    /// The document's id.
    pub id: &'a str,
    /// Its title.
    pub title: &'a str,
    /// The chunk's text.
    pub content: &'a str,
    /// The document's metadata.
    pub metadata: &'a serde_json::Value,
    /// Where the chunk sits.
    pub chunk: &'a ChunkInfo,
}

/// One evaluation to run: owned, so a batch can move to a thread that may
/// block.
#[derive(Debug, Clone, PartialEq)]
pub struct EvaluationRequest {
    /// The pinned evaluator.
    pub evaluator: EvaluatorRef,
    /// The document's id.
    pub id: String,
    /// Its title.
    pub title: String,
    /// The chunk's text.
    pub content: String,
    /// The document's metadata.
    pub metadata: serde_json::Value,
    /// Where the chunk sits.
    pub chunk: ChunkInfo,
    /// The job's evaluator configuration.
    pub config: Arc<serde_json::Value>,
}

impl EvaluationRequest {
    /// The document as the evaluator sees it.
    pub fn view(&self) -> DocumentView<'_> {
        DocumentView {
            id: &self.id,
            title: &self.title,
            content: &self.content,
            metadata: &self.metadata,
            chunk: &self.chunk,
        }
    }
}

/// What one evaluation cost, against the plugin's limits.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Usage {
    /// Fuel consumed (roughly, WebAssembly instructions).
    pub fuel: u64,
    /// Largest linear memory reached, in bytes.
    pub peak_memory: u64,
    /// Input bytes handed to the plugin.
    pub input_bytes: u64,
    /// Output bytes returned.
    pub output_bytes: u64,
    /// Wall-clock time of the call, seconds.
    pub seconds: f64,
}

/// A successful evaluation and its cost.
#[derive(Debug, Clone, PartialEq)]
pub struct EvaluationReport {
    /// The result.
    pub evaluation: Evaluation,
    /// Its cost.
    pub usage: Usage,
}

/// Resolves and runs evaluators. Evaluation is CPU work under the plugin's
/// limits; implementations run a batch where blocking is allowed (a
/// blocking thread), so callers simply await it.
#[async_trait]
pub trait Evaluators: Send + Sync {
    /// Resolves `name`, `name@version` or `name@range` to one exact,
    /// pinned evaluator version and digest.
    ///
    /// # Errors
    /// A `Configuration` [`Failure`] naming the unknown evaluator or version;
    /// `Transient` when the registry could not be read.
    async fn resolve(&self, spec: &str) -> Result<EvaluatorRef, Failure>;

    /// Every evaluator version this runtime can run now, by name then
    /// version (for health checks; empty when it loads on demand).
    fn loaded(&self) -> Vec<EvaluatorRef> {
        Vec::new()
    }

    /// Checks a job's evaluator configuration against the schema the
    /// evaluator was published with, before any document runs (none: any
    /// configuration).
    ///
    /// # Errors
    /// A `Configuration` [`Failure`] saying where and why it does not
    /// match; `Transient` when the registry could not be read.
    async fn check_config(
        &self,
        evaluator: &EvaluatorRef,
        config: &serde_json::Value,
    ) -> Result<(), Failure> {
        let _ = (evaluator, config);
        Ok(())
    }

    /// Evaluates a batch of documents or chunks, one result per request in
    /// order. Each request fails alone with a categorized [`Failure`]: the
    /// plugin's own errors (`Data` for an invalid document, `Configuration`
    /// for an invalid config) and host failures (trap, fuel, memory, time,
    /// oversized input or output: `Permanent`, naming the limit and its
    /// value). With a `deadline` (a Lambda invocation's, less what
    /// recording needs) a call's wall-clock limit becomes the shorter of
    /// the plugin's and the time left, and a call the deadline stops is a
    /// `Transient` failure (retried by another invocation), not the
    /// plugin's fault.
    async fn evaluate(
        &self,
        requests: Vec<EvaluationRequest>,
        deadline: Option<Instant>,
    ) -> Vec<Result<EvaluationReport, Failure>>;

    /// The plugin's own merge of a document's chunk evaluations (in order,
    /// spans already relative to the document), or `None` for the host's
    /// [`default_merge`](crate::evaluation::default_merge).
    ///
    /// # Errors
    /// A categorized [`Failure`], as for `evaluate`.
    async fn merge_chunks(
        &self,
        evaluator: &EvaluatorRef,
        chunks: Vec<Evaluation>,
    ) -> Result<Option<Evaluation>, Failure>;

    /// The plugin's own summary of completed documents' evaluations (JSON
    /// added to the batch summary), or `None`: of one bounded group, a
    /// partial summary, when the evaluator [folds](Evaluators::folds_summaries);
    /// of the whole job otherwise.
    ///
    /// # Errors
    /// A categorized [`Failure`], as for `evaluate`.
    async fn summarize(
        &self,
        evaluator: &EvaluatorRef,
        evaluations: Vec<Evaluation>,
    ) -> Result<Option<serde_json::Value>, Failure>;

    /// Whether the evaluator summarizes in groups (contract 0.2.0's
    /// `combine-summaries`): its `summarize` is then given bounded groups,
    /// with each document's data, and partials are combined.
    ///
    /// # Errors
    /// A categorized [`Failure`] when the evaluator cannot be loaded.
    async fn folds_summaries(&self, evaluator: &EvaluatorRef) -> Result<bool, Failure> {
        let _ = evaluator;
        Ok(false)
    }

    /// The plugin's combination of partial summaries of consecutive groups
    /// (in order) into one of the same kind, or `None` when it has none.
    ///
    /// # Errors
    /// A categorized [`Failure`], as for `evaluate`; a `Permanent` one from
    /// an evaluator that does not fold.
    async fn combine_summaries(
        &self,
        evaluator: &EvaluatorRef,
        partials: Vec<serde_json::Value>,
    ) -> Result<Option<serde_json::Value>, Failure> {
        let _ = partials;
        Err(Failure::new(
            FailureCategory::Permanent,
            format!(
                "{} does not combine partial summaries (no combine-summaries)",
                evaluator.name
            ),
        ))
    }
}
