//! What an evaluator says about one document (or one chunk of it), and the
//! host's default rule for merging chunk evaluations.
//!
//! These mirror the WIT contract's `evaluation` record; the plugin host
//! converts between the two.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

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
    /// Free-form JSON the evaluator wants to keep, exactly as it wrote it.
    pub data: Data,
}

/// An evaluator's free-form JSON, kept as the text it wrote: numbers are not
/// re-printed and keys keep their order, so results carry `data` byte for
/// byte (only the whitespace between tokens is dropped, which keeps each
/// document on one line of JSONL).
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Data(Box<RawValue>);

impl Data {
    /// JSON `null`: an evaluator that keeps nothing.
    pub fn null() -> Self {
        Self::from_compact("null".to_owned())
    }

    /// `text` checked to be one JSON value, with the whitespace between its
    /// tokens removed; an empty text is `null`.
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        if text.trim().is_empty() {
            return Ok(Self::null());
        }
        let checked: &RawValue = serde_json::from_str(text)?;
        Ok(Self::from_compact(compact(checked.get())))
    }

    /// The array of `items`, each kept as it is.
    pub fn array<'a>(items: impl IntoIterator<Item = &'a Data>) -> Self {
        let mut text = String::from("[");
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            text.push_str(item.as_str());
        }
        text.push(']');
        Self::from_compact(text)
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// Whether it is `null`.
    pub fn is_null(&self) -> bool {
        self.as_str() == "null"
    }

    /// Parsed into a value (numbers as serde_json reads them), for readers
    /// that look inside.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(self.as_str()).unwrap_or(serde_json::Value::Null)
    }

    /// `text` is valid JSON without whitespace between tokens.
    fn from_compact(text: String) -> Self {
        match RawValue::from_string(text) {
            Ok(raw) => Self(raw),
            Err(_) => unreachable!("compact JSON text is valid JSON"),
        }
    }
}

/// Valid JSON `text` without the whitespace between its tokens; the text
/// inside strings is left alone.
fn compact(text: &str) -> String {
    let insignificant = |b: u8| matches!(b, b' ' | b'\n' | b'\r' | b'\t');
    if !text.bytes().any(insignificant) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
        } else if c.is_ascii() && insignificant(c as u8) {
            continue;
        }
        out.push(c);
    }
    out
}

impl Default for Data {
    fn default() -> Self {
        Self::null()
    }
}

impl PartialEq for Data {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl fmt::Debug for Data {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The JSON text of `value`.
impl From<serde_json::Value> for Data {
    fn from(value: serde_json::Value) -> Self {
        Self::from_compact(value.to_string())
    }
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
        data: Data::array(chunks.iter().map(|c| &c.evaluation.data)),
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
                data: serde_json::json!({ "w": weight }).into(),
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
        assert_eq!(merged.data.as_str(), r#"[{"w":300},{"w":100}]"#);
    }

    #[test]
    fn data_keeps_the_evaluator_s_text_but_not_its_whitespace() {
        let written = "{ \"z\": 15.000000000000005,\n  \"a\": [1e-07, 1E+22, -0.0],\t\"s\": \"two  spaces \\\" and\\n\" }";
        let data = Data::parse(written).unwrap();
        assert_eq!(
            data.as_str(),
            r#"{"z":15.000000000000005,"a":[1e-07,1E+22,-0.0],"s":"two  spaces \" and\n"}"#
        );
        assert_eq!(Data::parse("").unwrap(), Data::null());
        assert_eq!(Data::parse("  \n").unwrap(), Data::null());
        assert!(Data::parse("{\"a\": 1").is_err());
        assert!(Data::parse("1 2").is_err());
        assert!(Data::parse("nul").is_err());
    }

    #[test]
    fn data_survives_storage_exactly() {
        let evaluation = Evaluation {
            data: Data::parse(r#"{"z":15.000000000000005,"a":1e-07}"#).unwrap(),
            ..Evaluation::default()
        };
        let stored = crate::ItemResult::Succeeded {
            evaluation,
            seconds: 0.5,
        };
        let text = serde_json::to_string(&stored).unwrap();
        assert_eq!(
            text,
            r#"{"status":"succeeded","evaluation":{"scores":[],"findings":[],"labels":[],"data":{"z":15.000000000000005,"a":1e-07}},"seconds":0.5}"#
        );
        let read: crate::ItemResult = serde_json::from_str(&text).unwrap();
        assert_eq!(read, stored);
        let failed: crate::ItemResult =
            serde_json::from_str(r#"{"status":"skipped","reason":"job cancelled"}"#).unwrap();
        assert_eq!(
            failed,
            crate::ItemResult::Skipped {
                reason: "job cancelled".into()
            }
        );
        let missing =
            serde_json::from_str::<crate::ItemResult>(r#"{"status":"failed","seconds":1.0}"#)
                .unwrap_err();
        assert!(
            missing.to_string().contains("missing field `failure`"),
            "{missing}"
        );
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
