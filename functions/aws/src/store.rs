//! `JobStore` on one DynamoDB table.
//!
//! | item | pk | sk | attributes |
//! |---|---|---|---|
//! | job | `JOB#<id>` | `JOB` | `body` (the job as JSON), `status`, `version`, `tenant`, `created_key` (`<created ms, 13 digits>#<id>`), `expires_at` once finished |
//! | item outcome | `JOB#<id>` | `ITEM#<item, 8 digits>` | `body` (JSON), `status`, `document` |
//! | API key | `KEY#<sha256>` | `KEY` | `body` |
//! | tenant | `TENANT#<tenant>` | `SECRET` | `secret` (webhook signing secret) |
//! | rate bucket | `BUCKET#<name>` | `BUCKET` | `body`, `version` |
//! | published plugin | `PLUGINS` | `<name>#<version>` | `body` (the manifest as JSON), `sha256` |
//!
//! The `by-tenant` index (`tenant`, `created_key`) lists a tenant's jobs by
//! time; only job items carry those attributes. Every change of a job is
//! conditioned on its `version` (optimistic concurrency, retried on
//! conflict). Recording outcomes is ONE `TransactWriteItems`: each outcome
//! put on condition that the item has none, and the job's counters updated
//! on condition of the version they were computed from — a duplicate
//! delivery or a concurrent recorder makes the transaction fail and the
//! call starts over from a fresh read.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Put, TransactWriteItem};
use chrono::{DateTime, Utc};
use docket_core::FailureCategory;
use docket_core::auth::ApiKey;
use docket_core::model::{ItemOutcome, ItemStatus, Job, JobId, JobStatus, TenantId};
use docket_core::plugin::{Manifest, sort_manifests};
use docket_core::ports::{
    ApiKeyStore, BackendError, JobActivity, JobFilter, JobStore, PluginRegistry, RateLimiter,
    RecordReceipt, StoreError, StoreStats, WebhookSecrets, check_republish,
};
use docket_core::quota::{self, BucketState, Grant, Rate};
use docket_core::webhook::WebhookDelivery;

use crate::error::{backend, code};
use crate::{CREATED_KEY, PARTITION_KEY, SORT_KEY, TENANT_INDEX, TENANT_KEY, TTL_ATTRIBUTE};

/// Optimistic attempts before a contended change gives up (as a
/// retryable error).
const ATTEMPTS: u32 = 20;

/// The pause before retrying a change that lost a race on its item: full
/// jitter (uniform in `[0, bound)`, `unit` in `[0, 1)`) over a bound that
/// doubles from 4 ms per lost race, up to 200 ms — so writers contending for
/// one job's item spread out instead of paying a read and a write back to
/// back, under 3 s in all over [`ATTEMPTS`].
fn contention_pause(lost: u32, unit: f64) -> std::time::Duration {
    let bound_ms = (2u64 << lost.min(7)).min(200);
    std::time::Duration::from_secs_f64(bound_ms as f64 * unit.clamp(0.0, 1.0) / 1000.0)
}

