//! `wordstats`: the minimal docket evaluator — word count, lexical diversity
//! and the most frequent terms. Start here when writing your own.
//!
//! Words are maximal runs of alphanumeric characters, lowercased. Terms
//! shorter than four characters are left out of `top_terms`.

use docket_sdk::text::FastHashMap;
use docket_sdk::{Document, Evaluation, Evaluator, PluginError, Score};
use serde_json::{Value, json};

/// How many terms `top_terms` lists.
const TOP_TERMS: usize = 10;

/// The evaluator.
pub struct WordStats;

impl Evaluator for WordStats {
    fn evaluate(document: Document, _config: Value) -> Result<Evaluation, PluginError> {
        Ok(evaluate_text(&document.content))
    }
}

docket_sdk::export_evaluator!(WordStats);

/// The evaluation of `text`.
pub fn evaluate_text(text: &str) -> Evaluation {
    let lower = text.to_lowercase();
    let mut counts: FastHashMap<&str, u32> = FastHashMap::default();
    let mut words = 0u32;
    for word in lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        words += 1;
        *counts.entry(word).or_insert(0) += 1;
    }
    let unique = counts.len() as u32;
    let mut terms: Vec<(&&str, &u32)> = counts
        .iter()
        .filter(|(term, _)| term.chars().count() >= 4)
        .collect();
    terms.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    let diversity = if words == 0 {
        0.0
    } else {
        (f64::from(unique) * 10000.0 / f64::from(words)).round() / 100.0
    };
    let length = match words {
        0..200 => "length:short",
        200..2000 => "length:medium",
        _ => "length:long",
    };
    Evaluation {
        scores: vec![Score::new("lexical_diversity", diversity, 100.0)],
        findings: Vec::new(),
        labels: vec![length.to_owned()],
        data: json!({
            "words": words,
            "unique_words": unique,
            "characters": text.chars().count(),
            "top_terms": terms
                .iter()
                .take(TOP_TERMS)
                .map(|(term, count)| json!({ "term": term, "count": count }))
                .collect::<Vec<_>>(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_words_and_ranks_terms() {
        let e = evaluate_text("Water, water everywhere; nor any drop to drink. Water!");
        assert_eq!(e.data["words"], 9);
        assert_eq!(e.data["unique_words"], 7);
        assert_eq!(e.data["top_terms"][0], json!({"term": "water", "count": 3}));
        assert_eq!(e.data["top_terms"][1], json!({"term": "drink", "count": 1}));
        assert_eq!(e.scores[0].value, 77.78);
        assert_eq!(e.labels, ["length:short"]);
    }

    #[test]
    fn empty_text_scores_zero() {
        let e = evaluate_text("");
        assert_eq!(e.data["words"], 0);
        assert_eq!(e.scores[0].value, 0.0);
    }
}
