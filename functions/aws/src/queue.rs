//! `WorkQueue` on SQS: one queue per `QueueName`, each with a dead-letter
//! queue through a redrive policy (SQS moves a message received more than
//! [`MAX_RECEIVE_COUNT`] times). Sends go 10 to a call within SQS's size
//! limit; visibility has SQS's one-second granularity (rounded up).

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName,
    SendMessageBatchRequestEntry,
};
use docket_core::ports::{
    BackendError, Delivery, OutgoingMessage, QueueDepth, QueueError, QueueName, Receipt, WorkQueue,
    check_message_sizes,
};

use crate::error::{ProvisionError, backend, code};
use crate::{MAX_RECEIVE_COUNT, Names};

/// Messages per SQS batch call.
const BATCH: usize = 10;

/// SQS's limit on the total payload of one batch send.
const BATCH_BYTES: usize = 256 * 1024;

/// Longest delay SQS takes (15 minutes).
const MAX_DELAY_SECONDS: u64 = 900;

/// Longest visibility timeout SQS takes (12 hours).
const MAX_VISIBILITY_SECONDS: u64 = 12 * 3600;

/// A request the SDK refused to build: a bug, never retried.
fn unbuildable(error: impl std::fmt::Display) -> QueueError {
    QueueError::Backend(BackendError::new(
        docket_core::FailureCategory::Permanent,
        error.to_string(),
    ))
}

fn seconds_up(duration: Duration, max: u64) -> i32 {
    let whole = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    whole.min(max) as i32
}

/// The queues of one deployment.
pub struct SqsQueue {
    client: Client,
    urls: HashMap<QueueName, String>,
    dead_urls: HashMap<QueueName, String>,
}

/// The ARN of the queue named `name`.
pub(crate) async fn arn_of(client: &Client, name: &str) -> Result<String, ProvisionError> {
    let url = url_of(client, name).await?;
    let attributes = client
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(ProvisionError::from_sdk)?;
    attributes
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .ok_or_else(|| ProvisionError(format!("queue {name} has no ARN")))
}

async fn url_of(client: &Client, name: &str) -> Result<String, ProvisionError> {
    let found = client
        .get_queue_url()
        .queue_name(name)
        .send()
        .await
        .map_err(ProvisionError::from_sdk)?;
    found
        .queue_url
        .ok_or_else(|| ProvisionError(format!("queue {name} has no URL")))
}

/// Creates every queue and its dead-letter queue with a redrive policy
/// (as the deploy template declares them).
pub(crate) async fn provision(client: &Client, names: &Names) -> Result<(), ProvisionError> {
    for queue in QueueName::ALL {
        let dead = client
            .create_queue()
            .queue_name(names.dead_letter_queue(queue))
            .attributes(QueueAttributeName::MessageRetentionPeriod, "1209600")
            .send()
            .await
            .map_err(ProvisionError::from_sdk)?;
        drop(dead);
        let arn = arn_of(client, &names.dead_letter_queue(queue)).await?;
        let redrive = serde_json::json!({
            "deadLetterTargetArn": arn,
            "maxReceiveCount": MAX_RECEIVE_COUNT,
        });
        client
            .create_queue()
            .queue_name(names.queue(queue))
            .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
            .attributes(QueueAttributeName::VisibilityTimeout, "60")
            .send()
            .await
            .map_err(ProvisionError::from_sdk)?;
    }
    Ok(())
}

impl SqsQueue {
    /// The queues named by `names`, their URLs made from the names' URL
    /// prefix when it is known, else asked of SQS.
    ///
    /// # Errors
    /// When SQS is asked and a queue does not exist.
    pub async fn connect(client: Client, names: &Names) -> Result<Self, ProvisionError> {
        let mut urls = HashMap::new();
        let mut dead_urls = HashMap::new();
        for queue in QueueName::ALL {
            let (live, dead) = (names.queue(queue), names.dead_letter_queue(queue));
            match &names.queue_url_prefix {
                Some(prefix) => {
                    urls.insert(queue, format!("{prefix}{live}"));
                    dead_urls.insert(queue, format!("{prefix}{dead}"));
                }
                None => {
                    urls.insert(queue, url_of(&client, &live).await?);
                    dead_urls.insert(queue, url_of(&client, &dead).await?);
                }
            }
        }
        Ok(Self {
            client,
            urls,
            dead_urls,
        })
    }

    fn url(&self, queue: QueueName, dead: bool) -> &str {
        let urls = if dead { &self.dead_urls } else { &self.urls };
        urls.get(&queue).map(String::as_str).unwrap_or_default()
    }

