//! What this process's processors did: work items recorded by result and
//! failure category, evaluation latency, and throughput over the last hour
//! and day. The pipeline feeds it once per recorded outcome (duplicates
//! are not counted); `/metrics` renders it in the Prometheus text format
//! beside figures read from the ports (jobs by status, queue depth). The
//! Lambda functions report each invocation as CloudWatch Embedded Metric
//! Format records instead ([`emf_records`]).

use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};

use crate::failure::FailureCategory;
use crate::model::{ItemOutcome, ItemResult};

/// Upper bounds (seconds) of the evaluation latency histogram's buckets.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Minutes of history kept for throughput (a day).
const MINUTES: usize = 24 * 60;

/// Counters of one process. Cheap to update from many tasks.
#[derive(Debug)]
pub struct Metrics {
    succeeded: AtomicU64,
    skipped: AtomicU64,
    failed: [AtomicU64; FailureCategory::ALL.len()],
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
    /// Items recorded per minute: (minute since the epoch, count).
    per_minute: Mutex<Vec<(i64, u64)>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            succeeded: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            failed: Default::default(),
            latency_buckets: Default::default(),
            latency_count: AtomicU64::new(0),
            latency_sum_micros: AtomicU64::new(0),
            per_minute: Mutex::new(vec![(i64::MIN, 0); MINUTES]),
        }
    }
}

/// A point-in-time copy of [`Metrics`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MetricsSnapshot {
    /// Items evaluated successfully.
    pub succeeded: u64,
    /// Items skipped (cancelled or failing-fast jobs).
    pub skipped: u64,
    /// Items failed, by category (in [`FailureCategory::ALL`] order).
    pub failed: Vec<(FailureCategory, u64)>,
    /// Cumulative counts per latency bucket (Prometheus `le` semantics).
    pub latency_buckets: Vec<(f64, u64)>,
    /// Evaluations timed.
    pub latency_count: u64,
    /// Their total time, seconds.
    pub latency_sum: f64,
    /// Items recorded in the last hour.
    pub last_hour: u64,
    /// Items recorded in the last 24 hours.
    pub last_day: u64,
}

impl Metrics {
    /// Counts outcomes recorded at `now`.
    pub fn record<'a>(
        &self,
        outcomes: impl IntoIterator<Item = &'a ItemOutcome>,
        now: DateTime<Utc>,
    ) {
        let mut recorded = 0;
        for outcome in outcomes {
            recorded += 1;
            let seconds = match &outcome.result {
                ItemResult::Succeeded { seconds, .. } => {
                    self.succeeded.fetch_add(1, Ordering::Relaxed);
                    Some(*seconds)
                }
                ItemResult::Failed { failure, seconds } => {
                    let at = FailureCategory::ALL
                        .iter()
                        .position(|c| *c == failure.category)
                        .unwrap_or(0);
                    self.failed[at].fetch_add(1, Ordering::Relaxed);
                    // Failures decided without running the plugin take no
                    // time and would only skew the histogram.
                    (*seconds > 0.0).then_some(*seconds)
                }
                ItemResult::Skipped { .. } => {
                    self.skipped.fetch_add(1, Ordering::Relaxed);
                    None
                }
            };
            if let Some(seconds) = seconds {
                for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
                    if seconds <= *bound {
                        bucket.fetch_add(1, Ordering::Relaxed);
                    }
                }
                self.latency_count.fetch_add(1, Ordering::Relaxed);
                self.latency_sum_micros
                    .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
            }
        }
        if recorded > 0 {
            let minute = now.timestamp().div_euclid(60);
            let mut per_minute = self.per_minute.lock().unwrap_or_else(|e| e.into_inner());
            let slot = &mut per_minute[minute.rem_euclid(MINUTES as i64) as usize];
            if slot.0 != minute {
                *slot = (minute, 0);
            }
            slot.1 += recorded;
        }
    }

    /// The counters now; throughput windows end at `now`.
    pub fn snapshot(&self, now: DateTime<Utc>) -> MetricsSnapshot {
        let minute = now.timestamp().div_euclid(60);
        let per_minute = self.per_minute.lock().unwrap_or_else(|e| e.into_inner());
        let within = |minutes: i64| -> u64 {
            per_minute
                .iter()
                .filter(|(at, _)| *at <= minute && minute.saturating_sub(*at) < minutes)
                .map(|(_, count)| count)
                .sum()
        };
        MetricsSnapshot {
            succeeded: self.succeeded.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            failed: FailureCategory::ALL
                .iter()
                .zip(&self.failed)
                .map(|(c, n)| (*c, n.load(Ordering::Relaxed)))
                .collect(),
            latency_buckets: LATENCY_BUCKETS
                .iter()
                .zip(&self.latency_buckets)
                .map(|(b, n)| (*b, n.load(Ordering::Relaxed)))
                .collect(),
            latency_count: self.latency_count.load(Ordering::Relaxed),
            latency_sum: self.latency_sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
            last_hour: within(60),
            last_day: within(MINUTES as i64),
        }
    }
}

