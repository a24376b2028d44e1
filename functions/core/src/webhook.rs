//! Job-finished callbacks per the Standard Webhooks specification: the
//! event body, its `webhook-id` / `webhook-timestamp` / `webhook-signature`
//! headers (`v1,` + base64 HMAC-SHA256 of `id.timestamp.body` under the
//! tenant's `whsec_` secret), and the delivery state kept on the job.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::model::{Job, JobStatus};

/// Prefix of a signing secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// A new signing secret: `whsec_` and the base64 of 32 bytes drawn from the
/// system's random source (244 of them random: two v4 UUIDs).
pub fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    bytes[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    bytes[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes))
}

/// A secret that is not `whsec_` + base64.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a webhook secret is `whsec_` followed by base64")]
pub struct InvalidSecret;

/// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.
///
/// # Errors
/// [`InvalidSecret`] when `secret` is not `whsec_` + base64.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &str) -> Result<String, InvalidSecret> {
    let key = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    let key = STANDARD.decode(key).map_err(|_| InvalidSecret)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| InvalidSecret)?;
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body.as_bytes());
    Ok(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// The headers of one signed delivery.
///
/// # Errors
/// [`InvalidSecret`].
pub fn signed_headers(
    secret: &str,
    id: &str,
    timestamp: i64,
    body: &str,
) -> Result<Vec<(String, String)>, InvalidSecret> {
    Ok(vec![
        ("content-type".into(), "application/json".into()),
        ("webhook-id".into(), id.into()),
        ("webhook-timestamp".into(), timestamp.to_string()),
        (
            "webhook-signature".into(),
            sign(secret, id, timestamp, body)?,
        ),
    ])
}

/// The `webhook-id` of a job's callback: the same on every attempt, so a
/// receiver can drop duplicates.
pub fn message_id(job: &Job) -> String {
    format!("msg_{}", job.id)
}

/// The callback's JSON body for a finished job.
pub fn event_body(job: &Job, now: DateTime<Utc>) -> String {
    let kind = match job.status {
        JobStatus::Completed => "batch.completed",
        JobStatus::Cancelled => "batch.cancelled",
        _ => "batch.failed",
    };
    serde_json::json!({
        "type": kind,
        "timestamp": now,
        "data": {
            "job_id": job.id,
            "status": job.status,
            "document_count": job.counters.documents_total,
            "completed_documents": job.counters.documents_succeeded,
            "failed_documents": job.counters.documents_failed,
            "error": job.error,
            "status_url": format!("/api/v1/batch/status/{}", job.id),
            "results_url": format!("/api/v1/batch/results/{}", job.id),
        },
    })
    .to_string()
}

/// Where a job's callback stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookState {
    /// Queued or being retried.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Every attempt failed, or the URL is not allowed.
    Failed,
}

/// The delivery state kept on the job and shown by the status route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookDelivery {
    /// Where it stands.
    pub state: WebhookState,
    /// Attempts made.
    pub attempts: u32,
    /// HTTP status of the last answer, if one came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<u16>,
    /// Why the last attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When this state was recorded.
    pub updated_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_specifications_example() {
        // The example of the Standard Webhooks specification.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            sign(secret, id, 1_614_265_330, body).unwrap_or_default(),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert_eq!(sign("whsec_not base64!", id, 1, body), Err(InvalidSecret));
    }

    #[test]
    fn secrets_are_random_and_usable() {
        let (a, b) = (generate_secret(), generate_secret());
        assert_ne!(a, b);
        assert!(a.starts_with(SECRET_PREFIX));
        assert!(sign(&a, "msg_1", 1, "{}").is_ok());
    }
}
