//! `docket`: serverless batch document evaluation, on one machine.
//!
//! ```text
//! docket run examples/plans --evaluator decalogo
//! ```
//!
//! runs a batch through the same pipeline docket runs on AWS — work items
//! queued, evaluated by WebAssembly components under hard limits, accounted
//! exactly once, finalized — on the embedded backend (SQLite + files in
//! `.docket/`), and writes `results.json` and `documents.jsonl`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use docket_cli::local_run::{self, RunRequest};
use docket_core::model::{Chunking, JobStatus, Priority};

#[derive(Parser)]
#[command(
    name = "docket",
    version,
    about = "Serverless batch document evaluation"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Evaluate a batch of documents on the embedded backend.
    Run(RunArgs),
    /// Serve the HTTP API on a local address, with processors in process.
    Serve(ServeArgs),
    /// Manage API keys of the embedded backend.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key and print its token (shown once; only a hash is kept).
    Create {
        /// The tenant the key acts for.
        #[arg(long)]
        tenant: String,
        /// standard (50 documents per batch) or premium.
        #[arg(long, default_value = "standard")]
        tier: docket_core::auth::Tier,
        /// State directory of the embedded backend.
        #[arg(long, env = "DOCKET_STATE", default_value = ".docket")]
        state: PathBuf,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: std::net::SocketAddr,
    /// State directory of the embedded backend.
    #[arg(long, env = "DOCKET_STATE", default_value = ".docket")]
    state: PathBuf,
    /// Processors (default: two per core).
    #[arg(long)]
    workers: Option<usize>,
    /// Most documents in one batch.
    #[arg(long, default_value_t = 1000)]
    max_documents: usize,
    /// Largest request body in MiB.
    #[arg(long, default_value_t = 64)]
    max_body_mib: usize,
    /// Evaluator for batches that name none.
    #[arg(long, default_value = "decalogo")]
    evaluator: String,
    /// New batches are refused (503) while this many work items wait.
    #[arg(long, default_value_t = 200_000)]
    max_queue_depth: u64,
    /// Let webhooks reach loopback or private addresses (refused by
    /// default); repeat for both.
    #[arg(long = "webhook-allow", value_enum)]
    webhook_allow: Vec<WebhookAllow>,
    /// Delay after a first failed webhook attempt, in milliseconds (doubled
    /// after each next one).
    #[arg(long, default_value_t = 5000)]
    webhook_backoff_ms: u64,
}

/// Special addresses webhooks may be allowed to reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum WebhookAllow {
    /// 127.0.0.0/8 and ::1.
    Loopback,
    /// 10/8, 172.16/12, 192.168/16, 100.64/10 and fc00::/7.
    Private,
}

#[derive(clap::Args)]
struct RunArgs {
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
}

fn parse_config(config: Option<&str>) -> anyhow::Result<serde_json::Value> {
    let Some(config) = config else {
        return Ok(serde_json::json!({}));
    };
    let text = if config.trim_start().starts_with('{') {
        config.to_owned()
    } else {
        std::fs::read_to_string(config).map_err(|e| anyhow::anyhow!("--config {config}: {e}"))?
    };
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("--config is not valid JSON: {e}"))?;
    if !value.is_object() {
        anyhow::bail!("--config must be a JSON object");
    }
    Ok(value)
}

/// Workers asked for, or two per core.
fn workers(asked: Option<usize>) -> usize {
    asked
        .unwrap_or_else(|| 2 * std::thread::available_parallelism().map_or(2, |n| n.get()))
        .max(1)
}

fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let workers = workers(args.workers);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers + 1)
        .enable_all()
        .build()?;
    runtime.block_on(docket_cli::serve::serve(docket_cli::serve::ServeRequest {
        addr: args.addr,
        state: args.state,
        workers,
        max_documents: args.max_documents,
        max_body_bytes: args.max_body_mib << 20,
        default_evaluator: args.evaluator,
        max_queue_depth: Some(args.max_queue_depth),
        webhooks: docket_webhook::AddressPolicy {
            allow_loopback: args.webhook_allow.contains(&WebhookAllow::Loopback),
            allow_private: args.webhook_allow.contains(&WebhookAllow::Private),
        },
        webhook_backoff: std::time::Duration::from_millis(args.webhook_backoff_ms),
    }))?;
    Ok(ExitCode::SUCCESS)
}

fn create_key(
    tenant: &str,
    tier: docket_core::auth::Tier,
    state: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    let tenant = docket_core::TenantId::parse(tenant)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (token, secret) = runtime.block_on(docket_cli::serve::create_key(state, tenant, tier))?;
    eprintln!(
        "API key (shown once; only its hash is kept), then the tenant's webhook signing secret:"
    );
    println!("{token}");
    println!("{secret}");
    Ok(ExitCode::SUCCESS)
}

fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let workers = workers(args.workers);
    let request = RunRequest {
        inputs: args.inputs,
        evaluator: args.evaluator,
        config: parse_config(args.config.as_deref())?,
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
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers + 1)
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(local_run::run(request))?;
    print!("{}", local_run::summary_table(&outcome, args.rows));
    Ok(if outcome.job.status == JobStatus::Failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DOCKET_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::Serve(args) => serve(args),
        Command::Keys(KeysCommand::Create {
            tenant,
            tier,
            state,
        }) => create_key(&tenant, tier, &state),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("docket: {error:#}");
            ExitCode::from(2)
        }
    }
}
