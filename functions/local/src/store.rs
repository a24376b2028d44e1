//! [`JobStore`] on SQLite: the job row holds the job as JSON (counters
//! included); outcomes are rows keyed by (job, item). Recording outcomes is
//! one `BEGIN IMMEDIATE` transaction: insert-if-absent, count, update.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use docket_core::FailureCategory;
use docket_core::auth::ApiKey;
use docket_core::model::{ItemOutcome, ItemStatus, Job, JobId, JobStatus, TenantId};
use docket_core::plugin::{Manifest, sort_manifests};
use docket_core::ports::BackendError;
use docket_core::ports::{
    ApiKeyStore, JobActivity, JobFilter, JobStore, PluginRegistry, RateLimiter, RecordReceipt,
    StoreError, StoreStats, WebhookSecrets, check_republish,
};
use docket_core::quota::{self, Grant, Rate};
use docket_core::webhook::WebhookDelivery;
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::db::{Database, backend_error, millis};

/// Jobs and outcomes in SQLite.
pub struct SqliteJobStore {
    db: Arc<Database>,
}

fn corrupt(what: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(BackendError::new(
        FailureCategory::Permanent,
        format!("stored {what} is not readable: {error}"),
    ))
}

fn sql(error: rusqlite::Error) -> StoreError {
    StoreError::Backend(backend_error(error))
}

fn read_job(tx: &Transaction<'_>, id: &JobId) -> Result<Job, StoreError> {
    let body: Option<String> = tx
        .prepare_cached("SELECT body FROM jobs WHERE id = ?1")
        .and_then(|mut s| {
            s.query_row(params![id.as_str()], |row| row.get(0))
                .optional()
        })
        .map_err(sql)?;
    let body = body.ok_or_else(|| StoreError::NotFound(id.to_string()))?;
    serde_json::from_str(&body).map_err(|e| corrupt("job", e))
}

fn write_job(tx: &Transaction<'_>, job: &Job) -> Result<(), StoreError> {
    let body = serde_json::to_string(job).map_err(|e| corrupt("job", e))?;
    tx.prepare_cached("UPDATE jobs SET status = ?2, body = ?3 WHERE id = ?1")
        .and_then(|mut s| s.execute(params![job.id.as_str(), job.status.as_str(), body]))
        .map_err(sql)?;
    Ok(())
}

/// One outcome as it is written: its keys and its JSON.
struct OutcomeRow {
    item: u32,
    document: u32,
    chunks: u32,
    status: ItemStatus,
    /// A failed item's category and sample, for the job's tally.
    failure: Option<(FailureCategory, docket_core::model::FailureSample)>,
    body: String,
}

impl SqliteJobStore {
    /// A store over `db`.
    pub fn new(db: Arc<Database>) -> Self {
        Self { db }
    }

    /// Runs `change` on the job inside an immediate transaction and writes
    /// the job back when it returns `Ok`.
    async fn update<R: Send + 'static>(
        &self,
        id: &JobId,
        change: impl FnOnce(&Transaction<'_>, &mut Job) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<(R, Job), StoreError> {
        let id = id.clone();
        self.db
            .write(move |connection| {
                let tx = connection
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                    .map_err(sql)?;
                let mut job = read_job(&tx, &id)?;
                let result = change(&tx, &mut job)?;
                write_job(&tx, &job)?;
                tx.commit().map_err(sql)?;
                Ok((result, job))
            })
            .await
    }

    /// Runs one write ([`Database::write`]).
    async fn write<R: Send + 'static>(
        &self,
        operation: impl FnOnce(&mut Connection) -> rusqlite::Result<R> + Send + 'static,
    ) -> Result<R, StoreError> {
        self.db.write(operation).await.map_err(sql)
    }

    /// Runs one read ([`Database::read`]).
    fn read<R>(
        &self,
        operation: impl FnOnce(&Connection) -> rusqlite::Result<R>,
    ) -> Result<R, StoreError> {
        self.db.read(operation).map_err(sql)
    }
}

#[async_trait]
impl JobStore for SqliteJobStore {
    async fn create_job(&self, job: &Job) -> Result<(), StoreError> {
        let body = serde_json::to_string(job).map_err(|e| corrupt("job", e))?;
        let (id, tenant, status) = (job.id.clone(), job.tenant.clone(), job.status);
        let created = millis(job.created_at);
        let inserted = self
            .write(move |connection| {
                connection.execute(
                    "INSERT OR IGNORE INTO jobs (id, tenant, status, created_ms, body) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![id.as_str(), tenant.as_str(), status.as_str(), created, body],
                )
            })
            .await?;
        if inserted == 0 {
            return Err(StoreError::Conflict(format!(
                "job {} already exists",
                job.id
            )));
        }
        Ok(())
    }

