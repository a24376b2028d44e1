//! End-to-end tests of the pipeline on the embedded backend with the real
//! plugin host: cancellation, retries and backoff, dead letters, priorities,
//! chunk merging and late duplicates.

mod local;
