//! PDF text: reading a PDF's text page by page within a budget, and
//! writing simple text PDFs (the sample corpus and benchmark inputs are
//! made with it).
//!
//! # What the budget bounds, and how
//!
//! Extraction runs `pdf-extract` (on `lopdf`) over the bytes of one file.
//! A hostile or broken file can make that parser panic, loop for ever,
//! recurse until the stack overflows, or allocate without end. Each of
//! those is handled differently, because only some can be stopped from
//! outside:
//!
//! - **Panics** are caught: the document fails alone.
//! - **Input size** is checked before anything is parsed
//!   ([`PdfLimits::max_bytes`]): `lopdf` holds the whole file and its
//!   objects in memory, so this is the bound on what the parser is given.
//! - **Structure** is checked after `lopdf` has read the file and before
//!   `pdf-extract` walks it. `pdf-extract` follows a page's `Parent` chain
//!   recursively to find inherited resources and draws form XObjects by
//!   recursion, with no guard against cycles: a page tree whose `Kids` or
//!   `Parent` entries loop makes it spin for ever, and a form that draws
//!   itself overflows the stack — which aborts the whole process, not just
//!   the thread, so no deadline or `catch_unwind` can catch it. Those cases
//!   are refused here: page-tree loops, trees deeper than
//!   [`PdfLimits::max_tree_depth`], more than [`PdfLimits::max_pages`]
//!   pages, forms that draw themselves (directly or through others) and
//!   forms nested deeper than [`PdfLimits::max_form_depth`].
//! - **Time**: extraction runs on a worker thread and the caller waits at
//!   most [`PdfLimits::deadline`]. The worker also checks the deadline
//!   itself between pages and while text is produced, so a file that is
//!   merely slow stops soon after its deadline. A thread cannot be killed:
//!   a worker stuck where it does not check (inside `lopdf`'s parser, or a
//!   `pdf-extract` loop these checks did not foresee) is detached and
//!   left to finish or not. Such overrunning workers are counted
//!   process-wide; while [`PdfLimits::max_overrunning`] of them are still
//!   running, further extractions are refused at once, so stuck threads
//!   cannot pile up without bound.
//! - **Memory** is bounded in a child process. A binary that calls
//!   [`use_child_processes`] (the CLI and the processor function do) runs
//!   each extraction in a child of its own executable whose data limit is
//!   [`PdfLimits::max_memory`]: a small compressed stream that inflates to
//!   gigabytes (a "decompression bomb") fails its file with
//!   [`PdfError::OutOfMemory`], and a child past its deadline is killed, so
//!   no stuck parser outlives its file. Without that call (a library user,
//!   the unit tests) extraction runs on a thread, and memory is bounded
//!   only indirectly: by the input size, the page count and the extracted
//!   text ([`PdfLimits::max_text_bytes`], checked as text is produced).

mod budget;
mod structure;
mod text;
mod worker;

pub use worker::{MEMORY_ENV, WORKER_ENV, use_child_processes};

use std::time::{Duration, Instant};

use lopdf::content::{Content, Operation};
use lopdf::encryption::DecryptionError;
use lopdf::{Document, Object, Stream, dictionary};

/// The budget of one PDF's text extraction. [`Default`] gives the limits
/// docket reads documents with.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PdfLimits {
    /// Largest file accepted, in bytes (default 100 MiB).
    pub max_bytes: usize,
    /// Most pages accepted (default 10,000).
    pub max_pages: usize,
    /// Deepest page tree accepted, in levels of `Pages` nodes (default 64;
    /// real files have a handful).
    pub max_tree_depth: usize,
    /// Deepest nesting of form XObjects accepted (default 32).
    pub max_form_depth: usize,
    /// Most extracted text, in UTF-8 bytes over all pages (default 64 MiB).
    pub max_text_bytes: usize,
    /// How long the caller waits for one file (default 30 s).
    pub deadline: Duration,
    /// How many workers that overran their deadline may still be running
    /// before further extractions are refused (default 4).
    pub max_overrunning: usize,
    /// Most memory one extraction may allocate, in bytes, when it runs in a
    /// child process (default 1 GiB; see [`use_child_processes`]).
    pub max_memory: usize,
}

