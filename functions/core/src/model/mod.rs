//! Jobs, documents and work items, and the job state machine.

use std::fmt;

use serde::{Deserialize, Serialize};

mod item;
mod job;

pub(crate) use item::required;
pub use item::{
    BodyRef, ChunkInfo, DocumentBody, DocumentSpec, ItemOutcome, ItemResult, ItemStatus,
    ReferencedDocument, RejectedDocument, WorkItem,
};
pub use job::{FAILURE_SAMPLES, FailureSample, FailureTally, Job, JobCounters, Refused};

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
    /// Its tenant's weight when tenants take turns on a work queue: a
    /// group of weight 2 gets twice the share of each receive of one of
    /// weight 1 (the submitting key's tier, [`crate::auth::Tier::fair_share`]).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub fair_share: u32,
}

fn one() -> u32 {
    1
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

impl Default for JobOptions {
    fn default() -> Self {
        Self {
            priority: Priority::Normal,
            include_evidence: true,
            tolerated_failure_percent: 100.0,
            chunking: Chunking::default(),
            webhook_url: None,
            fair_share: 1,
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
