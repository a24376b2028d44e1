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
use docket_cli::client::{self, Client};
use docket_cli::local_run::{self, RunRequest};
use docket_cli::plugins;
use docket_core::model::{Chunking, JobStatus, Priority};
use docket_core::ports::Evaluators;

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
    /// Manage API keys (embedded backend or an AWS deployment).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Write, test and publish evaluator plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Submit documents to a docket API (docket serve or a deployment).
    Submit(SubmitArgs),
    /// Print a job's status report.
    Status(JobArgs),
    /// Follow a job with a progress bar until it finishes (exit 0 when it
    /// completed, 1 otherwise).
    Watch(JobArgs),
    /// Print a finished job's results.
    Results(ResultsArgs),
    /// Cancel a job.
    Cancel(JobArgs),
    /// Submit a recovery job of a finished job's failed documents.
    Retry(JobArgs),
    /// List your jobs, newest first.
    Jobs(JobsArgs),
}

/// Where the API is and the key to call it with.
#[derive(clap::Args)]
struct ApiArgs {
    /// The API's base URL.
    #[arg(long, env = "DOCKET_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// An API key (docket keys create).
    #[arg(long, env = "DOCKET_TOKEN", hide_env_values = true)]
    token: String,
}

#[derive(clap::Args)]
struct SubmitArgs {
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
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(clap::Args)]
struct JobArgs {
    /// The job id.
    job: String,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(clap::Args)]
struct ResultsArgs {
    /// The job id.
    job: String,
    /// json, jsonl or csv.
    #[arg(long, default_value = "json")]
    format: String,
    /// Leave out evidence spans.
    #[arg(long)]
    no_evidence: bool,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(clap::Args)]
struct JobsArgs {
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
        #[command(flatten)]
        deployment: DeploymentArgs,
    },
}

/// The embedded backend's state directory, or an AWS deployment.
#[derive(clap::Args)]
struct DeploymentArgs {
    /// State directory of the embedded backend.
    #[arg(long, env = "DOCKET_STATE", default_value = ".docket")]
    state: PathBuf,
    /// Act on the AWS deployment with this resource prefix instead (region,
    /// credentials and AWS_ENDPOINT_URL from the environment).
    #[arg(long, env = "DOCKET_PREFIX")]
    aws_prefix: Option<String>,
}

impl DeploymentArgs {
    fn deployment(&self) -> plugins::Deployment {
        match &self.aws_prefix {
            Some(prefix) => plugins::Deployment::Aws(prefix.clone()),
            None => plugins::Deployment::Local(self.state.clone()),
        }
    }
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Create a plugin project that builds with one command.
    New {
        /// The plugin's name (lowercase letters, digits, '-').
        name: String,
        /// rust (the documented first choice), python or js.
        #[arg(long, default_value = "rust")]
        lang: String,
        /// Directory to create (default: ./<name>).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Evaluate documents with a component under production limits and
    /// print what each used of every limit.
    Test {
        /// A component (.wasm) or a plugin project directory.
        component: PathBuf,
        /// Documents (files or directories); the project's testdata/ when absent.
        #[arg(long = "doc")]
        documents: Vec<PathBuf>,
        /// Evaluator configuration: inline JSON or a path to a JSON file.
        #[arg(long)]
        config: Option<String>,
        /// rust, python or js (sets the limits); guessed from the project.
        #[arg(long)]
        lang: Option<String>,
        /// Compare each output with <DIR>/<document id>.json and show a diff.
        #[arg(long)]
        golden: Option<PathBuf>,
        /// Write the outputs as the new golden files instead.
        #[arg(long, requires = "golden")]
        bless: bool,
    },
    /// Validate, precompile and publish a component as name@version.
    Publish {
        /// The component (.wasm).
        component: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long)]
        version: String,
        /// rust, python or js (sets the default limits).
        #[arg(long, default_value = "rust")]
        lang: String,
        /// JSON file of limits replacing the language's defaults.
        #[arg(long)]
        limits: Option<PathBuf>,
        /// JSON Schema file of the plugin's configuration.
        #[arg(long)]
        config_schema: Option<PathBuf>,
        /// Also refuse components importing these interface packages or
        /// interfaces (e.g. wasi:filesystem); sockets and HTTP are always
        /// refused.
        #[arg(long)]
        deny: Vec<String>,
        #[command(flatten)]
        deployment: DeploymentArgs,
    },
    /// List published plugins.
    List {
        #[command(flatten)]
        deployment: DeploymentArgs,
    },
    /// Print a published plugin's manifest (name or name@version).
    Show {
        spec: String,
        #[command(flatten)]
        deployment: DeploymentArgs,
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
    /// Processors beside the server (default: two per core; 0 serves the
    /// API only, for processors elsewhere sharing the state directory).
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
    /// Log lines as JSON objects (for collectors) or text.
    #[arg(long, value_enum, default_value = "json")]
    log_format: LogFormat,
}

