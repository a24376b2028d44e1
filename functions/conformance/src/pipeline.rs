//! The core's pipeline over the subject's ports with a fake evaluator:
//! exactly-once counting and finalization under duplicate deliveries.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use chrono::Utc;
use docket_core::model::{EvaluatorRef, JobOptions, JobStatus, TenantId};
use docket_core::pipeline::{
    FinalizeMessage, FinalizeOutcome, IntakeDocument, Pipeline, PipelineSettings, PlainText, Ports,
    Submission,
};
use docket_core::ports::{
    Clock, EvaluationReport, EvaluationRequest, Evaluators, QueueName, StoreError, SystemClock,
    Usage, WorkQueue,
};
use docket_core::{DocumentBody, DocumentSpec, Evaluation, Failure, Score};

use crate::{NORMAL, Subject};

/// A deterministic evaluator for pipeline checks: scores a document by its
/// length and counts calls.
#[derive(Default)]
pub struct FakeEvaluators {
    /// Evaluations performed.
    pub calls: AtomicU32,
}

#[async_trait::async_trait]
impl Evaluators for FakeEvaluators {
    async fn resolve(&self, spec: &str) -> Result<EvaluatorRef, Failure> {
        Ok(EvaluatorRef {
            name: spec.to_owned(),
            version: "1.0.0".into(),
            digest: "sha256:fake".into(),
        })
    }

    async fn evaluate(
        &self,
        requests: Vec<EvaluationRequest>,
        _deadline: Option<std::time::Instant>,
    ) -> Vec<Result<EvaluationReport, Failure>> {
        self.calls
            .fetch_add(requests.len() as u32, Ordering::Relaxed);
        requests
            .iter()
            .map(|request| {
                Ok(EvaluationReport {
                    evaluation: Evaluation {
                        scores: vec![Score {
                            name: "length".into(),
                            value: request.content.len() as f64,
                            max: 1000.0,
                        }],
                        ..Evaluation::default()
                    },
                    usage: Usage::default(),
                })
            })
            .collect()
    }

    async fn merge_chunks(
        &self,
        _: &EvaluatorRef,
        _: Vec<Evaluation>,
    ) -> Result<Option<Evaluation>, Failure> {
        Ok(None)
    }

    async fn summarize(
        &self,
        _: &EvaluatorRef,
        _: Vec<Evaluation>,
    ) -> Result<Option<serde_json::Value>, Failure> {
        Ok(None)
    }
}

/// A pipeline over the subject's ports with the fake evaluator.
pub fn fake_pipeline(subject: &Subject, evaluators: Arc<FakeEvaluators>) -> Pipeline {
    let ports = Ports {
        queue: subject.queue.clone(),
        blobs: subject.blobs.clone(),
        jobs: subject.store.clone(),
        keys: subject.store.clone(),
        rate_limits: subject.store.clone(),
        secrets: subject.store.clone(),
        evaluators,
        webhooks: Arc::new(docket_core::ports::NoWebhooks),
        reader: Arc::new(PlainText),
        clock: Arc::new(SystemClock) as Arc<dyn Clock>,
    };
    Pipeline::new(
        ports,
        PipelineSettings {
            visibility: Duration::from_secs(30),
            ..PipelineSettings::default()
        },
    )
}

/// Submits a job of the fake evaluator over `documents` (id, title, text).
async fn submit_texts(
    pipeline: &Pipeline,
    evaluators: &FakeEvaluators,
    documents: impl Iterator<Item = (String, String, String)>,
) -> docket_core::model::Job {
    let documents = documents
        .map(|(id, title, text)| {
            IntakeDocument::Accepted(DocumentSpec {
                id,
                title,
                body: DocumentBody::Text(text),
                metadata: serde_json::Value::Null,
            })
        })
        .collect();
    pipeline
        .submit(Submission {
            job_id: None,
            tenant: TenantId::local(),
            evaluator: evaluators.resolve("fake").await.expect("resolve"),
            config: serde_json::json!({}),
            options: JobOptions::default(),
            documents,
        })
        .await
        .expect("submit")
}

