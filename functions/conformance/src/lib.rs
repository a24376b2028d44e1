//! One conformance suite for docket's ports, run unchanged against every
//! adapter set (the embedded backend today, the AWS adapters on the
//! emulator). Each check is an `async fn(&Subject)` that panics on a
//! violation; [`conformance_tests!`] turns them into `#[tokio::test]`s for
//! an adapter's factory.
//!
//! The checks use real time (visibility timeouts of one second), because a
//! remote backend's clock cannot be controlled.

// A test-support crate: a check fails by panicking.
#![allow(clippy::unwrap_used)]

use std::any::Any;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use chrono::Utc;
use docket_core::model::{
    ChunkInfo, EvaluatorRef, ItemOutcome, ItemResult, Job, JobCounters, JobId, JobOptions,
    JobStatus, TenantId,
};
use docket_core::pipeline::{
    FinalizeMessage, FinalizeOutcome, IntakeDocument, Pipeline, PipelineSettings, PlainText, Ports,
    Submission,
};
use docket_core::ports::{
    ApiKeyStore, BlobError, BlobStore, Clock, EvaluationReport, EvaluationRequest, Evaluators,
    JobFilter, JobStore, OutgoingMessage, PluginRegistry, QueueError, QueueName, RateLimiter,
    StoreError, SystemClock, Usage, WebhookSecrets, WorkQueue,
};
use docket_core::{
    DocumentBody, DocumentSpec, Evaluation, Failure, FailureCategory, Priority, Score,
};

/// The adapters under test, fresh for each check (own queues, table,
/// bucket or state directory).
pub struct Subject {
    /// Queues.
    pub queue: Arc<dyn WorkQueue>,
    /// Blobs.
    pub blobs: Arc<dyn BlobStore>,
    /// Jobs, keys, rate buckets, secrets and the plugin registry.
    pub store: Arc<dyn Stores>,
    /// The queues' dead-letter threshold (receives).
    pub max_receives: u32,
    /// Keeps whatever backs the subject alive (a temp dir, a server).
    pub guard: Box<dyn Any + Send + Sync>,
}

/// The five store ports, as one adapter implements them.
pub trait Stores: JobStore + ApiKeyStore + RateLimiter + WebhookSecrets + PluginRegistry {}

impl<S> Stores for S where S: JobStore + ApiKeyStore + RateLimiter + WebhookSecrets + PluginRegistry {}

/// Generates one `#[tokio::test]` per check for `$factory`, an
/// `async fn() -> Subject`.
#[macro_export]
macro_rules! conformance_tests {
    ($factory:path) => {
        $crate::conformance_tests!(@each $factory;
            queue_send_receive_ack,
            queue_hides_received_messages_until_visibility_expires,
            queue_retry_after_sets_visibility,
            queue_dead_letters_after_max_receives,
            queue_sends_large_batches,
            queue_refuses_oversized_messages,
            queue_keeps_queues_apart,
            queue_reports_depth,
            blob_put_get_overwrite,
            blob_ranges,
            blob_missing_and_invalid_keys,
            blob_list_by_prefix,
            store_create_read_conflict,
            store_counts_a_sequentially_duplicated_outcome_once,
            store_counts_a_concurrently_duplicated_outcome_once,
            store_signals_completion_exactly_once,
            store_counts_documents_at_their_last_chunk,
            store_transitions_follow_the_state_machine,
            store_finish_has_exactly_one_winner,
            store_halts_once,
            store_lists_by_tenant_newest_first_with_cursor,
            store_round_trips_outcomes,
            store_keeps_api_keys_by_hash,
            store_token_buckets_are_shared_and_atomic,
            store_stats_count_jobs_and_documents,
            store_keeps_webhook_state_and_one_secret_per_tenant,
            store_registers_each_plugin_version_once,
            pipeline_counts_exactly_once_under_duplicate_deliveries
        );
    };
    (@each $factory:path; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $check() {
                let subject = $factory().await;
                $crate::$check(&subject).await;
            }
        )*
    };
}

const VISIBILITY: Duration = Duration::from_secs(1);
const NORMAL: QueueName = QueueName::Work(Priority::Normal);

async fn receive_all(
    subject: &Subject,
    queue: QueueName,
    visibility: Duration,
) -> Vec<docket_core::ports::Delivery> {
    let mut all = Vec::new();
    for _ in 0..20 {
        let batch = subject
            .queue
            .receive(queue, 10, visibility)
            .await
            .expect("receive");
        if batch.is_empty() && !all.is_empty() {
            break;
        }
        all.extend(batch);
    }
    all
}

