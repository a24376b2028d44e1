//! For operators: the health of every port (one cheap call each) and the
//! deployment's figures in Prometheus text.

use super::{Pipeline, PipelineError};
use crate::metrics::PrometheusText;
use crate::model::{EvaluatorRef, JobId};
use crate::ports::{QueueDepth, QueueName, StoreError};

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
        Health {
            job_store,
            blob_store,
            queues,
            evaluators: self.loaded_evaluators(),
        }
    }

    /// Every evaluator version this process can run now, by name then
    /// version (empty when it loads them on demand).
    pub fn loaded_evaluators(&self) -> Vec<EvaluatorRef> {
        self.evaluators.loaded()
    }

    /// Deployment-wide figures from the store and the queues, and this
    /// process's processing counters, as `docket_` series.
    ///
    /// # Errors
    /// Port errors.
    pub async fn prometheus(&self) -> Result<String, PipelineError> {
        let stats = self.jobs.stats().await?;
        let mut text = PrometheusText::default();
        let jobs = "docket_jobs";
        text.family(jobs, "gauge", "Jobs stored, by status.");
        for (status, count) in &stats.jobs {
            text.sample(jobs, &[("status", status.as_str())], *count as f64);
        }
        let documents = "docket_documents";
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
        let depth = "docket_queue_depth";
        text.family(depth, "gauge", "Messages in each queue, by state.");
        for queue in QueueName::ALL {
            let d = self.queue.depth(queue).await?;
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
        text.metrics(&self.metrics.snapshot(self.clock.now()));
        Ok(text.finish())
    }
}
