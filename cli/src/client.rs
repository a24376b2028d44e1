//! The API client behind `docket submit`, `status`, `watch`, `results`,
//! `cancel`, `retry` and `jobs`: the same routes batch clients call, against
//! `docket serve` or a deployed API (`DOCKET_URL`, `DOCKET_TOKEN`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use docket_core::chunking::full_text;
use docket_core::pipeline::IntakeDocument;
use docket_core::progress::StatusReport;
use docket_core::results::FilterText;
use docket_core::upload::{UploadDocument, UploadOptions, UploadRequest};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::intake;
use crate::local_run::{progress_bar, show_progress};

/// How often `watch` polls the status route.
const POLL: Duration = Duration::from_millis(250);

/// Times a refused upload (429, 503) is tried again after its
/// `Retry-After`.
const MAX_RETRIES: u32 = 5;

/// Upload slots asked for in one call, just before their files are put:
/// few enough that none expires (15 minutes) before its file is sent.
pub const SLOTS_PER_CALL: usize = 64;

/// Files sent at once through upload slots.
const PARALLEL_PUTS: usize = 8;

/// Where to put one file, as `POST /api/v1/batch/files` answers it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct UploadSlot {
    /// The file's name as asked.
    pub name: String,
    /// The key a batch names the file by.
    pub key: String,
    /// Where to `PUT` it.
    pub url: String,
    /// Headers the `PUT` carries as they are.
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
}

/// An error answer of the API: its status and `error` body.
#[derive(Debug)]
pub struct ApiFailure {
    /// The HTTP status.
    pub status: StatusCode,
    /// `error.code`.
    pub code: String,
    /// `error.message`.
    pub message: String,
    /// `error.details`, one per line.
    pub details: String,
    /// `Retry-After`, when given.
    pub retry_after: Option<Duration>,
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A validation error's message repeats its details: show them once.
        if self.details.is_empty() {
            write!(f, "{}: {}", self.status, self.message)
        } else {
            write!(f, "{}:{}", self.status, self.details)
        }
    }
}

impl std::error::Error for ApiFailure {}

/// A client of one API with one key.
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

/// A response body: JSON, or text for the JSONL and CSV exports.
pub enum Body {
    /// A JSON document.
    Json(Value),
    /// Anything else.
    Text(String),
}

