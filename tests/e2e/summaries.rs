//! The evaluator's summary folded in bounded groups (contract 0.2.0), the
//! 0.1.0 contract's one call, failed summaries in the results, and a
//! finalize that stops at its deadline and goes on from its checkpoint.

// Test code: a failed unwrap fails the test.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use docket_core::Priority;
use docket_core::evaluation::{Evaluation, Score};
use docket_core::model::{ItemOutcome, ItemResult, Job, JobOptions, WorkItem};
use docket_core::pipeline::{FinalizeMessage, FinalizeOutcome, PipelineSettings};
use docket_core::ports::{JobStore, OutgoingMessage, QueueName};
use docket_tests::Harness;
use serde_json::{Value, json};

/// `n` documents of 1 to 80 words, different for every number.
pub(crate) fn documents(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            let words = 1 + (i * 37) % 80;
            let text = (0..words)
                .map(|w| ["plan", "road", "water", "school"][(i + w) % 4])
                .collect::<Vec<_>>()
                .join(" ");
            (format!("doc-{i:06}"), text)
        })
        .collect()
}

/// What tally's summary of `documents` is, computed here.
fn expected_tally(documents: &[(String, String)]) -> Value {
    let words: Vec<usize> = documents
        .iter()
        .map(|(_, t)| t.split_whitespace().count())
        .collect();
    let long = words.iter().filter(|&&w| w >= 50).count();
    let mut labels = serde_json::Map::new();
    if long > 0 {
        labels.insert("length:long".into(), json!(long));
    }
    if long < words.len() {
        labels.insert("length:short".into(), json!(words.len() - long));
    }
    json!({
        "documents": words.len(),
        "words": words.iter().sum::<usize>(),
        "labels": labels,
        "first_words": words.first(),
        "last_words": words.last(),
    })
}

/// A harness whose pipeline has `settings` changed by `change`.
pub(crate) fn harness_with(change: impl FnOnce(&mut PipelineSettings)) -> Harness {
    let mut harness = Harness::new(None);
    let mut settings = Harness::settings();
    change(&mut settings);
    harness.pipeline = harness.pipeline.with_settings(settings);
    harness
}

pub(crate) async fn submit(
    harness: &Harness,
    evaluator: &str,
    documents: &[(String, String)],
) -> Job {
    let documents: Vec<(&str, &str)> = documents
        .iter()
        .map(|(id, text)| (id.as_str(), text.as_str()))
        .collect();
    harness
        .submit(evaluator, &documents, JobOptions::default())
        .await
}

/// Runs `documents` through `evaluator` to the end; the results.
async fn run(harness: &Harness, evaluator: &str, documents: &[(String, String)]) -> Value {
    let job = submit(harness, evaluator, documents).await;
    let job = harness.run_until_finalized(&job.id, 1_000_000).await;
    harness.results(&job.id).await
}

/// Results without what differs between two jobs of the same documents:
/// the job's id, its times and measured processing times.
pub(crate) fn comparable(mut results: Value) -> Value {
    for key in ["job_id", "created_at", "finished_at"] {
        results[key] = Value::Null;
    }
    if let Some(documents) = results["documents"].as_array_mut() {
        for document in documents {
            document["processing_time_seconds"] = json!(0);
        }
    }
    results["summary"]["avg_processing_time_seconds"] = json!(0);
    results
}

/// What tally's `evaluate` gives for `text` (its code, restated).
fn tally_evaluation(text: &str) -> Evaluation {
    let words = text.split_whitespace().count();
    Evaluation {
        scores: vec![Score {
            name: "words".into(),
            value: words.min(100) as f64,
            max: 100.0,
        }],
        findings: Vec::new(),
        labels: vec![
            if words >= 50 {
                "length:long"
            } else {
                "length:short"
            }
            .into(),
        ],
        data: json!({"words": words, "chars": text.len()}).into(),
    }
}

/// A job of `documents` submitted to tally, every item recorded as tally
/// evaluates it ([`record_as_tally`]), not finalized.
async fn recorded_as_tally(harness: &Harness, documents: &[(String, String)]) -> Job {
    let job = submit(harness, "tally", documents).await;
    record_as_tally(harness, documents).await;
    job
}

/// Parts of 16 KiB and summary groups of 8 KiB: a job of a few thousand
/// documents takes many of each.
fn small_parts_and_groups(s: &mut PipelineSettings) {
    s.results_part_bytes = 16 * 1024;
    s.summary_input_bytes = 8 * 1024;
}

