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
use crate::ports::{BackendError, JobActivity};

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
    /// Port operations of worker rounds that failed and were left to be
    /// retried, by category.
    backend_errors: [AtomicU64; FailureCategory::ALL.len()],
    /// The last of them.
    last_backend_error: Mutex<Option<BackendError>>,
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
            backend_errors: Default::default(),
            last_backend_error: Mutex::new(None),
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
    /// Port operations of worker rounds that failed and were left to be
    /// retried, by category (in [`FailureCategory::ALL`] order).
    pub backend_errors: Vec<(FailureCategory, u64)>,
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
                    self.failed[failure.category.index()].fetch_add(1, Ordering::Relaxed);
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

    /// Counts a port operation of a worker round that failed and was left
    /// to be retried (an outcome not recorded, a finalize not written, …).
    pub fn backend_error(&self, error: BackendError) {
        self.backend_errors[error.category.index()].fetch_add(1, Ordering::Relaxed);
        *self
            .last_backend_error
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(error);
    }

    /// The last port operation of a worker round that failed, if any did.
    pub fn last_backend_error(&self) -> Option<BackendError> {
        self.last_backend_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
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
            failed: by_category(&self.failed),
            latency_buckets: LATENCY_BUCKETS
                .iter()
                .zip(&self.latency_buckets)
                .map(|(b, n)| (*b, n.load(Ordering::Relaxed)))
                .collect(),
            latency_count: self.latency_count.load(Ordering::Relaxed),
            latency_sum: self.latency_sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
            last_hour: within(60),
            last_day: within(MINUTES as i64),
            backend_errors: by_category(&self.backend_errors),
        }
    }
}

/// Counters kept per failure category, read with their categories.
fn by_category(counters: &[AtomicU64]) -> Vec<(FailureCategory, u64)> {
    FailureCategory::ALL
        .iter()
        .zip(counters)
        .map(|(c, n)| (*c, n.load(Ordering::Relaxed)))
        .collect()
}

/// Documents done in the `window` before `now` over the whole deployment:
/// each job's documents spread evenly over its active span (its first
/// recorded item to its finalizing, or `now` while it runs), the share
/// inside the window counted. Exact for jobs that ran within the window.
pub fn documents_within(
    active: &[JobActivity],
    now: DateTime<Utc>,
    window: chrono::Duration,
) -> f64 {
    documents_between(active, now - window, now, now)
}

/// Documents done in each of the `minutes` whole minutes up to `now`,
/// oldest first, estimated as [`documents_within`] does: the throughput
/// chart of the dashboard.
pub fn documents_per_minute(active: &[JobActivity], now: DateTime<Utc>, minutes: u32) -> Vec<f64> {
    let minute = chrono::Duration::minutes(1);
    (0..i64::from(minutes))
        .rev()
        .map(|ago| {
            let to = now - minute * (ago as i32);
            documents_between(active, to - minute, to, now)
        })
        .collect()
}

/// Documents done after `from` until `to` (a job runs until `now` when not
/// finished), each job's documents spread evenly over its active span; a
/// job done in no time counts in the window its instant ends, so
/// neighbouring windows do not both count it.
fn documents_between(
    active: &[JobActivity],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    now: DateTime<Utc>,
) -> f64 {
    active
        .iter()
        .map(|job| {
            let end = job.finished_at.unwrap_or(now).min(now);
            let start = job.started_at.min(end);
            let overlap = (end.min(to) - start.max(from)).num_milliseconds().max(0) as f64;
            let span = (end - start).num_milliseconds() as f64;
            if span <= 0.0 {
                // Started and finished in the same instant.
                if end > from && end <= to {
                    job.documents_done as f64
                } else {
                    0.0
                }
            } else {
                job.documents_done as f64 * overlap / span
            }
        })
        .sum()
}

/// The prefix of every Prometheus series (`docket` by default): a
/// deployment migrating dashboards keeps the names they query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsNamespace(String);

impl Default for MetricsNamespace {
    fn default() -> Self {
        Self("docket".into())
    }
}

impl std::str::FromStr for MetricsNamespace {
    type Err = String;

    /// A Prometheus metric name prefix: a letter or `_`, then letters,
    /// digits or `_` (a trailing `_` is dropped: it is added).
    fn from_str(text: &str) -> Result<Self, String> {
        let name = text.strip_suffix('_').unwrap_or(text);
        let mut chars = name.chars();
        let valid = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if valid {
            Ok(Self(name.to_owned()))
        } else {
            Err(format!(
                "{text:?} is not a metrics namespace (a letter or _, then letters, digits or _)"
            ))
        }
    }
}

impl MetricsNamespace {
    /// The namespace as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Writes Prometheus text exposition: `# HELP`, `# TYPE`, then samples,
/// every name under the namespace (`jobs` is written `docket_jobs`).
#[derive(Debug, Default)]
pub struct PrometheusText {
    namespace: MetricsNamespace,
    out: String,
}

impl PrometheusText {
    /// Text whose series are named `{namespace}_…`.
    pub fn new(namespace: MetricsNamespace) -> Self {
        Self {
            namespace,
            out: String::new(),
        }
    }

