// Test code: a poisoned lock or a missing value fails the test.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use docket_core::model::{
    Chunking, DocumentBody, DocumentSpec, EvaluatorRef, JobOptions, JobStatus, Priority,
};
use docket_core::pipeline::{Disposition, IntakeDocument};
use docket_core::ports::{
    BackendError, EvaluationReport, EvaluationRequest, Evaluators, OutgoingMessage, QueueError,
    QueueName, StoreError, WorkQueue,
};
use docket_core::{Evaluation, Failure, FailureCategory, PipelineError};
use docket_plugin_host::PluginHost;
use docket_tests::{Harness, SendHook};

const NORMAL: QueueName = QueueName::Work(Priority::Normal);

fn ok_documents(prefix: &str, n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (format!("{prefix}-{i:03}"), format!("document {i}")))
        .collect()
}

fn refs(documents: &[(String, String)]) -> Vec<(&str, &str)> {
    documents
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect()
}

/// Wraps the real host and fails chosen documents with `category` for their
/// first `failures` evaluations.
struct Flaky {
    host: PluginHost,
    category: FailureCategory,
    failures: u32,
    calls: Mutex<HashMap<String, u32>>,
}

impl Flaky {
    fn new(category: FailureCategory, failures: u32) -> Arc<Self> {
        let host = docket_tests::loaded_host();
        Arc::new(Self {
            host,
            category,
            failures,
            calls: Mutex::default(),
        })
    }

    fn calls(&self, id: &str) -> u32 {
        self.calls.lock().unwrap().get(id).copied().unwrap_or(0)
    }
}

#[async_trait::async_trait]
impl Evaluators for Flaky {
    async fn resolve(&self, spec: &str) -> Result<EvaluatorRef, Failure> {
        self.host.resolve_loaded(spec)
    }

    async fn evaluate(
        &self,
        requests: Vec<EvaluationRequest>,
        deadline: Option<std::time::Instant>,
    ) -> Vec<Result<EvaluationReport, Failure>> {
        let mut passing = Vec::new();
        let mut failing = Vec::new();
        for (n, request) in requests.into_iter().enumerate() {
            let call = {
                let mut calls = self.calls.lock().unwrap();
                let count = calls.entry(request.id.clone()).or_insert(0);
                *count += 1;
                *count
            };
            if request.id.starts_with("flaky") && call <= self.failures {
                failing.push(n);
            } else {
                passing.push((n, request));
            }
        }
        let total = passing.len() + failing.len();
        let (positions, requests): (Vec<usize>, Vec<EvaluationRequest>) =
            passing.into_iter().unzip();
        let reports = self.host.evaluate(requests, deadline).await;
        let mut results: Vec<Option<Result<EvaluationReport, Failure>>> =
            (0..total).map(|_| None).collect();
        for (n, report) in positions.into_iter().zip(reports) {
            results[n] = Some(report);
        }
        for n in failing {
            results[n] = Some(Err(Failure::new(
                self.category,
                "backend said: try again later",
            )));
        }
        results.into_iter().map(Option::unwrap).collect()
    }

    async fn merge_chunks(
        &self,
        evaluator: &EvaluatorRef,
        chunks: Vec<Evaluation>,
    ) -> Result<Option<Evaluation>, Failure> {
        self.host.merge_chunks(evaluator, chunks).await
    }

