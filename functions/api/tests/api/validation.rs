//! Every validation error says what and where, and a refused batch stores nothing; webhook URLs to special addresses are refused at upload.

use super::*;

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
            "unknown evaluator \"nope\" (known: decalogo, hostile, legacy, tally, wordstats)",
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

/// A body of the wrong shape is named by the exact path of the bad value:
/// the whole body is `body` (not the first words of serde's message).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_of_the_wrong_shape_names_the_exact_path() {
    let harness = Harness::new(None);
    let token = key(&harness, "acme", Tier::Premium).await;
    for (body, field, message) in [
        (json!(7), "body", "invalid type: integer `7`, expected"),
        (
            json!("documents"),
            "body",
            "invalid type: string \"documents\", expected",
        ),
        (
            json!({"documents": "all"}),
            "documents",
            "invalid type: string \"all\", expected",
        ),
        (
            json!({"documents": [{"id": "a", "content": "x"}], "evaluator": "wordstats"}),
            "evaluator",
            "unknown field `evaluator`, expected `documents` or `options`",
        ),
    ] {
        let (status, error) = rejected(&harness, &token, body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let detail = &error["error"]["details"][0];
        assert_eq!(detail["field"], field, "{body}: {error}");
        assert!(
            detail["message"].as_str().unwrap().starts_with(message),
            "{body}: {error}"
        );
    }
}
