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

/// The callback's JSON body for a finished job: Standard Webhooks' `type`,
/// `timestamp` and `data`, and `data`'s fields again at the top level,
/// where receivers written for the systems docket replaces read them
/// (`body["job_id"]`, `body["status"]`).
pub fn event_body(job: &Job, now: DateTime<Utc>) -> String {
    let kind = match job.status {
        JobStatus::Completed => "batch.completed",
        JobStatus::Cancelled => "batch.cancelled",
        _ => "batch.failed",
    };
    let data = serde_json::json!({
        "job_id": job.id,
        "status": job.status,
        "document_count": job.counters.documents_total,
        "completed_documents": job.counters.documents_succeeded,
        "failed_documents": job.counters.documents_failed,
        "error": job.error,
        "status_url": format!("/api/v1/batch/status/{}", job.id),
        "results_url": format!("/api/v1/batch/results/{}", job.id),
    });
    let mut body = data.as_object().cloned().unwrap_or_default();
    body.insert("type".into(), kind.into());
    body.insert("timestamp".into(), serde_json::json!(now));
    body.insert("data".into(), data);
    serde_json::Value::Object(body).to_string()
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
    fn the_body_carries_the_fields_at_the_top_level_and_in_data() {
        let now = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        let mut job = Job {
            id: crate::model::JobId::parse("job_webhook_body").unwrap(),
            tenant: crate::model::TenantId::local(),
            status: JobStatus::Processing,
            evaluator: crate::model::EvaluatorRef {
                name: "e".into(),
                version: "1".into(),
                digest: "sha256:0".into(),
            },
            config: serde_json::json!({}),
            options: crate::model::JobOptions::default(),
            counters: crate::model::JobCounters::default(),
            created_at: now,
            started_at: None,
            finished_at: Some(now),
            error: None,
            webhook: None,
            failures: Vec::new(),
        };
        job.status = JobStatus::Completed;
        job.counters.documents_total = 3;
        job.counters.documents_succeeded = 2;
        job.counters.documents_failed = 1;
        let body: serde_json::Value =
            serde_json::from_str(&event_body(&job, now)).unwrap_or_default();
        assert_eq!(body["type"], "batch.completed");
        assert_eq!(body["timestamp"], "2023-11-14T22:13:20Z");
        for (field, value) in [
            ("job_id", serde_json::json!("job_webhook_body")),
            ("status", serde_json::json!("completed")),
            ("document_count", serde_json::json!(3)),
            ("completed_documents", serde_json::json!(2)),
            ("failed_documents", serde_json::json!(1)),
            (
                "results_url",
                serde_json::json!("/api/v1/batch/results/job_webhook_body"),
            ),
        ] {
            assert_eq!(body[field], value, "{field} at the top level");
            assert_eq!(body["data"][field], value, "{field} in data");
        }
    }

    #[test]
    fn secrets_are_random_and_usable() {
        let (a, b) = (generate_secret(), generate_secret());
        assert_ne!(a, b);
        assert!(a.starts_with(SECRET_PREFIX));
        assert!(sign(&a, "msg_1", 1, "{}").is_ok());
    }
}
