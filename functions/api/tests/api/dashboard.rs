//! The dashboard: its page served without a key, the overview it reads
//! (a tenant's own jobs; every tenant's and the queues for an operator
//! key), a job's failures by category while it runs, and what an operator
//! key may do with another tenant's job.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_its_assets_are_served_without_a_key() {
    let harness = Harness::new(None);
    for (uri, content_type, holds) in [
        ("/dashboard", "text/html; charset=utf-8", "dashboard/app.js"),
        (
            "/dashboard/app.js",
            "text/javascript; charset=utf-8",
            "/api/v1/overview",
        ),
        (
            "/dashboard/app.css",
            "text/css; charset=utf-8",
            "#progress-bar",
        ),
    ] {
        let (status, body, headers) = call_with(
            state(&harness),
            Request::get(uri).body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{uri}");
        assert_eq!(headers[header::CONTENT_TYPE], content_type, "{uri}");
        assert!(body.as_str().unwrap().contains(holds), "{uri}");
    }
    // Its data is not.
    let (status, _) = call_json(
        &harness,
        Request::get("/api/v1/overview")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// A batch of `n` documents the `hostile` evaluator passes, but the first
/// `failing` of them, which it rejects (a data failure).
fn batch(n: usize, failing: usize) -> Value {
    let documents: Vec<Value> = (0..n)
        .map(|i| {
            let content = if i < failing {
                format!("hostile:invalid number {i}")
            } else {
                format!("a fine document {i}")
            };
            json!({"id": format!("doc-{i}"), "title": format!("Doc {i}"), "content": content})
        })
        .collect();
    json!({"documents": documents, "options": {"evaluator": "hostile", "tolerated_failure_percent": 100}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_sees_its_own_jobs_and_an_operator_every_tenants_and_the_queues() {
    let harness = Harness::new(None);
    let acme = key(&harness, "acme", Tier::Premium).await;
    let globex = key(&harness, "globex", Tier::Standard).await;
    let operator = key(&harness, "ops", Tier::Operator).await;
    let acme_job = finished(&harness, &acme, &batch(3, 1)).await;
    let (status, accepted) = call_json(&harness, post(&globex, &batch(2, 0))).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let globex_job = accepted["job_id"].as_str().unwrap().to_owned();

    let (status, mine) = call_json(&harness, get(&acme, "/api/v1/overview")).await;
    assert_eq!(status, StatusCode::OK, "{mine}");
    assert_eq!(mine["scope"], "tenant");
    assert_eq!(mine["tenant"], "acme");
    assert_eq!(mine["jobs"]["completed"], 1, "{mine}");
    assert_eq!(mine["jobs"]["queued"], 0, "{mine}");
    let active = mine["active_jobs"].as_array().unwrap();
    assert_eq!(active.len(), 1, "{mine}");
    assert_eq!(active[0]["job_id"], acme_job.as_str());
    assert_eq!(active[0]["documents_done"], 3);
    assert_eq!(mine["throughput"]["documents_last_hour"], 3);
    assert_eq!(
        mine["throughput"]["documents_per_minute"]
            .as_array()
            .unwrap()
            .len(),
        60
    );
    assert_eq!(mine["queues"], Value::Null);
    assert_eq!(mine["work_items_in_flight"], Value::Null);

    let (_, theirs) = call_json(&harness, get(&globex, "/api/v1/overview")).await;
    assert_eq!(theirs["jobs"]["queued"], 1, "{theirs}");
    assert_eq!(theirs["jobs"]["completed"], 0, "{theirs}");
    // Queued, not started: not active yet.
    assert_eq!(theirs["active_jobs"], json!([]));

    let (status, all) = call_json(&harness, get(&operator, "/api/v1/overview")).await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(all["scope"], "operator");
    assert_eq!(all["tenant"], Value::Null);
    assert_eq!(all["jobs"]["completed"], 1, "{all}");
    assert_eq!(all["jobs"]["queued"], 1, "{all}");
    assert_eq!(all["active_jobs"][0]["tenant"], "acme");
    // Globex's two items wait; the dead-letter counts are there.
    assert_eq!(all["queues"]["work-normal"]["visible"], 2, "{all}");
    assert_eq!(all["queues"]["work-normal"]["dead"], 0, "{all}");
    assert_eq!(all["queues"].as_object().unwrap().len(), 6, "{all}");
    assert_eq!(all["work_items_in_flight"], 0);

    // A tenant cannot read or act on another's job; an operator can.
    for token in [&globex] {
        for request in [
            get(token, &format!("/api/v1/batch/status/{acme_job}")),
            get(token, &format!("/api/v1/batch/results/{acme_job}")),
            delete(token, &format!("/api/v1/batch/{acme_job}")),
        ] {
            let (status, body) = call_json(&harness, request).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        }
    }
    let (status, report) = call_json(
        &harness,
        get(&operator, &format!("/api/v1/batch/status/{acme_job}")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["progress"]["failed_documents"], 1);
    let (status, results) = call_json(
        &harness,
        get(
            &operator,
            &format!("/api/v1/batch/results/{acme_job}?status=failed"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{results}");
    assert_eq!(results["documents"][0]["id"], "doc-0");
    // The operator's retry makes acme's recovery job, which acme sees.
    let (status, recovery) = call_json(
        &harness,
        post(&operator, &json!(null)).uri_of(&format!("/api/v1/batch/{acme_job}/retry")),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{recovery}");
    let recovery_id = recovery["job_id"].as_str().unwrap();
    let (status, seen) = call_json(
        &harness,
        get(&acme, &format!("/api/v1/batch/status/{recovery_id}")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{seen}");
    let (status, cancelled) = call_json(
        &harness,
        delete(&operator, &format!("/api/v1/batch/{globex_job}")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_jobs_status_tallies_its_failures_by_category_with_samples() {
    let harness = Harness::new(None);
    let token = key(&harness, "acme", Tier::Premium).await;
    let (status, accepted) = call_json(&harness, post(&token, &batch(12, 5))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let job_id = accepted["job_id"].as_str().unwrap().to_owned();
    let status_uri = format!("/api/v1/batch/status/{job_id}");
    let (_, before) = call_json(&harness, get(&token, &status_uri)).await;
    assert_eq!(before.get("failures"), None, "{before}");

    // Every item recorded, not yet finalized: the job is still running.
    let id = docket_core::JobId::parse(&job_id).unwrap();
    while harness.pipeline.work_once().await.unwrap() > 0 {}
    let (_, running) = call_json(&harness, get(&token, &status_uri)).await;
    assert_eq!(running["finalized"], false, "{running}");
    assert_eq!(running["progress"]["failed_documents"], 5, "{running}");
    let failures = running["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{running}");
    assert_eq!(failures[0]["category"], "DATA");
    assert_eq!(failures[0]["items"], 5);
    // The first three, as recorded.
    let samples = failures[0]["samples"].as_array().unwrap();
    assert_eq!(samples.len(), docket_core::model::FAILURE_SAMPLES);
    for sample in samples {
        let n: usize = sample["document_id"].as_str().unwrap()["doc-".len()..]
            .parse()
            .unwrap();
        assert!(n < 5, "{sample}");
        assert_eq!(sample["title"], format!("Doc {n}"));
        assert_eq!(
            sample["message"],
            "evaluator rejected the document: this document is invalid on purpose"
        );
    }
    let job = harness.run_until_finalized(&id, 20).await;
    assert_eq!(job.failures[0].items, 5);
}
