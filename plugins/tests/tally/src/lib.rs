//! `tally`: a test evaluator whose summary is a fold (contract 0.2.0). Each
//! document scores its word count (out of 100, capped) and keeps
//! `{"words": n, "chars": n}` as data; `summarize` tallies a group (documents, words,
//! documents per label, the first and last document's words) and
//! `combine-summaries` adds tallies up, so a job summarized in many groups
//! has the summary of one call. A document starting with `tally:poison`
//! makes the summary of its group panic.

use std::collections::BTreeMap;

use docket_sdk::{Document, Evaluation, Evaluator, PluginError, Score};
use serde_json::{Value, json};

/// The evaluator.
pub struct Tally;

impl Evaluator for Tally {
    fn evaluate(document: Document, _config: Value) -> Result<Evaluation, PluginError> {
        let words = document.content.split_whitespace().count();
        let poison = document.content.starts_with("tally:poison");
        Ok(Evaluation {
            scores: vec![Score::new("words", words.min(100) as f64, 100.0)],
            findings: Vec::new(),
            labels: vec![
                if words >= 50 {
                    "length:long"
                } else {
                    "length:short"
                }
                .into(),
            ],
            data: if poison {
                json!({ "words": words, "chars": document.content.len(), "poison": true })
            } else {
                json!({ "words": words, "chars": document.content.len() })
            },
        })
    }

    fn summarize(evaluations: Vec<Evaluation>) -> Option<Value> {
        let mut labels = BTreeMap::<String, u64>::new();
        let mut words = 0;
        for evaluation in &evaluations {
            assert!(
                evaluation.data.get("poison").is_none(),
                "a poisoned document is in the group"
            );
            words += evaluation.data["words"].as_u64().unwrap_or(0);
            for label in &evaluation.labels {
                *labels.entry(label.clone()).or_default() += 1;
            }
        }
        let first = evaluations.first().map(|e| e.data["words"].clone());
        let last = evaluations.last().map(|e| e.data["words"].clone());
        Some(json!({
            "documents": evaluations.len(),
            "words": words,
            "labels": labels,
            "first_words": first,
            "last_words": last,
        }))
    }

    fn combine_summaries(partials: Vec<Value>) -> Option<Value> {
        let mut labels = BTreeMap::<String, u64>::new();
        let (mut documents, mut words) = (0, 0);
        for partial in &partials {
            documents += partial["documents"].as_u64()?;
            words += partial["words"].as_u64()?;
            for (label, n) in partial["labels"].as_object()? {
                *labels.entry(label.clone()).or_default() += n.as_u64()?;
            }
        }
        Some(json!({
            "documents": documents,
            "words": words,
            "labels": labels,
            "first_words": partials.first()?["first_words"],
            "last_words": partials.last()?["last_words"],
        }))
    }
}

docket_sdk::export_evaluator!(Tally);
