//! What intake and finalize hold: a counting allocator measures the peak
//! of heap bytes held while a job is taken in and while it is finalized,
//! for a job and for one four times its size. Bounded windows hold the
//! same at both sizes; a step that held the whole job would hold four
//! times as much.

// Test code: a failed unwrap fails the test. A global allocator is unsafe
// code by nature; this one only forwards to the system's and counts.
#![allow(clippy::unwrap_used, unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use docket_core::model::{DocumentBody, DocumentSpec, JobOptions, TenantId};
use docket_core::pipeline::{FinalizeOutcome, IntakeDocument, PipelineSettings, Submission};

use super::summaries::{documents, harness_with, record_as_tally};

/// The system allocator, counting the bytes held and their peak.
struct Counting;

static HELD: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counters are only added to and read.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let held = HELD.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(held, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) };
        HELD.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            HELD.fetch_sub(layout.size(), Ordering::Relaxed);
            let held = HELD.fetch_add(new_size, Ordering::Relaxed) + new_size;
            PEAK.fetch_max(held, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Bytes held at most while `step` ran, above what was held before it.
async fn held_by<T>(step: impl std::future::Future<Output = T>) -> (T, usize) {
    let before = HELD.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let value = step.await;
    (value, PEAK.load(Ordering::Relaxed).saturating_sub(before))
}

/// Small windows everywhere, so what a window holds is small beside what a
/// whole job of a few thousand documents would be.
fn small_windows(s: &mut PipelineSettings) {
    s.pack_bytes = 32 * 1024;
    s.outcomes_page = 100;
    s.results_part_bytes = 32 * 1024;
    s.summary_input_bytes = 32 * 1024;
}

/// (bytes held by intake, bytes held by finalize) for a job of `n`
/// documents, taken in one document at a time.
async fn held_for(n: usize) -> (usize, usize) {
    let harness = harness_with(small_windows);
    let docs = documents(n);
    let submission = Submission {
        job_id: None,
        tenant: TenantId::local(),
        evaluator: harness.evaluator("tally"),
        config: serde_json::json!({}),
        options: JobOptions::default(),
        documents: Vec::new(),
    };
    let (job, intake) = held_by(async {
        let mut intake = harness.pipeline.open_intake(submission).await.unwrap();
        for (id, text) in &docs {
            intake
                .add(IntakeDocument::Accepted(DocumentSpec {
                    id: id.clone(),
                    title: id.clone(),
                    body: DocumentBody::Text(text.clone()),
                    metadata: serde_json::Value::Null,
                }))
                .await
                .unwrap();
        }
        intake.close().await.unwrap()
    })
    .await;
    record_as_tally(&harness, &docs).await;
    let (outcome, finalize) = held_by(harness.pipeline.finalize(&job.id)).await;
    assert!(matches!(outcome.unwrap(), FinalizeOutcome::Finalized(_)));
    let results = harness.results(&job.id).await;
    assert_eq!(results["summary"]["completed_documents"], n);
    (intake, finalize)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intake_and_finalize_hold_a_window_not_the_job() {
    let (intake_small, finalize_small) = held_for(5_000).await;
    let (intake_big, finalize_big) = held_for(20_000).await;
    println!(
        "held by intake: {intake_small} B at 5,000 documents, {intake_big} B at 20,000; by finalize: {finalize_small} B, {finalize_big} B"
    );
    // The job's text is ~1 MB at 5,000 documents and ~4 MB at 20,000, its
    // results several times that: a step holding either grows fourfold.
    for (step, small, big) in [
        ("intake", intake_small, intake_big),
        ("finalize", finalize_small, finalize_big),
    ] {
        assert!(
            big < small + small / 2 + 512 * 1024,
            "{step} held {small} B for 5,000 documents and {big} B for 20,000"
        );
    }
}
