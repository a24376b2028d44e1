//! Jobs, documents and work items, and the job state machine.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::evaluation::Evaluation;
use crate::failure::Failure;

/// Identifies a job. Generated ids are `job_` + a time-ordered UUID, so they
/// sort by creation time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(String);

/// An id or name that does not have the allowed shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {value:?}: use 1 to 128 of A-Z a-z 0-9 _ - . @")]
pub struct InvalidName {
    /// What was being parsed (`job id`, `tenant`).
    pub what: &'static str,
    /// The rejected value.
    pub value: String,
}

fn check_name(what: &'static str, value: &str) -> Result<(), InvalidName> {
    let ok = !value.is_empty()
        && value.len() <= 128
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'@'));
    if ok {
        Ok(())
    } else {
        Err(InvalidName {
            what,
            value: value.to_owned(),
        })
    }
}

impl JobId {
    /// A new, unique, time-ordered id.
    pub fn generate() -> Self {
        Self(format!("job_{}", uuid::Uuid::now_v7().simple()))
    }

    /// Parses an id received from outside (a URL path, a message).
    ///
    /// # Errors
    /// [`InvalidName`] when the id is empty, too long or has other characters.
    pub fn parse(value: &str) -> Result<Self, InvalidName> {
        check_name("job id", value)?;
        Ok(Self(value.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The tenant that owns a job (one per API key holder).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TenantId(String);

impl TenantId {
    /// Parses a tenant name.
    ///
    /// # Errors
    /// [`InvalidName`] when the name is empty, too long or has other characters.
    pub fn parse(value: &str) -> Result<Self, InvalidName> {
        check_name("tenant", value)?;
        Ok(Self(value.to_owned()))
    }

    /// The tenant that local runs (`docket run`) belong to.
    pub fn local() -> Self {
        Self("local".to_owned())
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which work queue a job's items go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Served first.
    High,
    /// The default.
    #[default]
    Normal,
    /// Served when nothing else waits.
    Low,
}

impl Priority {
    /// Highest first: the order processors poll in.
    pub const ALL: [Priority; 3] = [Priority::High, Priority::Normal, Priority::Low];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::High => "high",
            Priority::Normal => "normal",
            Priority::Low => "low",
        }
    }
}

impl std::str::FromStr for Priority {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Priority::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("unknown priority {s:?}: use high, normal or low"))
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Accepted; no item recorded yet.
    Queued,
    /// At least one item recorded.
    Processing,
    /// Finalized; results written.
    Completed,
    /// Finalized as failed (every document failed, or the tolerated failure
    /// threshold was passed); partial results written.
    Failed,
    /// Cancelled by its owner; remaining items are skipped and the finalizer
    /// still writes the partial results.
    Cancelled,
}

impl JobStatus {
    /// Every status.
    pub const ALL: [JobStatus; 5] = [
        JobStatus::Queued,
        JobStatus::Processing,
        JobStatus::Completed,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Processing => "processing",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// Whether no more items will be evaluated for a job in this status.
    pub fn is_closed(self) -> bool {
        !matches!(self, JobStatus::Queued | JobStatus::Processing)
    }

    /// The state machine: which status may follow this one. Finalizing a
    /// cancelled job keeps it `Cancelled` (that is not a transition).
    pub fn can_become(self, next: JobStatus) -> bool {
        use JobStatus::*;
        matches!(
            (self, next),
            (Queued, Processing | Completed | Failed | Cancelled)
                | (Processing, Completed | Failed | Cancelled)
        )
    }

    /// The statuses from which `next` may be reached.
    pub fn sources_of(next: JobStatus) -> Vec<JobStatus> {
        JobStatus::ALL
            .into_iter()
            .filter(|s| s.can_become(next))
            .collect()
    }
}

impl std::str::FromStr for JobStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobStatus::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("unknown job status {s:?}"))
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The exact evaluator a job runs: resolved and pinned at submit time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EvaluatorRef {
    /// Plugin name, e.g. `decalogo`.
    pub name: String,
    /// Exact version, e.g. `0.1.0`.
    pub version: String,
    /// `sha256:<hex>` of the component's bytes.
    pub digest: String,
}

impl fmt::Display for EvaluatorRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.version)
    }
}

/// How documents are split into work items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chunking {
    /// Pages per chunk for paged documents (PDF); `None` keeps them whole.
    pub pages: Option<u32>,
    /// KiB per chunk for plain text, cut on paragraph boundaries; `None`
    /// keeps it whole.
    pub text_kib: Option<u32>,
}

impl Default for Chunking {
    fn default() -> Self {
        Self {
            pages: Some(25),
            text_kib: Some(256),
        }
    }
}

