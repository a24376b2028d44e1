//! The ports: everything the core needs from the world, as traits.
//!
//! Two adapter sets implement them — `local` (SQLite + files) and `aws`
//! (SQS, S3, DynamoDB) — and one conformance suite checks both. The semantics
//! are SQS/S3/DynamoDB's: at-least-once delivery with visibility timeouts and
//! receive counts, byte-range reads of blobs, conditional writes. Adapters
//! translate their backend's errors into the errors below at the seam; no
//! backend type crosses a port.

//!
//! One module per port: [`WorkQueue`] (queue), [`BlobStore`] (blob), the
//! stores by concern — [`JobStore`], [`ApiKeyStore`], [`RateLimiter`],
//! [`WebhookSecrets`], [`PluginRegistry`] (store) — [`Evaluators`]
//! (evaluators), [`WebhookSender`] (webhook) and [`Clock`] (here). Every
//! method documents its error contract.

mod blob;
mod evaluators;
mod queue;
mod store;
mod webhook;

use chrono::{DateTime, Utc};

use crate::failure::FailureCategory;

pub use blob::{BlobError, BlobStore, ChunkSource, ListedPage, PresignedPut, check_blob_key};
pub use evaluators::{DocumentView, EvaluationReport, EvaluationRequest, Evaluators, Usage};
pub use queue::{
    Delivery, MAX_MESSAGE_BYTES, OutgoingMessage, QueueDepth, QueueError, QueueName, Receipt,
    WorkQueue, check_message_sizes,
};
pub use store::{
    ApiKeyStore, JobActivity, JobFilter, JobStore, PluginRegistry, RateLimiter, RecordReceipt,
    StoreError, StoreStats, WebhookSecrets, check_republish,
};
pub use webhook::{NoWebhooks, WebhookError, WebhookRequest, WebhookSender};

/// A failure of the backend itself (network, throttling, disk), with the
/// category that decides whether the caller retries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{category}: {message}")]
pub struct BackendError {
    /// Retry class: throttling is `RateLimit`, timeouts `Transient`, …
    pub category: FailureCategory,
    /// What the backend said.
    pub message: String,
}

impl BackendError {
    /// A backend error of `category`.
    pub fn new(category: FailureCategory, message: impl Into<String>) -> Self {
        Self {
            category,
            message: message.into(),
        }
    }
}

/// The time, as a port so tests control it.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> DateTime<Utc>;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_keys_stay_inside_the_store() {
        for good in ["a", "documents/job_1/pack-0", "results/j/results.json"] {
            assert_eq!(check_blob_key(good), Ok(()), "{good}");
        }
        for bad in ["", "/abs", "a//b", "a/../b", "..", "./a", "a/", "a\\b"] {
            assert!(check_blob_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn errors_carry_their_retry_class() {
        let throttled = BackendError::new(FailureCategory::RateLimit, "slow down");
        assert_eq!(
            QueueError::from(throttled.clone()).category(),
            FailureCategory::RateLimit
        );
        assert_eq!(
            StoreError::from(throttled).category(),
            FailureCategory::RateLimit
        );
        assert_eq!(
            BlobError::NotFound("k".into()).category(),
            FailureCategory::Data
        );
        assert_eq!(
            StoreError::Conflict("finalized".into()).category(),
            FailureCategory::Permanent
        );
    }
}
