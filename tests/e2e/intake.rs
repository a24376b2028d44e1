//! A batch read in a window at a time: the job exists from the first
//! document, its first windows are processed while the rest is still being
//! added, no stored pack is larger than the pack size, and the job
//! completes only once its intake is closed — by the last record, or by the
//! close itself when everything was recorded before it.

// Test code: a failed unwrap fails the test.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use docket_core::model::{
    DocumentBody, DocumentSpec, JobOptions, JobStatus, RejectedDocument, TenantId,
};
use docket_core::pipeline::{FinalizeOutcome, IntakeDocument, OpenIntake, Submission};
use docket_core::ports::{BlobError, BlobStore, ListedPage, QueueName, WorkQueue};
use docket_core::{Failure, FailureCategory};
use docket_tests::{Harness, SendHook};

/// Blobs that remember the largest put: what one window held.
struct LargestPut {
    inner: Arc<dyn BlobStore>,
    largest: AtomicUsize,
}

#[async_trait]
impl BlobStore for LargestPut {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), BlobError> {
        if key.starts_with("documents/") {
            self.largest.fetch_max(bytes.len(), Ordering::SeqCst);
        }
        self.inner.put(key, bytes).await
    }
    async fn get(&self, key: &str) -> Result<Vec<u8>, BlobError> {
        self.inner.get(key).await
    }
    async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>, BlobError> {
        self.inner.get_range(key, offset, len).await
    }
    async fn size(&self, key: &str) -> Result<u64, BlobError> {
        self.inner.size(key).await
    }
    async fn list_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ListedPage, BlobError> {
        self.inner.list_page(prefix, after, limit).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, BlobError> {
        self.inner.list(prefix).await
    }
}

fn submission(harness: &Harness) -> Submission {
    Submission {
        job_id: None,
        tenant: TenantId::local(),
        evaluator: harness.evaluator("wordstats"),
        config: serde_json::json!({}),
        options: JobOptions::default(),
        documents: Vec::new(),
    }
}

fn document(n: usize) -> IntakeDocument {
    let body = format!("document {n} ").repeat(80);
    IntakeDocument::Accepted(DocumentSpec {
        id: format!("doc-{n:05}"),
        title: format!("Document {n}"),
        body: DocumentBody::Text(body),
        metadata: serde_json::Value::Null,
    })
}

