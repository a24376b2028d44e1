//! Conversion between the WIT bindings and docket's core types: documents
//! in, evaluations both ways (validating what a plugin returns), a plugin's
//! own errors as categorized failures, and the size of an evaluation the
//! output cap limits.

use docket_core::ports::DocumentView;
use docket_core::{Data, Evaluation, Failure, FailureCategory, Finding, Score, Severity, Span};

use crate::bindings;

pub(crate) fn wit_document(document: &DocumentView<'_>) -> bindings::Document {
    bindings::Document {
        id: document.id.to_owned(),
        title: document.title.to_owned(),
        content: document.content.to_owned(),
        metadata: document.metadata.to_string(),
        chunk: bindings::ChunkInfo {
            index: document.chunk.index,
            count: document.chunk.count,
            first_page: document.chunk.first_page,
            last_page: document.chunk.last_page,
            offset: document.chunk.offset,
        },
    }
}

pub(crate) fn plugin_error(error: bindings::PluginError) -> Failure {
    match error {
        bindings::PluginError::InvalidDocument(m) => Failure::new(
            FailureCategory::Data,
            format!("evaluator rejected the document: {m}"),
        ),
        bindings::PluginError::InvalidConfig(m) => Failure::new(
            FailureCategory::Configuration,
            format!("evaluator rejected its configuration: {m}"),
        ),
        bindings::PluginError::Internal(m) => {
            Failure::new(FailureCategory::Permanent, format!("evaluator failed: {m}"))
        }
    }
}

/// Bytes of text an evaluation carries (what the output cap limits).
pub(crate) fn output_bytes(e: &bindings::Evaluation) -> u64 {
    let scores: usize = e.scores.iter().map(|s| s.name.len() + 16).sum();
    let findings: usize = e
        .findings
        .iter()
        .map(|f| {
            f.code.len() + f.message.len() + f.evidence.as_ref().map_or(0, |s| s.snippet.len() + 16)
        })
        .sum();
    let labels: usize = e.labels.iter().map(String::len).sum();
    (scores + findings + labels + e.data.len()) as u64
}

fn severity_from(severity: bindings::Severity) -> Severity {
    match severity {
        bindings::Severity::Info => Severity::Info,
        bindings::Severity::Warning => Severity::Warning,
        bindings::Severity::Violation => Severity::Violation,
    }
}

fn severity_to(severity: Severity) -> bindings::Severity {
    match severity {
        Severity::Info => bindings::Severity::Info,
        Severity::Warning => bindings::Severity::Warning,
        Severity::Violation => bindings::Severity::Violation,
    }
}

/// Converts and validates an evaluation returned by a plugin. `content_len`
/// bounds evidence spans when known.
pub(crate) fn evaluation_from(
    e: bindings::Evaluation,
    content_len: Option<u64>,
) -> Result<Evaluation, Failure> {
    let invalid = |message: String| {
        Failure::new(
            FailureCategory::Permanent,
            format!("invalid plugin output: {message}"),
        )
    };
    let data = Data::parse(&e.data).map_err(|err| invalid(format!("data is not JSON: {err}")))?;
    let mut scores = Vec::with_capacity(e.scores.len());
    for score in e.scores {
        if !score.value.is_finite() || !score.max.is_finite() {
            return Err(invalid(format!(
                "score {:?} is not a finite number",
                score.name
            )));
        }
        scores.push(Score {
            name: score.name,
            value: score.value,
            max: score.max,
        });
    }
    let mut findings = Vec::with_capacity(e.findings.len());
    for finding in e.findings {
        let evidence = match finding.evidence {
            Some(span) => {
                if span.start > span.end || content_len.is_some_and(|len| span.end > len) {
                    return Err(invalid(format!(
                        "evidence span {}..{} of finding {:?} is outside the {}-byte input",
                        span.start,
                        span.end,
                        finding.code,
                        content_len.unwrap_or(0)
                    )));
                }
                Some(Span {
                    start: span.start,
                    end: span.end,
                    snippet: span.snippet,
                })
            }
            None => None,
        };
        findings.push(Finding {
            code: finding.code,
            severity: severity_from(finding.severity),
            message: finding.message,
            evidence,
        });
    }
    Ok(Evaluation {
        scores,
        findings,
        labels: e.labels,
        data,
    })
}

pub(crate) fn evaluation_to(e: &Evaluation) -> bindings::Evaluation {
    bindings::Evaluation {
        scores: e
            .scores
            .iter()
            .map(|s| bindings::Score {
                name: s.name.clone(),
                value: s.value,
                max: s.max,
            })
            .collect(),
        findings: e
            .findings
            .iter()
            .map(|f| bindings::Finding {
                code: f.code.clone(),
                severity: severity_to(f.severity),
                message: f.message.clone(),
                evidence: f.evidence.as_ref().map(|s| bindings::Span {
                    start: s.start,
                    end: s.end,
                    snippet: s.snippet.clone(),
                }),
            })
            .collect(),
        labels: e.labels.clone(),
        data: e.data.as_str().to_owned(),
    }
}
