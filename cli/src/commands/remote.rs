//! The client commands of the HTTP API (`docket serve` or a deployment):
//! `submit`, `status`, `watch`, `results`, `cancel`, `retry` and `jobs`.
//!
//! Each prints what the API answered on stdout; `watch` and `submit --wait`
//! exit 0 when the job completed and 1 otherwise. `status`, `results`,
//! `cancel` and `jobs` also act on a state directory itself
//! (`--state DIR`, no server), printing what the API would answer.

use std::path::PathBuf;
use std::process::ExitCode;

use docket_cli::client::{self, Client};
use docket_cli::local_jobs::LocalJobs;
use docket_core::model::JobStatus;
use docket_core::progress::StatusReport;
use docket_core::upload::UploadOptions;

use super::block_on;

/// Where the API is and the key to call it with.
#[derive(clap::Args)]
struct ApiArgs {
    /// The API's base URL.
    #[arg(long, env = "DOCKET_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// An API key (docket keys create).
    #[arg(
        long,
        env = "DOCKET_TOKEN",
        hide_env_values = true,
        required_unless_present = "state"
    )]
    token: Option<String>,
    /// Act on this state directory of the embedded backend itself, with no
    /// server (the jobs `docket run` left there); the URL and key are then
    /// not used.
    #[arg(long)]
    state: Option<PathBuf>,
    /// With --state: whose jobs (`local` is the tenant of `docket run`).
    #[arg(long, default_value = "local", requires = "state")]
    tenant: String,
}

#[derive(clap::Args)]
pub struct SubmitArgs {
    /// Directories, files (.txt, .md, .pdf, .json) or manifests (.json with
    /// "documents", .jsonl).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Evaluator: name or name@version (the server's default when absent).
    #[arg(long, short)]
    evaluator: Option<String>,
    /// high, normal or low.
    #[arg(long)]
    priority: Option<String>,
    /// URL called (signed) when the job finishes.
    #[arg(long)]
    webhook_url: Option<String>,
    /// Evaluator configuration: a JSON object, or a file holding one.
    #[arg(long)]
    config: Option<String>,
    /// Wait for the job with a progress bar, then print its summary.
    #[arg(long)]
    wait: bool,
    /// Past this many MiB of files, put the files themselves through
    /// upload slots (presigned S3 PUTs on AWS) and send references, not
    /// text: a request body has a limit (10 MB on AWS).
    #[arg(long, default_value_t = 4, value_name = "MIB")]
    inline_mib: u64,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(clap::Args)]
pub struct JobArgs {
    /// The job id.
    job: String,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(clap::Args)]
pub struct ResultsArgs {
    /// The job id.
    job: String,
    /// json, jsonl or csv.
    #[arg(long, default_value = "json")]
    format: String,
    /// Leave out evidence spans.
    #[arg(long)]
    no_evidence: bool,
    /// Only documents in this state: completed, failed or skipped.
    #[arg(long)]
    status: Option<String>,
    /// The score --min-score and --max-score bound (default: the job's
    /// first).
    #[arg(long)]
    score: Option<String>,
    /// Only documents whose score is at least this.
    #[arg(long, allow_hyphen_values = true)]
    min_score: Option<String>,
    /// Only documents whose score is at most this.
    #[arg(long, allow_hyphen_values = true)]
    max_score: Option<String>,
    /// Only documents with a finding of this code.
    #[arg(long)]
    finding: Option<String>,
    /// Only documents with a finding of this severity: info, warning or
    /// violation.
    #[arg(long)]
    severity: Option<String>,
    /// Only documents whose id, title or a label holds this text (any
    /// case).
    #[arg(long)]
    text: Option<String>,
    #[command(flatten)]
    api: ApiArgs,
}

impl ResultsArgs {
    /// The documents asked for.
    fn filter(&self) -> docket_core::results::FilterText {
        docket_core::results::FilterText {
            status: self.status.clone(),
            score: self.score.clone(),
            min_score: self.min_score.clone(),
            max_score: self.max_score.clone(),
            finding: self.finding.clone(),
            severity: self.severity.clone(),
            q: self.text.clone(),
        }
    }
}

#[derive(clap::Args)]
pub struct JobsArgs {
    /// Only jobs in this status.
    #[arg(long)]
    status: Option<String>,
    /// At most this many (1 to 100).
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// next_cursor printed by the previous page.
    #[arg(long)]
    cursor: Option<String>,
    #[command(flatten)]
    api: ApiArgs,
}

/// `docket submit`: uploads the documents as one batch and prints the job
/// id; with `--wait`, follows the job and exits by how it finished.
pub fn submit(args: SubmitArgs) -> anyhow::Result<ExitCode> {
    remote(&args.api, |client| async move {
        let options = UploadOptions {
            evaluator: args.evaluator.clone(),
            priority: args.priority.clone(),
            webhook_url: args.webhook_url.clone(),
            config: match &args.config {
                Some(config) => Some(super::parse_config(Some(config))?),
                None => None,
            },
            ..UploadOptions::default()
        };
        let inline_bytes = args.inline_mib.saturating_mul(1024 * 1024);
        let (body, unreadable, put) =
            client::submission(&client, &args.inputs, options, inline_bytes).await?;
        for problem in &unreadable {
            eprintln!("docket: not sent: {problem}");
        }
        if put > 0 {
            eprintln!("docket: put {put} files through upload slots");
        }
        let key = format!("submit-{}", docket_core::JobId::generate());
        let accepted = client.upload(&body, &key).await?;
        let job = accepted["job_id"].as_str().unwrap_or_default().to_owned();
        println!("{job}");
        eprintln!(
            "docket: job {job} {} with {} documents",
            accepted["status"].as_str().unwrap_or_default(),
            accepted["document_count"]
        );
        if !args.wait {
            return Ok(ExitCode::SUCCESS);
        }
        let report = client.watch(&job, true).await?;
        let progress = &report.progress;
        eprintln!(
            "docket: job {job} {}: {} of {} documents completed, {} failed",
            report.status,
            progress.completed_documents,
            progress.total_documents,
            progress.failed_documents
        );
        Ok(finished_code(&report))
    })
}