async fn drain(harness: &Harness) {
    while !harness.pipeline.run_round().await.unwrap().is_idle() {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_processed_while_it_is_read_in_and_completes_after_its_intake_closes() {
    let mut harness = Harness::new(None);
    let blobs = Arc::new(LargestPut {
        inner: harness.ports.blobs.clone(),
        largest: AtomicUsize::new(0),
    });
    let probe = blobs.clone();
    harness.change_ports(|ports| ports.blobs = blobs);
    let pack_bytes = harness.pipeline.settings().pack_bytes;

    let mut intake = harness
        .pipeline
        .open_intake(submission(&harness))
        .await
        .unwrap();
    let job_id = intake.job_id().clone();
    let mut text_bytes = 0;
    for n in 0..2_500 {
        if let IntakeDocument::Accepted(spec) = &document(n) {
            text_bytes += spec.body.len();
        }
        intake.add(document(n)).await.unwrap();
    }
    // Every full window (a full pack, or 1,000 items) is stored and
    // enqueued: processing them records its outcomes, but the job is not
    // complete.
    drain(&harness).await;
    let open = harness.pipeline.job(&job_id).await.unwrap();
    let windowed = open.counters.items_total;
    assert!(
        (1_000..2_500).contains(&windowed),
        "{windowed} items in full windows"
    );
    assert_eq!(open.counters.items_done(), windowed);
    assert_eq!(open.counters.documents_total, windowed);
    assert!(open.counters.intake_open);
    assert_eq!(open.counters.items_pending(), 1, "the items still to come");
    assert_eq!(open.status, JobStatus::Processing);
    assert!(matches!(
        harness.pipeline.finalize(&job_id).await.unwrap(),
        FinalizeOutcome::NotReady { .. }
    ));
    assert!(
        harness
            .pipeline
            .status_report(&open)
            .progress
            .percent_complete
            <= 100.0
    );

    let closed = intake.close().await.unwrap();
    assert!(!closed.counters.intake_open);
    assert_eq!(closed.counters.items_total, 2_500);
    let finished = harness.run_until_finalized(&job_id, 1_000).await;
    assert_eq!(finished.status, JobStatus::Completed);
    assert_eq!(finished.counters.documents_succeeded, 2_500);
    let results = harness.results(&job_id).await;
    assert_eq!(results["documents"].as_array().unwrap().len(), 2_500);
    assert_eq!(results["documents"][2_499]["id"], "doc-02499");

    // The text went into packs of at most the pack size: several of them.
    let largest = probe.largest.load(Ordering::SeqCst);
    assert!(largest <= pack_bytes, "a pack of {largest} bytes");
    assert!(text_bytes > 2 * pack_bytes, "{text_bytes} bytes of text");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_an_intake_whose_items_are_all_recorded_finalizes_the_job() {
    let harness = Harness::new(None);
    let mut intake = harness
        .pipeline
        .open_intake(submission(&harness))
        .await
        .unwrap();
    for n in 0..3 {
        intake
            .add(IntakeDocument::Rejected(RejectedDocument {
                id: format!("empty-{n}.txt"),
                title: format!("empty-{n}.txt"),
                failure: Failure::new(FailureCategory::Data, "the file is empty"),
            }))
            .await
            .unwrap();
    }
    let job_id = intake.job_id().clone();
    // Rejections are recorded with their window: here, at the close.
    let closed = intake.close().await.unwrap();
    assert_eq!(closed.counters.items_pending(), 0);
    let finished = harness.run_until_finalized(&job_id, 10).await;
    assert_eq!(finished.status, JobStatus::Failed);
    assert_eq!(finished.counters.documents_failed, 3);
    assert_eq!(finished.error.as_deref(), Some("all 3 documents failed"));
}

/// A submitter stops twice: once after counting its second window but
/// before that window's items were enqueued (they are lost), and it is not
/// there to add the rest. Read again from the start with the same
/// documents, the intake passes over the windows the job counted, enqueues
/// the last of them again and adds the rest: every document is evaluated
/// and counted once, and the job completes. Documents that do not read the
/// same are refused and leave the job as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intake_stopped_midway_is_read_again_and_its_job_completes_once() {
    let mut harness = Harness::new(None);
    let real = harness.ports.queue.clone();
    // The second send of work items is lost.
    let sends = AtomicUsize::new(0);
    harness.change_ports(|ports| {
        ports.queue = Arc::new(SendHook::new(real.clone(), move |queue| {
            let work = matches!(queue, QueueName::Work(_));
            (work && sends.fetch_add(1, Ordering::SeqCst) == 1).then_some(Ok(()))
        }));
    });
    let mut intake = harness
        .pipeline
        .open_intake(submission(&harness))
        .await
        .unwrap();
    let job_id = intake.job_id().clone();
    for n in 0..2_500 {
        intake.add(document(n)).await.unwrap();
    }
    drop(intake);
    drain(&harness).await;
    let stopped = harness.pipeline.job(&job_id).await.unwrap();
    assert!(stopped.counters.intake_open);
    // Two windows counted: 1,000 items, then a full pack.
    let counted = stopped.counters.items_total;
    assert!((1_001..2_500).contains(&counted), "{counted} items counted");
    assert_eq!(stopped.counters.documents_total, counted);
    assert_eq!(
        stopped.counters.items_done(),
        1_000,
        "the second window's items were never enqueued"
    );

    // A reading with other documents (longer texts: other windows) is
    // refused, and the job stays as it was.
    let mut other = OpenIntake::reopen(&harness.pipeline, stopped.clone());
    let mut refused = None;
    for n in 0..2_500 {
        let longer = IntakeDocument::Accepted(DocumentSpec {
            id: format!("doc-{n:05}"),
            title: String::new(),
            body: DocumentBody::Text("longer ".repeat(400)),
            metadata: serde_json::Value::Null,
        });
        if let Err(error) = other.add(longer).await {
            refused = Some(error);
            break;
        }
    }
    let refused = refused.expect("other documents refused").to_string();
    assert!(
        refused.starts_with(&format!(
            "invalid submission: the inputs are not those of the interrupted intake of job {job_id}: it had counted {counted} documents in {counted} items"
        )),
        "{refused}"
    );
    assert_eq!(harness.pipeline.job(&job_id).await.unwrap(), stopped);

    let mut again = OpenIntake::reopen(&harness.pipeline, stopped);
    for n in 0..3_000 {
        again.add(document(n)).await.unwrap();
    }
    let closed = again.close().await.unwrap();
    assert_eq!(closed.counters.items_total, 3_000);
    assert_eq!(closed.counters.documents_total, 3_000);
    let finished = harness.run_until_finalized(&job_id, 1_000).await;
    assert_eq!(finished.status, JobStatus::Completed);
    assert_eq!(finished.counters.documents_succeeded, 3_000);
    assert_eq!(finished.counters.items_succeeded, 3_000);
    let results = harness.results(&job_id).await;
    let documents = results["documents"].as_array().unwrap();
    assert_eq!(documents.len(), 3_000);
    for (n, document) in documents.iter().enumerate() {
        assert_eq!(document["id"], format!("doc-{n:05}"));
        assert_eq!(document["status"], "completed", "{document}");
    }
}

/// An upload repeated under its idempotency key after the first one died
/// while reading it in (its job's intake left open, as a server killed
/// mid-request leaves it) reads it in again: the job completes with every
/// document once. Repeated with other documents, it is refused and the
/// job is left as it was; while the first is still reading, the one
/// behind stops at its next window and the job is read in once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_upload_reads_in_again_what_a_dead_first_one_left_open() {
    let harness = Harness::new(None);
    let caller = docket_core::auth::Caller {
        tenant: TenantId::local(),
        tier: docket_core::auth::Tier::Premium,
        key_hash: "key".into(),
    };
    let keyed = |key: &str, documents: Vec<IntakeDocument>| Submission {
        job_id: Some(docket_core::pipeline::idempotent_job_id(
            &TenantId::local(),
            key,
        )),
        documents,
        ..submission(&harness)
    };
    let all = || (0..2_500).map(document).collect::<Vec<_>>();

    // The first upload dies after two windows.
    let first = keyed("died", Vec::new());
    let job_id = first.job_id.clone().unwrap();
    let mut intake = harness.pipeline.open_intake(first).await.unwrap();
    for n in 0..1_500 {
        intake.add(document(n)).await.unwrap();
    }
    drop(intake);
    let left = harness.pipeline.job(&job_id).await.unwrap();
    assert!(left.counters.intake_open);
    assert!(left.counters.documents_total > 0);

    // Other documents: refused, the job as it was.
    let other: Vec<_> = (0..2_500)
        .map(|n| match document(n) {
            IntakeDocument::Accepted(mut spec) => {
                spec.body = DocumentBody::Text("longer ".repeat(400));
                IntakeDocument::Accepted(spec)
            }
            document => document,
        })
        .collect();
    let refused = harness
        .pipeline
        .submit_admitted(&caller, keyed("died", other))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, docket_core::PipelineError::Invalid(_)),
        "{refused}"
    );
    assert_eq!(
        harness.pipeline.job(&job_id).await.unwrap().counters,
        left.counters
    );

    // The same count with an id twice (past the counted windows): refused
    // by name, the job as it was.
    let mut twice = all();
    twice[2_000] = document(1_999);
    let refused = harness
        .pipeline
        .submit_admitted(&caller, keyed("died", twice))
        .await
        .unwrap_err();
    assert_eq!(
        refused.to_string(),
        docket_core::PipelineError::Invalid(
            "documents[2000].id: duplicate id \"doc-01999\"".into()
        )
        .to_string()
    );
    assert_eq!(
        harness.pipeline.job(&job_id).await.unwrap().counters,
        left.counters
    );

    // The same documents: read in again, completed once.
    let job = harness
        .pipeline
        .submit_admitted(&caller, keyed("died", all()))
        .await
        .unwrap();
    assert_eq!(job.id, job_id);
    assert!(!job.counters.intake_open);
    let done = harness.run_until_finalized(&job_id, 500).await;
    assert_eq!(done.status, JobStatus::Completed);
    assert_eq!(done.counters.documents_total, 2_500);
    assert_eq!(done.counters.items_total, 2_500);
    assert_eq!(done.counters.documents_succeeded, 2_500);

    // Two readers at once: the first is still reading when the repeat
    // comes; the one behind stops, and every window is counted once.
    let first = keyed("racing", Vec::new());
    let racing = first.job_id.clone().unwrap();
    let mut intake = harness.pipeline.open_intake(first).await.unwrap();
    for n in 0..1_200 {
        intake.add(document(n)).await.unwrap();
    }
    let repeated = harness
        .pipeline
        .submit_admitted(&caller, keyed("racing", all()))
        .await
        .unwrap();
    assert!(!repeated.counters.intake_open, "the repeat read it all in");
    let mut behind = None;
    for n in 1_200..2_500 {
        if let Err(error) = intake.add(document(n)).await {
            behind = Some(error);
            break;
        }
    }
    let behind = match behind {
        Some(error) => error,
        None => intake.close().await.unwrap_err(),
    };
    assert!(
        matches!(
            behind,
            docket_core::PipelineError::Store(docket_core::ports::StoreError::Conflict(_))
        ),
        "{behind}"
    );
    let done = harness.run_until_finalized(&racing, 500).await;
    assert_eq!(done.status, JobStatus::Completed);
    assert_eq!(done.counters.documents_total, 2_500);
    assert_eq!(done.counters.documents_succeeded, 2_500);
}