fn messages(bodies: &[&str]) -> Vec<OutgoingMessage> {
    bodies.iter().map(|b| OutgoingMessage::new(*b)).collect()
}

/// Sent messages are received with their bodies and a receive count of 1;
/// acked ones are gone.
pub async fn queue_send_receive_ack(subject: &Subject) {
    subject
        .queue
        .send(NORMAL, messages(&["a", "b", "c"]))
        .await
        .expect("send");
    let got = receive_all(subject, NORMAL, Duration::from_secs(30)).await;
    let bodies: BTreeSet<_> = got.iter().map(|d| d.body.as_str()).collect();
    assert_eq!(bodies, BTreeSet::from(["a", "b", "c"]));
    assert!(got.iter().all(|d| d.receive_count == 1));
    let receipts: Vec<_> = got.iter().map(|d| d.receipt.clone()).collect();
    subject.queue.ack(NORMAL, &receipts).await.expect("ack");
    let depth = subject.queue.depth(NORMAL).await.expect("depth");
    assert_eq!(depth.visible + depth.in_flight, 0, "{depth:?}");
}

/// A received message is invisible until its visibility expires, then comes
/// back with a higher receive count; a stale receipt does not delete it.
pub async fn queue_hides_received_messages_until_visibility_expires(subject: &Subject) {
    subject
        .queue
        .send(NORMAL, messages(&["m"]))
        .await
        .expect("send");
    let first = subject
        .queue
        .receive(NORMAL, 10, VISIBILITY)
        .await
        .expect("receive");
    assert_eq!(first.len(), 1);
    assert!(
        subject
            .queue
            .receive(NORMAL, 10, VISIBILITY)
            .await
            .expect("receive")
            .is_empty()
    );
    tokio::time::sleep(VISIBILITY + Duration::from_millis(600)).await;
    let second = receive_all(subject, NORMAL, Duration::from_secs(30)).await;
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].receive_count, 2);
    assert_eq!(second[0].message_id, first[0].message_id);
    subject
        .queue
        .ack(NORMAL, &[second[0].receipt.clone()])
        .await
        .expect("ack");
    let depth = subject.queue.depth(NORMAL).await.expect("depth");
    assert_eq!(depth.visible + depth.in_flight, 0, "{depth:?}");
}

/// `retry_after` with no delay makes the message visible again at once.
pub async fn queue_retry_after_sets_visibility(subject: &Subject) {
    subject
        .queue
        .send(NORMAL, messages(&["r"]))
        .await
        .expect("send");
    let first = subject
        .queue
        .receive(NORMAL, 1, Duration::from_secs(60))
        .await
        .expect("receive");
    assert_eq!(first.len(), 1);
    subject
        .queue
        .retry_after(NORMAL, &first[0].receipt, Duration::ZERO)
        .await
        .expect("retry");
    let again = receive_all(subject, NORMAL, Duration::from_secs(60)).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].receive_count, 2);
}

/// After `max_receives` receives the message moves to the dead-letter
/// companion, where it can be received and acked.
pub async fn queue_dead_letters_after_max_receives(subject: &Subject) {
    subject
        .queue
        .send(NORMAL, messages(&["poison"]))
        .await
        .expect("send");
    for n in 1..=subject.max_receives {
        let got = receive_all(subject, NORMAL, Duration::from_secs(60)).await;
        assert_eq!(got.len(), 1, "receive {n}");
        assert_eq!(got[0].receive_count, n);
        subject
            .queue
            .retry_after(NORMAL, &got[0].receipt, Duration::ZERO)
            .await
            .expect("retry");
    }
    let mut dead = Vec::new();
    for _ in 0..20 {
        assert!(
            subject
                .queue
                .receive(NORMAL, 10, Duration::from_secs(60))
                .await
                .expect("receive")
                .is_empty()
        );
        dead = subject
            .queue
            .receive_dead(NORMAL, 10, Duration::from_secs(60))
            .await
            .expect("receive dead");
        if !dead.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, "poison");
    subject
        .queue
        .ack_dead(NORMAL, &[dead[0].receipt.clone()])
        .await
        .expect("ack dead");
    assert_eq!(subject.queue.depth(NORMAL).await.expect("depth").dead, 0);
}