/// Waits [`contention_pause`] after the `lost`-th lost race (none before
/// the first attempt).
async fn after_lost_race(lost: u32) {
    use std::hash::{BuildHasher, Hasher};
    if lost == 0 {
        return;
    }
    // A fresh randomly keyed hasher per call: jitter without a random
    // number generator dependency.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(lost);
    let unit = (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64;
    tokio::time::sleep(contention_pause(lost, unit)).await;
}

/// Outcomes per transaction: DynamoDB takes 100 actions, one is the job.
const OUTCOMES_PER_TRANSACTION: usize = 99;

/// The partition holding every published plugin version.
const PLUGINS: &str = "PLUGINS";

/// How long a finished job and its outcomes are kept (the TTL).
const RETENTION_DAYS: i64 = 30;

type Item = HashMap<String, AttributeValue>;

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

fn number(item: &Item, name: &str) -> Option<i64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

/// The JSON `body` attribute of a stored `what`.
fn body<T: serde::de::DeserializeOwned>(item: &Item, what: &str) -> Result<T, StoreError> {
    let body = text(item, "body").ok_or_else(|| corrupt(what, "no body"))?;
    serde_json::from_str(body).map_err(|e| corrupt(what, e))
}

fn corrupt(what: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(BackendError::new(
        FailureCategory::Permanent,
        format!("stored {what} is not readable: {error}"),
    ))
}

fn build(error: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(BackendError::new(
        FailureCategory::Permanent,
        error.to_string(),
    ))
}

fn contended(what: &str) -> StoreError {
    StoreError::Backend(BackendError::new(
        FailureCategory::Transient,
        format!("{what}: still contended after {ATTEMPTS} attempts"),
    ))
}

fn job_key(id: &JobId) -> String {
    format!("JOB#{id}")
}

fn item_key(item: u32) -> String {
    format!("ITEM#{item:08}")
}

fn created_key(job: &Job) -> String {
    format!(
        "{:013}#{}",
        job.created_at.timestamp_millis().max(0),
        job.id
    )
}

/// The job store on `table`.
pub struct DynamoJobStore {
    client: Client,
    table: String,
}

impl DynamoJobStore {
    /// The store on `table`.
    pub fn new(client: Client, table: String) -> Self {
        Self { client, table }
    }

    fn key(pk: String, sk: &str) -> Item {
        HashMap::from([
            (PARTITION_KEY.to_owned(), s(pk)),
            (SORT_KEY.to_owned(), s(sk)),
        ])
    }

    async fn get(&self, pk: String, sk: &str) -> Result<Option<Item>, StoreError> {
        let got = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend("get item", &e))?;
        Ok(got.item)
    }

    /// The job and its version.
    async fn read_job(&self, id: &JobId) -> Result<(Job, i64), StoreError> {
        let item = self
            .get(job_key(id), "JOB")
            .await?
            .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        let job = body(&item, "job")?;
        Ok((job, number(&item, "version").unwrap_or(0)))
    }

    /// The job item to write at `version`.
    fn job_item(job: &Job, version: i64) -> Result<Item, StoreError> {
        let mut item = Self::key(job_key(&job.id), "JOB");
        item.insert(
            "body".into(),
            s(serde_json::to_string(job).map_err(|e| corrupt("job", e))?),
        );
        item.insert("status".into(), s(job.status.as_str()));
        item.insert("version".into(), n(version));
        item.insert(TENANT_KEY.into(), s(job.tenant.as_str()));
        item.insert(CREATED_KEY.into(), s(created_key(job)));
        if let Some(finished) = job.finished_at {
            let expires = finished + chrono::Duration::days(RETENTION_DAYS);
            item.insert(TTL_ATTRIBUTE.into(), n(expires.timestamp()));
        }
        Ok(item)
    }

    /// A put of the job at `version + 1`, on condition it is still at
    /// `version`.
    fn job_put(&self, job: &Job, version: i64) -> Result<Put, StoreError> {
        Put::builder()
            .table_name(&self.table)
            .set_item(Some(Self::job_item(job, version + 1)?))
            .condition_expression("version = :v")
            .expression_attribute_values(":v", n(version))
            .build()
            .map_err(build)
    }

    /// Read, change, write on condition of the version read; again on a
    /// lost race.
    async fn update<R>(
        &self,
        id: &JobId,
        mut change: impl FnMut(&mut Job) -> Result<R, StoreError>,
    ) -> Result<(R, Job), StoreError> {
        for lost in 0..ATTEMPTS {
            after_lost_race(lost).await;
            let (mut job, version) = self.read_job(id).await?;
            let result = change(&mut job)?;
            let put = self.job_put(&job, version)?;
            let written = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(put.item().clone().into())
                .condition_expression("version = :v")
                .expression_attribute_values(":v", n(version))
                .send()
                .await;
            match written {
                Ok(_) => return Ok((result, job)),
                Err(e) if code(&e) == Some("ConditionalCheckFailedException") => continue,
                Err(e) => return Err(backend("update job", &e).into()),
            }
        }
        Err(contended("update job"))
    }

    /// Puts `item` unless its key exists; `Ok(false)` when it did.
    async fn put_new(&self, item: Item) -> Result<bool, StoreError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match put {
            Ok(_) => Ok(true),
            Err(e) if code(&e) == Some("ConditionalCheckFailedException") => Ok(false),
            Err(e) => Err(backend("put item", &e).into()),
        }
    }

    /// Which of `items` of the job already have an outcome.
    async fn recorded_items(&self, id: &JobId, items: &[u32]) -> Result<HashSet<u32>, StoreError> {
        let mut found = HashSet::new();
        for batch in items.chunks(100) {
            let mut keys: Vec<Item> = batch
                .iter()
                .map(|item| Self::key(job_key(id), &item_key(*item)))
                .collect();
            while !keys.is_empty() {
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .consistent_read(true)
                    .projection_expression("sk")
                    .build()
                    .map_err(build)?;
                let got = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| backend("batch get", &e))?;
                for item in got
                    .responses
                    .and_then(|mut r| r.remove(&self.table))
                    .unwrap_or_default()
                {
                    if let Some(index) = text(&item, "sk")
                        .and_then(|sk| sk.strip_prefix("ITEM#"))
                        .and_then(|i| i.parse().ok())
                    {
                        found.insert(index);
                    }
                }
                keys = got
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                    .map(|k| k.keys)
                    .unwrap_or_default();
            }
        }
        Ok(found)
    }

    /// Statuses of the recorded items `first..=last` of the job.
    async fn statuses(
        &self,
        id: &JobId,
        first: u32,
        last: u32,
    ) -> Result<Vec<ItemStatus>, StoreError> {
        let mut statuses = Vec::new();
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :first AND :last")
            .expression_attribute_values(":pk", s(job_key(id)))
            .expression_attribute_values(":first", s(item_key(first)))
            .expression_attribute_values(":last", s(item_key(last)))
            .expression_attribute_names("#status", "status")
            .projection_expression("#status")
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        while let Some(item) = pages.next().await {
            let item = item.map_err(|e| backend("query", &e))?;
            let status = text(&item, "status").unwrap_or_default();
            statuses.push(status.parse().map_err(|e: String| {
                StoreError::Backend(BackendError::new(FailureCategory::Permanent, e))
            })?);
        }
        Ok(statuses)
    }

    /// One optimistic round of `record_outcomes` for at most
    /// [`OUTCOMES_PER_TRANSACTION`] outcomes. `None`: lost a race, try again.
    async fn record_once(
        &self,
        id: &JobId,
        outcomes: &[&ItemOutcome],
        now: DateTime<Utc>,
    ) -> Result<Option<(RecordReceipt, bool)>, StoreError> {
        let mut items: Vec<u32> = outcomes.iter().map(|o| o.item).collect();
        items.sort_unstable();
        items.dedup();
        // Both reads at once: the write below is conditioned on what each
        // found (the job's version, each outcome absent), so their order
        // does not matter.
        let ((mut job, version), already) =
            tokio::try_join!(self.read_job(id), self.recorded_items(id, &items))?;
        let pending_before = job.counters.items_pending();
        let mut recorded = Vec::new();
        let mut duplicates = Vec::new();
        let mut seen = HashSet::new();
        let mut documents: HashMap<u32, Vec<ItemStatus>> = HashMap::new();
        let mut writes = Vec::new();
        for outcome in outcomes {
            if already.contains(&outcome.item) || !seen.insert(outcome.item) {
                duplicates.push(outcome.item);
                continue;
            }
            let status = outcome.result.status();
            let count = outcome.chunk.count;
            let mut states: &[ItemStatus] = &[];
            if count > 1 {
                let document = match documents.entry(outcome.document) {
                    std::collections::hash_map::Entry::Occupied(known) => known.into_mut(),
                    std::collections::hash_map::Entry::Vacant(slot) => {
                        let first = outcome.item - outcome.chunk.index;
                        slot.insert(self.statuses(id, first, first + count - 1).await?)
                    }
                };
                document.push(status);
                states = document;
            }
            job.counters.count_item(status, count, states);
            if let Some((category, sample)) = outcome.failure_sample() {
                job.tally_failure(category, sample);
            }
            recorded.push(outcome.item);
            let mut item = Self::key(job_key(id), &item_key(outcome.item));
            item.insert(
                "body".into(),
                s(serde_json::to_string(outcome).map_err(|e| corrupt("outcome", e))?),
            );
            item.insert("status".into(), s(status.as_str()));
            item.insert("document".into(), n(outcome.document));
            writes.push(
                TransactWriteItem::builder()
                    .put(
                        Put::builder()
                            .table_name(&self.table)
                            .set_item(Some(item))
                            .condition_expression("attribute_not_exists(pk)")
                            .build()
                            .map_err(build)?,
                    )
                    .build(),
            );
        }
        if recorded.is_empty() {
            let receipt = RecordReceipt {
                recorded,
                duplicates,
                counters: job.counters,
                status: job.status,
                completed_job: false,
            };
            return Ok(Some((receipt, false)));
        }
        if job.status == JobStatus::Queued {
            job.status = JobStatus::Processing;
            job.started_at = Some(now);
        }
        let completed = pending_before > 0 && job.counters.items_pending() == 0;
        writes.push(
            TransactWriteItem::builder()
                .put(self.job_put(&job, version)?)
                .build(),
        );
        let written = self
            .client
            .transact_write_items()
            .set_transact_items(Some(writes))
            .send()
            .await;
        match written {
            Ok(_) => Ok(Some((
                RecordReceipt {
                    recorded,
                    duplicates,
                    counters: job.counters,
                    status: job.status,
                    completed_job: completed,
                },
                completed,
            ))),
            Err(e)
                if matches!(
                    code(&e),
                    Some("TransactionCanceledException" | "TransactionConflictException")
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(backend("record outcomes", &e).into()),
        }
    }
}

