//! [`WorkQueue`]: at-least-once queues with visibility timeouts.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::BackendError;
use crate::failure::FailureCategory;
use crate::model::Priority;

/// The queues docket uses. Each has a dead-letter companion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueueName {
    /// Work items, one queue per priority.
    Work(Priority),
    /// Jobs whose last item was recorded.
    Finalize,
    /// Webhook deliveries.
    Webhook,
    /// Notifications of files dropped in the inbox (S3 events, on AWS).
    Ingest,
}

impl QueueName {
    /// Every queue.
    pub const ALL: [QueueName; 6] = [
        QueueName::Work(Priority::High),
        QueueName::Work(Priority::Normal),
        QueueName::Work(Priority::Low),
        QueueName::Finalize,
        QueueName::Webhook,
        QueueName::Ingest,
    ];

    /// Stable short name, e.g. `work-high`, used by adapters to name
    /// resources.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueName::Work(Priority::High) => "work-high",
            QueueName::Work(Priority::Normal) => "work-normal",
            QueueName::Work(Priority::Low) => "work-low",
            QueueName::Finalize => "finalize",
            QueueName::Webhook => "webhook",
            QueueName::Ingest => "ingest",
        }
    }
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// UTF-8 body (JSON in docket), at most [`MAX_MESSAGE_BYTES`].
    pub body: String,
    /// Invisible for this long after sending (SQS allows up to 15 minutes).
    pub delay: Duration,
    /// Its fairness group (work items: the job's tenant). A queue takes
    /// the ready messages of its groups in turn, so one group's backlog
    /// does not hold the others behind it (SQS fair queues: the message
    /// group id on a standard queue).
    pub group: Option<String>,
    /// The group's weight in those turns (at least 1; SQS fair queues
    /// share equally and ignore it).
    pub weight: u32,
}

impl OutgoingMessage {
    /// A message visible at once.
    pub fn new(body: impl Into<String>) -> Self {
        Self {
            body: body.into(),
            delay: Duration::ZERO,
            group: None,
            weight: 1,
        }
    }

    /// The same message in fairness group `group`.
    #[must_use]
    pub fn in_group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }

    /// A work item of `job` as its message: in the group of the job's
    /// tenant, weighted by its fair share, so tenants take turns on the
    /// work queues.
    pub fn work_item(job: &crate::model::Job, item: &impl Serialize) -> Self {
        Self {
            weight: job.options.fair_share.max(1),
            ..Self::json(item).in_group(job.tenant.as_str())
        }
    }

    /// A message visible at once whose body is `message` as JSON (docket's
    /// messages are plain structs, whose serialization cannot fail).
    pub fn json(message: &impl Serialize) -> Self {
        Self::new(serde_json::to_string(message).unwrap_or_default())
    }
}

/// Largest message body the queues accept (SQS's limit).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// Proof of one receipt of a message; needed to ack it or change its
/// visibility. A later receipt of the same message invalidates it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Receipt(pub String);

/// A received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Stable id of the message (the same on every delivery).
    pub message_id: String,
    /// This receipt.
    pub receipt: Receipt,
    /// The body as sent.
    pub body: String,
    /// How many times the message has been received, this time included.
    pub receive_count: u32,
}

/// How many messages a queue holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct QueueDepth {
    /// Ready to be received (delayed ones included).
    pub visible: u64,
    /// Received and not yet acked or visible again.
    pub in_flight: u64,
    /// In the dead-letter companion.
    pub dead: u64,
}

/// Checks every body against [`MAX_MESSAGE_BYTES`] before anything is
/// sent (what every adapter's `send` does first).
///
/// # Errors
/// [`QueueError::MessageTooLarge`] for the first body past the limit.
pub fn check_message_sizes(messages: &[OutgoingMessage]) -> Result<(), QueueError> {
    match messages.iter().find(|m| m.body.len() > MAX_MESSAGE_BYTES) {
        Some(large) => Err(QueueError::MessageTooLarge {
            size: large.body.len(),
            limit: MAX_MESSAGE_BYTES,
        }),
        None => Ok(()),
    }
}

/// Errors of [`WorkQueue`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// A body larger than [`MAX_MESSAGE_BYTES`].
    #[error("message of {size} bytes is larger than the {limit}-byte limit")]
    MessageTooLarge {
        /// The body's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The backend failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

impl QueueError {
    /// The retry class of this error.
    pub fn category(&self) -> FailureCategory {
        match self {
            QueueError::MessageTooLarge { .. } => FailureCategory::Permanent,
            QueueError::Backend(e) => e.category,
        }
    }
}

/// At-least-once message queues with visibility timeouts (SQS semantics).
#[async_trait]
pub trait WorkQueue: Send + Sync {
    /// Sends `messages`, batching calls as the backend allows (SQS: 10 per
    /// call). Either all are sent or an error is returned; after an error
    /// some may have been sent (senders are idempotent downstream).
    ///
    /// # Errors
    /// [`QueueError::MessageTooLarge`] before anything is sent when a body is
    /// too large; [`QueueError::Backend`] when the backend fails.
    async fn send(
        &self,
        queue: QueueName,
        messages: Vec<OutgoingMessage>,
    ) -> Result<(), QueueError>;

    /// Receives up to `max` visible messages and hides them for `visibility`.
    /// Returns an empty list when none is visible (it may wait briefly).
    /// A message received more times than the queue's dead-letter threshold
    /// moves to the dead-letter companion instead of being returned.
    ///
    /// # Errors
    /// [`QueueError::Backend`] when the backend fails.
    async fn receive(
        &self,
        queue: QueueName,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<Delivery>, QueueError>;

    /// Deletes the messages of these receipts. A stale receipt (the message
    /// was received again since, or is gone) is ignored.
    ///
    /// # Errors
    /// [`QueueError::Backend`] when the backend fails.
    async fn ack(&self, queue: QueueName, receipts: &[Receipt]) -> Result<(), QueueError>;

    /// Makes the message visible again after `delay` (backoff). A stale
    /// receipt is ignored.
    ///
    /// # Errors
    /// [`QueueError::Backend`] when the backend fails.
    async fn retry_after(
        &self,
        queue: QueueName,
        receipt: &Receipt,
        delay: Duration,
    ) -> Result<(), QueueError>;

    /// Receives up to `max` messages from the dead-letter companion of
    /// `queue`, hidden for `visibility`; ack them with [`WorkQueue::ack_dead`].
    ///
    /// # Errors
    /// [`QueueError::Backend`] when the backend fails.
    async fn receive_dead(
        &self,
        queue: QueueName,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<Delivery>, QueueError>;

    /// Deletes dead-lettered messages of these receipts.
    ///
    /// # Errors
    /// [`QueueError::Backend`] when the backend fails.
    async fn ack_dead(&self, queue: QueueName, receipts: &[Receipt]) -> Result<(), QueueError>;

    /// How many messages the queue holds (approximate on SQS).
    ///
    /// # Errors
    /// [`QueueError::Backend`] when the backend fails.
    async fn depth(&self, queue: QueueName) -> Result<QueueDepth, QueueError>;
}
