//! Reading documents from disk: directories, `.txt`/`.md` files, PDFs (text
//! per page), JSON documents and JSON/JSONL manifests in the upload body's
//! shape. A file that cannot be used becomes a rejected document with the
//! reason — it fails alone; every other document still runs.

use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};

use docket_core::model::{DocumentBody, DocumentSpec, ReferencedDocument, RejectedDocument};
use docket_core::pipeline::{DocumentReader, IntakeDocument};
use docket_core::ports::check_blob_key;
use docket_core::upload::{FieldProblem, Rules, Source, UploadDocument};
use docket_core::{Failure, FailureCategory};
use serde_json::{Value, json};

use crate::formats::{self, FileKind, kind_of};
use crate::pdf;

/// Extensions read from directories.
pub const SUPPORTED: &[&str] = &[
    "txt", "md", "markdown", "json", "jsonl", "pdf", "docx", "html", "htm",
];

/// What was read.
#[derive(Debug, Default)]
pub struct Intake {
    /// The documents, in a stable order (paths sorted).
    pub documents: Vec<IntakeDocument>,
    /// Files in directories that were skipped (unsupported extension).
    pub skipped: Vec<PathBuf>,
}

/// Errors that stop the whole intake (an input that does not exist).
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// An input path does not exist.
    #[error("{0}: no such file or directory")]
    Missing(PathBuf),
    /// A directory could not be listed.
    #[error("{path}: {error}")]
    Unlistable {
        /// The directory.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
}

fn rejected(id: String, title: String, message: impl Into<String>) -> IntakeDocument {
    IntakeDocument::Rejected(RejectedDocument {
        id,
        title,
        failure: Failure::new(FailureCategory::Data, message),
    })
}

fn extension(path: &Path) -> String {
    path.extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default()
}

/// The files a run reads, in order, each with its document id.
#[derive(Debug, Default)]
pub struct InputFiles {
    /// Files and the ids of their documents (paths sorted per input).
    pub files: Vec<(PathBuf, String)>,
    /// Files in directories that were skipped (unsupported extension).
    pub skipped: Vec<PathBuf>,
}

/// Lists every input's files without reading them. Directories are walked
/// recursively (hidden entries skipped, unsupported extensions listed in
/// [`InputFiles::skipped`]); files named explicitly are read whatever
/// their extension says.
///
/// # Errors
/// [`IntakeError`] when an input does not exist or a directory cannot be
/// listed.
pub fn list_inputs(inputs: &[PathBuf]) -> Result<InputFiles, IntakeError> {
    let mut listed = InputFiles::default();
    for input in inputs {
        if input.is_dir() {
            let mut found = Vec::new();
            walk(input, &mut found, &mut listed.skipped)?;
            found.sort();
            for path in found {
                let id = path
                    .strip_prefix(input)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .replace('\\', "/");
                listed.files.push((path, id));
            }
        } else if input.exists() {
            let id = input
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| input.display().to_string());
            listed.files.push((input.clone(), id));
        } else {
            return Err(IntakeError::Missing(input.clone()));
        }
    }
    Ok(listed)
}

/// Reads listed files a window at a time — each window's files read (and
/// PDFs parsed) on every core — and yields each window's documents in the
/// files' order, ids made unique over the whole run. Only one window's
/// documents are held, and of a manifest only its entries: the files a
/// manifest names by `path` are read in the windows that follow, in the
/// manifest's order.
pub struct WindowedReader {
    files: std::vec::IntoIter<(PathBuf, String)>,
    /// Work that comes before the next listed file: a manifest's entries.
    pending: VecDeque<Read>,
    window: usize,
    ids: HashSet<String>,
}

/// One piece of a window's work.
enum Work {
    /// A listed file, with its document id.
    Listed(PathBuf, String),
    /// A manifest's entry.
    Entry(Read),
}

impl Work {
    /// Reads it: a listed file's readings (a manifest's entries), or an
    /// entry's document.
    fn read(self) -> Vec<Read> {
        match self {
            Work::Listed(path, id) => read_path(&path, &id),
            Work::Entry(entry) => vec![Read::Document(entry.into_document())],
        }
    }
}

impl WindowedReader {
    /// A reader of `files`, `window` files at a time.
    pub fn new(files: Vec<(PathBuf, String)>, window: usize) -> Self {
        Self {
            files: files.into_iter(),
            pending: VecDeque::new(),
            window: window.max(1),
            ids: HashSet::new(),
        }
    }

