//! End-to-end tests of the pipeline on the embedded backend with the real
//! plugin host: cancellation, retries and backoff, dead letters, priorities,
//! chunk merging, late duplicates, job-finished callbacks, results and
//! summaries of any size, and the memory intake and finalize hold.

mod fairness;
mod held;
mod intake;
mod local;
mod plugins;
mod references;
mod results;
mod summaries;
mod webhooks;
