//! [`BlobStore`](docket_core::ports::BlobStore) checks: reads, ranges,
//! keys, listing.

use docket_core::ports::BlobError;

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