/// A send of more messages than one backend call takes is split for the
/// caller.
pub async fn queue_sends_large_batches(subject: &Subject) {
    let bodies: Vec<String> = (0..25).map(|n| format!("message-{n}")).collect();
    subject
        .queue
        .send(
            NORMAL,
            bodies
                .iter()
                .map(|b| OutgoingMessage::new(b.clone()))
                .collect(),
        )
        .await
        .expect("send");
    let got = receive_all(subject, NORMAL, Duration::from_secs(60)).await;
    let received: BTreeSet<_> = got.iter().map(|d| d.body.clone()).collect();
    assert_eq!(received, bodies.into_iter().collect());
}

/// A body over the limit is refused before anything is sent.
pub async fn queue_refuses_oversized_messages(subject: &Subject) {
    let large = "x".repeat(docket_core::ports::MAX_MESSAGE_BYTES + 1);
    let error = subject
        .queue
        .send(
            NORMAL,
            vec![OutgoingMessage::new("small"), OutgoingMessage::new(large)],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, QueueError::MessageTooLarge { .. }),
        "{error}"
    );
    assert!(
        subject
            .queue
            .receive(NORMAL, 10, VISIBILITY)
            .await
            .expect("receive")
            .is_empty()
    );
}

/// Each queue holds its own messages.
pub async fn queue_keeps_queues_apart(subject: &Subject) {
    subject
        .queue
        .send(QueueName::Finalize, messages(&["f"]))
        .await
        .expect("send");
    subject
        .queue
        .send(QueueName::Work(Priority::High), messages(&["h"]))
        .await
        .expect("send");
    assert!(
        subject
            .queue
            .receive(NORMAL, 10, VISIBILITY)
            .await
            .expect("receive")
            .is_empty()
    );
    let high = receive_all(subject, QueueName::Work(Priority::High), VISIBILITY).await;
    assert_eq!(high.len(), 1);
    assert_eq!(high[0].body, "h");
    let finalize = receive_all(subject, QueueName::Finalize, VISIBILITY).await;
    assert_eq!(finalize[0].body, "f");
}

/// Depth counts visible and in-flight messages.
pub async fn queue_reports_depth(subject: &Subject) {
    subject
        .queue
        .send(NORMAL, messages(&["1", "2", "3"]))
        .await
        .expect("send");
    let mut depth = subject.queue.depth(NORMAL).await.expect("depth");
    for _ in 0..20 {
        if depth.visible == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        depth = subject.queue.depth(NORMAL).await.expect("depth");
    }
    assert_eq!(depth.visible, 3, "{depth:?}");
    let got = subject
        .queue
        .receive(NORMAL, 1, Duration::from_secs(60))
        .await
        .expect("receive");
    assert_eq!(got.len(), 1);
    let depth = subject.queue.depth(NORMAL).await.expect("depth");
    assert_eq!((depth.visible, depth.in_flight), (2, 1), "{depth:?}");
}

/// Blobs read back as written; a put replaces.
pub async fn blob_put_get_overwrite(subject: &Subject) {
    subject
        .blobs
        .put("documents/j/pack-0", b"hello".to_vec())
        .await
        .expect("put");
    assert_eq!(
        subject.blobs.get("documents/j/pack-0").await.expect("get"),
        b"hello"
    );
    subject
        .blobs
        .put("documents/j/pack-0", b"bye".to_vec())
        .await
        .expect("put");
    assert_eq!(
        subject.blobs.get("documents/j/pack-0").await.expect("get"),
        b"bye"
    );
}

/// Ranged reads return exactly the range.
pub async fn blob_ranges(subject: &Subject) {
    subject
        .blobs
        .put("r/b", b"0123456789".to_vec())
        .await
        .expect("put");
    assert_eq!(
        subject.blobs.get_range("r/b", 3, 4).await.expect("range"),
        b"3456"
    );
    assert_eq!(
        subject.blobs.get_range("r/b", 0, 10).await.expect("range"),
        b"0123456789"
    );
    let error = subject.blobs.get_range("r/b", 8, 5).await.unwrap_err();
    assert!(matches!(error, BlobError::NotFound(_)), "{error}");
}

