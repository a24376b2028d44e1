//! For operators: the health of every port (one cheap call each) and the
//! deployment's figures in Prometheus text.

use std::time::Duration;

use super::{Pipeline, PipelineError};
use crate::auth::Caller;
use crate::metrics::{MetricsNamespace, PrometheusText, documents_per_minute, documents_within};
use crate::model::{EvaluatorRef, JobId, JobStatus, TenantId};
use crate::ports::{JobActivity, QueueDepth, QueueName, StoreError, StoreStats};

/// How long the health route reuses the store's figures: it needs no key,
/// and on DynamoDB the figures are a scan of the jobs.
const STATS_TTL: Duration = Duration::from_secs(10);

/// The window of the throughput figures.
fn hour() -> chrono::Duration {
    chrono::Duration::hours(1)
}

/// What [`Pipeline::health`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    /// The job store answered.
    pub job_store: bool,
    /// The blob store answered.
    pub blob_store: bool,
    /// The queues.
    pub queues: QueueHealth,
    /// Evaluator versions loaded in this process.
    pub evaluators: Vec<EvaluatorRef>,
    /// The deployment's figures (none when the store did not answer).
    pub figures: Option<HealthFigures>,
}

/// What the health route tells of the work, deployment-wide.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthFigures {
    /// Jobs accepted and not started.
    pub jobs_queued: u64,
    /// Jobs with items recorded and not finished.
    pub jobs_processing: u64,
    /// Documents done in the last hour ([`documents_within`]).
    pub documents_last_hour: f64,
    /// Work items waiting in the work queues.
    pub work_items_waiting: u64,
    /// Messages dead-lettered, every queue.
    pub dead_letters: u64,
}

/// What the dashboard's overview shows a caller: its own jobs, or for an
/// operator key every tenant's and the queues.
#[derive(Debug, Clone, PartialEq)]
pub struct Overview {
    /// Whose: the caller's tenant, or `None` for an operator (every tenant).
    pub tenant: Option<TenantId>,
    /// Jobs per status (every status).
    pub jobs: Vec<(JobStatus, u64)>,
    /// Documents done in each of the last 60 minutes, oldest first
    /// ([`documents_per_minute`]).
    pub documents_per_minute: Vec<f64>,
    /// Jobs running or finished within the hour, newest first.
    pub active: Vec<JobActivity>,
    /// Every queue's depth, dead letters included (operators only).
    pub queues: Option<Vec<(QueueName, QueueDepth)>>,
    /// Evaluator versions loaded in this process.
    pub evaluators: Vec<EvaluatorRef>,
}

/// The queues' part of [`Health`].
#[derive(Debug, Clone, PartialEq)]
pub struct QueueHealth {
    /// Every queue answered.
    pub ok: bool,
    /// The depth of each queue that answered.
    pub depths: Vec<(QueueName, QueueDepth)>,
}

impl Health {
    /// Whether every component answered.
    pub fn is_healthy(&self) -> bool {
        self.job_store && self.blob_store && self.queues.ok
    }
}

fn answered<T, E: std::fmt::Display>(result: Result<T, E>, component: &str) -> bool {
    match result {
        Ok(_) => true,
        Err(error) => {
            tracing::warn!(component, %error, "health check failed");
            false
        }
    }
}

impl Pipeline {
    /// Probes each port with one cheap call.
    pub async fn health(&self) -> Health {
        let store = match JobId::parse("job_health_probe") {
            Ok(id) => match self.jobs.job(&id).await {
                Ok(_) | Err(StoreError::NotFound(_)) => Ok(()),
                Err(e) => Err(e.to_string()),
            },
            Err(e) => Err(e.to_string()),
        };
        let job_store = answered(store, "job_store");
        let blob_store = answered(self.blobs.list("health/").await, "blob_store");
        let mut queues = QueueHealth {
            ok: true,
            depths: Vec::new(),
        };
        for queue in QueueName::ALL {
            match self.queue.depth(queue).await {
                Ok(depth) => queues.depths.push((queue, depth)),
                Err(error) => {
                    tracing::warn!(queue = queue.as_str(), %error, "health check failed");
                    queues.ok = false;
                }
            }
        }
        let figures = match self.cached_stats().await {
            Ok(stats) => Some(HealthFigures {
                jobs_queued: jobs_in(&stats, JobStatus::Queued),
                jobs_processing: jobs_in(&stats, JobStatus::Processing),
                documents_last_hour: documents_within(&stats.active, self.clock.now(), hour()),
                work_items_waiting: queues
                    .depths
                    .iter()
                    .filter(|(queue, _)| matches!(queue, QueueName::Work(_)))
                    .map(|(_, depth)| depth.visible)
                    .sum(),
                dead_letters: queues.depths.iter().map(|(_, depth)| depth.dead).sum(),
            }),
            Err(error) => {
                tracing::warn!(%error, "health figures failed");
                None
            }
        };
        Health {
            job_store,
            blob_store,
            queues,
            evaluators: self.loaded_evaluators(),
            figures,
        }
    }