/// Receives finalize messages (as the queue delivers them), finalizes their
/// jobs and counts the finalizations this round won.
async fn finalize_round(
    queue: &dyn WorkQueue,
    pipeline: &Pipeline,
    finalized: &AtomicU32,
) -> usize {
    let deliveries = queue
        .receive(QueueName::Finalize, 10, Duration::from_secs(30))
        .await
        .expect("receive finalize");
    for delivery in &deliveries {
        let message: FinalizeMessage =
            serde_json::from_str(&delivery.body).expect("finalize message");
        match pipeline.finalize(&message.job_id).await.expect("finalize") {
            FinalizeOutcome::Finalized(_) => {
                finalized.fetch_add(1, Ordering::Relaxed);
            }
            FinalizeOutcome::AlreadyFinalized => {}
            FinalizeOutcome::NotReady { pending } => {
                panic!("finalize sent with {pending} items pending")
            }
            FinalizeOutcome::Checkpointed { documents } => {
                panic!("a finalize without a deadline checkpointed at {documents} documents")
            }
        }
    }
    let receipts: Vec<_> = deliveries.iter().map(|d| d.receipt.clone()).collect();
    if !receipts.is_empty() {
        queue
            .ack(QueueName::Finalize, &receipts)
            .await
            .expect("ack");
    }
    deliveries.len()
}

