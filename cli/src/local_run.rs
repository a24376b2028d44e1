//! `docket run`: the whole pipeline on the embedded backend — submit,
//! workers that process and finalize, a progress bar, the results files and
//! a summary table.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use docket_core::EvaluatorRef;
use docket_core::FailureCategory;
use docket_core::aggregate::{DocumentStatus, ResultsDocument};
use docket_core::model::{Chunking, Job, JobId, JobOptions, JobStatus, Priority, TenantId};
use docket_core::pipeline::{
    OpenIntake, Pipeline, PipelineError, PipelineSettings, Submission, idempotent_job_id,
};
use docket_core::ports::{BackendError, Evaluators, StoreError};
use docket_core::progress::StatusReport;
use docket_core::results::{ResultsFormat, ResultsView};
use docket_intake::FileReader;
use docket_local::{LocalBackend, LocalOptions};
use docket_plugin_host::{Catalog, HostConfig, PluginHost};
use docket_webhook::{AddressPolicy, HttpWebhookSender};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::intake;

/// What `docket run` was asked to do.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// Files, directories and manifests.
    pub inputs: Vec<PathBuf>,
    /// Bundled evaluator name (`decalogo`, `name@version`) or a `.wasm` path.
    pub evaluator: String,
    /// The evaluator's configuration.
    pub config: serde_json::Value,
    /// Where `results.json` and `documents.jsonl` go.
    pub out: PathBuf,
    /// The embedded backend's state directory.
    pub state: PathBuf,
    /// Work queue.
    pub priority: Priority,
    /// Splitting.
    pub chunking: Chunking,
    /// Concurrent workers.
    pub workers: usize,
    /// Fail fast past this share of failed documents.
    pub tolerated_failure_percent: f64,
    /// Draw a progress bar.
    pub progress: bool,
    /// Documents kept in [`RunOutcome::results`] for the summary table.
    pub rows: usize,
    /// A new job even when the job of this same request exists (by
    /// default that job is resumed: see [`job_identity`]).
    pub fresh: bool,
    /// Set to stop the run (Ctrl-C): no more work is taken, what is in
    /// flight is finished, and the job is left to be resumed.
    pub stop: Arc<AtomicBool>,
    /// Finished jobs in the state directory older than this are removed
    /// when the run starts.
    pub retention: Duration,
}

/// How a run found its job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// A new job.
    New,
    /// The job of the same request, interrupted before: it went on from
    /// where it was, with `done` documents already done.
    Resumed {
        /// Documents with every outcome recorded before this run.
        done: u32,
    },
    /// The job of the same request had finished: nothing was evaluated;
    /// its results were written again.
    Finished,
}

/// How a run ended.
#[derive(Debug)]
pub enum Ran {
    /// The job finished (completed, failed or cancelled).
    Finished(Box<RunOutcome>),
    /// The run was stopped ([`RunRequest::stop`]) with the job unfinished;
    /// the same request resumes it.
    Interrupted {
        /// The job as the run left it.
        job: Box<Job>,
    },
}

/// What came out.
#[derive(Debug)]
pub struct RunOutcome {
    /// The finalized job.
    pub job: Job,
    /// Its results, with the first [`RunRequest::rows`] documents.
    pub results: ResultsDocument,
    /// Wall-clock seconds from intake to results.
    pub seconds: f64,
    /// Where those seconds went.
    pub phases: Phases,
    /// Where the results files were written.
    pub files: Vec<PathBuf>,
    /// Files skipped in directories (unsupported types).
    pub skipped: Vec<PathBuf>,
    /// A new job, resumed or finished before.
    pub start: Start,
    /// Items whose outcome this run recorded.
    pub recorded: u64,
    /// Bytes the state directory holds after the run.
    pub state_bytes: u64,
    /// How long its finished jobs are kept.
    pub retention: Duration,
}

