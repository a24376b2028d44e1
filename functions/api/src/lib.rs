//! docket's HTTP API (v1) as one axum [`Router`], built by [`app`]: the
//! upload Lambda serves it through `lambda_http`, `docket serve` on a local
//! port, and tests call it with `oneshot`.
//!
//! Routes: submit a batch, its status, its results (JSON, JSONL, CSV; with
//! or without evidence), cancel it, retry its failed documents, list
//! batches, health, Prometheus metrics, the OpenAPI document
//! (`openapi.json` beside this crate, served as is), the dashboard's
//! overview and the dashboard itself (`/dashboard`, its page embedded).
//! Every route but health and the dashboard's page needs
//! `Authorization: Bearer <API key>`; a tenant sees only its own jobs, an
//! operator key every tenant's. Tier quotas answer 429, a deep work queue 503, both with
//! `Retry-After`.
#![deny(missing_docs)]

mod auth;
mod dashboard;
pub mod error;
mod extract;
mod files;
mod multipart;
mod ops;
mod upload;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use docket_core::auth::Tier;
use docket_core::metrics::MetricsNamespace;
use docket_core::model::{Job, JobId};
use docket_core::pipeline::{Pipeline, PipelineError, Refusal};
use docket_core::ports::{JobFilter, StoreError};
use docket_core::results::{FilterText, ResultsFilter, ResultsFormat, ResultsView};
use docket_core::upload::{not_a_flag, parse_flag};
use serde::Deserialize;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};

pub use auth::Caller;
pub use error::{ApiError, FieldError};
pub use files::{MAX_SLOTS, UPLOAD_SLOT_TTL};
pub use ops::OPENAPI;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The pipeline over the deployment's ports.
    pub pipeline: Pipeline,
    /// Most documents in one batch for any tier (a 413 past it).
    pub max_documents: usize,
    /// Largest request body; reading stops there (a 413).
    pub max_body_bytes: usize,
    /// Evaluator used when a batch names none.
    pub default_evaluator: String,
    /// Largest response body, when the platform has one (Lambda: 6 MB for
    /// the whole response). Results past it end early with the cursor of
    /// where they stopped; `None` streams them whole.
    pub max_response_bytes: Option<usize>,
    /// The prefix of the metrics route's series (`docket` by default).
    pub metrics_namespace: MetricsNamespace,
}

/// The API's router.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/batch/upload", post(upload::upload))
        .route("/api/v1/batch/files", post(files::slots))
        .route("/api/v1/files/{ticket}", axum::routing::put(files::put))
        .route("/api/v1/batch/status/{job_id}", get(status))
        .route("/api/v1/batch/results/{job_id}", get(results))
        .route("/api/v1/batch/{job_id}", delete(cancel))
        .route("/api/v1/batch/{job_id}/retry", post(retry))
        .route("/api/v1/batch", get(list))
        .route("/api/v1/health", get(ops::health))
        .route("/api/v1/metrics", get(ops::metrics))
        .route("/api/v1/openapi.json", get(ops::openapi))
        .route("/api/v1/overview", get(dashboard::overview))
        .route("/dashboard", get(dashboard::page))
        .route("/dashboard/app.js", get(dashboard::script))
        .route("/dashboard/app.css", get(dashboard::styles))
        .layer(axum::extract::DefaultBodyLimit::max(state.max_body_bytes))
        .layer(
            tower::ServiceBuilder::new()
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(request_span)
                        .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
                )
                .layer(PropagateRequestIdLayer::x_request_id()),
        )
        .with_state(state)
}

/// Every log line of a request carries its id (the client's
/// `x-request-id`, or a new UUID, echoed in the response) and, once known,
/// the job it is about.
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    // An upload ticket is a permission: it is not logged.
    let path = request.uri().path();
    let path = if path.starts_with("/api/v1/files/") {
        "/api/v1/files/{ticket}"
    } else {
        path
    };
    tracing::info_span!(
        "request",
        request_id,
        method = %request.method(),
        path,
        job_id = tracing::field::Empty,
    )
}

fn internal(error: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(error.to_string())
}