/// Per-job options given at submit time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobOptions {
    /// Which work queue.
    pub priority: Priority,
    /// Keep evidence spans in results by default.
    pub include_evidence: bool,
    /// Percentage of documents allowed to fail before the job fails fast and
    /// its remaining items are skipped; 100 never trips.
    pub tolerated_failure_percent: f64,
    /// How documents are split.
    pub chunking: Chunking,
    /// Called when the job is finalized.
    pub webhook_url: Option<String>,
}

impl Default for JobOptions {
    fn default() -> Self {
        Self {
            priority: Priority::Normal,
            include_evidence: true,
            tolerated_failure_percent: 100.0,
            chunking: Chunking::default(),
            webhook_url: None,
        }
    }
}

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

    /// Items still waiting for an outcome.
    pub fn items_pending(&self) -> u32 {
        self.items_total.saturating_sub(self.items_done())
    }

    /// Documents with every chunk recorded.
    pub fn documents_done(&self) -> u32 {
        self.documents_succeeded + self.documents_failed + self.documents_skipped
    }

    /// Whether failed documents are past `tolerated_percent` of all documents.
    pub fn exceeds_failure_threshold(&self, tolerated_percent: f64) -> bool {
        tolerated_percent < 100.0
            && self.documents_total > 0
            && f64::from(self.documents_failed) * 100.0
                > tolerated_percent * f64::from(self.documents_total)
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

/// A document's text as read at intake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentBody {
    /// Plain text (also Markdown, JSON content).
    Text(String),
    /// Text per page (PDF).
    Pages(Vec<String>),
}

impl DocumentBody {
    /// Total text length in bytes (pages joined by form feeds).
    pub fn len(&self) -> usize {
        match self {
            DocumentBody::Text(text) => text.len(),
            DocumentBody::Pages(pages) => {
                pages.iter().map(String::len).sum::<usize>() + pages.len().saturating_sub(1)
            }
        }
    }

    /// Whether it holds no text but white space.
    pub fn is_blank(&self) -> bool {
        match self {
            DocumentBody::Text(text) => text.trim().is_empty(),
            DocumentBody::Pages(pages) => pages.iter().all(|p| p.trim().is_empty()),
        }
    }

    /// Whether it holds no bytes at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A document accepted at intake.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentSpec {
    /// Unique within the job.
    pub id: String,
    /// A human title (file name by default).
    pub title: String,
    /// Its text.
    pub body: DocumentBody,
    /// Free JSON given by the client, passed to the evaluator.
    pub metadata: serde_json::Value,
}

/// A document that could not be read at intake. It is still part of the job
/// and its results, failed with the reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RejectedDocument {
    /// Unique within the job.
    pub id: String,
    /// A human title.
    pub title: String,
    /// Why it cannot be evaluated.
    pub failure: Failure,
}

/// Where a chunk sits in its document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkInfo {
    /// 0-based position among the document's chunks.
    pub index: u32,
    /// How many chunks the document has.
    pub count: u32,
    /// First page (1-based) for paged documents.
    pub first_page: Option<u32>,
    /// Last page (1-based, inclusive) for paged documents.
    pub last_page: Option<u32>,
    /// Byte offset of the chunk's text in the whole document's text.
    pub offset: u64,
}

impl ChunkInfo {
    /// The only chunk of an unsplit document.
    pub const WHOLE: ChunkInfo = ChunkInfo {
        index: 0,
        count: 1,
        first_page: None,
        last_page: None,
        offset: 0,
    };
}

/// Where a work item's text is stored (the claim check): a byte range of a
/// blob. Small documents share one blob, so storing a batch costs a few puts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BodyRef {
    /// Blob key.
    pub key: String,
    /// First byte.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
}

/// One unit of work: a document, or a chunk of one. This is the queue
/// message; it points at the text, never carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkItem {
    /// The job.
    pub job_id: JobId,
    /// 0-based index of the item in the job (documents in order, chunks in
    /// order within each).
    pub item: u32,
    /// 0-based index of the document in the job.
    pub document: u32,
    /// The document's id.
    pub document_id: String,
    /// The document's title.
    pub title: String,
    /// The document's metadata.
    #[serde(default)]
    pub metadata: serde_json::Value,
    /// Which part of the document.
    pub chunk: ChunkInfo,
    /// Where the text is.
    pub body: BodyRef,
}

