//! Files past one request body: upload slots are presigned S3 PUTs, the
//! files go to S3 by real HTTP without the API key, and the batch that
//! names them by key completes.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_put_to_presigned_urls_make_a_batch_that_completes() {
    let (settings, pipeline, aws) = deployment().await;
    let token = api_key(&pipeline).await;
    let router = upload_function(&settings).await;
    let pdf = docket_intake::pdf::write_text_pdf(&[
        "Diagnóstico del municipio y su línea base.".into(),
        "Metas con indicadores para 2027.".into(),
    ])
    .unwrap();
    let notes = b"Plain notes on the plan, sent as a file.".to_vec();
    let files = [("plan.pdf", &pdf), ("notes.txt", &notes)];
    let asked = json!({"files": files
        .iter()
        .map(|(name, bytes)| json!({"name": name, "bytes": bytes.len()}))
        .collect::<Vec<_>>()});
    let (status, answer) = call_api(
        &router,
        api_request("POST", "/api/v1/batch/files", &token, Some(&asked)),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let slots = answer["files"].as_array().unwrap();
    let http = reqwest::Client::new();
    for ((name, bytes), slot) in files.iter().zip(slots) {
        let url = slot["url"].as_str().unwrap();
        assert!(url.contains("X-Amz-Signature="), "{url}");
        let mut put = http.put(url).body(bytes.to_vec());
        for (header, value) in slot["headers"].as_object().unwrap() {
            if !header.eq_ignore_ascii_case("host")
                && !header.eq_ignore_ascii_case("content-length")
            {
                put = put.header(header, value.as_str().unwrap());
            }
        }
        let response = put.send().await.unwrap();
        assert_eq!(
            response.status(),
            200,
            "{name}: {}",
            response.text().await.unwrap()
        );
        let key = slot["key"].as_str().unwrap();
        assert!(key.starts_with("uploads/acme/"), "{key}");
        assert_eq!(aws.blobs.size(key).await.unwrap(), bytes.len() as u64);
    }
    let batch = json!({
        "documents": files
            .iter()
            .zip(slots)
            .map(|((name, _), slot)| json!({"id": name, "key": slot["key"]}))
            .collect::<Vec<_>>(),
        "options": {"evaluator": "wordstats"},
    });
    let (status, accepted) = call_api(
        &router,
        api_request("POST", "/api/v1/batch/upload", &token, Some(&batch)),
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    let job = JobId::parse(accepted["job_id"].as_str().unwrap()).unwrap();
    run_until_finished(&pipeline, &aws, &settings.names, std::slice::from_ref(&job)).await;
    let results = stored_results(&aws, &job).await;
    assert_eq!(results["status"], "completed", "{results}");
    assert_eq!(results["summary"]["completed_documents"], 2, "{results}");
    let words: Vec<u64> = results["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["data"]["words"].as_u64().unwrap())
        .collect();
    assert!(words[0] >= 10 && words[1] >= 8, "{words:?}");
}
