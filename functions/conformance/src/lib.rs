//! One conformance suite for docket's ports, run unchanged against every
//! adapter set (the embedded backend today, the AWS adapters on the
//! emulator). Each check is an `async fn(&Subject)` that panics on a
//! violation; [`conformance_tests!`] turns them into `#[tokio::test]`s for
//! an adapter's factory. The checks live in a module per port (`queue`,
//! `blob`, `store`) plus `pipeline`, which runs the core over all of them;
//! every check is re-exported here.
//!
//! A check that waits for a visibility timeout or a delay lets the time
//! pass through the subject's [`Time`]: a backend running on a clock the
//! test holds (the embedded one, on a [`ManualClock`]) sees it pass at once
//! and without sleeping; a backend whose clock cannot be controlled (a
//! remote service) is given [`RealTime`], which sleeps. The sleeps left in
//! the checks are back-offs between polls, not waits for time to pass; each
//! says why.

// A test-support crate: a check fails by panicking.
#![allow(clippy::unwrap_used)]

mod blob;
mod pipeline;
mod queue;
mod store;
mod time;

use std::any::Any;
use std::sync::Arc;

use chrono::Utc;
use docket_core::Priority;
use docket_core::model::{EvaluatorRef, Job, JobCounters, JobId, JobOptions, JobStatus, TenantId};
use docket_core::ports::{
    ApiKeyStore, BlobStore, JobStore, PluginRegistry, QueueName, RateLimiter, WebhookSecrets,
    WorkQueue,
};

pub use blob::*;
pub use pipeline::*;
pub use queue::*;
pub use store::*;
pub use time::{ManualClock, RealTime, Time};

/// The adapters under test, fresh for each check (own queues, table,
/// bucket or state directory).
pub struct Subject {
    /// Queues.
    pub queue: Arc<dyn WorkQueue>,
    /// Blobs.
    pub blobs: Arc<dyn BlobStore>,
    /// Jobs, keys, rate buckets, secrets and the plugin registry.
    pub store: Arc<dyn Stores>,
    /// The queues' dead-letter threshold (receives).
    pub max_receives: u32,
    /// Lets time pass for the backend: the [`ManualClock`] it runs on, or
    /// [`RealTime`] when its clock cannot be controlled.
    pub time: Arc<dyn Time>,
    /// Keeps whatever backs the subject alive (a temp dir, a server).
    pub guard: Box<dyn Any + Send + Sync>,
}

/// The five store ports, as one adapter implements them.
pub trait Stores: JobStore + ApiKeyStore + RateLimiter + WebhookSecrets + PluginRegistry {}

impl<S> Stores for S where S: JobStore + ApiKeyStore + RateLimiter + WebhookSecrets + PluginRegistry {}

/// Generates one `#[tokio::test]` per check for `$factory`, an
/// `async fn() -> Subject`.
#[macro_export]
macro_rules! conformance_tests {
    ($factory:path) => {
        $crate::conformance_tests!(@each $factory;
            queue_send_receive_ack,
            queue_hides_received_messages_until_visibility_expires,
            queue_retry_after_sets_visibility,
            queue_dead_letters_after_max_receives,
            queue_sends_large_batches,
            queue_refuses_oversized_messages,
            queue_keeps_queues_apart,
            queue_reports_depth,
            blob_put_get_overwrite,
            blob_ranges,
            blob_missing_and_invalid_keys,
            blob_list_by_prefix,
            blob_lists_a_page_at_a_time_with_sizes,
            blob_put_chunks_stores_the_source_whole_or_not_at_all,
            store_create_read_conflict,
            store_counts_a_sequentially_duplicated_outcome_once,
            store_counts_a_concurrently_duplicated_outcome_once,
            store_signals_completion_exactly_once,
            store_counts_documents_at_their_last_chunk,
            store_transitions_follow_the_state_machine,
            store_finish_has_exactly_one_winner,
            store_halts_once,
            store_lists_by_tenant_newest_first_with_cursor,
            store_round_trips_outcomes,
            store_completes_a_job_only_once_its_intake_is_closed,
            store_keeps_api_keys_by_hash,
            store_token_buckets_are_shared_and_atomic,
            store_stats_count_jobs_and_documents,
            store_keeps_webhook_state_and_one_secret_per_tenant,
            store_registers_each_plugin_version_once,
            pipeline_counts_exactly_once_under_duplicate_deliveries,
            pipeline_evaluates_a_mixed_batch_item_by_item
        );
    };
    (@each $factory:path; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $check() {
                let subject = $factory().await;
                $crate::$check(&subject).await;
            }
        )*
    };
}

/// The normal-priority work queue, where most checks send.
const NORMAL: QueueName = QueueName::Work(Priority::Normal);

/// A job with `items` single-chunk documents.
pub fn sample_job(tenant: &str, items: u32) -> Job {
    Job {
        id: JobId::generate(),
        tenant: TenantId::parse(tenant).expect("tenant"),
        status: JobStatus::Queued,
        evaluator: EvaluatorRef {
            name: "fake".into(),
            version: "1.0.0".into(),
            digest: "sha256:fake".into(),
        },
        config: serde_json::json!({}),
        options: JobOptions::default(),
        counters: JobCounters {
            documents_total: items,
            items_total: items,
            ..JobCounters::default()
        },
        created_at: Utc::now(),
        started_at: None,
        finished_at: None,
        error: None,
        webhook: None,
        failures: Vec::new(),
    }
}
