//! The API router against the embedded backend and the real plugin host,
//! called with `oneshot`: the upload → status → results flow with the field
//! names batch clients read, every validation error, 404s and cancel.

// Test code: a failed unwrap fails the test.
#![allow(clippy::unwrap_used)]

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use docket_api::{AppState, app};
use docket_core::auth::{Tier, generate_token};
use docket_core::model::TenantId;
use docket_core::pipeline::PipelineSettings;
use docket_core::ports::JobStore;
use docket_tests::Harness;
use futures_util::StreamExt;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

async fn call_with(state: AppState, request: Request<Body>) -> (StatusCode, Value, HeaderMap) {
    let response = app(state).oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, body, headers)
}

fn state(harness: &Harness) -> AppState {
    state_shedding_at(harness, 1_000)
}

/// An API instance that refuses new batches past `max_queue_depth` waiting
/// work items.
fn state_shedding_at(harness: &Harness, max_queue_depth: u64) -> AppState {
    AppState {
        pipeline: harness.pipeline.with_settings(PipelineSettings {
            max_queue_depth: Some(max_queue_depth),
            ..Harness::settings()
        }),
        max_documents: 500,
        max_body_bytes: 256 * 1024,
        default_evaluator: "decalogo".into(),
        max_response_bytes: None,
        metrics_namespace: Default::default(),
    }
}

/// A new API key for `tenant`; returns the token.
async fn key(harness: &Harness, tenant: &str, tier: Tier) -> String {
    harness
        .pipeline
        .issue_api_key(&TenantId::parse(tenant).unwrap(), tier)
        .await
        .unwrap()
        .token
}

async fn call(harness: &Harness, request: Request<Body>) -> (StatusCode, String) {
    let response = app(state(harness)).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

async fn call_json(harness: &Harness, request: Request<Body>) -> (StatusCode, Value) {
    let (status, body) = call(harness, request).await;
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

fn post(token: &str, body: &Value) -> Request<Body> {
    Request::post("/api/v1/batch/upload")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::from(body.to_string()))
        .unwrap()
}

/// Requests built by [`post`] sent elsewhere.
trait UriOf {
    fn uri_of(self, uri: &str) -> Self;
}

impl UriOf for Request<Body> {
    fn uri_of(mut self, uri: &str) -> Self {
        *self.uri_mut() = uri.parse().unwrap();
        self
    }
}

/// Requests with a `Host` header, as a client sends.
trait HeaderHost {
    fn header_host(self, host: &str) -> Self;
}

impl HeaderHost for Request<Body> {
    fn header_host(mut self, host: &str) -> Self {
        self.headers_mut()
            .insert(header::HOST, host.parse().unwrap());
        self
    }
}

fn get(token: &str, uri: &str) -> Request<Body> {
    Request::get(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap()
}

fn delete(token: &str, uri: &str) -> Request<Body> {
    Request::delete(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap()
}

/// An error body's `details` as (field, message) pairs.
fn field_errors(body: &Value) -> Vec<(&str, &str)> {
    body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["field"].as_str().unwrap(), d["message"].as_str().unwrap()))
        .collect()
}

/// The job of `body`, submitted and run until finalized; its id.
async fn finished(harness: &Harness, token: &str, body: &Value) -> String {
    let (status, accepted) = call_json(harness, post(token, body)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let job_id = accepted["job_id"].as_str().unwrap().to_owned();
    harness
        .run_until_finalized(&docket_core::JobId::parse(&job_id).unwrap(), 20)
        .await;
    job_id
}

fn plans() -> Value {
    json!({"documents": [
        {"id": "roble", "title": "El Roble", "content": include_str!("../../../../examples/plans/plan-vereda-el-roble.txt"), "metadata": {"region": "norte"}},
        {"id": "harbor", "title": "Harbor Town", "content": include_str!("../../../../examples/plans/harbor-town-strategy.txt")},
    ], "options": {"priority": "high", "include_evidence": true}})
}

mod dashboard;
mod files;
mod flow;
mod limits;
mod ops;
mod query;
mod retry;
mod seed;
mod slots;
mod tenancy;
mod validation;
