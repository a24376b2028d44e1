//! The upload → status → results flow, in the field names batch clients read, and the results formats.

use super::*;

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
    let job_id = finished(&harness, &token, &plans()).await;
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

/// Results a page at a time: `limit` documents from `cursor`, the next
/// cursor in the `docket-next-cursor` header and, in JSON, `next_cursor`
/// (null on the last page); pages put together are the whole file. A bad
/// limit or cursor is a 422 naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_come_a_page_at_a_time_with_a_cursor() {
    let harness = Harness::new(None);
    let token = key(&harness, "acme", Tier::Premium).await;
    let documents: Vec<Value> = (0..7)
        .map(
            |n| json!({"id": format!("d{n}"), "content": format!("plan {n} with water and roads")}),
        )
        .collect();
    let (status, accepted) = call_json(
        &harness,
        post(
            &token,
            &json!({"documents": documents, "options": {"evaluator": "wordstats"}}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let job_id = accepted["job_id"].as_str().unwrap().to_owned();
    harness
        .run_until_finalized(&docket_core::JobId::parse(&job_id).unwrap(), 20)
        .await;
    let base = format!("/api/v1/batch/results/{job_id}");

    let (_, whole) = call(&harness, get(&token, &format!("{base}?format=jsonl"))).await;
    let mut pages = String::new();
    let mut cursor: Option<String> = None;
    let mut seen = Vec::new();
    loop {
        let after = cursor
            .as_ref()
            .map(|c| format!("&cursor={c}"))
            .unwrap_or_default();
        let response = app(state(&harness))
            .oneshot(get(&token, &format!("{base}?format=jsonl&limit=3{after}")))
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_TYPE], "application/x-ndjson");
        pages.push_str(std::str::from_utf8(&body).unwrap());
        let next = headers
            .get("docket-next-cursor")
            .map(|v| v.to_str().unwrap().to_owned());
        seen.push(next.clone());
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, [Some("3".to_owned()), Some("6".to_owned()), None]);
    assert_eq!(pages, whole);

    let (status, page) =
        call_json(&harness, get(&token, &format!("{base}?limit=2&cursor=6"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["documents"].as_array().unwrap().len(), 1);
    assert_eq!(page["documents"][0]["id"], "d6");
    assert_eq!(page["next_cursor"], Value::Null);
    assert_eq!(page["summary"]["total_documents"], 7);
    let (_, first) = call_json(&harness, get(&token, &format!("{base}?limit=2"))).await;
    assert_eq!(first["next_cursor"], "2");
    let (_, csv) = call(
        &harness,
        get(&token, &format!("{base}?format=csv&limit=2&cursor=2")),
    )
    .await;
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 3, "{csv}");
    assert!(rows[0].starts_with("id,title,status"));
    assert!(
        rows[1].starts_with("d2,") && rows[2].starts_with("d3,"),
        "{csv}"
    );

    for (query, field, message) in [
        ("limit=0", "limit", "limit: must be between 1 and 10000"),
        ("limit=10001", "limit", "limit: must be between 1 and 10000"),
        (
            "cursor=abc",
            "cursor",
            "cursor: not a cursor this route gave (use the next_cursor of the previous page)",
        ),
    ] {
        let (status, error) = call_json(&harness, get(&token, &format!("{base}?{query}"))).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        assert_eq!(error["error"]["message"], message, "{query}");
        assert_eq!(error["error"]["details"][0]["field"], field, "{error}");
    }
}

/// Where responses have a size limit (Lambda's), results end before the
/// document that would pass it, with the cursor of where they stopped: a
/// whole file asked without `limit` comes in pieces, in each format, that
/// together are the whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_past_the_response_limit_end_early_with_a_cursor() {
    let harness = Harness::new(None);
    let token = key(&harness, "acme", Tier::Premium).await;
    let documents: Vec<Value> = (0..40)
        .map(|n| json!({"id": format!("d{n:02}"), "content": format!("plan {n} with water, roads and schools ").repeat(8)}))
        .collect();
    let (_, accepted) = call_json(
        &harness,
        post(
            &token,
            &json!({"documents": documents, "options": {"evaluator": "wordstats"}}),
        ),
    )
    .await;
    let job_id = accepted["job_id"].as_str().unwrap().to_owned();
    harness
        .run_until_finalized(&docket_core::JobId::parse(&job_id).unwrap(), 20)
        .await;
    let base = format!("/api/v1/batch/results/{job_id}");
    // CSV rows are short: a smaller limit makes as many pieces.
    for (format, budget) in [("json", 4096), ("jsonl", 4096), ("csv", 400)] {
        let limited = AppState {
            max_response_bytes: Some(budget),
            ..state(&harness)
        };
        let (_, whole) = call(&harness, get(&token, &format!("{base}?format={format}"))).await;
        assert!(whole.len() > 3 * budget, "{}: {whole}", whole.len());
        let mut bodies = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let after = cursor
                .as_ref()
                .map(|c| format!("&cursor={c}"))
                .unwrap_or_default();
            let response = app(limited.clone())
                .oneshot(get(&token, &format!("{base}?format={format}{after}")))
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            let next = response
                .headers()
                .get("docket-next-cursor")
                .map(|v| v.to_str().unwrap().to_owned());
            let body = response.into_body().collect().await.unwrap().to_bytes();
            let body = String::from_utf8(body.to_vec()).unwrap();
            assert!(body.len() <= budget, "{format}: {} bytes", body.len());
            bodies.push(body);
            match next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert!(bodies.len() > 3, "{format}: {} pieces", bodies.len());
        match format {
            "json" => {
                let mut ids = Vec::new();
                for (n, body) in bodies.iter().enumerate() {
                    let page: Value = serde_json::from_str(body).unwrap();
                    let last = n + 1 == bodies.len();
                    assert_eq!(page["next_cursor"].is_string(), !last, "{page}");
                    ids.extend(
                        page["documents"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|d| d["id"].clone()),
                    );
                }
                let whole: Value = serde_json::from_str(&whole).unwrap();
                let all: Vec<Value> = whole["documents"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d["id"].clone())
                    .collect();
                assert_eq!(ids, all);
            }
            "jsonl" => assert_eq!(bodies.concat(), whole),
            _ => {
                let header = whole.lines().next().unwrap();
                let mut joined = bodies[0].clone();
                for body in &bodies[1..] {
                    joined.push_str(body.strip_prefix(header).unwrap().trim_start_matches('\n'));
                }
                assert_eq!(joined, whole);
            }
        }
    }
}
