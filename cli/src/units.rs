//! Durations and sizes as people write and read them on the command line.

use std::time::Duration;

/// A duration as a whole number and a unit: `s`, `m`, `h` or `d`.
///
/// # Errors
/// What is wrong with `text`, for the usage error.
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

/// `duration` in the largest unit [`parse_age`] reads that divides it.
pub fn age(duration: Duration) -> String {
    let seconds = duration.as_secs();
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if seconds > 0 && seconds.is_multiple_of(size) {
            return format!("{}{unit}", seconds / size);
        }
    }
    format!("{seconds}s")
}

/// `bytes` for a person, in decimal units: `512 B`, `3.4 MB`, `1.2 GB`.
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
        assert_eq!(age(Duration::from_secs(30 * 86_400)), "30d");
        assert_eq!(age(Duration::from_secs(12 * 3600)), "12h");
        assert_eq!(age(Duration::from_secs(90)), "90s");
        assert_eq!(age(Duration::ZERO), "0s");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3_400_000), "3.4 MB");
        assert_eq!(human_bytes(3_288_000_000), "3.3 GB");
    }
}
