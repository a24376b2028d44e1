//! The evaluator's own summary of a job, folded in bounded groups: no call
//! is given more than one group of completed documents, whatever the size
//! of the job.
//!
//! An evaluator of contract `docket:evaluator@0.2.0` summarizes each group
//! (scores, labels and data of its documents, in order) into a partial
//! summary, and `combine-summaries` combines the partial of everything so
//! far with the next group's: a left fold, one partial held at a time. An
//! evaluator of 0.1.0 summarizes in one call only, so its summary exists
//! while the whole job fits one call and is refused, with the reason, past
//! that.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::aggregate::{DocumentResult, DocumentStatus};
use crate::evaluation::Evaluation;
use crate::failure::{Failure, FailureCategory};
use crate::model::EvaluatorRef;
use crate::ports::Evaluators;

/// Where the fold stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Fold {
    /// Still folding.
    Open,
    /// The evaluator has no summary (its hook answered none).
    None,
    /// A 0.1.0 evaluator's job past one call.
    TooLarge,
    /// A call failed: no summary, for this reason.
    Failed(Failure),
}

/// The evaluator's summary of a job, folded as its documents are written.
/// Serializable: it is part of a finalize checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct SummaryFold {
    /// The evaluator combines partial summaries (contract 0.2.0).
    folds: bool,
    /// Most input bytes a call is given.
    limit: usize,
    /// Completed documents not yet summarized.
    group: Vec<Evaluation>,
    group_bytes: usize,
    /// Groups summarized so far, and the partial summary of all of them.
    groups: u32,
    partial: Option<Value>,
    /// Completed documents seen.
    documents: u64,
    state: Fold,
}

/// What a document's evaluation costs as a summary call's input, counted
/// as the plugin host counts it (names, labels and data) with a margin for
/// the fixed bytes of each record.
fn input_bytes(evaluation: &Evaluation) -> usize {
    let data = if evaluation.data.is_null() {
        0
    } else {
        evaluation.data.as_str().len()
    };
    16 + evaluation
        .scores
        .iter()
        .map(|s| s.name.len() + 24)
        .sum::<usize>()
        + evaluation.labels.iter().map(|l| l.len() + 8).sum::<usize>()
        + data
}

impl SummaryFold {
    /// A fold of at most `limit` input bytes per call; `folds` when the
    /// evaluator combines partials.
    pub(super) fn new(folds: bool, limit: usize) -> Self {
        Self {
            folds,
            limit,
            group: Vec::new(),
            group_bytes: 0,
            groups: 0,
            partial: None,
            documents: 0,
            state: Fold::Open,
        }
    }

    /// A fold that has already failed (the evaluator could not be asked
    /// how it summarizes).
    pub(super) fn failed(failure: Failure, limit: usize) -> Self {
        Self {
            state: Fold::Failed(failure),
            ..Self::new(false, limit)
        }
    }

    /// Adds one document; summarizes the group before it when the document
    /// would take the group past the limit.
    pub(super) async fn add(
        &mut self,
        evaluators: &dyn Evaluators,
        evaluator: &EvaluatorRef,
        document: &DocumentResult,
    ) {
        if document.status != DocumentStatus::Completed {
            return;
        }
        self.documents += 1;
        if self.state != Fold::Open {
            return;
        }
        let mut evaluation = document.summary_input();
        if self.folds {
            evaluation.data = document.data.clone();
        }
        let bytes = input_bytes(&evaluation);
        if !self.group.is_empty() && self.group_bytes + bytes > self.limit {
            if !self.folds {
                self.state = Fold::TooLarge;
                self.group = Vec::new();
                return;
            }
            self.summarize_group(evaluators, evaluator).await;
        }
        self.group.push(evaluation);
        self.group_bytes += bytes;
    }

    /// Summarizes the group and combines its partial with the one before.
    async fn summarize_group(&mut self, evaluators: &dyn Evaluators, evaluator: &EvaluatorRef) {
        let group = std::mem::take(&mut self.group);
        self.group_bytes = 0;
        let number = self.groups + 1;
        let partial = match evaluators.summarize(evaluator, group).await {
            Err(failure) => {
                self.state = Fold::Failed(if self.folds {
                    failure.context(format!("summarize (group {number})"))
                } else {
                    failure
                });
                return;
            }
            Ok(None) if number == 1 => {
                self.state = Fold::None;
                return;
            }
            Ok(None) => {
                self.state = Fold::Failed(Failure::new(
                    FailureCategory::Permanent,
                    format!(
                        "summarize gave no partial summary for group {number} after one for the groups before"
                    ),
                ));
                return;
            }
            Ok(Some(partial)) => partial,
        };
        self.groups = number;
        self.partial = match self.partial.take() {
            None => Some(partial),
            Some(before) => match evaluators
                .combine_summaries(evaluator, vec![before, partial])
                .await
            {
                Ok(Some(combined)) => Some(combined),
                Ok(None) => {
                    self.state = Fold::Failed(Failure::new(
                        FailureCategory::Permanent,
                        format!("combine-summaries gave no summary for groups 1 to {number}"),
                    ));
                    None
                }
                Err(failure) => {
                    self.state = Fold::Failed(
                        failure.context(format!("combine-summaries (groups 1 to {number})")),
                    );
                    None
                }
            },
        };
    }

    /// The job's summary, or why it has none.
    pub(super) async fn finish(
        mut self,
        evaluators: &dyn Evaluators,
        evaluator: &EvaluatorRef,
    ) -> Result<Option<Value>, Failure> {
        // The last group; a job with no completed document is asked with
        // an empty one.
        if self.state == Fold::Open && (!self.group.is_empty() || self.groups == 0) {
            self.summarize_group(evaluators, evaluator).await;
        }
        match self.state {
            Fold::Open => Ok(self.partial),
            Fold::None => Ok(None),
            Fold::Failed(failure) => Err(failure),
            Fold::TooLarge => {
                // An evaluator without a summary hook answers an empty call
                // with none, and then nothing is missing.
                match evaluators.summarize(evaluator, Vec::new()).await {
                    Ok(None) => Ok(None),
                    _ => Err(Failure::new(
                        FailureCategory::Permanent,
                        format!(
                            "the evaluator's summary was not computed: the scores and labels of {} completed documents are past the {} bytes one summarize call may take, and its contract (docket:evaluator@0.1.0) summarizes in one call only; built against docket:evaluator@0.2.0 (combine-summaries) it is summarized in groups",
                            self.documents, self.limit
                        ),
                    )),
                }
            }
        }
    }
}
