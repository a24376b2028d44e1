//! [`BlobStore`] on the filesystem.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use docket_core::FailureCategory;
use docket_core::ports::{BackendError, BlobError, BlobStore, ListedPage, check_blob_key};

/// Blobs as files under a root directory; keys are relative paths. Writes go
/// through a temporary file and a rename, so readers never see half a blob.
pub struct FsBlobStore {
    root: PathBuf,
}

impl FsBlobStore {
    /// A store under `root` (created on first write).
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    fn path(&self, key: &str) -> Result<PathBuf, BlobError> {
        check_blob_key(key)?;
        Ok(self.root.join(key))
    }
}

fn io_error(key: &str, error: std::io::Error) -> BlobError {
    use std::io::ErrorKind::*;
    match error.kind() {
        NotFound | UnexpectedEof => BlobError::NotFound(key.to_owned()),
        // A file-size limit (EFBIG) or a quota ends a write as a full disk does.
        StorageFull | FileTooLarge | QuotaExceeded | OutOfMemory => BlobError::Backend(
            BackendError::new(FailureCategory::Resource, format!("{key}: {error}")),
        ),
        Interrupted | TimedOut | WouldBlock => BlobError::Backend(BackendError::new(
            FailureCategory::Transient,
            format!("{key}: {error}"),
        )),
        _ => BlobError::Backend(BackendError::new(
            FailureCategory::Permanent,
            format!("{key}: {error}"),
        )),
    }
}

fn collect(root: &Path, dir: &Path, prefix: &str, keys: &mut Vec<String>) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            collect(root, &path, prefix, keys)?;
        } else if let Ok(relative) = path.strip_prefix(root) {
            let key = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            if key.starts_with(prefix) && !key.contains(".tmp-") {
                keys.push(key);
            }
        }
    }
    Ok(())
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), BlobError> {
        let path = self.path(key)?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io_error(key, e))?;
        }
        let temp = path.with_file_name(format!(
            ".tmp-{}-{:x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::write(&temp, bytes)
            .and_then(|()| std::fs::rename(&temp, &path))
            .map_err(|e| {
                let _ = std::fs::remove_file(&temp);
                io_error(key, e)
            })
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>, BlobError> {
        std::fs::read(self.path(key)?).map_err(|e| io_error(key, e))
    }

    async fn size(&self, key: &str) -> Result<u64, BlobError> {
        std::fs::metadata(self.path(key)?)
            .map(|m| m.len())
            .map_err(|e| io_error(key, e))
    }

    async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>, BlobError> {
        let mut file = std::fs::File::open(self.path(key)?).map_err(|e| io_error(key, e))?;
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| io_error(key, e))?;
        let mut bytes = vec![0; usize::try_from(len).unwrap_or(usize::MAX)];
        file.read_exact(&mut bytes).map_err(|e| io_error(key, e))?;
        Ok(bytes)
    }

    async fn list_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ListedPage, BlobError> {
        let keys = self.list(prefix).await?;
        let mut rest = keys
            .into_iter()
            .filter(|key| after.is_none_or(|after| key.as_str() > after));
        let mut objects = Vec::new();
        for key in rest.by_ref().take(limit) {
            let size = self.size(&key).await?;
            objects.push((key, size));
        }
        Ok(ListedPage {
            objects,
            more: rest.next().is_some(),
        })
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, BlobError> {
        // Walk only below the deepest directory the prefix names.
        let dir = match prefix.rfind('/') {
            Some(at) => self.root.join(&prefix[..at]),
            None => self.root.clone(),
        };
        let mut keys = Vec::new();
        collect(&self.root, &dir, prefix, &mut keys).map_err(|e| io_error(prefix, e))?;
        keys.sort();
        Ok(keys)
    }
}