impl Default for PdfLimits {
    fn default() -> Self {
        Self {
            max_bytes: 100 * 1024 * 1024,
            max_pages: 10_000,
            max_tree_depth: 64,
            max_form_depth: 32,
            max_text_bytes: 64 * 1024 * 1024,
            deadline: Duration::from_secs(30),
            max_overrunning: 4,
            max_memory: 1024 * 1024 * 1024,
        }
    }
}

/// Why a PDF's text could not be extracted. Every case is the document's
/// own (a data failure), except [`PdfError::Overloaded`], which says that
/// earlier files used up the budget for stuck workers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum PdfError {
    /// The file is larger than [`PdfLimits::max_bytes`].
    #[error("the file's {size} bytes exceed the {limit}-byte limit")]
    TooLarge {
        /// The file's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The page tree has more than [`PdfLimits::max_pages`] pages.
    #[error("it has more than {limit} pages")]
    TooManyPages {
        /// The limit.
        limit: usize,
    },
    /// The page tree is deeper than [`PdfLimits::max_tree_depth`].
    #[error("its page tree is deeper than {limit} levels")]
    PageTreeTooDeep {
        /// The limit.
        limit: usize,
    },
    /// A `Kids` or `Parent` entry leads back to a node already visited.
    #[error("its page tree loops: object {} {} is reached twice", .object.0, .object.1)]
    PageTreeLoop {
        /// The node reached twice.
        object: lopdf::ObjectId,
    },
    /// A form XObject draws itself, directly or through other forms.
    #[error("form XObject {} {} draws itself", .object.0, .object.1)]
    FormLoop {
        /// The form.
        object: lopdf::ObjectId,
    },
    /// Form XObjects are nested deeper than [`PdfLimits::max_form_depth`].
    #[error("its form XObjects are nested deeper than {limit} levels")]
    FormsTooDeep {
        /// The limit.
        limit: usize,
    },
    /// The extracted text exceeds [`PdfLimits::max_text_bytes`].
    #[error("its text exceeds the {limit}-byte limit (at page {page})")]
    TooMuchText {
        /// The limit.
        limit: usize,
        /// The page where it was exceeded.
        page: u32,
    },
    /// Extraction did not finish within [`PdfLimits::deadline`].
    #[error("text extraction did not finish within {}", human(*.0))]
    TimedOut(Duration),
    /// Too many earlier extractions overran their deadline and are still
    /// running ([`PdfLimits::max_overrunning`]).
    #[error(
        "text extraction refused: {running} earlier extractions overran their deadline and are still running"
    )]
    Overloaded {
        /// How many are still running.
        running: usize,
    },
    /// The file needs a password.
    #[error("it is encrypted and needs a password")]
    Encrypted,
    /// The page tree has no pages.
    #[error("the PDF has no pages")]
    NoPages,
    /// The parser rejected the file.
    #[error("{0}")]
    Malformed(String),
    /// The parser panicked on the file, or its process died.
    #[error("the PDF parser failed on this file")]
    ParserFailed,
    /// Reading the file needed more than [`PdfLimits::max_memory`].
    #[error("reading it needs more than {} MiB of memory", .limit / (1024 * 1024))]
    OutOfMemory {
        /// The limit, in bytes.
        limit: usize,
    },
}

/// `30 s`, or `250 ms` for a deadline that is not whole seconds.
fn human(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{} s", duration.as_secs())
    } else {
        format!("{} ms", duration.as_millis())
    }
}

/// How many extraction workers of this process overran their deadline and
/// are still running (detached: see the module documentation).
pub fn overrunning_extractions() -> usize {
    budget::OVERRUNNING.load(std::sync::atomic::Ordering::SeqCst)
}

/// Extracts the text of every page within the default [`PdfLimits`].
///
/// # Errors
/// [`PdfError`]: why the PDF is unreadable or over its budget.
pub fn extract_pages(bytes: &[u8]) -> Result<Vec<String>, PdfError> {
    extract_pages_with(bytes, &PdfLimits::default())
}

/// Extracts the text of every page within `limits` (see the module
/// documentation for what each limit bounds). Pages are trimmed of
/// surrounding blank lines and spaces.
///
/// # Errors
/// [`PdfError`]: why the PDF is unreadable or over its budget.
pub fn extract_pages_with(bytes: &[u8], limits: &PdfLimits) -> Result<Vec<String>, PdfError> {
    if bytes.len() > limits.max_bytes {
        return Err(PdfError::TooLarge {
            size: bytes.len(),
            limit: limits.max_bytes,
        });
    }
    if worker::in_children() {
        worker::extract_in_child(bytes.to_vec(), limits)
    } else {
        extract_in_thread(bytes.to_vec(), limits)
    }
}