/// Missing blobs are `NotFound`; keys that climb out are refused.
pub async fn blob_missing_and_invalid_keys(subject: &Subject) {
    let error = subject.blobs.get("nope/never").await.unwrap_err();
    assert!(matches!(error, BlobError::NotFound(_)), "{error}");
    for key in ["../escape", "/abs", "a//b", ""] {
        let error = subject.blobs.put(key, vec![1]).await.unwrap_err();
        assert!(matches!(error, BlobError::InvalidKey(_)), "{key}: {error}");
    }
}

/// Listing returns the keys under a prefix, sorted.
pub async fn blob_list_by_prefix(subject: &Subject) {
    for key in [
        "results/j1/results.json",
        "results/j1/documents.jsonl",
        "results/j2/results.json",
        "other/x",
    ] {
        subject.blobs.put(key, vec![0]).await.expect("put");
    }
    assert_eq!(
        subject.blobs.list("results/j1/").await.expect("list"),
        ["results/j1/documents.jsonl", "results/j1/results.json"]
    );
    assert_eq!(subject.blobs.list("results/").await.expect("list").len(), 3);
    assert!(
        subject
            .blobs
            .list("missing/")
            .await
            .expect("list")
            .is_empty()
    );
}

/// A job with `items` single-chunk documents.
pub fn sample_job(tenant: &str, items: u32) -> Job {
    Job {
        id: JobId::generate(),
        tenant: TenantId::parse(tenant).expect("tenant"),
        status: JobStatus::Queued,
        evaluator: EvaluatorRef {
            name: "fake".into(),
            version: "1.0.0".into(),
            digest: "sha256:fake".into(),
        },
        config: serde_json::json!({}),
        options: JobOptions::default(),
        counters: JobCounters {
            documents_total: items,
            items_total: items,
            ..JobCounters::default()
        },
        created_at: Utc::now(),
        started_at: None,
        finished_at: None,
        error: None,
        webhook: None,
    }
}

fn outcome(item: u32, document: u32, chunk: (u32, u32), result: ItemResult) -> ItemOutcome {
    ItemOutcome {
        item,
        document,
        document_id: format!("doc-{document}"),
        title: format!("Doc {document}"),
        chunk: ChunkInfo {
            index: chunk.0,
            count: chunk.1,
            ..ChunkInfo::WHOLE
        },
        bytes: 10,
        body: None,
        metadata: serde_json::Value::Null,
        result,
    }
}

fn succeeded(value: f64) -> ItemResult {
    ItemResult::Succeeded {
        evaluation: Evaluation {
            scores: vec![Score {
                name: "fake".into(),
                value,
                max: 100.0,
            }],
            ..Evaluation::default()
        },
        seconds: 0.001,
    }
}

fn failed() -> ItemResult {
    ItemResult::Failed {
        failure: Failure::new(FailureCategory::Data, "unreadable"),
        seconds: 0.0,
    }
}

/// Jobs read back as created; a second create of the id conflicts; an
/// unknown id is `NotFound`.
pub async fn store_create_read_conflict(subject: &Subject) {
    let job = sample_job("acme", 2);
    subject.store.create_job(&job).await.expect("create");
    assert_eq!(subject.store.job(&job.id).await.expect("read"), job);
    let error = subject.store.create_job(&job).await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error}");
    let error = subject.store.job(&JobId::generate()).await.unwrap_err();
    assert!(matches!(error, StoreError::NotFound(_)), "{error}");
}