/// How `docket serve` writes its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// One JSON object a line.
    Json,
    /// Human-readable text.
    Text,
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
    let workers = args.workers.unwrap_or_else(|| workers(None));
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads((workers + 1).max(cores))
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

/// Runs `command` with a client of the API on a small runtime.
fn remote<F, Fut>(api: &ApiArgs, command: F) -> anyhow::Result<ExitCode>
where
    F: FnOnce(Client) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<ExitCode>>,
{
    let client = Client::new(&api.url, &api.token)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(command(client))
}

fn print_json(value: &serde_json::Value) -> anyhow::Result<ExitCode> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(ExitCode::SUCCESS)
}

/// 0 for a completed job, 1 for a failed or cancelled one.
fn finished_code(report: &serde_json::Value) -> ExitCode {
    if report["status"] == "completed" {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

async fn submit(client: Client, args: &SubmitArgs) -> anyhow::Result<ExitCode> {
    let mut options = serde_json::Map::new();
    for (name, value) in [
        ("evaluator", &args.evaluator),
        ("priority", &args.priority),
        ("webhook_url", &args.webhook_url),
    ] {
        if let Some(value) = value {
            options.insert(name.into(), value.clone().into());
        }
    }
    if args.config.is_some() {
        options.insert("config".into(), parse_config(args.config.as_deref())?);
    }
    let (body, unreadable) = client::batch_body(&args.inputs, options.into())?;
    for problem in &unreadable {
        eprintln!("docket: not sent: {problem}");
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
    let progress = &report["progress"];
    eprintln!(
        "docket: job {job} {}: {} of {} documents completed, {} failed",
        report["status"].as_str().unwrap_or_default(),
        progress["completed_documents"],
        progress["total_documents"],
        progress["failed_documents"]
    );
    Ok(finished_code(&report))
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

fn create_key(
    tenant: &str,
    tier: docket_core::auth::Tier,
    deployment: &plugins::Deployment,
) -> anyhow::Result<ExitCode> {
    let tenant = docket_core::TenantId::parse(tenant)?;
    let (token, secret) = block_on(async {
        let (store, _) = deployment.open().await?;
        docket_cli::serve::create_key(store.as_ref(), tenant, tier).await
    })?;
    eprintln!(
        "API key (shown once; only its hash is kept), then the tenant's webhook signing secret:"
    );
    println!("{token}");
    println!("{secret}");
    Ok(ExitCode::SUCCESS)
}

fn block_on<T>(work: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(work)
}

fn plugin(command: PluginCommand) -> anyhow::Result<ExitCode> {
    match command {
        PluginCommand::New { name, lang, dir } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
            let files = docket_cli::scaffold::create(&name, &lang, &dir)?;
            for file in &files {
                println!("created {}", file.display());
            }
            println!(
                "\nbuild: {}\ntest:  docket plugin test {}",
                docket_cli::scaffold::build_command(&lang),
                dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::Test {
            component,
            documents,
            config,
            lang,
            golden,
            bless,
        } => {
            let request = plugins::TestRequest {
                component,
                documents,
                config: parse_config(config.as_deref())?,
                language: lang,
                golden,
                bless,
            };
            let (manifest, runs) = plugins::test(&request)?;
            for run in &runs {
                println!("{}: {}", run.id, run.output);
                for line in run.diff.iter().flatten() {
                    println!("  {line}");
                }
            }
            for line in plugins::usage_lines(&manifest, &runs) {
                println!("{line}");
            }
            let failed = runs.iter().any(|r| {
                r.output.get("failure").is_some() || r.diff.as_ref().is_some_and(|d| !d.is_empty())
            });
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        PluginCommand::Publish {
            component,
            name,
            version,
            lang,
            limits,
            config_schema,
            deny,
            deployment,
        } => {
            let request = plugins::Publish {
                component,
                name,
                version,
                language: lang,
                limits,
                config_schema,
                deny,
            };
            let manifest = block_on(plugins::publish(&deployment.deployment(), &request))?;
            println!(
                "published {}@{} {}",
                manifest.name, manifest.version, manifest.sha256
            );
            println!("  world    {}", manifest.world);
            println!("  language {}", manifest.language);
            println!("  imports  {}", manifest.imports.join(", "));
            for compiled in &manifest.precompiled {
                println!(
                    "  compiled {} (engine {})",
                    compiled.target, compiled.engine
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::List { deployment } => {
            let manifests = block_on(async {
                let (store, _) = deployment.deployment().open().await?;
                Ok(store.plugins(None).await?)
            })?;
            for line in plugins::list_lines(&manifests) {
                println!("{line}");
            }
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::Show { spec, deployment } => {
            let manifest = block_on(async {
                let catalog = deployment.deployment().catalog().await?;
                let pinned = catalog
                    .resolve(&spec)
                    .await
                    .map_err(|f| anyhow::anyhow!(f.message))?;
                match catalog.published(&pinned.name, &pinned.version).await? {
                    Some(manifest) => Ok(manifest),
                    None => anyhow::bail!("{pinned} ships with docket; it is not published"),
                }
            })?;
            println!("{}", serde_json::to_string_pretty(&manifest)?);
            Ok(ExitCode::SUCCESS)
        }
    }
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

/// Logs on stderr, filtered by `DOCKET_LOG` (default `default`): one JSON
/// object a line for servers (with the request's and job's ids from their
/// spans), text for commands run by hand.
fn init_logging(json: bool, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DOCKET_LOG")
        .unwrap_or_else(|_| default.into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Command::Serve(args) => init_logging(args.log_format == LogFormat::Json, "info"),
        _ => init_logging(false, "warn"),
    }
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::Serve(args) => serve(args),
        Command::Keys(KeysCommand::Create {
            tenant,
            tier,
            deployment,
        }) => create_key(&tenant, tier, &deployment.deployment()),
        Command::Plugin(command) => plugin(command),
        Command::Submit(args) => remote(&args.api, |client| submit(client, &args)),
        Command::Status(args) => remote(&args.api, |client| async move {
            print_json(&client.status(&args.job).await?)
        }),
        Command::Watch(args) => remote(&args.api, |client| async move {
            let report = client.watch(&args.job, true).await?;
            print_json(&report)?;
            Ok(finished_code(&report))
        }),
        Command::Results(args) => remote(&args.api, |client| async move {
            let text = client
                .results(&args.job, &args.format, !args.no_evidence)
                .await?;
            println!("{}", text.trim_end());
            Ok(ExitCode::SUCCESS)
        }),
        Command::Cancel(args) => remote(&args.api, |client| async move {
            print_json(&client.cancel(&args.job).await?)
        }),
        Command::Retry(args) => remote(&args.api, |client| async move {
            print_json(&client.retry(&args.job).await?)
        }),
        Command::Jobs(args) => remote(&args.api, |client| async move {
            let page = client
                .jobs(args.status.as_deref(), args.limit, args.cursor.as_deref())
                .await?;
            print_jobs(&page);
            Ok(ExitCode::SUCCESS)
        }),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("docket: {error:#}");
            ExitCode::from(2)
        }
    }
}