    async fn job(&self, id: &JobId) -> Result<Job, StoreError> {
        let key = id.clone();
        let body: Option<String> = self.read(move |connection| {
            connection
                .query_row(
                    "SELECT body FROM jobs WHERE id = ?1",
                    params![key.as_str()],
                    |row| row.get(0),
                )
                .optional()
        })?;
        let body = body.ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        serde_json::from_str(&body).map_err(|e| corrupt("job", e))
    }

    async fn record_outcomes(
        &self,
        id: &JobId,
        outcomes: &[ItemOutcome],
        now: DateTime<Utc>,
    ) -> Result<RecordReceipt, StoreError> {
        // Serialized here, before the transaction: the lock is held for the
        // rows alone.
        let rows = outcomes
            .iter()
            .map(|outcome| {
                let body = serde_json::to_string(outcome).map_err(|e| corrupt("outcome", e))?;
                Ok(OutcomeRow {
                    item: outcome.item,
                    document: outcome.document,
                    chunks: outcome.chunk.count,
                    status: outcome.result.status(),
                    failure: outcome.failure_sample(),
                    body,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let job_id = id.clone();
        let ((recorded, duplicates, completed_job), job) = self.update(id, move |tx, job| {
            let id = job_id;
            let pending_before = job.counters.items_pending();
            let mut recorded = Vec::new();
            let mut duplicates = Vec::new();
            let mut seen = HashSet::new();
            let mut insert = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO outcomes (job_id, item, document, status, body) VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(sql)?;
            let mut document_states = tx
                .prepare_cached("SELECT status FROM outcomes WHERE job_id = ?1 AND document = ?2")
                .map_err(sql)?;
            for row in rows {
                if !seen.insert(row.item) {
                    duplicates.push(row.item);
                    continue;
                }
                let status = row.status;
                let inserted = insert
                    .execute(params![
                        id.as_str(),
                        row.item,
                        row.document,
                        status.as_str(),
                        row.body
                    ])
                    .map_err(sql)?;
                if inserted == 0 {
                    duplicates.push(row.item);
                    continue;
                }
                recorded.push(row.item);
                let states: Vec<String> = if row.chunks <= 1 {
                    Vec::new()
                } else {
                    document_states
                        .query_map(params![id.as_str(), row.document], |row| row.get(0))
                        .and_then(|rows| rows.collect())
                        .map_err(sql)?
                };
                let states = states
                    .iter()
                    .map(|s| s.parse::<ItemStatus>())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| StoreError::Backend(BackendError::new(FailureCategory::Permanent, e)))?;
                job.counters.count_item(status, row.chunks, &states);
                if let Some((category, sample)) = row.failure {
                    job.tally_failure(category, sample);
                }
            }
            if !recorded.is_empty() && job.status == JobStatus::Queued {
                job.status = JobStatus::Processing;
                job.started_at = Some(now);
            }
            let completed = !recorded.is_empty() && pending_before > 0 && job.counters.items_pending() == 0;
            Ok((recorded, duplicates, completed))
        })
        .await?;
        Ok(RecordReceipt {
            recorded,
            duplicates,
            counters: job.counters,
            status: job.status,
            completed_job,
        })
    }

    async fn outcomes_page(
        &self,
        id: &JobId,
        after: Option<u32>,
        limit: usize,
    ) -> Result<Vec<ItemOutcome>, StoreError> {
        self.job(id).await?;
        let id = id.clone();
        let bodies: Vec<String> = self
            .read(move |connection| {
                connection
                    .prepare_cached(
                        "SELECT body FROM outcomes WHERE job_id = ?1 AND item > ?2 ORDER BY item LIMIT ?3",
                    )?
                    .query_map(
                        params![
                            id.as_str(),
                            after.map_or(-1, i64::from),
                            limit.min(i64::MAX as usize) as i64
                        ],
                        |row| row.get(0),
                    )?
                    .collect()
            })?;
        // Parsed outside the lock.
        bodies
            .iter()
            .map(|body| serde_json::from_str(body).map_err(|e| corrupt("outcome", e)))
            .collect()
    }

    async fn transition(
        &self,
        id: &JobId,
        from: &[JobStatus],
        to: JobStatus,
    ) -> Result<Job, StoreError> {
        let from = from.to_vec();
        let ((), job) = self
            .update(id, move |_, job| {
                job.transition(&from, to).map_err(StoreError::from)
            })
            .await?;
        Ok(job)
    }

    async fn extend_job(
        &self,
        id: &JobId,
        documents: u32,
        items: u32,
        close: bool,
        from: Option<u32>,
    ) -> Result<Job, StoreError> {
        let ((), job) = self
            .update(id, move |_, job| {
                job.extend(documents, items, close, from)
                    .map_err(StoreError::from)
            })
            .await?;
        Ok(job)
    }

    async fn halt_job(&self, id: &JobId, reason: &str) -> Result<bool, StoreError> {
        let reason = reason.to_owned();
        let (set, _) = self.update(id, move |_, job| Ok(job.halt(&reason))).await?;
        Ok(set)
    }

    async fn finish_job(
        &self,
        id: &JobId,
        status: JobStatus,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Job, StoreError> {
        let error = error.map(str::to_owned);
        let ((), job) = self
            .update(id, move |_, job| {
                job.finish(status, error.as_deref(), now)
                    .map_err(StoreError::from)
            })
            .await?;
        Ok(job)
    }

    async fn set_webhook(&self, id: &JobId, delivery: &WebhookDelivery) -> Result<(), StoreError> {
        let delivery = delivery.clone();
        self.update(id, move |_, job| {
            job.set_webhook(&delivery);
            Ok(())
        })
        .await?;
        Ok(())
    }

    async fn stats(&self, active_since: DateTime<Utc>) -> Result<StoreStats, StoreError> {
        let rows: Vec<(String, String, i64, i64, i64, i64)> = self.read(|connection| {
            connection
                .prepare_cached(
                    "SELECT tenant, status, count(*),
                                sum(json_extract(body, '$.counters.documents_succeeded')),
                                sum(json_extract(body, '$.counters.documents_failed')),
                                sum(json_extract(body, '$.counters.documents_skipped'))
                         FROM jobs GROUP BY tenant, status",
                )?
                .query_map([], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, i64>(2)?,
                        row.get::<_, Option<i64>>(3)?.unwrap_or(0),
                        row.get::<_, Option<i64>>(4)?.unwrap_or(0),
                        row.get::<_, Option<i64>>(5)?.unwrap_or(0),
                    ))
                })?
                .collect()
        })?;
        let mut stats = StoreStats::zero();
        for (tenant, status, jobs, succeeded, failed, skipped) in rows {
            let tenant = TenantId::parse(&tenant).map_err(|e| corrupt("job tenant", e))?;
            let status = status
                .parse::<JobStatus>()
                .map_err(|e| corrupt("job status", e))?;
            stats.count_jobs(&tenant, status, jobs as u64);
            stats.documents_succeeded += succeeded as u64;
            stats.documents_failed += failed as u64;
            stats.documents_skipped += skipped as u64;
        }
        // Started jobs unfinished at `active_since`: the text comparison on
        // whole seconds keeps a superset, `JobActivity::of` decides.
        let since = (active_since - chrono::Duration::seconds(1))
            .format("%Y-%m-%dT%H:%M:%S")
            .to_string();
        let bodies: Vec<String> = self.read(|connection| {
            connection
                .prepare_cached(
                    "SELECT body FROM jobs
                     WHERE json_extract(body, '$.started_at') IS NOT NULL
                       AND (json_extract(body, '$.finished_at') IS NULL
                            OR json_extract(body, '$.finished_at') >= ?1)",
                )?
                .query_map([since], |row| row.get(0))?
                .collect()
        })?;
        for body in bodies {
            let job: Job = serde_json::from_str(&body).map_err(|e| corrupt("job", e))?;
            stats.active.extend(JobActivity::of(&job, active_since));
        }
        Ok(stats)
    }

    async fn list_jobs(
        &self,
        tenant: &TenantId,
        filter: &JobFilter,
    ) -> Result<Vec<Job>, StoreError> {
        let tenant = tenant.clone();
        let filter = filter.clone();
        let bodies: Vec<String> = self
            .read(move |connection| {
                connection
                    .prepare_cached(
                        "SELECT body FROM jobs
                         WHERE tenant = ?1
                           AND (?2 IS NULL OR status = ?2)
                           AND (?3 IS NULL OR created_ms >= ?3)
                           AND (?4 IS NULL
                                OR created_ms < (SELECT created_ms FROM jobs WHERE id = ?4)
                                OR (created_ms = (SELECT created_ms FROM jobs WHERE id = ?4) AND id < ?4))
                         ORDER BY created_ms DESC, id DESC LIMIT ?5",
                    )?
                    .query_map(
                        params![
                            tenant.as_str(),
                            filter.status.map(JobStatus::as_str),
                            filter.since.map(millis),
                            filter.before.as_ref().map(JobId::as_str),
                            filter.limit.clamp(1, 1000) as i64
                        ],
                        |row| row.get(0),
                    )?
                    .collect()
            })?;
        bodies
            .iter()
            .map(|body| serde_json::from_str(body).map_err(|e| corrupt("job", e)))
            .collect()
    }
}

#[async_trait]
impl ApiKeyStore for SqliteJobStore {
    async fn put_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        let body = serde_json::to_string(key).map_err(|e| corrupt("api key", e))?;
        let (hash, tenant) = (key.hash.clone(), key.tenant.clone());
        let inserted = self
            .write(move |connection| {
                connection.execute(
                    "INSERT OR IGNORE INTO api_keys (hash, tenant, body) VALUES (?1, ?2, ?3)",
                    params![hash, tenant.as_str(), body],
                )
            })
            .await?;
        if inserted == 0 {
            return Err(StoreError::Conflict(
                "an API key with this hash exists".into(),
            ));
        }
        Ok(())
    }

