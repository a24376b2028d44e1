//! Health, metrics and the OpenAPI document.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_needs_no_key_and_reports_components_and_queue_depth() {
    let harness = Harness::new(None);
    let token = key(&harness, "acme", Tier::Premium).await;
    let (_, done) = call_json(&harness, post(&token, &plans())).await;
    let done = docket_core::JobId::parse(done["job_id"].as_str().unwrap()).unwrap();
    harness.run_until_finalized(&done, 20).await;
    let (_, accepted) = call_json(&harness, post(&token, &plans())).await;
    assert!(accepted["job_id"].is_string());
    let request = Request::get("/api/v1/health").body(Body::empty()).unwrap();
    let (status, health) = call_json(&harness, request).await;
    assert_eq!(status, StatusCode::OK, "{health}");
    assert_eq!(health["status"], "ok");
    assert_eq!(health["components"]["job_store"]["status"], "ok");
    assert_eq!(health["components"]["blob_store"]["status"], "ok");
    assert_eq!(health["components"]["queues"]["status"], "ok");
    assert_eq!(
        health["components"]["queues"]["depth"]["work-high"],
        json!({"visible": 2, "in_flight": 0, "dead": 0})
    );
    // What the health scripts of the systems docket replaces read.
    assert_eq!(
        health["metrics"],
        json!({
            "jobs_in_queue": 1,
            "jobs_queued": 1,
            "jobs_processing": 0,
            "throughput_docs_per_hour": 2,
            "work_items_waiting": 2,
            "dead_letters": 0,
        })
    );
    let loaded = health["components"]["evaluators"]["loaded"]
        .as_array()
        .unwrap();
    assert!(
        loaded
            .iter()
            .any(|e| e.as_str().unwrap().starts_with("decalogo@")),
        "{loaded:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_jobs_documents_queues_and_evaluations() {
    let harness = Harness::new(None);
    let token = key(&harness, "acme", Tier::Premium).await;
    let (status, _) = call(
        &harness,
        Request::get("/api/v1/metrics").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, first) = call_json(&harness, post(&token, &plans())).await;
    let batch = json!({"documents": [
        {"id": "ok", "content": "fine"},
        {"id": "bad", "content": "hostile:invalid"},
    ], "options": {"evaluator": "hostile"}});
    let (_, second) = call_json(&harness, post(&token, &batch)).await;
    for accepted in [&first, &second] {
        let id = docket_core::JobId::parse(accepted["job_id"].as_str().unwrap()).unwrap();
        harness.run_until_finalized(&id, 20).await;
    }
    let (_, queued) = call_json(&harness, post(&token, &plans())).await;
    assert!(queued["job_id"].is_string());
    let response = app(state(&harness))
        .oneshot(get(&token, "/api/v1/metrics"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    for line in [
        "docket_jobs{status=\"completed\"} 2",
        "docket_jobs{status=\"queued\"} 1",
        "docket_documents{status=\"succeeded\"} 3",
        "docket_documents{status=\"failed\"} 1",
        "docket_queue_depth{queue=\"work-high\",state=\"visible\"} 2",
        "docket_work_items_processed_total{result=\"succeeded\"} 3",
        "docket_work_items_processed_total{result=\"failed\"} 1",
        "docket_work_items_failed_total{category=\"DATA\"} 1",
        "docket_evaluation_seconds_count 4",
        "docket_evaluation_seconds_bucket{le=\"+Inf\"} 4",
        "docket_documents_last_hour 4",
        "docket_backend_errors_total{category=\"RESOURCE\"} 0",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line} missing from\n{text}"
        );
    }
    assert!(text.contains("# TYPE docket_evaluation_seconds histogram"));
    assert!(text.contains("docket_throughput_items_per_second{window=\"1h\"}"));

    // A deployment migrating dashboards keeps its series' names.
    let renamed = AppState {
        metrics_namespace: "decalogo_batch".parse().unwrap(),
        ..state(&harness)
    };
    let response = app(renamed)
        .oneshot(get(&token, "/api/v1/metrics"))
        .await
        .unwrap();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let renamed = String::from_utf8(bytes.to_vec()).unwrap();
    assert!(
        renamed
            .lines()
            .any(|l| l == "decalogo_batch_jobs{status=\"completed\"} 2"),
        "{renamed}"
    );
    let series = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.split([' ', '{']).next().unwrap().to_owned())
            .collect()
    };
    let expected: Vec<String> = series(&text)
        .iter()
        .map(|name| name.replacen("docket_", "decalogo_batch_", 1))
        .collect();
    assert_eq!(series(&renamed), expected, "the same series, renamed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_matches_the_routes() {
    let harness = Harness::new(None);
    let token = key(&harness, "acme", Tier::Standard).await;
    let (status, served) = call_json(&harness, get(&token, "/api/v1/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    let document: Value = serde_json::from_str(docket_api::OPENAPI).unwrap();
    assert_eq!(served, document);
    let paths = document["paths"].as_object().unwrap();
    assert_eq!(paths.len(), 12);
    let methods = ["get", "post", "put", "patch", "delete"];
    for (path, operations) in paths {
        let uri = path.replace("{job_id}", "job_doesnotexist");
        for method in methods {
            let request = Request::builder()
                .method(method.to_uppercase().as_str())
                .uri(&uri)
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{}"))
                .unwrap();
            let (status, body) = call(&harness, request).await;
            match operations.get(method) {
                Some(operation) => {
                    // Routed: either answered, or our own JSON 404 for the
                    // unknown job — never the router's empty 404/405.
                    assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
                    if status == StatusCode::NOT_FOUND {
                        assert!(body.contains("not_found"), "{method} {path}: {body}");
                    }
                    let documented = operation["responses"]
                        .as_object()
                        .unwrap()
                        .contains_key(status.as_str());
                    assert!(documented, "{method} {path} answered undocumented {status}");
                }
                None => assert_eq!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path} is routed but not documented"
                ),
            }
        }
    }
    let (status, body) = call(&harness, get(&token, "/api/v1/undocumented")).await;
    assert_eq!((status, body.as_str()), (StatusCode::NOT_FOUND, ""));
}