impl From<PipelineError> for ApiError {
    fn from(error: PipelineError) -> Self {
        match error {
            PipelineError::Invalid(message) => {
                ApiError::Invalid(vec![FieldError::new("documents", message)])
            }
            PipelineError::Store(StoreError::NotFound(id)) => {
                ApiError::NotFound(format!("job {id} not found"))
            }
            PipelineError::Store(StoreError::Conflict(message)) => ApiError::Conflict(message),
            PipelineError::Refused(Refusal::TooManyJobs {
                message,
                retry_after,
            }) => ApiError::TooManyRequests {
                code: "too_many_jobs",
                message,
                retry_after,
            },
            PipelineError::Refused(Refusal::RateLimited {
                message,
                retry_after,
            }) => ApiError::TooManyRequests {
                code: "rate_limited",
                message,
                retry_after,
            },
            PipelineError::Refused(Refusal::Overloaded {
                message,
                retry_after,
            }) => ApiError::Overloaded {
                message,
                retry_after,
            },
            other if other.category().is_retryable() => ApiError::Unavailable(other.to_string()),
            other => internal(other),
        }
    }
}

/// A job the caller may see, or 404 (another tenant's job is not found
/// either, unless the caller is an operator).
async fn caller_job(state: &AppState, caller: &Caller, job_id: &str) -> Result<Job, ApiError> {
    let not_found = || ApiError::NotFound(format!("job {job_id} not found"));
    let id = JobId::parse(job_id).map_err(|_| not_found())?;
    tracing::Span::current().record("job_id", id.as_str());
    match state.pipeline.caller_job(caller, &id).await {
        Ok(job) => Ok(job),
        Err(PipelineError::Store(StoreError::NotFound(_))) => Err(not_found()),
        Err(e) => Err(e.into()),
    }
}

async fn status(
    State(state): State<AppState>,
    caller: Caller,
    Path(job_id): Path<String>,
) -> Result<Response, ApiError> {
    let job = caller_job(&state, &caller, &job_id).await?;
    Ok(axum::Json(state.pipeline.status_report(&job)).into_response())
}

/// Query of the results route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResultsQuery {
    /// A flag as FastAPI reads one ([`docket_core::upload::parse_flag`]).
    #[serde(default)]
    include_evidence: Option<String>,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    limit: Option<u64>,
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    score: Option<String>,
    #[serde(default)]
    min_score: Option<String>,
    #[serde(default)]
    max_score: Option<String>,
    #[serde(default)]
    finding: Option<String>,
    #[serde(default)]
    severity: Option<String>,
    #[serde(default)]
    q: Option<String>,
}

/// The page of a filtered results query without a `limit`: a filtered
/// page is read before it is answered (its next cursor is known only then).
const FILTERED_PAGE: u64 = 1_000;

/// Largest page of the results route.
const MAX_RESULTS_PAGE: u64 = 10_000;

/// Header naming the cursor of the next page of results.
pub const NEXT_CURSOR_HEADER: &str = "docket-next-cursor";

