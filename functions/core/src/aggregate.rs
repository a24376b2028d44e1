//! Aggregation: chunk outcomes merged per document in order, and the batch
//! summary (`avg_<score>_score` for every score, violation and warning
//! counts, failures by category).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::evaluation::{ChunkEvaluation, Evaluation, Finding, Severity};
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
    /// The evaluator's free-form data.
    pub data: serde_json::Value,
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultsDocument {
    /// Everything but the documents.
    #[serde(flatten)]
    pub header: ResultsHeader,
    /// Every document, in submission order.
    pub documents: Vec<DocumentResult>,
}

impl DocumentResult {
    /// Number of its findings of `severity`.
    pub fn count(&self, severity: Severity) -> u32 {
        self.findings
            .iter()
            .filter(|f| f.severity == severity)
            .count() as u32
    }
}

impl ResultsDocument {
    /// The same results without evidence spans (`include_evidence=false`).
    pub fn without_evidence(mut self) -> Self {
        for document in &mut self.documents {
            for finding in &mut document.findings {
                finding.evidence = None;
            }
        }
        self
    }

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

    /// `results.json` and `documents.jsonl` (one line per document),
    /// serializing each document once for both.
    pub fn to_json_and_jsonl(&self) -> (String, String) {
        /// `results.json` with the documents already serialized.
        #[derive(Serialize)]
        struct Whole<'a> {
            #[serde(flatten)]
            header: &'a ResultsHeader,
            documents: Vec<Box<RawValue>>,
        }
        // Serializing these plain structs cannot fail. A large job has tens
        // of megabytes of them: spread the work over the cores.
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let per_thread = self.documents.len().div_ceil(threads).max(1);
        let lines: Vec<String> = std::thread::scope(|scope| {
            let parts: Vec<_> = self
                .documents
                .chunks(per_thread)
                .map(|part| {
                    scope.spawn(move || {
                        part.iter()
                            .map(|d| serde_json::to_string(d).unwrap_or_default())
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            parts
                .into_iter()
                .flat_map(|part| part.join().unwrap_or_default())
                .collect()
        });
        let mut jsonl = lines.join("\n");
        if !jsonl.is_empty() {
            jsonl.push('\n');
        }
        let whole = Whole {
            header: &self.header,
            documents: lines
                .into_iter()
                .filter_map(|line| RawValue::from_string(line).ok())
                .collect(),
        };
        (serde_json::to_string(&whole).unwrap_or_default(), jsonl)
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

/// The documents split into several chunks that all succeeded, with their
/// chunk evaluations in chunk order: the ones that need a merge.
pub fn mergeable_documents(outcomes: &[ItemOutcome]) -> Vec<(u32, Vec<ChunkEvaluation>)> {
    let mut sorted: Vec<&ItemOutcome> = outcomes.iter().filter(|o| o.chunk.count > 1).collect();
    sorted.sort_by_key(|o| (o.document, o.chunk.index));
    sorted
        .chunk_by(|a, b| a.document == b.document)
        .filter_map(|group| {
            let chunks = succeeded_chunks(group.iter().copied());
            (chunks.len() as u32 == group[0].chunk.count).then(|| (group[0].document, chunks))
        })
        .collect()
}

/// Groups `outcomes` by document and merges each document's chunks in chunk
/// order with `merge(document, chunks)` — called only for documents split
/// into several chunks that all succeeded; an unsplit document's evaluation
/// is taken as it is. Documents come out in submission order.
pub fn assemble_documents(
    mut outcomes: Vec<ItemOutcome>,
    mut merge: impl FnMut(u32, &[ChunkEvaluation]) -> Result<Evaluation, Failure>,
) -> Vec<DocumentResult> {
    outcomes.sort_by_key(|o| (o.document, o.chunk.index));
    let mut groups: Vec<Vec<ItemOutcome>> = Vec::new();
    for outcome in outcomes {
        match groups.last_mut() {
            Some(group) if group[0].document == outcome.document => group.push(outcome),
            _ => groups.push(vec![outcome]),
        }
    }
    let mut documents = Vec::with_capacity(groups.len());
    for mut group in groups {
        let first = &group[0];
        let seconds: f64 = group
            .iter()
            .map(|o| match &o.result {
                ItemResult::Succeeded { seconds, .. } | ItemResult::Failed { seconds, .. } => {
                    *seconds
                }
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
            data: serde_json::Value::Null,
            error: None,
        };
        let merged = match (failure, skipped) {
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
            (None, None) => {
                let chunks = succeeded_chunks(&group);
                if chunks.len() as u32 == first.chunk.count {
                    merge(first.document, &chunks).map_err(|f| (DocumentStatus::Failed, f))
                } else {
                    Err((
                        DocumentStatus::Failed,
                        Failure::new(
                            FailureCategory::Permanent,
                            format!(
                                "{} of {} chunks have results",
                                chunks.len(),
                                first.chunk.count
                            ),
                        ),
                    ))
                }
            }
        };
        match merged {
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
        documents.push(document);
    }
    documents
}

/// The batch summary of `documents`.
pub fn summarize(
    documents: &[DocumentResult],
    evaluator_summary: Option<serde_json::Value>,
) -> Summary {
    let count = |status| documents.iter().filter(|d| d.status == status).count() as u32;
    let completed: Vec<&DocumentResult> = documents
        .iter()
        .filter(|d| d.status == DocumentStatus::Completed)
        .collect();
    let mut sums: BTreeMap<&str, (f64, u32)> = BTreeMap::new();
    for document in &completed {
        for (name, score) in &document.scores {
            let entry = sums.entry(name.as_str()).or_default();
            entry.0 += score.total_score;
            entry.1 += 1;
        }
    }
    let mut failures_by_category = BTreeMap::new();
    for document in documents
        .iter()
        .filter(|d| d.status == DocumentStatus::Failed)
    {
        if let Some(error) = &document.error {
            *failures_by_category.entry(error.category).or_insert(0) += 1;
        }
    }
    let total_time: f64 = completed.iter().map(|d| d.processing_time_seconds).sum();
    Summary {
        total_documents: documents.len() as u32,
        completed_documents: completed.len() as u32,
        failed_documents: count(DocumentStatus::Failed),
        skipped_documents: count(DocumentStatus::Skipped),
        average_scores: sums
            .into_iter()
            .map(|(name, (sum, n))| (format!("avg_{name}_score"), round(sum / f64::from(n), 2)))
            .collect(),
        total_violations: documents.iter().map(|d| d.count(Severity::Violation)).sum(),
        total_warnings: documents.iter().map(|d| d.count(Severity::Warning)).sum(),
        documents_with_violations: documents
            .iter()
            .filter(|d| d.count(Severity::Violation) > 0)
            .count() as u32,
        documents_with_warnings: documents
            .iter()
            .filter(|d| d.count(Severity::Warning) > 0)
            .count() as u32,
        failures_by_category,
        avg_processing_time_seconds: if completed.is_empty() {
            0.0
        } else {
            round(total_time / completed.len() as f64, 6)
        },
        evaluator_summary,
    }
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
    use crate::evaluation::{Score, Span, default_merge};
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
                data: serde_json::Value::Null,
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
        let summary = summarize(&documents, None);
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
    fn results_and_lines_serialize_like_serde() {
        let documents = assemble_documents(
            vec![
                outcome(0, (0, 1), scored(80.0, &[Severity::Warning])),
                outcome(1, (0, 1), failed(FailureCategory::Data)),
            ],
            merge,
        );
        let summary = summarize(&documents, Some(serde_json::json!({"k": 1})));
        let now = Utc::now();
        let header = ResultsHeader {
            job_id: JobId::parse("job_1").unwrap(),
            status: JobStatus::Completed,
            document_count: 2,
            evaluator: EvaluatorRef {
                name: "e".into(),
                version: "1".into(),
                digest: "sha256:0".into(),
            },
            created_at: now,
            finished_at: now,
            error: None,
            summary,
        };
        let results = ResultsDocument { header, documents };
        let (json, jsonl) = results.to_json_and_jsonl();
        let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(parsed, serde_json::to_value(&results).unwrap());
        let lines: Vec<serde_json::Value> = jsonl
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1], parsed["documents"][1]);
        assert!(jsonl.ends_with('\n'));
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
