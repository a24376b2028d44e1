//! Files put before the batch that references them, for files and batches
//! past what one request body carries (API Gateway takes 10 MB).
//!
//! 1. `POST /api/v1/batch/files` with `{"files": [{"name", "bytes"}]}`
//!    answers one upload slot per file: the `key` a batch names it by, and
//!    the request that stores it (`method`, `url`, `headers`).
//! 2. The client sends each file as its slot says: on AWS a presigned S3
//!    `PUT` (its length signed), on `docket serve` a `PUT` to
//!    `/api/v1/files/{ticket}` on this API, whose ticket is the proof (no
//!    API key), signed by this process and good for
//!    [`UPLOAD_SLOT_TTL`].
//! 3. `POST /api/v1/batch/upload` names the files by `key`.

use std::sync::OnceLock;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use docket_core::FailureCategory;
use docket_core::ports::{BackendError, BlobError, ChunkSource};
use docket_core::upload::uploaded_file_key;
use futures_util::StreamExt;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::error::{ApiError, FieldError};
use crate::extract::ApiJson;
use crate::{AppState, Caller};

/// How long an upload slot's request stores its file.
pub const UPLOAD_SLOT_TTL: Duration = Duration::from_secs(15 * 60);

/// Most files one call asks slots for.
pub const MAX_SLOTS: usize = 1000;

/// `POST /api/v1/batch/files`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SlotRequest {
    files: Vec<FileToPut>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToPut {
    name: String,
    bytes: u64,
}

/// What a local upload URL proves: that this process let `key` take
/// `bytes` bytes until `expires` (Unix seconds).
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Ticket {
    key: String,
    bytes: u64,
    expires: i64,
}

/// The key local tickets are signed with: random, drawn once per process
/// (a restarted server refuses the URLs the last one gave, as an expired
/// presigned URL is refused).
fn ticket_key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    KEY.get_or_init(rand::random)
}

fn signature(payload: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(ticket_key()).expect("HMAC takes any key");
    mac.update(payload.as_bytes());
    mac
}

fn sign(ticket: &Ticket) -> String {
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(ticket).unwrap_or_default());
    let tag = URL_SAFE_NO_PAD.encode(signature(&payload).finalize().into_bytes());
    format!("{payload}.{tag}")
}

/// The ticket `token` carries, if this process signed it and it has not
/// expired.
fn verify(token: &str, now: DateTime<Utc>) -> Result<Ticket, ApiError> {
    let forged = || ApiError::Forbidden("this upload URL is not valid".into());
    let (payload, tag) = token.split_once('.').ok_or_else(forged)?;
    let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| forged())?;
    signature(payload)
        .verify_slice(&tag)
        .map_err(|_| forged())?;
    let ticket: Ticket = URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|json| serde_json::from_slice(&json).ok())
        .ok_or_else(forged)?;
    if ticket.expires < now.timestamp() {
        return Err(ApiError::Forbidden("this upload URL has expired".into()));
    }
    Ok(ticket)
}

/// The API's own base URL as the client reached it.
fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("http");
    format!("{scheme}://{host}")
}