    /// Starts a metric family.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) -> &mut Self {
        let namespace = self.namespace.as_str();
        let _ = writeln!(
            self.out,
            "# HELP {namespace}_{name} {help}\n# TYPE {namespace}_{name} {kind}"
        );
        self
    }

    /// One sample; `labels` as `(name, value)`.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Self {
        let _ = write!(self.out, "{}_{name}", self.namespace.as_str());
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

    /// This process's counters as families of the namespace.
    pub fn metrics(&mut self, snapshot: &MetricsSnapshot) -> &mut Self {
        let items = "work_items_processed_total";
        self.family(
            items,
            "counter",
            "Work items (documents or chunks) recorded by this process, by result.",
        )
        .sample(items, &[("result", "succeeded")], snapshot.succeeded as f64)
        .sample(items, &[("result", "skipped")], snapshot.skipped as f64);
        let failed: u64 = snapshot.failed.iter().map(|(_, n)| n).sum();
        self.sample(items, &[("result", "failed")], failed as f64);
        let by_category = "work_items_failed_total";
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
        let latency = "evaluation_seconds";
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
        let backend = "backend_errors_total";
        self.family(
            backend,
            "counter",
            "Queue, store and blob operations of this process's workers that failed and were left to be retried, by category.",
        );
        for (category, count) in &snapshot.backend_errors {
            self.sample(backend, &[("category", category.as_str())], *count as f64);
        }
        let throughput = "throughput_items_per_second";
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

    #[test]
    fn documents_within_the_hour_are_each_jobs_share_of_it() {
        let now = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        let minutes = |m: i64| now - chrono::Duration::minutes(m);
        let activity = activity_of;
        let hour = chrono::Duration::hours(1);
        // Running for 30 minutes: all of it.
        assert_eq!(
            documents_within(&[activity(600, minutes(30), None)], now, hour),
            600.0
        );
        // Ran from 90 to 30 minutes ago: the half inside the hour.
        assert_eq!(
            documents_within(&[activity(600, minutes(90), Some(minutes(30)))], now, hour),
            300.0
        );
        // Finished before the hour, or in no time within it.
        assert_eq!(
            documents_within(&[activity(600, minutes(120), Some(minutes(61)))], now, hour),
            0.0
        );
        assert_eq!(
            documents_within(&[activity(5, minutes(10), Some(minutes(10)))], now, hour),
            5.0
        );
        // Jobs add up.
        assert_eq!(
            documents_within(
                &[
                    activity(600, minutes(30), None),
                    activity(5, minutes(10), Some(minutes(10)))
                ],
                now,
                hour
            ),
            605.0
        );
    }

    fn activity_of(
        done: u64,
        started_at: DateTime<Utc>,
        finished_at: Option<DateTime<Utc>>,
    ) -> JobActivity {
        JobActivity {
            id: crate::model::JobId::generate(),
            tenant: crate::model::TenantId::parse("acme").unwrap_or_else(|_| unreachable!()),
            status: crate::model::JobStatus::Processing,
            documents_total: done,
            documents_done: done,
            started_at,
            finished_at,
        }
    }

    #[test]
    fn documents_per_minute_spread_each_job_over_its_minutes() {
        let now = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        let minutes = |m: i64| now - chrono::Duration::minutes(m);
        // 300 documents over the last three minutes, 7 in no time two
        // minutes and a half ago, 50 before the chart.
        let series = documents_per_minute(
            &[
                activity_of(300, minutes(3), None),
                activity_of(
                    7,
                    now - chrono::Duration::seconds(150),
                    Some(now - chrono::Duration::seconds(150)),
                ),
                activity_of(50, minutes(20), Some(minutes(10))),
            ],
            now,
            5,
        );
        assert_eq!(series, vec![0.0, 0.0, 107.0, 100.0, 100.0]);
    }

    #[test]
    fn series_carry_the_namespace() {
        let namespace: MetricsNamespace = "decalogo_batch".parse().unwrap_or_default();
        let mut text = PrometheusText::new(namespace);
        text.family("jobs", "gauge", "Jobs.")
            .sample("jobs", &[("status", "queued")], 2.0);
        let text = text.finish();
        assert_eq!(
            text,
            "# HELP decalogo_batch_jobs Jobs.\n# TYPE decalogo_batch_jobs gauge\ndecalogo_batch_jobs{status=\"queued\"} 2\n"
        );
        assert_eq!(
            "docket_"
                .parse::<MetricsNamespace>()
                .map(|n| n.as_str().to_owned()),
            Ok("docket".to_owned())
        );
        for bad in ["", "9lives", "has-dash", "sp ace"] {
            assert!(bad.parse::<MetricsNamespace>().is_err(), "{bad}");
        }
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
