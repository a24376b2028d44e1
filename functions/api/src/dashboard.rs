//! The dashboard: one page and its script and styles, embedded in the
//! binary and served at `/dashboard` without a key (the page asks for one
//! and sends it as a bearer token to the API's own routes), and the
//! overview route it reads beside the status, results, cancel and retry
//! routes.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use docket_core::ports::QueueName;
use serde_json::{Map, Value, json};

use crate::ops::{evaluator_names, queue_depths};
use crate::{ApiError, AppState, Caller};

/// The page.
const PAGE: &str = include_str!("../dashboard/index.html");
/// Its script.
const SCRIPT: &str = include_str!("../dashboard/app.js");
/// Its styles.
const STYLES: &str = include_str!("../dashboard/app.css");

/// Most active jobs one overview lists.
const ACTIVE_JOBS: usize = 100;

/// Each asset is served as is; none holds data or a key.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

pub(crate) async fn page() -> Response {
    asset("text/html; charset=utf-8", PAGE)
}

pub(crate) async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

pub(crate) async fn styles() -> Response {
    asset("text/css; charset=utf-8", STYLES)
}

/// `GET /api/v1/overview`: the caller's jobs by status, documents done
/// per minute over the last hour, the jobs active within it; for an
/// operator key every tenant's, with the queues' depths (dead letters
/// included) and the work items in flight.
pub(crate) async fn overview(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let overview = state.pipeline.overview(&caller).await?;
    let jobs: Map<String, Value> = overview
        .jobs
        .iter()
        .map(|(status, n)| (status.as_str().to_owned(), json!(n)))
        .collect();
    let active: Vec<Value> = overview
        .active
        .iter()
        .take(ACTIVE_JOBS)
        .map(|job| {
            json!({
                "job_id": job.id,
                "tenant": job.tenant,
                "status": job.status,
                "document_count": job.documents_total,
                "documents_done": job.documents_done,
                "started_at": job.started_at,
                "finished_at": job.finished_at,
            })
        })
        .collect();
    let queues = overview.queues.as_deref().map(queue_depths);
    let in_flight = overview.queues.as_ref().map(|depths| {
        depths
            .iter()
            .filter(|(queue, _)| matches!(queue, QueueName::Work(_)))
            .map(|(_, depth)| depth.in_flight)
            .sum::<u64>()
    });
    let per_minute: Vec<u64> = overview
        .documents_per_minute
        .iter()
        .map(|n| n.round() as u64)
        .collect();
    let last_hour: f64 = overview.documents_per_minute.iter().sum();
    let evaluators = evaluator_names(&overview.evaluators);
    Ok(axum::Json(json!({
        "scope": if overview.tenant.is_some() { "tenant" } else { "operator" },
        "tenant": overview.tenant,
        "jobs": jobs,
        "throughput": {
            "documents_per_minute": per_minute,
            "documents_last_hour": last_hour.round() as u64,
        },
        "active_jobs": active,
        "active_jobs_total": overview.active.len(),
        "queues": queues,
        "work_items_in_flight": in_flight,
        "evaluators": evaluators,
    }))
    .into_response())
}