/// `docket status`: prints the job's status report.
pub fn status(args: JobArgs) -> anyhow::Result<ExitCode> {
    if let Some(jobs) = local(&args.api)? {
        return print_json(&block_on(jobs.status(&args.job))?);
    }
    remote(&args.api, |client| async move {
        print_json(&client.status(&args.job).await?)
    })
}

/// `docket watch`: follows the job with a progress bar, prints its final
/// report and exits by how it finished.
pub fn watch(args: JobArgs) -> anyhow::Result<ExitCode> {
    remote(&args.api, |client| async move {
        let report = client.watch(&args.job, true).await?;
        print_json(&report)?;
        Ok(finished_code(&report))
    })
}

/// `docket results`: prints a finished job's results in the asked format.
pub fn results(args: ResultsArgs) -> anyhow::Result<ExitCode> {
    let filter = args.filter();
    if let Some(jobs) = local(&args.api)? {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        block_on(jobs.results(
            &args.job,
            &args.format,
            !args.no_evidence,
            &filter,
            &mut out,
        ))?;
        return Ok(ExitCode::SUCCESS);
    }
    remote(&args.api, |client| async move {
        let text = client
            .results(&args.job, &args.format, !args.no_evidence, &filter)
            .await?;
        println!("{}", text.trim_end());
        Ok(ExitCode::SUCCESS)
    })
}

/// `docket cancel`: cancels the job and prints what the API answered.
pub fn cancel(args: JobArgs) -> anyhow::Result<ExitCode> {
    if let Some(jobs) = local(&args.api)? {
        return print_json(&block_on(jobs.cancel(&args.job))?);
    }
    remote(&args.api, |client| async move {
        print_json(&client.cancel(&args.job).await?)
    })
}

/// `docket retry`: submits a recovery job of the job's failed documents and
/// prints what the API answered.
pub fn retry(args: JobArgs) -> anyhow::Result<ExitCode> {
    remote(&args.api, |client| async move {
        print_json(&client.retry(&args.job).await?)
    })
}

/// `docket jobs`: prints one page of the caller's jobs, newest first.
pub fn jobs(args: JobsArgs) -> anyhow::Result<ExitCode> {
    if let Some(jobs) = local(&args.api)? {
        let page = block_on(jobs.jobs(args.status.as_deref(), args.limit, args.cursor.as_deref()))?;
        print_jobs(&page);
        return Ok(ExitCode::SUCCESS);
    }
    remote(&args.api, |client| async move {
        let page = client
            .jobs(args.status.as_deref(), args.limit, args.cursor.as_deref())
            .await?;
        print_jobs(&page);
        Ok(ExitCode::SUCCESS)
    })
}

/// Runs `command` with a client of the API on a small runtime.
fn remote<F, Fut>(api: &ApiArgs, command: F) -> anyhow::Result<ExitCode>
where
    F: FnOnce(Client) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<ExitCode>>,
{
    if api.state.is_some() {
        anyhow::bail!(
            "this command needs a server: --state is for status, results, cancel and jobs"
        );
    }
    let token = api.token.as_deref().unwrap_or_default();
    let client = Client::new(&api.url, token)?;
    block_on(command(client))
}

/// The jobs of the state directory `--state` names, if it names one.
fn local(api: &ApiArgs) -> anyhow::Result<Option<LocalJobs>> {
    api.state
        .as_deref()
        .map(|state| LocalJobs::open(state, &api.tenant))
        .transpose()
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<ExitCode> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(ExitCode::SUCCESS)
}

/// 0 for a completed job, 1 for a failed or cancelled one.
fn finished_code(report: &StatusReport) -> ExitCode {
    if report.status == JobStatus::Completed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// One line per job, then the cursor of the next page.
fn print_jobs(page: &serde_json::Value) {
    println!(
        "{:<44} {:<10} {:>6} {:>7}  {:<20}  evaluator",
        "job", "status", "docs", "done %", "created"
    );
    for job in page["jobs"].as_array().into_iter().flatten() {
        let created = job["created_at"].as_str().unwrap_or_default();
        println!(
            "{:<44} {:<10} {:>6} {:>7}  {:<20}  {}@{}",
            job["job_id"].as_str().unwrap_or_default(),
            job["status"].as_str().unwrap_or_default(),
            job["document_count"].as_u64().unwrap_or_default(),
            job["progress"]["percent_complete"]
                .as_f64()
                .unwrap_or_default(),
            created.get(..19).unwrap_or(created),
            job["evaluator"]["name"].as_str().unwrap_or_default(),
            job["evaluator"]["version"].as_str().unwrap_or_default(),
        );
    }
    if let Some(cursor) = page["next_cursor"].as_str() {
        println!("next page: --cursor {cursor}");
    }
}
