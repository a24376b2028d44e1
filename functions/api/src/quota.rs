//! Admission of a new batch: the caller's concurrent jobs, the deployment's
//! queue depth, then the key's upload bucket. Checked in that order so a
//! refused batch costs the caller no token when it could not run anyway.

use std::time::Duration;

use docket_core::JobStatus;
use docket_core::PipelineError;
use docket_core::ports::{JobFilter, QueueName};
use docket_core::quota::Grant;

use crate::{ApiError, AppState, Caller};

/// How long a client shed for queue depth or concurrent jobs should wait.
const BUSY_RETRY: Duration = Duration::from_secs(30);

/// How long a measured queue depth stands for the next admissions: the
/// depth is one scan (SQLite) or three calls (SQS) — not per upload.
const DEPTH_TTL: Duration = Duration::from_secs(1);

/// Work items waiting in every work queue, measured at most once per
/// [`DEPTH_TTL`] per API instance.
async fn waiting_items(state: &AppState) -> Result<u64, ApiError> {
    let cached = *state.queue_depth.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((at, depth)) = cached
        && at.elapsed() < DEPTH_TTL
    {
        return Ok(depth);
    }
    let mut depth = 0;
    for priority in docket_core::Priority::ALL {
        let queue = state
            .pipeline
            .queue
            .depth(QueueName::Work(priority))
            .await
            .map_err(PipelineError::Queue)?;
        depth += queue.visible;
    }
    *state.queue_depth.lock().unwrap_or_else(|e| e.into_inner()) =
        Some((std::time::Instant::now(), depth));
    Ok(depth)
}

/// Admits one new batch of `caller`, or says which limit stops it.
///
/// # Errors
/// 429 `too_many_jobs` or `rate_limited`, 503 `overloaded`, each with a
/// `Retry-After`; a store or queue failure.
pub(crate) async fn admit(state: &AppState, caller: &Caller) -> Result<(), ApiError> {
    let limits = caller.tier.limits();
    let store = &state.pipeline.store;
    let mut active = 0;
    for status in [JobStatus::Queued, JobStatus::Processing] {
        let filter = JobFilter {
            status: Some(status),
            limit: limits.concurrent_jobs,
            ..JobFilter::default()
        };
        active += store
            .list_jobs(&caller.tenant, &filter)
            .await
            .map_err(PipelineError::Store)?
            .len();
    }
    if active >= limits.concurrent_jobs {
        return Err(ApiError::TooManyRequests {
            code: "too_many_jobs",
            message: format!(
                "the {} tier allows {} jobs queued or processing at once; wait for one to finish",
                caller.tier.as_str(),
                limits.concurrent_jobs
            ),
            retry_after: BUSY_RETRY,
        });
    }
    if let Some(max) = state.max_queue_depth {
        let depth = waiting_items(state).await?;
        if depth >= max {
            return Err(ApiError::Overloaded {
                message: format!(
                    "{depth} work items are waiting (the limit is {max}); new batches are refused until the queues drain"
                ),
                retry_after: BUSY_RETRY,
            });
        }
    }
    let bucket = format!("uploads:{}", caller.key_hash);
    let now = state.pipeline.clock.now();
    match store
        .take_token(&bucket, limits.uploads, now)
        .await
        .map_err(PipelineError::Store)?
    {
        Grant::Granted { .. } => Ok(()),
        Grant::Denied { retry_after } => Err(ApiError::TooManyRequests {
            code: "rate_limited",
            message: format!(
                "the {} tier allows {} batches a minute (bursts of {}); retry after the delay",
                caller.tier.as_str(),
                limits.uploads.per_minute,
                limits.uploads.burst
            ),
            retry_after,
        }),
    }
}