/// Seconds spent in each phase of a run (processing and finalizing are
/// observed by polling every 20 ms). Intake and processing overlap: items
/// are processed while the rest of the batch is read in.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Phases {
    /// From the job's opening until its intake closed: reading the files,
    /// storing their text and enqueueing their items.
    pub intake: f64,
    /// Listing the inputs, starting the plugin host and opening the job.
    pub submit: f64,
    /// From the job's opening until every item had an outcome.
    pub processing: f64,
    /// Merging, summarizing and writing results.
    pub finalize: f64,
    /// Copying the results to the output directory.
    pub output: f64,
}

/// When [`drive`] saw the job's last item recorded and the job finalized.
#[derive(Debug, Clone, Copy)]
pub struct Driven {
    /// Every item had an outcome.
    pub items_done: Instant,
    /// The job was finalized.
    pub finalized: Instant,
}

/// Files read at a time (on every core) while a batch is read in.
const READ_WINDOW: usize = 256;

/// A plugin host with the bundled evaluators registered (each compiled on
/// its first use, through the cache under `state/cache`).
///
/// # Errors
/// When the state directory cannot be made or the engine cannot start.
pub fn plugin_host(state: &Path, workers: usize) -> anyhow::Result<PluginHost> {
    // The first use of the state directory: its error, not the cache's.
    std::fs::create_dir_all(state)
        .with_context(|| format!("the state directory {} cannot be used", state.display()))?;
    let host = PluginHost::new(HostConfig {
        cache_dir: Some(state.join("cache")),
        max_concurrent_instances: (workers as u32 * 2).max(8),
        ..HostConfig::default()
    })?;
    for bundled in docket_bundled::EVALUATORS {
        host.register_component(bundled.name, bundled.version, bundled.bytes);
    }
    Ok(host)
}

/// Resolves `spec`: a path to a component file, loaded with default limits
/// as `<file stem>@0.0.0-local`, or a bundled or published evaluator by
/// `name`, `name@version` or `name@range`.
///
/// # Errors
/// When the file cannot be read or loaded, or the name is unknown.
pub async fn resolve_evaluator(
    catalog: &Catalog,
    spec: &str,
) -> anyhow::Result<docket_core::EvaluatorRef> {
    let path = Path::new(spec);
    if spec.ends_with(".wasm") || path.is_file() {
        let bytes = std::fs::read(path).with_context(|| format!("reading evaluator {spec}"))?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "local".into());
        return Ok(catalog
            .host()
            .load_component(&name, "0.0.0-local", &bytes)?);
    }
    catalog
        .resolve(spec)
        .await
        .map_err(|f| anyhow::anyhow!(f.message))
}

/// The local backend in `state` and the catalog of evaluators over it
/// (bundled ones loaded in `host`, published ones in the state's registry).
///
/// # Errors
/// When the backend cannot be opened.
pub fn local_catalog(state: &Path, host: PluginHost) -> anyhow::Result<(LocalBackend, Catalog)> {
    let backend = LocalBackend::open(state, LocalOptions::default())
        .with_context(|| format!("opening the state directory {}", state.display()))?;
    let catalog = Catalog::new(host, backend.store.clone(), backend.blobs.clone());
    Ok((backend, catalog))
}

/// The pipeline over a local backend and its catalog.
///
/// # Errors
/// When the webhook sender cannot start.
pub fn local_pipeline(
    backend: &LocalBackend,
    catalog: Catalog,
    webhooks: AddressPolicy,
) -> anyhow::Result<Pipeline> {
    let webhooks = HttpWebhookSender::new(webhooks, Duration::from_secs(10))
        .context("starting the webhook sender")?;
    let evaluators = crate::faults::injected(Arc::new(catalog))?;
    Ok(Pipeline::new(
        backend.ports(evaluators, Arc::new(webhooks), Arc::new(FileReader)),
        PipelineSettings {
            receive_batch: 32,
            visibility: Duration::from_secs(120),
            ..PipelineSettings::default()
        },
    ))
}

