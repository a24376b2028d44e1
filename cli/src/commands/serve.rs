//! `docket serve`: the HTTP API on a local address over the embedded
//! backend, with processors and the webhook sender in the same process.

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct ServeArgs {
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
    /// Finished jobs older than this are removed when the server starts
    /// (`docket gc` removes them at any time).
    #[arg(long, env = "DOCKET_RETENTION", default_value = "30d", value_parser = docket_cli::units::parse_age)]
    retention: std::time::Duration,
    /// Prefix of the metrics route's series (`--metrics-namespace
    /// decalogo_batch` keeps a dashboard that queries `decalogo_batch_*`).
    #[arg(long, env = "DOCKET_METRICS_NAMESPACE", default_value = "docket")]
    metrics_namespace: docket_core::metrics::MetricsNamespace,
    /// Log lines as JSON objects (for collectors) or text.
    #[arg(long, value_enum, default_value = "json")]
    log_format: LogFormat,
}

impl ServeArgs {
    /// Whether the server logs one JSON object a line (`--log-format json`).
    pub fn json_logs(&self) -> bool {
        self.log_format == LogFormat::Json
    }
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

/// Serves until SIGTERM or Ctrl-C (a graceful shutdown; a second signal
/// exits at once), on a runtime with a thread per
/// processor plus one for the server (at least one per core).
pub fn execute(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let workers = args.workers.unwrap_or_else(|| super::workers(None));
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
        stop: super::stop_on_signals()?,
        retention: args.retention,
        metrics_namespace: args.metrics_namespace,
    }))?;
    Ok(ExitCode::SUCCESS)
}
