//! The one error type of the API and its JSON body:
//! `{"error": {"code": "...", "message": "...", "details": [...]}}`.
//! Server errors are logged with their cause and answered without it.

use std::time::Duration;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// A field that failed validation, e.g. `documents[3].content: empty`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// Where, as a path into the request (`documents[3].content`).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl FieldError {
    /// `field: message`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same problem, its field inside `parent` (`options.priority`
    /// from `priority`; `options` for the whole of it).
    pub fn within(self, parent: &str) -> Self {
        let field = match self.field.as_str() {
            "body" => parent.to_owned(),
            field if field.starts_with('[') => format!("{parent}{field}"),
            field => format!("{parent}.{field}"),
        };
        Self { field, ..self }
    }
}

/// Every way a request can fail.
#[derive(Debug)]
pub enum ApiError {
    /// 400: the body is not JSON, or not the right JSON shape.
    Malformed(String),
    /// 401: no bearer token, or one docket does not know.
    Unauthorized(String),
    /// 403: the caller's tier does not allow it.
    Forbidden(String),
    /// 404: no such job for this tenant.
    NotFound(String),
    /// 409: the job cannot do that now (e.g. cancel a finished job).
    Conflict(String),
    /// 413: the body or batch is larger than allowed.
    TooLarge(String),
    /// 415: not `application/json`.
    UnsupportedMediaType(String),
    /// 422: fields are invalid; every one is listed.
    Invalid(Vec<FieldError>),
    /// 429: a quota of the caller's is used up; retry after the delay.
    TooManyRequests {
        /// `rate_limited` (uploads per minute) or `too_many_jobs`
        /// (concurrent jobs).
        code: &'static str,
        /// Which limit, and its value.
        message: String,
        /// When to try again.
        retry_after: Duration,
    },
    /// 503 with `Retry-After`: docket is past its work-queue depth and
    /// sheds new batches until the queues drain.
    Overloaded {
        /// What is too deep.
        message: String,
        /// When to try again.
        retry_after: Duration,
    },
    /// 503: a backend is unavailable; the client should retry.
    Unavailable(String),
    /// 500: a bug or an unexpected backend failure (logged, not sent).
    Internal(String),
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: String,
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    details: &'a [FieldError],
}

/// A response that tells the client when to come back (whole seconds,
/// rounded up, at least 1).
fn with_retry_after(
    status: StatusCode,
    code: &str,
    message: String,
    retry_after: Duration,
) -> Response {
    let seconds = retry_after.as_secs_f64().ceil().max(1.0) as u64;
    let body = Body {
        error: Inner {
            code,
            message,
            details: &[],
        },
    };
    (
        status,
        [(axum::http::header::RETRY_AFTER, seconds.to_string())],
        Json(body),
    )
        .into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message, details) = match &self {
            ApiError::Malformed(m) => (
                StatusCode::BAD_REQUEST,
                "malformed_request",
                m.clone(),
                &[][..],
            ),
            ApiError::Unauthorized(m) => {
                let body = Body {
                    error: Inner {
                        code: "unauthorized",
                        message: m.clone(),
                        details: &[],
                    },
                };
                return (
                    StatusCode::UNAUTHORIZED,
                    [(axum::http::header::WWW_AUTHENTICATE, "Bearer")],
                    Json(body),
                )
                    .into_response();
            }
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, "tier_limit", m.clone(), &[][..]),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, "not_found", m.clone(), &[][..]),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, "conflict", m.clone(), &[][..]),
            ApiError::TooLarge(m) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                m.clone(),
                &[][..],
            ),
            ApiError::UnsupportedMediaType(m) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                m.clone(),
                &[][..],
            ),
            ApiError::Invalid(fields) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request",
                fields
                    .iter()
                    .map(|f| format!("{}: {}", f.field, f.message))
                    .collect::<Vec<_>>()
                    .join("; "),
                fields.as_slice(),
            ),
            ApiError::TooManyRequests {
                code,
                message,
                retry_after,
            } => {
                return with_retry_after(
                    StatusCode::TOO_MANY_REQUESTS,
                    code,
                    message.clone(),
                    *retry_after,
                );
            }
            ApiError::Overloaded {
                message,
                retry_after,
            } => {
                return with_retry_after(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "overloaded",
                    message.clone(),
                    *retry_after,
                );
            }
            ApiError::Unavailable(m) => {
                tracing::warn!(reason = %m, "request answered 503");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "a backend is unavailable; retry later".into(),
                    &[][..],
                )
            }
            ApiError::Internal(m) => {
                tracing::error!(cause = %m, "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error".into(),
                    &[][..],
                )
            }
        };
        let body = Body {
            error: Inner {
                code,
                message,
                details,
            },
        };
        (status, Json(body)).into_response()
    }
}