    /// The next window's work: pending entries first, then listed files.
    fn take_window(&mut self) -> Vec<Work> {
        let mut work: Vec<Work> = Vec::new();
        while work.len() < self.window {
            match self.pending.pop_front() {
                Some(entry) => work.push(Work::Entry(entry)),
                None => match self.files.next() {
                    Some((path, id)) => work.push(Work::Listed(path, id)),
                    None => break,
                },
            }
        }
        work
    }
}

/// Does `work` on every core; the readings in `work`'s order.
fn read_all(work: Vec<Work>) -> Vec<Vec<Read>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_thread = work.len().div_ceil(threads).max(1);
    let mut parts: Vec<Vec<Work>> = Vec::new();
    let mut work = work.into_iter().peekable();
    while work.peek().is_some() {
        parts.push(work.by_ref().take(per_thread).collect());
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = parts
            .into_iter()
            .map(|part| scope.spawn(move || part.into_iter().map(Work::read).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| handle.join().unwrap_or_default())
            .collect()
    })
}

impl Iterator for WindowedReader {
    type Item = Vec<IntakeDocument>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let work = self.take_window();
            if work.is_empty() {
                return None;
            }
            let mut documents = Vec::new();
            let mut later: Vec<Read> = Vec::new();
            for readings in read_all(work) {
                for reading in readings {
                    match reading {
                        // Once a manifest names a file, what follows waits
                        // for it, so documents keep their order.
                        Read::Document(document) if later.is_empty() => {
                            documents.push(unique(document, &mut self.ids));
                        }
                        reading => later.push(reading),
                    }
                }
            }
            for reading in later.into_iter().rev() {
                self.pending.push_front(reading);
            }
            if !documents.is_empty() {
                return Some(documents);
            }
        }
    }
}

/// Reads every input at once ([`list_inputs`], then every file): for
/// small inputs and tests; a run reads with [`WindowedReader`].
///
/// # Errors
/// As [`list_inputs`]. Unreadable files are not errors: they become
/// rejected documents.
pub fn read_inputs(inputs: &[PathBuf]) -> Result<Intake, IntakeError> {
    let listed = list_inputs(inputs)?;
    Ok(Intake {
        documents: WindowedReader::new(listed.files, usize::MAX)
            .flatten()
            .collect(),
        skipped: listed.skipped,
    })
}

/// Makes the document's id unique within the batch by suffixing `#2`, `#3`…
fn unique(mut document: IntakeDocument, ids: &mut HashSet<String>) -> IntakeDocument {
    let id = document.id_mut();
    if !ids.insert(id.clone()) {
        let base = id.clone();
        let mut n = 2;
        while !ids.insert(format!("{base}#{n}")) {
            n += 1;
        }
        *id = format!("{base}#{n}");
    }
    document
}

fn walk(
    dir: &Path,
    found: &mut Vec<PathBuf>,
    skipped: &mut Vec<PathBuf>,
) -> Result<(), IntakeError> {
    let entries = std::fs::read_dir(dir).map_err(|error| IntakeError::Unlistable {
        path: dir.to_owned(),
        error,
    })?;
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            walk(&path, found, skipped)?;
        } else if SUPPORTED.contains(&extension(&path).as_str()) {
            found.push(path);
        } else {
            skipped.push(path);
        }
    }
    Ok(())
}

/// Reads one file into one or more documents (the files a manifest names
/// read at once).
pub fn read_file(path: &Path, id: &str) -> Vec<IntakeDocument> {
    read_path(path, id)
        .into_iter()
        .map(Read::into_document)
        .collect()
}

/// Reads one file: its document, or a manifest's entries (the files they
/// name not read yet).
fn read_path(path: &Path, id: &str) -> Vec<Read> {
    let title = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| id.to_owned());
    match std::fs::read(path) {
        Ok(bytes) => {
            let dir = path.parent().unwrap_or(Path::new(""));
            read_in(
                &Base::Dir(dir),
                &path.display().to_string(),
                id,
                title,
                &bytes,
            )
        }
        Err(e) => vec![Read::Document(rejected(
            id.to_owned(),
            title,
            format!("cannot read {}: {e}", path.display()),
        ))],
    }
}

/// The pipeline's reader: files dropped in the inbox ([`read_bytes`]),
/// referenced files' text ([`extract`], on a blocking thread).
#[derive(Debug, Clone, Copy, Default)]
pub struct FileReader;

#[async_trait::async_trait]
impl DocumentReader for FileReader {
    fn read(
        &self,
        path: &str,
        files: &str,
        id: &str,
        title: String,
        bytes: &[u8],
    ) -> Vec<IntakeDocument> {
        read_bytes(path, files, id, title, bytes)
    }

