//! Body and tier limits (413, 403), quotas (429), load shedding (503) and idempotent retries of an upload.

use super::*;

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
