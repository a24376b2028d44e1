//! Reading documents from disk: directories, `.txt`/`.md` files, PDFs (text
//! per page), JSON documents and JSON/JSONL manifests in the upload body's
//! shape. A file that cannot be used becomes a rejected document with the
//! reason — it fails alone; every other document still runs.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use docket_core::model::{DocumentBody, DocumentSpec, RejectedDocument};
use docket_core::pipeline::{DocumentReader, IntakeDocument};
use docket_core::upload::{Rules, UploadDocument};
use docket_core::{Failure, FailureCategory};
use serde_json::{Value, json};

use crate::pdf;

/// Extensions read from directories.
pub const SUPPORTED: &[&str] = &["txt", "md", "markdown", "json", "jsonl", "pdf"];

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
/// documents are held.
pub struct WindowedReader {
    files: std::vec::IntoIter<(PathBuf, String)>,
    window: usize,
    ids: HashSet<String>,
}

impl WindowedReader {
    /// A reader of `files`, `window` files at a time.
    pub fn new(files: Vec<(PathBuf, String)>, window: usize) -> Self {
        Self {
            files: files.into_iter(),
            window: window.max(1),
            ids: HashSet::new(),
        }
    }
}

impl Iterator for WindowedReader {
    type Item = Vec<IntakeDocument>;