    async fn extract(&self, name: &str, bytes: Vec<u8>) -> Result<DocumentBody, Failure> {
        let name = name.to_owned();
        tokio::task::spawn_blocking(move || extract(&name, &bytes))
            .await
            .unwrap_or_else(|e| Err(format!("text extraction stopped: {e}")))
            .map(|(body, _)| body)
            .map_err(|reason| Failure::new(FailureCategory::Data, reason))
    }
}

/// Reads the bytes of the object at `path` into one or more documents: a
/// manifest's entries, or the file's text (its kind told by [`kind_of`]).
/// A manifest's entries may name files instead of text, all under the
/// prefix `files` (the tenant's own area): by `path` relative to it, or by
/// `key` under it. They become referenced documents, whose files the
/// processors read; an entry naming anything else fails with the reason.
pub fn read_bytes(
    path: &str,
    files: &str,
    id: &str,
    title: String,
    bytes: &[u8],
) -> Vec<IntakeDocument> {
    read_in(&Base::Bucket(files), path, id, title, bytes)
        .into_iter()
        .map(Read::into_document)
        .collect()
}

/// Reads the bytes of the file at `path` as [`read_bytes`] does, a
/// manifest's relative paths taken from `base`.
fn read_in(base: &Base<'_>, path: &str, id: &str, title: String, bytes: &[u8]) -> Vec<Read> {
    match kind_of(path, bytes) {
        FileKind::Json => from_json(id, title, bytes, base),
        FileKind::Jsonl => from_jsonl(id, bytes, base),
        _ => vec![Read::Document(from_file(id, title, path, bytes))],
    }
}

/// A file's text, its kind told by its content first and `name`'s
/// extension second, with its page count when it is a PDF; or why it has
/// none.
///
/// # Errors
/// The reason, as the document's failure says it.
pub fn extract(name: &str, bytes: &[u8]) -> Result<(DocumentBody, Option<usize>), String> {
    let body = match kind_of(name, bytes) {
        FileKind::Pdf => {
            let pages = pdf::extract_pages(bytes).map_err(|e| format!("unreadable PDF: {e}"))?;
            if !pages.is_empty() && pages.iter().all(|p| p.trim().is_empty()) {
                return Err(format!(
                    "the PDF's {} pages have no extractable text (scanned images?)",
                    pages.len()
                ));
            }
            DocumentBody::Pages(pages)
        }
        FileKind::Docx => DocumentBody::Text(formats::docx_text(bytes)?),
        FileKind::Html => DocumentBody::Text(formats::html_text(bytes)?),
        FileKind::Ole => {
            return Err("a legacy (.doc) or password-protected Office file: its text cannot be read; save it as DOCX or PDF".into());
        }
        FileKind::Json | FileKind::Jsonl | FileKind::Text => match std::str::from_utf8(bytes) {
            Ok(text) => DocumentBody::Text(text.to_owned()),
            Err(e) => {
                return Err(format!(
                    "not UTF-8 text: invalid byte at offset {}",
                    e.valid_up_to()
                ));
            }
        },
    };
    if let Some(reason) = blank(&body) {
        return Err(reason.to_owned());
    }
    let pages = match &body {
        DocumentBody::Pages(pages) => Some(pages.len()),
        DocumentBody::Text(_) => None,
    };
    Ok((body, pages))
}

/// Why a body cannot be evaluated for having no text, if it has none.
fn blank(body: &DocumentBody) -> Option<&'static str> {
    if body.is_empty() {
        Some("the document is empty")
    } else if body.is_blank() {
        Some("the document has only white space")
    } else {
        None
    }
}

/// One file read whole as one document.
fn from_file(id: &str, title: String, path: &str, bytes: &[u8]) -> IntakeDocument {
    let mut metadata = json!({ "path": path, "bytes": bytes.len() });
    match extract(path, bytes) {
        Ok((body, pages)) => {
            if let Some(pages) = pages {
                metadata["pages"] = json!(pages);
            }
            accept(id.to_owned(), title, body, metadata)
        }
        Err(reason) => rejected(id.to_owned(), title, reason),
    }
}

fn accept(id: String, title: String, body: DocumentBody, metadata: Value) -> IntakeDocument {
    if let Some(reason) = blank(&body) {
        return rejected(id, title, reason);
    }
    IntakeDocument::Accepted(DocumentSpec {
        id,
        title,
        body,
        metadata,
    })
}

