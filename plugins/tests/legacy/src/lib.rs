//! `legacy`: a test evaluator built against contract 0.1.0 (no
//! `combine-summaries`), as components published before 0.2.0 are. Each
//! document scores `ok` 1 of 1; its summary counts the evaluations it is
//! given, in one call.

// The generated export glue is unsafe code by nature.
#![allow(unsafe_code)]

wit_bindgen::generate!({
    path: "../../wit/0.1.0",
    world: "evaluator",
});

struct Legacy;

impl Guest for Legacy {
    fn evaluate(_document: Document, _config: String) -> Result<Evaluation, PluginError> {
        Ok(Evaluation {
            scores: vec![Score {
                name: "ok".into(),
                value: 1.0,
                max: 1.0,
            }],
            findings: Vec::new(),
            labels: Vec::new(),
            data: "null".into(),
        })
    }

    fn merge_chunks(_chunks: Vec<Evaluation>) -> Option<Evaluation> {
        None
    }

    fn summarize(evaluations: Vec<Evaluation>) -> Option<String> {
        Some(format!("{{\"documents\":{}}}", evaluations.len()))
    }
}

export!(Legacy);
