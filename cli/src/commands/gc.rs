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
    #[arg(long, default_value = "30d", value_parser = parse_age)]
    older_than: Duration,
    /// State directory of the embedded backend.
    #[arg(long, env = "DOCKET_STATE", default_value = ".docket")]
    state: PathBuf,
}

/// A duration as a number and a unit: `s`, `m`, `h` or `d`.
pub fn parse_age(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{text:?}: give a unit: s, m, h or d (as in 30d)"))?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?}: a whole number, then s, m, h or d (as in 30d)"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: the unit is s, m, h or d (as in 30d)")),
    };
    Ok(Duration::from_secs(number.saturating_mul(seconds)))
}

/// `bytes` for a person: `512 B`, `3.4 MB`, `1.2 GB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Removes what is older than `--older-than` and prints what it freed.
pub fn execute(args: GcArgs) -> anyhow::Result<ExitCode> {
    if !args.state.join("docket.sqlite3").is_file() {
        anyhow::bail!("{}: not a docket state directory", args.state.display());
    }
    let backend = LocalBackend::open(&args.state, LocalOptions::default())?;
    let collected = super::block_on(backend.expire(args.older_than))?;
    println!(
        "removed {} finished jobs ({} outcomes) and {} files ({}) from {}",
        collected.jobs,
        collected.outcomes,
        collected.files,
        human_bytes(collected.bytes),
        args.state.display()
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_sizes_read_and_print_as_people_write_them() {
        assert_eq!(parse_age("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_age("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_age("90m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(
            parse_age("30"),
            Err("\"30\": give a unit: s, m, h or d (as in 30d)".to_owned())
        );
        assert_eq!(
            parse_age("3w"),
            Err("\"3w\": the unit is s, m, h or d (as in 30d)".to_owned())
        );
        assert_eq!(
            parse_age("d"),
            Err("\"d\": a whole number, then s, m, h or d (as in 30d)".to_owned())
        );
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3_400_000), "3.4 MB");
        assert_eq!(human_bytes(3_288_000_000), "3.3 GB");
    }
}