/// Writes Prometheus text exposition: `# HELP`, `# TYPE`, then samples.
#[derive(Debug, Default)]
pub struct PrometheusText {
    out: String,
}

impl PrometheusText {
    /// Starts a metric family.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) -> &mut Self {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        self
    }

    /// One sample; `labels` as `(name, value)`.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (n, (label, text)) in labels.iter().enumerate() {
                if n > 0 {
                    self.out.push(',');
                }
                let escaped = text
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = write!(self.out, "{label}=\"{escaped}\"");
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
        self
    }

    /// This process's counters as the `docket_` families.
    pub fn metrics(&mut self, snapshot: &MetricsSnapshot) -> &mut Self {
        let items = "docket_work_items_processed_total";
        self.family(
            items,
            "counter",
            "Work items (documents or chunks) recorded by this process, by result.",
        )
        .sample(items, &[("result", "succeeded")], snapshot.succeeded as f64)
        .sample(items, &[("result", "skipped")], snapshot.skipped as f64);
        let failed: u64 = snapshot.failed.iter().map(|(_, n)| n).sum();
        self.sample(items, &[("result", "failed")], failed as f64);
        let by_category = "docket_work_items_failed_total";
        self.family(
            by_category,
            "counter",
            "Work items recorded failed by this process, by failure category.",
        );
        for (category, count) in &snapshot.failed {
            self.sample(
                by_category,
                &[("category", category.as_str())],
                *count as f64,
            );
        }
        let latency = "docket_evaluation_seconds";
        self.family(
            latency,
            "histogram",
            "Time to load and evaluate one work item.",
        );
        for (bound, count) in &snapshot.latency_buckets {
            self.sample(
                &format!("{latency}_bucket"),
                &[("le", &bound.to_string())],
                *count as f64,
            );
        }
        self.sample(
            &format!("{latency}_bucket"),
            &[("le", "+Inf")],
            snapshot.latency_count as f64,
        )
        .sample(&format!("{latency}_sum"), &[], snapshot.latency_sum)
        .sample(
            &format!("{latency}_count"),
            &[],
            snapshot.latency_count as f64,
        );
        let throughput = "docket_throughput_items_per_second";
        self.family(
            throughput,
            "gauge",
            "Work items recorded per second by this process, averaged over a window.",
        )
        .sample(
            throughput,
            &[("window", "1h")],
            snapshot.last_hour as f64 / 3600.0,
        )
        .sample(
            throughput,
            &[("window", "24h")],
            snapshot.last_day as f64 / 86_400.0,
        )
    }

    /// The text.
    pub fn finish(self) -> String {
        self.out
    }
}

/// What one Lambda invocation did, for CloudWatch.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct InvocationFigures {
    /// The function (`processor`, `finalizer`, …): the `Function`
    /// dimension.
    pub function: String,
    /// Work items recorded by this invocation.
    pub documents_processed: u64,
    /// Milliseconds of each evaluation.
    pub evaluation_ms: Vec<f64>,
    /// Items failed, by category (categories with none are left out).
    pub failures: Vec<(FailureCategory, u64)>,
    /// Whether this invocation started its container.
    pub cold_start: bool,
}

/// Most values one EMF metric may carry in one record.
const EMF_MAX_VALUES: usize = 100;

