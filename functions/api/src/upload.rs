//! `POST /api/v1/batch/upload`: validate a batch, say what is wrong and
//! where, and submit it.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use docket_core::model::{Chunking, DocumentBody, DocumentSpec, JobOptions, Priority};
use docket_core::model::{Job, JobId};
use docket_core::pipeline::{IntakeDocument, PipelineError, Submission};
use docket_core::ports::StoreError;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{ApiError, FieldError};
use crate::extract::ApiJson;
use crate::{AppState, Caller, quota};

/// The upload body: the batch clients' shape plus docket's own options.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UploadRequest {
    documents: Vec<UploadDocument>,
    #[serde(default)]
    options: UploadOptions,
}

#[derive(Debug, Deserialize)]
pub(crate) struct UploadDocument {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    content: Option<Value>,
    #[serde(default)]
    metadata: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct UploadOptions {
    priority: Option<String>,
    include_evidence: Option<bool>,
    include_questionnaire: Option<bool>,
    webhook_url: Option<String>,
    evaluator: Option<String>,
    config: Option<Value>,
    chunking: Option<Chunking>,
    tolerated_failure_percent: Option<f64>,
}

/// Checks every field and collects every problem.
async fn validate(
    request: UploadRequest,
    state: &AppState,
    caller: &Caller,
) -> Result<Submission, ApiError> {
    let mut errors = Vec::new();
    if request.documents.is_empty() {
        errors.push(FieldError::new(
            "documents",
            "at least one document is required",
        ));
    }
    if request.documents.len() > state.max_documents {
        return Err(ApiError::TooLarge(format!(
            "a batch of {} documents exceeds the limit of {}",
            request.documents.len(),
            state.max_documents
        )));
    }
    let allowed = caller.tier.limits().documents_per_batch;
    if request.documents.len() > allowed {
        return Err(ApiError::Forbidden(format!(
            "the {} tier allows {allowed} documents per batch; this batch has {}",
            caller.tier.as_str(),
            request.documents.len()
        )));
    }
    let mut batch_bytes = 0usize;
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut documents = Vec::with_capacity(request.documents.len());
    for (n, document) in request.documents.into_iter().enumerate() {
        let at = |field: &str| format!("documents[{n}].{field}");
        let id = match document.id {
            Some(Value::String(id)) if id.trim().is_empty() => {
                errors.push(FieldError::new(at("id"), "empty"));
                continue;
            }
            Some(Value::String(id)) => id,
            Some(Value::Number(id)) => id.to_string(),
            Some(_) => {
                errors.push(FieldError::new(at("id"), "must be a string"));
                continue;
            }
            None => {
                errors.push(FieldError::new(at("id"), "missing"));
                continue;
            }
        };
        if let Some(first) = seen.insert(id.clone(), n) {
            errors.push(FieldError::new(
                at("id"),
                format!("duplicate of documents[{first}].id {id:?}"),
            ));
        }
        let content = match document.content {
            Some(Value::String(content)) if content.trim().is_empty() => {
                errors.push(FieldError::new(at("content"), "empty"));
                continue;
            }
            Some(Value::String(content)) => content,
            Some(_) => {
                errors.push(FieldError::new(at("content"), "must be a string"));
                continue;
            }
            None => {
                errors.push(FieldError::new(at("content"), "missing"));
                continue;
            }
        };
        let metadata = match document.metadata {
            None | Some(Value::Null) => Value::Null,
            Some(metadata @ Value::Object(_)) => metadata,
            Some(_) => {
                errors.push(FieldError::new(at("metadata"), "must be a JSON object"));
                continue;
            }
        };
        batch_bytes += content.len();
        documents.push(IntakeDocument::Accepted(DocumentSpec {
            title: document.title.unwrap_or_else(|| id.clone()),
            id,
            body: DocumentBody::Text(content),
            metadata,
        }));
    }
    let allowed_bytes = caller.tier.limits().batch_bytes;
    if batch_bytes > allowed_bytes {
        return Err(ApiError::TooLarge(format!(
            "the {} tier allows {allowed_bytes} bytes of document text per batch; this batch has {batch_bytes}",
            caller.tier.as_str()
        )));
    }
    let options = request.options;
    let priority = match options.priority.as_deref().map(str::parse::<Priority>) {
        None => Priority::Normal,
        Some(Ok(priority)) => priority,
        Some(Err(message)) => {
            errors.push(FieldError::new("options.priority", message));
            Priority::Normal
        }
    };
    let tolerated = options.tolerated_failure_percent.unwrap_or(100.0);
    if !(0.0..=100.0).contains(&tolerated) {
        errors.push(FieldError::new(
            "options.tolerated_failure_percent",
            "must be between 0 and 100",
        ));
    }
    if let Some(url) = &options.webhook_url
        && !(url.starts_with("https://") || url.starts_with("http://"))
    {
        errors.push(FieldError::new(
            "options.webhook_url",
            "must be an http(s) URL",
        ));
    }
    let mut config = match options.config {
        None => json!({}),
        Some(config @ Value::Object(_)) => config,
        Some(_) => {
            errors.push(FieldError::new("options.config", "must be a JSON object"));
            json!({})
        }
    };
    if let (Some(include), Some(object)) = (options.include_questionnaire, config.as_object_mut()) {
        object.insert("include_questionnaire".into(), Value::Bool(include));
    }
    let spec = options
        .evaluator
        .unwrap_or_else(|| state.default_evaluator.clone());
    let evaluator = match state.pipeline.evaluators.resolve(&spec).await {
        Ok(evaluator) => Some(evaluator),
        Err(failure) => {
            errors.push(FieldError::new("options.evaluator", failure.message));
            None
        }
    };
    match evaluator {
        Some(evaluator) if errors.is_empty() => Ok(Submission {
            job_id: None,
            tenant: caller.tenant.clone(),
            evaluator,
            config,
            options: JobOptions {
                priority,
                include_evidence: options.include_evidence.unwrap_or(true),
                tolerated_failure_percent: tolerated,
                chunking: options.chunking.unwrap_or_default(),
                webhook_url: options.webhook_url,
            },
            documents,
        }),
        _ => Err(ApiError::Invalid(errors)),
    }
}

/// The job id an `Idempotency-Key` stands for: the same key from the same
/// tenant always names the same job.
pub(crate) fn idempotent_job_id(tenant: &docket_core::TenantId, key: &str) -> JobId {
    let digest = docket_core::auth::hash_token(&format!("{tenant}\n{key}"));
    let hex = digest.trim_start_matches("sha256:");
    JobId::parse(&format!("job_idem_{}", &hex[..32])).unwrap_or_else(|_| JobId::generate())
}

/// Admits and submits a batch. Under a fixed job id it does so once: a
/// repeated call finds the job, writes nothing and spends no quota, and of
/// two concurrent calls one creates it.
pub(crate) async fn submit(
    state: &AppState,
    caller: &Caller,
    submission: Submission,
) -> Result<Job, ApiError> {
    let store = &state.pipeline.store;
    if let Some(id) = &submission.job_id {
        match store.job(id).await {
            Ok(existing) => return Ok(existing),
            Err(StoreError::NotFound(_)) => {}
            Err(e) => return Err(PipelineError::Store(e).into()),
        }
    }
    quota::admit(state, caller).await?;
    let id = submission.job_id.clone();
    match (state.pipeline.submit(submission).await, id) {
        (Ok(job), _) => Ok(job),
        (Err(PipelineError::Store(StoreError::Conflict(_))), Some(id)) => {
            Ok(store.job(&id).await.map_err(PipelineError::Store)?)
        }
        (Err(e), _) => Err(e.into()),
    }
}

pub(crate) async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(request): ApiJson<UploadRequest>,
) -> Result<Response, ApiError> {
    let idempotency_key = match headers.get("idempotency-key") {
        None => None,
        Some(value) => match value.to_str().map(str::trim) {
            Ok(key) if !key.is_empty() && key.len() <= 255 => Some(key.to_owned()),
            _ => {
                return Err(ApiError::Invalid(vec![FieldError::new(
                    "Idempotency-Key",
                    "must be 1 to 255 visible ASCII characters",
                )]));
            }
        },
    };
    let mut submission = validate(request, &state, &caller).await?;
    if let Some(url) = &submission.options.webhook_url
        && let Err(refused) = state.pipeline.webhooks.check(url).await
    {
        return Err(ApiError::Invalid(vec![FieldError::new(
            "options.webhook_url",
            refused.to_string(),
        )]));
    }
    if let Some(key) = idempotency_key {
        submission.job_id = Some(idempotent_job_id(&caller.tenant, &key));
    }
    let job = submit(&state, &caller, submission).await?;
    Ok(accepted(&job, json!({})))
}

/// The 202 answer to an accepted batch, with `extra` fields.
pub(crate) fn accepted(job: &Job, extra: Value) -> Response {
    let mut body = json!({
        "job_id": job.id,
        "status": job.status,
        "document_count": job.counters.documents_total,
        "status_url": format!("/api/v1/batch/status/{}", job.id),
        "results_url": format!("/api/v1/batch/results/{}", job.id),
    });
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    (StatusCode::ACCEPTED, axum::Json(body)).into_response()
}
