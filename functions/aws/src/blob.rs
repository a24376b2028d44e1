//! `BlobStore` on S3: one bucket, keys as given (`documents/<job>/…`,
//! `results/<job>/…`, `plugins/<name>/<version>/…`), ranged reads with
//! `Range: bytes=`, multipart uploads of objects written as they come,
//! presigned GETs.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use docket_core::FailureCategory;
use docket_core::ports::{
    BackendError, BlobError, BlobStore, ChunkSource, ListedPage, PresignedPut, check_blob_key,
};

/// How long a presigned request of `key` is good for.
fn presigning(key: &str, ttl: Duration) -> Result<PresigningConfig, BlobError> {
    PresigningConfig::expires_in(ttl).map_err(|e| {
        BlobError::Backend(BackendError::new(
            FailureCategory::Permanent,
            format!("presigning {key}: {e}"),
        ))
    })
}

/// Size of a part of a multipart upload (S3's least is 5 MiB).
pub const MULTIPART_PART_BYTES: usize = 8 * 1024 * 1024;

use crate::error::{backend, code};

/// The deployment's bucket.
pub struct S3Blobs {
    client: Client,
    bucket: String,
}

impl S3Blobs {
    /// Blobs in `bucket`.
    pub fn new(client: Client, bucket: String) -> Self {
        Self { client, bucket }
    }

    /// The parts of multipart upload `id` — `buffer`, then what `source`
    /// gives, a part per [`MULTIPART_PART_BYTES`] — and its completion;
    /// returns the bytes uploaded.
    async fn upload_parts(
        &self,
        key: &str,
        id: &str,
        mut buffer: Vec<u8>,
        source: &mut dyn ChunkSource,
    ) -> Result<u64, BlobError> {
        let mut total = buffer.len() as u64;
        let mut parts = Vec::new();
        loop {
            let chunk = source.next_chunk().await?;
            let end = chunk.is_none();
            if let Some(chunk) = chunk {
                total += chunk.len() as u64;
                buffer.extend_from_slice(&chunk);
            }
            if buffer.len() >= MULTIPART_PART_BYTES || (end && !buffer.is_empty()) {
                let number = parts.len() as i32 + 1;
                let part = self
                    .client
                    .upload_part()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(id)
                    .part_number(number)
                    .body(ByteStream::from(std::mem::take(&mut buffer)))
                    .send()
                    .await
                    .map_err(|e| backend("upload part", &e))?;
                parts.push(
                    CompletedPart::builder()
                        .part_number(number)
                        .set_e_tag(part.e_tag)
                        .build(),
                );
            }
            if end {
                break;
            }
        }
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| backend("complete multipart upload", &e))?;
        Ok(total)
    }

    /// Gives up a multipart upload (its parts are deleted); a failure to is
    /// only logged (the bucket's lifecycle rule removes what is left).
    async fn abort(&self, key: &str, id: &str) {
        if let Err(e) = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(id)
            .send()
            .await
        {
            tracing::warn!(key, error = %backend("abort multipart upload", &e), "multipart upload left");
        }
    }

    async fn read(&self, key: &str, range: Option<String>) -> Result<Vec<u8>, BlobError> {
        check_blob_key(key)?;
        let got = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_range(range)
            .send()
            .await;
        let object = match got {
            Ok(object) => object,
            Err(e) if matches!(code(&e), Some("NoSuchKey" | "InvalidRange" | "NotFound")) => {
                return Err(BlobError::NotFound(key.to_owned()));
            }
            Err(e) => return Err(backend("get object", &e).into()),
        };
        let bytes = object.body.collect().await.map_err(|e| {
            BlobError::Backend(docket_core::ports::BackendError::new(
                docket_core::FailureCategory::Transient,
                format!("reading {key}: {e}"),
            ))
        })?;
        Ok(bytes.into_bytes().to_vec())
    }
}

#[async_trait]
impl BlobStore for S3Blobs {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), BlobError> {
        check_blob_key(key)?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| backend("put object", &e))?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>, BlobError> {
        self.read(key, None).await
    }

    async fn size(&self, key: &str) -> Result<u64, BlobError> {
        check_blob_key(key)?;
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| match code(&e) {
                Some("NotFound" | "NoSuchKey") => BlobError::NotFound(key.to_owned()),
                _ => backend("head object", &e).into(),
            })?;
        Ok(head.content_length().unwrap_or(0).max(0) as u64)
    }

    async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>, BlobError> {
        if len == 0 {
            // S3 has no empty range; the blob must still exist.
            self.size(key).await?;
            return Ok(Vec::new());
        }
        let bytes = self
            .read(key, Some(format!("bytes={offset}-{}", offset + len - 1)))
            .await?;
        // A range past the end comes back short: the port calls that missing.
        if bytes.len() as u64 != len {
            return Err(BlobError::NotFound(key.to_owned()));
        }
        Ok(bytes)
    }

    /// A multipart upload of parts of [`MULTIPART_PART_BYTES`] (S3 takes
    /// parts of 5 MiB and more, the last one smaller), one part held at a
    /// time; completed once the source ends, aborted when anything fails. A
    /// source smaller than one part is a plain put.
    async fn put_chunks(&self, key: &str, source: &mut dyn ChunkSource) -> Result<u64, BlobError> {
        check_blob_key(key)?;
        let mut first = Vec::new();
        while first.len() < MULTIPART_PART_BYTES {
            match source.next_chunk().await? {
                Some(chunk) => first.extend_from_slice(&chunk),
                None => {
                    let len = first.len() as u64;
                    self.put(key, first).await?;
                    return Ok(len);
                }
            }
        }
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| backend("create multipart upload", &e))?;
        let id = created.upload_id.unwrap_or_default();
        let uploaded = self.upload_parts(key, &id, first, source).await;
        if uploaded.is_err() {
            self.abort(key, &id).await;
        }
        uploaded
    }

    async fn presigned_get(&self, key: &str, ttl: Duration) -> Result<Option<String>, BlobError> {
        check_blob_key(key)?;
        let config = presigning(key, ttl)?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(config)
            .await
            .map_err(|e| backend("presign get object", &e))?;
        Ok(Some(request.uri().to_owned()))
    }

    async fn presigned_put(
        &self,
        key: &str,
        bytes: u64,
        ttl: Duration,
    ) -> Result<Option<PresignedPut>, BlobError> {
        check_blob_key(key)?;
        let config = presigning(key, ttl)?;
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_length(i64::try_from(bytes).unwrap_or(i64::MAX))
            .presigned(config)
            .await
            .map_err(|e| backend("presign put object", &e))?;
        Ok(Some(PresignedPut {
            url: request.uri().to_owned(),
            headers: request
                .headers()
                .map(|(name, value)| (name.to_owned(), value.to_owned()))
                .collect(),
        }))
    }

    async fn list_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ListedPage, BlobError> {
        let page = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .set_start_after(after.map(str::to_owned))
            .max_keys(i32::try_from(limit.clamp(1, 1000)).unwrap_or(1000))
            .send()
            .await
            .map_err(|e| backend("list objects", &e))?;
        let objects = page
            .contents
            .unwrap_or_default()
            .into_iter()
            .filter_map(|o| Some((o.key?, o.size.unwrap_or(0).max(0) as u64)))
            .collect();
        Ok(ListedPage {
            objects,
            more: page.is_truncated.unwrap_or(false),
        })
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, BlobError> {
        let mut keys = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| backend("list objects", &e))?;
            keys.extend(
                page.contents
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|o| o.key),
            );
        }
        keys.sort();
        Ok(keys)
    }
}