#[async_trait]
impl JobStore for DynamoJobStore {
    async fn create_job(&self, job: &Job) -> Result<(), StoreError> {
        if self.put_new(Self::job_item(job, 1)?).await? {
            Ok(())
        } else {
            Err(StoreError::Conflict(format!("job {} exists", job.id)))
        }
    }

    async fn job(&self, id: &JobId) -> Result<Job, StoreError> {
        Ok(self.read_job(id).await?.0)
    }

    async fn record_outcomes(
        &self,
        id: &JobId,
        outcomes: &[ItemOutcome],
        now: DateTime<Utc>,
    ) -> Result<RecordReceipt, StoreError> {
        let all: Vec<&ItemOutcome> = outcomes.iter().collect();
        let mut receipt: Option<RecordReceipt> = None;
        let groups: Vec<&[&ItemOutcome]> = if all.is_empty() {
            vec![&[]]
        } else {
            all.chunks(OUTCOMES_PER_TRANSACTION).collect()
        };
        for group in groups {
            let mut done = None;
            for lost in 0..ATTEMPTS {
                after_lost_race(lost).await;
                if let Some(result) = self.record_once(id, group, now).await? {
                    done = Some(result);
                    break;
                }
            }
            let (part, completed) = done.ok_or_else(|| contended("record outcomes"))?;
            receipt = Some(match receipt {
                None => part,
                Some(mut total) => {
                    total.recorded.extend(part.recorded);
                    total.duplicates.extend(part.duplicates);
                    total.counters = part.counters;
                    total.status = part.status;
                    total.completed_job |= completed;
                    total
                }
            });
        }
        receipt.ok_or_else(|| contended("record outcomes"))
    }

