//! Results you can query: `GET /api/v1/batch/results/{job_id}` with
//! `status`, a score range (`score`, `min_score`, `max_score`), a finding
//! (`finding` code, `severity`) and text (`q`, in id, title or labels),
//! each alone, combined, and a page at a time; every bad condition is a
//! 422 naming it.

use super::*;

/// The documents' ids of a JSON results body, and its next cursor.
fn page(results: &Value) -> (Vec<&str>, Option<&str>) {
    let ids = results["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    (ids, results["next_cursor"].as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_are_filtered_by_score_finding_and_text() {
    let harness = Harness::new(None);
    let token = key(&harness, "acme", Tier::Premium).await;
    let job_id = finished(&harness, &token, &plans()).await;
    let base = format!("/api/v1/batch/results/{job_id}");
    let query = |q: &str| get(&token, &format!("{base}?{q}"));
    // roble scores 15 (questionnaire 8, 2 violations), harbor 25.
    for (q, expected) in [
        ("min_score=20", vec!["harbor"]),
        ("max_score=20", vec!["roble"]),
        ("min_score=15&max_score=25", vec!["roble", "harbor"]),
        ("min_score=15.5&max_score=24.5", vec![]),
        ("score=questionnaire&max_score=8", vec!["roble"]),
        ("score=nonesuch&min_score=0", vec![]),
        ("q=HARBOR", vec!["harbor"]),
        ("q=el%20roble", vec!["roble"]),
        ("q=nowhere", vec![]),
        ("status=completed", vec!["roble", "harbor"]),
        ("status=failed", vec![]),
        ("severity=violation&min_score=20", vec!["harbor"]),
        ("severity=violation&q=roble", vec!["roble"]),
    ] {
        let (status, results) = call_json(&harness, query(q)).await;
        assert_eq!(status, StatusCode::OK, "{q}: {results}");
        assert_eq!(page(&results), (expected, None), "{q}");
        // The summary is the job's, whatever the filter.
        assert_eq!(results["summary"]["avg_decalogo_score"], 20.0, "{q}");
    }
    // A finding code one document has and the other lacks.
    let (_, all) = call_json(&harness, get(&token, &base)).await;
    let codes = |n: usize| -> Vec<String> {
        all["documents"][n]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["code"].as_str().unwrap().to_owned())
            .collect()
    };
    let (roble, harbor) = (codes(0), codes(1));
    let only_roble = roble.iter().find(|c| !harbor.contains(c)).unwrap();
    let (_, results) = call_json(&harness, query(&format!("finding={only_roble}"))).await;
    assert_eq!(page(&results), (vec!["roble"], None), "{only_roble}");
    // Filters hold in every format.
    let (status, lines) = call(&harness, query("min_score=20&format=jsonl")).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<String> = lines
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(ids, ["harbor"]);
    let (_, csv) = call(&harness, query("max_score=20&format=csv")).await;
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 2, "{csv}");
    assert!(rows[1].starts_with("roble,"), "{csv}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtered_results_come_a_page_at_a_time() {
    let harness = Harness::new(None);
    let token = key(&harness, "acme", Tier::Premium).await;
    let documents: Vec<Value> = (0..7)
        .map(|n| {
            let content = if n % 3 == 1 {
                "hostile:invalid"
            } else {
                "fine words"
            };
            json!({"id": format!("d{n}"), "content": content})
        })
        .collect();
    let job_id = finished(
        &harness,
        &token,
        &json!({"documents": documents, "options": {"evaluator": "hostile"}}),
    )
    .await;
    let base = format!("/api/v1/batch/results/{job_id}");
    // d1 and d4 failed; the completed ones two a page.
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let uri = match &cursor {
            None => format!("{base}?status=completed&limit=2"),
            Some(c) => format!("{base}?status=completed&limit=2&cursor={c}"),
        };
        let (status, results, headers) = call_with(state(&harness), get(&token, &uri)).await;
        assert_eq!(status, StatusCode::OK, "{results}");
        let (ids, next) = page(&results);
        assert_eq!(
            headers
                .get(docket_api::NEXT_CURSOR_HEADER)
                .map(|h| h.to_str().unwrap()),
            next,
            "the header and the body agree"
        );
        pages.push(ids.iter().map(|id| (*id).to_owned()).collect::<Vec<_>>());
        cursor = next.map(str::to_owned);
        if cursor.is_none() {
            break;
        }
        assert!(pages.len() < 10, "{pages:?}");
    }
    assert_eq!(
        pages,
        [vec!["d0", "d2"], vec!["d3", "d5"], vec!["d6"]],
        "every completed document once, in order"
    );
    let (_, failed) = call_json(&harness, get(&token, &format!("{base}?status=failed"))).await;
    assert_eq!(page(&failed), (vec!["d1", "d4"], None));
    assert_eq!(failed["documents"][0]["error"]["category"], "DATA");
    // A page that ends exactly at the last match still has a cursor (the
    // rest is not read); the page after it is empty and ends.
    let (_, first) = call_json(
        &harness,
        get(&token, &format!("{base}?status=failed&limit=2")),
    )
    .await;
    assert_eq!(page(&first), (vec!["d1", "d4"], Some("5")));
    let (_, rest) = call_json(
        &harness,
        get(&token, &format!("{base}?status=failed&limit=2&cursor=5")),
    )
    .await;
    assert_eq!(page(&rest), (vec![], None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_conditions_are_named() {
    let harness = Harness::new(None);
    let token = key(&harness, "acme", Tier::Premium).await;
    let job_id = finished(&harness, &token, &plans()).await;
    let base = format!("/api/v1/batch/results/{job_id}");
    let (status, error) = call_json(
        &harness,
        get(
            &token,
            &format!("{base}?status=done&severity=fatal&min_score=high&max_score=NaN"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(
        field_errors(&error),
        [
            (
                "status",
                "\"done\" is not one of completed, failed, skipped"
            ),
            ("min_score", "\"high\" is not a number"),
            ("max_score", "\"NaN\" is not a number"),
            (
                "severity",
                "\"fatal\" is not one of info, warning, violation"
            ),
        ]
    );
    let (status, error) = call_json(
        &harness,
        get(&token, &format!("{base}?min_score=50&max_score=10")),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(
        field_errors(&error),
        [("min_score", "50 is above max_score 10")]
    );
}
