//! A job, its exact counters and its state machine.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{
    EvaluatorRef, ItemOutcome, ItemResult, ItemStatus, JobId, JobOptions, JobStatus, TenantId,
};
use crate::failure::FailureCategory;

/// Exact counts kept on the job by the atomic "record item outcome" step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct JobCounters {
    /// Documents in the job (intake rejections included).
    pub documents_total: u32,
    /// Documents whose every chunk succeeded.
    pub documents_succeeded: u32,
    /// Documents with at least one failed chunk.
    pub documents_failed: u32,
    /// Documents skipped (job cancelled or failing fast), none failed.
    pub documents_skipped: u32,
    /// Work items in the job.
    pub items_total: u32,
    /// Items evaluated successfully.
    pub items_succeeded: u32,
    /// Items recorded failed.
    pub items_failed: u32,
    /// Items skipped.
    pub items_skipped: u32,
    /// The batch is still being read in: more documents and items may be
    /// added, so the job is not complete whatever has been recorded.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub intake_open: bool,
}

impl JobCounters {
    /// Items with a recorded outcome.
    pub fn items_done(&self) -> u32 {
        self.items_succeeded + self.items_failed + self.items_skipped
    }

    /// Counts one newly recorded item of `status`. `document` holds the
    /// statuses of every recorded chunk of its document, this one included:
    /// the document is counted when all `chunk_count` chunks are there —
    /// failed if any failed, else skipped if any was skipped, else
    /// succeeded. Every store counts through here.
    pub fn count_item(&mut self, status: ItemStatus, chunk_count: u32, document: &[ItemStatus]) {
        match status {
            ItemStatus::Succeeded => self.items_succeeded += 1,
            ItemStatus::Failed => self.items_failed += 1,
            ItemStatus::Skipped => self.items_skipped += 1,
        }
        let whole = chunk_count <= 1;
        if whole || document.len() as u32 >= chunk_count {
            let states = if whole { &[status][..] } else { document };
            if states.contains(&ItemStatus::Failed) {
                self.documents_failed += 1;
            } else if states.contains(&ItemStatus::Skipped) {
                self.documents_skipped += 1;
            } else {
                self.documents_succeeded += 1;
            }
        }
    }

    /// Items still waiting for an outcome — at least one while the intake
    /// is open (the items still to come), so a job completes only once its
    /// intake is closed and every item has an outcome.
    pub fn items_pending(&self) -> u32 {
        let pending = self.items_total.saturating_sub(self.items_done());
        if self.intake_open {
            pending.max(1)
        } else {
            pending
        }
    }

    /// Documents with every chunk recorded.
    pub fn documents_done(&self) -> u32 {
        self.documents_succeeded + self.documents_failed + self.documents_skipped
    }

    /// Whether failed documents are past `tolerated_percent` of all
    /// documents (never while the intake is open: the batch's size is not
    /// known yet).
    pub fn exceeds_failure_threshold(&self, tolerated_percent: f64) -> bool {
        tolerated_percent < 100.0
            && !self.intake_open
            && self.documents_total > 0
            && f64::from(self.documents_failed) * 100.0
                > tolerated_percent * f64::from(self.documents_total)
    }
}

/// Most sample messages a job keeps of each failure category.
pub const FAILURE_SAMPLES: usize = 3;

/// Longest text of a sample a job keeps, in bytes: the samples stay a
/// few kilobytes of the job (a DynamoDB item holds 400 KB).
const SAMPLE_TEXT_BYTES: usize = 300;

/// `text`'s first [`SAMPLE_TEXT_BYTES`], cut at a character.
fn cut(text: &str) -> String {
    let mut end = text.len().min(SAMPLE_TEXT_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// A job's failed items of one category, and the first few of them: what
/// an operator reads of a running job without reading its outcomes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureTally {
    /// The category.
    pub category: FailureCategory,
    /// Items recorded failed in it.
    pub items: u32,
    /// The first [`FAILURE_SAMPLES`] of them.
    pub samples: Vec<FailureSample>,
}

/// One failed item, as a [`FailureTally`] keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureSample {
    /// Its document's id (its first 300 bytes, as the title and message).
    pub document_id: String,
    /// Its document's title.
    pub title: String,
    /// What went wrong.
    pub message: String,
}

impl ItemOutcome {
    /// The category and sample of a failed outcome; `None` otherwise.
    pub fn failure_sample(&self) -> Option<(FailureCategory, FailureSample)> {
        let ItemResult::Failed { failure, .. } = &self.result else {
            return None;
        };
        Some((
            failure.category,
            FailureSample {
                document_id: cut(&self.document_id),
                title: cut(&self.title),
                message: cut(&failure.message),
            },
        ))
    }
}

