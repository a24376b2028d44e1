//! [`BlobStore`]: immutable blobs by key.

use async_trait::async_trait;

use super::BackendError;
use crate::failure::FailureCategory;

/// Errors of [`BlobStore`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlobError {
    /// No blob under this key, or the range is past its end.
    #[error("no blob {0}")]
    NotFound(String),
    /// A key that is empty, absolute or climbs out of the store (`..`).
    #[error("invalid blob key {0:?}")]
    InvalidKey(String),
    /// The backend failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

impl BlobError {
    /// The retry class of this error.
    pub fn category(&self) -> FailureCategory {
        match self {
            BlobError::NotFound(_) => FailureCategory::Data,
            BlobError::InvalidKey(_) => FailureCategory::Configuration,
            BlobError::Backend(e) => e.category,
        }
    }
}

/// Checks that `key` is a relative, `/`-separated path without `.`/`..`
/// segments — the keys every adapter accepts.
///
/// # Errors
/// [`BlobError::InvalidKey`] otherwise.
pub fn check_blob_key(key: &str) -> Result<(), BlobError> {
    let ok = !key.is_empty()
        && key.len() <= 1024
        && key
            .split('/')
            .all(|segment| !segment.is_empty() && segment != "." && segment != "..")
        && !key.contains('\\')
        && !key.contains('\0');
    if ok {
        Ok(())
    } else {
        Err(BlobError::InvalidKey(key.to_owned()))
    }
}

/// Where [`BlobStore::put_chunks`] reads an object's bytes from, a chunk at
/// a time.
#[async_trait]
pub trait ChunkSource: Send {
    /// The next chunk; `None` after the last.
    ///
    /// # Errors
    /// Whatever reading the source fails with; nothing is stored then.
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, BlobError>;
}

/// One page of a listing ([`BlobStore::list_page`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListedPage {
    /// Keys in key order, each with its size in bytes.
    pub objects: Vec<(String, u64)>,
    /// Whether keys remain after the last one.
    pub more: bool,
}

/// Immutable blobs by key (S3 semantics: whole-object puts, ranged gets).
#[async_trait]
pub trait BlobStore: Send + Sync {
    /// Stores `bytes` under `key`, replacing what was there.
    ///
    /// # Errors
    /// [`BlobError::InvalidKey`] for a bad key; [`BlobError::Backend`].
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), BlobError>;

    /// Reads the whole blob.
    ///
    /// # Errors
    /// [`BlobError::NotFound`]; [`BlobError::InvalidKey`]; [`BlobError::Backend`].
    async fn get(&self, key: &str) -> Result<Vec<u8>, BlobError>;

    /// Reads `len` bytes from `offset`.
    ///
    /// # Errors
    /// [`BlobError::NotFound`] when the blob is missing or shorter than the
    /// range; [`BlobError::InvalidKey`]; [`BlobError::Backend`].
    async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>, BlobError>;

    /// The blob's size in bytes.
    ///
    /// # Errors
    /// [`BlobError::NotFound`]; [`BlobError::InvalidKey`]; [`BlobError::Backend`].
    async fn size(&self, key: &str) -> Result<u64, BlobError>;

    /// At most `limit` keys under `prefix` after `after` (exclusive), in
    /// key order, with their sizes: a listing of any size read a page at a
    /// time (S3: one `ListObjectsV2` call).
    ///
    /// # Errors
    /// [`BlobError::Backend`].
    async fn list_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ListedPage, BlobError>;

    /// Keys under `prefix`, sorted.
    ///
    /// # Errors
    /// [`BlobError::Backend`].
    async fn list(&self, prefix: &str) -> Result<Vec<String>, BlobError>;

    /// Stores the bytes `source` gives under `key`; returns how many. The
    /// object appears whole or not at all. Stores that hold objects of any
    /// size write it as it comes, holding a bounded buffer (S3: a
    /// multipart upload); this default collects it first.
    ///
    /// # Errors
    /// As [`put`](Self::put), and the source's errors.
    async fn put_chunks(&self, key: &str, source: &mut dyn ChunkSource) -> Result<u64, BlobError> {
        let mut bytes = Vec::new();
        while let Some(chunk) = source.next_chunk().await? {
            bytes.extend_from_slice(&chunk);
        }
        let len = bytes.len() as u64;
        self.put(key, bytes).await?;
        Ok(len)
    }

    /// A URL that reads `key` without credentials for `ttl` (S3: a
    /// presigned GET), or `None` from a store that has none.
    ///
    /// # Errors
    /// [`BlobError::InvalidKey`]; [`BlobError::Backend`].
    async fn presigned_get(
        &self,
        key: &str,
        ttl: std::time::Duration,
    ) -> Result<Option<String>, BlobError> {
        let _ = (key, ttl);
        Ok(None)
    }

    /// A request that stores exactly `bytes` bytes under `key` without
    /// credentials for `ttl` (S3: a presigned PUT, its length signed), or
    /// `None` from a store that has none (the API then takes the file
    /// itself).
    ///
    /// # Errors
    /// [`BlobError::InvalidKey`]; [`BlobError::Backend`].
    async fn presigned_put(
        &self,
        key: &str,
        bytes: u64,
        ttl: std::time::Duration,
    ) -> Result<Option<PresignedPut>, BlobError> {
        let _ = (key, bytes, ttl);
        Ok(None)
    }
}

/// A presigned upload: `PUT` the file's bytes to `url` with `headers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignedPut {
    /// Where to send it.
    pub url: String,
    /// Headers the request must carry as they are (they are signed).
    pub headers: Vec<(String, String)>,
}
