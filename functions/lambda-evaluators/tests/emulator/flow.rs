//! A 200-document batch through the upload, processor and finalizer
//! handlers gives what `docket run` gives.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_document_batch_runs_through_the_handlers_like_docket_run() {
    let (settings, pipeline, aws) = deployment().await;
    let token = api_key(&pipeline).await;
    let router = upload_function(&settings).await;
    let documents = documents();
    let batch = json!({"documents": documents
        .iter()
        .map(|(id, content)| json!({"id": id, "content": content}))
        .collect::<Vec<_>>()});
    let (status, accepted) = call_api(
        &router,
        api_request("POST", "/api/v1/batch/upload", &token, Some(&batch)),
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["document_count"], 200);
    let job_id = JobId::parse(accepted["job_id"].as_str().unwrap()).unwrap();

    let names = &settings.names;
    run_until_finished(&pipeline, &aws, names, std::slice::from_ref(&job_id)).await;

    let job = aws.store.job(&job_id).await.unwrap();
    assert_eq!(job.status, docket_core::JobStatus::Completed);
    assert_eq!(
        (
            job.counters.documents_total,
            job.counters.documents_succeeded,
            job.counters.documents_failed
        ),
        (200, 200, 0)
    );
    assert_eq!(
        (job.counters.items_total, job.counters.items_succeeded),
        (200, 200)
    );
    let (status, report) = call_api(
        &router,
        api_request(
            "GET",
            &format!("/api/v1/batch/status/{job_id}"),
            &token,
            None,
        ),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(report["progress"]["completed_documents"], 200);

    let results = stored_results(&aws, &job_id).await;
    assert_eq!(results["document_count"], 200);
    let reference = reference_results(&documents).await;
    assert_eq!(comparable(results), comparable(reference));
    let depth = aws
        .queue
        .depth(QueueName::Work(docket_core::Priority::Normal))
        .await
        .unwrap();
    assert_eq!((depth.visible, depth.in_flight, depth.dead), (0, 0, 0));
}