/// What happened to one work item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ItemResult {
    /// Evaluated.
    Succeeded {
        /// The evaluation, spans relative to the whole document.
        evaluation: Evaluation,
        /// Time spent loading and evaluating, in seconds.
        seconds: f64,
    },
    /// Failed for good.
    Failed {
        /// Why.
        failure: Failure,
        /// Time spent, in seconds.
        seconds: f64,
    },
    /// Not evaluated (job cancelled or failing fast).
    Skipped {
        /// Why.
        reason: String,
    },
}

/// Which of the three terminal states an item reached: how stores index an
/// outcome and count its document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    /// Evaluated.
    Succeeded,
    /// Failed for good.
    Failed,
    /// Not evaluated.
    Skipped,
}

impl ItemStatus {
    /// Every status.
    pub const ALL: [ItemStatus; 3] = [
        ItemStatus::Succeeded,
        ItemStatus::Failed,
        ItemStatus::Skipped,
    ];

    /// The stored name: `succeeded`, `failed` or `skipped`.
    pub fn as_str(self) -> &'static str {
        match self {
            ItemStatus::Succeeded => "succeeded",
            ItemStatus::Failed => "failed",
            ItemStatus::Skipped => "skipped",
        }
    }
}

impl std::str::FromStr for ItemStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ItemStatus::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("unknown item status {s:?}"))
    }
}

impl ItemResult {
    /// Its terminal state.
    pub fn status(&self) -> ItemStatus {
        match self {
            ItemResult::Succeeded { .. } => ItemStatus::Succeeded,
            ItemResult::Failed { .. } => ItemStatus::Failed,
            ItemResult::Skipped { .. } => ItemStatus::Skipped,
        }
    }
}

/// The terminal outcome of a work item, as recorded once in the `JobStore`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemOutcome {
    /// Index of the item in the job.
    pub item: u32,
    /// Index of its document in the job.
    pub document: u32,
    /// The document's id.
    pub document_id: String,
    /// The document's title.
    pub title: String,
    /// Which part of the document.
    pub chunk: ChunkInfo,
    /// Size of the chunk's text in bytes.
    pub bytes: u64,
    /// Where the chunk's text is stored (none for a document rejected at
    /// intake): a recovery job re-reads failed documents from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<BodyRef>,
    /// The document's metadata.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub metadata: serde_json::Value,
    /// What happened.
    pub result: ItemResult,
}

impl ItemOutcome {
    /// The outcome of `item` with `result`.
    pub fn of(item: &WorkItem, result: ItemResult) -> Self {
        Self {
            item: item.item,
            document: item.document,
            document_id: item.document_id.clone(),
            title: item.title.clone(),
            chunk: item.chunk,
            bytes: item.body.len,
            body: Some(item.body.clone()),
            metadata: item.metadata.clone(),
            result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_machine_refuses_illegal_transitions() {
        use JobStatus::*;
        assert!(Queued.can_become(Processing));
        assert!(Processing.can_become(Cancelled));
        assert!(Processing.can_become(Completed));
        assert!(!Processing.can_become(Queued));
        assert!(!Completed.can_become(Processing));
        assert!(!Completed.can_become(Cancelled));
        assert!(!Failed.can_become(Completed));
        assert!(!Cancelled.can_become(Processing));
        assert!(!Cancelled.can_become(Completed));
        for status in JobStatus::ALL {
            assert!(!status.can_become(status), "{status} -> {status}");
        }
        assert_eq!(JobStatus::sources_of(Cancelled), [Queued, Processing]);
        assert_eq!(JobStatus::sources_of(Queued), []);
    }

    #[test]
    fn ids_are_validated_and_time_ordered() {
        let a = JobId::generate();
        let b = JobId::generate();
        assert!(a < b, "{a} then {b}");
        assert!(JobId::parse(a.as_str()).is_ok());
        assert!(JobId::parse("").is_err());
        assert!(JobId::parse("../etc/passwd").is_err());
        assert!(JobId::parse(&"x".repeat(129)).is_err());
        assert!(TenantId::parse("acme-corp").is_ok());
        assert!(TenantId::parse("acme corp").is_err());
    }

    #[test]
    fn failure_threshold_trips_only_past_the_tolerated_share() {
        let counters = JobCounters {
            documents_total: 10,
            documents_failed: 2,
            ..JobCounters::default()
        };
        assert!(!counters.exceeds_failure_threshold(20.0));
        assert!(counters.exceeds_failure_threshold(10.0));
        assert!(!counters.exceeds_failure_threshold(100.0));
    }

    #[test]
    fn pages_join_with_one_separator_each() {
        let body = DocumentBody::Pages(vec!["ab".into(), "cde".into()]);
        assert_eq!(body.len(), 6);
        assert!(!body.is_blank());
        assert!(DocumentBody::Pages(vec![" ".into(), "\n".into()]).is_blank());
    }
}
