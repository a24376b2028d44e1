//! Progress of a job: percentages, chunk counts and an ETA from the observed
//! rate.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::model::{Job, JobId, JobStatus};

/// Document-level progress, in the field names batch clients read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentProgress {
    /// Items with an outcome, in percent of all items (two decimals).
    pub percent_complete: f64,
    /// Documents evaluated successfully.
    pub completed_documents: u32,
    /// Documents in the job.
    pub total_documents: u32,
    /// Documents failed.
    pub failed_documents: u32,
    /// Documents skipped (cancelled or failing fast).
    pub skipped_documents: u32,
}

/// Work-item (chunk) level counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkProgress {
    /// Items in the job.
    pub total: u32,
    /// Items evaluated.
    pub completed: u32,
    /// Items still to be recorded (queued or being evaluated).
    pub active: u32,
    /// Items failed.
    pub failed: u32,
    /// Items skipped.
    pub skipped: u32,
}

/// A job's status report (`GET /batch/status/{id}`, `docket run`'s bar).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// The job.
    pub job_id: JobId,
    /// Its status.
    pub status: JobStatus,
    /// Whether results are written.
    pub finalized: bool,
    /// Documents.
    pub progress: DocumentProgress,
    /// Items.
    pub chunks: ChunkProgress,
    /// Seconds left at the rate observed so far; `None` before any item is
    /// done, 0 once finalized.
    pub estimated_seconds_remaining: Option<f64>,
    /// When it should be done, ISO 8601.
    pub estimated_completion_iso: Option<DateTime<Utc>>,
    /// Items recorded per second since the first.
    pub items_per_second: Option<f64>,
    /// Why it failed or is failing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Where the job-finished callback stands, when the job has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<crate::webhook::WebhookDelivery>,
    /// Its failed items by category, with the first few of each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<crate::model::FailureTally>,
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

impl StatusReport {
    /// The report for `job` at `now`.
    pub fn of(job: &Job, now: DateTime<Utc>) -> Self {
        let c = &job.counters;
        let done = c.items_done();
        let percent = if c.items_total == 0 {
            // Nothing to do: done, unless the batch is still being read in.
            if c.intake_open { 0.0 } else { 100.0 }
        } else {
            round2(f64::from(done) * 100.0 / f64::from(c.items_total))
        };
        let finalized = job.finished_at.is_some();
        let rate = job.started_at.and_then(|started| {
            let elapsed = (now - started).num_microseconds()? as f64 / 1e6;
            (done > 0 && elapsed > 0.0).then(|| f64::from(done) / elapsed)
        });
        let remaining = if finalized || c.items_pending() == 0 {
            Some(0.0)
        } else {
            rate.map(|r| f64::from(c.items_pending()) / r)
        };
        StatusReport {
            job_id: job.id.clone(),
            status: job.status,
            finalized,
            progress: DocumentProgress {
                percent_complete: percent,
                completed_documents: c.documents_succeeded,
                total_documents: c.documents_total,
                failed_documents: c.documents_failed,
                skipped_documents: c.documents_skipped,
            },
            chunks: ChunkProgress {
                total: c.items_total,
                completed: c.items_succeeded,
                active: c.items_total.saturating_sub(done),
                failed: c.items_failed,
                skipped: c.items_skipped,
            },
            estimated_seconds_remaining: remaining.map(round2),
            estimated_completion_iso: remaining
                .map(|s| now + Duration::milliseconds((s * 1000.0) as i64)),
            items_per_second: rate.map(round2),
            error: job.error.clone(),
            webhook: job.webhook.clone(),
            failures: job.failures.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EvaluatorRef, JobCounters, JobOptions, TenantId};

    fn job(counters: JobCounters, started_secs_ago: Option<i64>, now: DateTime<Utc>) -> Job {
        Job {
            id: JobId::parse("job_1").unwrap(),
            tenant: TenantId::local(),
            status: JobStatus::Processing,
            evaluator: EvaluatorRef {
                name: "e".into(),
                version: "1".into(),
                digest: "sha256:0".into(),
            },
            config: serde_json::json!({}),
            options: JobOptions::default(),
            counters,
            created_at: now,
            started_at: started_secs_ago.map(|s| now - Duration::seconds(s)),
            finished_at: None,
            error: None,
            webhook: None,
            failures: Vec::new(),
        }
    }

    #[test]
    fn eta_follows_the_observed_rate() {
        let now = Utc::now();
        let counters = JobCounters {
            documents_total: 100,
            documents_succeeded: 20,
            documents_failed: 5,
            items_total: 200,
            items_succeeded: 45,
            items_failed: 5,
            ..JobCounters::default()
        };
        let report = StatusReport::of(&job(counters, Some(10), now), now);
        assert_eq!(report.progress.percent_complete, 25.0);
        assert_eq!(report.progress.completed_documents, 20);
        assert_eq!(report.progress.failed_documents, 5);
        assert_eq!(report.chunks.active, 150);
        // 50 items in 10 s = 5/s, 150 left = 30 s.
        assert_eq!(report.items_per_second, Some(5.0));
        assert_eq!(report.estimated_seconds_remaining, Some(30.0));
        assert_eq!(
            report.estimated_completion_iso,
            Some(now + Duration::seconds(30))
        );
    }

    #[test]
    fn no_eta_before_the_first_item() {
        let now = Utc::now();
        let counters = JobCounters {
            documents_total: 3,
            items_total: 3,
            ..JobCounters::default()
        };
        let report = StatusReport::of(&job(counters, None, now), now);
        assert_eq!(report.progress.percent_complete, 0.0);
        assert_eq!(report.estimated_seconds_remaining, None);
        assert_eq!(report.estimated_completion_iso, None);
    }

    #[test]
    fn a_done_job_has_nothing_remaining() {
        let now = Utc::now();
        let counters = JobCounters {
            documents_total: 3,
            documents_succeeded: 3,
            items_total: 3,
            items_succeeded: 3,
            ..JobCounters::default()
        };
        let report = StatusReport::of(&job(counters, Some(1), now), now);
        assert_eq!(report.progress.percent_complete, 100.0);
        assert_eq!(report.estimated_seconds_remaining, Some(0.0));
    }
}