/// Extraction on a worker thread of this process, within the deadline.
fn extract_in_thread(bytes: Vec<u8>, limits: &PdfLimits) -> Result<Vec<String>, PdfError> {
    let worker_limits = limits.clone();
    budget::run_within(limits, &budget::OVERRUNNING, move |deadline| {
        extract_checked(&bytes, &worker_limits, deadline)
    })
}

/// The worker's part: parse, check the structure, extract.
fn extract_checked(
    bytes: &[u8],
    limits: &PdfLimits,
    deadline: Instant,
) -> Result<Vec<String>, PdfError> {
    let mut doc = Document::load_mem(bytes).map_err(parser_error)?;
    if doc.is_encrypted() {
        // Files encrypted only against editing open with an empty password.
        doc.decrypt("").map_err(parser_error)?;
    }
    structure::check(&doc, limits, deadline)?;
    text::extract(&doc, limits, deadline)
}

fn parser_error(error: lopdf::Error) -> PdfError {
    match error {
        lopdf::Error::Decryption(DecryptionError::IncorrectPassword) => PdfError::Encrypted,
        other => PdfError::Malformed(other.to_string()),
    }
}

/// Encodes text for a standard font's WinAnsi encoding (Latin-1 for the
/// characters docket writes); anything else becomes `?`.
fn win_ansi(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
        .collect()
}

/// Writes a PDF with one page per entry of `pages`, each line of a page a
/// line of Helvetica text.
///
/// # Errors
/// When lopdf cannot encode the document.
pub fn write_text_pdf(pages: &[String]) -> Result<Vec<u8>, lopdf::Error> {
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font_id = doc.add_object(dictionary! {
        "Type" => "Font",
        "Subtype" => "Type1",
        "BaseFont" => "Helvetica",
        "Encoding" => "WinAnsiEncoding",
    });
    let resources_id = doc.add_object(dictionary! {
        "Font" => dictionary! { "F1" => font_id },
    });
    let mut kids: Vec<Object> = Vec::with_capacity(pages.len());
    for page in pages {
        let mut operations = vec![
            Operation::new("BT", vec![]),
            Operation::new("Tf", vec!["F1".into(), 10.into()]),
            Operation::new("TL", vec![13.into()]),
            Operation::new("Td", vec![50.into(), 790.into()]),
        ];
        for line in page.lines() {
            operations.push(Operation::new(
                "Tj",
                vec![Object::string_literal(win_ansi(line))],
            ));
            operations.push(Operation::new("T*", vec![]));
        }
        operations.push(Operation::new("ET", vec![]));
        let content = Content { operations }.encode()?;
        let content_id = doc.add_object(Stream::new(dictionary! {}, content));
        let page_id = doc.add_object(dictionary! {
            "Type" => "Page",
            "Parent" => pages_id,
            "Contents" => content_id,
        });
        kids.push(page_id.into());
    }
    let count = kids.len() as i64;
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages",
            "Kids" => kids,
            "Count" => count,
            "Resources" => resources_id,
            "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
        }),
    );
    let catalog_id = doc.add_object(dictionary! {
        "Type" => "Catalog",
        "Pages" => pages_id,
    });
    doc.trailer.set("Root", catalog_id);
    doc.compress();
    let mut bytes = Vec::new();
    doc.save_to(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_pages_read_back_in_order() {
        let pages = vec![
            "First page\nwith two lines".to_owned(),
            "Second page: diagnóstico".to_owned(),
            "Third".to_owned(),
        ];
        let bytes = write_text_pdf(&pages).unwrap();
        let read = extract_pages(&bytes).unwrap();
        assert_eq!(read.len(), 3);
        assert!(read[0].contains("First page"), "{read:?}");
        assert!(read[0].contains("with two lines"), "{read:?}");
        assert!(read[1].contains("diagnóstico"), "{read:?}");
        assert_eq!(read[2], "Third");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(extract_pages(b"%PDF-1.5 this is not a pdf").is_err());
        assert!(extract_pages(b"").is_err());
    }
}
