//! The client commands on a state directory itself, with no server:
//! `docket jobs|status|cancel|results --state DIR` see and act on the jobs
//! `docket run` (or a stopped `docket serve`) left there — an orphan of a
//! killed run can be seen and cancelled. They print what the API would
//! answer for the same job.

use std::path::Path;

use anyhow::Context;
use docket_core::model::{Job, JobId, JobStatus, TenantId};
use docket_core::pipeline::{Pipeline, PipelineError};
use docket_core::ports::{JobFilter, StoreError};
use docket_core::results::{FilterText, ResultsFormat, ResultsView};
use docket_local::{LocalBackend, LocalOptions};
use docket_plugin_host::Catalog;
use docket_webhook::AddressPolicy;

use crate::local_run::{local_pipeline, plugin_host, stream_results};

/// The jobs of one tenant in a state directory.
pub struct LocalJobs {
    pipeline: Pipeline,
    tenant: TenantId,
    _backend: LocalBackend,
}

impl LocalJobs {
    /// The jobs of `tenant` in `state` (which must exist: a mistyped path
    /// is not an empty directory).
    ///
    /// # Errors
    /// When there is no state directory at `state` or it cannot be opened.
    pub fn open(state: &Path, tenant: &str) -> anyhow::Result<Self> {
        let backend = LocalBackend::open_existing(state, LocalOptions::default())?;
        let catalog = Catalog::new(
            plugin_host(state, 1)?,
            backend.store.clone(),
            backend.blobs.clone(),
        );
        let pipeline = local_pipeline(&backend, catalog, AddressPolicy::default())?;
        Ok(Self {
            pipeline,
            tenant: TenantId::parse(tenant).map_err(|e| anyhow::anyhow!("--tenant: {e}"))?,
            _backend: backend,
        })
    }

    async fn job(&self, id: &str) -> anyhow::Result<Job> {
        let missing = || {
            anyhow::anyhow!(
                "no job {id} of tenant {} in this state directory",
                self.tenant
            )
        };
        let id = JobId::parse(id).map_err(|_| missing())?;
        match self.pipeline.tenant_job(&self.tenant, &id).await {
            Err(PipelineError::Store(StoreError::NotFound(_))) => Err(missing()),
            other => Ok(other?),
        }
    }

    /// The job's status report, as `GET /api/v1/batch/status/{id}` answers.
    ///
    /// # Errors
    /// An unknown job; backend errors.
    pub async fn status(&self, id: &str) -> anyhow::Result<serde_json::Value> {
        let job = self.job(id).await?;
        Ok(serde_json::to_value(self.pipeline.status_report(&job))?)
    }

    /// Cancels the job, as `POST /api/v1/batch/cancel/{id}` does.
    ///
    /// # Errors
    /// An unknown or finished job; backend errors.
    pub async fn cancel(&self, id: &str) -> anyhow::Result<serde_json::Value> {
        let job = self.job(id).await?;
        let cancelled = match self.pipeline.cancel(&job.id).await {
            Err(PipelineError::Store(StoreError::Conflict(_))) => {
                anyhow::bail!("job {} is {} and cannot be cancelled", job.id, job.status)
            }
            other => other?,
        };
        Ok(serde_json::json!({ "job_id": cancelled.id, "status": cancelled.status }))
    }

    /// Writes a finished job's results in `format` to `out`, streamed.
    ///
    /// # Errors
    /// An unknown or unfinished job; backend and write errors.
    pub async fn results(
        &self,
        id: &str,
        format: &str,
        evidence: bool,
        filter: &FilterText,
        out: &mut dyn std::io::Write,
    ) -> anyhow::Result<()> {
        let format: ResultsFormat = format
            .parse()
            .map_err(|e| anyhow::anyhow!("--format: {e}"))?;
        let filter = filter.parse().map_err(|problems| {
            let problems: Vec<String> = problems
                .into_iter()
                .map(|(field, message)| format!("--{}: {message}", field.replace('_', "-")))
                .collect();
            anyhow::anyhow!("{}", problems.join("; "))
        })?;
        let job = self.job(id).await?;
        if job.finished_at.is_none() {
            anyhow::bail!(
                "job {} is {}, not finished; a `docket run` of the same inputs (or `docket serve`) on this state directory goes on with it",
                job.id,
                job.status
            );
        }
        let view = ResultsView {
            evidence,
            filter,
            ..ResultsView::whole(format)
        };
        stream_results(&self.pipeline, &job.id, view, out)
            .await
            .context("writing the results")
    }

    /// One page of the tenant's jobs, newest first, as
    /// `GET /api/v1/batch/jobs` answers.
    ///
    /// # Errors
    /// A bad status or cursor; backend errors.
    pub async fn jobs(
        &self,
        status: Option<&str>,
        limit: usize,
        cursor: Option<&str>,
    ) -> anyhow::Result<serde_json::Value> {
        if !(1..=100).contains(&limit) {
            anyhow::bail!("--limit: must be between 1 and 100");
        }
        let status = status
            .map(|s| {
                s.parse::<JobStatus>()
                    .map_err(|e| anyhow::anyhow!("--status: {e}"))
            })
            .transpose()?;
        let before = cursor
            .map(|c| {
                JobId::parse(c)
                    .map_err(|_| anyhow::anyhow!("--cursor: not a cursor printed by docket jobs"))
            })
            .transpose()?;
        let filter = JobFilter {
            status,
            since: None,
            before,
            limit: limit + 1,
        };
        let jobs = self.pipeline.list_jobs(&self.tenant, &filter).await?;
        Ok(docket_api::jobs_page(&self.pipeline, jobs, limit))
    }
}
