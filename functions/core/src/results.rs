//! Stored results: every document once, as JSON lines in parts of bounded
//! size, and an index (the header, how many documents each part holds, the
//! score names). `results.json`, `documents.jsonl` and CSV are streamed from
//! them — whole, or a page of documents at a time — so no reader or writer
//! holds a whole job.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::aggregate::{DocumentResult, DocumentStatus, ResultsHeader};
use crate::model::JobId;
use crate::ports::{BackendError, BlobError, BlobStore, ChunkSource};
use crate::{FailureCategory, Severity};

/// Key of a job's results index.
pub fn index_key(job: &JobId) -> String {
    format!("results/{job}/index.json")
}

/// Key of a job's results as one whole file in `format` (written for jobs
/// whose results are past what one response may carry; see
/// [`ResultsIndex::whole_files`]).
pub fn whole_file_key(job: &JobId, format: ResultsFormat) -> String {
    let name = match format {
        ResultsFormat::Json => "results.json",
        ResultsFormat::Jsonl => "documents.jsonl",
        ResultsFormat::Csv => "results.csv",
    };
    format!("results/{job}/{name}")
}

/// Key of the checkpoint of a job's interrupted finalize.
pub fn checkpoint_key(job: &JobId) -> String {
    format!("results/{job}/finalize-checkpoint.json")
}

/// Key of part `n` of a job's documents.
pub fn part_key(job: &JobId, n: usize) -> String {
    format!("results/{job}/documents-{n:05}.jsonl")
}

/// What a job's stored results hold besides the documents' lines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultsIndex {
    /// What `results.json` opens with.
    pub header: ResultsHeader,
    /// Documents in each part, in order.
    pub parts: Vec<u32>,
    /// Every score name a document has, sorted (the CSV columns).
    pub score_names: Vec<String>,
    /// The results are also stored as one whole file per format
    /// ([`whole_file_key`]), with the job's own evidence choice: readers
    /// that take one object (a presigned URL) are sent there.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub whole_files: bool,
}

impl ResultsIndex {
    /// Documents over all parts.
    pub fn documents(&self) -> u64 {
        documents_in(&self.parts)
    }
}

/// Documents over parts of `parts` documents each.
pub fn documents_in(parts: &[u32]) -> u64 {
    parts.iter().map(|&n| u64::from(n)).sum()
}

/// Writes a job's documents into parts as they come.
pub(crate) struct PartWriter<'a> {
    blobs: &'a dyn BlobStore,
    job: &'a JobId,
    part_bytes: usize,
    buffer: Vec<u8>,
    parts: Vec<u32>,
    in_part: u32,
    /// Bytes of the parts stored.
    bytes: u64,
}

impl<'a> PartWriter<'a> {
    /// A writer of parts of about `part_bytes` each.
    pub(crate) fn new(blobs: &'a dyn BlobStore, job: &'a JobId, part_bytes: usize) -> Self {
        Self {
            blobs,
            job,
            part_bytes: part_bytes.max(1),
            buffer: Vec::new(),
            parts: Vec::new(),
            in_part: 0,
            bytes: 0,
        }
    }

    /// A writer that goes on after `parts` of `bytes` already stored (a
    /// resumed finalize).
    pub(crate) fn resume(
        blobs: &'a dyn BlobStore,
        job: &'a JobId,
        part_bytes: usize,
        parts: Vec<u32>,
        bytes: u64,
    ) -> Self {
        Self {
            parts,
            bytes,
            ..Self::new(blobs, job, part_bytes)
        }
    }

    /// Documents per part stored so far, and their bytes.
    pub(crate) fn stored(&self) -> (&[u32], u64) {
        (&self.parts, self.bytes)
    }