    async fn api_key(&self, hash: &str) -> Result<ApiKey, StoreError> {
        let hash = hash.to_owned();
        let body: Option<String> = self.read(move |connection| {
            connection
                .query_row(
                    "SELECT body FROM api_keys WHERE hash = ?1",
                    params![hash],
                    |row| row.get(0),
                )
                .optional()
        })?;
        let body = body.ok_or_else(|| StoreError::NotFound("api key".into()))?;
        serde_json::from_str(&body).map_err(|e| corrupt("api key", e))
    }
}

#[async_trait]
impl RateLimiter for SqliteJobStore {
    async fn take_token(
        &self,
        bucket: &str,
        rate: Rate,
        now: DateTime<Utc>,
    ) -> Result<Grant, StoreError> {
        let bucket = bucket.to_owned();
        self.db
            .write(move |connection| {
                let tx = connection
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                    .map_err(sql)?;
                let stored: Option<String> = tx
                    .query_row(
                        "SELECT body FROM buckets WHERE key = ?1",
                        params![bucket],
                        |row| row.get(0),
                    )
                    .optional()
                    .map_err(sql)?;
                let state = match stored {
                    Some(body) => {
                        Some(serde_json::from_str(&body).map_err(|e| corrupt("bucket", e))?)
                    }
                    None => None,
                };
                let (state, grant) = quota::take(state, rate, now);
                let body = serde_json::to_string(&state).map_err(|e| corrupt("bucket", e))?;
                tx.execute(
                    "INSERT INTO buckets (key, body) VALUES (?1, ?2)
                     ON CONFLICT (key) DO UPDATE SET body = excluded.body",
                    params![bucket, body],
                )
                .map_err(sql)?;
                tx.commit().map_err(sql)?;
                Ok(grant)
            })
            .await
    }
}