    fn next(&mut self) -> Option<Self::Item> {
        let files: Vec<(PathBuf, String)> = self.files.by_ref().take(self.window).collect();
        if files.is_empty() {
            return None;
        }
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let per_thread = files.len().div_ceil(threads).max(1);
        let read: Vec<Vec<IntakeDocument>> = std::thread::scope(|scope| {
            let parts: Vec<_> = files
                .chunks(per_thread)
                .map(|part| {
                    scope.spawn(move || {
                        part.iter()
                            .flat_map(|(path, id)| read_file(path, id))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            parts
                .into_iter()
                .map(|part| part.join().unwrap_or_default())
                .collect()
        });
        Some(
            read.into_iter()
                .flatten()
                .map(|document| unique(document, &mut self.ids))
                .collect(),
        )
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

/// Reads one file into one or more documents.
pub fn read_file(path: &Path, id: &str) -> Vec<IntakeDocument> {
    let title = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| id.to_owned());
    match std::fs::read(path) {
        Ok(bytes) => read_bytes(&path.display().to_string(), id, title, &bytes),
        Err(e) => vec![rejected(
            id.to_owned(),
            title,
            format!("cannot read {}: {e}", path.display()),
        )],
    }
}

/// The pipeline's reader of files dropped in the inbox: [`read_bytes`].
#[derive(Debug, Clone, Copy, Default)]
pub struct FileReader;

impl DocumentReader for FileReader {
    fn read(&self, path: &str, id: &str, title: String, bytes: &[u8]) -> Vec<IntakeDocument> {
        read_bytes(path, id, title, bytes)
    }
}

/// Reads the bytes of the file at `path` (a filesystem path or an object
/// key: its extension says how to read it) into one or more documents.
pub fn read_bytes(path: &str, id: &str, title: String, bytes: &[u8]) -> Vec<IntakeDocument> {
    let metadata = json!({ "path": path, "bytes": bytes.len() });
    match extension(Path::new(path)).as_str() {
        "pdf" => vec![from_pdf(id, title, bytes, metadata)],
        "json" => from_json(id, title, bytes),
        "jsonl" => from_jsonl(id, bytes),
        _ => vec![from_text(id, title, bytes, metadata)],
    }
}

fn from_text(id: &str, title: String, bytes: &[u8], metadata: Value) -> IntakeDocument {
    match std::str::from_utf8(bytes) {
        Err(e) => rejected(
            id.to_owned(),
            title,
            format!("not UTF-8 text: invalid byte at offset {}", e.valid_up_to()),
        ),
        Ok(text) => accept(
            id.to_owned(),
            title,
            DocumentBody::Text(text.to_owned()),
            metadata,
        ),
    }
}

fn accept(id: String, title: String, body: DocumentBody, metadata: Value) -> IntakeDocument {
    if body.is_blank() {
        let what = if body.is_empty() {
            "the document is empty"
        } else {
            "the document has only white space"
        };
        return rejected(id, title, what);
    }
    IntakeDocument::Accepted(DocumentSpec {
        id,
        title,
        body,
        metadata,
    })
}

fn from_pdf(id: &str, title: String, bytes: &[u8], mut metadata: Value) -> IntakeDocument {
    match pdf::extract_pages(bytes) {
        Err(reason) => rejected(id.to_owned(), title, format!("unreadable PDF: {reason}")),
        Ok(pages) => {
            metadata["pages"] = json!(pages.len());
            if pages.iter().all(|p| p.trim().is_empty()) {
                return rejected(
                    id.to_owned(),
                    title,
                    format!(
                        "the PDF's {} pages have no extractable text (scanned images?)",
                        pages.len()
                    ),
                );
            }
            accept(id.to_owned(), title, DocumentBody::Pages(pages), metadata)
        }
    }
}

/// One entry of a manifest, read as the upload body's document
/// ([`UploadDocument`]) under the manifest's lenient rules: an entry without
/// a usable id gets `fallback_id`.
fn from_entry(entry: Value, at: &str, fallback_id: String) -> IntakeDocument {
    let document: UploadDocument = match serde_json::from_value(entry) {
        Ok(document) => document,
        Err(e) => return rejected(fallback_id.clone(), fallback_id, format!("{at}: {e}")),
    };
    let id = document.id_or(fallback_id);
    let title = document.title_or(&id);
    match document.into_spec(id.clone(), Rules::Lenient) {
        Ok(spec) => accept(spec.id, spec.title, spec.body, spec.metadata),
        Err(problem) => rejected(
            id,
            title,
            format!("{at}.{}: {}", problem.field, problem.message),
        ),
    }
}

fn from_json(id: &str, title: String, bytes: &[u8]) -> Vec<IntakeDocument> {
    let value: Value = match serde_json::from_slice(bytes) {
        Ok(value) => value,
        Err(e) => return vec![rejected(id.to_owned(), title, format!("invalid JSON: {e}"))],
    };
    match value.get("documents") {
        Some(Value::Array(entries)) if !entries.is_empty() => entries
            .iter()
            .enumerate()
            .map(|(n, entry)| {
                from_entry(
                    entry.clone(),
                    &format!("documents[{n}]"),
                    format!("{id}#{}", n + 1),
                )
            })
            .collect(),
        Some(Value::Array(_)) => vec![rejected(
            id.to_owned(),
            title,
            "the manifest's documents list is empty",
        )],
        Some(_) => vec![rejected(id.to_owned(), title, "documents: must be a list")],
        None if value.get("content").is_some() => {
            vec![from_entry(value, "document", id.to_owned())]
        }
        None => vec![rejected(
            id.to_owned(),
            title,
            "a JSON file must be a document {\"content\": …} or a manifest {\"documents\": […]}",
        )],
    }
}

fn from_jsonl(id: &str, bytes: &[u8]) -> Vec<IntakeDocument> {
    let text = String::from_utf8_lossy(bytes);
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| {
            let fallback = format!("{id}#{}", n + 1);
            match serde_json::from_str::<Value>(line) {
                Ok(entry) => from_entry(entry, &format!("line {}", n + 1), fallback),
                Err(e) => rejected(
                    fallback.clone(),
                    fallback,
                    format!("line {}: invalid JSON: {e}", n + 1),
                ),
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
            IntakeDocument::Accepted(a) => panic!("{} was accepted", a.id),
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
        let by_id = |id: &str| {
            intake
                .documents
                .iter()
                .find(|d| match d {
                    IntakeDocument::Accepted(a) => a.id == id,
                    IntakeDocument::Rejected(r) => r.id == id,
                })
                .unwrap()
        };
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
        let ids: Vec<_> = intake
            .documents
            .iter()
            .map(|d| match d {
                IntakeDocument::Accepted(a) => a.id.clone(),
                IntakeDocument::Rejected(r) => r.id.clone(),
            })
            .collect();
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
