//! Published plugins through the pipeline: a job pins the exact version
//! and digest it resolved at submit time, and a processor that never saw
//! the plugin loads it from the blob store by that digest.

use std::sync::Arc;

use docket_core::model::{JobOptions, JobStatus, TenantId};
use docket_core::pipeline::{IntakeDocument, Pipeline, Ports, Submission};
use docket_core::ports::{BlobStore, Evaluators, PluginRegistry};
use docket_plugin_host::{Catalog, HostConfig, PluginHost, PublishRequest};
use docket_tests::Harness;

/// A catalog over the harness's backend with a host of its own (nothing
/// loaded): a publisher, or a processor that has never seen the plugin.
fn catalog(backend: &docket_local::LocalBackend) -> Catalog {
    Catalog::new(
        PluginHost::new(HostConfig::default()).expect("plugin host"),
        backend.store.clone(),
        backend.blobs.clone(),
    )
}

fn request(version: &str) -> PublishRequest {
    PublishRequest {
        name: "scorer".into(),
        version: version.into(),
        language: "rust".into(),
        limits: None,
        config_schema: serde_json::Value::Null,
        deny: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_pinned_to_v1_keeps_using_v1_after_v2_is_published() {
    let harness = Harness::new(None);
    let backend = &harness.backend;
    // The author's machine publishes v1 (wordstats' bytes) ...
    let publisher = catalog(backend);
    let v1 = publisher
        .publish(request("1.0.0"), docket_bundled::WORDSTATS.to_vec())
        .await
        .unwrap();
    // ... processors start with nothing loaded but the registry.
    let processors = catalog(backend);
    assert!(processors.loaded().is_empty());
    let pipeline = Pipeline::new(
        Ports {
            evaluators: Arc::new(processors.clone()),
            ..harness.ports.clone()
        },
        Harness::settings(),
    );
    let pinned = processors.resolve("scorer").await.unwrap();
    assert_eq!(
        (pinned.version.as_str(), &pinned.digest),
        ("1.0.0", &v1.sha256)
    );
    let submit = |evaluator| {
        let pipeline = pipeline.clone();
        async move {
            pipeline
                .submit(Submission {
                    job_id: None,
                    tenant: TenantId::local(),
                    evaluator,
                    config: serde_json::json!({}),
                    options: JobOptions::default(),
                    documents: (0..3)
                        .map(|n| {
                            IntakeDocument::Accepted(docket_core::model::DocumentSpec {
                                id: format!("doc-{n}"),
                                title: format!("Document {n}"),
                                body: docket_core::model::DocumentBody::Text(
                                    "Plan de desarrollo municipal: diagnóstico y metas.".into(),
                                ),
                                metadata: serde_json::Value::Null,
                            })
                        })
                        .collect(),
                })
                .await
                .unwrap()
        }
    };
    let job = submit(pinned).await;

    // v2 (decalogo's bytes) is published while the job waits in the queue.
    let v2 = publisher
        .publish(request("2.0.0"), docket_bundled::DECALOGO.to_vec())
        .await
        .unwrap();
    assert_ne!(v1.sha256, v2.sha256);

    let mut driver = harness;
    driver.pipeline = pipeline.clone();
    let finished = driver.run_until_finalized(&job.id, 20).await;
    assert_eq!(finished.status, JobStatus::Completed);
    let results = driver.results(&job.id).await;
    assert_eq!(results["evaluator"]["version"], "1.0.0");
    assert_eq!(results["evaluator"]["digest"], v1.sha256.as_str());
    for document in results["documents"].as_array().unwrap() {
        assert!(
            document["scores"].get("lexical_diversity").is_some(),
            "evaluated by v1 (wordstats): {document}"
        );
    }
    // The processor loaded exactly the pinned version, from the registry.
    let loaded = processors.loaded();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].digest, v1.sha256);

    // New jobs get v2 unless they ask for v1.
    assert_eq!(processors.resolve("scorer").await.unwrap().version, "2.0.0");
    assert_eq!(
        processors.resolve("scorer@^1").await.unwrap().version,
        "1.0.0"
    );
    let error = processors.resolve("scorer@^3").await.unwrap_err();
    assert_eq!(
        error.message,
        "evaluator scorer has no version matching ^3 (known: 1.0.0, 2.0.0)"
    );
    let job = submit(processors.resolve("scorer").await.unwrap()).await;
    let finished = driver.run_until_finalized(&job.id, 20).await;
    assert_eq!(finished.status, JobStatus::Completed);
    let results = driver.results(&job.id).await;
    assert_eq!(results["evaluator"]["version"], "2.0.0");
    assert!(results["documents"][0]["scores"].get("decalogo").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_compiled_code_that_does_not_match_is_recompiled() {
    let harness = Harness::new(None);
    let backend = &harness.backend;
    let publisher = catalog(backend);
    let manifest = publisher
        .publish(request("1.0.0"), docket_bundled::WORDSTATS.to_vec())
        .await
        .unwrap();
    // A version whose compiled code for this target was made by another
    // engine (here: the other architecture's, with its correct digest), as
    // after a wasmtime upgrade: this engine refuses it, the component is
    // recompiled, the evaluation runs.
    let mut forged = manifest.clone();
    forged.version = "1.1.0".into();
    let here = docket_plugin_host::host_target();
    let foreign = manifest
        .precompiled
        .iter()
        .find(|p| p.target != here)
        .unwrap()
        .clone();
    for compiled in &mut forged.precompiled {
        if compiled.target == here {
            compiled.key = foreign.key.clone();
            compiled.sha256 = foreign.sha256.clone();
            compiled.engine = foreign.engine.clone();
        }
    }
    let component = backend.blobs.get(&manifest.component_key()).await.unwrap();
    backend
        .blobs
        .put(&forged.component_key(), component)
        .await
        .unwrap();
    assert!(backend.store.register_plugin(&forged).await.unwrap());
    let processors = catalog(backend);
    let pipeline = Pipeline::new(
        Ports {
            evaluators: Arc::new(processors.clone()),
            ..harness.ports.clone()
        },
        Harness::settings(),
    );
    let mut driver = harness;
    driver.pipeline = pipeline;
    let job = driver
        .pipeline
        .submit(Submission {
            job_id: None,
            tenant: TenantId::local(),
            evaluator: processors.resolve("scorer@1.1.0").await.unwrap(),
            config: serde_json::json!({}),
            options: JobOptions::default(),
            documents: vec![IntakeDocument::Accepted(docket_core::model::DocumentSpec {
                id: "one".into(),
                title: "One".into(),
                body: docket_core::model::DocumentBody::Text("some words here".into()),
                metadata: serde_json::Value::Null,
            })],
        })
        .await
        .unwrap();
    let finished = driver.run_until_finalized(&job.id, 20).await;
    assert_eq!(finished.status, JobStatus::Completed);
    assert_eq!(finished.counters.documents_succeeded, 1);
}
