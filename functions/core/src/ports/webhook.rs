//! [`WebhookSender`]: job-finished callbacks over HTTP.

use async_trait::async_trait;

/// One callback to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRequest {
    /// Where (http or https).
    pub url: String,
    /// Headers, signature included.
    pub headers: Vec<(String, String)>,
    /// The JSON body.
    pub body: String,
}

/// Why a callback was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// The URL is malformed or points where docket must not send (loopback,
    /// private, link-local or metadata addresses unless allowed): never
    /// retried.
    #[error("webhook URL not allowed: {0}")]
    NotAllowed(String),
    /// The receiver answered non-2xx, or could not be reached: retried.
    #[error("{message}")]
    Failed {
        /// The receiver's HTTP status, when it answered.
        status: Option<u16>,
        /// What happened.
        message: String,
    },
}

/// Sends callbacks over HTTP, refusing addresses docket must not reach.
#[async_trait]
pub trait WebhookSender: Send + Sync {
    /// Whether `url` may receive callbacks (resolving its host).
    ///
    /// # Errors
    /// [`WebhookError::NotAllowed`] saying why not.
    async fn check(&self, url: &str) -> Result<(), WebhookError>;

    /// POSTs the request; returns the receiver's 2xx status.
    ///
    /// # Errors
    /// [`WebhookError::NotAllowed`]; [`WebhookError::Failed`] for a non-2xx
    /// answer, a timeout or a connection failure.
    async fn send(&self, request: WebhookRequest) -> Result<u16, WebhookError>;
}

/// A sender for deployments without callbacks: every URL is refused.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoWebhooks;

#[async_trait]
impl WebhookSender for NoWebhooks {
    async fn check(&self, _url: &str) -> Result<(), WebhookError> {
        Err(WebhookError::NotAllowed(
            "this deployment sends no webhooks".into(),
        ))
    }

    async fn send(&self, request: WebhookRequest) -> Result<u16, WebhookError> {
        self.check(&request.url).await.map(|()| 0)
    }
}