impl Client {
    /// A client of the API at `base` (e.g. `http://127.0.0.1:8080`).
    ///
    /// # Errors
    /// When the HTTP client cannot start.
    pub fn new(base: &str, token: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(300))
            .user_agent(concat!("docket-cli/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
        })
    }

    /// One call; a non-2xx answer is an [`ApiFailure`].
    ///
    /// # Errors
    /// [`ApiFailure`], or a transport error.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, String)],
    ) -> anyhow::Result<(StatusCode, Body)> {
        let (status, body, _) = self.call_paged(method, path, body, headers).await?;
        Ok((status, body))
    }

    /// As [`Client::call`], with the `docket-next-cursor` of a results
    /// answer that has more after it.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn call_paged(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, String)],
    ) -> anyhow::Result<(StatusCode, Body, Option<String>)> {
        let url = format!("{}{path}", self.base);
        let mut request = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(&self.token);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {url}"))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .map(Duration::from_secs);
        let next_cursor = response
            .headers()
            .get("docket-next-cursor")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let json = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
        let text = response.text().await?;
        let body = if json {
            Body::Json(serde_json::from_str(&text).context("the API answered invalid JSON")?)
        } else {
            Body::Text(text)
        };
        if status.is_success() {
            return Ok((status, body, next_cursor));
        }
        let error = match &body {
            Body::Json(value) => value["error"].clone(),
            Body::Text(text) => json!({"code": "", "message": text}),
        };
        let details: String = error["details"]
            .as_array()
            .map(|details| {
                details
                    .iter()
                    .map(|d| {
                        format!(
                            "\n  {}: {}",
                            d["field"].as_str().unwrap_or(""),
                            d["message"].as_str().unwrap_or("")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Err(ApiFailure {
            status,
            code: error["code"].as_str().unwrap_or_default().to_owned(),
            message: error["message"].as_str().unwrap_or_default().to_owned(),
            details,
            retry_after,
        }
        .into())
    }

    async fn json(&self, method: Method, path: &str) -> anyhow::Result<Value> {
        match self.call(method, path, None, &[]).await? {
            (_, Body::Json(value)) => Ok(value),
            (_, Body::Text(text)) => bail!("expected JSON, got {text:?}"),
        }
    }

    /// Uploads `documents` with `options`; waits out a 429 or 503 as its
    /// `Retry-After` says, a few times. The idempotency key makes those
    /// retries safe.
    ///
    /// # Errors
    /// The API's refusal, or a transport error.
    pub async fn upload(
        &self,
        body: &UploadRequest,
        idempotency_key: &str,
    ) -> anyhow::Result<Value> {
        let headers = [("idempotency-key", idempotency_key.to_owned())];
        let body = serde_json::to_value(body).context("writing the upload body")?;
        let mut attempt = 0;
        loop {
            let result = self
                .call(Method::POST, "/api/v1/batch/upload", Some(&body), &headers)
                .await;
            match result {
                Ok((_, Body::Json(accepted))) => return Ok(accepted),
                Ok((_, Body::Text(text))) => bail!("expected JSON, got {text:?}"),
                Err(error) => {
                    let wait = error
                        .downcast_ref::<ApiFailure>()
                        .and_then(|f| f.retry_after);
                    match wait {
                        Some(wait) if attempt < MAX_RETRIES => {
                            attempt += 1;
                            eprintln!("docket: {error:#}; retrying in {} s", wait.as_secs());
                            tokio::time::sleep(wait).await;
                        }
                        _ => return Err(error),
                    }
                }
            }
        }
    }

    /// Upload slots for `files` (name, bytes), at most
    /// [`SLOTS_PER_CALL`]: where to put each and the key a batch names it
    /// by.
    ///
    /// # Errors
    /// The API's refusal, or a transport error.
    pub async fn upload_slots(&self, files: &[(String, u64)]) -> anyhow::Result<Vec<UploadSlot>> {
        let files: Vec<Value> = files
            .iter()
            .map(|(name, bytes)| json!({"name": name, "bytes": bytes}))
            .collect();
        let body = json!({ "files": files });
        match self
            .call(Method::POST, "/api/v1/batch/files", Some(&body), &[])
            .await?
        {
            (_, Body::Json(mut answer)) => Ok(serde_json::from_value(answer["files"].take())
                .context("the API answered upload slots of another shape")?),
            (_, Body::Text(text)) => bail!("expected JSON, got {text:?}"),
        }
    }

    /// Sends a file's bytes as its slot says. The slot's URL is the
    /// permission: no API key goes with it (it may be S3's).
    ///
    /// # Errors
    /// A refusal of the PUT, or a transport error.
    pub async fn put_file(&self, slot: &UploadSlot, bytes: Vec<u8>) -> anyhow::Result<()> {
        let mut request = self.http.put(&slot.url).body(bytes);
        for (name, value) in &slot.headers {
            // The client sets these from the URL and the body.
            if !name.eq_ignore_ascii_case("host") && !name.eq_ignore_ascii_case("content-length") {
                request = request.header(name, value);
            }
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("PUT {}", slot.name))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            bail!("PUT {} was refused ({status}): {}", slot.name, text.trim());
        }
        Ok(())
    }

    /// Puts every file of `files` (path, document id) through upload slots,
    /// a few at once, and returns the documents that reference them.
    ///
    /// # Errors
    /// The first file that cannot be read or put.
    pub async fn put_files(
        &self,
        files: &[(PathBuf, String)],
    ) -> anyhow::Result<Vec<UploadDocument>> {
        use futures_util::{StreamExt, TryStreamExt};
        let mut documents = Vec::with_capacity(files.len());
        for page in files.chunks(SLOTS_PER_CALL) {
            let mut asked = Vec::with_capacity(page.len());
            for (path, id) in page {
                let bytes = std::fs::metadata(path)
                    .with_context(|| format!("reading {}", path.display()))?
                    .len();
                asked.push((id.clone(), bytes));
            }
            let slots = self.upload_slots(&asked).await?;
            if slots.len() != page.len() {
                bail!("asked for {} upload slots, got {}", page.len(), slots.len());
            }
            futures_util::stream::iter(page.iter().zip(&slots))
                .map(|((path, _), slot)| async move {
                    let file = path.clone();
                    let bytes = tokio::task::spawn_blocking(move || std::fs::read(file))
                        .await?
                        .with_context(|| format!("reading {}", path.display()))?;
                    self.put_file(slot, bytes).await
                })
                .buffer_unordered(PARALLEL_PUTS)
                .try_collect::<()>()
                .await?;
            for ((path, id), slot) in page.iter().zip(slots) {
                let title = path
                    .file_name()
                    .map_or_else(|| id.clone(), |n| n.to_string_lossy().into_owned());
                documents.push(UploadDocument {
                    id: Some(Value::String(id.clone())),
                    title: Some(title),
                    key: Some(slot.key),
                    ..UploadDocument::default()
                });
            }
        }
        Ok(documents)
    }

    /// The job's status report.
    ///
    /// # Errors
    /// The API's refusal, or a transport error.
    pub async fn status(&self, job: &str) -> anyhow::Result<StatusReport> {
        let value = self
            .json(Method::GET, &format!("/api/v1/batch/status/{job}"))
            .await?;
        serde_json::from_value(value).context("reading the status report")
    }

    /// Polls the job until it is finalized, drawing a progress bar when
    /// `progress` is set; returns the last report.
    ///
    /// # Errors
    /// The API's refusal, or a transport error.
    pub async fn watch(&self, job: &str, progress: bool) -> anyhow::Result<StatusReport> {
        let bar = progress_bar(progress, 0);
        loop {
            let report = self.status(job).await?;
            show_progress(&bar, &report);
            if report.finalized {
                bar.finish_and_clear();
                return Ok(report);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The job's results in `format` (`json`, `jsonl`, `csv`), the
    /// documents `filter` lets through. An answer
    /// that ends early (a deployment's responses have a size limit) is
    /// followed by its cursor until the whole is read: JSON documents are
    /// joined into the first answer, JSONL and CSV text appended (CSV
    /// without the repeated header).
    ///
    /// # Errors
    /// The API's refusal (a job still running is an error here), or a
    /// transport error.
    pub async fn results(
        &self,
        job: &str,
        format: &str,
        evidence: bool,
        filter: &FilterText,
    ) -> anyhow::Result<String> {
        let mut base =
            format!("/api/v1/batch/results/{job}?format={format}&include_evidence={evidence}");
        for (name, value) in filter.pairs() {
            base.push_str(&format!("&{name}={}", query_value(value)));
        }
        let mut whole: Option<Body> = None;
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(cursor) => format!("{base}&cursor={cursor}"),
                None => base.clone(),
            };
            let (status, body, next) = self.call_paged(Method::GET, &path, None, &[]).await?;
            if status == StatusCode::ACCEPTED {
                bail!("job {job} is not finished yet; `docket watch {job}` waits for it");
            }
            whole = Some(match (whole, body) {
                (None, body) => body,
                (Some(Body::Json(mut all)), Body::Json(mut page)) => {
                    if let (Some(all), Some(more)) = (
                        all["documents"].as_array_mut(),
                        page["documents"].as_array_mut(),
                    ) {
                        all.append(more);
                    }
                    Body::Json(all)
                }
                (Some(Body::Text(mut all)), Body::Text(page)) => {
                    let page = match format {
                        "csv" => page
                            .split_once('\n')
                            .map_or("", |(_, rows)| rows)
                            .to_owned(),
                        _ => page,
                    };
                    all.push_str(&page);
                    Body::Text(all)
                }
                (Some(_), _) => bail!("the pages of job {job}'s results are not of one kind"),
            });
            match next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        match whole {
            Some(Body::Json(mut value)) => {
                if let Some(object) = value.as_object_mut() {
                    object.remove("next_cursor");
                }
                Ok(serde_json::to_string_pretty(&value)?)
            }
            Some(Body::Text(text)) => Ok(text),
            None => bail!("no answer"),
        }
    }

    /// Cancels the job.
    ///
    /// # Errors
    /// The API's refusal (a finished job is a conflict), or a transport error.
    pub async fn cancel(&self, job: &str) -> anyhow::Result<Value> {
        self.json(Method::DELETE, &format!("/api/v1/batch/{job}"))
            .await
    }

    /// Submits a recovery job of the job's failed documents.
    ///
    /// # Errors
    /// The API's refusal, or a transport error.
    pub async fn retry(&self, job: &str) -> anyhow::Result<Value> {
        self.json(Method::POST, &format!("/api/v1/batch/{job}/retry"))
            .await
    }

    /// One page of the tenant's jobs.
    ///
    /// # Errors
    /// The API's refusal, or a transport error.
    pub async fn jobs(
        &self,
        status: Option<&str>,
        limit: usize,
        cursor: Option<&str>,
    ) -> anyhow::Result<Value> {
        let mut path = format!("/api/v1/batch?limit={limit}");
        if let Some(status) = status {
            path.push_str(&format!("&status={status}"));
        }
        if let Some(cursor) = cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        self.json(Method::GET, &path).await
    }
}

/// The upload body of the documents read from `inputs` with `options`,
/// and the files that could not be read (reported, not sent).
///
/// # Errors
/// When an input does not exist, or nothing readable was found.
pub fn batch_body(
    inputs: &[PathBuf],
    options: UploadOptions,
) -> anyhow::Result<(UploadRequest, Vec<String>)> {
    let intake = intake::read_inputs(inputs)?;
    let mut documents = Vec::new();
    let mut unreadable = Vec::new();
    for document in intake.documents {
        match document {
            IntakeDocument::Accepted(spec) => {
                let metadata = if spec.metadata.is_null() {
                    json!({})
                } else {
                    spec.metadata
                };
                documents.push(UploadDocument::text(
                    &spec.id,
                    &spec.title,
                    full_text(&spec.body),
                    metadata,
                ));
            }
            IntakeDocument::Rejected(doc) => {
                unreadable.push(format!("{}: {}", doc.title, doc.failure.message));
            }
            IntakeDocument::Referenced(_) => unreachable!("files on disk are read, not referenced"),
        }
    }
    if documents.is_empty() {
        bail!("no readable documents in the inputs");
    }
    Ok((UploadRequest { documents, options }, unreadable))
}

/// The batch `docket submit` sends: as [`batch_body`] (text read here,
/// sent inline) while the files of `inputs` come to at most `inline_bytes`;
/// past that the files themselves are put through upload slots and the
/// batch names them by key (their text is extracted by the processors),
/// while manifests are still read here. The last value says how many files
/// were put.
///
/// # Errors
/// As [`batch_body`] and [`Client::put_files`].
pub async fn submission(
    client: &Client,
    inputs: &[PathBuf],
    options: UploadOptions,
    inline_bytes: u64,
) -> anyhow::Result<(UploadRequest, Vec<String>, usize)> {
    let listed = intake::list_inputs(inputs)?;
    let (manifests, files): (Vec<_>, Vec<_>) = listed.files.into_iter().partition(|(path, _)| {
        matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("json" | "jsonl")
        )
    });
    let mut total = 0u64;
    let mut unreadable = Vec::new();
    let mut sized = Vec::with_capacity(files.len());
    for (path, id) in files {
        let bytes = std::fs::metadata(&path)
            .with_context(|| format!("reading {}", path.display()))?
            .len();
        total += bytes;
        sized.push((path, id, bytes));
    }
    if total <= inline_bytes {
        let (body, unreadable) = batch_body(inputs, options)?;
        return Ok((body, unreadable, 0));
    }
    // An empty file has no slot (a slot's length is at least 1).
    let mut files = Vec::with_capacity(sized.len());
    for (path, id, bytes) in sized {
        if bytes == 0 {
            unreadable.push(format!("{id}: the document is empty"));
        } else {
            files.push((path, id));
        }
    }
    let mut documents = client.put_files(&files).await?;
    let put = documents.len();
    if !manifests.is_empty() {
        let paths: Vec<PathBuf> = manifests.into_iter().map(|(path, _)| path).collect();
        let (inline, problems) = batch_body(&paths, UploadOptions::default())?;
        documents.extend(inline.documents);
        unreadable.extend(problems);
    }
    Ok((UploadRequest { documents, options }, unreadable, put))
}

/// `value` percent-encoded for a query string: everything but RFC 3986's
/// unreserved characters.
fn query_value(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}
