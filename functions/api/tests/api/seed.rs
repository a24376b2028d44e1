//! Clients written for the FastAPI stacks docket replaces keep working:
//! flags are read as FastAPI reads them (`True` from `requests`, `1`,
//! `yes`, `off` …) in the query, in form parts and in JSON options, and
//! anything else is still a 422 naming the field.

use super::*;

fn has_evidence(results: &Value) -> bool {
    results["documents"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f.get("evidence").is_some())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_results_flag_takes_every_spelling_fastapi_takes() {
    let harness = Harness::new(None);
    let token = key(&harness, "acme", Tier::Premium).await;
    let job_id = finished(&harness, &token, &plans()).await;
    let base = format!("/api/v1/batch/results/{job_id}");
    for (word, evidence) in [
        ("True", true),
        ("true", true),
        ("1", true),
        ("yes", true),
        ("on", true),
        ("False", false),
        ("false", false),
        ("0", false),
        ("no", false),
        ("off", false),
    ] {
        let (status, results) = call_json(
            &harness,
            get(&token, &format!("{base}?include_evidence={word}")),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{word}: {results}");
        assert_eq!(has_evidence(&results), evidence, "{word}");
    }
    for word in ["maybe", "2", ""] {
        let (status, error) = call_json(
            &harness,
            get(&token, &format!("{base}?include_evidence={word}")),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{word}: {error}");
        assert_eq!(
            field_errors(&error),
            [(
                "include_evidence",
                format!("{word:?} is not a boolean (use true/false, 1/0, yes/no, on/off)").as_str()
            )]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_options_take_flags_as_strings_and_numbers() {
    let harness = Harness::new(None);
    let token = key(&harness, "acme", Tier::Premium).await;
    let mut body = plans();
    body["options"]["include_evidence"] = json!("False");
    body["options"]["include_questionnaire"] = json!(0);
    let (status, accepted) = call_json(&harness, post(&token, &body)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let id = docket_core::JobId::parse(accepted["job_id"].as_str().unwrap()).unwrap();
    let job = harness.ports.jobs.job(&id).await.unwrap();
    assert!(!job.options.include_evidence);
    assert_eq!(job.config["include_questionnaire"], false);
    // A premium key's items get a premium share of the work queues' turns.
    assert_eq!(job.options.fair_share, 2);

    body["options"]["include_evidence"] = json!("nah");
    let (status, error) = call_json(&harness, post(&token, &body)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    let fields = field_errors(&error);
    assert_eq!(fields.len(), 1, "{fields:?}");
    assert_eq!(fields[0].0, "options.include_evidence");
    assert!(
        fields[0]
            .1
            .starts_with("\"nah\" is not a boolean (use true/false"),
        "{fields:?}"
    );
}
