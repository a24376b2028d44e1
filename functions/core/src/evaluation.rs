//! What an evaluator says about one document (or one chunk of it), and the
//! host's default rule for merging chunk evaluations.
//!
//! These mirror the WIT contract's `evaluation` record; the plugin host
//! converts between the two.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A named score, e.g. `decalogo` 72 of 100.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// The score's name; the batch summary reports `avg_<name>_score`.
    pub name: String,
    /// The value reached.
    pub value: f64,
    /// The most that could be reached.
    pub max: f64,
}

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Evidence that something is present.
    Info,
    /// Something is weak or incomplete.
    Warning,
    /// A requirement is not met.
    Violation,
}

/// A byte range of the document's text with the text it covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    /// Byte offset of the first byte, in the whole document's text.
    pub start: u64,
    /// Byte offset one past the last byte.
    pub end: u64,
    /// The covered text, possibly with some context around it.
    pub snippet: String,
}

/// One observation about a document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// A stable machine-readable code, e.g. `missing-section:budget`.
    pub code: String,
    /// How serious it is.
    pub severity: Severity,
    /// What a person reads.
    pub message: String,
    /// Where in the document, when it points somewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Span>,
}

/// The result of evaluating one document or chunk.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Evaluation {
    /// Named scores.
    pub scores: Vec<Score>,
    /// Findings, in document order where the evaluator keeps one.
    pub findings: Vec<Finding>,
    /// Free labels, e.g. `language:es`.
    pub labels: Vec<String>,
    /// Free-form JSON the evaluator wants to keep.
    pub data: serde_json::Value,
}

impl Evaluation {
    /// Shifts every evidence span by `offset` bytes: chunk evaluations are
    /// made relative to the chunk and reported relative to the document.
    pub fn rebase(&mut self, offset: u64) {
        for finding in &mut self.findings {
            if let Some(span) = &mut finding.evidence {
                span.start += offset;
                span.end += offset;
            }
        }
    }
}

/// A chunk's evaluation with the weight (its size in bytes) the default merge
/// gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkEvaluation {
    /// The chunk's text length in bytes.
    pub weight: u64,
    /// Its evaluation, already rebased to document offsets.
    pub evaluation: Evaluation,
}

/// The host's merge of chunk evaluations, used when the evaluator does not
/// provide its own: every score becomes the size-weighted mean of the chunks
/// that have it (value and max alike, so a 0–100 score stays 0–100),
/// findings are concatenated in chunk order, labels are the sorted union and
/// `data` is the array of the chunks' data.
pub fn default_merge(chunks: &[ChunkEvaluation]) -> Evaluation {
    if let [only] = chunks {
        return only.evaluation.clone();
    }
    let mut order: Vec<&str> = Vec::new();
    let mut sums: BTreeMap<&str, (f64, f64, f64)> = BTreeMap::new();
    for chunk in chunks {
        let weight = chunk.weight.max(1) as f64;
        for score in &chunk.evaluation.scores {
            let entry = sums.entry(score.name.as_str()).or_insert_with(|| {
                order.push(score.name.as_str());
                (0.0, 0.0, 0.0)
            });
            entry.0 += score.value * weight;
            entry.1 += score.max * weight;
            entry.2 += weight;
        }
    }
    let scores = order
        .into_iter()
        .map(|name| {
            let (value, max, weight) = sums[name];
            Score {
                name: name.to_owned(),
                value: value / weight,
                max: max / weight,
            }
        })
        .collect();
    let mut labels: Vec<String> = chunks
        .iter()
        .flat_map(|c| c.evaluation.labels.iter().cloned())
        .collect();
    labels.sort();
    labels.dedup();
    Evaluation {
        scores,
        findings: chunks
            .iter()
            .flat_map(|c| c.evaluation.findings.iter().cloned())
            .collect(),
        labels,
        data: serde_json::Value::Array(chunks.iter().map(|c| c.evaluation.data.clone()).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(weight: u64, score: f64, finding_at: u64, label: &str) -> ChunkEvaluation {
        ChunkEvaluation {
            weight,
            evaluation: Evaluation {
                scores: vec![Score {
                    name: "quality".into(),
                    value: score,
                    max: 100.0,
                }],
                findings: vec![Finding {
                    code: "seen".into(),
                    severity: Severity::Info,
                    message: "seen".into(),
                    evidence: Some(Span {
                        start: finding_at,
                        end: finding_at + 4,
                        snippet: "seen".into(),
                    }),
                }],
                labels: vec![label.into()],
                data: serde_json::json!({ "w": weight }),
            },
        }
    }

    #[test]
    fn default_merge_weights_scores_by_chunk_size() {
        let merged = default_merge(&[chunk(300, 90.0, 5, "b"), chunk(100, 50.0, 310, "a")]);
        assert_eq!(merged.scores.len(), 1);
        assert_eq!(merged.scores[0].value, 80.0);
        assert_eq!(merged.scores[0].max, 100.0);
        let starts: Vec<_> = merged
            .findings
            .iter()
            .map(|f| f.evidence.as_ref().unwrap().start)
            .collect();
        assert_eq!(starts, [5, 310]);
        assert_eq!(merged.labels, ["a", "b"]);
        assert_eq!(merged.data, serde_json::json!([{ "w": 300 }, { "w": 100 }]));
    }

    #[test]
    fn single_chunk_merges_to_itself() {
        let only = chunk(10, 42.0, 0, "x");
        assert_eq!(default_merge(std::slice::from_ref(&only)), only.evaluation);
    }

    #[test]
    fn rebase_moves_spans_to_document_offsets() {
        let mut evaluation = chunk(10, 1.0, 7, "x").evaluation;
        evaluation.rebase(1000);
        let span = evaluation.findings[0].evidence.as_ref().unwrap();
        assert_eq!((span.start, span.end), (1007, 1011));
    }
}