/// Runs workers on `pipeline` until `job` is finalized: each processes work
/// items (highest priority first), finalizes jobs whose last item it
/// recorded and records dead-lettered items as failed. When `stop` is set
/// the workers finish the round they are in and stop: `None`.
///
/// # Errors
/// When a worker hits a backend error it cannot get past.
pub async fn drive(
    pipeline: &Pipeline,
    job: &JobId,
    workers: usize,
    stop: &Arc<AtomicBool>,
    mut on_progress: impl FnMut(&Job),
) -> anyhow::Result<Option<(Job, Driven)>> {
    let mut handles = Vec::with_capacity(workers);
    for _ in 0..workers.max(1) {
        let pipeline = pipeline.clone();
        let job = job.clone();
        let stop = Arc::clone(stop);
        handles.push(tokio::spawn(async move {
            let finished = || async {
                Ok::<bool, anyhow::Error>(
                    stop.load(Ordering::Relaxed) || pipeline.job(&job).await?.finished_at.is_some(),
                )
            };
            pipeline.work_until(finished, tokio::time::sleep).await
        }));
    }
    let mut items_done = None;
    let mut last_progress = Instant::now();
    loop {
        if stop.load(Ordering::Relaxed) {
            for handle in handles {
                handle.await.context("worker panicked")??;
            }
            return Ok(None);
        }
        if let Some(error) = pipeline
            .last_backend_error()
            .filter(|e| e.category != FailureCategory::Transient)
        {
            // A full disk does not pass by itself: stop, resumable.
            stop.store(true, Ordering::Relaxed);
            for handle in handles {
                if let Err(e) = handle.await.context("worker panicked")? {
                    tracing::warn!(error = %format!("{e:#}"), "worker stopped by an error too");
                }
            }
            return Err(error.into());
        }
        let current = pipeline.job(job).await?;
        if current.counters.items_pending() == 0 {
            items_done.get_or_insert_with(Instant::now);
        }
        if current.finished_at.is_some() {
            on_progress(&current);
            break;
        }
        if last_progress.elapsed() >= Duration::from_millis(100) {
            on_progress(&current);
            last_progress = Instant::now();
        }
        if let Some(finished) = handles.iter().position(|h| h.is_finished()) {
            let handle = handles.swap_remove(finished);
            handle.await.context("worker panicked")??;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let finalized = Instant::now();
    for handle in handles {
        handle.await.context("worker panicked")??;
    }
    let driven = Driven {
        items_done: items_done.unwrap_or(finalized),
        finalized,
    };
    Ok(Some((pipeline.job(job).await?, driven)))
}

/// Moves `bar` to where `report` says the job is: items done, rate,
/// failed documents and the job's error.
pub fn show_progress(bar: &ProgressBar, report: &StatusReport) {
    let chunks = &report.chunks;
    bar.set_length(u64::from(chunks.total));
    bar.set_position(u64::from(chunks.total.saturating_sub(chunks.active)));
    bar.set_message(format!(
        "{:.0} items/s · {} failed{}",
        report.items_per_second.unwrap_or(0.0),
        report.progress.failed_documents,
        report
            .error
            .as_ref()
            .map(|e| format!(" · {e}"))
            .unwrap_or_default()
    ));
}

/// A progress bar of `total` work items on stderr, or hidden.
pub fn progress_bar(enabled: bool, total: u32) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some(u64::from(total)),
        if enabled {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} items · ETA {eta} · {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// The id of the job `request` asks for over `files`: the same files
/// (each by path, size and modification time), evaluator (by digest),
/// configuration and options give the same id, so asking again resumes
/// the job, and a file changed in between makes another job.
///
/// # Errors
/// When the current directory is needed and unknown.
pub fn job_identity(
    files: &[(PathBuf, String)],
    evaluator: &EvaluatorRef,
    config: &serde_json::Value,
    options: &JobOptions,
) -> anyhow::Result<JobId> {
    use sha2::{Digest, Sha256};
    let mut digest = Sha256::new();
    let mut line = |text: &str| {
        digest.update(text.as_bytes());
        digest.update(b"\n");
    };
    line("docket run 1");
    line(&serde_json::to_string(evaluator)?);
    line(&serde_json::to_string(config)?);
    line(&serde_json::to_string(options)?);
    for (path, id) in files {
        let absolute = std::path::absolute(path)?;
        let stamp = match std::fs::metadata(path) {
            Ok(meta) => {
                let modified = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos());
                format!("{} {modified}", meta.len())
            }
            Err(error) => format!("unreadable: {error}"),
        };
        line(&format!("{}\t{id}\t{stamp}", absolute.display()));
    }
    let key = format!("run:{}", hex::encode(digest.finalize()));
    Ok(idempotent_job_id(&TenantId::local(), &key))
}

/// Cancels the job `id` names when it exists unfinished: a `--fresh` run
/// over the same request makes a new job, and the old one's queued items
/// are then skipped, not evaluated.
async fn cancel_unfinished(pipeline: &Pipeline, id: &JobId) -> anyhow::Result<()> {
    match pipeline.job(id).await {
        Ok(job) if job.finished_at.is_none() && job.status != JobStatus::Cancelled => {
            pipeline.cancel(id).await?;
            eprintln!(
                "docket: cancelled job {id}, left unfinished by an earlier run of the same inputs"
            );
            Ok(())
        }
        Ok(_) | Err(PipelineError::Store(StoreError::NotFound(_))) => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// Documents of `job` with every outcome recorded.
pub fn documents_done(job: &Job) -> u32 {
    let c = &job.counters;
    c.documents_succeeded + c.documents_failed + c.documents_skipped
}

/// Picks up `job`, which this request made before: finished, its intake
/// to read again (the submitter stopped while reading: when it was
/// cancelled since, only as far as it had counted, see [`feed`]), or its
/// items to process — and finalized now when they all were (the run
/// stopped before finalizing it).
async fn resume(pipeline: &Pipeline, job: Job) -> anyhow::Result<(Start, Option<OpenIntake>)> {
    if job.finished_at.is_some() {
        return Ok((Start::Finished, None));
    }
    let start = Start::Resumed {
        done: documents_done(&job),
    };
    if job.counters.intake_open {
        let intake = OpenIntake::reopen(pipeline, job).left_open_on_error();
        return Ok((start, Some(intake)));
    }
    if job.counters.items_pending() == 0 {
        pipeline.finalize(&job.id).await?;
    }
    Ok((start, None))
}

/// Runs a batch end to end — or what is left of it: the job of the same
/// request ([`job_identity`]) is resumed unless [`RunRequest::fresh`].
///
/// # Errors
/// When inputs are missing, the evaluator cannot be resolved, another
/// process owns the state directory, or the backend fails. A job whose
/// documents fail is not an error: it is in the outcome.
pub async fn run(request: RunRequest) -> anyhow::Result<Ran> {
    let started = Instant::now();
    let listed = intake::list_inputs(&request.inputs)?;
    if listed.files.is_empty() {
        bail!(
            "no documents found in {} (supported: {})",
            request
                .inputs
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            intake::SUPPORTED.join(", ")
        );
    }
    let (backend, catalog) = local_catalog(
        &request.state,
        plugin_host(&request.state, request.workers)?,
    )?;
    let (_ownership, _) = backend.take_ownership("docket run").await?;
    backend.expire(request.retention).await?;
    let evaluator = resolve_evaluator(&catalog, &request.evaluator).await?;
    let pipeline = local_pipeline(&backend, catalog, AddressPolicy::default())?;
    let options = JobOptions {
        priority: request.priority,
        include_evidence: true,
        tolerated_failure_percent: request.tolerated_failure_percent,
        chunking: request.chunking,
        webhook_url: None,
        fair_share: 1,
    };
    let identity = job_identity(&listed.files, &evaluator, &request.config, &options)?;
    let job_id = if request.fresh {
        cancel_unfinished(&pipeline, &identity).await?;
        JobId::generate()
    } else {
        identity
    };
    let (start, intake, cancelled) = match pipeline.job(&job_id).await {
        Ok(job) => {
            let cancelled = job.status == JobStatus::Cancelled;
            let (start, intake) = resume(&pipeline, job).await?;
            (start, intake, cancelled)
        }
        Err(PipelineError::Store(StoreError::NotFound(_))) => {
            let submission = Submission {
                job_id: Some(job_id.clone()),
                tenant: TenantId::local(),
                evaluator,
                config: request.config.clone(),
                options,
                documents: Vec::new(),
            };
            let intake = pipeline.open_intake(submission).await?;
            (Start::New, Some(intake.left_open_on_error()), false)
        }
        Err(error) => return Err(error.into()),
    };
    let opened = Instant::now();
    tracing::info!(%job_id, files = listed.files.len(), ?start, seconds = started.elapsed().as_secs_f64(), "job opened");
    let feeding = intake.map(|open| feed(open, listed.files, Arc::clone(&request.stop), cancelled));
    let driving = if start == Start::Finished {
        let now = Instant::now();
        let driven = Driven {
            items_done: now,
            finalized: now,
        };
        Ok(Some((pipeline.job(&job_id).await?, driven)))
    } else {
        let bar = progress_bar(request.progress, 0);
        let driving = drive(
            &pipeline,
            &job_id,
            request.workers,
            &request.stop,
            |current| {
                show_progress(&bar, &pipeline.status_report(current));
            },
        )
        .await;
        bar.finish_and_clear();
        driving
    };
    if driving.is_err() {
        // The intake would go on reading every file before the error shows.
        request.stop.store(true, Ordering::Relaxed);
    }
    let intake_done = match feeding {
        Some(feeding) => match (feeding.finish().await, &driving) {
            (Ok(done), _) => done,
            (Err(error), Ok(_)) => {
                return Err(
                    left_by_fault(&backend, &pipeline, &job_id, &request.state, error).await,
                );
            }
            (Err(error), Err(_)) => {
                tracing::error!(error = %format!("{error:#}"), "the intake failed too");
                None
            }
        },
        None => Some(opened),
    };
    let driving = match driving {
        Ok(driving) => driving,
        Err(error) => {
            return Err(left_by_fault(&backend, &pipeline, &job_id, &request.state, error).await);
        }
    };
    let (Some((finished, driven)), Some(intake_done)) = (driving, intake_done) else {
        backend.queue.release_claims().await?;
        return Ok(Ran::Interrupted {
            job: Box::new(pipeline.job(&job_id).await?),
        });
    };
    tracing::info!(%job_id, items = finished.counters.items_total, seconds = (intake_done - opened).as_secs_f64(), "intake closed");
    tracing::info!(job_id = %finished.id, seconds = started.elapsed().as_secs_f64(), "job finalized");
    std::fs::create_dir_all(&request.out)
        .with_context(|| format!("creating {}", request.out.display()))?;
    let results_path = request.out.join("results.json");
    let documents_path = request.out.join("documents.jsonl");
    write_results(&pipeline, &finished.id, ResultsFormat::Json, &results_path).await?;
    write_results(
        &pipeline,
        &finished.id,
        ResultsFormat::Jsonl,
        &documents_path,
    )
    .await?;
    let results = results_head(&pipeline, &finished.id, request.rows).await?;
    let phases = Phases {
        intake: (intake_done - opened).as_secs_f64(),
        submit: (opened - started).as_secs_f64(),
        processing: (driven.items_done - opened).as_secs_f64(),
        finalize: (driven.finalized - driven.items_done).as_secs_f64(),
        output: driven.finalized.elapsed().as_secs_f64(),
    };
    let metrics = pipeline.metrics();
    let recorded =
        metrics.succeeded + metrics.skipped + metrics.failed.iter().map(|(_, n)| n).sum::<u64>();
    Ok(Ran::Finished(Box::new(RunOutcome {
        job: finished,
        results,
        phases,
        seconds: started.elapsed().as_secs_f64(),
        files: vec![results_path, documents_path],
        skipped: listed.skipped,
        start,
        recorded,
        state_bytes: disk_use(&request.state),
        retention: request.retention,
    })))
}

/// Where an interrupted job stands: `job <id> is left to resume (<k> of
/// <n> documents done[ so far, not all read in])`.
pub fn left_to_resume(job: &Job) -> String {
    format!(
        "job {} is left to resume ({} of {} documents done{})",
        job.id,
        documents_done(job),
        job.counters.documents_total,
        if job.counters.intake_open {
            " so far, not all read in"
        } else {
            ""
        }
    )
}

/// The error of a run that a backend error stopped once its job existed
/// (a full disk, a failing state directory): its claims released where
/// that still works, and the job — never failed for it — left to resume.
/// Errors that are not the backend's (inputs that do not resume the job)
/// are returned as they are.
async fn left_by_fault(
    backend: &LocalBackend,
    pipeline: &Pipeline,
    job: &JobId,
    state: &Path,
    error: anyhow::Error,
) -> anyhow::Error {
    // The backend's error and its category (its sources repeat it; a
    // noted one's message names its category).
    let fault = error.chain().find_map(|cause| {
        cause
            .downcast_ref::<PipelineError>()
            .map(|e| (e.category(), e.to_string()))
            .or_else(|| {
                cause
                    .downcast_ref::<BackendError>()
                    .map(|e| (e.category, e.message.clone()))
            })
    });
    let Some((category, cause)) = fault else {
        return error;
    };
    if let Err(e) = backend.queue.release_claims().await {
        tracing::warn!(error = %e, "claims not released; the next run releases them");
    }
    let left = match pipeline.job(job).await {
        Ok(job) => left_to_resume(&job),
        Err(_) => format!("job {job} is left to resume"),
    };
    let state = state.display();
    if category == FailureCategory::Resource {
        anyhow::anyhow!(
            "the state directory {state} has no room left ({cause}); {left}: make room and run the same command again"
        )
    } else {
        anyhow::anyhow!(
            "the state directory {state} failed ({cause}); {left}: run the same command again once that is fixed"
        )
    }
}

/// Bytes of the files under `dir` (0 for what cannot be read).
fn disk_use(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => disk_use(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}

/// The summary mentions the state directory's size past this (1 GB).
const LARGE_STATE_BYTES: u64 = 1_000_000_000;

/// The intake of a run being fed: files read on a thread of their own, a
/// window at a time, while the workers already process the first windows'
/// items.
struct Feeding {
    reader: std::thread::JoinHandle<()>,
    task: tokio::task::JoinHandle<anyhow::Result<Option<Instant>>>,
}

/// Reads `files` into `open` until they are all in (the intake closed) or
/// `stop` is set (the intake left open, to be read again on resume). The
/// intake of a job cancelled while it was open is read again only past the
/// windows it had counted — the last of them enqueued again, for the
/// submitter may have died before enqueueing it — and closed there: the
/// job then completes, its items skipped, and is finalized.
fn feed(
    open: OpenIntake,
    files: Vec<(PathBuf, String)>,
    stop: Arc<AtomicBool>,
    cancelled: bool,
) -> Feeding {
    let (windows, mut received) = tokio::sync::mpsc::channel(2);
    let reader = std::thread::spawn(move || {
        for window in intake::WindowedReader::new(files, READ_WINDOW) {
            if windows.blocking_send(window).is_err() {
                break;
            }
        }
    });
    let task = tokio::spawn(async move {
        let fed = async {
            let mut open = open;
            'read: while let Some(window) = received.recv().await {
                for document in window {
                    if stop.load(Ordering::Relaxed) {
                        return Ok(None);
                    }
                    if cancelled && !open.replaying() {
                        break 'read;
                    }
                    open.add(document).await?;
                }
            }
            drop(received);
            open.close().await?;
            Ok(Some(Instant::now()))
        };
        let fed: anyhow::Result<_> = fed.await;
        if fed.is_err() {
            // The job may wait for its intake forever: stop the workers.
            stop.store(true, Ordering::Relaxed);
        }
        fed
    });
    Feeding { reader, task }
}

impl Feeding {
    /// When the intake closed, or `None` when it was stopped.
    async fn finish(self) -> anyhow::Result<Option<Instant>> {
        let closed = self.task.await.context("intake panicked")?;
        let closed = match closed {
            Err(error) => match error.downcast_ref::<PipelineError>() {
                Some(PipelineError::Invalid(why)) => {
                    bail!("cannot resume: {why}; --fresh starts a new job over these inputs")
                }
                _ => return Err(error),
            },
            Ok(closed) => closed,
        };
        self.reader
            .join()
            .map_err(|_| anyhow::anyhow!("reading the inputs panicked"))?;
        Ok(closed)
    }
}

/// Streams a finished job's results in `format` into the file at `path`.
async fn write_results(
    pipeline: &Pipeline,
    job: &JobId,
    format: ResultsFormat,
    path: &Path,
) -> anyhow::Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut file = std::io::BufWriter::new(file);
    stream_results(pipeline, job, ResultsView::whole(format), &mut file)
        .await
        .with_context(|| format!("writing {}", path.display()))
}

/// Streams a finished job's results as `view` says into `out`.
///
/// # Errors
/// Backend and write errors.
pub async fn stream_results(
    pipeline: &Pipeline,
    job: &JobId,
    view: ResultsView,
    out: &mut dyn std::io::Write,
) -> anyhow::Result<()> {
    let mut stream = pipeline.results_stream(job, view).await?;
    while let Some(chunk) = stream.next_chunk().await? {
        out.write_all(&chunk)?;
    }
    out.flush()?;
    Ok(())
}

/// The results with only the first `rows` documents (the summary table's).
async fn results_head(
    pipeline: &Pipeline,
    job: &JobId,
    rows: usize,
) -> anyhow::Result<ResultsDocument> {
    let view = ResultsView {
        limit: Some(rows as u64),
        ..ResultsView::whole(ResultsFormat::Jsonl)
    };
    let stream = pipeline.results_stream(job, view).await?;
    let header = stream.index().header.clone();
    let lines = stream.collect().await?;
    let documents = lines
        .split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .map(serde_json::from_slice)
        .collect::<Result<Vec<_>, _>>()
        .context("reading the results' documents")?;
    Ok(ResultsDocument { header, documents })
}

/// The summary table printed after a run (at most `rows` documents).
pub fn summary_table(outcome: &RunOutcome, rows: usize) -> String {
    use std::fmt::Write as _;
    let results = &outcome.results;
    let summary = &results.header.summary;
    let mut out = String::new();
    match outcome.start {
        Start::New => {}
        Start::Resumed { done } => {
            let _ = writeln!(
                out,
                "resumed job {} ({done} of {} documents already done; {} items recorded by this run)",
                results.header.job_id, results.header.document_count, outcome.recorded
            );
        }
        Start::Finished => {
            let _ = writeln!(
                out,
                "job {} had finished already: nothing evaluated again, its results written again (--fresh evaluates anew)",
                results.header.job_id
            );
        }
    }
    let counts = format!(
        "{} documents ({} completed, {} failed, {} skipped)",
        results.header.document_count,
        summary.completed_documents,
        summary.failed_documents,
        summary.skipped_documents,
    );
    if outcome.start == Start::Finished {
        let _ = writeln!(
            out,
            "job {} {} — {counts}",
            results.header.job_id, results.header.status
        );
    } else {
        // A resumed run is timed on what it did itself.
        let (done, items, unit) = match outcome.start {
            Start::Resumed { .. } => {
                let recorded = outcome.recorded as f64;
                (recorded, recorded, "items/s in this run")
            }
            _ => (
                f64::from(results.header.document_count),
                f64::from(outcome.job.counters.items_total),
                "docs/s",
            ),
        };
        let rate = done / outcome.seconds.max(1e-9);
        let _ = writeln!(
            out,
            "job {} {} in {:.2} s — {counts}, {rate:.0} {unit}",
            results.header.job_id, results.header.status, outcome.seconds,
        );
        let p = &outcome.phases;
        let _ = writeln!(
            out,
            "phases: intake {:.2} s · submit {:.2} s · processing {:.2} s ({:.0} items/s) · finalize {:.2} s · output {:.2} s",
            p.intake,
            p.submit,
            p.processing,
            items / p.processing.max(1e-9),
            p.finalize,
            p.output
        );
    }
    let _ = writeln!(
        out,
        "evaluator {}@{} ({})",
        results.header.evaluator.name,
        results.header.evaluator.version,
        results.header.evaluator.digest
    );
    let score_names = results.score_names();
    let width = results
        .documents
        .iter()
        .take(rows)
        .map(|d| d.id.chars().count())
        .max()
        .unwrap_or(8)
        .clamp(8, 48);
    let _ = write!(out, "\n{:<width$}  {:<9}", "document", "status");
    for name in &score_names {
        let _ = write!(out, "  {:>14}", name);
    }
    let _ = writeln!(
        out,
        "  {:>10}  {:>8}  {:>9}",
        "violations", "warnings", "time"
    );
    for document in results.documents.iter().take(rows) {
        let id: String = document.id.chars().take(width).collect();
        let status = match document.status {
            DocumentStatus::Completed => "completed",
            DocumentStatus::Failed => "failed",
            DocumentStatus::Skipped => "skipped",
        };
        let _ = write!(out, "{id:<width$}  {status:<9}");
        for name in &score_names {
            let cell = document
                .scores
                .get(*name)
                .map(|s| format!("{}/{}", trim_float(s.total_score), trim_float(s.max_score)))
                .unwrap_or_else(|| "—".into());
            let _ = write!(out, "  {cell:>14}");
        }
        let _ = writeln!(
            out,
            "  {:>10}  {:>8}  {:>7.2}ms",
            document.count(docket_core::Severity::Violation),
            document.count(docket_core::Severity::Warning),
            document.processing_time_seconds * 1000.0
        );
        if let Some(error) = &document.error {
            let _ = writeln!(
                out,
                "{:<width$}    └ {}: {}",
                "", error.category, error.message
            );
        }
    }
    let shown = results.documents.len().min(rows);
    if results.header.document_count as usize > shown {
        let more = results.header.document_count as usize - shown;
        let _ = writeln!(out, "… and {more} more documents");
    }
    let _ = writeln!(out);
    let mut parts: Vec<String> = summary
        .average_scores
        .iter()
        .map(|(name, value)| format!("{name} {}", trim_float(*value)))
        .collect();
    parts.push(format!("total_violations {}", summary.total_violations));
    parts.push(format!(
        "documents_with_warnings {}",
        summary.documents_with_warnings
    ));
    for (category, count) in &summary.failures_by_category {
        parts.push(format!("{category} failures {count}"));
    }
    let _ = writeln!(out, "summary: {}", parts.join(" · "));
    if let Some(error) = &results.header.error {
        let _ = writeln!(out, "job error: {error}");
    }
    let files: Vec<String> = outcome
        .files
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let _ = writeln!(out, "results: {}", files.join(", "));
    if outcome.state_bytes > LARGE_STATE_BYTES {
        let _ = writeln!(
            out,
            "the state directory holds {}: finished jobs are removed {} after they finish (--retention); `docket gc --older-than 0s` removes them now",
            crate::units::human_bytes(outcome.state_bytes),
            crate::units::age(outcome.retention)
        );
    }
    if !outcome.skipped.is_empty() {
        let _ = writeln!(
            out,
            "skipped {} files of unsupported types",
            outcome.skipped.len()
        );
    }
    out
}

fn trim_float(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}
