//! Tenants share the work queues: a small batch is not stuck behind
//! another tenant's huge one of the same priority. Its items are taken in
//! turn with the backlog's, and it is finalized while the backlog runs.

// Test code: a failed unwrap fails the test.
#![allow(clippy::unwrap_used)]

use docket_core::model::{DocumentBody, DocumentSpec, JobOptions, TenantId};
use docket_core::pipeline::{IntakeDocument, Submission};
use docket_tests::Harness;

fn batch(tenant: &str, n: usize, harness: &Harness) -> Submission {
    Submission {
        job_id: None,
        tenant: TenantId::parse(tenant).unwrap(),
        evaluator: harness.evaluator("hostile"),
        config: serde_json::json!({}),
        options: JobOptions::default(),
        documents: (0..n)
            .map(|i| {
                IntakeDocument::Accepted(DocumentSpec {
                    id: format!("{tenant}-{i}"),
                    title: format!("{tenant}-{i}"),
                    body: DocumentBody::Text("fine words".into()),
                    metadata: serde_json::Value::Null,
                })
            })
            .collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_batch_finishes_while_another_tenants_huge_one_has_barely_started() {
    let harness = Harness::new(None);
    let huge = harness
        .pipeline
        .submit(batch("bigco", 50_000, &harness))
        .await
        .unwrap();
    let small = harness
        .pipeline
        .submit(batch("smallco", 100, &harness))
        .await
        .unwrap();
    let mut rounds = 0;
    let small = loop {
        harness.pipeline.run_round().await.unwrap();
        rounds += 1;
        let job = harness.pipeline.job(&small.id).await.unwrap();
        if job.finished_at.is_some() {
            break job;
        }
        assert!(rounds < 20_000, "the small batch never finished");
    };
    assert_eq!(small.counters.documents_succeeded, 100);
    let huge = harness.pipeline.job(&huge.id).await.unwrap();
    let done = huge.counters.documents_done();
    assert!(
        done < 5_000,
        "the huge batch had done {done} of 50,000 documents when the small one finished"
    );
    assert!(huge.finished_at.is_none());
    // The small job's results are whole.
    let results = harness.results(&small.id).await;
    assert_eq!(results["documents"].as_array().unwrap().len(), 100);
}
