//! Aggregation: chunk outcomes merged per document in order, and the batch
//! summary (`avg_<score>_score` for every score, violation and warning
//! counts, failures by category).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::evaluation::{ChunkEvaluation, Data, Evaluation, Finding, Score, Severity};
use crate::failure::{Failure, FailureCategory};
use crate::model::{EvaluatorRef, ItemOutcome, ItemResult, Job, JobId, JobStatus};

/// A document's final state in the results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DocumentStatus {
    /// Every chunk evaluated.
    Completed,
    /// A chunk failed (or the merge did).
    Failed,
    /// Not evaluated (job cancelled or failing fast).
    Skipped,
}

/// A score as batch clients read it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScoreValue {
    /// The value reached.
    pub total_score: f64,
    /// The most that could be reached.
    pub max_score: f64,
}

/// One document in the results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentResult {
    /// The document's id.
    pub id: String,
    /// Its title.
    pub title: String,
    /// Its final state.
    pub status: DocumentStatus,
    /// Time spent loading and evaluating its chunks.
    pub processing_time_seconds: f64,
    /// How many work items it was split into.
    pub chunks: u32,
    /// Scores by name.
    pub scores: BTreeMap<String, ScoreValue>,
    /// Findings, with evidence unless the client asked without.
    pub findings: Vec<Finding>,
    /// Labels.
    pub labels: Vec<String>,
    /// The evaluator's free-form data, as it wrote it.
    pub data: Data,
    /// Why it failed or was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
}

/// The batch summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Documents in the job.
    pub total_documents: u32,
    /// Documents evaluated.
    pub completed_documents: u32,
    /// Documents failed.
    pub failed_documents: u32,
    /// Documents skipped.
    pub skipped_documents: u32,
    /// `avg_<name>_score` over completed documents, for every score name
    /// (two decimals).
    #[serde(flatten)]
    pub average_scores: BTreeMap<String, f64>,
    /// Violation findings over all documents.
    pub total_violations: u32,
    /// Warning findings over all documents.
    pub total_warnings: u32,
    /// Documents with at least one violation.
    pub documents_with_violations: u32,
    /// Documents with at least one warning.
    pub documents_with_warnings: u32,
    /// Failed documents by category (`DATA`, `PERMANENT`, …).
    pub failures_by_category: BTreeMap<FailureCategory, u32>,
    /// Mean processing time per completed document, seconds.
    pub avg_processing_time_seconds: f64,
    /// The evaluator's own summary, when it provides one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluator_summary: Option<serde_json::Value>,
    /// Why the evaluator's summary is missing, when its summary hook failed
    /// or could not be given the batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluator_summary_error: Option<Failure>,
}

/// The results of a job apart from its documents: what `results.json`
/// opens with and what a reader of the documents' lines needs beside them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultsHeader {
    /// The job.
    pub job_id: JobId,
    /// Its final status.
    pub status: JobStatus,
    /// Documents in the job.
    pub document_count: u32,
    /// The exact evaluator that produced them.
    pub evaluator: EvaluatorRef,
    /// When the job was accepted.
    pub created_at: DateTime<Utc>,
    /// When it was finalized.
    pub finished_at: DateTime<Utc>,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The summary.
    pub summary: Summary,
}

/// `results.json`: the whole job's results, the header's fields first.
/// Not `Deserialize`: serde reads a flattened struct from a buffered copy,
/// which cannot keep each document's `data` as its text; a reader takes
/// the header and the documents apart (`Pipeline::results`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResultsDocument {
    /// Everything but the documents.
    #[serde(flatten)]
    pub header: ResultsHeader,
    /// Every document, in submission order.
    pub documents: Vec<DocumentResult>,
}

impl DocumentResult {
    /// What the evaluator's summary hook is given of this document: its
    /// scores and labels (findings and data left out).
    pub fn summary_input(&self) -> Evaluation {
        Evaluation {
            scores: self
                .scores
                .iter()
                .map(|(name, s)| Score {
                    name: name.clone(),
                    value: s.total_score,
                    max: s.max_score,
                })
                .collect(),
            findings: Vec::new(),
            labels: self.labels.clone(),
            data: Data::null(),
        }
    }

