//! [`BlobStore`](docket_core::ports::BlobStore) checks: reads, ranges,
//! keys, listing, objects written a chunk at a time.

use async_trait::async_trait;
use docket_core::FailureCategory;
use docket_core::ports::{BackendError, BlobError, ChunkSource};

use crate::Subject;

/// Blobs read back as written; a put replaces.
pub async fn blob_put_get_overwrite(subject: &Subject) {
    subject
        .blobs
        .put("documents/j/pack-0", b"hello".to_vec())
        .await
        .expect("put");
    assert_eq!(
        subject.blobs.get("documents/j/pack-0").await.expect("get"),
        b"hello"
    );
    subject
        .blobs
        .put("documents/j/pack-0", b"bye".to_vec())
        .await
        .expect("put");
    assert_eq!(
        subject.blobs.get("documents/j/pack-0").await.expect("get"),
        b"bye"
    );
}

/// Ranged reads return exactly the range.
pub async fn blob_ranges(subject: &Subject) {
    subject
        .blobs
        .put("r/b", b"0123456789".to_vec())
        .await
        .expect("put");
    assert_eq!(
        subject.blobs.get_range("r/b", 3, 4).await.expect("range"),
        b"3456"
    );
    assert_eq!(
        subject.blobs.get_range("r/b", 0, 10).await.expect("range"),
        b"0123456789"
    );
    let error = subject.blobs.get_range("r/b", 8, 5).await.unwrap_err();
    assert!(matches!(error, BlobError::NotFound(_)), "{error}");
}

/// Missing blobs are `NotFound`; keys that climb out are refused.
pub async fn blob_missing_and_invalid_keys(subject: &Subject) {
    let error = subject.blobs.get("nope/never").await.unwrap_err();
    assert!(matches!(error, BlobError::NotFound(_)), "{error}");
    for key in ["../escape", "/abs", "a//b", ""] {
        let error = subject.blobs.put(key, vec![1]).await.unwrap_err();
        assert!(matches!(error, BlobError::InvalidKey(_)), "{key}: {error}");
    }
}

/// Listing returns the keys under a prefix, sorted.
pub async fn blob_list_by_prefix(subject: &Subject) {
    for key in [
        "results/j1/results.json",
        "results/j1/documents.jsonl",
        "results/j2/results.json",
        "other/x",
    ] {
        subject.blobs.put(key, vec![0]).await.expect("put");
    }
    assert_eq!(
        subject.blobs.list("results/j1/").await.expect("list"),
        ["results/j1/documents.jsonl", "results/j1/results.json"]
    );
    assert_eq!(subject.blobs.list("results/").await.expect("list").len(), 3);
    assert!(
        subject
            .blobs
            .list("missing/")
            .await
            .expect("list")
            .is_empty()
    );
}

/// A listing read a page at a time: keys in order after the last one
/// read, each with its size, and whether more remain; the size of one blob.
pub async fn blob_lists_a_page_at_a_time_with_sizes(subject: &Subject) {
    for n in 0..5u8 {
        let key = format!("files/t/drop/{n}.txt");
        subject
            .blobs
            .put(&key, vec![b'x'; usize::from(n)])
            .await
            .expect("put");
    }
    subject
        .blobs
        .put("files/t/dropped.txt", vec![0])
        .await
        .expect("put");
    let first = subject
        .blobs
        .list_page("files/t/drop/", None, 2)
        .await
        .expect("first page");
    assert_eq!(
        first.objects,
        [
            ("files/t/drop/0.txt".to_owned(), 0),
            ("files/t/drop/1.txt".to_owned(), 1)
        ]
    );
    assert!(first.more);
    let rest = subject
        .blobs
        .list_page("files/t/drop/", Some("files/t/drop/1.txt"), 10)
        .await
        .expect("rest");
    let keys: Vec<&str> = rest.objects.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "files/t/drop/2.txt",
            "files/t/drop/3.txt",
            "files/t/drop/4.txt"
        ]
    );
    assert_eq!(rest.objects[2].1, 4);
    assert!(!rest.more);
    let exact = subject
        .blobs
        .list_page("files/t/drop/", Some("files/t/drop/2.txt"), 2)
        .await
        .expect("exact");
    assert_eq!(exact.objects.len(), 2);
    assert!(!exact.more, "nothing after the last key");
    assert_eq!(
        subject
            .blobs
            .size("files/t/drop/3.txt")
            .await
            .expect("size"),
        3
    );
    assert_eq!(
        subject.blobs.size("files/t/none").await,
        Err(docket_core::ports::BlobError::NotFound(
            "files/t/none".into()
        ))
    );
}

/// Chunks given in order, then the end — or, with `fail`, an error.
struct Chunks {
    chunks: std::vec::IntoIter<Vec<u8>>,
    fail: bool,
}

#[async_trait]
impl ChunkSource for Chunks {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, BlobError> {
        match self.chunks.next() {
            Some(chunk) => Ok(Some(chunk)),
            None if self.fail => Err(BlobError::Backend(BackendError::new(
                FailureCategory::Transient,
                "the source failed on purpose",
            ))),
            None => Ok(None),
        }
    }
}

/// An object written a chunk at a time reads back whole (21 MiB in 3 MiB
/// chunks: several parts of an S3 multipart upload), an empty one is
/// empty, and one whose source fails past the first part is not stored.
pub async fn blob_put_chunks_stores_the_source_whole_or_not_at_all(subject: &Subject) {
    let chunks: Vec<Vec<u8>> = (0..7u8).map(|n| vec![b'a' + n; 3 << 20]).collect();
    let whole = chunks.concat();
    let mut source = Chunks {
        chunks: chunks.into_iter(),
        fail: false,
    };
    let written = subject
        .blobs
        .put_chunks("results/j/results.json", &mut source)
        .await
        .expect("put chunks");
    assert_eq!(written, whole.len() as u64);
    let read = subject
        .blobs
        .get("results/j/results.json")
        .await
        .expect("get");
    assert!(
        read == whole,
        "{} bytes read of {}",
        read.len(),
        whole.len()
    );

    let mut empty = Chunks {
        chunks: Vec::new().into_iter(),
        fail: false,
    };
    let written = subject
        .blobs
        .put_chunks("results/j/empty.csv", &mut empty)
        .await
        .expect("put chunks");
    assert_eq!(written, 0);
    assert!(
        subject
            .blobs
            .get("results/j/empty.csv")
            .await
            .expect("get")
            .is_empty()
    );

    let mut failing = Chunks {
        chunks: vec![vec![b'x'; 5 << 20]; 2].into_iter(),
        fail: true,
    };
    let error = subject
        .blobs
        .put_chunks("results/j/documents.jsonl", &mut failing)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("the source failed on purpose"),
        "{error}"
    );
    let missing = subject
        .blobs
        .get("results/j/documents.jsonl")
        .await
        .unwrap_err();
    assert!(matches!(missing, BlobError::NotFound(_)), "{missing}");
}
