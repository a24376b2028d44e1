//! The Lambda handlers end to end on the AWS API at `AWS_ENDPOINT_URL`
//! (the local emulator; bin/test starts it): a 200-document batch goes in
//! through the `upload` handler as an API Gateway v2 event, an event-source
//! runner feeds the `processor` and `finalizer` handlers real SQS events,
//! and the results in S3 must match what the embedded backend (the
//! pipeline `docket run` drives) produces for the same documents.

// Test code: a failed unwrap fails the test.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::event::s3::S3Event;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use docket_aws::{AwsBackend, Names};
use docket_core::auth::Tier;
use docket_core::model::{DocumentBody, DocumentSpec, JobId, TenantId};
use docket_core::pipeline::{
    IntakeDocument, Pipeline, PipelineSettings, ResultsFile, Submission, results_key,
};
use docket_core::ports::{BlobStore, JobStore, QueueName, WorkQueue};
use docket_lambda::Settings;
use lambda_http::request::LambdaRequest;
use lambda_http::{Context, LambdaEvent, Service};
use serde_json::{Value, json};

const SQS_FIXTURE: &str = include_str!("fixtures/sqs-event.json");
const APIGW_FIXTURE: &str = include_str!("fixtures/apigw-v2-request.json");
const S3_FIXTURE: &str = include_str!("fixtures/s3-event.json");

#[test]
fn fixtures_round_trip_through_serde() {
    let sqs: SqsEvent = serde_json::from_str(SQS_FIXTURE).unwrap();
    assert_eq!(sqs.records[0].attributes["ApproximateReceiveCount"], "2");
    let again: SqsEvent = serde_json::from_value(serde_json::to_value(&sqs).unwrap()).unwrap();
    assert_eq!(again.records[0].message_id, sqs.records[0].message_id);
    let request: ApiGatewayV2httpRequest = serde_json::from_str(APIGW_FIXTURE).unwrap();
    assert_eq!(request.raw_path.as_deref(), Some("/"));
    let again: ApiGatewayV2httpRequest =
        serde_json::from_value(serde_json::to_value(&request).unwrap()).unwrap();
    assert_eq!(
        again.request_context.http.method,
        request.request_context.http.method
    );
    let s3: S3Event = serde_json::from_str(S3_FIXTURE).unwrap();
    let again: Value = serde_json::to_value(&s3).unwrap();
    let objects = docket_lambda::created_objects(&again).unwrap();
    assert_eq!(Some(objects[0].key.clone()), s3.records[0].s3.object.key);
}