    /// Number of its findings of `severity`.
    pub fn count(&self, severity: Severity) -> u32 {
        self.findings
            .iter()
            .filter(|f| f.severity == severity)
            .count() as u32
    }
}

impl ResultsDocument {
    /// Every score name any document has, sorted.
    pub fn score_names(&self) -> Vec<&String> {
        let mut names: Vec<&String> = self
            .documents
            .iter()
            .flat_map(|d| d.scores.keys())
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

fn round(x: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (x * scale).round() / scale
}

/// The evaluations of the succeeded outcomes among `outcomes`, weighted by
/// their size, in the order given.
fn succeeded_chunks<'a>(
    outcomes: impl IntoIterator<Item = &'a ItemOutcome>,
) -> Vec<ChunkEvaluation> {
    outcomes
        .into_iter()
        .filter_map(|o| match &o.result {
            ItemResult::Succeeded { evaluation, .. } => Some(ChunkEvaluation {
                weight: o.bytes,
                evaluation: evaluation.clone(),
            }),
            _ => None,
        })
        .collect()
}

/// Outcomes read in item order, grouped by document as they come: items
/// are numbered in document order, so a document's chunks are adjacent and
/// only the document being read is held.
#[derive(Debug, Default)]
pub struct DocumentGroups {
    current: Vec<ItemOutcome>,
}

impl DocumentGroups {
    /// Takes the next outcome in item order; returns the previous
    /// document's chunks when this one starts another document.
    pub fn push(&mut self, outcome: ItemOutcome) -> Option<Vec<ItemOutcome>> {
        let done = match self.current.first() {
            Some(first) if first.document != outcome.document => {
                Some(std::mem::take(&mut self.current))
            }
            _ => None,
        };
        self.current.push(outcome);
        done.map(in_chunk_order)
    }