/// A published `name@version` is registered once: the same digest again
/// is a no-op, other bytes are refused (from concurrent publishers too);
/// versions list by name, then in semver order.
pub async fn store_registers_each_plugin_version_once(subject: &Subject) {
    use docket_core::plugin::Manifest;
    let store = &subject.store;
    let v1 = Manifest::for_component("wordy", "1.9.0", b"one");
    assert!(store.register_plugin(&v1).await.expect("register"));
    assert!(!store.register_plugin(&v1).await.expect("again"));
    let other_bytes = Manifest::for_component("wordy", "1.9.0", b"changed");
    let error = store.register_plugin(&other_bytes).await.unwrap_err();
    let StoreError::Conflict(message) = &error else {
        panic!("{error}")
    };
    assert!(
        message.contains(&v1.sha256) && message.contains(&other_bytes.sha256),
        "{message}"
    );
    // Concurrent publishers of one new version with different bytes: one wins.
    let racers: Vec<_> = (0..4)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                let manifest =
                    Manifest::for_component("wordy", "1.10.0", format!("racer {n}").as_bytes());
                store.register_plugin(&manifest).await
            })
        })
        .collect();
    let mut won = 0;
    for racer in racers {
        match racer.await.expect("racer") {
            Ok(true) => won += 1,
            Err(StoreError::Conflict(_)) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(won, 1);
    let python = Manifest::for_language("alpha", "0.1.0", "python", b"py");
    store.register_plugin(&python).await.expect("register");
    let all = store.plugins(None).await.expect("list");
    let listed: Vec<String> = all
        .iter()
        .map(|m| format!("{}@{}", m.name, m.version))
        .collect();
    assert_eq!(listed, ["alpha@0.1.0", "wordy@1.9.0", "wordy@1.10.0"]);
    assert_eq!(all[0], python, "the manifest round-trips");
    let wordy = store.plugins(Some("wordy")).await.expect("list");
    assert_eq!(wordy.len(), 2);
    assert!(store.plugins(Some("word")).await.expect("list").is_empty());
}

/// The same outcome recorded three times in sequence counts once.
pub async fn store_counts_a_sequentially_duplicated_outcome_once(subject: &Subject) {
    let job = sample_job("acme", 2);
    subject.store.create_job(&job).await.expect("create");
    let once = [outcome(0, 0, (0, 1), succeeded(50.0))];
    let first = subject
        .store
        .record_outcomes(&job.id, &once, Utc::now())
        .await
        .expect("record");
    assert_eq!(first.recorded, [0]);
    for _ in 0..2 {
        let again = subject
            .store
            .record_outcomes(&job.id, &once, Utc::now())
            .await
            .expect("record");
        assert!(again.recorded.is_empty());
        assert_eq!(again.duplicates, [0]);
        assert!(!again.completed_job);
    }
    // Twice within one call counts once too.
    let twice = [
        outcome(1, 1, (0, 1), failed()),
        outcome(1, 1, (0, 1), failed()),
    ];
    let receipt = subject
        .store
        .record_outcomes(&job.id, &twice, Utc::now())
        .await
        .expect("record");
    assert_eq!(receipt.recorded, [1]);
    assert_eq!(receipt.duplicates, [1]);
    let counters = subject.store.job(&job.id).await.expect("read").counters;
    assert_eq!((counters.items_succeeded, counters.items_failed), (1, 1));
    assert_eq!(
        (counters.documents_succeeded, counters.documents_failed),
        (1, 1)
    );
}

/// The same outcome recorded by three callers at once counts once.
pub async fn store_counts_a_concurrently_duplicated_outcome_once(subject: &Subject) {
    let job = sample_job("acme", 1);
    subject.store.create_job(&job).await.expect("create");
    let calls = (0..3).map(|_| {
        let store = subject.store.clone();
        let id = job.id.clone();
        tokio::spawn(async move {
            store
                .record_outcomes(&id, &[outcome(0, 0, (0, 1), succeeded(1.0))], Utc::now())
                .await
        })
    });
    let mut recorded = 0;
    let mut completed = 0;
    for call in calls {
        let receipt = call.await.expect("join").expect("record");
        recorded += receipt.recorded.len();
        completed += usize::from(receipt.completed_job);
    }
    assert_eq!((recorded, completed), (1, 1));
    let counters = subject.store.job(&job.id).await.expect("read").counters;
    assert_eq!(counters.items_succeeded, 1);
    assert_eq!(counters.documents_succeeded, 1);
}

/// Only the call that records the last pending item reports completion;
/// the first recorded item moves the job to processing.
pub async fn store_signals_completion_exactly_once(subject: &Subject) {
    let job = sample_job("acme", 3);
    subject.store.create_job(&job).await.expect("create");
    let now = Utc::now();
    let a = subject
        .store
        .record_outcomes(&job.id, &[outcome(0, 0, (0, 1), succeeded(1.0))], now)
        .await
        .expect("record");
    assert!(!a.completed_job);
    assert_eq!(a.status, JobStatus::Processing);
    let read = subject.store.job(&job.id).await.expect("read");
    assert_eq!(read.status, JobStatus::Processing);
    assert!(read.started_at.is_some());
    let b = subject
        .store
        .record_outcomes(
            &job.id,
            &[
                outcome(1, 1, (0, 1), succeeded(1.0)),
                outcome(2, 2, (0, 1), failed()),
            ],
            now,
        )
        .await
        .expect("record");
    assert!(b.completed_job);
    assert_eq!(b.counters.items_pending(), 0);
    let c = subject
        .store
        .record_outcomes(&job.id, &[outcome(2, 2, (0, 1), failed())], now)
        .await
        .expect("record");
    assert!(!c.completed_job);
}

/// A three-chunk document is counted when its last chunk is recorded,
/// failed if any chunk failed.
pub async fn store_counts_documents_at_their_last_chunk(subject: &Subject) {
    let mut job = sample_job("acme", 0);
    job.counters.documents_total = 2;
    job.counters.items_total = 5;
    subject.store.create_job(&job).await.expect("create");
    let now = Utc::now();
    let record = |outcomes: Vec<ItemOutcome>| {
        let store = subject.store.clone();
        let id = job.id.clone();
        async move {
            store
                .record_outcomes(&id, &outcomes, now)
                .await
                .expect("record")
        }
    };
    let r = record(vec![
        outcome(0, 0, (0, 3), succeeded(1.0)),
        outcome(2, 0, (2, 3), succeeded(1.0)),
    ])
    .await;
    assert_eq!(r.counters.documents_succeeded, 0);
    let r = record(vec![outcome(1, 0, (1, 3), succeeded(1.0))]).await;
    assert_eq!(r.counters.documents_succeeded, 1);
    let r = record(vec![outcome(3, 1, (0, 2), failed())]).await;
    assert_eq!(r.counters.documents_failed, 0);
    let r = record(vec![outcome(4, 1, (1, 2), succeeded(1.0))]).await;
    assert_eq!(r.counters.documents_failed, 1);
    assert_eq!(r.counters.documents_done(), 2);
    assert!(r.completed_job);
}

/// Status changes are conditional on the current status.
pub async fn store_transitions_follow_the_state_machine(subject: &Subject) {
    let job = sample_job("acme", 1);
    subject.store.create_job(&job).await.expect("create");
    let sources = JobStatus::sources_of(JobStatus::Cancelled);
    let cancelled = subject
        .store
        .transition(&job.id, &sources, JobStatus::Cancelled)
        .await
        .expect("cancel");
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    let error = subject
        .store
        .transition(&job.id, &sources, JobStatus::Cancelled)
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error}");
    let error = subject
        .store
        .transition(&JobId::generate(), &sources, JobStatus::Cancelled)
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::NotFound(_)), "{error}");
}