/// The view a results query asks for.
fn results_view(query: &ResultsQuery, evidence_default: bool) -> Result<ResultsView, ApiError> {
    let mut errors = Vec::new();
    let format = match query.format.as_deref().unwrap_or("json").parse() {
        Ok(format) => format,
        Err(message) => {
            errors.push(FieldError::new("format", message));
            ResultsFormat::Json
        }
    };
    let limit = match query.limit {
        Some(n) if n == 0 || n > MAX_RESULTS_PAGE => {
            errors.push(FieldError::new(
                "limit",
                format!("must be between 1 and {MAX_RESULTS_PAGE}"),
            ));
            None
        }
        limit => limit,
    };
    let evidence = match query.include_evidence.as_deref() {
        None => evidence_default,
        Some(text) => parse_flag(text).unwrap_or_else(|| {
            errors.push(FieldError::new("include_evidence", not_a_flag(text)));
            evidence_default
        }),
    };
    let from = match query.cursor.as_deref() {
        None => 0,
        Some(cursor) => cursor.parse::<u64>().unwrap_or_else(|_| {
            errors.push(FieldError::new(
                "cursor",
                "not a cursor this route gave (use the next_cursor of the previous page)",
            ));
            0
        }),
    };
    let filter = results_filter(query, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    let limit = match limit {
        None if !filter.is_empty() => Some(FILTERED_PAGE),
        limit => limit,
    };
    Ok(ResultsView {
        format,
        evidence,
        from,
        limit,
        filter,
    })
}

/// The documents a results query asks for; each bad condition is named.
fn results_filter(query: &ResultsQuery, errors: &mut Vec<FieldError>) -> ResultsFilter {
    let text = FilterText {
        status: query.status.clone(),
        score: query.score.clone(),
        min_score: query.min_score.clone(),
        max_score: query.max_score.clone(),
        finding: query.finding.clone(),
        severity: query.severity.clone(),
        q: query.q.clone(),
    };
    text.parse().unwrap_or_else(|problems| {
        errors.extend(
            problems
                .into_iter()
                .map(|(field, message)| FieldError::new(field, message)),
        );
        ResultsFilter::default()
    })
}

/// The results of a finished job, streamed a stored part at a time (no
/// whole body in memory); `limit` and `cursor` give a page of documents,
/// the next page's cursor in the `docket-next-cursor` header (and, in JSON,
/// as `next_cursor`). A whole file of a job stored with whole files is a
/// `303 See Other` to a presigned URL of it (AWS).
async fn results(
    State(state): State<AppState>,
    caller: Caller,
    Path(job_id): Path<String>,
    query: Result<Query<ResultsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) =
        query.map_err(|e| ApiError::Invalid(vec![FieldError::new("query", e.body_text())]))?;
    let job = caller_job(&state, &caller, &job_id).await?;
    let view = results_view(&query, job.options.include_evidence)?;
    if job.finished_at.is_none() {
        let report = state.pipeline.status_report(&job);
        return Ok((StatusCode::ACCEPTED, axum::Json(report)).into_response());
    }
    let stream = state
        .pipeline
        .results_stream(&job.id, view.clone())
        .await
        .map_err(internal)?;
    // Results past one response (on AWS, Lambda's 6 MB) are read from
    // their whole file, by a presigned URL.
    if let Some(url) = state
        .pipeline
        .whole_file_url(&job, &view, stream.index())
        .await
        .map_err(internal)?
    {
        let location = header::HeaderValue::from_str(&url)
            .map_err(|e| internal(format!("presigned URL is not a header value: {e}")))?;
        return Ok((StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response());
    }
    if state.max_response_bytes.is_some() || !view.filter.is_empty() {
        // Read here, so the cursor of where it stopped is known for the
        // header: within the platform's budget (it holds the body whole
        // anyway), or a filtered page (at most its limit of documents).
        let mut stream = match state.max_response_bytes {
            Some(budget) => stream.within_bytes(budget as u64),
            None => stream,
        };
        let mut body = Vec::new();
        while let Some(chunk) = stream.next_chunk().await.map_err(internal)? {
            body.extend_from_slice(&chunk);
        }
        let mut response = body.into_response();
        set_results_headers(&mut response, view.format, stream.next_cursor());
        return Ok(response);
    }
    let next_cursor = stream.next_cursor();
    let job_id = job.id.clone();
    let body = futures_util::stream::unfold(Some(stream), move |stream| {
        let job_id = job_id.clone();
        async move {
            let mut stream = stream?;
            match stream.next_chunk().await {
                Ok(Some(chunk)) => Some((Ok(chunk), Some(stream))),
                Ok(None) => None,
                Err(error) => {
                    // The status line is sent: the body is cut short.
                    tracing::error!(%job_id, %error, "results stream failed");
                    Some((Err(std::io::Error::other(error.to_string())), None))
                }
            }
        }
    });
    let mut response = axum::body::Body::from_stream(body).into_response();
    set_results_headers(&mut response, view.format, next_cursor);
    Ok(response)
}

/// A results response's type, and the cursor of the next page if any.
fn set_results_headers(response: &mut Response, format: ResultsFormat, next: Option<u64>) {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(format.content_type()),
    );
    if let Some(cursor) = next {
        headers.insert(NEXT_CURSOR_HEADER, header::HeaderValue::from(cursor));
    }
}