/// 1,000 items processed by 8 concurrent workers, every delivery processed
/// twice and a third of them a third time (deliveries duplicated and
/// redelivered before being acked), finish with exact counts and exactly
/// one finalization.
pub async fn pipeline_counts_exactly_once_under_duplicate_deliveries(subject: &Subject) {
    const DOCUMENTS: usize = 1000;
    let evaluators = Arc::new(FakeEvaluators::default());
    let pipeline = fake_pipeline(subject, evaluators.clone());
    let documents = (0..DOCUMENTS).map(|n| {
        (
            format!("doc-{n}"),
            format!("Document {n}"),
            "x".repeat(n % 50 + 1),
        )
    });
    let job = submit_texts(&pipeline, &evaluators, documents).await;
    let finalized = Arc::new(AtomicU32::new(0));
    let workers: Vec<_> = (0..8)
        .map(|worker| {
            let pipeline = pipeline.clone();
            let queue = subject.queue.clone();
            let finalized = finalized.clone();
            tokio::spawn(async move {
                let mut idle = 0;
                let mut round = 0u64;
                while idle < 30 {
                    round += 1;
                    let deliveries = queue
                        .receive(NORMAL, 10, Duration::from_secs(30))
                        .await
                        .expect("receive");
                    if deliveries.is_empty() {
                        let handled = finalize_round(queue.as_ref(), &pipeline, &finalized).await;
                        idle = if handled == 0 { idle + 1 } else { 0 };
                        // A back-off between empty polls, not a wait for
                        // time to pass: nothing here waits for a visibility
                        // timeout or a delay. It spreads a worker's 30 empty
                        // polls over time enough for the batches other
                        // workers hold to be settled (and a remote queue's
                        // poll can come back empty while messages wait)
                        // before the worker gives up.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                    idle = 0;
                    // The duplicate deliveries: process the batch, process it
                    // again (another processor got the same messages), and
                    // for some batches a third time before settling.
                    let copies = if (round + worker).is_multiple_of(3) {
                        3
                    } else {
                        2
                    };
                    let mut dispositions = Vec::new();
                    for _ in 0..copies {
                        dispositions = pipeline.process(&deliveries, None).await;
                    }
                    pipeline
                        .settle(NORMAL, &deliveries, &dispositions)
                        .await
                        .expect("settle");
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("worker");
    }
    let finished = subject.store.job(&job.id).await.expect("read");
    assert_eq!(
        finished.status,
        JobStatus::Completed,
        "counters: {:?}",
        finished.counters
    );
    assert!(finished.finished_at.is_some());
    let c = finished.counters;
    assert_eq!(c.items_total as usize, DOCUMENTS);
    assert_eq!(c.items_succeeded as usize, DOCUMENTS);
    assert_eq!(c.items_failed + c.items_skipped, 0);
    assert_eq!(c.documents_succeeded as usize, DOCUMENTS);
    assert!(evaluators.calls.load(Ordering::Relaxed) as usize >= 2 * DOCUMENTS);
    assert_eq!(finalized.load(Ordering::Relaxed), 1, "finalizations");
    // Exactly one finalization: the job finished once, and finalizing again
    // is refused.
    assert_eq!(
        pipeline.finalize(&job.id).await.expect("finalize"),
        FinalizeOutcome::AlreadyFinalized
    );
    let error = subject
        .store
        .finish_job(&job.id, JobStatus::Completed, None, Utc::now())
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)));
    let results = pipeline.results(&job.id).await.expect("results written");
    let results = serde_json::to_value(results).expect("json");
    assert_eq!(results["document_count"], DOCUMENTS);
    assert_eq!(
        results["documents"].as_array().map(Vec::len),
        Some(DOCUMENTS)
    );
    assert_eq!(results["summary"]["completed_documents"], DOCUMENTS);
    // Nothing is left in the work or finalize queues.
    for queue in [NORMAL, QueueName::Finalize] {
        let depth = subject.queue.depth(queue).await.expect("depth");
        assert_eq!(
            depth.visible + depth.in_flight + depth.dead,
            0,
            "{queue:?}: {depth:?}"
        );
    }
}

/// One batch of deliveries mixing two jobs' items (one job cancelled), an
/// item of a job that does not exist and a malformed message: each live
/// item is evaluated on its own text (the jobs and the texts are read at
/// once, so the texts must still go to their items), the cancelled job's
/// are recorded skipped, the unknown job's dropped, the malformed one kept.
pub async fn pipeline_evaluates_a_mixed_batch_item_by_item(subject: &Subject) {
    let evaluators = Arc::new(FakeEvaluators::default());
    let pipeline = fake_pipeline(subject, evaluators.clone());
    let submit = |letter: char, lengths: &'static [usize]| {
        let documents = lengths.iter().map(move |&len| {
            (
                format!("{letter}-{len}"),
                String::new(),
                letter.to_string().repeat(len),
            )
        });
        submit_texts(&pipeline, &evaluators, documents)
    };
    let live = submit('a', &[11, 12, 13]).await;
    let cancelled = submit('b', &[101, 102]).await;
    let mut deliveries = Vec::new();
    for _ in 0..50 {
        let got = subject
            .queue
            .receive(NORMAL, 10, Duration::from_secs(30))
            .await
            .expect("receive");
        deliveries.extend(got);
        if deliveries.len() == 5 {
            break;
        }
    }
    assert_eq!(deliveries.len(), 5, "the two jobs' items");
    subject
        .store
        .transition(
            &cancelled.id,
            &JobStatus::sources_of(JobStatus::Cancelled),
            JobStatus::Cancelled,
        )
        .await
        .expect("cancel");
    let of = |job: &docket_core::model::JobId| {
        let mut items: Vec<_> = deliveries
            .iter()
            .filter(|d| d.body.contains(job.as_str()))
            .cloned()
            .collect();
        items.sort_by(|a, b| a.body.cmp(&b.body));
        items
    };
    let (a, b) = (of(&live.id), of(&cancelled.id));
    assert_eq!((a.len(), b.len()), (3, 2));
    let mut unknown = a[1].clone();
    let mut body: serde_json::Value = serde_json::from_str(&unknown.body).expect("work item");
    body["job_id"] = serde_json::json!(docket_core::model::JobId::generate().as_str());
    unknown.body = body.to_string();
    let mut malformed = a[0].clone();
    malformed.body = "{\"job_id\": ".into();
    let batch = [
        b[0].clone(),
        a[0].clone(),
        unknown,
        malformed,
        b[1].clone(),
        a[1].clone(),
        a[2].clone(),
    ];
    let dispositions = pipeline.process(&batch, None).await;
    use docket_core::pipeline::Disposition::{Done, Keep};
    assert_eq!(dispositions, [Done, Done, Done, Keep, Done, Done, Done]);
    let scores = |outcomes: Vec<docket_core::model::ItemOutcome>| {
        outcomes
            .into_iter()
            .map(|o| {
                let value = match o.result {
                    docket_core::model::ItemResult::Succeeded { evaluation, .. } => {
                        format!("{}", evaluation.scores[0].value)
                    }
                    other => format!("{other:?}"),
                };
                (o.document_id, value)
            })
            .collect::<Vec<_>>()
    };
    let recorded = |job| subject.store.outcomes_page(job, None, 10);
    assert_eq!(
        scores(recorded(&live.id).await.expect("outcomes")),
        [
            ("a-11".into(), "11".into()),
            ("a-12".into(), "12".into()),
            ("a-13".into(), "13".into())
        ]
    );
    let skipped = recorded(&cancelled.id).await.expect("outcomes");
    assert_eq!(skipped.len(), 2);
    for outcome in skipped {
        assert_eq!(
            outcome.result,
            docket_core::model::ItemResult::Skipped {
                reason: "job cancelled".into()
            }
        );
    }
    assert_eq!(evaluators.calls.load(Ordering::Relaxed), 3, "calls");
}