    async fn outcomes_page(
        &self,
        id: &JobId,
        after: Option<u32>,
        limit: usize,
    ) -> Result<Vec<ItemOutcome>, StoreError> {
        self.read_job(id).await?;
        // Item keys are zero-padded: their order is the items' order.
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :items)")
            .expression_attribute_values(":pk", s(job_key(id)))
            .expression_attribute_values(":items", s("ITEM#"))
            .consistent_read(true)
            .limit(i32::try_from(limit.max(1)).unwrap_or(i32::MAX));
        if let Some(after) = after {
            query = query
                .exclusive_start_key("pk", s(job_key(id)))
                .exclusive_start_key("sk", s(item_key(after)));
        }
        let page = query.send().await.map_err(|e| backend("query", &e))?;
        let mut outcomes = Vec::with_capacity(page.items().len());
        for item in page.items() {
            outcomes.push(body(item, "outcome")?);
        }
        Ok(outcomes)
    }

    async fn transition(
        &self,
        id: &JobId,
        from: &[JobStatus],
        to: JobStatus,
    ) -> Result<Job, StoreError> {
        let ((), job) = self
            .update(id, |job| job.transition(from, to).map_err(StoreError::from))
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
            .update(id, |job| {
                job.extend(documents, items, close, from)
                    .map_err(StoreError::from)
            })
            .await?;
        Ok(job)
    }

    async fn halt_job(&self, id: &JobId, reason: &str) -> Result<bool, StoreError> {
        let (set, _) = self.update(id, |job| Ok(job.halt(reason))).await?;
        Ok(set)
    }

    async fn finish_job(
        &self,
        id: &JobId,
        status: JobStatus,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Job, StoreError> {
        let ((), job) = self
            .update(id, |job| {
                job.finish(status, error, now).map_err(StoreError::from)
            })
            .await?;
        Ok(job)
    }

    async fn set_webhook(&self, id: &JobId, delivery: &WebhookDelivery) -> Result<(), StoreError> {
        self.update(id, |job| {
            job.set_webhook(delivery);
            Ok(())
        })
        .await?;
        Ok(())
    }

    async fn stats(&self, active_since: DateTime<Utc>) -> Result<StoreStats, StoreError> {
        let mut stats = StoreStats::zero();
        // Operators' figures: a scan of the job items (not on a hot path).
        let mut pages = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("sk = :job")
            .expression_attribute_values(":job", s("JOB"))
            .projection_expression("body")
            .into_paginator()
            .items()
            .send();
        while let Some(item) = pages.next().await {
            let item = item.map_err(|e| backend("scan", &e))?;
            let job: Job = body(&item, "job")?;
            stats.count_jobs(&job.tenant, job.status, 1);
            stats.documents_succeeded += u64::from(job.counters.documents_succeeded);
            stats.documents_failed += u64::from(job.counters.documents_failed);
            stats.documents_skipped += u64::from(job.counters.documents_skipped);
            stats.active.extend(JobActivity::of(&job, active_since));
        }
        Ok(stats)
    }

    async fn list_jobs(
        &self,
        tenant: &TenantId,
        filter: &JobFilter,
    ) -> Result<Vec<Job>, StoreError> {
        let low = filter
            .since
            .map(|since| format!("{:013}", since.timestamp_millis().max(0)));
        let high = match &filter.before {
            None => None,
            Some(cursor) => match self.read_job(cursor).await {
                Ok((job, _)) => Some(created_key(&job)),
                Err(StoreError::NotFound(_)) => return Ok(Vec::new()),
                Err(e) => return Err(e),
            },
        };
        let condition = match (&low, &high) {
            (None, None) => "tenant = :t",
            (Some(_), None) => "tenant = :t AND created_key >= :low",
            (None, Some(_)) => "tenant = :t AND created_key < :high",
            (Some(_), Some(_)) => "tenant = :t AND created_key BETWEEN :low AND :high",
        };
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(TENANT_INDEX)
            .key_condition_expression(condition)
            .expression_attribute_values(":t", s(tenant.as_str()))
            .scan_index_forward(false);
        if let Some(low) = &low {
            query = query.expression_attribute_values(":low", s(low.clone()));
        }
        if let Some(high) = &high {
            query = query.expression_attribute_values(":high", s(high.clone()));
        }
        if let Some(status) = filter.status {
            query = query
                .filter_expression("#status = :status")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":status", s(status.as_str()));
        }
        let mut jobs = Vec::new();
        let mut pages = query.into_paginator().items().send();
        while let Some(item) = pages.next().await {
            let item = item.map_err(|e| backend("query", &e))?;
            let job: Job = body(&item, "job")?;
            if Some(&job.id) == filter.before.as_ref() {
                continue;
            }
            jobs.push(job);
            if jobs.len() >= filter.limit {
                break;
            }
        }
        Ok(jobs)
    }
}

