//! The same documents through the embedded backend's pipeline, to compare
//! results with.

use super::*;

pub(crate) fn documents() -> Vec<(String, String)> {
    let plans = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/plans");
    let mut texts: Vec<String> = std::fs::read_dir(&plans)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("txt" | "md")))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    texts.sort();
    (0..200)
        .map(|n| {
            (
                format!("doc-{n:03}"),
                format!("{}\n\nCopy {n}.", texts[n % texts.len()]),
            )
        })
        .collect()
}

/// Text documents `(id, content)` as intake gives them (the id as title).
pub(crate) fn intake(documents: &[(String, String)]) -> Vec<IntakeDocument> {
    documents
        .iter()
        .map(|(id, content)| {
            IntakeDocument::Accepted(DocumentSpec {
                id: id.clone(),
                title: id.clone(),
                body: DocumentBody::Text(content.clone()),
                metadata: Value::Null,
            })
        })
        .collect()
}

/// Submits text documents to `evaluator` for tenant `acme`, straight to
/// the pipeline (not through the API).
pub(crate) async fn submit_text(
    pipeline: &Pipeline,
    evaluator: &str,
    documents: &[(String, String)],
) -> docket_core::model::Job {
    pipeline
        .submit(Submission {
            job_id: None,
            tenant: TenantId::parse("acme").unwrap(),
            evaluator: pipeline.resolve_evaluator(evaluator).await.unwrap(),
            config: json!({}),
            options: Default::default(),
            documents: intake(documents),
        })
        .await
        .unwrap()
}

/// The same documents through the embedded backend's pipeline.
pub(crate) async fn reference_results(documents: &[(String, String)]) -> Value {
    reference_intake_results(intake(documents)).await
}

/// Intake documents through the embedded backend's pipeline (decalogo).
pub(crate) async fn reference_intake_results(documents: Vec<IntakeDocument>) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let backend =
        docket_local::LocalBackend::open(dir.path(), docket_local::LocalOptions::default())
            .unwrap();
    let host =
        docket_plugin_host::PluginHost::new(docket_plugin_host::HostConfig::default()).unwrap();
    for bundled in docket_bundled::EVALUATORS {
        host.load_component(bundled.name, bundled.version, bundled.bytes)
            .unwrap();
    }
    let evaluator = host.resolve_loaded("decalogo").unwrap();
    let pipeline = Pipeline::new(
        backend.ports(
            Arc::new(host),
            Arc::new(docket_core::ports::NoWebhooks),
            Arc::new(docket_intake::FileReader),
        ),
        PipelineSettings::default(),
    );
    let job = pipeline
        .submit(Submission {
            job_id: None,
            tenant: TenantId::local(),
            evaluator,
            config: json!({}),
            options: Default::default(),
            documents,
        })
        .await
        .unwrap();
    for _ in 0..200 {
        pipeline.run_round().await.unwrap();
        if pipeline.job(&job.id).await.unwrap().finished_at.is_some() {
            return serde_json::to_value(pipeline.results(&job.id).await.unwrap()).unwrap();
        }
    }
    panic!("the reference job did not finish");
}

/// A results document without what differs between two runs of the same
/// batch: ids, times and durations.
pub(crate) fn comparable(mut results: Value) -> Value {
    let object = results.as_object_mut().unwrap();
    for key in ["job_id", "created_at", "finished_at"] {
        object.remove(key);
    }
    object["summary"]
        .as_object_mut()
        .unwrap()
        .remove("avg_processing_time_seconds");
    for document in object["documents"].as_array_mut().unwrap() {
        document
            .as_object_mut()
            .unwrap()
            .remove("processing_time_seconds");
    }
    results
}