    async fn receive_from(
        &self,
        queue: QueueName,
        dead: bool,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        let mut deliveries = Vec::new();
        while deliveries.len() < max {
            let want = (max - deliveries.len()).min(BATCH) as i32;
            let received = self
                .client
                .receive_message()
                .queue_url(self.url(queue, dead))
                .max_number_of_messages(want)
                .visibility_timeout(seconds_up(visibility, MAX_VISIBILITY_SECONDS))
                // Short polls: callers loop, and the Lambda event source
                // does its own long polling.
                .wait_time_seconds(0)
                .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
                .send()
                .await
                .map_err(|e| backend("receive", &e))?;
            let messages = received.messages.unwrap_or_default();
            let got = messages.len();
            for message in messages {
                let receive_count = message
                    .attributes
                    .as_ref()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1);
                deliveries.push(Delivery {
                    message_id: message.message_id.unwrap_or_default(),
                    receipt: Receipt(message.receipt_handle.unwrap_or_default()),
                    body: message.body.unwrap_or_default(),
                    receive_count,
                });
            }
            if got < want as usize {
                break;
            }
        }
        Ok(deliveries)
    }

    async fn delete(
        &self,
        queue: QueueName,
        dead: bool,
        receipts: &[Receipt],
    ) -> Result<(), QueueError> {
        for batch in receipts.chunks(BATCH) {
            let entries = batch
                .iter()
                .enumerate()
                .map(|(n, receipt)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(n.to_string())
                        .receipt_handle(&receipt.0)
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(unbuildable)?;
            // Stale receipts come back as failed entries: ignored, as the
            // port says.
            self.client
                .delete_message_batch()
                .queue_url(self.url(queue, dead))
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| backend("delete", &e))?;
        }
        Ok(())
    }

    async fn depth_of(&self, url: &str) -> Result<(u64, u64), QueueError> {
        let answer = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(|e| backend("queue attributes", &e))?;
        let attributes = answer.attributes.unwrap_or_default();
        let count = |name: QueueAttributeName| -> u64 {
            attributes
                .get(&name)
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        Ok((
            count(QueueAttributeName::ApproximateNumberOfMessages)
                + count(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
            count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        ))
    }
}

#[async_trait]
impl WorkQueue for SqsQueue {
    async fn send(
        &self,
        queue: QueueName,
        messages: Vec<OutgoingMessage>,
    ) -> Result<(), QueueError> {
        check_message_sizes(&messages)?;
        // Batches of at most 10 messages and 256 KiB.
        let mut batches: Vec<Vec<&OutgoingMessage>> = Vec::new();
        let mut bytes = 0;
        for message in &messages {
            let full = batches
                .last()
                .is_none_or(|b| b.len() == BATCH || bytes + message.body.len() > BATCH_BYTES);
            if full {
                batches.push(Vec::new());
                bytes = 0;
            }
            bytes += message.body.len();
            if let Some(batch) = batches.last_mut() {
                batch.push(message);
            }
        }
        for batch in batches {
            let entries = batch
                .iter()
                .enumerate()
                .map(|(n, message)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(n.to_string())
                        .message_body(&message.body)
                        .delay_seconds(seconds_up(message.delay, MAX_DELAY_SECONDS))
                        // Fair queues: SQS serves the groups of a standard
                        // queue in turn when one has a backlog.
                        .set_message_group_id(message.group.clone())
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(unbuildable)?;
            let sent = self
                .client
                .send_message_batch()
                .queue_url(self.url(queue, false))
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| backend("send", &e))?;
            if let Some(failed) = sent.failed.first() {
                let category = if failed.sender_fault {
                    docket_core::FailureCategory::Permanent
                } else {
                    docket_core::FailureCategory::Transient
                };
                return Err(QueueError::Backend(BackendError::new(
                    category,
                    format!(
                        "send: {} of {} messages refused: {}: {}",
                        sent.failed.len(),
                        batch.len(),
                        failed.code,
                        failed.message.as_deref().unwrap_or_default()
                    ),
                )));
            }
        }
        Ok(())
    }

    async fn receive(
        &self,
        queue: QueueName,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        self.receive_from(queue, false, max, visibility).await
    }

    async fn ack(&self, queue: QueueName, receipts: &[Receipt]) -> Result<(), QueueError> {
        self.delete(queue, false, receipts).await
    }

    async fn retry_after(
        &self,
        queue: QueueName,
        receipt: &Receipt,
        delay: Duration,
    ) -> Result<(), QueueError> {
        let changed = self
            .client
            .change_message_visibility()
            .queue_url(self.url(queue, false))
            .receipt_handle(&receipt.0)
            .visibility_timeout(seconds_up(delay, MAX_VISIBILITY_SECONDS))
            .send()
            .await;
        match changed {
            Ok(_) => Ok(()),
            // A stale receipt is ignored, as the port says.
            Err(e)
                if matches!(
                    code(&e),
                    Some("ReceiptHandleIsInvalid" | "InvalidParameterValue" | "MessageNotInflight")
                        | Some("AWS.SimpleQueueService.MessageNotInflight")
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(backend("change visibility", &e).into()),
        }
    }

    async fn receive_dead(
        &self,
        queue: QueueName,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        self.receive_from(queue, true, max, visibility).await
    }

    async fn ack_dead(&self, queue: QueueName, receipts: &[Receipt]) -> Result<(), QueueError> {
        self.delete(queue, true, receipts).await
    }

    async fn depth(&self, queue: QueueName) -> Result<QueueDepth, QueueError> {
        let (visible, in_flight) = self.depth_of(self.url(queue, false)).await?;
        let (dead_visible, dead_hidden) = self.depth_of(self.url(queue, true)).await?;
        Ok(QueueDepth {
            visible,
            in_flight,
            dead: dead_visible + dead_hidden,
        })
    }
}
