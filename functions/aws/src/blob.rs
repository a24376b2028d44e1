//! `BlobStore` on S3: one bucket, keys as given (`documents/<job>/…`,
//! `results/<job>/…`, `plugins/<name>/<version>/…`), ranged reads with
//! `Range: bytes=`.

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use docket_core::ports::{BlobError, BlobStore, check_blob_key};

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

    async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>, BlobError> {
        if len == 0 {
            check_blob_key(key)?;
            // S3 has no empty range; the blob must still exist.
            self.client
                .head_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await
                .map_err(|e| match code(&e) {
                    Some("NotFound" | "NoSuchKey") => BlobError::NotFound(key.to_owned()),
                    _ => backend("head object", &e).into(),
                })?;
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
