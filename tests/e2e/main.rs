//! End-to-end tests of the pipeline on the embedded backend with the real
//! plugin host: cancellation, retries and backoff, dead letters, priorities,
//! chunk merging, late duplicates and
//! job-finished callbacks.

mod intake;
mod local;
mod plugins;
mod results;
mod webhooks;