    /// Appends one document, storing the part when it is full. Returns
    /// whether it stored one: every document pushed so far is then stored.
    /// Parts end where their size says only, so two writers of the same
    /// documents write the same parts.
    pub(crate) async fn push(&mut self, document: &DocumentResult) -> Result<bool, BlobError> {
        // Serializing a plain struct into memory cannot fail.
        let _ = serde_json::to_writer(&mut self.buffer, document);
        self.buffer.push(b'\n');
        self.in_part += 1;
        if self.buffer.len() >= self.part_bytes {
            self.flush().await?;
            return Ok(true);
        }
        Ok(false)
    }

    async fn flush(&mut self) -> Result<(), BlobError> {
        if self.in_part == 0 {
            return Ok(());
        }
        let bytes = std::mem::take(&mut self.buffer);
        let len = bytes.len() as u64;
        self.blobs
            .put(&part_key(self.job, self.parts.len()), bytes)
            .await?;
        self.bytes += len;
        self.parts.push(self.in_part);
        self.in_part = 0;
        Ok(())
    }

    /// Stores the last part; returns the documents per part and the bytes
    /// of all parts.
    pub(crate) async fn finish(mut self) -> Result<(Vec<u32>, u64), BlobError> {
        self.flush().await?;
        Ok((self.parts, self.bytes))
    }
}

/// A results file's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResultsFormat {
    /// `results.json`: the header's fields, then `documents`.
    Json,
    /// `documents.jsonl`: one document per line.
    Jsonl,
    /// One row per document: id, title, status, time, each score,
    /// violations, warnings, error.
    Csv,
}

impl ResultsFormat {
    /// Every format.
    pub const ALL: [ResultsFormat; 3] = [
        ResultsFormat::Json,
        ResultsFormat::Jsonl,
        ResultsFormat::Csv,
    ];

    /// Its media type.
    pub fn content_type(self) -> &'static str {
        match self {
            ResultsFormat::Json => "application/json",
            ResultsFormat::Jsonl => "application/x-ndjson",
            ResultsFormat::Csv => "text/csv",
        }
    }
}

impl std::str::FromStr for ResultsFormat {
    type Err = String;

    /// `json`, `jsonl` or `csv`.
    fn from_str(name: &str) -> Result<Self, String> {
        match name {
            "json" => Ok(ResultsFormat::Json),
            "jsonl" => Ok(ResultsFormat::Jsonl),
            "csv" => Ok(ResultsFormat::Csv),
            other => Err(format!("unknown format {other:?}: use json, jsonl or csv")),
        }
    }
}

/// Which documents of a job's results a view gives: those that meet every
/// condition set (none set: every document).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResultsFilter {
    /// Documents in this state.
    pub status: Option<DocumentStatus>,
    /// The score `min_score` and `max_score` bound (`None`: the job's
    /// first score name, as in the CSV columns).
    pub score: Option<String>,
    /// Documents whose score is at least this.
    pub min_score: Option<f64>,
    /// Documents whose score is at most this.
    pub max_score: Option<f64>,
    /// Documents with a finding of this code.
    pub finding: Option<String>,
    /// Documents with a finding of this severity (of the code above, when
    /// both are set).
    pub severity: Option<Severity>,
    /// Documents whose id, title or a label holds this text, in any case.
    pub text: Option<String>,
}

impl ResultsFilter {
    /// Whether it lets every document through.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Whether `document` meets every condition; `score_names` are the
    /// job's (the default score is the first).
    pub fn matches(&self, document: &DocumentResult, score_names: &[String]) -> bool {
        if self.status.is_some_and(|status| status != document.status) {
            return false;
        }
        if self.min_score.is_some() || self.max_score.is_some() {
            let name = self.score.as_ref().or(score_names.first());
            let Some(score) = name.and_then(|name| document.scores.get(name)) else {
                return false;
            };
            let value = score.total_score;
            if self.min_score.is_some_and(|min| value < min)
                || self.max_score.is_some_and(|max| value > max)
            {
                return false;
            }
        }
        if self.finding.is_some() || self.severity.is_some() {
            let found = document.findings.iter().any(|finding| {
                self.finding
                    .as_ref()
                    .is_none_or(|code| *code == finding.code)
                    && self
                        .severity
                        .is_none_or(|severity| severity == finding.severity)
            });
            if !found {
                return false;
            }
        }
        if let Some(text) = &self.text {
            let text = text.to_lowercase();
            let holds = |value: &str| value.to_lowercase().contains(&text);
            if !(holds(&document.id)
                || holds(&document.title)
                || document.labels.iter().any(|label| holds(label)))
            {
                return false;
            }
        }
        true
    }
}