#[async_trait]
impl ApiKeyStore for DynamoJobStore {
    async fn put_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        let mut item = Self::key(format!("KEY#{}", key.hash), "KEY");
        item.insert(
            "body".into(),
            s(serde_json::to_string(key).map_err(|e| corrupt("api key", e))?),
        );
        if self.put_new(item).await? {
            Ok(())
        } else {
            Err(StoreError::Conflict(
                "an API key with this hash exists".into(),
            ))
        }
    }

    async fn api_key(&self, hash: &str) -> Result<ApiKey, StoreError> {
        let item = self
            .get(format!("KEY#{hash}"), "KEY")
            .await?
            .ok_or_else(|| StoreError::NotFound("api key".into()))?;
        body(&item, "api key")
    }
}

#[async_trait]
impl RateLimiter for DynamoJobStore {
    async fn take_token(
        &self,
        bucket: &str,
        rate: Rate,
        now: DateTime<Utc>,
    ) -> Result<Grant, StoreError> {
        let pk = format!("BUCKET#{bucket}");
        for lost in 0..ATTEMPTS {
            after_lost_race(lost).await;
            let stored = self.get(pk.clone(), "BUCKET").await?;
            let version = stored.as_ref().and_then(|i| number(i, "version"));
            let state: Option<BucketState> = match &stored {
                Some(item) => Some(body(item, "bucket")?),
                None => None,
            };
            let (next, grant) = quota::take(state, rate, now);
            let mut item = Self::key(pk.clone(), "BUCKET");
            item.insert(
                "body".into(),
                s(serde_json::to_string(&next).map_err(|e| corrupt("bucket", e))?),
            );
            item.insert("version".into(), n(version.unwrap_or(0) + 1));
            let mut put = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item));
            put = match version {
                None => put.condition_expression("attribute_not_exists(pk)"),
                Some(v) => put
                    .condition_expression("version = :v")
                    .expression_attribute_values(":v", n(v)),
            };
            match put.send().await {
                Ok(_) => return Ok(grant),
                Err(e) if code(&e) == Some("ConditionalCheckFailedException") => continue,
                Err(e) => return Err(backend("take token", &e).into()),
            }
        }
        Err(contended("take token"))
    }
}

