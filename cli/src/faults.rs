//! Injected evaluation faults, for soaks of the embedded backend: with
//! `DOCKET_INJECT_TRANSIENT=<percent>%x<failures>` (e.g. `10%x2`), that
//! share of documents — chosen by their id, the same ones in every process
//! — fail TRANSIENT on their first `<failures>` evaluations in a process,
//! so retries, backoffs and redeliveries run as they do when a backend
//! wobbles. Counted per process: a document retried after a restart fails
//! that many times again. Off unless the variable is set; `docket run` and
//! `docket serve` warn when it is.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, bail};
use async_trait::async_trait;
use docket_core::evaluation::Evaluation;
use docket_core::ports::{EvaluationReport, EvaluationRequest, Evaluators};
use docket_core::{EvaluatorRef, Failure, FailureCategory};

/// The environment variable that turns injection on.
pub const VARIABLE: &str = "DOCKET_INJECT_TRANSIENT";

/// The failure an injected fault reports.
pub const MESSAGE: &str = "injected transient failure (DOCKET_INJECT_TRANSIENT)";

/// Which documents fail and how often.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    /// Share of documents that fail, 0 to 100.
    pub percent: u8,
    /// Evaluations of each that fail before one is let through.
    pub failures: u32,
}

impl Plan {
    /// The plan `<percent>%x<failures>`.
    ///
    /// # Errors
    /// When `text` is not of that form.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let usage = || format!("{VARIABLE}={text:?}: expected <percent>%x<failures>, e.g. 10%x2");
        let Some((percent, failures)) = text.split_once("%x") else {
            bail!(usage());
        };
        let percent: u8 = percent.trim().parse().with_context(usage)?;
        let failures: u32 = failures.trim().parse().with_context(usage)?;
        if percent > 100 {
            bail!(usage());
        }
        Ok(Self { percent, failures })
    }

    /// Whether the document `id` is one of those that fail: the first two
    /// bytes of its SHA-256, modulo 100, below the percentage.
    pub fn chooses(&self, id: &str) -> bool {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(id.as_bytes());
        u16::from_be_bytes([digest[0], digest[1]]) % 100 < u16::from(self.percent)
    }
}

/// `evaluators`, with the faults [`VARIABLE`] asks for when it is set.
///
/// # Errors
/// When the variable is set but not understood.
pub fn injected(evaluators: Arc<dyn Evaluators>) -> anyhow::Result<Arc<dyn Evaluators>> {
    let Ok(text) = std::env::var(VARIABLE) else {
        return Ok(evaluators);
    };
    let plan = Plan::parse(&text)?;
    tracing::warn!(
        percent = plan.percent,
        failures = plan.failures,
        "injecting transient evaluation failures ({VARIABLE})"
    );
    Ok(Arc::new(Flaky {
        inner: evaluators,
        plan,
        calls: Mutex::default(),
    }))
}

/// The evaluators with a [`Plan`]'s failures in front of them.
struct Flaky {
    inner: Arc<dyn Evaluators>,
    plan: Plan,
    /// Failed evaluations so far of each chosen document's chunk (dropped
    /// once it is let through).
    calls: Mutex<HashMap<(String, u32), u32>>,
}

impl Flaky {
    /// Whether this evaluation of `request` fails.
    fn fails(&self, request: &EvaluationRequest) -> bool {
        if !self.plan.chooses(&request.id) {
            return false;
        }
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        let key = (request.id.clone(), request.chunk.index);
        let failed = calls.entry(key.clone()).or_insert(0);
        if *failed < self.plan.failures {
            *failed += 1;
            return true;
        }
        calls.remove(&key);
        false
    }
}

#[async_trait]
impl Evaluators for Flaky {
    async fn resolve(&self, spec: &str) -> Result<EvaluatorRef, Failure> {
        self.inner.resolve(spec).await
    }

    fn loaded(&self) -> Vec<EvaluatorRef> {
        self.inner.loaded()
    }

    async fn check_config(
        &self,
        evaluator: &EvaluatorRef,
        config: &serde_json::Value,
    ) -> Result<(), Failure> {
        self.inner.check_config(evaluator, config).await
    }

    async fn evaluate(
        &self,
        requests: Vec<EvaluationRequest>,
        deadline: Option<Instant>,
    ) -> Vec<Result<EvaluationReport, Failure>> {
        let failing: Vec<bool> = requests.iter().map(|r| self.fails(r)).collect();
        let passing = requests
            .into_iter()
            .zip(&failing)
            .filter(|(_, fails)| !**fails)
            .map(|(request, _)| request)
            .collect();
        let mut reports = self.inner.evaluate(passing, deadline).await.into_iter();
        failing
            .into_iter()
            .map(|fails| {
                if fails {
                    return Err(Failure::new(FailureCategory::Transient, MESSAGE));
                }
                reports.next().unwrap_or_else(|| {
                    Err(Failure::new(
                        FailureCategory::Permanent,
                        "the evaluators gave fewer results than requests",
                    ))
                })
            })
            .collect()
    }

    async fn merge_chunks(
        &self,
        evaluator: &EvaluatorRef,
        chunks: Vec<Evaluation>,
    ) -> Result<Option<Evaluation>, Failure> {
        self.inner.merge_chunks(evaluator, chunks).await
    }

    async fn summarize(
        &self,
        evaluator: &EvaluatorRef,
        evaluations: Vec<Evaluation>,
    ) -> Result<Option<serde_json::Value>, Failure> {
        self.inner.summarize(evaluator, evaluations).await
    }

    async fn folds_summaries(&self, evaluator: &EvaluatorRef) -> Result<bool, Failure> {
        self.inner.folds_summaries(evaluator).await
    }

    async fn combine_summaries(
        &self,
        evaluator: &EvaluatorRef,
        partials: Vec<serde_json::Value>,
    ) -> Result<Option<serde_json::Value>, Failure> {
        self.inner.combine_summaries(evaluator, partials).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_is_a_percentage_and_a_count() {
        assert_eq!(
            Plan::parse("10%x2").unwrap(),
            Plan {
                percent: 10,
                failures: 2
            }
        );
        for bad in ["10", "10%", "x2", "101%x1", "ten%x2"] {
            let error = Plan::parse(bad).unwrap_err().to_string();
            assert!(
                error.contains("expected <percent>%x<failures>"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn about_the_share_asked_for_is_chosen_and_always_the_same_ones() {
        let plan = Plan::parse("10%x2").unwrap();
        let chosen = (0..10_000)
            .filter(|n| plan.chooses(&format!("doc-{n}")))
            .count();
        assert!((800..1_200).contains(&chosen), "{chosen} of 10000");
        assert_eq!(plan.chooses("doc-7"), plan.chooses("doc-7"));
        assert!(!Plan::parse("0%x2").unwrap().chooses("doc-7"));
    }
}
