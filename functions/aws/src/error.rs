//! AWS errors translated at the seam: throttling is `RateLimit`, timeouts
//! and 5xx are `Transient`, anything else `Permanent`. No SDK type leaves
//! this crate.

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use docket_core::FailureCategory;
use docket_core::ports::BackendError;

/// Error codes that mean "slow down".
const THROTTLING: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "SlowDown",
    "RequestThrottled",
    "RequestThrottledException",
    "TransactionInProgressException",
];

/// The service's error code, when the service answered with one.
pub(crate) fn code<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> Option<&str> {
    match error {
        SdkError::ServiceError(service) => service.err().code(),
        _ => None,
    }
}

/// The retry class and message of an SDK error.
pub(crate) fn backend<E>(what: &str, error: &SdkError<E, HttpResponse>) -> BackendError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let category = match error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            FailureCategory::Transient
        }
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            if THROTTLING.contains(&code) {
                FailureCategory::RateLimit
            } else if service.raw().status().as_u16() >= 500 {
                FailureCategory::Transient
            } else {
                FailureCategory::Permanent
            }
        }
        _ => FailureCategory::Permanent,
    };
    let detail = match error {
        SdkError::ServiceError(service) => format!(
            "{}: {}",
            service.err().code().unwrap_or("error"),
            service.err().message().unwrap_or_default()
        ),
        other => std::error::Error::source(other)
            .map(|source| source.to_string())
            .unwrap_or_else(|| other.to_string()),
    };
    BackendError::new(category, format!("{what}: {detail}"))
}

/// A resource could not be created or found.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ProvisionError(pub String);

impl ProvisionError {
    pub(crate) fn from_sdk<E>(error: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        Self(backend("provisioning", &error).message)
    }
}

impl From<aws_sdk_dynamodb::error::BuildError> for ProvisionError {
    fn from(error: aws_sdk_dynamodb::error::BuildError) -> Self {
        Self(error.to_string())
    }
}
