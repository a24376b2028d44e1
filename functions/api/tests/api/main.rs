//! The API router against the embedded backend and the real plugin host,
//! called with `oneshot`: the upload → status → results flow with the field
//! names batch clients read, every validation error, 404s and cancel.

// Test code: a failed unwrap fails the test.
#![allow(clippy::unwrap_used)]

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use docket_api::{AppState, app};
use docket_core::auth::{Tier, generate_token};
use docket_core::model::TenantId;
use docket_core::pipeline::PipelineSettings;
use docket_core::ports::JobStore;
use docket_tests::Harness;
use futures_util::StreamExt;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

async fn call_with(state: AppState, request: Request<Body>) -> (StatusCode, Value, HeaderMap) {
    let response = app(state).oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, body, headers)
}

fn state(harness: &Harness) -> AppState {
    state_shedding_at(harness, 1_000)
}

/// An API instance that refuses new batches past `max_queue_depth` waiting
/// work items.
fn state_shedding_at(harness: &Harness, max_queue_depth: u64) -> AppState {
    AppState {
        pipeline: harness.pipeline.with_settings(PipelineSettings {
            max_queue_depth: Some(max_queue_depth),
            ..Harness::settings()
        }),
        max_documents: 500,
        max_body_bytes: 256 * 1024,
        default_evaluator: "decalogo".into(),
    }
}

/// A new API key for `tenant`; returns the token.
async fn key(harness: &Harness, tenant: &str, tier: Tier) -> String {
    harness
        .pipeline
        .issue_api_key(&TenantId::parse(tenant).unwrap(), tier)
        .await
        .unwrap()
        .token
}

