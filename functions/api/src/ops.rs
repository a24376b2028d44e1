//! For operators and client authors: `GET /api/v1/health` (no auth),
//! `GET /api/v1/metrics` (Prometheus text) and `GET /api/v1/openapi.json`.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use docket_core::PipelineError;
use docket_core::metrics::PrometheusText;
use docket_core::ports::QueueName;
use serde_json::{Map, Value, json};

use crate::{ApiError, AppState, Caller};

fn component<T>(result: Result<T, impl std::fmt::Display>, name: &str) -> (bool, Value, Option<T>) {
    match result {
        Ok(value) => (true, json!({"status": "ok"}), Some(value)),
        Err(error) => {
            tracing::warn!(component = name, %error, "health check failed");
            (false, json!({"status": "unavailable"}), None)
        }
    }
}

/// Each component probed with one cheap call: 200 when all answer, 503
/// when one does not. Says no more than up/down and queue depths: it needs
/// no key.
pub(crate) async fn health(State(state): State<AppState>) -> Response {
    let pipeline = &state.pipeline;
    let probe = docket_core::JobId::parse("job_health_probe").map_err(|e| e.to_string());
    let store = match probe {
        Ok(id) => match pipeline.store.job(&id).await {
            Ok(_) | Err(docket_core::ports::StoreError::NotFound(_)) => Ok(()),
            Err(e) => Err(e.to_string()),
        },
        Err(e) => Err(e),
    };
    let (store_ok, store, _) = component(store, "job_store");
    let (blobs_ok, blobs, _) = component(pipeline.blobs.list("health/").await, "blob_store");
    let mut queues_ok = true;
    let mut depths = Map::new();
    for queue in QueueName::ALL {
        match pipeline.queue.depth(queue).await {
            Ok(depth) => {
                depths.insert(queue.as_str().into(), json!(depth));
            }
            Err(error) => {
                tracing::warn!(queue = queue.as_str(), %error, "health check failed");
                queues_ok = false;
            }
        }
    }
    let loaded: Vec<String> = pipeline
        .evaluators
        .loaded()
        .iter()
        .map(|e| format!("{}@{}", e.name, e.version))
        .collect();
    let healthy = store_ok && blobs_ok && queues_ok;
    let body = json!({
        "status": if healthy { "ok" } else { "unavailable" },
        "version": env!("CARGO_PKG_VERSION"),
        "components": {
            "job_store": store,
            "blob_store": blobs,
            "queues": {
                "status": if queues_ok { "ok" } else { "unavailable" },
                "depth": depths,
            },
            "evaluators": {"status": "ok", "loaded": loaded},
        },
    });
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

/// The API's OpenAPI 3.0 document.
pub const OPENAPI: &str = include_str!("../openapi.json");

pub(crate) async fn openapi(_caller: Caller) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// Deployment-wide figures from the store and the queues, and this
/// process's processing counters, as `docket_` series.
pub(crate) async fn metrics(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Response, ApiError> {
    let pipeline = &state.pipeline;
    let stats = pipeline.store.stats().await.map_err(PipelineError::Store)?;
    let mut text = PrometheusText::default();
    let jobs = "docket_jobs";
    text.family(jobs, "gauge", "Jobs stored, by status.");
    for (status, count) in &stats.jobs {
        text.sample(jobs, &[("status", status.as_str())], *count as f64);
    }
    let documents = "docket_documents";
    text.family(
        documents,
        "gauge",
        "Documents counted by the stored jobs, by outcome.",
    )
    .sample(
        documents,
        &[("status", "succeeded")],
        stats.documents_succeeded as f64,
    )
    .sample(
        documents,
        &[("status", "failed")],
        stats.documents_failed as f64,
    )
    .sample(
        documents,
        &[("status", "skipped")],
        stats.documents_skipped as f64,
    );
    let depth = "docket_queue_depth";
    text.family(depth, "gauge", "Messages in each queue, by state.");
    for queue in QueueName::ALL {
        let d = pipeline
            .queue
            .depth(queue)
            .await
            .map_err(PipelineError::Queue)?;
        for (which, count) in [
            ("visible", d.visible),
            ("in_flight", d.in_flight),
            ("dead", d.dead),
        ] {
            text.sample(
                depth,
                &[("queue", queue.as_str()), ("state", which)],
                count as f64,
            );
        }
    }
    text.metrics(&pipeline.metrics.snapshot(pipeline.clock.now()));
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text.finish(),
    )
        .into_response())
}