/// `POST /api/v1/batch/files`: one upload slot per file.
pub(crate) async fn slots(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(request): ApiJson<SlotRequest>,
) -> Result<Json<Value>, ApiError> {
    let limit = state.pipeline.settings().max_file_bytes;
    let mut errors = Vec::new();
    if request.files.is_empty() {
        errors.push(FieldError::new("files", "at least one file is required"));
    }
    if request.files.len() > MAX_SLOTS {
        errors.push(FieldError::new(
            "files",
            format!(
                "at most {MAX_SLOTS} files a call; this asks for {}",
                request.files.len()
            ),
        ));
    }
    for (n, file) in request.files.iter().enumerate() {
        if file.name.trim().is_empty() {
            errors.push(FieldError::new(
                format!("files[{n}].name"),
                "must not be empty",
            ));
        }
        if file.bytes == 0 || file.bytes > limit {
            errors.push(FieldError::new(
                format!("files[{n}].bytes"),
                format!("must be from 1 to {limit} (the limit per file)"),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    let upload = uuid::Uuid::now_v7().simple().to_string();
    let now = state.pipeline.now();
    let expires_at = now + chrono::Duration::from_std(UPLOAD_SLOT_TTL).unwrap_or_default();
    let base = base_url(&headers);
    let mut slots = Vec::with_capacity(request.files.len());
    for (n, file) in request.files.iter().enumerate() {
        let key = uploaded_file_key(&caller.tenant, &upload, n, &file.name);
        let (url, headers) = match state
            .pipeline
            .presigned_put(&key, file.bytes, UPLOAD_SLOT_TTL)
            .await?
        {
            Some(put) => (put.url, put.headers),
            None => {
                let ticket = Ticket {
                    key: key.clone(),
                    bytes: file.bytes,
                    expires: expires_at.timestamp(),
                };
                (format!("{base}/api/v1/files/{}", sign(&ticket)), Vec::new())
            }
        };
        let headers: serde_json::Map<String, Value> = headers
            .into_iter()
            .map(|(name, value)| (name, Value::String(value)))
            .collect();
        slots.push(json!({
            "name": file.name,
            "bytes": file.bytes,
            "key": key,
            "method": "PUT",
            "url": url,
            "headers": headers,
        }));
    }
    Ok(Json(json!({
        "upload_id": upload,
        "expires_at": expires_at,
        "files": slots,
    })))
}

/// A request body read into the blob store, stopping past `limit`.
struct BodySource {
    stream: axum::body::BodyDataStream,
    read: u64,
    limit: u64,
    refused: Option<ApiError>,
}

#[async_trait::async_trait]
impl ChunkSource for BodySource {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, BlobError> {
        let stop =
            |message: String| BlobError::Backend(BackendError::new(FailureCategory::Data, message));
        match self.stream.next().await {
            Some(Ok(chunk)) => {
                self.read += chunk.len() as u64;
                if self.read > self.limit {
                    let message = format!(
                        "the file is longer than the {} bytes its upload URL was made for",
                        self.limit
                    );
                    self.refused = Some(ApiError::TooLarge(message.clone()));
                    return Err(stop(message));
                }
                Ok(Some(chunk.to_vec()))
            }
            Some(Err(error)) => {
                let message = format!("the upload was cut off: {error}");
                self.refused = Some(ApiError::Malformed(message.clone()));
                Err(stop(message))
            }
            None if self.read < self.limit => {
                let message = format!(
                    "the file ended after {} bytes; its upload URL was made for {}",
                    self.read, self.limit
                );
                self.refused = Some(ApiError::Malformed(message.clone()));
                Err(stop(message))
            }
            None => Ok(None),
        }
    }
}

/// `PUT /api/v1/files/{ticket}`: stores the file a local upload slot was
/// made for (its length must be the one asked for, as S3's signed length).
pub(crate) async fn put(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let ticket = verify(&token, state.pipeline.now())?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(declared) = declared
        && declared != ticket.bytes
    {
        return Err(ApiError::Malformed(format!(
            "the file has {declared} bytes; its upload URL was made for {}",
            ticket.bytes
        )));
    }
    let mut source = BodySource {
        stream: body.into_data_stream(),
        read: 0,
        limit: ticket.bytes,
        refused: None,
    };
    let stored = match state.pipeline.store_file(&ticket.key, &mut source).await {
        Ok(stored) => stored,
        Err(error) => {
            return Err(source
                .refused
                .take()
                .unwrap_or_else(|| crate::multipart::stored_not(&error)));
        }
    };
    Ok(Json(json!({"key": ticket.key, "bytes": stored})))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket() -> Ticket {
        Ticket {
            key: "uploads/acme/u/00000-a.pdf".into(),
            bytes: 10,
            expires: 2_000_000_000,
        }
    }

    #[test]
    fn a_signed_ticket_reads_back_until_it_expires() {
        let token = sign(&ticket());
        let now = DateTime::from_timestamp(1_900_000_000, 0).unwrap();
        assert_eq!(verify(&token, now).unwrap(), ticket());
        let later = DateTime::from_timestamp(2_000_000_001, 0).unwrap();
        assert!(
            matches!(verify(&token, later), Err(ApiError::Forbidden(m)) if m.contains("expired"))
        );
    }

    /// A ticket changed in any way (another key, more bytes, a later
    /// expiry) or signed by another key is refused.
    #[test]
    fn a_changed_or_foreign_ticket_is_refused() {
        let now = DateTime::from_timestamp(1_900_000_000, 0).unwrap();
        let token = sign(&ticket());
        let (_, tag) = token.split_once('.').unwrap();
        let mut bigger = ticket();
        bigger.bytes = 10_000_000;
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&bigger).unwrap());
        for forged in [
            format!("{payload}.{tag}"),
            format!("{payload}.{}", URL_SAFE_NO_PAD.encode([0u8; 32])),
            "no-dot".to_owned(),
            String::new(),
        ] {
            assert!(
                matches!(verify(&forged, now), Err(ApiError::Forbidden(m)) if m.contains("not valid")),
                "{forged}"
            );
        }
    }
}
