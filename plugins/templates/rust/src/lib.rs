//! `{{name}}`: a docket evaluator. It scores how long a document is and
//! flags documents without a title line. Replace `evaluate` with your own
//! rules; keep it deterministic (no clocks, randomness or network — the
//! sandbox has none).

use docket_sdk::{Document, Evaluation, Evaluator, Finding, PluginError, Score, Severity};
use serde_json::{Value, json};

/// The evaluator.
pub struct Plugin;

impl Evaluator for Plugin {
    fn evaluate(document: Document, config: Value) -> Result<Evaluation, PluginError> {
        let target = match config.get("target_words") {
            None => 500.0,
            Some(value) => value.as_f64().filter(|t| *t > 0.0).ok_or_else(|| {
                PluginError::InvalidConfig("target_words must be a positive number".into())
            })?,
        };
        Ok(evaluate_text(&document.content, target))
    }
}

docket_sdk::export_evaluator!(Plugin);

/// The evaluation of `text` against a target length in words.
pub fn evaluate_text(text: &str, target_words: f64) -> Evaluation {
    let words = text.split_whitespace().count();
    let mut findings = Vec::new();
    if !text.trim_start().starts_with('#') {
        findings.push(Finding {
            code: "missing-title".into(),
            severity: Severity::Warning,
            message: "the document does not start with a '# Title' line".into(),
            evidence: None,
        });
    }
    Evaluation {
        scores: vec![Score::new(
            "length",
            (words as f64 / target_words * 100.0).min(100.0).round(),
            100.0,
        )],
        findings,
        labels: Vec::new(),
        data: json!({ "words": words }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_length_and_flags_a_missing_title() {
        let evaluation = evaluate_text("fifty words or so", 8.0);
        assert_eq!(evaluation.scores[0].value, 50.0);
        assert_eq!(evaluation.findings[0].code, "missing-title");
        assert!(evaluate_text("# Title\ntext", 8.0).findings.is_empty());
    }
}