#[async_trait]
impl WebhookSecrets for SqliteJobStore {
    async fn webhook_secret(
        &self,
        tenant: &TenantId,
        candidate: &str,
    ) -> Result<String, StoreError> {
        let (tenant, candidate) = (tenant.clone(), candidate.to_owned());
        self.write(move |connection| {
            connection.execute(
                "INSERT OR IGNORE INTO tenants (tenant, webhook_secret) VALUES (?1, ?2)",
                params![tenant.as_str(), candidate],
            )?;
            connection.query_row(
                "SELECT webhook_secret FROM tenants WHERE tenant = ?1",
                params![tenant.as_str()],
                |row| row.get(0),
            )
        })
        .await
    }
}

#[async_trait]
impl PluginRegistry for SqliteJobStore {
    async fn register_plugin(&self, manifest: &Manifest) -> Result<bool, StoreError> {
        let body = serde_json::to_string(manifest).map_err(|e| corrupt("plugin", e))?;
        let (name, version) = (manifest.name.clone(), manifest.version.clone());
        // The stored manifest of this name and version when one was there.
        let existing: Option<String> = self
            .write(move |connection| {
                let inserted = connection.execute(
                    "INSERT OR IGNORE INTO plugins (name, version, body) VALUES (?1, ?2, ?3)",
                    params![name, version, body],
                )?;
                if inserted == 1 {
                    return Ok(None);
                }
                connection
                    .query_row(
                        "SELECT body FROM plugins WHERE name = ?1 AND version = ?2",
                        params![name, version],
                        |row| row.get(0),
                    )
                    .map(Some)
            })
            .await?;
        let Some(existing) = existing else {
            return Ok(true);
        };
        let existing = serde_json::from_str(&existing).map_err(|e| corrupt("plugin", e))?;
        check_republish(&existing, manifest)
    }

    async fn plugins(&self, name: Option<&str>) -> Result<Vec<Manifest>, StoreError> {
        let name = name.map(str::to_owned);
        let bodies: Vec<String> = self.read(move |connection| {
            connection
                .prepare_cached("SELECT body FROM plugins WHERE ?1 IS NULL OR name = ?1")?
                .query_map(params![name], |row| row.get(0))?
                .collect()
        })?;
        let mut manifests = bodies
            .iter()
            .map(|body| serde_json::from_str(body).map_err(|e| corrupt("plugin", e)))
            .collect::<Result<Vec<Manifest>, _>>()?;
        sort_manifests(&mut manifests);
        Ok(manifests)
    }
}