async fn call(harness: &Harness, request: Request<Body>) -> (StatusCode, String) {
    let response = app(state(harness)).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

async fn call_json(harness: &Harness, request: Request<Body>) -> (StatusCode, Value) {
    let (status, body) = call(harness, request).await;
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

fn post(token: &str, body: &Value) -> Request<Body> {
    Request::post("/api/v1/batch/upload")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::from(body.to_string()))
        .unwrap()
}

/// Requests built by [`post`] sent elsewhere.
trait UriOf {
    fn uri_of(self, uri: &str) -> Self;
}

impl UriOf for Request<Body> {
    fn uri_of(mut self, uri: &str) -> Self {
        *self.uri_mut() = uri.parse().unwrap();
        self
    }
}

fn get(token: &str, uri: &str) -> Request<Body> {
    Request::get(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap()
}

fn delete(token: &str, uri: &str) -> Request<Body> {
    Request::delete(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap()
}

fn plans() -> Value {
    json!({"documents": [
        {"id": "roble", "title": "El Roble", "content": include_str!("../../../../examples/plans/plan-vereda-el-roble.txt"), "metadata": {"region": "norte"}},
        {"id": "harbor", "title": "Harbor Town", "content": include_str!("../../../../examples/plans/harbor-town-strategy.txt")},
    ], "options": {"priority": "high", "include_evidence": true}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_status_results_flow_uses_the_field_names_clients_read() {
    let harness = Harness::new(None);
    let token = key(&harness, "acme", Tier::Premium).await;
    let (status, accepted) = call_json(&harness, post(&token, &plans())).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    assert_eq!(accepted["status"], "queued");
    assert_eq!(accepted["document_count"], 2);
    let job_id = accepted["job_id"].as_str().unwrap().to_owned();
    assert_eq!(
        accepted["status_url"],
        format!("/api/v1/batch/status/{job_id}")
    );
    assert_eq!(
        accepted["results_url"],
        format!("/api/v1/batch/results/{job_id}")
    );

    let (status, progress) = call_json(
        &harness,
        get(&token, &format!("/api/v1/batch/status/{job_id}")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(progress["job_id"], job_id.as_str());
    assert_eq!(progress["status"], "queued");
    assert_eq!(progress["progress"]["percent_complete"], 0.0);
    assert_eq!(progress["progress"]["completed_documents"], 0);
    assert_eq!(progress["progress"]["total_documents"], 2);
    assert_eq!(progress["progress"]["failed_documents"], 0);
    assert_eq!(progress["chunks"]["total"], 2);
    assert_eq!(progress["chunks"]["active"], 2);
    assert!(progress["estimated_seconds_remaining"].is_null());

    // Not finished yet: 202 with progress.
    let (status, pending) = call_json(
        &harness,
        get(&token, &format!("/api/v1/batch/results/{job_id}")),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(pending["progress"]["total_documents"], 2);

    let id = docket_core::JobId::parse(&job_id).unwrap();
    harness.run_until_finalized(&id, 20).await;
    let (status, done) = call_json(
        &harness,
        get(&token, &format!("/api/v1/batch/status/{job_id}")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(done["status"], "completed");
    assert_eq!(done["progress"]["percent_complete"], 100.0);
    assert_eq!(done["progress"]["completed_documents"], 2);

    let (status, results) = call_json(
        &harness,
        get(&token, &format!("/api/v1/batch/results/{job_id}")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(results["document_count"], 2);
    assert_eq!(results["summary"]["avg_decalogo_score"], 20.0);
    assert_eq!(results["summary"]["avg_questionnaire_score"], 9.0);
    assert_eq!(results["summary"]["total_violations"], 5);
    assert_eq!(results["summary"]["documents_with_warnings"], 1);
    let documents = results["documents"].as_array().unwrap();
    assert_eq!(documents[0]["id"], "roble");
    assert_eq!(documents[0]["scores"]["decalogo"]["total_score"], 15.0);
    assert_eq!(documents[1]["scores"]["decalogo"]["total_score"], 25.0);
    assert!(documents[0]["processing_time_seconds"].as_f64().unwrap() > 0.0);
    assert!(documents[0]["findings"][0]["evidence"]["start"].is_number());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_come_without_evidence_and_as_jsonl_or_csv() {
    let harness = Harness::new(None);
    let token = key(&harness, "acme", Tier::Premium).await;
    let (_, accepted) = call_json(&harness, post(&token, &plans())).await;
    let job_id = accepted["job_id"].as_str().unwrap().to_owned();
    harness
        .run_until_finalized(&docket_core::JobId::parse(&job_id).unwrap(), 20)
        .await;
    let base = format!("/api/v1/batch/results/{job_id}");

    let (_, bare) = call_json(
        &harness,
        get(&token, &format!("{base}?include_evidence=false")),
    )
    .await;
    let findings = bare["documents"][0]["findings"].as_array().unwrap();
    assert!(!findings.is_empty());
    assert!(
        findings.iter().all(|f| f.get("evidence").is_none()),
        "{findings:?}"
    );

    let (status, lines) = call(&harness, get(&token, &format!("{base}?format=jsonl"))).await;
    assert_eq!(status, StatusCode::OK);
    let lines: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["id"], "harbor");

    let (status, csv) = call(&harness, get(&token, &format!("{base}?format=csv"))).await;
    assert_eq!(status, StatusCode::OK);
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(
        rows[0],
        "id,title,status,processing_time_seconds,decalogo_score,decalogo_max,questionnaire_score,questionnaire_max,violations,warnings,error_category,error_message"
    );
    assert!(
        rows[1].starts_with("roble,El Roble,completed,"),
        "{}",
        rows[1]
    );
    assert!(rows[1].ends_with(",15,100,8,60,2,3,,"), "{}", rows[1]);

    let (status, error) = call_json(&harness, get(&token, &format!("{base}?format=xml"))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        error["error"]["message"],
        "format: unknown format \"xml\": use json, jsonl or csv"
    );
}

async fn rejected(harness: &Harness, token: &str, body: Value) -> (StatusCode, Value) {
    call_json(harness, post(token, &body)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_uploads_say_what_and_where_and_store_nothing() {
    let harness = Harness::new(None);
    let token = key(&harness, "acme", Tier::Premium).await;
    let (status, error) = rejected(&harness, &token, json!({"documents": []})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error["error"]["code"], "invalid_request");
    assert_eq!(
        error["error"]["message"],
        "documents: at least one document is required"
    );

    let (status, error) = rejected(&harness, &token,
        json!({"documents": [
            {"id": "a", "content": "fine"},
            {"id": "b", "content": "   "},
            {"id": "a", "content": "again"},
            {"content": "no id"},
            {"id": "e", "content": 42},
            {"id": "f", "content": "fine", "metadata": [1, 2]},
        ], "options": {"priority": "urgent", "evaluator": "nope", "tolerated_failure_percent": 150}}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<(String, String)> = error["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["field"].as_str().unwrap().into(),
                d["message"].as_str().unwrap().into(),
            )
        })
        .collect();
    let expected = [
        ("documents[1].content", "empty"),
        ("documents[2].id", "duplicate of documents[0].id \"a\""),
        ("documents[3].id", "missing"),
        ("documents[4].content", "must be a string"),
        ("documents[5].metadata", "must be a JSON object"),
        (
            "options.priority",
            "unknown priority \"urgent\": use high, normal or low",
        ),
        (
            "options.tolerated_failure_percent",
            "must be between 0 and 100",
        ),
        (
            "options.evaluator",
            "unknown evaluator \"nope\" (known: decalogo, hostile, wordstats)",
        ),
    ];
    assert_eq!(
        fields,
        expected.map(|(f, m)| (f.to_owned(), m.to_owned())).to_vec()
    );

    let (status, error) = rejected(
        &harness,
        &token,
        json!({"documents": [{"id": "a", "content": "x"}], "extra": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `extra`"),
        "{error}"
    );

    let many: Vec<Value> = (0..51)
        .map(|n| json!({"id": format!("d{n}"), "content": "x"}))
        .collect();
    let standard = key(&harness, "acme", Tier::Standard).await;
    let (status, error) = rejected(&harness, &standard, json!({ "documents": many })).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error["error"]["code"], "tier_limit");
    assert_eq!(
        error["error"]["message"],
        "the standard tier allows 50 documents per batch; this batch has 51"
    );
    let huge: Vec<Value> = (0..501)
        .map(|n| json!({"id": format!("d{n}"), "content": "x"}))
        .collect();
    let (status, error) = rejected(&harness, &token, json!({ "documents": huge })).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        error["error"]["message"],
        "a batch of 501 documents exceeds the limit of 500"
    );

    let (status, error) = call_json(
        &harness,
        Request::post("/api/v1/batch/upload")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::from("{not json"))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["error"]["code"], "malformed_request");

    let (status, error) = call_json(
        &harness,
        Request::post("/api/v1/batch/upload")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::from("{}"))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(error["error"]["code"], "unsupported_media_type");

    // Nothing was stored by any of these.
    let jobs = harness
        .pipeline
        .list_jobs(
            &TenantId::parse("acme").unwrap(),
            &docket_core::ports::JobFilter {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(jobs.is_empty());
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_is_refused_with_413_without_reading_it_whole() {
    let harness = Harness::new(None);
    let token = key(&harness, "acme", Tier::Standard).await;
    let big = json!({"documents": [{"id": "big", "content": "x".repeat(300 * 1024)}]});
    let (status, error) = call_json(&harness, post(&token, &big)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error["error"]["code"], "too_large");

    // A 1 GiB body without Content-Length: reading stops at the limit.
    const CHUNK: usize = 64 * 1024;
    let pulled = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = pulled.clone();
    let chunks = futures_util::stream::iter(0..16_384).map(move |n| {
        counter.fetch_add(CHUNK, std::sync::atomic::Ordering::SeqCst);
        let bytes = if n == 0 {
            let mut start = br#"{"documents": [{"id": "a", "content": ""#.to_vec();
            start.resize(CHUNK, b'x');
            bytes::Bytes::from(start)
        } else {
            bytes::Bytes::from(vec![b'x'; CHUNK])
        };
        Ok::<_, std::io::Error>(bytes)
    });
    let request = Request::post("/api/v1/batch/upload")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::from_stream(chunks))
        .unwrap();
    let (status, error, _) = call_with(state(&harness), request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{error}");
    let read = pulled.load(std::sync::atomic::Ordering::SeqCst);
    let limit = state(&harness).max_body_bytes;
    assert!(
        read <= limit + 2 * CHUNK,
        "read {read} bytes of a 1 GiB body"
    );
    let (_, listed) = call_json(&harness, get(&token, "/api/v1/batch")).await;
    assert!(listed["jobs"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_past_the_tiers_bytes_is_413() {
    let harness = Harness::new(None);
    let token = key(&harness, "acme", Tier::Standard).await;
    let state = AppState {
        max_body_bytes: 64 << 20,
        ..state(&harness)
    };
    let content = "palabra ".repeat(700 * 1024);
    let documents: Vec<Value> = (0..2)
        .map(|n| json!({"id": format!("d{n}"), "content": content}))
        .collect();
    let (status, error, _) = call_with(state, post(&token, &json!({"documents": documents}))).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        error["error"]["message"],
        format!(
            "the standard tier allows 10485760 bytes of document text per batch; this batch has {}",
            2 * content.len()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_jobs_then_the_upload_bucket_answer_429_with_retry_after() {
    let harness = Harness::new(None);
    let token = key(&harness, "acme", Tier::Standard).await;
    let one = |n: usize| json!({"documents": [{"id": format!("d{n}"), "content": "text"}]});
    let mut jobs = Vec::new();
    for n in 0..10 {
        let (status, accepted) = call_json(&harness, post(&token, &one(n))).await;
        assert_eq!(status, StatusCode::ACCEPTED, "upload {n}: {accepted}");
        jobs.push(accepted["job_id"].as_str().unwrap().to_owned());
    }
    // Ten jobs queued: the standard tier's concurrency.
    let (status, error, headers) = call_with(state(&harness), post(&token, &one(10))).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(error["error"]["code"], "too_many_jobs");
    assert_eq!(headers[header::RETRY_AFTER], "30");
    for job in &jobs {
        let (status, _) =
            call_json(&harness, delete(&token, &format!("/api/v1/batch/{job}"))).await;
        assert_eq!(status, StatusCode::OK);
    }
    // The burst of 10 is spent: the next token comes at 30 a minute.
    let (status, error, headers) = call_with(state(&harness), post(&token, &one(10))).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{error}");
    assert_eq!(error["error"]["code"], "rate_limited");
    assert_eq!(
        error["error"]["message"],
        "the standard tier allows 30 batches a minute (bursts of 10); retry after the delay"
    );
    assert_eq!(headers[header::RETRY_AFTER], "2");
    // Another key has its own bucket.
    let other = key(&harness, "acme", Tier::Standard).await;
    let (status, _, _) = call_with(state(&harness), post(&other, &one(11))).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    // Honouring Retry-After gets through.
    harness.clock.advance(std::time::Duration::from_secs(2));
    let (status, accepted) = call_json(&harness, post(&token, &one(10))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let (_, listed) = call_json(&harness, get(&token, "/api/v1/batch?limit=100")).await;
    assert_eq!(listed["jobs"].as_array().unwrap().len(), 12);
    let (_, listed) = call_json(&harness, get(&other, "/api/v1/batch?limit=100")).await;
    assert_eq!(
        listed["jobs"].as_array().unwrap().len(),
        12,
        "one tenant, two keys"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_batches_are_shed_with_503_past_the_queue_depth() {
    let harness = Harness::new(None);
    let token = key(&harness, "acme", Tier::Premium).await;
    let shallow = || state_shedding_at(&harness, 3);
    let batch = json!({"documents": (0..4).map(|n| json!({"id": n, "content": "text"})).collect::<Vec<_>>()});
    let (status, first, _) = call_with(shallow(), post(&token, &batch)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    let (status, error, headers) = call_with(shallow(), post(&token, &batch)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error["error"]["code"], "overloaded");
    assert_eq!(
        error["error"]["message"],
        "4 work items are waiting (the limit is 3); new batches are refused until the queues drain"
    );
    assert_eq!(headers[header::RETRY_AFTER], "30");
    // Reads still work, and once the queues drain batches are accepted.
    let id = docket_core::JobId::parse(first["job_id"].as_str().unwrap()).unwrap();
    harness.run_until_finalized(&id, 20).await;
    let (status, _, _) = call_with(shallow(), post(&token, &batch)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (_, listed) = call_json(&harness, get(&token, "/api/v1/batch")).await;
    assert_eq!(listed["jobs"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_upload_with_the_same_idempotency_key_returns_the_same_job() {
    let harness = Harness::new(None);
    let token = key(&harness, "acme", Tier::Standard).await;
    let other = key(&harness, "globex", Tier::Standard).await;
    let upload = |token: &str, idempotency: &str| {
        Request::post("/api/v1/batch/upload")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header("Idempotency-Key", idempotency)
            .body(Body::from(plans().to_string()))
            .unwrap()
    };
    let (status, first) = call_json(&harness, upload(&token, "order-17")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    harness.clock.advance(std::time::Duration::from_secs(1));
    let (status, again) = call_json(&harness, upload(&token, "order-17")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(again["job_id"], first["job_id"]);
    harness.clock.advance(std::time::Duration::from_secs(1));
    let (_, different) = call_json(&harness, upload(&token, "order-18")).await;
    assert_ne!(different["job_id"], first["job_id"]);
    let (_, other_tenant) = call_json(&harness, upload(&other, "order-17")).await;
    assert_ne!(other_tenant["job_id"], first["job_id"]);
    // Listing stays newest first whatever the ids look like.
    let (_, listed) = call_json(&harness, get(&token, "/api/v1/batch")).await;
    let ids: Vec<&Value> = listed["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| &j["job_id"])
        .collect();
    assert_eq!(ids, [&different["job_id"], &first["job_id"]], "{listed}");
    let (status, error) = call_json(&harness, upload(&token, "")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        error["error"]["message"],
        "Idempotency-Key: must be 1 to 255 visible ASCII characters"
    );
}

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
    let outcomes = harness.backend.store.outcomes(&recovery_job).await.unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_needs_no_key_and_reports_components_and_queue_depth() {
    let harness = Harness::new(None);
    let token = key(&harness, "acme", Tier::Premium).await;
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
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line} missing from\n{text}"
        );
    }
    assert!(text.contains("# TYPE docket_evaluation_seconds histogram"));
    assert!(text.contains("docket_throughput_items_per_second{window=\"1h\"}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_urls_to_special_addresses_are_refused_at_upload() {
    let harness = Harness::new(None);
    let token = key(&harness, "acme", Tier::Standard).await;
    for (url, reason) in [
        (
            "http://169.254.169.254/latest/meta-data/",
            "169.254.169.254 is a cloud metadata address",
        ),
        ("http://10.0.0.7/hook", "10.0.0.7 is a private address"),
        ("http://[fe80::1]/hook", "fe80::1 is a link-local address"),
        ("file:///etc/passwd", "must be an http(s) URL"),
    ] {
        let batch =
            json!({"documents": [{"id": "a", "content": "text"}], "options": {"webhook_url": url}});
        let (status, error) = call_json(&harness, post(&token, &batch)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url}");
        assert_eq!(error["error"]["details"][0]["field"], "options.webhook_url");
        let message = error["error"]["details"][0]["message"].as_str().unwrap();
        assert!(message.ends_with(reason), "{url}: {message}");
    }
    let (_, listed) = call_json(&harness, get(&token, "/api/v1/batch")).await;
    assert!(listed["jobs"].as_array().unwrap().is_empty());

    // Loopback is allowed in this deployment (the test harness's policy);
    // the job's status shows where its callback stands.
    let batch = json!({"documents": [{"id": "a", "content": "text"}],
        "options": {"webhook_url": "http://127.0.0.1:9/hook", "evaluator": "wordstats"}});
    let (status, accepted) = call_json(&harness, post(&token, &batch)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let job_id = accepted["job_id"].as_str().unwrap();
    harness
        .run_until_finalized(&docket_core::JobId::parse(job_id).unwrap(), 20)
        .await;
    let (_, report) = call_json(
        &harness,
        get(&token, &format!("/api/v1/batch/status/{job_id}")),
    )
    .await;
    assert_eq!(report["webhook"]["state"], "pending");
    assert_eq!(report["webhook"]["attempts"], 0);
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
    assert_eq!(paths.len(), 9);
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