    async fn summarize(
        &self,
        evaluator: &EvaluatorRef,
        evaluations: Vec<Evaluation>,
    ) -> Result<Option<serde_json::Value>, Failure> {
        self.host.summarize(evaluator, evaluations).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_job_skips_its_remaining_items_and_still_writes_results() {
    let harness = Harness::new(None);
    let documents = ok_documents("doc", 100);
    let job = harness
        .submit("hostile", &refs(&documents), JobOptions::default())
        .await;
    assert_eq!(harness.pipeline.work_once().await.unwrap(), 10);
    let cancelled = harness.pipeline.cancel(&job.id).await.unwrap();
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    let again = harness.pipeline.cancel(&job.id).await.unwrap_err();
    assert!(
        matches!(again, PipelineError::Store(StoreError::Conflict(_))),
        "{again}"
    );

    let finished = harness.run_until_finalized(&job.id, 50).await;
    assert_eq!(finished.status, JobStatus::Cancelled);
    assert_eq!(finished.counters.documents_succeeded, 10);
    assert_eq!(finished.counters.documents_skipped, 90);
    let results = harness.results(&job.id).await;
    assert_eq!(results["status"], "cancelled");
    assert_eq!(results["summary"]["completed_documents"], 10);
    assert_eq!(results["summary"]["skipped_documents"], 90);
    let skipped = &results["documents"][99];
    assert_eq!(skipped["status"], "skipped");
    assert_eq!(skipped["error"]["message"], "job cancelled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_are_retried_at_once_and_counted_once() {
    let flaky = Flaky::new(FailureCategory::Transient, 1);
    let harness = Harness::new(Some(flaky.clone()));
    let documents = vec![
        ("flaky-1".to_owned(), "a".to_owned()),
        ("steady".to_owned(), "b".to_owned()),
        ("flaky-2".to_owned(), "c".to_owned()),
    ];
    let job = harness
        .submit("hostile", &refs(&documents), JobOptions::default())
        .await;
    let finished = harness.run_until_finalized(&job.id, 20).await;
    assert_eq!(finished.status, JobStatus::Completed);
    assert_eq!(finished.counters.documents_succeeded, 3);
    assert_eq!(finished.counters.items_failed, 0);
    assert_eq!(flaky.calls("flaky-1"), 2);
    assert_eq!(flaky.calls("flaky-2"), 2);
    assert_eq!(flaky.calls("steady"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_items_wait_out_their_backoff() {
    let flaky = Flaky::new(FailureCategory::RateLimit, 1);
    let harness = Harness::new(Some(flaky.clone()));
    let documents = vec![("flaky-1".to_owned(), "a".to_owned())];
    let job = harness
        .submit("hostile", &refs(&documents), JobOptions::default())
        .await;
    let deliveries = harness
        .backend
        .queue
        .receive(NORMAL, 10, Duration::from_secs(30))
        .await
        .unwrap();
    let dispositions = harness.pipeline.process(&deliveries, None).await;
    let Disposition::RetryAfter(delay) = dispositions[0] else {
        panic!("expected a backoff, got {dispositions:?}");
    };
    assert!(
        delay <= Duration::from_secs(2),
        "first backoff at most the 2 s base: {delay:?}"
    );
    harness
        .pipeline
        .settle(NORMAL, &deliveries, &dispositions)
        .await
        .unwrap();
    harness.clock.advance(delay + Duration::from_millis(1));
    let finished = harness.run_until_finalized(&job.id, 20).await;
    assert_eq!(finished.counters.documents_succeeded, 1);
    assert_eq!(flaky.calls("flaky-1"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retryable_failures_are_recorded_after_max_receives() {
    let flaky = Flaky::new(FailureCategory::Transient, u32::MAX);
    let harness = Harness::new(Some(flaky.clone()));
    let documents = vec![
        ("flaky-forever".to_owned(), "a".to_owned()),
        ("fine".to_owned(), "b".to_owned()),
    ];
    let job = harness
        .submit("hostile", &refs(&documents), JobOptions::default())
        .await;
    let finished = harness.run_until_finalized(&job.id, 30).await;
    assert_eq!(finished.status, JobStatus::Completed);
    assert_eq!(finished.counters.documents_failed, 1);
    assert_eq!(finished.counters.documents_succeeded, 1);
    assert_eq!(flaky.calls("flaky-forever"), 5, "max_receives deliveries");
    let results = harness.results(&job.id).await;
    assert_eq!(results["documents"][0]["error"]["category"], "TRANSIENT");
    assert_eq!(
        results["documents"][0]["error"]["message"],
        "backend said: try again later"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_of_a_crashing_processor_are_dead_lettered_and_recorded_failed() {
    let harness = Harness::new(None);
    let documents = ok_documents("doc", 3);
    let job = harness
        .submit("hostile", &refs(&documents), JobOptions::default())
        .await;
    // A processor that crashes before recording anything: it receives the
    // batch and never settles it, six times over.
    for attempt in 1..=6 {
        let deliveries = harness
            .backend
            .queue
            .receive(NORMAL, 10, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(deliveries.len(), 3, "attempt {attempt}");
        assert!(deliveries.iter().all(|d| d.receive_count == attempt));
        harness.clock.advance(Duration::from_secs(31));
    }
    // The seventh receive finds them past the threshold: dead-lettered.
    assert!(
        harness
            .backend
            .queue
            .receive(NORMAL, 10, Duration::from_secs(30))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(harness.backend.queue.depth(NORMAL).await.unwrap().dead, 3);
    assert_eq!(
        harness.pipeline.drain_dead_letters(NORMAL).await.unwrap(),
        3
    );
    let finished = harness.run_until_finalized(&job.id, 10).await;
    assert_eq!(finished.status, JobStatus::Failed);
    assert_eq!(finished.error.as_deref(), Some("all 3 documents failed"));
    assert_eq!(finished.counters.documents_failed, 3);
    let results = harness.results(&job.id).await;
    assert_eq!(results["summary"]["failures_by_category"]["PERMANENT"], 3);
    assert_eq!(
        results["documents"][0]["error"]["message"],
        "dead-lettered: the processor never recorded an outcome for this item"
    );
    assert_eq!(harness.backend.queue.depth(NORMAL).await.unwrap().dead, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn high_priority_items_are_served_first() {
    let harness = Harness::new(None);
    let normal = harness
        .submit(
            "hostile",
            &refs(&ok_documents("normal", 20)),
            JobOptions::default(),
        )
        .await;
    let high = harness
        .submit(
            "hostile",
            &refs(&ok_documents("high", 5)),
            JobOptions {
                priority: Priority::High,
                ..JobOptions::default()
            },
        )
        .await;
    assert_eq!(harness.pipeline.work_once().await.unwrap(), 5);
    let store = &harness.pipeline;
    assert_eq!(store.job(&high.id).await.unwrap().counters.items_done(), 5);
    assert_eq!(
        store.job(&normal.id).await.unwrap().counters.items_done(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_documents_merge_in_page_order_like_the_whole_text() {
    let harness = Harness::new(None);
    let mut pages: Vec<String> = (1..=60)
        .map(|n| format!("Page {n}: general notes."))
        .collect();
    pages[0] = "Diagnóstico: la situación actual del municipio.".into();
    pages[30] = "Metas con indicadores y línea base 2024.".into();
    pages[59] = "Presupuesto de $4.000 millones. Seguimiento trimestral.".into();
    let body = DocumentBody::Pages(pages.clone());
    let options = JobOptions {
        chunking: Chunking {
            pages: Some(25),
            text_kib: None,
        },
        ..JobOptions::default()
    };
    let document = IntakeDocument::Accepted(DocumentSpec {
        id: "long-plan".into(),
        title: "Long plan".into(),
        body: body.clone(),
        metadata: serde_json::Value::Null,
    });
    let job = harness
        .submit_intake("decalogo", vec![document], options)
        .await;
    assert_eq!(job.counters.items_total, 3);
    harness.run_until_finalized(&job.id, 20).await;
    let results = harness.results(&job.id).await;
    let merged = &results["documents"][0];
    assert_eq!(merged["chunks"], 3);

    let whole_text = docket_core::chunking::full_text(&body);
    let metadata = serde_json::Value::Null;
    let whole = harness
        .host
        .evaluate_document(
            &harness.evaluator("decalogo"),
            &docket_core::ports::DocumentView {
                id: "long-plan",
                title: "Long plan",
                content: &whole_text,
                metadata: &metadata,
                chunk: &docket_core::model::ChunkInfo::WHOLE,
            },
            &serde_json::json!({}),
        )
        .unwrap()
        .evaluation;
    for score in &whole.scores {
        assert_eq!(
            merged["scores"][&score.name]["total_score"], score.value,
            "{}",
            score.name
        );
    }
    // Evidence spans point into the whole document's text.
    for finding in merged["findings"].as_array().unwrap() {
        if let Some(span) = finding.get("evidence") {
            let (start, end) = (
                span["start"].as_u64().unwrap() as usize,
                span["end"].as_u64().unwrap() as usize,
            );
            let quoted = &whole_text[start..end];
            assert!(
                span["snippet"].as_str().unwrap().contains(quoted),
                "{quoted:?} not in {}",
                span["snippet"]
            );
        }
    }
    let codes: Vec<&str> = merged["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"evidence:P05"), "{codes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_delivered_after_finalization_changes_nothing() {
    let harness = Harness::new(None);
    let documents = ok_documents("doc", 3);
    let job = harness
        .submit("hostile", &refs(&documents), JobOptions::default())
        .await;
    // Keep a copy of one work message as sent.
    let deliveries = harness
        .backend
        .queue
        .receive(NORMAL, 1, Duration::from_secs(30))
        .await
        .unwrap();
    let copy = deliveries[0].body.clone();
    harness
        .backend
        .queue
        .retry_after(NORMAL, &deliveries[0].receipt, Duration::ZERO)
        .await
        .unwrap();
    let finished = harness.run_until_finalized(&job.id, 20).await;
    let results_before = harness.results(&job.id).await;

    harness
        .backend
        .queue
        .send(NORMAL, vec![OutgoingMessage::new(copy)])
        .await
        .unwrap();
    let redelivered = harness
        .backend
        .queue
        .receive(NORMAL, 10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(redelivered.len(), 1);
    assert_eq!(
        harness.pipeline.process(&redelivered, None).await,
        [Disposition::Done]
    );
    let after = harness.pipeline.job(&job.id).await.unwrap();
    assert_eq!(after.counters, finished.counters);
    assert_eq!(after.finished_at, finished.finished_at);
    // Any finalize message it caused finds the job finalized.
    harness.pipeline.finalize_once().await.unwrap();
    assert_eq!(harness.results(&job.id).await, results_before);
}

/// A queue whose sends to the work queues fail, as when SQS is unreachable.
fn unreachable(queue: Arc<dyn WorkQueue>) -> SendHook {
    SendHook::new(queue, |name| {
        matches!(name, QueueName::Work(_)).then(|| {
            Err(QueueError::Backend(BackendError::new(
                FailureCategory::Transient,
                "connection refused",
            )))
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_work_cannot_be_queued_fails_instead_of_waiting_forever() {
    let mut harness = Harness::new(None);
    let queue = harness.backend.queue.clone();
    harness.change_ports(|ports| ports.queue = Arc::new(unreachable(queue)));
    let error = harness
        .pipeline
        .submit(docket_core::Submission {
            job_id: Some(docket_core::JobId::parse("job_unqueued").unwrap()),
            tenant: docket_core::TenantId::local(),
            evaluator: harness.evaluator("hostile"),
            config: serde_json::json!({}),
            options: JobOptions::default(),
            documents: vec![IntakeDocument::Accepted(DocumentSpec {
                id: "a".into(),
                title: "a".into(),
                body: DocumentBody::Text("text".into()),
                metadata: serde_json::Value::Null,
            })],
        })
        .await
        .unwrap_err();
    assert_eq!(error.category(), FailureCategory::Transient);
    let job = harness
        .pipeline
        .job(&docket_core::JobId::parse("job_unqueued").unwrap())
        .await
        .unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert!(job.finished_at.is_some());
    assert_eq!(
        job.error.as_deref(),
        Some("work items could not be queued: queue: TRANSIENT: connection refused")
    );
}

/// A queue whose sends to `failing` fail for want of room, while `full`
/// is set (a full disk).
fn full_disk(
    queue: Arc<dyn WorkQueue>,
    full: Arc<std::sync::atomic::AtomicBool>,
    failing: fn(QueueName) -> bool,
) -> SendHook {
    SendHook::new(queue, move |name| {
        (failing(name) && full.load(std::sync::atomic::Ordering::SeqCst)).then(|| {
            Err(QueueError::Backend(BackendError::new(
                FailureCategory::Resource,
                "sqlite: database or disk is full",
            )))
        })
    })
}

fn one_document(id: &str) -> IntakeDocument {
    IntakeDocument::Accepted(DocumentSpec {
        id: id.into(),
        title: id.into(),
        body: DocumentBody::Text("text".into()),
        metadata: serde_json::Value::Null,
    })
}

/// An intake whose submitter reads it again (`docket run`) leaves its job
/// open, not failed, when a window cannot be enqueued; read again once
/// there is room, the job completes with every document once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intake_left_open_on_error_keeps_its_job_for_the_next_reading() {
    let mut harness = Harness::new(None);
    let full = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let queue = harness.backend.queue.clone();
    let hook = full_disk(queue, Arc::clone(&full), |name| {
        matches!(name, QueueName::Work(_))
    });
    harness.change_ports(|ports| ports.queue = Arc::new(hook));
    let submission = docket_core::Submission {
        job_id: Some(docket_core::JobId::parse("job_full_disk").unwrap()),
        tenant: docket_core::TenantId::local(),
        evaluator: harness.evaluator("hostile"),
        config: serde_json::json!({}),
        options: JobOptions::default(),
        documents: Vec::new(),
    };
    let mut intake = harness
        .pipeline
        .open_intake(submission)
        .await
        .unwrap()
        .left_open_on_error();
    for id in ["a", "b", "c"] {
        intake.add(one_document(id)).await.unwrap();
    }
    let error = intake.close().await.unwrap_err();
    assert_eq!(error.category(), FailureCategory::Resource);
    let id = docket_core::JobId::parse("job_full_disk").unwrap();
    let left = harness.pipeline.job(&id).await.unwrap();
    assert_eq!(left.status, JobStatus::Queued);
    assert!(left.finished_at.is_none() && left.error.is_none());
    assert!(left.counters.intake_open, "{:?}", left.counters);

    full.store(false, std::sync::atomic::Ordering::SeqCst);
    let mut again = docket_core::pipeline::OpenIntake::reopen(&harness.pipeline, left);
    for id in ["a", "b", "c"] {
        again.add(one_document(id)).await.unwrap();
    }
    again.close().await.unwrap();
    let done = harness.run_until_finalized(&id, 50).await;
    assert_eq!(done.status, JobStatus::Completed);
    assert_eq!(done.counters.documents_total, 3);
    assert_eq!(done.counters.documents_succeeded, 3);
}

/// A worker round's port error that is left to be retried is counted and
/// kept: `docket run` stops on it rather than wait for a disk to empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_s_retried_port_error_is_counted_and_kept() {
    let mut harness = Harness::new(None);
    let full = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let queue = harness.backend.queue.clone();
    let hook = full_disk(queue, Arc::clone(&full), |name| name == QueueName::Finalize);
    harness.change_ports(|ports| ports.queue = Arc::new(hook));
    let job = harness
        .submit("hostile", &[("a", "text")], JobOptions::default())
        .await;
    assert_eq!(harness.pipeline.last_backend_error(), None);
    full.store(true, std::sync::atomic::Ordering::SeqCst);
    harness.pipeline.work_once().await.unwrap();
    let kept = harness.pipeline.last_backend_error().unwrap();
    assert_eq!(kept.category, FailureCategory::Resource);
    assert!(
        kept.message.ends_with("sqlite: database or disk is full"),
        "{kept}"
    );
    let counted = harness.pipeline.metrics().backend_errors;
    assert_eq!(
        counted.iter().map(|(_, n)| n).sum::<u64>(),
        1,
        "{counted:?}"
    );
    assert!(counted.contains(&(FailureCategory::Resource, 1)));
    // The outcome is recorded; its redelivery sends the finalize message.
    full.store(false, std::sync::atomic::Ordering::SeqCst);
    let done = harness.run_until_finalized(&job.id, 50).await;
    assert_eq!(done.counters.documents_succeeded, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovery_holds_exactly_the_failed_documents_with_their_text() {
    let harness = Harness::new(None);
    // A paged document split in three items whose middle item fails: the
    // whole document is failed and comes back page for page.
    let mut pages: Vec<String> = (1..=7).map(|n| format!("page {n} text")).collect();
    pages[3] = "hostile:invalid on page 4".into();
    let paged = DocumentSpec {
        id: "paged".into(),
        title: "Paged".into(),
        body: DocumentBody::Pages(pages),
        metadata: serde_json::json!({"region": "norte"}),
    };
    let text = DocumentSpec {
        id: "text".into(),
        title: "Text".into(),
        body: DocumentBody::Text("hostile:panic now".into()),
        metadata: serde_json::Value::Null,
    };
    let good = DocumentSpec {
        id: "good".into(),
        title: "Good".into(),
        body: DocumentBody::Text("a fine document".into()),
        metadata: serde_json::Value::Null,
    };
    let rejected = docket_core::model::RejectedDocument {
        id: "empty".into(),
        title: "empty.txt".into(),
        failure: Failure::new(FailureCategory::Data, "the file is empty"),
    };
    let options = JobOptions {
        chunking: Chunking {
            pages: Some(3),
            text_kib: None,
        },
        tolerated_failure_percent: 100.0,
        ..JobOptions::default()
    };
    let job = harness
        .submit_intake(
            "hostile",
            vec![
                IntakeDocument::Accepted(good),
                IntakeDocument::Accepted(paged.clone()),
                IntakeDocument::Rejected(rejected),
                IntakeDocument::Accepted(text.clone()),
            ],
            options,
        )
        .await;
    assert_eq!(job.counters.items_total, 6);
    let unfinished = harness.pipeline.recovery(&job).await.unwrap_err();
    assert!(matches!(
        unfinished,
        PipelineError::Store(StoreError::Conflict(_))
    ));

    let finished = harness.run_until_finalized(&job.id, 20).await;
    assert_eq!(finished.counters.documents_failed, 3);
    let recovery = harness.pipeline.recovery(&finished).await.unwrap();
    assert_eq!(
        recovery.documents,
        vec![
            IntakeDocument::Accepted(paged),
            IntakeDocument::Accepted(text)
        ]
    );
    assert_eq!(
        recovery.not_retried,
        vec![("empty".to_owned(), "DATA: the file is empty".to_owned())]
    );
}