/// Of concurrent finalizations exactly one wins; the rest conflict.
pub async fn store_finish_has_exactly_one_winner(subject: &Subject) {
    let job = sample_job("acme", 1);
    subject.store.create_job(&job).await.expect("create");
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let store = subject.store.clone();
            let id = job.id.clone();
            tokio::spawn(async move {
                store
                    .finish_job(&id, JobStatus::Completed, None, Utc::now())
                    .await
            })
        })
        .collect();
    let mut wins = 0;
    for call in calls {
        match call.await.expect("join") {
            Ok(job) => {
                wins += 1;
                assert_eq!(job.status, JobStatus::Completed);
                assert!(job.finished_at.is_some());
            }
            Err(StoreError::Conflict(_)) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(wins, 1);
    // A finalized job takes no more transitions.
    let error = subject
        .store
        .transition(
            &job.id,
            &JobStatus::sources_of(JobStatus::Cancelled),
            JobStatus::Cancelled,
        )
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error}");
}

/// Monitoring figures follow jobs and their recorded documents (checked as
/// differences: the store may hold other jobs).
pub async fn store_stats_count_jobs_and_documents(subject: &Subject) {
    let count = |stats: &docket_core::ports::StoreStats, status: JobStatus| {
        stats
            .jobs
            .iter()
            .find(|(s, _)| *s == status)
            .map_or(0, |(_, n)| *n)
    };
    let before = subject.store.stats().await.expect("stats");
    assert_eq!(before.jobs.len(), JobStatus::ALL.len());
    let queued = sample_job("acme", 1);
    let running = sample_job("acme", 3);
    subject.store.create_job(&queued).await.expect("create");
    subject.store.create_job(&running).await.expect("create");
    let outcomes = [
        outcome(0, 0, (0, 1), succeeded(1.0)),
        outcome(1, 1, (0, 1), failed()),
    ];
    subject
        .store
        .record_outcomes(&running.id, &outcomes, Utc::now())
        .await
        .expect("record");
    let after = subject.store.stats().await.expect("stats");
    assert_eq!(
        count(&after, JobStatus::Queued),
        count(&before, JobStatus::Queued) + 1
    );
    assert_eq!(
        count(&after, JobStatus::Processing),
        count(&before, JobStatus::Processing) + 1
    );
    assert_eq!(after.documents_succeeded, before.documents_succeeded + 1);
    assert_eq!(after.documents_failed, before.documents_failed + 1);
}

