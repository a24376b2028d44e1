//! `docket run`: evaluate a batch of documents on the embedded backend and
//! print a summary table; exits 1 when the job failed. Asked again, the
//! same run resumes its job; the first Ctrl-C stops it resumable (exit
//! 130), a second one exits at once.

use std::path::PathBuf;
use std::process::ExitCode;

use docket_cli::local_run::{self, Ran, RunRequest};
use docket_core::model::{Chunking, JobStatus, Priority};

#[derive(clap::Args)]
pub struct RunArgs {
    /// Directories, files (.txt, .md, .pdf, .json documents) or manifests
    /// (.json with "documents", .jsonl).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Evaluator: a bundled name (decalogo, wordstats), name@version, or a
    /// path to a .wasm component.
    #[arg(long, short, default_value = "decalogo")]
    evaluator: String,
    /// Evaluator configuration: inline JSON or a path to a JSON file.
    #[arg(long)]
    config: Option<String>,
    /// Directory for results.json and documents.jsonl.
    #[arg(long, default_value = "docket-out")]
    out: PathBuf,
    /// State directory of the embedded backend.
    #[arg(long, env = "DOCKET_STATE", default_value = ".docket")]
    state: PathBuf,
    /// Work queue priority: high, normal or low.
    #[arg(long, default_value = "normal")]
    priority: Priority,
    /// Pages per work item for PDFs (0 keeps them whole).
    #[arg(long, default_value_t = 25)]
    chunk_pages: u32,
    /// KiB per work item for long texts, cut on paragraphs (0 keeps them whole).
    #[arg(long, default_value_t = 256)]
    chunk_kib: u32,
    /// Concurrent workers (default: two per core, so one evaluates while
    /// the other records).
    #[arg(long)]
    workers: Option<usize>,
    /// Fail the job fast once more than this percentage of documents failed.
    #[arg(long, default_value_t = 100.0)]
    tolerated_failure_percent: f64,
    /// Rows of the summary table.
    #[arg(long, default_value_t = 25)]
    rows: usize,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
    /// Start a new job even if this same run (the same files, evaluator,
    /// configuration and options) was run before; by default its job is
    /// resumed, or its results written again when it had finished.
    #[arg(long)]
    fresh: bool,
    /// Finished jobs in the state directory older than this are removed
    /// when the run starts (`docket gc` removes them at any time).
    #[arg(long, env = "DOCKET_RETENTION", default_value = "30d", value_parser = docket_cli::units::parse_age)]
    retention: std::time::Duration,
}

/// Runs the batch to its end on a runtime with a thread per worker, prints
/// the summary table, and exits 1 when the job failed.
pub fn execute(args: RunArgs) -> anyhow::Result<ExitCode> {
    let workers = super::workers(args.workers);
    let request = RunRequest {
        inputs: args.inputs,
        evaluator: args.evaluator,
        config: super::parse_config(args.config.as_deref())?,
        out: args.out,
        state: args.state,
        priority: args.priority,
        chunking: Chunking {
            pages: (args.chunk_pages > 0).then_some(args.chunk_pages),
            text_kib: (args.chunk_kib > 0).then_some(args.chunk_kib),
        },
        workers,
        tolerated_failure_percent: args.tolerated_failure_percent,
        progress: !args.quiet,
        rows: args.rows,
        fresh: args.fresh,
        retention: args.retention,
        stop: super::stop_on_signals()?,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers + 1)
        .enable_all()
        .build()?;
    let outcome = match runtime.block_on(local_run::run(request))? {
        Ran::Finished(outcome) => outcome,
        Ran::Interrupted { job } => {
            eprintln!(
                "docket: stopped; {}: run the same command again to go on, or add --fresh to start over",
                local_run::left_to_resume(&job)
            );
            return Ok(ExitCode::from(super::INTERRUPTED));
        }
    };
    print!("{}", local_run::summary_table(&outcome, args.rows));
    Ok(if outcome.job.status == JobStatus::Failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
