//! Files put before the batch: upload slots, the local `PUT` that takes a
//! slot's file, and a batch that names the files by key. Every refusal says
//! why, and nothing is stored for a refused file.

use super::*;

fn ask(token: &str, files: &Value) -> Request<Body> {
    post(token, &json!({ "files": files })).uri_of("/api/v1/batch/files")
}

/// `PUT` of `bytes` to a slot's URL (made relative: the router has no
/// host), with the `Content-Length` a client sends.
fn put(url: &str, bytes: &[u8]) -> Request<Body> {
    let path = &url[url.find("/api/").unwrap()..];
    Request::put(path)
        .header(header::CONTENT_LENGTH, bytes.len())
        .body(Body::from(bytes.to_vec()))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_put_through_slots_make_a_batch_by_key() {
    let harness = Harness::new(None);
    let token = key(&harness, "acme", Tier::Premium).await;
    let pdf =
        docket_intake::pdf::write_text_pdf(&["Metas e indicadores del plan.".into()]).unwrap();
    let notes = b"Plain notes on the plan.".to_vec();
    let broken = b"%PDF-1.7 truncated".to_vec();
    let files = [
        ("plan.pdf", &pdf),
        ("notes.txt", &notes),
        ("broken.pdf", &broken),
    ];
    let asked: Vec<Value> = files
        .iter()
        .map(|(name, bytes)| json!({"name": name, "bytes": bytes.len()}))
        .collect();
    let request = ask(&token, &json!(asked)).header_host("docket.test:8080");
    let (status, answer, _) = call_with(state(&harness), request).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let slots = answer["files"].as_array().unwrap();
    assert_eq!(slots.len(), 3);
    let upload = answer["upload_id"].as_str().unwrap();
    for ((name, bytes), slot) in files.iter().zip(slots) {
        assert_eq!(slot["name"], *name);
        assert_eq!(slot["method"], "PUT");
        assert!(
            slot["key"]
                .as_str()
                .unwrap()
                .starts_with(&format!("uploads/acme/{upload}/")),
            "{slot}"
        );
        // The embedded store presigns nothing: the URL is this API's own.
        let url = slot["url"].as_str().unwrap();
        assert!(
            url.starts_with("http://docket.test:8080/api/v1/files/"),
            "{url}"
        );
        let (status, stored, _) = call_with(state(&harness), put(url, bytes)).await;
        assert_eq!(status, StatusCode::OK, "{stored}");
        assert_eq!(stored["bytes"], bytes.len());
    }
    let documents: Vec<Value> = files
        .iter()
        .zip(slots)
        .map(|((name, _), slot)| json!({"id": name, "key": slot["key"]}))
        .collect();
    let batch = json!({"documents": documents, "options": {"evaluator": "wordstats"}});
    let (status, accepted) = call_json(&harness, post(&token, &batch)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let job_id = docket_core::JobId::parse(accepted["job_id"].as_str().unwrap()).unwrap();
    harness.run_until_finalized(&job_id, 20).await;
    let (_, results) = call_json(
        &harness,
        get(&token, &format!("/api/v1/batch/results/{job_id}")),
    )
    .await;
    let documents = results["documents"].as_array().unwrap();
    assert_eq!(documents[0]["status"], "completed", "{}", documents[0]);
    assert!(documents[0]["data"]["words"].as_u64().unwrap() >= 4);
    assert_eq!(documents[1]["status"], "completed", "{}", documents[1]);
    assert_eq!(documents[2]["status"], "failed");
    assert_eq!(documents[2]["error"]["category"], "DATA");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slot_requests_are_checked_field_by_field() {
    let harness = Harness::new(None);
    let token = key(&harness, "acme", Tier::Premium).await;
    let limit = Harness::settings().max_file_bytes;
    let (status, body, _) = call_with(
        state(&harness),
        ask(
            &token,
            &json!([{"name": "", "bytes": 1}, {"name": "a.pdf", "bytes": 0}, {"name": "b.pdf", "bytes": limit + 1}]),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let fields = field_errors(&body);
    let range = format!("must be from 1 to {limit} (the limit per file)");
    assert_eq!(
        fields,
        [
            ("files[0].name", "must not be empty"),
            ("files[1].bytes", range.as_str()),
            ("files[2].bytes", range.as_str()),
        ]
    );
    let (status, body, _) = call_with(state(&harness), ask(&token, &json!([]))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        body["error"]["details"][0]["message"],
        "at least one file is required"
    );
    let many: Vec<Value> = (0..=docket_api::MAX_SLOTS)
        .map(|n| json!({"name": format!("{n}.txt"), "bytes": 1}))
        .collect();
    let (status, body, _) = call_with(state(&harness), ask(&token, &json!(many))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        body["error"]["details"][0]["message"],
        "at most 1000 files a call; this asks for 1001"
    );
    // Without a key: 401, as every route.
    let request = Request::post("/api/v1/batch/files")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"files": [{"name": "a", "bytes": 1}]}"#))
        .unwrap();
    let (status, _, _) = call_with(state(&harness), request).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// A forged URL, a file of another length than asked, or one that streams
/// past it: refused with the reason, and nothing is stored under the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_is_refused_unless_its_url_and_length_are_the_slots() {
    let harness = Harness::new(None);
    let token = key(&harness, "acme", Tier::Premium).await;
    let (_, answer, _) = call_with(
        state(&harness),
        ask(&token, &json!([{"name": "a.txt", "bytes": 10}])),
    )
    .await;
    let slot = &answer["files"][0];
    let url = slot["url"].as_str().unwrap();
    let key = slot["key"].as_str().unwrap();

    let (token_part, tag) = url.rsplit_once('.').unwrap();
    let forged = format!("{token_part}.{}", tag.chars().rev().collect::<String>());
    let (status, body, _) = call_with(state(&harness), put(&forged, b"0123456789")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["message"], "this upload URL is not valid");

    let (status, body, _) = call_with(state(&harness), put(url, b"012345678")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body["error"]["message"],
        "the file has 9 bytes; its upload URL was made for 10"
    );

    // No Content-Length (a streamed body): cut off past the slot's length.
    let chunks = futures_util::stream::iter(
        [b"01234".to_vec(), b"56789".to_vec(), b"!".to_vec()]
            .into_iter()
            .map(Ok::<_, std::io::Error>),
    );
    let path = &url[url.find("/api/").unwrap()..];
    let request = Request::put(path).body(Body::from_stream(chunks)).unwrap();
    let (status, body, _) = call_with(state(&harness), request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(
        body["error"]["message"],
        "the file is longer than the 10 bytes its upload URL was made for"
    );
    assert!(
        harness.ports.blobs.size(key).await.is_err(),
        "{key} was stored"
    );

    // Streamed and shorter than the slot: refused, nothing stored.
    let chunks = futures_util::stream::iter([Ok::<_, std::io::Error>(b"01234".to_vec())]);
    let request = Request::put(path).body(Body::from_stream(chunks)).unwrap();
    let (status, body, _) = call_with(state(&harness), request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body["error"]["message"],
        "the file ended after 5 bytes; its upload URL was made for 10"
    );
    assert!(
        harness.ports.blobs.size(key).await.is_err(),
        "{key} was stored"
    );

    let (status, _, _) = call_with(state(&harness), put(url, b"0123456789")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(harness.ports.blobs.size(key).await.unwrap(), 10);
}
