//! Tenants see only their own jobs; cancel, list, and the bearer token on every route.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_other_tenants_jobs_are_not_found() {
    let harness = Harness::new(None);
    let token = key(&harness, "acme", Tier::Premium).await;
    let other = harness
        .pipeline
        .submit(docket_core::Submission {
            job_id: None,
            tenant: TenantId::parse("someone-else").unwrap(),
            evaluator: harness.evaluator("wordstats"),
            config: json!({}),
            options: Default::default(),
            documents: vec![docket_core::pipeline::IntakeDocument::Accepted(
                docket_core::DocumentSpec {
                    id: "x".into(),
                    title: "x".into(),
                    body: docket_core::DocumentBody::Text("text".into()),
                    metadata: Value::Null,
                },
            )],
        })
        .await
        .unwrap();
    for uri in [
        format!("/api/v1/batch/status/{}", other.id),
        format!("/api/v1/batch/results/{}", other.id),
        "/api/v1/batch/status/job_doesnotexist".to_owned(),
        "/api/v1/batch/status/..%2Fetc".to_owned(),
    ] {
        let (status, error) = call_json(&harness, get(&token, &uri)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(error["error"]["code"], "not_found", "{uri}");
    }
    let (status, _) = call_json(
        &harness,
        delete(&token, &format!("/api/v1/batch/{}", other.id)),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call_json(
        &harness,
        post(&token, &json!(null)).uri_of(&format!("/api/v1/batch/{}/retry", other.id)),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_then_cancel_again_conflicts() {
    let harness = Harness::new(None);
    let token = key(&harness, "acme", Tier::Premium).await;
    let (_, accepted) = call_json(&harness, post(&token, &plans())).await;
    let job_id = accepted["job_id"].as_str().unwrap().to_owned();
    let cancel = || delete(&token, &format!("/api/v1/batch/{job_id}"));
    let (status, body) = call_json(&harness, cancel()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"job_id": job_id, "status": "cancelled"}));
    let (status, error) = call_json(&harness, cancel()).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(error["error"]["code"], "conflict");
    let finished = harness
        .run_until_finalized(&docket_core::JobId::parse(&job_id).unwrap(), 20)
        .await;
    assert_eq!(finished.counters.documents_skipped, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_listed_newest_first_in_pages_with_filters() {
    let harness = Harness::new(None);
    let token = key(&harness, "acme", Tier::Premium).await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let body = json!({"documents": [{"id": format!("d{n}"), "content": "text"}]});
        let (_, accepted) = call_json(&harness, post(&token, &body)).await;
        ids.push(accepted["job_id"].as_str().unwrap().to_owned());
    }
    let cancel = delete(&token, &format!("/api/v1/batch/{}", ids[0]));
    assert_eq!(call(&harness, cancel).await.0, StatusCode::OK);

    let (status, first) = call_json(&harness, get(&token, "/api/v1/batch?limit=2")).await;
    assert_eq!(status, StatusCode::OK);
    let page: Vec<&str> = first["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["job_id"].as_str().unwrap())
        .collect();
    assert_eq!(page, [ids[2].as_str(), ids[1].as_str()]);
    assert_eq!(first["jobs"][0]["document_count"], 1);
    assert_eq!(first["jobs"][0]["progress"]["total_documents"], 1);
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = call_json(
        &harness,
        get(&token, &format!("/api/v1/batch?limit=2&cursor={cursor}")),
    )
    .await;
    assert_eq!(second["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(second["jobs"][0]["job_id"], ids[0].as_str());
    assert!(second["next_cursor"].is_null());

    let (_, cancelled) = call_json(&harness, get(&token, "/api/v1/batch?status=cancelled")).await;
    assert_eq!(cancelled["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(cancelled["jobs"][0]["job_id"], ids[0].as_str());
    let (_, none) = call_json(
        &harness,
        get(&token, "/api/v1/batch?since=2999-01-01T00:00:00Z"),
    )
    .await;
    assert!(none["jobs"].as_array().unwrap().is_empty());

    let (status, error) = call_json(
        &harness,
        get(&token, "/api/v1/batch?status=done&limit=0&since=yesterday"),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = error["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["status", "since", "limit"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_needs_a_known_bearer_token() {
    let harness = Harness::new(None);
    let token = key(&harness, "acme", Tier::Standard).await;
    let (_, accepted) = call_json(&harness, post(&token, &plans())).await;
    let job_id = accepted["job_id"].as_str().unwrap().to_owned();
    let routes = [
        ("POST", "/api/v1/batch/upload".to_owned()),
        ("GET", format!("/api/v1/batch/status/{job_id}")),
        ("GET", format!("/api/v1/batch/results/{job_id}")),
        ("GET", "/api/v1/batch".to_owned()),
        ("DELETE", format!("/api/v1/batch/{job_id}")),
        ("POST", format!("/api/v1/batch/{job_id}/retry")),
        ("GET", "/api/v1/metrics".to_owned()),
        ("GET", "/api/v1/openapi.json".to_owned()),
    ];
    for (method, uri) in &routes {
        for (authorization, message) in [
            (None, "missing bearer token"),
            (
                Some("Basic abc".to_owned()),
                "the Authorization header must be `Bearer <token>`",
            ),
            (
                Some(format!("Bearer {}", generate_token())),
                "unknown API key",
            ),
        ] {
            let mut request = Request::builder()
                .method(*method)
                .uri(uri)
                .header(header::CONTENT_TYPE, "application/json");
            if let Some(value) = &authorization {
                request = request.header(header::AUTHORIZATION, value);
            }
            let response = app(state(&harness))
                .oneshot(request.body(Body::from(plans().to_string())).unwrap())
                .await
                .unwrap();
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {uri}"
            );
            assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            let body: Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(body["error"]["code"], "unauthorized");
            assert_eq!(body["error"]["message"], message, "{method} {uri}");
        }
    }
    // Another tenant's key sees none of acme's jobs.
    let other = key(&harness, "globex", Tier::Standard).await;
    let (status, _) = call_json(
        &harness,
        get(&other, &format!("/api/v1/batch/status/{job_id}")),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, listed) = call_json(&harness, get(&other, "/api/v1/batch")).await;
    assert!(listed["jobs"].as_array().unwrap().is_empty());
    // Nothing was cancelled by the refused requests.
    let (_, progress) = call_json(
        &harness,
        get(&token, &format!("/api/v1/batch/status/{job_id}")),
    )
    .await;
    assert_eq!(progress["status"], "queued");
}