async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(job_id): Path<String>,
) -> Result<Response, ApiError> {
    let job = caller_job(&state, &caller, &job_id).await?;
    let cancelled = state.pipeline.cancel(&job.id).await?;
    Ok(axum::Json(serde_json::json!({
        "job_id": cancelled.id,
        "status": cancelled.status,
    }))
    .into_response())
}

/// A recovery job of a finished job's failed documents: same evaluator
/// (pinned version), configuration and options. Retrying the same job again
/// answers with the same recovery job.
async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    Path(job_id): Path<String>,
) -> Result<Response, ApiError> {
    let job = caller_job(&state, &caller, &job_id).await?;
    // An operator's retry makes the owner's recovery job, under the tier
    // the job was submitted with.
    let owner = Tier::of_fair_share(job.options.fair_share);
    let retried = state
        .pipeline
        .retry(&caller.on_behalf_of(&job.tenant, owner), &job)
        .await?;
    let not_retried: Vec<serde_json::Value> = retried
        .not_retried
        .iter()
        .map(|(id, reason)| serde_json::json!({ "id": id, "reason": reason }))
        .collect();
    Ok(upload::accepted(
        &retried.job,
        serde_json::json!({ "retry_of": job.id, "not_retried": not_retried }),
    ))
}

/// Query of the list route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    cursor: Option<String>,
}

/// Largest page of the list route.
const MAX_PAGE: usize = 100;

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) =
        query.map_err(|e| ApiError::Invalid(vec![FieldError::new("query", e.body_text())]))?;
    let mut errors = Vec::new();
    let status = match query
        .status
        .as_deref()
        .map(str::parse::<docket_core::JobStatus>)
    {
        None => None,
        Some(Ok(status)) => Some(status),
        Some(Err(message)) => {
            errors.push(FieldError::new("status", message));
            None
        }
    };
    let since = match query
        .since
        .as_deref()
        .map(chrono::DateTime::parse_from_rfc3339)
    {
        None => None,
        Some(Ok(since)) => Some(since.with_timezone(&chrono::Utc)),
        Some(Err(e)) => {
            errors.push(FieldError::new(
                "since",
                format!("not an RFC 3339 time: {e}"),
            ));
            None
        }
    };
    let limit = query.limit.unwrap_or(20);
    if !(1..=MAX_PAGE).contains(&limit) {
        errors.push(FieldError::new(
            "limit",
            format!("must be between 1 and {MAX_PAGE}"),
        ));
    }
    let before = match query.cursor.as_deref().map(JobId::parse) {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(_)) => {
            errors.push(FieldError::new(
                "cursor",
                "not a cursor returned by this route",
            ));
            None
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    // One more than the page tells whether there is a next page.
    let filter = JobFilter {
        status,
        since,
        before,
        limit: limit + 1,
    };
    let jobs = state.pipeline.list_jobs(&caller.tenant, &filter).await?;
    Ok(axum::Json(jobs_page(&state.pipeline, jobs, limit)).into_response())
}

/// The list route's answer: the first `limit` of `jobs` (listed with one
/// more than a page, which tells whether there is a next page) and the
/// cursor of the next page.
pub fn jobs_page(pipeline: &Pipeline, mut jobs: Vec<Job>, limit: usize) -> serde_json::Value {
    let next_cursor = (jobs.len() > limit).then(|| jobs[limit - 1].id.clone());
    jobs.truncate(limit);
    let jobs: Vec<serde_json::Value> = jobs
        .iter()
        .map(|job| {
            let report = pipeline.status_report(job);
            serde_json::json!({
                "job_id": job.id,
                "status": job.status,
                "document_count": job.counters.documents_total,
                "evaluator": job.evaluator,
                "created_at": job.created_at,
                "finished_at": job.finished_at,
                "progress": report.progress,
            })
        })
        .collect();
    serde_json::json!({ "jobs": jobs, "next_cursor": next_cursor })
}