    /// The dashboard's overview for `caller`: the store's figures (read at
    /// most once per [`STATS_TTL`]) of the caller's tenant, or of every
    /// tenant with the queues' depths for an operator key.
    ///
    /// # Errors
    /// Port errors.
    pub async fn overview(&self, caller: &Caller) -> Result<Overview, PipelineError> {
        let stats = self.cached_stats().await?;
        let tenant = (!caller.sees_every_tenant()).then(|| caller.tenant.clone());
        let mut active: Vec<JobActivity> = stats
            .active
            .iter()
            .filter(|job| tenant.as_ref().is_none_or(|t| &job.tenant == t))
            .cloned()
            .collect();
        active.sort_by(|a, b| {
            b.started_at
                .cmp(&a.started_at)
                .then_with(|| b.id.as_str().cmp(a.id.as_str()))
        });
        let jobs = match &tenant {
            Some(tenant) => stats.jobs_of(tenant),
            None => stats.jobs.clone(),
        };
        let queues = if tenant.is_none() {
            Some(self.queue_depths().await?)
        } else {
            None
        };
        Ok(Overview {
            documents_per_minute: documents_per_minute(&active, self.clock.now(), 60),
            tenant,
            jobs,
            active,
            queues,
            evaluators: self.loaded_evaluators(),
        })
    }

    /// Every queue's depth, in [`QueueName::ALL`] order.
    async fn queue_depths(&self) -> Result<Vec<(QueueName, QueueDepth)>, PipelineError> {
        let mut depths = Vec::with_capacity(QueueName::ALL.len());
        for queue in QueueName::ALL {
            depths.push((queue, self.queue.depth(queue).await?));
        }
        Ok(depths)
    }

    /// The store's figures, read at most once per [`STATS_TTL`] per process.
    async fn cached_stats(&self) -> Result<StoreStats, StoreError> {
        if let Some(stats) = self.store_stats.within(STATS_TTL) {
            return Ok(stats);
        }
        let stats = self.jobs.stats(self.clock.now() - hour()).await?;
        self.store_stats.keep(stats.clone());
        Ok(stats)
    }

    /// Every evaluator version this process can run now, by name then
    /// version (empty when it loads them on demand).
    pub fn loaded_evaluators(&self) -> Vec<EvaluatorRef> {
        self.evaluators.loaded()
    }

    /// Deployment-wide figures from the store and the queues, and this
    /// process's processing counters, as Prometheus series of `namespace`.
    ///
    /// # Errors
    /// Port errors.
    pub async fn prometheus(&self, namespace: MetricsNamespace) -> Result<String, PipelineError> {
        let now = self.clock.now();
        let stats = self.jobs.stats(now - hour()).await?;
        let mut text = PrometheusText::new(namespace);
        let jobs = "jobs";
        text.family(jobs, "gauge", "Jobs stored, by status.");
        for (status, count) in &stats.jobs {
            text.sample(jobs, &[("status", status.as_str())], *count as f64);
        }
        let documents = "documents";
        text.family(
            documents,
            "gauge",
            "Documents counted by the stored jobs, by outcome.",
        );
        for (status, count) in [
            ("succeeded", stats.documents_succeeded),
            ("failed", stats.documents_failed),
            ("skipped", stats.documents_skipped),
        ] {
            text.sample(documents, &[("status", status)], count as f64);
        }
        let recent = "documents_last_hour";
        text.family(
            recent,
            "gauge",
            "Documents done in the last hour, deployment-wide (each job's documents spread over its active span).",
        )
        .sample(recent, &[], documents_within(&stats.active, now, hour()).round());
        let depth = "queue_depth";
        text.family(depth, "gauge", "Messages in each queue, by state.");
        for (queue, d) in self.queue_depths().await? {
            for (which, count) in [
                ("visible", d.visible),
                ("in_flight", d.in_flight),
                ("dead", d.dead),
            ] {
                text.sample(
                    depth,
                    &[("queue", queue.as_str()), ("state", which)],
                    count as f64,
                );
            }
        }
        text.metrics(&self.metrics.snapshot(now));
        Ok(text.finish())
    }
}

/// Jobs stored in `status`.
fn jobs_in(stats: &StoreStats, status: JobStatus) -> u64 {
    stats
        .jobs
        .iter()
        .find(|(s, _)| *s == status)
        .map_or(0, |(_, n)| *n)
}
