//! One module per `docket` command: each defines its clap arguments and
//! the function that runs them, returning the process's exit code.
//!
//! This module holds what several commands share: the embedded backend or
//! AWS deployment a command acts on, reading `--config`, the default worker
//! count and a runtime for one-off async work.

pub mod gc;
pub mod keys;
pub mod plugin;
pub mod remote;
pub mod run;
pub mod serve;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use docket_cli::plugins;

/// The embedded backend's state directory, or an AWS deployment.
#[derive(clap::Args)]
pub struct DeploymentArgs {
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

/// `--config`: absent (an empty object), inline JSON, or a path to a file
/// holding a JSON object.
fn parse_config(config: Option<&str>) -> anyhow::Result<serde_json::Value> {
    let Some(config) = config else {
        return Ok(serde_json::json!({}));
    };
    let text = if config.trim_start().starts_with('{') {
        config.to_owned()
    } else {
        std::fs::read_to_string(config).map_err(|e| {
            anyhow::anyhow!(
                "--config {config:?} is neither a JSON object (it does not start with {{) nor a file that can be read ({e})"
            )
        })?
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

/// Runs `work` to completion on a fresh multi-threaded runtime.
fn block_on<T>(work: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(work)
}

/// Exit code of a run stopped by a signal, as shells report SIGINT.
const INTERRUPTED: u8 = 130;

/// A flag set by the first SIGINT or SIGTERM (`docket run` and `serve`
/// stop gracefully); the second one ends the process at once with
/// [`INTERRUPTED`].
fn stop_on_signals() -> anyhow::Result<Arc<AtomicBool>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM] {
        // Registered first, so it sees the flag as the previous signal left it.
        signal_hook::flag::register_conditional_shutdown(
            signal,
            i32::from(INTERRUPTED),
            Arc::clone(&stop),
        )?;
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    Ok(stop)
}