/// Where a manifest's relative `path`s point.
enum Base<'a> {
    /// A manifest on disk: files beside it.
    Dir(&'a Path),
    /// A manifest in the blob store: files under this prefix.
    Bucket(&'a str),
}

/// A file's or manifest entry's reading: a document, or (a manifest on
/// disk) a file the entry names, read later with the entry's id, title
/// and metadata.
enum Read {
    Document(IntakeDocument),
    File {
        path: PathBuf,
        id: String,
        title: String,
        metadata: Value,
    },
}

impl Read {
    /// The reading as a document now (a named file read at once).
    fn into_document(self) -> IntakeDocument {
        match self {
            Read::Document(document) => document,
            Read::File {
                path,
                id,
                title,
                metadata,
            } => read_named(&path, id, title, metadata),
        }
    }
}

/// A file a manifest names, read as its entry says: its id and title,
/// and its metadata when it gives some (else the file's path and size).
fn read_named(path: &Path, id: String, title: String, metadata: Value) -> IntakeDocument {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) => return rejected(id, title, format!("cannot read {}: {e}", path.display())),
    };
    match from_file(&id, title, &path.display().to_string(), &bytes) {
        IntakeDocument::Accepted(mut spec) if !metadata.is_null() => {
            spec.metadata = metadata;
            IntakeDocument::Accepted(spec)
        }
        document => document,
    }
}

/// One entry of a manifest, read as the upload body's document
/// ([`UploadDocument`]) under the manifest's lenient rules: an entry without
/// a usable id gets `fallback_id`; one naming a `path` or `key` is a file
/// to read (see [`read_bytes`] for the blob store's rules).
fn from_entry(entry: Value, at: &str, fallback_id: String, base: &Base<'_>) -> Read {
    let document: UploadDocument = match serde_json::from_value(entry) {
        Ok(document) => document,
        Err(e) => {
            return Read::Document(rejected(
                fallback_id.clone(),
                fallback_id,
                format!("{at}: {e}"),
            ));
        }
    };
    let id = document.id_or(fallback_id);
    let title = document.title_or(&id);
    let problem = |id: String, title: String, problem: FieldProblem| {
        rejected(
            id,
            title,
            format!("{at}.{}: {}", problem.field, problem.message),
        )
    };
    let source = match document.source() {
        Ok(source) => source,
        Err(p) => return Read::Document(problem(id, title, p)),
    };
    let metadata = match document.metadata(Rules::Lenient) {
        Ok(metadata) => metadata,
        Err(p) => return Read::Document(problem(id, title, p)),
    };
    match (source, base) {
        (Source::Content, _) => {
            Read::Document(match document.into_spec(id.clone(), Rules::Lenient) {
                Ok(spec) => accept(spec.id, spec.title, spec.body, spec.metadata),
                Err(p) => problem(id, title, p),
            })
        }
        (Source::Path(path), Base::Dir(dir)) => Read::File {
            path: dir.join(path),
            id,
            title,
            metadata,
        },
        (Source::Key(_), Base::Dir(_)) => Read::Document(rejected(
            id,
            title,
            format!(
                "{at}.key: names an object in a deployment's bucket; a manifest on disk names its files by path"
            ),
        )),
        (Source::Path(path), Base::Bucket(files)) => Read::Document(referenced(
            id,
            title,
            format!("{files}{path}"),
            metadata,
            files,
            &format!("{at}.path"),
        )),
        (Source::Key(key), Base::Bucket(files)) => Read::Document(referenced(
            id,
            title,
            key.to_owned(),
            metadata,
            files,
            &format!("{at}.key"),
        )),
    }
}

/// A referenced document in the blob store: its key must be a plain key
/// under `files` (the tenant's area: never another tenant's files, nor
/// the deployment's documents or results).
fn referenced(
    id: String,
    title: String,
    key: String,
    metadata: Value,
    files: &str,
    at: &str,
) -> IntakeDocument {
    if check_blob_key(&key).is_err() || !key.starts_with(files) {
        return rejected(
            id,
            title,
            format!("{at}: {key:?} is not a file under {files} (no `..`, no leading `/`)"),
        );
    }
    let name = key.rsplit('/').next().unwrap_or(&key).to_owned();
    IntakeDocument::Referenced(ReferencedDocument {
        id,
        title,
        key,
        name,
        bytes: 0,
        metadata,
    })
}