/// The invocation as CloudWatch Embedded Metric Format records (namespace
/// `docket`), one JSON object a line for the function's log: one record by
/// `Function` with `DocumentsProcessed`, `EvaluationTime` (every value, in
/// records of at most 100) and `ColdStart`, and one by `Function` and
/// `Category` with `Failures` per failure category.
pub fn emf_records(figures: &InvocationFigures, now: DateTime<Utc>) -> Vec<String> {
    let timestamp = now.timestamp_millis();
    let directive = |dimensions: &[&str], metrics: &[(&str, &str)]| {
        serde_json::json!({
            "Timestamp": timestamp,
            "CloudWatchMetrics": [{
                "Namespace": "docket",
                "Dimensions": [dimensions],
                "Metrics": metrics
                    .iter()
                    .map(|(name, unit)| serde_json::json!({"Name": name, "Unit": unit}))
                    .collect::<Vec<_>>(),
            }],
        })
    };
    let mut records = Vec::new();
    let mut chunks: Vec<&[f64]> = figures.evaluation_ms.chunks(EMF_MAX_VALUES).collect();
    if chunks.is_empty() {
        chunks.push(&[]);
    }
    for (n, values) in chunks.into_iter().enumerate() {
        let mut metrics = vec![("EvaluationTime", "Milliseconds")];
        let mut record = serde_json::json!({
            "Function": figures.function,
            "EvaluationTime": values,
        });
        if n == 0 {
            metrics.push(("DocumentsProcessed", "Count"));
            metrics.push(("ColdStart", "Count"));
            record["DocumentsProcessed"] = figures.documents_processed.into();
            record["ColdStart"] = u64::from(figures.cold_start).into();
        }
        if values.is_empty() {
            metrics.remove(0);
            if let Some(object) = record.as_object_mut() {
                object.remove("EvaluationTime");
            }
        }
        record["_aws"] = directive(&["Function"], &metrics);
        records.push(record.to_string());
    }
    for (category, count) in figures.failures.iter().filter(|(_, n)| *n > 0) {
        let mut record = serde_json::json!({
            "Function": figures.function,
            "Category": category.as_str(),
            "Failures": count,
        });
        record["_aws"] = directive(&["Function", "Category"], &[("Failures", "Count")]);
        records.push(record.to_string());
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::Failure;
    use crate::model::ChunkInfo;

    fn outcome(result: ItemResult) -> ItemOutcome {
        ItemOutcome {
            item: 0,
            document: 0,
            document_id: "d".into(),
            title: "d".into(),
            chunk: ChunkInfo::WHOLE,
            bytes: 1,
            body: None,
            metadata: serde_json::Value::Null,
            result,
        }
    }

    #[test]
    fn counts_results_latency_and_windows() {
        let metrics = Metrics::default();
        let t0 = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        let ok = outcome(ItemResult::Succeeded {
            evaluation: crate::Evaluation::default(),
            seconds: 0.003,
        });
        let failed = outcome(ItemResult::Failed {
            failure: Failure::new(FailureCategory::Data, "bad"),
            seconds: 0.0,
        });
        metrics.record([&ok, &ok, &failed], t0);
        metrics.record([&ok], t0 + chrono::Duration::hours(2));
        let now = t0 + chrono::Duration::hours(2);
        let snapshot = metrics.snapshot(now);
        assert_eq!(snapshot.succeeded, 3);
        assert_eq!(
            snapshot
                .failed
                .iter()
                .find(|(c, _)| *c == FailureCategory::Data),
            Some(&(FailureCategory::Data, 1))
        );
        assert_eq!(snapshot.latency_count, 3);
        assert_eq!(snapshot.latency_buckets[2], (0.0025, 0));
        assert_eq!(snapshot.latency_buckets[3], (0.005, 3));
        assert_eq!(snapshot.last_hour, 1);
        assert_eq!(snapshot.last_day, 4);
        let later = metrics.snapshot(t0 + chrono::Duration::days(2));
        assert_eq!((later.last_hour, later.last_day), (0, 0));

        let mut text = PrometheusText::default();
        text.metrics(&snapshot);
        let text = text.finish();
        assert!(
            text.contains("docket_work_items_processed_total{result=\"failed\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("docket_evaluation_seconds_bucket{le=\"+Inf\"} 3\n"),
            "{text}"
        );
    }

    /// Checks a record against the EMF specification's rules: a directive
    /// in `_aws`, every dimension a string member, every metric a number
    /// or at most 100 numbers.
    fn check_emf(line: &str) -> serde_json::Value {
        let record: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
        assert!(record["_aws"]["Timestamp"].is_i64(), "{line}");
        let directive = &record["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "docket");
        for set in directive["Dimensions"].as_array().into_iter().flatten() {
            for key in set.as_array().into_iter().flatten() {
                assert!(
                    record[key.as_str().unwrap_or_default()].is_string(),
                    "{line}"
                );
            }
        }
        let metrics = directive["Metrics"].as_array().cloned().unwrap_or_default();
        assert!(!metrics.is_empty() && metrics.len() <= 100, "{line}");
        for metric in metrics {
            let value = &record[metric["Name"].as_str().unwrap_or_default()];
            let ok = value.is_number()
                || value.as_array().is_some_and(|values| {
                    values.len() <= EMF_MAX_VALUES
                        && values.iter().all(serde_json::Value::is_number)
                });
            assert!(ok, "{metric} in {line}");
        }
        record
    }

    #[test]
    fn invocations_become_valid_emf_records() {
        let now = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        let figures = InvocationFigures {
            function: "processor".into(),
            documents_processed: 150,
            evaluation_ms: (0..150).map(f64::from).collect(),
            failures: vec![(FailureCategory::Data, 2), (FailureCategory::Transient, 0)],
            cold_start: true,
        };
        let records: Vec<serde_json::Value> = emf_records(&figures, now)
            .iter()
            .map(|l| check_emf(l))
            .collect();
        assert_eq!(
            records.len(),
            3,
            "150 values in two records, one failure category"
        );
        assert_eq!(records[0]["DocumentsProcessed"], 150);
        assert_eq!(records[0]["ColdStart"], 1);
        assert_eq!(
            records[0]["EvaluationTime"].as_array().map(Vec::len),
            Some(100)
        );
        assert_eq!(
            records[1]["EvaluationTime"].as_array().map(Vec::len),
            Some(50)
        );
        assert!(records[1].get("DocumentsProcessed").is_none());
        assert_eq!(records[2]["Category"], "DATA");
        assert_eq!(records[2]["Failures"], 2);
        assert_eq!(records[0]["_aws"]["Timestamp"], 1_700_000_000_000i64);

        let idle = emf_records(
            &InvocationFigures {
                function: "processor".into(),
                ..Default::default()
            },
            now,
        );
        assert_eq!(idle.len(), 1);
        let record = check_emf(&idle[0]);
        assert_eq!(record["DocumentsProcessed"], 0);
        assert!(record.get("EvaluationTime").is_none());
    }
}