#[async_trait]
impl WebhookSecrets for DynamoJobStore {
    async fn webhook_secret(
        &self,
        tenant: &TenantId,
        candidate: &str,
    ) -> Result<String, StoreError> {
        let pk = format!("TENANT#{tenant}");
        let mut item = Self::key(pk.clone(), "SECRET");
        item.insert("secret".into(), s(candidate));
        self.put_new(item).await?;
        let stored = self
            .get(pk, "SECRET")
            .await?
            .ok_or_else(|| corrupt("tenant", "secret vanished"))?;
        text(&stored, "secret")
            .map(str::to_owned)
            .ok_or_else(|| corrupt("tenant", "no secret"))
    }
}

#[async_trait]
impl PluginRegistry for DynamoJobStore {
    async fn register_plugin(&self, manifest: &Manifest) -> Result<bool, StoreError> {
        let sk = format!("{}#{}", manifest.name, manifest.version);
        let mut item = Self::key(PLUGINS.to_owned(), &sk);
        item.insert(
            "body".into(),
            s(serde_json::to_string(manifest).map_err(|e| corrupt("plugin", e))?),
        );
        item.insert("sha256".into(), s(&manifest.sha256));
        if self.put_new(item).await? {
            return Ok(true);
        }
        let existing = self
            .get(PLUGINS.to_owned(), &sk)
            .await?
            .ok_or_else(|| StoreError::NotFound(sk.clone()))?;
        check_republish(&body(&existing, "plugin")?, manifest)
    }

    async fn plugins(&self, name: Option<&str>) -> Result<Vec<Manifest>, StoreError> {
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .expression_attribute_values(":pk", s(PLUGINS));
        query = match name {
            None => query.key_condition_expression("pk = :pk"),
            Some(name) => query
                .key_condition_expression("pk = :pk AND begins_with(sk, :name)")
                .expression_attribute_values(":name", s(format!("{name}#"))),
        };
        let mut manifests = Vec::new();
        let mut pages = query.into_paginator().items().send();
        while let Some(item) = pages.next().await {
            let item = item.map_err(|e| backend("query", &e))?;
            manifests.push(body(&item, "plugin")?);
        }
        sort_manifests(&mut manifests);
        Ok(manifests)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{ATTEMPTS, contention_pause};

    #[test]
    fn lost_races_back_off_with_jitter_under_a_bound() {
        // Nothing at the bottom of the jitter, the bound at its top.
        assert_eq!(contention_pause(1, 0.0), Duration::ZERO);
        assert_eq!(contention_pause(1, 1.0), Duration::from_millis(4));
        assert_eq!(contention_pause(2, 0.5), Duration::from_millis(4));
        // The bound doubles, then stays at 200 ms.
        assert_eq!(contention_pause(6, 1.0), Duration::from_millis(128));
        assert_eq!(contention_pause(7, 1.0), Duration::from_millis(200));
        assert_eq!(contention_pause(40, 1.0), Duration::from_millis(200));
        let worst: Duration = (1..ATTEMPTS).map(|lost| contention_pause(lost, 1.0)).sum();
        assert!(worst < Duration::from_secs(3), "{worst:?}");
    }
}
