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
use docket_core::pipeline::{IntakeDocument, Pipeline, PipelineSettings, Submission};
use docket_core::ports::{BlobStore, JobStore, QueueName, WorkQueue};
use docket_lambda::Settings;
use lambda_http::request::LambdaRequest;
use lambda_http::{Context, LambdaEvent, Service};
use serde_json::{Value, json};

const SQS_FIXTURE: &str = include_str!("../fixtures/sqs-event.json");
const APIGW_FIXTURE: &str = include_str!("../fixtures/apigw-v2-request.json");
const S3_FIXTURE: &str = include_str!("../fixtures/s3-event.json");

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

/// A finished job's `results.json` as stored in S3 (its index and parts),
/// read without the pipeline.
pub(crate) async fn stored_results(aws: &AwsBackend, job: &JobId) -> Value {
    let view = docket_core::results::ResultsView::whole(docket_core::results::ResultsFormat::Json);
    let bytes = docket_core::results::ResultsStream::open(aws.blobs.clone(), job, view)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
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
        metrics_namespace: Default::default(),
        shipped_code: None,
    };
    let pipeline = docket_lambda_evaluators::pipeline(&settings).await.unwrap();
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
/// serves it: the response as API Gateway gets it (status, headers, body).
async fn api_response(router: &axum::Router, request: ApiGatewayV2httpRequest) -> Value {
    let mut adapter = lambda_http::Adapter::from(router.clone());
    let event = LambdaEvent::new(LambdaRequest::ApiGatewayV2(request), Context::default());
    let response = adapter.call(event).await.unwrap();
    serde_json::to_value(&response).unwrap()
}

/// [`api_response`]'s status and JSON body.
async fn call_api(router: &axum::Router, request: ApiGatewayV2httpRequest) -> (u16, Value) {
    let response = api_response(router, request).await;
    let status = response["statusCode"].as_u64().unwrap() as u16;
    let body = response["body"].as_str().unwrap_or("null");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// A premium API key of tenant `acme`.
async fn api_key(pipeline: &Pipeline) -> String {
    pipeline
        .issue_api_key(&TenantId::parse("acme").unwrap(), Tier::Premium)
        .await
        .unwrap()
        .token
}

/// The `upload` function's router, on the pipeline its binary builds
/// (evaluators resolved without a plugin engine).
async fn upload_function(settings: &Settings) -> axum::Router {
    docket_lambda::api(docket_lambda::pipeline(settings).await.unwrap(), settings)
}

/// Submits `documents` through the upload handler; returns the job.
async fn upload(pipeline: &Pipeline, settings: &Settings, documents: &[(&str, &str)]) -> JobId {
    let token = api_key(pipeline).await;
    let batch = json!({"documents": documents
        .iter()
        .map(|(id, content)| json!({"id": id, "content": content}))
        .collect::<Vec<_>>(), "options": {"evaluator": "wordstats"}});
    let router = upload_function(settings).await;
    let (status, accepted) = call_api(
        &router,
        api_request("POST", "/api/v1/batch/upload", &token, Some(&batch)),
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    JobId::parse(accepted["job_id"].as_str().unwrap()).unwrap()
}

mod cold_start;
mod crashes;
mod figures;
mod finalize;
mod flow;
mod inbox;
mod plugins;
mod reference;
mod runner;
mod uploads;

use reference::*;
use runner::*;
