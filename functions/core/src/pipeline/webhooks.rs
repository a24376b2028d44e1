//! Delivering job-finished callbacks: signed with the tenant's secret,
//! retried with backoff, given up after the configured attempts.

use std::time::Duration;

use super::{Disposition, Pipeline, PipelineError, WebhookMessage, jitter};
use crate::model::Job;
use crate::ports::{
    Delivery, OutgoingMessage, QueueName, StoreError, WebhookError, WebhookRequest,
};
use crate::webhook::{self, WebhookDelivery, WebhookState};

impl Pipeline {
    /// Queues the finished job's callback and marks it pending.
    pub(super) async fn enqueue_webhook(&self, job: &Job) -> Result<(), PipelineError> {
        let message = WebhookMessage {
            job_id: job.id.clone(),
        };
        self.queue
            .send(QueueName::Webhook, vec![OutgoingMessage::json(&message)])
            .await?;
        let pending = WebhookDelivery {
            state: WebhookState::Pending,
            attempts: 0,
            last_status: None,
            last_error: None,
            updated_at: self.clock.now(),
        };
        self.jobs.set_webhook(&job.id, &pending).await?;
        Ok(())
    }

    /// Delay before callback attempt `attempt + 1`: the backoff doubled per
    /// attempt, capped at 15 minutes, half of it jittered.
    fn webhook_delay(&self, message_id: &str, attempt: u32) -> Duration {
        let ceiling = self
            .settings
            .webhook_backoff
            .saturating_mul(1 << attempt.saturating_sub(1).min(16))
            .min(Duration::from_secs(15 * 60));
        ceiling.mul_f64(0.5 + 0.5 * jitter(message_id, attempt))
    }

    /// One attempt at a job's callback: signed with the tenant's secret,
    /// sent, and its outcome kept on the job.
    pub async fn deliver_webhook(&self, delivery: &Delivery) -> Result<Disposition, PipelineError> {
        let message: WebhookMessage = match serde_json::from_str(&delivery.body) {
            Ok(message) => message,
            Err(e) => {
                tracing::error!(error = %e, "malformed webhook message left for the dead-letter queue");
                return Ok(Disposition::Keep);
            }
        };
        let job = match self.jobs.job(&message.job_id).await {
            Ok(job) => job,
            Err(StoreError::NotFound(_)) => return Ok(Disposition::Done),
            Err(e) => return Err(e.into()),
        };
        let job_id = &job.id;
        let (Some(url), Some(_)) = (&job.options.webhook_url, job.finished_at) else {
            return Ok(Disposition::Done);
        };
        if let Some(done) = &job.webhook
            && done.state != WebhookState::Pending
        {
            // Delivered, or given up and waiting for the dead-letter queue.
            return Ok(if done.state == WebhookState::Delivered {
                Disposition::Done
            } else {
                Disposition::Keep
            });
        }
        let now = self.clock.now();
        let secret = self.webhook_secret(&job.tenant).await?;
        let body = webhook::event_body(&job, now);
        let id = webhook::message_id(&job);
        let headers = match webhook::signed_headers(&secret, &id, now.timestamp(), &body) {
            Ok(headers) => headers,
            Err(e) => {
                tracing::error!(%job_id, error = %e, "the tenant's webhook secret is unusable");
                return Ok(Disposition::Keep);
            }
        };
        let attempt = delivery.receive_count;
        let request = WebhookRequest {
            url: url.clone(),
            headers,
            body,
        };
        let (state, status, error, disposition) = match self.webhooks.send(request).await {
            Ok(status) => (
                WebhookState::Delivered,
                Some(status),
                None,
                Disposition::Done,
            ),
            Err(WebhookError::NotAllowed(reason)) => (
                WebhookState::Failed,
                None,
                Some(format!("webhook URL not allowed: {reason}")),
                Disposition::Done,
            ),
            Err(WebhookError::Failed { status, message }) => {
                if attempt >= self.settings.webhook_attempts {
                    (
                        WebhookState::Failed,
                        status,
                        Some(message),
                        Disposition::Keep,
                    )
                } else {
                    let delay = self.webhook_delay(&delivery.message_id, attempt);
                    (
                        WebhookState::Pending,
                        status,
                        Some(message),
                        Disposition::RetryAfter(delay),
                    )
                }
            }
        };
        match state {
            WebhookState::Delivered => tracing::info!(%job_id, attempt, "webhook delivered"),
            WebhookState::Pending => {
                tracing::warn!(%job_id, attempt, error = ?error, "webhook attempt failed; retried")
            }
            WebhookState::Failed => {
                tracing::warn!(%job_id, attempt, error = ?error, "webhook given up")
            }
        }
        let record = WebhookDelivery {
            state,
            attempts: attempt,
            last_status: status,
            last_error: error,
            updated_at: now,
        };
        self.jobs.set_webhook(job_id, &record).await?;
        Ok(disposition)
    }

    /// One round of a webhook sender: receives callbacks, delivers and
    /// settles them. Returns how many it handled.
    ///
    /// # Errors
    /// Queue errors.
    pub async fn deliver_webhooks_once(&self) -> Result<usize, PipelineError> {
        let queue = QueueName::Webhook;
        let deliveries = self
            .queue
            .receive(queue, self.settings.receive_batch, self.settings.visibility)
            .await?;
        let mut dispositions = Vec::with_capacity(deliveries.len());
        for delivery in &deliveries {
            dispositions.push(match self.deliver_webhook(delivery).await {
                Ok(disposition) => disposition,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook not attempted; retried");
                    self.left_to_retry(e.category(), &e);
                    Disposition::Keep
                }
            });
        }
        self.settle(queue, &deliveries, &dispositions).await?;
        Ok(deliveries.len())
    }

    /// Marks the callbacks of dead-lettered webhook messages failed (unless
    /// one attempt got through).
    pub(super) async fn drain_dead_webhooks(
        &self,
        deliveries: &[Delivery],
    ) -> Result<(), PipelineError> {
        for delivery in deliveries {
            if let Ok(message) = serde_json::from_str::<WebhookMessage>(&delivery.body)
                && let Ok(job) = self.jobs.job(&message.job_id).await
            {
                let mut record = job.webhook.unwrap_or(WebhookDelivery {
                    state: WebhookState::Failed,
                    attempts: delivery.receive_count,
                    last_status: None,
                    last_error: None,
                    updated_at: self.clock.now(),
                });
                if record.state == WebhookState::Pending {
                    record.state = WebhookState::Failed;
                    record.last_error = Some(format!(
                        "dead-lettered after {} deliveries: {}",
                        delivery.receive_count,
                        record
                            .last_error
                            .as_deref()
                            .unwrap_or("no attempt was recorded")
                    ));
                    record.updated_at = self.clock.now();
                    self.jobs.set_webhook(&job.id, &record).await?;
                }
            }
        }
        Ok(())
    }
}