/// A results query's conditions as text: the results route's query
/// parameters, `docket results`' flags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterText {
    /// `completed`, `failed` or `skipped`.
    pub status: Option<String>,
    /// A score name.
    pub score: Option<String>,
    /// A number.
    pub min_score: Option<String>,
    /// A number.
    pub max_score: Option<String>,
    /// A finding code.
    pub finding: Option<String>,
    /// `info`, `warning` or `violation`.
    pub severity: Option<String>,
    /// Text to find in id, title or labels.
    pub q: Option<String>,
}

impl FilterText {
    /// The filter it says, or every problem as (parameter, message).
    ///
    /// # Errors
    /// A word that is none of its choices, a bound that is not a finite
    /// number, `min_score` above `max_score`.
    pub fn parse(&self) -> Result<ResultsFilter, Vec<(&'static str, String)>> {
        fn choice<T: serde::de::DeserializeOwned>(
            field: &'static str,
            value: Option<&str>,
            expected: &str,
            problems: &mut Vec<(&'static str, String)>,
        ) -> Option<T> {
            let value = value?;
            serde_json::from_value(serde_json::Value::String(value.to_owned()))
                .map_err(|_| problems.push((field, format!("{value:?} is not one of {expected}"))))
                .ok()
        }
        fn bound(
            field: &'static str,
            value: Option<&str>,
            problems: &mut Vec<(&'static str, String)>,
        ) -> Option<f64> {
            let value = value?;
            match value.trim().parse::<f64>() {
                Ok(number) if number.is_finite() => Some(number),
                _ => {
                    problems.push((field, format!("{value:?} is not a number")));
                    None
                }
            }
        }
        let words = |value: &Option<String>| value.clone().filter(|v| !v.trim().is_empty());
        let mut problems = Vec::new();
        let filter = ResultsFilter {
            status: choice(
                "status",
                self.status.as_deref(),
                "completed, failed, skipped",
                &mut problems,
            ),
            score: words(&self.score),
            min_score: bound("min_score", self.min_score.as_deref(), &mut problems),
            max_score: bound("max_score", self.max_score.as_deref(), &mut problems),
            finding: words(&self.finding),
            severity: choice(
                "severity",
                self.severity.as_deref(),
                "info, warning, violation",
                &mut problems,
            ),
            text: words(&self.q),
        };
        if let (Some(min), Some(max)) = (filter.min_score, filter.max_score)
            && min > max
        {
            problems.push(("min_score", format!("{min} is above max_score {max}")));
        }
        if problems.is_empty() {
            Ok(filter)
        } else {
            Err(problems)
        }
    }

    /// The conditions given, as query parameters.
    pub fn pairs(&self) -> Vec<(&'static str, &str)> {
        [
            ("status", &self.status),
            ("score", &self.score),
            ("min_score", &self.min_score),
            ("max_score", &self.max_score),
            ("finding", &self.finding),
            ("severity", &self.severity),
            ("q", &self.q),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.as_deref().map(|v| (name, v)))
        .collect()
    }
}

/// Which documents a [`ResultsStream`] gives, and how.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultsView {
    /// The format.
    pub format: ResultsFormat,
    /// Findings keep their evidence spans.
    pub evidence: bool,
    /// The first document (0 for the whole file).
    pub from: u64,
    /// At most this many documents (`None`: to the end). With a limit the
    /// JSON form ends with `next_cursor`.
    pub limit: Option<u64>,
    /// Only the documents it lets through; a filtered page's next cursor
    /// is known once the page is read ([`ResultsStream::next_cursor`]).
    pub filter: ResultsFilter,
}

impl ResultsView {
    /// What a job's stored whole file in `format` holds: the whole file,
    /// with the job's own evidence choice.
    pub fn whole_file(format: ResultsFormat, include_evidence: bool) -> Self {
        Self {
            evidence: include_evidence,
            ..Self::whole(format)
        }
    }