/// [`recorded_as_tally`], then finalized; its results.
async fn finalized_as_tally(harness: &Harness, documents: &[(String, String)]) -> Value {
    let job = recorded_as_tally(harness, documents).await;
    let outcome = harness.pipeline.finalize(&job.id).await.unwrap();
    assert!(matches!(outcome, FinalizeOutcome::Finalized(_)));
    harness.results(&job.id).await
}

/// Records, for every work item of a submitted job of `documents`, the
/// outcome tally's evaluation gives, without running the plugin: jobs of
/// tens of thousands of documents are then finalized in seconds, with the
/// plugin's real summary calls.
pub(crate) async fn record_as_tally(harness: &Harness, documents: &[(String, String)]) {
    let queue = &harness.ports.queue;
    loop {
        let deliveries = queue
            .receive(
                QueueName::Work(Priority::Normal),
                1_000,
                Duration::from_secs(600),
            )
            .await
            .unwrap();
        if deliveries.is_empty() {
            break;
        }
        let mut job = None;
        let outcomes: Vec<ItemOutcome> = deliveries
            .iter()
            .map(|d| {
                let item: WorkItem = serde_json::from_str(&d.body).unwrap();
                job = Some(item.job_id.clone());
                let evaluation = tally_evaluation(&documents[item.document as usize].1);
                ItemOutcome::of(
                    &item,
                    ItemResult::Succeeded {
                        evaluation,
                        seconds: 0.0,
                    },
                )
            })
            .collect();
        let job = job.unwrap();
        let receipt = harness
            .backend
            .store
            .record_outcomes(&job, &outcomes, chrono::Utc::now())
            .await
            .unwrap();
        assert!(receipt.duplicates.is_empty());
        let receipts: Vec<_> = deliveries.iter().map(|d| d.receipt.clone()).collect();
        queue
            .ack(QueueName::Work(Priority::Normal), &receipts)
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_summary_past_one_calls_limit_is_folded_in_groups_to_the_one_call_summary() {
    // 50,000 documents: their summary input is past the 4 MiB one call may
    // take, so the summary comes from many groups and their combinations.
    let many = documents(50_000);
    let harness = harness_with(|_| {});
    let results = finalized_as_tally(&harness, &many).await;
    let summary = &results["summary"];
    assert_eq!(summary["completed_documents"], 50_000);
    assert_eq!(summary["evaluator_summary_error"], Value::Null, "{summary}");
    assert_eq!(summary["evaluator_summary"], expected_tally(&many));
    let settings = Harness::settings();
    let one_call_bytes: usize = many
        .iter()
        .map(|(_, t)| {
            let words = t.split_whitespace().count();
            let data = json!({"words": words, "chars": t.len()}).to_string();
            let label = if words >= 50 { 11 } else { 12 };
            16 + (5 + 24) + (label + 8) + data.len()
        })
        .sum();
    assert!(
        one_call_bytes > settings.summary_input_bytes,
        "{one_call_bytes} bytes fit one call"
    );

    // On a small job, one call and a fold of groups of a few documents
    // give the same summary.
    let few = documents(300);
    let one_call = run(&harness_with(|_| {}), "tally", &few).await;
    let folded = run(
        &harness_with(|s| s.summary_input_bytes = 1_000),
        "tally",
        &few,
    )
    .await;
    assert_eq!(
        one_call["summary"]["evaluator_summary"],
        expected_tally(&few)
    );
    assert_eq!(comparable(one_call), comparable(folded));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_summary_that_fails_is_in_the_results_with_its_reason() {
    let mut few = documents(120);
    few[70].1 = "tally:poison this document".into();
    let harness = harness_with(|s| s.summary_input_bytes = 2_000);
    let results = run(&harness, "tally", &few).await;
    let summary = &results["summary"];
    assert_eq!(
        summary["completed_documents"], 120,
        "the documents are fine"
    );
    assert_eq!(summary["evaluator_summary"], Value::Null);
    let error = &summary["evaluator_summary_error"];
    assert_eq!(error["category"], "PERMANENT", "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(message.starts_with("summarize (group "), "{message}");
    assert!(
        message.contains("a poisoned document is in the group"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evaluator_of_contract_0_1_0_is_summarized_in_one_call_and_refused_with_the_reason_past_it()
 {
    let few = documents(40);
    let harness = harness_with(|_| {});
    // The host tells the contract from the exports.
    let world = |name: &str| {
        harness
            .host
            .manifest_of(&harness.evaluator(name))
            .unwrap()
            .world
    };
    assert_eq!(world("legacy"), "docket:evaluator/evaluator@0.1.0");
    assert_eq!(world("tally"), "docket:evaluator/evaluator@0.2.0");
    let results = run(&harness, "legacy", &few).await;
    assert_eq!(
        results["summary"]["evaluator_summary"],
        json!({"documents": 40})
    );
    assert_eq!(results["summary"]["evaluator_summary_error"], Value::Null);

    let harness = harness_with(|s| s.summary_input_bytes = 500);
    let results = run(&harness, "legacy", &few).await;
    let summary = &results["summary"];
    assert_eq!(summary["evaluator_summary"], Value::Null);
    assert_eq!(
        summary["evaluator_summary_error"],
        json!({
            "category": "PERMANENT",
            "message": "the evaluator's summary was not computed: the scores and labels of 40 completed documents are past the 500 bytes one summarize call may take, and its contract (docket:evaluator@0.1.0) summarizes in one call only; built against docket:evaluator@0.2.0 (combine-summaries) it is summarized in groups"
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finalize_stopped_at_its_deadline_goes_on_from_its_checkpoint_and_finalizes_once() {
    let docs = documents(3_000);
    // Small parts and summary groups: the job takes many parts, and the
    // checkpoints carry a partial summary and a group in progress.
    let small = |s: &mut PipelineSettings| {
        small_parts_and_groups(s);
        s.outcomes_page = 64;
    };
    let reference = finalized_as_tally(&harness_with(small), &docs).await;

    let harness = harness_with(small);
    let job = recorded_as_tally(&harness, &docs).await;
    // The message the last recorded outcome sends.
    let message = FinalizeMessage {
        job_id: job.id.clone(),
    };
    harness
        .ports
        .queue
        .send(QueueName::Finalize, vec![OutgoingMessage::json(&message)])
        .await
        .unwrap();
    // A finalizer whose every invocation is already past its deadline:
    // each stores one part and a checkpoint, and names the job again.
    let queue = &harness.ports.queue;
    let mut messages = 0;
    loop {
        let deliveries = queue
            .receive(QueueName::Finalize, 10, Duration::from_secs(30))
            .await
            .unwrap();
        if deliveries.is_empty() {
            break;
        }
        assert_eq!(deliveries.len(), 1, "one message names the job at a time");
        messages += 1;
        let disposition = harness
            .pipeline
            .finalize_delivery(&deliveries[0], Some(Instant::now()))
            .await;
        assert_eq!(disposition, docket_core::pipeline::Disposition::Done);
        queue
            .ack(QueueName::Finalize, &[deliveries[0].receipt.clone()])
            .await
            .unwrap();
        assert!(messages < 10_000, "finalize does not end");
    }
    let index = harness.pipeline.results_index(&job.id).await.unwrap();
    assert!(index.parts.len() > 20, "{} parts", index.parts.len());
    assert_eq!(
        messages,
        index.parts.len(),
        "one part per invocation, the last one finalizes"
    );
    assert_eq!(
        harness.pipeline.finalize(&job.id).await.unwrap(),
        FinalizeOutcome::AlreadyFinalized
    );
    let results = harness.results(&job.id).await;
    assert_eq!(results["status"], "completed");
    assert_eq!(
        results["summary"]["evaluator_summary"],
        expected_tally(&docs)
    );
    assert!(
        comparable(results) == comparable(reference),
        "results differ"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalizers_that_overlap_on_a_checkpoint_write_the_same_results() {
    let docs = documents(1_500);
    let reference = finalized_as_tally(&harness_with(small_parts_and_groups), &docs).await;
    let harness = harness_with(small_parts_and_groups);
    let job = recorded_as_tally(&harness, &docs).await;
    // Two finalizers go on from the same checkpoints (a duplicate
    // message), then one without a deadline runs past both to the end.
    for _ in 0..5 {
        let (a, b) = tokio::join!(
            harness
                .pipeline
                .finalize_within(&job.id, Some(Instant::now())),
            harness
                .pipeline
                .finalize_within(&job.id, Some(Instant::now())),
        );
        for outcome in [a.unwrap(), b.unwrap()] {
            assert!(matches!(outcome, FinalizeOutcome::Checkpointed { .. }));
        }
    }
    let outcome = harness.pipeline.finalize(&job.id).await.unwrap();
    assert!(matches!(outcome, FinalizeOutcome::Finalized(_)));
    let results = harness.results(&job.id).await;
    assert!(
        comparable(results) == comparable(reference),
        "results differ"
    );
}