/// A batch of documents and everything known about its processing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Its id.
    pub id: JobId,
    /// Its owner.
    pub tenant: TenantId,
    /// Where it is in its life.
    pub status: JobStatus,
    /// The pinned evaluator.
    pub evaluator: EvaluatorRef,
    /// The evaluator's configuration (JSON object).
    pub config: serde_json::Value,
    /// Submit-time options.
    pub options: JobOptions,
    /// Exact progress counts.
    pub counters: JobCounters,
    /// When it was accepted.
    pub created_at: DateTime<Utc>,
    /// When its first item was recorded.
    pub started_at: Option<DateTime<Utc>>,
    /// When it was finalized (results written).
    pub finished_at: Option<DateTime<Utc>>,
    /// Why it failed or is failing fast; set once.
    pub error: Option<String>,
    /// Where the job-finished callback stands (none without a webhook URL
    /// or before the job finished).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<crate::webhook::WebhookDelivery>,
    /// Its failed items by category, each with its first few (counted with
    /// the counters, by [`Job::tally_failure`]), in [`FailureCategory::ALL`]
    /// order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<FailureTally>,
}

/// A change the job's state machine refuses: the status is not one the
/// change starts from, or the job is already finalized. Stores report it
/// as a conflict.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// The job's state machine: every conditional change a store makes to a
/// job it read (inside its transaction or optimistic write) is one of these,
/// so both backends accept and refuse the same changes.
impl Job {
    /// Counts a newly recorded failed item of `category` (every store
    /// calls it beside [`JobCounters::count_item`]); the first
    /// [`FAILURE_SAMPLES`] of a category are kept.
    pub fn tally_failure(&mut self, category: FailureCategory, sample: FailureSample) {
        let at = match self
            .failures
            .binary_search_by_key(&category, |t| t.category)
        {
            Ok(at) => at,
            Err(at) => {
                self.failures.insert(
                    at,
                    FailureTally {
                        category,
                        items: 0,
                        samples: Vec::new(),
                    },
                );
                at
            }
        };
        let tally = &mut self.failures[at];
        tally.items += 1;
        if tally.samples.len() < FAILURE_SAMPLES {
            tally.samples.push(sample);
        }
    }

    /// Whether its remaining items must be skipped rather than evaluated.
    pub fn skips_items(&self) -> bool {
        self.status == JobStatus::Cancelled || self.error.is_some() || self.finished_at.is_some()
    }

    /// Moves the job to `to` when its status is in `from` and it is not
    /// finalized.
    ///
    /// # Errors
    /// [`Refused`] otherwise.
    pub fn transition(&mut self, from: &[JobStatus], to: JobStatus) -> Result<(), Refused> {
        if self.finished_at.is_some() || !from.contains(&self.status) {
            return Err(Refused(format!(
                "job {} is {}{}",
                self.id,
                self.status,
                if self.finished_at.is_some() {
                    " and finalized"
                } else {
                    ""
                }
            )));
        }
        self.status = to;
        Ok(())
    }

    /// Sets the reason the job fails fast, once: whether this call set it.
    pub fn halt(&mut self, reason: &str) -> bool {
        if self.error.is_some() {
            return false;
        }
        self.error = Some(reason.to_owned());
        true
    }

    /// Finalizes the job: `status` (its current one, or one it can become),
    /// `error` (or the one it has) and `finished_at`.
    ///
    /// # Errors
    /// [`Refused`] when already finalized or the status change is not
    /// allowed.
    pub fn finish(
        &mut self,
        status: JobStatus,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), Refused> {
        if self.finished_at.is_some() {
            return Err(Refused(format!("job {} is already finalized", self.id)));
        }
        if status != self.status && !self.status.can_become(status) {
            return Err(Refused(format!(
                "job {} cannot go from {} to {status}",
                self.id, self.status
            )));
        }
        self.status = status;
        self.error = error.map(str::to_owned).or(self.error.take());
        self.finished_at = Some(now);
        Ok(())
    }

    /// Adds a window of the batch being read in: `documents` documents and
    /// `items` work items; `close` closes the intake (the job can then
    /// complete). With `from`, only a job that has exactly `from`
    /// documents so far is extended: a part of the intake that may be
    /// delivered twice is added once.
    ///
    /// # Errors
    /// [`Refused`] when the intake is already closed or the job finalized,
    /// or the job does not have `from` documents.
    pub fn extend(
        &mut self,
        documents: u32,
        items: u32,
        close: bool,
        from: Option<u32>,
    ) -> Result<(), Refused> {
        if !self.counters.intake_open || self.finished_at.is_some() {
            return Err(Refused(format!(
                "job {} takes no more documents: its intake is closed",
                self.id
            )));
        }
        if let Some(from) = from
            && self.counters.documents_total != from
        {
            return Err(Refused(format!(
                "job {} has {} documents, not {from}: this part of its intake is added already",
                self.id, self.counters.documents_total
            )));
        }
        self.counters.documents_total += documents;
        self.counters.items_total += items;
        self.counters.intake_open = !close;
        Ok(())
    }

    /// Records where the job's callback stands; a delivered callback stays
    /// delivered.
    pub fn set_webhook(&mut self, delivery: &crate::webhook::WebhookDelivery) {
        let delivered = self
            .webhook
            .as_ref()
            .is_some_and(|w| w.state == crate::webhook::WebhookState::Delivered);
        if !delivered {
            self.webhook = Some(delivery.clone());
        }
    }
}
