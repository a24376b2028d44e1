//! Documents as read at intake, the work items they are split into and
//! what happens to each item.

use serde::{Deserialize, Serialize};

use super::JobId;
use crate::evaluation::Evaluation;
use crate::failure::Failure;

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

/// A document given by reference: a file stored whole in the blob store
/// (uploaded, or already in the deployment's bucket) whose text the
/// processor extracts — intake only says where it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferencedDocument {
    /// Unique within the job.
    pub id: String,
    /// A human title.
    pub title: String,
    /// The file's blob key.
    pub key: String,
    /// The file's name: its extension is the hint to its type when the
    /// content does not tell.
    pub name: String,
    /// Its size in bytes, when intake knows it (`0`: read it from the
    /// store).
    pub bytes: u64,
    /// Free JSON given by the client, passed to the evaluator.
    pub metadata: serde_json::Value,
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
/// A referenced document's item points at its whole file instead, named
/// by `file`: the processor extracts the text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BodyRef {
    /// Blob key.
    pub key: String,
    /// First byte.
    pub offset: u64,
    /// Length in bytes (for a file, `0` when intake did not know it).
    pub len: u64,
    /// The file's name when the blob is a file to extract text from (PDF,
    /// DOCX, HTML, text) rather than text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
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
///
/// Stored as one object tagged by `status`. It is read through
/// [`StoredResult`], a plain struct, because serde reads an internally
/// tagged enum from a buffered copy of the object, which cannot keep an
/// evaluation's `data` as the text it was.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case", try_from = "StoredResult")]
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

/// An [`ItemResult`] as stored: every variant's fields, each optional.
#[derive(Deserialize)]
struct StoredResult {
    status: ItemStatus,
    evaluation: Option<Evaluation>,
    seconds: Option<f64>,
    failure: Option<Failure>,
    reason: Option<String>,
}

impl TryFrom<StoredResult> for ItemResult {
    type Error = String;

    fn try_from(stored: StoredResult) -> Result<Self, String> {
        Ok(match stored.status {
            ItemStatus::Succeeded => ItemResult::Succeeded {
                evaluation: required(stored.evaluation, "evaluation")?,
                seconds: required(stored.seconds, "seconds")?,
            },
            ItemStatus::Failed => ItemResult::Failed {
                failure: required(stored.failure, "failure")?,
                seconds: required(stored.seconds, "seconds")?,
            },
            ItemStatus::Skipped => ItemResult::Skipped {
                reason: required(stored.reason, "reason")?,
            },
        })
    }
}

/// A field of one variant of a tagged enum read through a struct of every
/// variant's fields: present, or the error serde would give.
pub(crate) fn required<T>(field: Option<T>, name: &str) -> Result<T, String> {
    field.ok_or_else(|| format!("missing field `{name}`"))
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
