//! For operators and client authors: `GET /api/v1/health` (no auth),
//! `GET /api/v1/metrics` (Prometheus text) and `GET /api/v1/openapi.json`.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::{ApiError, AppState, Caller};

fn status(ok: bool) -> &'static str {
    if ok { "ok" } else { "unavailable" }
}

/// Each component probed with one cheap call: 200 when all answer, 503
/// when one does not. Says no more than up/down, queue depths and the
/// deployment's counts in `metrics` (the health scripts of the systems
/// docket replaces read `jobs_in_queue` and `throughput_docs_per_hour`):
/// it needs no key.
pub(crate) async fn health(State(state): State<AppState>) -> Response {
    let health = state.pipeline.health().await;
    let depths = queue_depths(&health.queues.depths);
    let loaded = evaluator_names(&health.evaluators);
    let healthy = health.is_healthy();
    let metrics = health.figures.as_ref().map(|figures| {
        json!({
            "jobs_in_queue": figures.jobs_queued + figures.jobs_processing,
            "jobs_queued": figures.jobs_queued,
            "jobs_processing": figures.jobs_processing,
            "throughput_docs_per_hour": figures.documents_last_hour.round() as u64,
            "work_items_waiting": figures.work_items_waiting,
            "dead_letters": figures.dead_letters,
        })
    });
    let body = json!({
        "status": status(healthy),
        "version": env!("CARGO_PKG_VERSION"),
        "components": {
            "job_store": {"status": status(health.job_store)},
            "blob_store": {"status": status(health.blob_store)},
            "queues": {
                "status": status(health.queues.ok),
                "depth": depths,
            },
            "evaluators": {"status": "ok", "loaded": loaded},
        },
        "metrics": metrics,
    });
    let code = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(body)).into_response()
}

/// Evaluator versions as `name@version`.
pub(crate) fn evaluator_names(evaluators: &[docket_core::model::EvaluatorRef]) -> Vec<String> {
    evaluators
        .iter()
        .map(|e| format!("{}@{}", e.name, e.version))
        .collect()
}

/// Queue depths by queue name.
pub(crate) fn queue_depths(
    depths: &[(
        docket_core::ports::QueueName,
        docket_core::ports::QueueDepth,
    )],
) -> Map<String, Value> {
    depths
        .iter()
        .map(|(queue, depth)| (queue.as_str().to_owned(), json!(depth)))
        .collect()
}

/// The API's OpenAPI 3.0 document.
pub const OPENAPI: &str = include_str!("../openapi.json");

pub(crate) async fn openapi(_caller: Caller) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// Deployment-wide figures from the store and the queues, and this
/// process's processing counters, as series of the deployment's namespace
/// (`docket_` unless configured).
pub(crate) async fn metrics(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Response, ApiError> {
    let text = state
        .pipeline
        .prometheus(state.metrics_namespace.clone())
        .await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}