    /// The whole file in `format`, with evidence.
    pub fn whole(format: ResultsFormat) -> Self {
        Self {
            format,
            evidence: true,
            from: 0,
            limit: None,
            filter: ResultsFilter::default(),
        }
    }
}

/// One CSV cell of tenant-given text (ids, titles, names, messages). A cell
/// that starts with `=`, `+`, `-`, `@`, a tab or a carriage return would be
/// opened as a formula by spreadsheet programs: per OWASP's CSV injection
/// guidance it is prefixed with `'` and quoted. Quotes are doubled.
pub fn csv_field(value: &str) -> String {
    let formula = value.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if formula {
        format!("\"'{}\"", value.replace('"', "\"\""))
    } else if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

fn csv_header(names: &[String]) -> String {
    let mut out = String::from("id,title,status,processing_time_seconds");
    for name in names {
        let name = csv_field(name);
        out.push_str(&format!(",{name}_score,{name}_max"));
    }
    out.push_str(",violations,warnings,error_category,error_message\n");
    out
}

fn csv_row(names: &[String], d: &DocumentResult, out: &mut Vec<u8>) {
    let status = serde_json::to_value(d.status).ok();
    let status = status.as_ref().and_then(|s| s.as_str()).unwrap_or("");
    let mut row = format!(
        "{},{},{},{}",
        csv_field(&d.id),
        csv_field(&d.title),
        status,
        d.processing_time_seconds
    );
    for name in names {
        match d.scores.get(name) {
            Some(s) => row.push_str(&format!(",{},{}", s.total_score, s.max_score)),
            None => row.push_str(",,"),
        }
    }
    row.push_str(&format!(
        ",{},{},{},{}\n",
        d.count(Severity::Violation),
        d.count(Severity::Warning),
        d.error.as_ref().map(|e| e.category.as_str()).unwrap_or(""),
        csv_field(d.error.as_ref().map(|e| e.message.as_str()).unwrap_or(""))
    ));
    out.extend_from_slice(row.as_bytes());
}

fn unreadable(job: &JobId, what: &str, error: impl std::fmt::Display) -> BlobError {
    BlobError::Backend(BackendError::new(
        FailureCategory::Permanent,
        format!("stored results of {job} are not readable ({what}): {error}"),
    ))
}

/// Reads a job's stored index.
///
/// # Errors
/// [`BlobError::NotFound`] before the job is finalized; a stored index that
/// does not parse is a `Permanent` backend error.
pub async fn read_index(blobs: &dyn BlobStore, job: &JobId) -> Result<ResultsIndex, BlobError> {
    let bytes = blobs.get(&index_key(job)).await?;
    serde_json::from_slice(&bytes).map_err(|e| unreadable(job, "index", e))
}

/// A results file produced a part at a time: at most one part's documents
/// are held (parts are a few MiB).
pub struct ResultsStream {
    blobs: Arc<dyn BlobStore>,
    job: JobId,
    index: ResultsIndex,
    view: ResultsView,
    /// The next part to read, and the number of its first document.
    part: usize,
    part_start: u64,
    /// Documents given so far.
    given: u64,
    /// The number of the first document not yet given or passed over.
    next: u64,
    started: bool,
    ended: bool,
    /// Most bytes to give (see [`ResultsStream::within_bytes`]), the bytes
    /// given so far, and whether the budget ended the stream early.
    budget: Option<u64>,
    written: u64,
    cut: bool,
}

impl ResultsStream {
    /// The stream of `view` over a job's stored results.
    pub fn new(
        blobs: Arc<dyn BlobStore>,
        job: JobId,
        index: ResultsIndex,
        view: ResultsView,
    ) -> Self {
        let next = view.from;
        Self {
            next,
            blobs,
            job,
            index,
            view,
            part: 0,
            part_start: 0,
            given: 0,
            started: false,
            ended: false,
            budget: None,
            written: 0,
            cut: false,
        }
    }

    /// The same stream, ended before the first document that would take it
    /// past `budget` bytes (its opening and closing included; the first
    /// document is given whatever its size). A stream ended so has a
    /// [`next_cursor`](Self::next_cursor) where it stopped — in JSON also
    /// `next_cursor`, as a page has: for responses of bounded size (a
    /// Lambda response is at most 6 MB).
    #[must_use]
    pub fn within_bytes(mut self, budget: u64) -> Self {
        self.budget = Some(budget);
        self
    }

    /// The stream of `view` over a finished job's stored results, its
    /// index read first.
    ///
    /// # Errors
    /// As [`read_index`].
    pub async fn open(
        blobs: Arc<dyn BlobStore>,
        job: &JobId,
        view: ResultsView,
    ) -> Result<Self, BlobError> {
        let index = read_index(&*blobs, job).await?;
        Ok(Self::new(blobs, job.clone(), index, view))
    }

    /// The job's results index.
    pub fn index(&self) -> &ResultsIndex {
        &self.index
    }

    /// The cursor of the page after this one, when the view has a limit and
    /// documents remain. A filtered page's is known once it is read (`None`
    /// before): the document after the last one it gave, unless the page
    /// read to the end.
    pub fn next_cursor(&self) -> Option<u64> {
        if self.cut {
            return Some(self.next);
        }
        let limit = self.view.limit?;
        if !self.view.filter.is_empty() {
            return (self.given >= limit && self.next < self.index.documents())
                .then_some(self.next);
        }
        let next = self.view.from.saturating_add(limit);
        (next < self.index.documents()).then_some(next)
    }

    fn remaining(&self) -> u64 {
        if self.cut {
            return 0;
        }
        self.view.limit.map_or(u64::MAX, |l| l - self.given.min(l))
    }

    /// The next bytes of the file; `None` at its end.
    ///
    /// # Errors
    /// Blob errors reading a part; a part that does not parse.
    pub async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, BlobError> {
        if self.ended {
            return Ok(None);
        }
        if !self.started {
            self.started = true;
            let opening = self.opening();
            self.written = opening.len() as u64;
            return Ok(Some(opening));
        }
        // Parts before the view's first document are skipped unread.
        while self.part < self.index.parts.len()
            && self.part_start + u64::from(self.index.parts[self.part]) <= self.view.from
        {
            self.part_start += u64::from(self.index.parts[self.part]);
            self.part += 1;
        }
        if self.part >= self.index.parts.len() || self.remaining() == 0 {
            self.ended = true;
            return Ok(Some(self.closing()));
        }
        let bytes = self.blobs.get(&part_key(&self.job, self.part)).await?;
        let first = self.part_start;
        self.part_start += u64::from(self.index.parts[self.part]);
        self.part += 1;
        let mut out = Vec::with_capacity(bytes.len() + 64);
        let lines = bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty());
        for (n, line) in lines.enumerate() {
            let number = first + n as u64;
            if number < self.view.from {
                continue;
            }
            if self.remaining() == 0 {
                break;
            }
            let parsed = self.parsed(line)?;
            if let Some(document) = &parsed
                && !self.view.filter.matches(document, &self.index.score_names)
            {
                self.next = number + 1;
                continue;
            }
            let before = out.len();
            self.document(line, parsed, &mut out);
            let size = (out.len() - before) as u64;
            let closing = 64;
            if let Some(budget) = self.budget
                && self.given > 0
                && self.written + size + closing > budget
            {
                out.truncate(before);
                self.cut = true;
                break;
            }
            self.written += size;
            self.given += 1;
            self.next = number + 1;
        }
        Ok(Some(out))
    }

    fn opening(&self) -> Vec<u8> {
        match self.view.format {
            ResultsFormat::Json => {
                // The header's object, left open for the documents.
                let mut header = serde_json::to_vec(&self.index.header).unwrap_or_default();
                header.pop();
                header.extend_from_slice(br#","documents":["#);
                header
            }
            ResultsFormat::Jsonl => Vec::new(),
            ResultsFormat::Csv => csv_header(&self.index.score_names).into_bytes(),
        }
    }

    fn closing(&self) -> Vec<u8> {
        match self.view.format {
            ResultsFormat::Json if self.view.limit.is_some() || self.cut => {
                let cursor = serde_json::to_string(&self.next_cursor().map(|c| c.to_string()))
                    .unwrap_or_default();
                format!(r#"],"next_cursor":{cursor}}}"#).into_bytes()
            }
            ResultsFormat::Json => b"]}".to_vec(),
            ResultsFormat::Jsonl | ResultsFormat::Csv => Vec::new(),
        }
    }

    /// The stored line as a document, when the view needs it read (a
    /// filter, no evidence, CSV); `None` when the line is given verbatim.
    fn parsed(&self, line: &[u8]) -> Result<Option<DocumentResult>, BlobError> {
        let verbatim = self.view.evidence
            && self.view.format != ResultsFormat::Csv
            && self.view.filter.is_empty();
        if verbatim {
            return Ok(None);
        }
        let mut document: DocumentResult =
            serde_json::from_slice(line).map_err(|e| unreadable(&self.job, "document", e))?;
        if !self.view.evidence {
            for finding in &mut document.findings {
                finding.evidence = None;
            }
        }
        Ok(Some(document))
    }

    /// Writes one document: `parsed` when the view read it, else `line` as
    /// stored.
    fn document(&self, line: &[u8], parsed: Option<DocumentResult>, out: &mut Vec<u8>) {
        match self.view.format {
            ResultsFormat::Json => {
                if self.given > 0 {
                    out.push(b',');
                }
                write_line(line, parsed.as_ref(), out);
            }
            ResultsFormat::Jsonl => {
                write_line(line, parsed.as_ref(), out);
                out.push(b'\n');
            }
            ResultsFormat::Csv => {
                if let Some(document) = &parsed {
                    csv_row(&self.index.score_names, document, out);
                }
            }
        }
    }

    /// The whole stream, in memory: for tests and small jobs.
    ///
    /// # Errors
    /// As [`ResultsStream::next_chunk`].
    pub async fn collect(mut self) -> Result<Vec<u8>, BlobError> {
        let mut all = Vec::new();
        while let Some(chunk) = self.next_chunk().await? {
            all.extend_from_slice(&chunk);
        }
        Ok(all)
    }
}

fn write_line(line: &[u8], parsed: Option<&DocumentResult>, out: &mut Vec<u8>) {
    match parsed {
        Some(document) => {
            let _ = serde_json::to_writer(&mut *out, document);
        }
        None => out.extend_from_slice(line),
    }
}

#[async_trait::async_trait]
impl ChunkSource for ResultsStream {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, BlobError> {
        ResultsStream::next_chunk(self).await
    }
}

#[cfg(test)]
mod tests {
    use super::csv_field;

    #[test]
    fn csv_cells_that_would_be_formulas_are_escaped() {
        assert_eq!(
            csv_field("=HYPERLINK(\"http://x\")"),
            "\"'=HYPERLINK(\"\"http://x\"\")\""
        );
        assert_eq!(csv_field("+1"), "\"'+1\"");
        assert_eq!(csv_field("-2+3"), "\"'-2+3\"");
        assert_eq!(csv_field("@SUM(A1)"), "\"'@SUM(A1)\"");
        assert_eq!(csv_field("\tx"), "\"'\tx\"");
        assert_eq!(csv_field("\rx"), "\"'\rx\"");
        assert_eq!(csv_field("plan a"), "plan a");
        assert_eq!(csv_field("a, b"), "\"a, b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
