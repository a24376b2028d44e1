//! Files over the API: `multipart/form-data` uploads as `curl -F` sends
//! them. The good files complete, a broken one fails alone with its
//! reason, a file past the limit is a 413 while it is read, and every
//! malformed part is named.

use docket_intake::pdf::write_text_pdf;

use super::*;

const BOUNDARY: &str = "docket-test-boundary-7MA4YWxkTrZu0gW";

/// A part of a multipart body: its name, file name and bytes.
struct Part<'a> {
    name: &'a str,
    file_name: Option<&'a str>,
    bytes: Vec<u8>,
}

fn file<'a>(file_name: &'a str, bytes: &[u8]) -> Part<'a> {
    Part {
        name: "file",
        file_name: Some(file_name),
        bytes: bytes.to_vec(),
    }
}

fn field<'a>(name: &'a str, value: &str) -> Part<'a> {
    Part {
        name,
        file_name: None,
        bytes: value.as_bytes().to_vec(),
    }
}

fn multipart(token: &str, parts: &[Part<'_>]) -> Request<Body> {
    let mut body = Vec::new();
    for part in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        let disposition = match part.file_name {
            Some(file_name) => format!(
                "Content-Disposition: form-data; name=\"{}\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n",
                part.name
            ),
            None => format!("Content-Disposition: form-data; name=\"{}\"\r\n", part.name),
        };
        body.extend_from_slice(disposition.as_bytes());
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(&part.bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    Request::post("/api/v1/batch/upload")
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::from(body))
        .unwrap()
}

/// An API whose files may be at most `max_file_bytes`.
fn with_file_limit(harness: &Harness, max_file_bytes: u64) -> AppState {
    AppState {
        pipeline: harness.pipeline.with_settings(PipelineSettings {
            max_file_bytes,
            ..Harness::settings()
        }),
        ..state(harness)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_upload_as_multipart_and_a_broken_one_fails_alone() {
    let harness = Harness::new(None);
    let token = key(&harness, "acme", Tier::Premium).await;
    let pdf = write_text_pdf(&[
        "Diagnóstico del municipio.".into(),
        "Metas con indicadores y línea base 2024.".into(),
    ])
    .unwrap();
    let request = multipart(
        &token,
        &[
            field(
                "options",
                r#"{"evaluator": "wordstats", "priority": "high"}"#,
            ),
            // Named .bin: its type is told by its content.
            file("plan.bin", &pdf),
            field("metadata", r#"{"region": "norte"}"#),
            file("notes.txt", b"Plain notes on the plan."),
            file("broken.pdf", b"%PDF-1.7 truncated"),
            file("notes.txt", b"A second file of the same name."),
        ],
    );
    let (status, accepted, _) = call_with(state(&harness), request).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    assert_eq!(accepted["document_count"], 4);
    let job_id = docket_core::JobId::parse(accepted["job_id"].as_str().unwrap()).unwrap();
    let job = harness.run_until_finalized(&job_id, 20).await;
    assert_eq!(job.options.priority.as_str(), "high");
    assert_eq!(job.evaluator.name, "wordstats");
    let (status, results) = call_json(
        &harness,
        get(&token, &format!("/api/v1/batch/results/{job_id}")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let documents = results["documents"].as_array().unwrap();
    let ids: Vec<&str> = documents
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["plan.bin", "notes.txt", "broken.pdf", "notes.txt#2"]);
    for n in [0, 1, 3] {
        assert_eq!(documents[n]["status"], "completed", "{}", documents[n]);
    }
    assert!(documents[0]["data"]["words"].as_u64().unwrap() > 5);
    assert_eq!(documents[2]["status"], "failed");
    assert_eq!(documents[2]["error"]["category"], "DATA");
    assert!(
        documents[2]["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("unreadable PDF: "),
        "{}",
        documents[2]
    );
    // The metadata part went with the file before it.
    let outcomes = harness
        .ports
        .jobs
        .outcomes_page(&job_id, None, 10)
        .await
        .unwrap();
    assert_eq!(outcomes[0].metadata, json!({"region": "norte"}));
    assert_eq!(outcomes[1].metadata, Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_past_the_limit_is_refused_while_it_is_read() {
    let harness = Harness::new(None);
    let token = key(&harness, "acme", Tier::Premium).await;
    let state = with_file_limit(&harness, 10_000);
    let request = multipart(
        &token,
        &[
            file("small.txt", b"fits"),
            file("big.txt", &vec![b'x'; 10_001]),
        ],
    );
    let (status, body, _) = call_with(state.clone(), request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"]["code"], "too_large", "{body}");
    assert_eq!(
        body["error"]["message"],
        "file \"big.txt\" is over the limit of 10000 bytes per file"
    );
    // Past the body limit (256 KiB here): 413 as well.
    let request = multipart(&token, &[file("huge.txt", &vec![b'x'; 300 * 1024])]);
    let (status, body, _) = call_with(with_file_limit(&harness, 1 << 30), request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    // No job was made.
    let (_, list) = call_json(&harness, get(&token, "/api/v1/batch")).await;
    assert_eq!(list["jobs"], json!([]), "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_parts_are_named() {
    let harness = Harness::new(None);
    let token = key(&harness, "acme", Tier::Premium).await;
    let request = multipart(
        &token,
        &[
            field("metadata", r#"{"a": 1}"#),
            Part {
                name: "file",
                file_name: None,
                bytes: b"no name".to_vec(),
            },
            field("attachment", "x"),
            field("options", r#"{"priority": "urgent", "colour": 1}"#),
        ],
    );
    let (status, body, _) = call_with(state(&harness), request).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let fields = field_errors(&body);
    assert_eq!(
        fields[..3],
        [
            (
                "parts[0]",
                "a metadata part comes after the file it describes"
            ),
            ("parts[1]", "a file part needs a filename"),
            (
                "parts[2]",
                "unknown part \"attachment\" (expected file, metadata, options or one of \
                 priority, evaluator, webhook_url, tolerated_failure_percent, config, \
                 include_evidence, include_questionnaire)"
            ),
        ]
    );
    assert_eq!(fields[3].0, "options.colour", "{fields:?}");
    assert_eq!(fields[4], ("file", "at least one file is required"));

    // Not multipart at all under a multipart content type: 400.
    let request = Request::post("/api/v1/batch/upload")
        .header(header::CONTENT_TYPE, "multipart/form-data; boundary=x")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::from("garbage"))
        .unwrap();
    let (status, body, _) = call_with(state(&harness), request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_batch_references_only_the_tenants_uploads() {
    let harness = Harness::new(None);
    let token = key(&harness, "acme", Tier::Premium).await;
    harness
        .ports
        .blobs
        .put("uploads/acme/u1/00000-a.txt", b"uploaded text".to_vec())
        .await
        .unwrap();
    let body = json!({"documents": [
        {"id": "a", "key": "uploads/acme/u1/00000-a.txt"},
        {"id": "b", "key": "uploads/other/u1/00000-b.txt"},
        {"id": "c", "key": "results/job_x/documents.jsonl"},
        {"id": "d", "path": "a.txt"},
        {"id": "e", "content": "x", "key": "uploads/acme/u1/00000-a.txt"},
    ], "options": {"evaluator": "wordstats"}});
    let (status, refused) = call_json(&harness, post(&token, &body)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    let fields: Vec<&str> = refused["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "documents[1].key",
            "documents[2].key",
            "documents[3].path",
            "documents[4].content"
        ]
    );
    let body = json!({"documents": [{"id": "a", "key": "uploads/acme/u1/00000-a.txt"}],
        "options": {"evaluator": "wordstats"}});
    let (status, accepted) = call_json(&harness, post(&token, &body)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let job_id = docket_core::JobId::parse(accepted["job_id"].as_str().unwrap()).unwrap();
    harness.run_until_finalized(&job_id, 20).await;
    let results = harness.results(&job_id).await;
    assert_eq!(results["documents"][0]["status"], "completed");
    assert_eq!(results["documents"][0]["data"]["words"], 2);
}

/// A FastAPI client sends each option as a form part of its own, flags as
/// Python spells them (`True`); a part overrides the `options` JSON, and a
/// bad one is a 422 naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_come_as_form_parts_with_flags_as_fastapi_reads_them() {
    let harness = Harness::new(None);
    let token = key(&harness, "acme", Tier::Premium).await;
    let plan = b"Diagnostico del municipio. Metas con indicadores.";
    let request = multipart(
        &token,
        &[
            file("plan.txt", plan),
            field(
                "options",
                r#"{"priority": "low", "include_evidence": true}"#,
            ),
            field("priority", "high"),
            field("include_evidence", "False"),
            field("include_questionnaire", "1"),
            field("tolerated_failure_percent", "25"),
        ],
    );
    let (status, accepted, _) = call_with(state(&harness), request).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let id = docket_core::JobId::parse(accepted["job_id"].as_str().unwrap()).unwrap();
    let job = harness.ports.jobs.job(&id).await.unwrap();
    assert_eq!(job.options.priority, docket_core::model::Priority::High);
    assert!(!job.options.include_evidence);
    assert_eq!(job.config["include_questionnaire"], true);
    assert_eq!(job.options.tolerated_failure_percent, 25.0);

    let request = multipart(
        &token,
        &[
            file("plan.txt", plan),
            field("include_evidence", "perhaps"),
            field("tolerated_failure_percent", "a quarter"),
        ],
    );
    let (status, error, _) = call_with(state(&harness), request).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(
        field_errors(&error),
        [
            (
                "include_evidence",
                "\"perhaps\" is not a boolean (use true/false, 1/0, yes/no, on/off)"
            ),
            ("tolerated_failure_percent", "\"a quarter\" is not a number"),
        ]
    );
}