fn from_json(id: &str, title: String, bytes: &[u8], base: &Base<'_>) -> Vec<Read> {
    let value: Value = match serde_json::from_slice(bytes) {
        Ok(value) => value,
        Err(e) => {
            return vec![Read::Document(rejected(
                id.to_owned(),
                title,
                format!("invalid JSON: {e}"),
            ))];
        }
    };
    let one = |document| vec![Read::Document(document)];
    match value.get("documents") {
        Some(Value::Array(entries)) if !entries.is_empty() => entries
            .iter()
            .enumerate()
            .map(|(n, entry)| {
                from_entry(
                    entry.clone(),
                    &format!("documents[{n}]"),
                    format!("{id}#{}", n + 1),
                    base,
                )
            })
            .collect(),
        Some(Value::Array(_)) => one(rejected(
            id.to_owned(),
            title,
            "the manifest's documents list is empty",
        )),
        Some(_) => one(rejected(id.to_owned(), title, "documents: must be a list")),
        None if value.get("content").is_some() => {
            vec![from_entry(value, "document", id.to_owned(), base)]
        }
        None => one(rejected(
            id.to_owned(),
            title,
            "a JSON file must be a document {\"content\": …} or a manifest {\"documents\": […]}",
        )),
    }
}

fn from_jsonl(id: &str, bytes: &[u8], base: &Base<'_>) -> Vec<Read> {
    let text = String::from_utf8_lossy(bytes);
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| {
            let fallback = format!("{id}#{}", n + 1);
            match serde_json::from_str::<Value>(line) {
                Ok(entry) => from_entry(entry, &format!("line {}", n + 1), fallback, base),
                Err(e) => Read::Document(rejected(
                    fallback.clone(),
                    fallback,
                    format!("line {}: invalid JSON: {e}", n + 1),
                )),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn failure(document: &IntakeDocument) -> &str {
        match document {
            IntakeDocument::Rejected(r) => {
                assert_eq!(r.failure.category, FailureCategory::Data);
                &r.failure.message
            }
            other => panic!("{} was not rejected", other.id()),
        }
    }

    #[test]
    fn unusable_files_are_rejected_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "empty.txt", b"");
        write(dir.path(), "blank.md", b"  \n\t\n");
        write(dir.path(), "latin1.txt", b"caf\xe9");
        write(dir.path(), "broken.pdf", b"%PDF-1.4 garbage");
        write(dir.path(), "bad.json", b"{ nope");
        write(dir.path(), "good.txt", b"hello");
        write(dir.path(), "image.png", b"\x89PNG");
        let intake = read_inputs(&[dir.path().to_owned()]).unwrap();
        let by_id = |id: &str| intake.documents.iter().find(|d| d.id() == id).unwrap();
        assert_eq!(intake.documents.len(), 6);
        assert_eq!(failure(by_id("empty.txt")), "the document is empty");
        assert_eq!(
            failure(by_id("blank.md")),
            "the document has only white space"
        );
        assert_eq!(
            failure(by_id("latin1.txt")),
            "not UTF-8 text: invalid byte at offset 3"
        );
        assert!(failure(by_id("broken.pdf")).starts_with("unreadable PDF: "));
        assert!(failure(by_id("bad.json")).starts_with("invalid JSON: "));
        assert!(matches!(by_id("good.txt"), IntakeDocument::Accepted(_)));
        assert_eq!(intake.skipped, [dir.path().join("image.png")]);
    }

    #[test]
    fn manifests_give_many_documents_and_name_bad_entries() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = json!({"documents": [
            {"id": "a", "title": "A", "content": "text a", "metadata": {"k": 1}},
            {"id": "b", "content": 42},
            {"title": "no id", "content": "text c"},
        ]});
        let path = write(dir.path(), "batch.json", manifest.to_string().as_bytes());
        let documents = read_file(&path, "batch.json");
        assert_eq!(documents.len(), 3);
        match &documents[0] {
            IntakeDocument::Accepted(a) => {
                assert_eq!((a.id.as_str(), a.title.as_str()), ("a", "A"));
                assert_eq!(a.metadata, json!({"k": 1}));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            failure(&documents[1]),
            "documents[1].content: must be a string"
        );
        assert!(matches!(&documents[2], IntakeDocument::Accepted(c) if c.id == "batch.json#3"));

        let path = write(
            dir.path(),
            "lines.jsonl",
            b"{\"id\":\"x\",\"content\":\"one\"}\n\nnot json\n",
        );
        let documents = read_file(&path, "lines.jsonl");
        assert_eq!(documents.len(), 2);
        assert!(failure(&documents[1]).starts_with("line 3: invalid JSON"));
    }

    #[test]
    fn duplicate_ids_are_made_unique() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(dir.path(), "same.txt", b"one");
        let intake = read_inputs(&[a.clone(), a]).unwrap();
        let ids: Vec<_> = intake.documents.iter().map(|d| d.id().to_owned()).collect();
        assert_eq!(ids, ["same.txt", "same.txt#2"]);
    }

    #[test]
    fn missing_inputs_stop_the_run() {
        let error = read_inputs(&[PathBuf::from("/definitely/not/here")]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "/definitely/not/here: no such file or directory"
        );
    }
}