    /// The last document's chunks, once every outcome was pushed.
    pub fn finish(&mut self) -> Option<Vec<ItemOutcome>> {
        (!self.current.is_empty()).then(|| in_chunk_order(std::mem::take(&mut self.current)))
    }
}

fn in_chunk_order(mut group: Vec<ItemOutcome>) -> Vec<ItemOutcome> {
    group.sort_by_key(|o| o.chunk.index);
    group
}

/// The chunk evaluations of a document split into several chunks that all
/// succeeded, in chunk order: what its merge takes. `None` for an unsplit
/// document or one with a failed, skipped or missing chunk.
pub fn chunks_to_merge(group: &[ItemOutcome]) -> Option<Vec<ChunkEvaluation>> {
    let count = group.first()?.chunk.count;
    if count <= 1 {
        return None;
    }
    let chunks = succeeded_chunks(group);
    (chunks.len() as u32 == count).then_some(chunks)
}

/// One document's result from its chunks' outcomes (in chunk order).
/// `merged` is the merge of [`chunks_to_merge`] when that is `Some` (the
/// host's [`default_merge`](crate::evaluation::default_merge) when it is
/// not given); an unsplit document's evaluation is taken as it is.
pub fn assemble_document(
    mut group: Vec<ItemOutcome>,
    merged: Option<Result<Evaluation, Failure>>,
) -> DocumentResult {
    let first = &group[0];
    let seconds: f64 = group
        .iter()
        .map(|o| match &o.result {
            ItemResult::Succeeded { seconds, .. } | ItemResult::Failed { seconds, .. } => *seconds,
            ItemResult::Skipped { .. } => 0.0,
        })
        .sum();
    let failure = group.iter().find_map(|o| match &o.result {
        ItemResult::Failed { failure, .. } => Some(failure.clone()),
        _ => None,
    });
    let skipped = group.iter().find_map(|o| match &o.result {
        ItemResult::Skipped { reason } => Some(reason.clone()),
        _ => None,
    });
    let mut document = DocumentResult {
        id: first.document_id.clone(),
        title: first.title.clone(),
        status: DocumentStatus::Completed,
        processing_time_seconds: round(seconds, 6),
        chunks: first.chunk.count,
        scores: BTreeMap::new(),
        findings: Vec::new(),
        labels: Vec::new(),
        data: Data::null(),
        error: None,
    };
    let outcome = match (failure, skipped) {
        (Some(failure), _) => Err((DocumentStatus::Failed, failure)),
        (None, Some(reason)) => Err((
            DocumentStatus::Skipped,
            Failure::new(FailureCategory::Permanent, reason),
        )),
        (None, None) if group.len() == 1 && first.chunk.count == 1 => {
            // The common case: an unsplit document's evaluation is moved,
            // not copied.
            match group.pop().map(|o| o.result) {
                Some(ItemResult::Succeeded { evaluation, .. }) => Ok(evaluation),
                _ => unreachable!("neither failed nor skipped, so succeeded"),
            }
        }
        (None, None) => match chunks_to_merge(&group) {
            Some(chunks) => merged
                .unwrap_or_else(|| Ok(crate::evaluation::default_merge(&chunks)))
                .map_err(|f| (DocumentStatus::Failed, f)),
            None => Err((
                DocumentStatus::Failed,
                Failure::new(
                    FailureCategory::Permanent,
                    format!(
                        "{} of {} chunks have results",
                        succeeded_chunks(&group).len(),
                        first.chunk.count
                    ),
                ),
            )),
        },
    };
    match outcome {
        Ok(evaluation) => {
            document.scores = evaluation
                .scores
                .iter()
                .map(|s| {
                    (
                        s.name.clone(),
                        ScoreValue {
                            total_score: round(s.value, 4),
                            max_score: round(s.max, 4),
                        },
                    )
                })
                .collect();
            document.findings = evaluation.findings;
            document.labels = evaluation.labels;
            document.data = evaluation.data;
        }
        Err((status, failure)) => {
            document.status = status;
            document.error = Some(failure);
        }
    }
    document
}

/// Every document of `outcomes` (any order), merging split documents' chunks
/// with `merge(document, chunks)`; documents come out in submission order.
/// The whole-batch form of [`DocumentGroups`] and [`assemble_document`], for
/// tests and small batches.
pub fn assemble_documents(
    mut outcomes: Vec<ItemOutcome>,
    mut merge: impl FnMut(u32, &[ChunkEvaluation]) -> Result<Evaluation, Failure>,
) -> Vec<DocumentResult> {
    outcomes.sort_by_key(|o| (o.document, o.chunk.index));
    let mut groups = DocumentGroups::default();
    let mut documents = Vec::new();
    let mut assemble = |group: Vec<ItemOutcome>| {
        let merged = chunks_to_merge(&group).map(|chunks| merge(group[0].document, &chunks));
        documents.push(assemble_document(group, merged));
    };
    for outcome in outcomes {
        if let Some(group) = groups.push(outcome) {
            assemble(group);
        }
    }
    if let Some(group) = groups.finish() {
        assemble(group);
    }
    documents
}

/// The batch summary, folded one document at a time (in submission order,
/// so sums come out exactly as over the whole list).
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryBuilder {
    total: u32,
    completed: u32,
    failed: u32,
    skipped: u32,
    sums: BTreeMap<String, (f64, u32)>,
    total_violations: u32,
    total_warnings: u32,
    documents_with_violations: u32,
    documents_with_warnings: u32,
    failures_by_category: BTreeMap<FailureCategory, u32>,
    total_time: f64,
}

impl SummaryBuilder {
    /// Counts one document.
    pub fn add(&mut self, document: &DocumentResult) {
        self.total += 1;
        match document.status {
            DocumentStatus::Completed => {
                self.completed += 1;
                for (name, score) in &document.scores {
                    let entry = self.sums.entry(name.clone()).or_default();
                    entry.0 += score.total_score;
                    entry.1 += 1;
                }
                self.total_time += document.processing_time_seconds;
            }
            DocumentStatus::Failed => {
                self.failed += 1;
                if let Some(error) = &document.error {
                    *self.failures_by_category.entry(error.category).or_insert(0) += 1;
                }
            }
            DocumentStatus::Skipped => self.skipped += 1,
        }
        let violations = document.count(Severity::Violation);
        let warnings = document.count(Severity::Warning);
        self.total_violations += violations;
        self.total_warnings += warnings;
        self.documents_with_violations += u32::from(violations > 0);
        self.documents_with_warnings += u32::from(warnings > 0);
    }

