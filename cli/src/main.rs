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
//!
//! Each command's arguments and code live in its module under `commands/`;
//! this file parses the command line, sets up logging and turns the
//! outcome into the exit code (2 for an error).

mod commands;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use commands::{gc, keys, plugin, remote, run, serve};

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
    Run(run::RunArgs),
    /// Serve the HTTP API on a local address, with processors in process.
    Serve(serve::ServeArgs),
    /// Manage API keys (embedded backend or an AWS deployment).
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Write, test and publish evaluator plugins.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Submit documents to a docket API (docket serve or a deployment).
    Submit(remote::SubmitArgs),
    /// Print a job's status report.
    Status(remote::JobArgs),
    /// Follow a job with a progress bar until it finishes (exit 0 when it
    /// completed, 1 otherwise).
    Watch(remote::JobArgs),
    /// Print a finished job's results.
    Results(remote::ResultsArgs),
    /// Cancel a job.
    Cancel(remote::JobArgs),
    /// Submit a recovery job of a finished job's failed documents.
    Retry(remote::JobArgs),
    /// List your jobs, newest first.
    Jobs(remote::JobsArgs),
    /// Remove a state directory's finished jobs older than a cutoff now.
    Gc(gc::GcArgs),
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
    // First: a PDF extraction child does its file and exits here.
    let isolated = docket_intake::pdf::use_child_processes();
    // A write past a file-size limit (RLIMIT_FSIZE) then fails with EFBIG,
    // which is reported as a full disk, instead of killing the process.
    if let Err(error) = signal_hook::flag::register(
        signal_hook::consts::SIGXFSZ,
        std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
    ) {
        eprintln!("docket: SIGXFSZ not handled: {error}");
    }
    let cli = Cli::parse();
    match &cli.command {
        Command::Serve(args) => init_logging(args.json_logs(), "info"),
        _ => init_logging(false, "warn"),
    }
    if let Err(error) = isolated {
        tracing::warn!(%error, "PDF extraction runs in process, without a memory limit");
    }
    let result = match cli.command {
        Command::Run(args) => run::execute(args),
        Command::Serve(args) => serve::execute(args),
        Command::Keys(command) => keys::execute(command),
        Command::Plugin(command) => plugin::execute(command),
        Command::Submit(args) => remote::submit(args),
        Command::Status(args) => remote::status(args),
        Command::Watch(args) => remote::watch(args),
        Command::Results(args) => remote::results(args),
        Command::Cancel(args) => remote::cancel(args),
        Command::Retry(args) => remote::retry(args),
        Command::Jobs(args) => remote::jobs(args),
        Command::Gc(args) => gc::execute(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("docket: {error:#}");
            ExitCode::from(2)
        }
    }
}