/// An upload killed after its last window is counted on the job and
/// before that window is enqueued leaves the intake open (it closes only
/// once its last window is enqueued), so the repeated upload under the
/// same key reads it in again and the job completes with every document
/// once. (When the count also closed the intake, the repeat found it
/// closed and the job waited for items that were never sent.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_killed_before_its_last_window_is_enqueued_is_read_in_by_the_repeat() {
    let mut harness = Harness::new(None);
    // The process dies at its first send of work items.
    let sends = killed_at_work_send(&mut harness, 0);
    let caller = docket_core::auth::Caller {
        tenant: TenantId::local(),
        tier: docket_core::auth::Tier::Premium,
        key_hash: "key".into(),
    };
    let upload = Submission {
        job_id: Some(docket_core::pipeline::idempotent_job_id(
            &TenantId::local(),
            "killed",
        )),
        documents: (0..500).map(document).collect(),
        ..submission(&harness)
    };
    let job_id = upload.job_id.clone().unwrap();

    let pipeline = harness.pipeline.clone();
    let (first, again) = (upload.clone(), upload);
    let killed = {
        let caller = caller.clone();
        tokio::spawn(async move { pipeline.submit_admitted(&caller, first).await })
    };
    assert!(killed.await.unwrap_err().is_panic());
    assert_eq!(sends.load(Ordering::SeqCst), 1, "it died at its send");
    let left = harness.pipeline.job(&job_id).await.unwrap();
    assert_eq!(left.counters.items_total, 500, "the window was counted");
    assert!(left.counters.intake_open, "and the intake left open");
    assert_eq!(
        harness
            .backend
            .queue
            .depth(QueueName::Work(left.options.priority))
            .await
            .unwrap()
            .visible,
        0,
        "nothing enqueued"
    );

    let job = harness
        .pipeline
        .submit_admitted(&caller, again)
        .await
        .unwrap();
    assert_eq!(job.id, job_id);
    assert!(!job.counters.intake_open);
    let done = harness.run_until_finalized(&job_id, 500).await;
    assert_eq!(done.status, JobStatus::Completed);
    assert_eq!(done.counters.documents_total, 500);
    assert_eq!(done.counters.items_total, 500);
    assert_eq!(done.counters.documents_succeeded, 500);
}