    /// Every score name a completed document has, sorted.
    pub fn score_names(&self) -> impl Iterator<Item = &str> {
        self.sums.keys().map(String::as_str)
    }

    /// The summary of the documents added, with the evaluator's own
    /// summary (or why it has none).
    pub fn finish(self, evaluator_summary: Result<Option<serde_json::Value>, Failure>) -> Summary {
        let (evaluator_summary, evaluator_summary_error) = match evaluator_summary {
            Ok(summary) => (summary, None),
            Err(failure) => (None, Some(failure)),
        };
        Summary {
            total_documents: self.total,
            completed_documents: self.completed,
            failed_documents: self.failed,
            skipped_documents: self.skipped,
            average_scores: self
                .sums
                .into_iter()
                .map(|(name, (sum, n))| (format!("avg_{name}_score"), round(sum / f64::from(n), 2)))
                .collect(),
            total_violations: self.total_violations,
            total_warnings: self.total_warnings,
            documents_with_violations: self.documents_with_violations,
            documents_with_warnings: self.documents_with_warnings,
            failures_by_category: self.failures_by_category,
            avg_processing_time_seconds: if self.completed == 0 {
                0.0
            } else {
                round(self.total_time / f64::from(self.completed), 6)
            },
            evaluator_summary,
            evaluator_summary_error,
        }
    }
}

/// The batch summary of `documents` (the whole-list form of
/// [`SummaryBuilder`]).
pub fn summarize(
    documents: &[DocumentResult],
    evaluator_summary: Result<Option<serde_json::Value>, Failure>,
) -> Summary {
    let mut builder = SummaryBuilder::default();
    for document in documents {
        builder.add(document);
    }
    builder.finish(evaluator_summary)
}

/// The status a finalized job ends in, and its error: a cancelled job stays
/// cancelled; a job failing fast, or whose every document failed, fails;
/// anything else completes (with its failed documents reported).
pub fn final_status(job: &Job, summary: &Summary) -> (JobStatus, Option<String>) {
    if job.status == JobStatus::Cancelled {
        return (JobStatus::Cancelled, job.error.clone());
    }
    if let Some(error) = &job.error {
        return (JobStatus::Failed, Some(error.clone()));
    }
    if summary.total_documents > 0 && summary.failed_documents == summary.total_documents {
        return (
            JobStatus::Failed,
            Some(format!("all {} documents failed", summary.total_documents)),
        );
    }
    (JobStatus::Completed, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluation::{Span, default_merge};
    use crate::model::ChunkInfo;

    fn outcome(document: u32, chunk: (u32, u32), result: ItemResult) -> ItemOutcome {
        ItemOutcome {
            item: 0,
            document,
            document_id: format!("doc-{document}"),
            title: format!("Doc {document}"),
            chunk: ChunkInfo {
                index: chunk.0,
                count: chunk.1,
                ..ChunkInfo::WHOLE
            },
            bytes: 100,
            body: None,
            metadata: serde_json::Value::Null,
            result,
        }
    }

    fn scored(value: f64, severities: &[Severity]) -> ItemResult {
        ItemResult::Succeeded {
            evaluation: Evaluation {
                scores: vec![
                    Score {
                        name: "decalogo".into(),
                        value,
                        max: 100.0,
                    },
                    Score {
                        name: "questionnaire".into(),
                        value: value / 2.0,
                        max: 60.0,
                    },
                ],
                findings: severities
                    .iter()
                    .map(|&severity| Finding {
                        code: "c".into(),
                        severity,
                        message: "m".into(),
                        evidence: Some(Span {
                            start: 0,
                            end: 1,
                            snippet: "x".into(),
                        }),
                    })
                    .collect(),
                labels: vec![],
                data: Data::null(),
            },
            seconds: 0.5,
        }
    }

    fn failed(category: FailureCategory) -> ItemResult {
        ItemResult::Failed {
            failure: Failure::new(category, "broken"),
            seconds: 0.1,
        }
    }

    fn merge(_: u32, chunks: &[ChunkEvaluation]) -> Result<Evaluation, Failure> {
        Ok(default_merge(chunks))
    }

    #[test]
    fn documents_merge_chunks_in_order_and_keep_failures() {
        let outcomes = vec![
            outcome(1, (1, 2), scored(40.0, &[])),
            outcome(0, (0, 1), scored(80.0, &[Severity::Warning])),
            outcome(2, (0, 1), failed(FailureCategory::Data)),
            outcome(1, (0, 2), scored(60.0, &[Severity::Violation])),
        ];
        let documents = assemble_documents(outcomes, merge);
        let ids: Vec<_> = documents.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["doc-0", "doc-1", "doc-2"]);
        assert_eq!(documents[1].status, DocumentStatus::Completed);
        assert_eq!(documents[1].chunks, 2);
        assert_eq!(documents[1].scores["decalogo"].total_score, 50.0);
        assert_eq!(documents[1].processing_time_seconds, 1.0);
        assert_eq!(documents[2].status, DocumentStatus::Failed);
        assert_eq!(
            documents[2].error.as_ref().unwrap().category,
            FailureCategory::Data
        );
        assert!(documents[2].scores.is_empty());
    }

    #[test]
    fn summary_averages_every_score_over_completed_documents() {
        let outcomes = vec![
            outcome(
                0,
                (0, 1),
                scored(80.0, &[Severity::Warning, Severity::Warning]),
            ),
            outcome(
                1,
                (0, 1),
                scored(45.0, &[Severity::Violation, Severity::Info]),
            ),
            outcome(2, (0, 1), failed(FailureCategory::Permanent)),
            outcome(3, (0, 1), failed(FailureCategory::Data)),
            outcome(
                4,
                (0, 1),
                ItemResult::Skipped {
                    reason: "job cancelled".into(),
                },
            ),
        ];
        let documents = assemble_documents(outcomes, merge);
        let summary = summarize(&documents, Ok(None));
        assert_eq!(summary.total_documents, 5);
        assert_eq!(summary.completed_documents, 2);
        assert_eq!(summary.failed_documents, 2);
        assert_eq!(summary.skipped_documents, 1);
        assert_eq!(summary.average_scores["avg_decalogo_score"], 62.5);
        assert_eq!(summary.average_scores["avg_questionnaire_score"], 31.25);
        assert_eq!(summary.total_violations, 1);
        assert_eq!(summary.total_warnings, 2);
        assert_eq!(summary.documents_with_warnings, 1);
        assert_eq!(summary.documents_with_violations, 1);
        assert_eq!(summary.failures_by_category[&FailureCategory::Data], 1);
        assert_eq!(summary.failures_by_category[&FailureCategory::Permanent], 1);
        let json = serde_json::to_value(&summary).unwrap();
        assert_eq!(json["avg_decalogo_score"], 62.5);
        assert_eq!(json["failures_by_category"]["PERMANENT"], 1);
    }

    #[test]
    fn a_failing_merge_fails_the_document() {
        let outcomes = vec![
            outcome(0, (0, 2), scored(10.0, &[])),
            outcome(0, (1, 2), scored(20.0, &[])),
            outcome(1, (0, 1), scored(30.0, &[])),
        ];
        let documents = assemble_documents(outcomes, |_, _| {
            Err(Failure::new(FailureCategory::Permanent, "merge trapped"))
        });
        assert_eq!(documents[0].status, DocumentStatus::Failed);
        assert_eq!(
            documents[0].error.as_ref().unwrap().message,
            "merge trapped"
        );
        // An unsplit document needs no merge.
        assert_eq!(documents[1].status, DocumentStatus::Completed);
        assert_eq!(documents[1].scores["decalogo"].total_score, 30.0);
    }
}