/// A fresh deployment on the emulator: the functions' settings, the
/// pipeline they build, and the deployment's resources as the tests (and
/// the event-source runner, which plays AWS's part) see them.
async fn deployment() -> (Settings, Pipeline, AwsBackend) {
    assert!(
        std::env::var_os("AWS_ENDPOINT_URL").is_some(),
        "AWS_ENDPOINT_URL is not set: start the emulator with `eval \"$(localstack/start)\"` (bin/test does)"
    );
    let names = Names::new(format!(
        "e{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    ));
    docket_aws::AwsBackend::provision(&names).await.unwrap();
    let settings = Settings {
        names,
        default_evaluator: "decalogo".into(),
        max_queue_depth: 200_000,
    };
    let pipeline = docket_lambda::pipeline(&settings).await.unwrap();
    let aws = AwsBackend::connect(&settings.names).await.unwrap();
    (settings, pipeline, aws)
}

/// The fixture request, made a `method path` call with `headers` and a
/// JSON body.
fn api_request(
    method: &str,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> ApiGatewayV2httpRequest {
    let mut request: Value = serde_json::from_str(APIGW_FIXTURE).unwrap();
    request["routeKey"] = json!(format!("{method} {path}"));
    request["rawPath"] = json!(path);
    request["requestContext"]["http"]["method"] = json!(method);
    request["requestContext"]["http"]["path"] = json!(path);
    let headers = request["headers"].as_object_mut().unwrap();
    headers.insert("authorization".into(), json!(format!("Bearer {token}")));
    headers.insert("content-type".into(), json!("application/json"));
    match body {
        Some(body) => {
            let text = body.to_string();
            headers.insert("content-length".into(), json!(text.len().to_string()));
            request["body"] = json!(text);
        }
        None => {
            headers.remove("content-length");
        }
    }
    serde_json::from_value(request).unwrap()
}

/// One API call through `lambda_http`'s adapter, as the `upload` function
/// serves it: (status, JSON body).
async fn call_api(router: &axum::Router, request: ApiGatewayV2httpRequest) -> (u16, Value) {
    let mut adapter = lambda_http::Adapter::from(router.clone());
    let event = LambdaEvent::new(LambdaRequest::ApiGatewayV2(request), Context::default());
    let response = adapter.call(event).await.unwrap();
    let response = serde_json::to_value(&response).unwrap();
    let status = response["statusCode"].as_u64().unwrap() as u16;
    let body = response["body"].as_str().unwrap_or("null");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// What the runner does with one queue.
#[derive(Clone, Copy)]
struct Source {
    queue: QueueName,
    /// The queue's dead-letter queue instead.
    dead: bool,
    /// Visibility of received messages.
    visibility: Duration,
}

impl Source {
    fn of(queue: QueueName) -> Self {
        Self {
            queue,
            dead: false,
            visibility: Duration::from_secs(30),
        }
    }
}

/// The event-source runner: what a Lambda event source mapping does for one
/// queue — receive up to 10 messages, hand them to `handler` as a real
/// `SqsEvent`, delete those not reported as failures. Messages for which
/// `crash` holds are received but neither handed over nor deleted, as if
/// the function died on them. Returns how many messages it received.
async fn pump_with<F, Fut>(
    aws: &AwsBackend,
    names: &Names,
    source: Source,
    crash: impl Fn(&docket_core::ports::Delivery) -> bool,
    handler: F,
) -> usize
where
    F: Fn(SqsEvent) -> Fut,
    Fut: std::future::Future<Output = SqsBatchResponse>,
{
    let queue = source.queue;
    let received = if source.dead {
        aws.queue.receive_dead(queue, 10, source.visibility).await
    } else {
        aws.queue.receive(queue, 10, source.visibility).await
    };
    let received = received.unwrap();
    let count = received.len();
    let deliveries: Vec<_> = received.into_iter().filter(|d| !crash(d)).collect();
    if deliveries.is_empty() {
        return count;
    }
    let event = sqs_event(names, queue, source.dead, &deliveries);
    let response = handler(event).await;
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    let done: Vec<_> = deliveries
        .iter()
        .filter(|d| !failed.contains(&d.message_id.as_str()))
        .map(|d| d.receipt.clone())
        .collect();
    if source.dead {
        aws.queue.ack_dead(queue, &done).await.unwrap();
    } else {
        aws.queue.ack(queue, &done).await.unwrap();
    }
    count
}

/// The SQS event Lambda's event source mapping would hand over for
/// `deliveries` of `queue` (or its dead-letter queue): the fixture's record
/// shape with the deliveries' ids, receipts, bodies and receive counts.
fn sqs_event(
    names: &Names,
    queue: QueueName,
    dead: bool,
    deliveries: &[docket_core::ports::Delivery],
) -> SqsEvent {
    let name = if dead {
        names.dead_letter_queue(queue)
    } else {
        names.queue(queue)
    };
    let template: Value = serde_json::from_str::<Value>(SQS_FIXTURE).unwrap()["Records"][0].clone();
    let records: Vec<Value> = deliveries
        .iter()
        .map(|d| {
            let mut record = template.clone();
            record["messageId"] = json!(d.message_id);
            record["receiptHandle"] = json!(d.receipt.0);
            record["body"] = json!(d.body);
            record["md5OfBody"] = Value::Null;
            record["messageAttributes"] = json!({});
            record["eventSourceARN"] = json!(format!("arn:aws:sqs:us-east-1:123456789012:{name}"));
            record["attributes"]["ApproximateReceiveCount"] = json!(d.receive_count.to_string());
            record
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

/// [`pump_with`] without crashes.
async fn pump<F, Fut>(aws: &AwsBackend, names: &Names, queue: QueueName, handler: F) -> usize
where
    F: Fn(SqsEvent) -> Fut,
    Fut: std::future::Future<Output = SqsBatchResponse>,
{
    pump_with(aws, names, Source::of(queue), |_| false, handler).await
}

fn documents() -> Vec<(String, String)> {
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

/// The same documents through the embedded backend's pipeline.
async fn reference_results(documents: &[(String, String)]) -> Value {
    let documents = documents
        .iter()
        .map(|(id, content)| {
            IntakeDocument::Accepted(DocumentSpec {
                id: id.clone(),
                title: id.clone(),
                body: DocumentBody::Text(content.clone()),
                metadata: Value::Null,
            })
        })
        .collect();
    reference_intake_results(documents).await
}

/// Intake documents through the embedded backend's pipeline (decalogo).
async fn reference_intake_results(documents: Vec<IntakeDocument>) -> Value {
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
            let bytes = pipeline
                .results_file(&job.id, ResultsFile::Json)
                .await
                .unwrap();
            return serde_json::from_slice(&bytes).unwrap();
        }
    }
    panic!("the reference job did not finish");
}

/// A results document without what differs between two runs of the same
/// batch: ids, times and durations.
fn comparable(mut results: Value) -> Value {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_document_batch_runs_through_the_handlers_like_docket_run() {
    let (settings, pipeline, aws) = deployment().await;
    let token = api_key(&pipeline).await;
    let router = docket_lambda::api(pipeline.clone(), &settings);
    let documents = documents();
    let batch = json!({"documents": documents
        .iter()
        .map(|(id, content)| json!({"id": id, "content": content}))
        .collect::<Vec<_>>()});
    let (status, accepted) = call_api(
        &router,
        api_request("POST", "/api/v1/batch/upload", &token, Some(&batch)),
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["document_count"], 200);
    let job_id = JobId::parse(accepted["job_id"].as_str().unwrap()).unwrap();

    let names = &settings.names;
    run_until_finished(&pipeline, &aws, names, std::slice::from_ref(&job_id)).await;

    let job = aws.store.job(&job_id).await.unwrap();
    assert_eq!(job.status, docket_core::JobStatus::Completed);
    assert_eq!(
        (
            job.counters.documents_total,
            job.counters.documents_succeeded,
            job.counters.documents_failed
        ),
        (200, 200, 0)
    );
    assert_eq!(
        (job.counters.items_total, job.counters.items_succeeded),
        (200, 200)
    );
    let (status, report) = call_api(
        &router,
        api_request(
            "GET",
            &format!("/api/v1/batch/status/{job_id}"),
            &token,
            None,
        ),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(report["progress"]["completed_documents"], 200);

    let stored = aws.blobs.get(&results_key(&job_id)).await.unwrap();
    let results: Value = serde_json::from_slice(&stored).unwrap();
    assert_eq!(results["document_count"], 200);
    let reference = reference_results(&documents).await;
    assert_eq!(comparable(results), comparable(reference));
    let depth = aws
        .queue
        .depth(QueueName::Work(docket_core::Priority::Normal))
        .await
        .unwrap();
    assert_eq!((depth.visible, depth.in_flight, depth.dead), (0, 0, 0));
}

/// Runs processors and finalizers until every job in `jobs` is finished.
async fn run_until_finished(pipeline: &Pipeline, aws: &AwsBackend, names: &Names, jobs: &[JobId]) {
    for _ in 0..400 {
        let mut handled = 0;
        for priority in docket_core::Priority::ALL {
            handled += pump(aws, names, QueueName::Work(priority), |event| {
                docket_lambda::process(pipeline, names, event)
            })
            .await;
        }
        handled += pump(aws, names, QueueName::Finalize, |event| {
            docket_lambda::finalize(pipeline, event)
        })
        .await;
        let mut finished = 0;
        for job in jobs {
            if aws.store.job(job).await.unwrap().finished_at.is_some() {
                finished += 1;
            }
        }
        if finished == jobs.len() {
            return;
        }
        if handled == 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    panic!("jobs not finished: {jobs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_dropped_in_the_inbox_reach_ingest_through_sqs_and_bad_ones_fail_with_the_reason() {
    let (settings, pipeline, aws) = deployment().await;
    let names = &settings.names;
    let plan = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples/plans/harbor-town-strategy.txt"),
    )
    .unwrap();
    let pdf = docket_intake::pdf::write_text_pdf(&[
        "Diagnóstico del municipio.".to_owned(),
        "Metas con indicadores y línea base.".to_owned(),
    ])
    .unwrap();
    let manifest = json!({"documents": [
        {"id": "one", "content": "first document text"},
        {"id": "two", "content": "second document text"},
    ], "options": {"evaluator": "wordstats", "priority": "high"}});
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("inbox/acme/harbor town.txt", plan),
        ("inbox/acme/report.pdf", pdf),
        ("inbox/acme/two.batch.json", manifest.to_string().into_bytes()),
        ("inbox/acme/broken.batch.json", b"{\"documents\": [".to_vec()),
        ("inbox/acme/unknown.batch.json", json!({"documents": [{"id": "x", "content": "text"}], "options": {"evaluator": "nope"}}).to_string().into_bytes()),
        ("outbox/ignored.txt", b"not for us".to_vec()),
    ];
    // Real PutObject calls: S3 notifies the ingest queue.
    for (key, bytes) in &files {
        aws.blobs.put(key, bytes.clone()).await.unwrap();
    }
    let acme = TenantId::parse("acme").unwrap();
    let listed = |limit| docket_core::ports::JobFilter {
        limit,
        ..Default::default()
    };
    for _ in 0..100 {
        // Each notification handed over twice, as a duplicate delivery
        // would: the second makes no job.
        pump(&aws, names, QueueName::Ingest, |event| async {
            docket_lambda::ingest_messages(&pipeline, &settings, event.clone()).await;
            docket_lambda::ingest_messages(&pipeline, &settings, event).await
        })
        .await;
        if aws.store.list_jobs(&acme, &listed(10)).await.unwrap().len() >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let jobs: Vec<JobId> = aws
        .store
        .list_jobs(&acme, &listed(10))
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(
        jobs.len(),
        5,
        "one job per inbox file; the object outside the inbox is not notified"
    );
    let inbox = aws.queue.depth(QueueName::Ingest).await.unwrap();
    assert_eq!((inbox.visible, inbox.in_flight, inbox.dead), (0, 0, 0));
    run_until_finished(&pipeline, &aws, names, &jobs).await;

    let mut by_first_document = std::collections::HashMap::new();
    for job in &jobs {
        let job = aws.store.job(job).await.unwrap();
        let results: Value =
            serde_json::from_slice(&aws.blobs.get(&results_key(&job.id)).await.unwrap()).unwrap();
        let first = results["documents"][0]["id"].as_str().unwrap().to_owned();
        by_first_document.insert(first, (job, results));
    }
    let (plan_job, plan) = &by_first_document["harbor town.txt"];
    assert_eq!(plan_job.status, docket_core::JobStatus::Completed);
    assert_eq!(
        plan["documents"][0]["scores"]["decalogo"]["total_score"],
        25.0
    );
    let (pdf_job, pdf) = &by_first_document["report.pdf"];
    assert_eq!(pdf_job.status, docket_core::JobStatus::Completed);
    assert_eq!(pdf["documents"][0]["status"], "completed");
    let (manifest_job, manifest) = &by_first_document["one"];
    assert_eq!(manifest_job.evaluator.name, "wordstats");
    assert_eq!(manifest_job.options.priority, docket_core::Priority::High);
    assert_eq!(manifest["document_count"], 2);
    let (broken_job, broken) = &by_first_document["broken.batch.json"];
    assert_eq!(broken_job.status, docket_core::JobStatus::Failed);
    let reason = broken["documents"][0]["error"]["message"].as_str().unwrap();
    assert!(reason.starts_with("invalid JSON: "), "{reason}");
    let (unknown_job, unknown) = &by_first_document["x"];
    assert_eq!(unknown_job.status, docket_core::JobStatus::Failed);
    let reason = unknown["documents"][0]["error"]["message"]
        .as_str()
        .unwrap();
    assert!(reason.starts_with("unknown evaluator \"nope\""), "{reason}");
}

/// A premium API key of tenant `acme`.
async fn api_key(pipeline: &Pipeline) -> String {
    pipeline
        .issue_api_key(&TenantId::parse("acme").unwrap(), Tier::Premium)
        .await
        .unwrap()
        .token
}

/// Submits `documents` through the upload handler; returns the job.
async fn upload(pipeline: &Pipeline, settings: &Settings, documents: &[(&str, &str)]) -> JobId {
    let token = api_key(pipeline).await;
    let batch = json!({"documents": documents
        .iter()
        .map(|(id, content)| json!({"id": id, "content": content}))
        .collect::<Vec<_>>(), "options": {"evaluator": "wordstats"}});
    let router = docket_lambda::api(pipeline.clone(), settings);
    let (status, accepted) = call_api(
        &router,
        api_request("POST", "/api/v1/batch/upload", &token, Some(&batch)),
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    JobId::parse(accepted["job_id"].as_str().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_redelivered_after_a_crash_before_delete_counts_once_and_finalizes_once() {
    let (settings, pipeline, aws) = deployment().await;
    let names = &settings.names;
    let texts: Vec<(String, String)> = (0..20)
        .map(|n| (format!("d{n}"), format!("document {n} text")))
        .collect();
    let documents: Vec<(&str, &str)> = texts
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let job_id = upload(&pipeline, &settings, &documents).await;
    let work = Source {
        visibility: Duration::from_secs(1),
        ..Source::of(QueueName::Work(docket_core::Priority::Normal))
    };
    // The function processes a batch and dies before Lambda deletes it.
    let handled = pump_with(
        &aws,
        names,
        work,
        |_| false,
        |event| async {
            docket_lambda::process(&pipeline, names, event).await;
            SqsBatchResponse::default()
        },
    )
    .await;
    assert_eq!(handled, 10);
    // Every message delivered again, the crashed batch included.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for _ in 0..100 {
        pump_with(
            &aws,
            names,
            work,
            |_| false,
            |event| docket_lambda::process(&pipeline, names, event),
        )
        .await;
        // Finalize messages delivered twice each.
        pump(&aws, names, QueueName::Finalize, |event| async {
            docket_lambda::finalize(&pipeline, event.clone()).await;
            docket_lambda::finalize(&pipeline, event).await
        })
        .await;
        let job = aws.store.job(&job_id).await.unwrap();
        if job.finished_at.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let job = aws.store.job(&job_id).await.unwrap();
    assert_eq!(job.status, docket_core::JobStatus::Completed);
    assert_eq!(
        (
            job.counters.items_succeeded,
            job.counters.documents_succeeded,
            job.counters.items_failed
        ),
        (20, 20, 0)
    );
    // A late duplicate finalize message changes nothing.
    let finished_at = job.finished_at;
    let late = docket_core::pipeline::FinalizeMessage {
        job_id: job_id.clone(),
    };
    aws.queue
        .send(
            QueueName::Finalize,
            vec![docket_core::ports::OutgoingMessage::new(
                serde_json::to_string(&late).unwrap(),
            )],
        )
        .await
        .unwrap();
    pump(&aws, names, QueueName::Finalize, |event| {
        docket_lambda::finalize(&pipeline, event)
    })
    .await;
    assert_eq!(
        aws.store.job(&job_id).await.unwrap().finished_at,
        finished_at
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_goes_to_the_dead_letter_queue_and_its_document_fails_alone() {
    let (settings, pipeline, aws) = deployment().await;
    let names = &settings.names;
    let documents = [
        ("good-1", "fine text"),
        ("poison", "the processor dies on this one"),
        ("good-2", "more fine text"),
    ];
    let job_id = upload(&pipeline, &settings, &documents).await;
    let work = Source {
        visibility: Duration::from_secs(1),
        ..Source::of(QueueName::Work(docket_core::Priority::Normal))
    };
    let poison = |d: &docket_core::ports::Delivery| d.body.contains("\"poison\"");
    for _ in 0..60 {
        pump_with(&aws, names, work, poison, |event| {
            docket_lambda::process(&pipeline, names, event)
        })
        .await;
        let dead = Source { dead: true, ..work };
        pump_with(
            &aws,
            names,
            dead,
            |_| false,
            |event| docket_lambda::process(&pipeline, names, event),
        )
        .await;
        pump(&aws, names, QueueName::Finalize, |event| {
            docket_lambda::finalize(&pipeline, event)
        })
        .await;
        if aws.store.job(&job_id).await.unwrap().finished_at.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let job = aws.store.job(&job_id).await.unwrap();
    assert!(job.finished_at.is_some(), "the job did not finish");
    assert_eq!(
        (
            job.counters.documents_succeeded,
            job.counters.documents_failed
        ),
        (2, 1)
    );
    let results: Value =
        serde_json::from_slice(&aws.blobs.get(&results_key(&job_id)).await.unwrap()).unwrap();
    let poisoned = results["documents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == "poison")
        .unwrap();
    assert_eq!(poisoned["status"], "failed");
    assert_eq!(poisoned["error"]["category"], "PERMANENT");
    assert_eq!(
        poisoned["error"]["message"],
        "dead-lettered: the processor never recorded an outcome for this item"
    );
    let depth = aws
        .queue
        .depth(QueueName::Work(docket_core::Priority::Normal))
        .await
        .unwrap();
    assert_eq!((depth.visible, depth.in_flight, depth.dead), (0, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_60_page_pdf_is_split_in_25_page_chunks_and_merged_in_page_order() {
    let (settings, pipeline, aws) = deployment().await;
    let names = &settings.names;
    let mut pages: Vec<String> = (1..=60)
        .map(|n| format!("Page {n}: general notes."))
        .collect();
    pages[0] = "Diagnostico: la situacion actual del municipio.".into();
    pages[30] = "Metas con indicadores y linea base 2024.".into();
    pages[59] = "Presupuesto de 4.000 millones. Seguimiento trimestral.".into();
    let pdf = docket_intake::pdf::write_text_pdf(&pages).unwrap();
    let key = "inbox/acme/long plan.pdf";
    aws.blobs.put(key, pdf.clone()).await.unwrap();
    let acme = TenantId::parse("acme").unwrap();
    let filter = docket_core::ports::JobFilter {
        limit: 1,
        ..Default::default()
    };
    let mut jobs = Vec::new();
    for _ in 0..100 {
        pump(&aws, names, QueueName::Ingest, |event| {
            docket_lambda::ingest_messages(&pipeline, &settings, event)
        })
        .await;
        jobs = aws.store.list_jobs(&acme, &filter).await.unwrap();
        if !jobs.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let job_id = jobs[0].id.clone();
    assert_eq!(jobs[0].counters.items_total, 3, "60 pages in chunks of 25");
    run_until_finished(&pipeline, &aws, names, std::slice::from_ref(&job_id)).await;
    let results: Value =
        serde_json::from_slice(&aws.blobs.get(&results_key(&job_id)).await.unwrap()).unwrap();
    let document = &results["documents"][0];
    assert_eq!(document["chunks"], 3);
    assert_eq!(document["status"], "completed");
    // The same PDF through the embedded backend, read the same way.
    let reference = reference_intake_results(docket_intake::read_bytes(
        key,
        "long plan.pdf",
        "long plan.pdf".into(),
        &pdf,
    ))
    .await;
    assert_eq!(
        comparable(results)["documents"],
        comparable(reference)["documents"]
    );
}

/// Figures, not a check of speed: AWS API calls per document for a batch of
/// 1,000 × 5 KB documents through the handlers, counted by operation on the
/// emulator, and what the requests cost at list prices. Run with
/// `--run-ignored only` (see docs/benchmarks.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "figures: run explicitly"]
async fn aws_calls_per_document() {
    let (settings, _, _) = deployment().await;
    let counter = docket_aws::CallCounter::default();
    let pipeline = docket_lambda::pipeline_counting(&settings, Some(counter.clone()))
        .await
        .unwrap();
    // The event-source runner's receives and deletes are paid too.
    let aws = AwsBackend::connect_counting(&settings.names, Some(counter.clone()))
        .await
        .unwrap();
    let names = &settings.names;
    let base = "Plan de desarrollo municipal con metas, indicadores y presupuesto. ".repeat(80);
    let texts: Vec<(String, String)> = (0..1000)
        .map(|n| {
            (
                format!("doc-{n:04}"),
                format!("{n} {}", &base[..5 * 1024 - 8]),
            )
        })
        .collect();
    let documents: Vec<(&str, &str)> = texts
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let before = counter.counts();
    let job_id = upload(&pipeline, &settings, &documents).await;
    run_until_finished(&pipeline, &aws, names, std::slice::from_ref(&job_id)).await;
    let job = aws.store.job(&job_id).await.unwrap();
    assert_eq!(job.counters.documents_succeeded, 1000);
    let mut calls = counter.counts();
    for (key, n) in before {
        if let Some(total) = calls.get_mut(&key) {
            *total -= n;
        }
    }
    // List prices, us-east-1: SQS $0.40 per million requests; S3 PUT/LIST
    // $0.005 and GET $0.0004 per 1,000; DynamoDB on demand $0.625 per
    // million write units and $0.125 per million read units, counted here
    // as one unit per call (a lower bound: transactions cost two per item,
    // items over 1 KB more).
    let price = |service: &str, operation: &str| -> f64 {
        match (service, operation) {
            ("sqs", _) => 0.40,
            ("s3", "PutObject" | "ListObjectsV2") => 5.0,
            ("s3", _) => 0.4,
            ("dynamodb", "GetItem" | "BatchGetItem" | "Query" | "Scan") => 0.125,
            ("dynamodb", _) => 0.625,
            _ => 0.0,
        }
    };
    println!("1,000 × 5 KB documents (wordstats), API calls counted on the emulator");
    println!("| service | operation | calls | per document | $ per million documents |");
    println!("|---|---|---:|---:|---:|");
    let mut total = 0.0;
    for ((service, operation), n) in &calls {
        if *n == 0 {
            continue;
        }
        let per_document = *n as f64 / 1000.0;
        let dollars = per_document * price(&service.to_lowercase(), operation);
        total += dollars;
        println!("| {service} | {operation} | {n} | {per_document:.3} | {dollars:.2} |");
    }
    println!(
        "| all | | {} | {:.3} | {total:.2} |",
        calls.values().sum::<u64>(),
        calls.values().sum::<u64>() as f64 / 1000.0
    );
    // The design's claim: bodies are packed, so S3 writes are far fewer
    // than documents.
    let puts = calls
        .get(&("s3".to_owned(), "PutObject".to_owned()))
        .copied()
        .unwrap_or(0);
    assert!(puts < 100, "{puts} PutObject calls for 1,000 documents");
}

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
    let router = docket_lambda::api(api_pipeline.clone(), &settings);
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
    let processor = docket_lambda::pipeline(&settings).await.unwrap();
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
    let results: Value =
        serde_json::from_slice(&aws.blobs.get(&results_key(&job_id)).await.unwrap()).unwrap();
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

/// What the fake Lambda Runtime API saw of one processor process.
#[derive(Default)]
struct RuntimeLog {
    next_at: Option<std::time::Instant>,
    response_at: Option<std::time::Instant>,
    response: Option<Value>,
    error: Option<String>,
}

/// A Lambda Runtime API on loopback that hands out `event` once, records
/// when the function asked for it and when it answered, and then keeps
/// the function waiting (as Lambda freezes it).
async fn runtime_api(
    event: Value,
    log: Arc<std::sync::Mutex<RuntimeLog>>,
    answered: Arc<tokio::sync::Notify>,
) -> std::net::SocketAddr {
    use axum::extract::{Path, State};
    use axum::routing::{get, post};
    type Shared = (
        Value,
        Arc<std::sync::Mutex<RuntimeLog>>,
        Arc<tokio::sync::Notify>,
    );
    async fn next(State((event, log, _)): State<Shared>) -> axum::response::Response {
        let first = {
            let mut log = log.lock().unwrap();
            let first = log.next_at.is_none();
            log.next_at.get_or_insert_with(std::time::Instant::now);
            first
        };
        if !first {
            std::future::pending::<()>().await;
        }
        let deadline = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
            + 60_000;
        axum::response::Response::builder()
            .header("lambda-runtime-aws-request-id", "cold-start-1")
            .header("lambda-runtime-deadline-ms", deadline.to_string())
            .header(
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:123456789012:function:processor",
            )
            .header(
                "lambda-runtime-trace-id",
                "Root=1-00000000-000000000000000000000000",
            )
            .body(axum::body::Body::from(event.to_string()))
            .unwrap()
    }
    async fn response(
        State((_, log, answered)): State<Shared>,
        Path(_id): Path<String>,
        body: String,
    ) -> axum::http::StatusCode {
        let mut log = log.lock().unwrap();
        log.response_at = Some(std::time::Instant::now());
        log.response = serde_json::from_str(&body).ok();
        answered.notify_one();
        axum::http::StatusCode::ACCEPTED
    }
    async fn error(
        State((_, log, answered)): State<Shared>,
        body: String,
    ) -> axum::http::StatusCode {
        log.lock().unwrap().error = Some(body);
        answered.notify_one();
        axum::http::StatusCode::ACCEPTED
    }
    let app = axum::Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(error))
        .with_state((event, log, answered));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// Cold start of the `processor` binary: a new process started against a
/// Lambda Runtime API on loopback, handed one SQS event of one work item;
/// the time to its first request for an event (init: configuration, AWS
/// clients, queue URLs, the bundled plugins loaded) and to its answer
/// (the document read, evaluated and recorded). The first run starts with
/// an empty `/tmp` (plugins compiled), the next ones with the compiled
/// plugins cached there, as in a container Lambda starts again. x86_64
/// here; Lambda runs the arm64 build.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a figure for docs/benchmarks.md, not a check (cargo test --release -p docket-lambda --test emulator -- --ignored --nocapture processor_cold_start)"]
async fn processor_cold_start() {
    let (settings, pipeline, aws) = deployment().await;
    let prefix = settings.names.table().trim_end_matches("-jobs").to_owned();
    let tmp = tempfile::tempdir().unwrap();
    let queue = QueueName::Work(docket_core::Priority::Normal);
    println!(
        "| run | compiled plugins in /tmp | init (exec → first event request) | first evaluation answered (exec → response) |"
    );
    println!("|---|---|---:|---:|");
    for run in 1..=5 {
        upload(
            &pipeline,
            &settings,
            &[("doc", "A plan with goals, budget and indicators.")],
        )
        .await;
        let deliveries = aws
            .queue
            .receive(queue, 10, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(deliveries.len(), 1);
        let event =
            serde_json::to_value(sqs_event(&settings.names, queue, false, &deliveries)).unwrap();
        let log = Arc::new(std::sync::Mutex::new(RuntimeLog::default()));
        let answered = Arc::new(tokio::sync::Notify::new());
        let api = runtime_api(event, log.clone(), answered.clone()).await;
        let cached = std::fs::read_dir(tmp.path().join("docket-cache"))
            .map(|d| d.count() > 0)
            .unwrap_or(false);
        let started = std::time::Instant::now();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_processor"))
            .env("AWS_LAMBDA_RUNTIME_API", api.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", "processor")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/processor")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "cold-start")
            .env("DOCKET_PREFIX", &prefix)
            .env("TMPDIR", tmp.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        tokio::time::timeout(Duration::from_secs(120), answered.notified())
            .await
            .expect("the processor answered");
        child.kill().unwrap();
        child.wait().unwrap();
        let log = log.lock().unwrap();
        assert!(log.error.is_none(), "{:?}", log.error);
        assert_eq!(
            log.response.as_ref().unwrap()["batchItemFailures"],
            json!([])
        );
        let ms = |at: Option<std::time::Instant>| (at.unwrap() - started).as_secs_f64() * 1e3;
        println!(
            "| {run} | {} | {:.0} ms | {:.0} ms |",
            if cached { "yes" } else { "no" },
            ms(log.next_at),
            ms(log.response_at)
        );
    }
}