/// A delivered callback stays delivered; a tenant's first secret wins.
pub async fn store_keeps_webhook_state_and_one_secret_per_tenant(subject: &Subject) {
    use docket_core::webhook::{WebhookDelivery, WebhookState};
    let job = sample_job("acme", 1);
    subject.store.create_job(&job).await.expect("create");
    let state = |state, attempts| WebhookDelivery {
        state,
        attempts,
        last_status: Some(200),
        last_error: None,
        updated_at: Utc::now(),
    };
    for delivery in [
        state(WebhookState::Pending, 1),
        state(WebhookState::Delivered, 2),
        state(WebhookState::Failed, 3),
    ] {
        subject
            .store
            .set_webhook(&job.id, &delivery)
            .await
            .expect("set");
    }
    let kept = subject
        .store
        .job(&job.id)
        .await
        .expect("read")
        .webhook
        .expect("webhook");
    assert_eq!((kept.state, kept.attempts), (WebhookState::Delivered, 2));
    let missing = subject
        .store
        .set_webhook(&JobId::generate(), &state(WebhookState::Pending, 0))
        .await
        .unwrap_err();
    assert!(matches!(missing, StoreError::NotFound(_)), "{missing}");

    let tenant = TenantId::parse(&format!("t-{}", uuid::Uuid::new_v4().simple())).unwrap();
    let first = subject
        .store
        .webhook_secret(&tenant, "whsec_Zmlyc3Q=")
        .await
        .expect("secret");
    let second = subject
        .store
        .webhook_secret(&tenant, "whsec_c2Vjb25k")
        .await
        .expect("secret");
    assert_eq!(
        (first.as_str(), second.as_str()),
        ("whsec_Zmlyc3Q=", "whsec_Zmlyc3Q=")
    );
    let other = TenantId::parse(&format!("t-{}", uuid::Uuid::new_v4().simple())).unwrap();
    assert_eq!(
        subject
            .store
            .webhook_secret(&other, "whsec_b3RoZXI=")
            .await
            .expect("secret"),
        "whsec_b3RoZXI="
    );
}

/// The failing-fast reason is set once.
pub async fn store_halts_once(subject: &Subject) {
    let job = sample_job("acme", 1);
    subject.store.create_job(&job).await.expect("create");
    assert!(
        subject
            .store
            .halt_job(&job.id, "too many failures")
            .await
            .expect("halt")
    );
    assert!(
        !subject
            .store
            .halt_job(&job.id, "again")
            .await
            .expect("halt")
    );
    assert_eq!(
        subject
            .store
            .job(&job.id)
            .await
            .expect("read")
            .error
            .as_deref(),
        Some("too many failures")
    );
}

/// Listing shows only the tenant's jobs, newest first, filtered, in pages.
pub async fn store_lists_by_tenant_newest_first_with_cursor(subject: &Subject) {
    let tenant = format!(
        "tenant-{}",
        JobId::generate().as_str().trim_start_matches("job_")
    );
    let mut ids = Vec::new();
    for _ in 0..5 {
        let job = sample_job(&tenant, 1);
        subject.store.create_job(&job).await.expect("create");
        ids.push(job.id);
    }
    subject
        .store
        .create_job(&sample_job("someone-else", 1))
        .await
        .expect("create");
    subject
        .store
        .transition(&ids[1], &[JobStatus::Queued], JobStatus::Cancelled)
        .await
        .expect("cancel");
    let tenant = TenantId::parse(&tenant).expect("tenant");
    let page = |before: Option<JobId>, status: Option<JobStatus>| {
        let store = subject.store.clone();
        let tenant = tenant.clone();
        async move {
            store
                .list_jobs(
                    &tenant,
                    &JobFilter {
                        status,
                        since: None,
                        before,
                        limit: 2,
                    },
                )
                .await
                .expect("list")
                .into_iter()
                .map(|j| j.id)
                .collect::<Vec<_>>()
        }
    };
    let first = page(None, None).await;
    assert_eq!(first, [ids[4].clone(), ids[3].clone()]);
    let second = page(first.last().cloned(), None).await;
    assert_eq!(second, [ids[2].clone(), ids[1].clone()]);
    let third = page(second.last().cloned(), None).await;
    assert_eq!(third, [ids[0].clone()]);
    assert_eq!(
        page(None, Some(JobStatus::Cancelled)).await,
        [ids[1].clone()]
    );
}

