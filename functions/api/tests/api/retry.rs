//! Retrying a finished job's failed documents.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_resubmits_exactly_the_failed_documents_once() {
    let harness = Harness::new(None);
    let token = key(&harness, "acme", Tier::Standard).await;
    let batch = json!({"documents": [
        {"id": "good", "content": "a fine document"},
        {"id": "bad", "title": "Bad one", "content": "hostile:invalid here", "metadata": {"lot": 7}},
        {"id": "good-2", "content": "another fine document"},
    ], "options": {"evaluator": "hostile", "tolerated_failure_percent": 100}});
    let (_, accepted) = call_json(&harness, post(&token, &batch)).await;
    let job_id = accepted["job_id"].as_str().unwrap().to_owned();
    let retry_uri = format!("/api/v1/batch/{job_id}/retry");
    let (status, early) = call_json(&harness, post(&token, &json!(null)).uri_of(&retry_uri)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{early}");
    assert_eq!(
        early["error"]["message"],
        format!("job {job_id} is queued; only a finished job can be retried")
    );

    let id = docket_core::JobId::parse(&job_id).unwrap();
    harness.run_until_finalized(&id, 20).await;
    let (status, recovery) =
        call_json(&harness, post(&token, &json!(null)).uri_of(&retry_uri)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{recovery}");
    assert_eq!(recovery["retry_of"], job_id.as_str());
    assert_eq!(recovery["document_count"], 1);
    assert_eq!(recovery["not_retried"], json!([]));
    let recovery_id = recovery["job_id"].as_str().unwrap().to_owned();
    assert_ne!(recovery_id, job_id);
    // Asking again answers with the same recovery job.
    let (status, again) = call_json(&harness, post(&token, &json!(null)).uri_of(&retry_uri)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(again["job_id"], recovery_id.as_str());
    let (_, listed) = call_json(&harness, get(&token, "/api/v1/batch")).await;
    assert_eq!(listed["jobs"].as_array().unwrap().len(), 2);

    let recovery_job = docket_core::JobId::parse(&recovery_id).unwrap();
    harness.run_until_finalized(&recovery_job, 20).await;
    let (status, results) = call_json(
        &harness,
        get(&token, &format!("/api/v1/batch/results/{recovery_id}")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let documents = results["documents"].as_array().unwrap();
    assert_eq!(documents.len(), 1);
    assert_eq!(documents[0]["id"], "bad");
    assert_eq!(documents[0]["title"], "Bad one");
    assert_eq!(documents[0]["status"], "failed");
    assert_eq!(
        documents[0]["error"]["message"],
        "evaluator rejected the document: this document is invalid on purpose"
    );
    let original = docket_core::JobId::parse(&job_id).unwrap();
    let outcomes = harness
        .backend
        .store
        .outcomes_page(&recovery_job, None, 10)
        .await
        .unwrap();
    assert_eq!(outcomes[0].metadata, json!({"lot": 7}));
    assert_eq!(
        harness.pipeline.job(&recovery_job).await.unwrap().evaluator,
        harness.pipeline.job(&original).await.unwrap().evaluator
    );

    // A job without failures has nothing to retry.
    let (_, clean) = call_json(&harness, post(&token, &plans())).await;
    let clean_id = clean["job_id"].as_str().unwrap().to_owned();
    harness
        .run_until_finalized(&docket_core::JobId::parse(&clean_id).unwrap(), 20)
        .await;
    let (status, nothing) = call_json(
        &harness,
        post(&token, &json!(null)).uri_of(&format!("/api/v1/batch/{clean_id}/retry")),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        nothing["error"]["message"],
        format!("job {clean_id} has no failed documents")
    );
}
