//! `docket gc`: removes the finished jobs of a state directory older than
//! a cutoff now, as `docket run` and `docket serve` do at start after the
//! retention (30 days by default).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use docket_local::{LocalBackend, LocalOptions};

#[derive(clap::Args)]
pub struct GcArgs {
    /// Remove jobs finished longer ago than this: `30d`, `12h`, `90m`,
    /// `0s` (every finished job). Jobs not finished are never removed.
    #[arg(long, default_value = "30d", value_parser = docket_cli::units::parse_age)]
    older_than: Duration,
    /// State directory of the embedded backend.
    #[arg(long, env = "DOCKET_STATE", default_value = ".docket")]
    state: PathBuf,
}

/// Removes what is older than `--older-than` and prints what it freed.
pub fn execute(args: GcArgs) -> anyhow::Result<ExitCode> {
    let backend = LocalBackend::open_existing(&args.state, LocalOptions::default())?;
    let collected = super::block_on(backend.expire(args.older_than))?;
    println!(
        "removed {} finished jobs ({} outcomes) and {} files ({}) from {}",
        collected.jobs,
        collected.outcomes,
        collected.files,
        docket_cli::units::human_bytes(collected.bytes),
        args.state.display()
    );
    Ok(ExitCode::SUCCESS)
}