/// Outcomes read back exactly as recorded, by item.
pub async fn store_round_trips_outcomes(subject: &Subject) {
    let job = sample_job("acme", 2);
    subject.store.create_job(&job).await.expect("create");
    let recorded = vec![
        outcome(1, 1, (0, 1), failed()),
        outcome(0, 0, (0, 1), succeeded(42.5)),
    ];
    subject
        .store
        .record_outcomes(&job.id, &recorded, Utc::now())
        .await
        .expect("record");
    let read = subject.store.outcomes(&job.id).await.expect("outcomes");
    assert_eq!(read, [recorded[1].clone(), recorded[0].clone()]);
}

/// API keys are found by their hash only; a second key with the same hash
/// conflicts.
pub async fn store_keeps_api_keys_by_hash(subject: &Subject) {
    use docket_core::auth::{ApiKey, Tier, generate_token, hash_token};
    let token = generate_token();
    let key = ApiKey {
        hash: hash_token(&token),
        tenant: TenantId::parse("acme").unwrap(),
        tier: Tier::Standard,
        created_at: Utc::now(),
    };
    subject.store.put_api_key(&key).await.expect("put key");
    assert_eq!(
        subject
            .store
            .api_key(&hash_token(&token))
            .await
            .expect("get key"),
        key
    );
    let error = subject
        .store
        .api_key(&hash_token("not the token"))
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::NotFound(_)), "{error}");
    let error = subject.store.put_api_key(&key).await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error}");
}

/// A rate-limit bucket gives its burst once across concurrent callers,
/// keeps buckets apart and refills with time.
pub async fn store_token_buckets_are_shared_and_atomic(subject: &Subject) {
    use docket_core::quota::{Grant, Rate};
    let rate = Rate {
        burst: 20,
        per_minute: 60,
    };
    let now = Utc::now();
    let bucket = format!("uploads:{}", uuid::Uuid::new_v4());
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let store = subject.store.clone();
        let bucket = bucket.clone();
        tasks.spawn(async move {
            let mut granted = 0;
            for _ in 0..5 {
                if let Grant::Granted { .. } =
                    store.take_token(&bucket, rate, now).await.expect("take")
                {
                    granted += 1;
                }
            }
            granted
        });
    }
    let mut granted = 0;
    while let Some(count) = tasks.join_next().await {
        granted += count.expect("task");
    }
    assert_eq!(granted, 20, "8 callers × 5 tries share a burst of 20");
    let denied = subject
        .store
        .take_token(&bucket, rate, now)
        .await
        .expect("take");
    assert_eq!(
        denied,
        Grant::Denied {
            retry_after: Duration::from_secs(1)
        }
    );
    let other = format!("uploads:{}", uuid::Uuid::new_v4());
    assert_eq!(
        subject
            .store
            .take_token(&other, rate, now)
            .await
            .expect("take"),
        Grant::Granted { remaining: 19 }
    );
    let later = now + chrono::Duration::seconds(3);
    assert_eq!(
        subject
            .store
            .take_token(&bucket, rate, later)
            .await
            .expect("take"),
        Grant::Granted { remaining: 2 }
    );
}

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
    let documents = (0..DOCUMENTS)
        .map(|n| {
            IntakeDocument::Accepted(DocumentSpec {
                id: format!("doc-{n}"),
                title: format!("Document {n}"),
                body: DocumentBody::Text("x".repeat(n % 50 + 1)),
                metadata: serde_json::Value::Null,
            })
        })
        .collect();
    let job = pipeline
        .submit(Submission {
            job_id: None,
            tenant: TenantId::local(),
            evaluator: evaluators.resolve("fake").await.expect("resolve"),
            config: serde_json::json!({}),
            options: JobOptions::default(),
            documents,
        })
        .await
        .expect("submit");
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
    let results = subject
        .blobs
        .get(&docket_core::pipeline::results_key(&job.id))
        .await
        .expect("results written");
    let results: serde_json::Value = serde_json::from_slice(&results).expect("json");
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
