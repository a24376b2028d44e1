//! A plugin published to the deployment is loaded from S3 by a fresh
//! processor.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_published_to_the_deployment_is_loaded_from_s3_by_a_fresh_processor() {
    let (settings, api_pipeline, aws) = deployment().await;
    let backend = docket_aws::AwsBackend::connect(&settings.names)
        .await
        .unwrap();
    // What `docket plugin publish --aws-prefix` does.
    let publisher = docket_plugin_host::Catalog::new(
        docket_plugin_host::PluginHost::new(docket_plugin_host::HostConfig::default()).unwrap(),
        backend.store.clone(),
        backend.blobs.clone(),
    );
    let manifest = publisher
        .publish(
            docket_plugin_host::PublishRequest {
                name: "counter".into(),
                version: "1.0.0".into(),
                language: "rust".into(),
                limits: None,
                config_schema: Value::Null,
                deny: Vec::new(),
            },
            docket_bundled::WORDSTATS.to_vec(),
        )
        .await
        .unwrap();
    let hex = manifest.sha256.trim_start_matches("sha256:");
    let mut stored = aws.blobs.list("plugins/counter/1.0.0/").await.unwrap();
    stored.sort();
    assert_eq!(
        stored,
        [
            format!("plugins/counter/1.0.0/{hex}.aarch64-unknown-linux-gnu.cwasm"),
            format!("plugins/counter/1.0.0/{hex}.wasm"),
            format!("plugins/counter/1.0.0/{hex}.x86_64-unknown-linux-gnu.cwasm"),
            "plugins/counter/1.0.0/manifest.json".to_owned(),
        ]
    );

    // The upload function resolves the range and pins the version.
    let token = api_key(&api_pipeline).await;
    let router = upload_function(&settings).await;
    let batch = json!({
        "options": {"evaluator": "counter@^1"},
        "documents": documents()[..20]
            .iter()
            .map(|(id, content)| json!({"id": id, "content": content}))
            .collect::<Vec<_>>()
    });
    let (status, accepted) = call_api(
        &router,
        api_request("POST", "/api/v1/batch/upload", &token, Some(&batch)),
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    let job_id = JobId::parse(accepted["job_id"].as_str().unwrap()).unwrap();

    // A processor container that starts now has only the bundled plugins.
    let processor = docket_lambda_evaluators::pipeline(&settings).await.unwrap();
    assert!(
        !processor
            .loaded_evaluators()
            .iter()
            .any(|r| r.name == "counter")
    );
    run_until_finished(
        &processor,
        &aws,
        &settings.names,
        std::slice::from_ref(&job_id),
    )
    .await;
    let job = processor.job(&job_id).await.unwrap();
    assert_eq!(job.status, docket_core::JobStatus::Completed);
    assert_eq!(job.counters.documents_succeeded, 20);
    let results: Value = stored_results(&aws, &job_id).await;
    assert_eq!(results["evaluator"]["name"], "counter");
    assert_eq!(results["evaluator"]["version"], "1.0.0");
    assert_eq!(results["evaluator"]["digest"], manifest.sha256.as_str());
    assert!(
        processor
            .loaded_evaluators()
            .iter()
            .any(|r| r.digest == manifest.sha256),
        "the processor loaded the published plugin"
    );
}