/// A listing of a prefix whose last page was counted by a reader killed
/// before it sent the page's items: the page delivered again sends them
/// and closes the intake, and the job completes with every file once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_last_listing_page_killed_before_its_items_are_sent_is_finished_by_its_redelivery() {
    use docket_core::pipeline::{CreatedObject, IngestMessage, tenant_files};
    let mut harness = Harness::new(None);
    // The process dies at its third send of work items: the last page's.
    killed_at_work_send(&mut harness, 2);
    let pipeline = harness
        .pipeline
        .with_settings(docket_core::pipeline::PipelineSettings {
            listing_page: 10,
            ..harness.pipeline.settings().clone()
        });
    let files = tenant_files(&TenantId::local());
    for n in 0..25 {
        harness
            .backend
            .blobs
            .put(
                &format!("{files}drop/t{n:02}.txt"),
                b"agua potable".to_vec(),
            )
            .await
            .unwrap();
    }
    let manifest = serde_json::json!({"prefix": "drop/", "options": {"evaluator": "wordstats"}});
    let key = format!("inbox/{}/drop.batch.json", TenantId::local());
    harness
        .backend
        .blobs
        .put(&key, manifest.to_string().into_bytes())
        .await
        .unwrap();
    let jobs = pipeline
        .ingest(
            &[CreatedObject {
                key,
                etag: "1".into(),
            }],
            "wordstats",
        )
        .await
        .unwrap();
    let job_id = jobs[0].clone();

    // The pages, each delivered until it is handled without dying.
    let mut killed = 0;
    loop {
        let deliveries = harness
            .ports
            .queue
            .receive(QueueName::Ingest, 10, std::time::Duration::from_secs(30))
            .await
            .unwrap();
        if deliveries.is_empty() {
            break;
        }
        for delivery in deliveries {
            let IngestMessage::Listing(page) = serde_json::from_str(&delivery.body).unwrap();
            loop {
                let handling = pipeline.clone();
                let page = page.clone();
                match tokio::spawn(async move { handling.ingest_listing(&page).await }).await {
                    Ok(handled) => break handled.unwrap(),
                    Err(died) => {
                        assert!(died.is_panic());
                        killed += 1;
                        let left = pipeline.job(&job_id).await.unwrap();
                        assert_eq!(left.counters.documents_total, 25, "the page was counted");
                        assert!(left.counters.intake_open, "and the intake left open");
                    }
                }
            }
            harness
                .ports
                .queue
                .ack(QueueName::Ingest, &[delivery.receipt])
                .await
                .unwrap();
        }
    }
    assert_eq!(killed, 1);
    let job = pipeline.job(&job_id).await.unwrap();
    assert!(
        !job.counters.intake_open,
        "closed by the page delivered again"
    );
    let done = harness.run_until_finalized(&job_id, 100).await;
    assert_eq!(done.status, JobStatus::Completed);
    assert_eq!(done.counters.documents_total, 25);
    assert_eq!(done.counters.documents_succeeded, 25);
}

/// The harness's process "killed" at its `n`th send of work items (from
/// 0): the send panics, so the task making it stops right there, as a
/// process would at a SIGKILL, and nothing after it runs. Returns the
/// count of work sends.
fn killed_at_work_send(harness: &mut Harness, n: usize) -> Arc<AtomicUsize> {
    let real = harness.ports.queue.clone();
    let sends = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&sends);
    harness.change_ports(|ports| {
        ports.queue = Arc::new(SendHook::new(real, move |queue| {
            let work = matches!(queue, QueueName::Work(_));
            (work && counted.fetch_add(1, Ordering::SeqCst) == n)
                .then(|| panic!("killed at work send {n}"))
        }));
    });
    sends
}
