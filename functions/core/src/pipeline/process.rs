//! Processing deliveries of work items: bodies read, evaluated in one call,
//! outcomes recorded once per job, the finalize message sent by the call
//! that recorded the last item; dead-lettered items recorded failed.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use super::{Disposition, FinalizeMessage, Pipeline, PipelineError, jitter};
use crate::chunking::{self, Chunk};
use crate::evaluation::{ChunkEvaluation, Evaluation, default_merge};
use crate::failure::{Failure, FailureCategory, RetryDecision};
use crate::model::{
    BodyRef, ChunkInfo, Chunking, EvaluatorRef, ItemOutcome, ItemResult, Job, JobCounters, JobId,
    JobOptions, JobStatus, WorkItem,
};
use crate::ports::{
    BlobError, Delivery, EvaluationReport, EvaluationRequest, OutgoingMessage, QueueError,
    QueueName, StoreError,
};

/// A job read for a round, with its configuration shared by its items'
/// calls.
type JobRead = (Job, Arc<serde_json::Value>);

/// A delivery whose item is to be evaluated, before its text is loaded.
struct ToLoad<'a> {
    /// The delivery's position.
    n: usize,
    item: WorkItem,
    job: &'a JobRead,
    /// Its text, read with the jobs when it is in a pack; `None` for a
    /// referenced file, read once the job says how to split it.
    text: Option<Result<String, Failure>>,
}

/// A delivery whose item is being evaluated: one call per part.
struct Evaluating {
    /// The delivery's position.
    n: usize,
    item: WorkItem,
    load_seconds: f64,
    evaluator: EvaluatorRef,
    /// Each call's chunk and its text's size.
    parts: Vec<(ChunkInfo, u64)>,
}

impl Pipeline {
    /// Processes a batch of work-item deliveries and says what to do with
    /// each (same order). Never fails the whole batch: a message that cannot
    /// be handled gets `Keep` or `RetryAfter` on its own, and its neighbours'
    /// outcomes are still recorded. Bodies are read first, the batch is
    /// evaluated in one call, and outcomes are recorded with one store call
    /// per job. Every evaluation must end by `deadline` when one is given
    /// (a Lambda invocation's, less what recording needs): one the deadline
    /// stops is a `Transient` failure, retried by another invocation.
    pub async fn process(
        &self,
        deliveries: &[Delivery],
        deadline: Option<Instant>,
    ) -> Vec<Disposition> {
        let mut dispositions = vec![Disposition::Keep; deliveries.len()];
        let mut parsed: Vec<(usize, WorkItem)> = Vec::with_capacity(deliveries.len());
        for (n, delivery) in deliveries.iter().enumerate() {
            match serde_json::from_str(&delivery.body) {
                Ok(item) => parsed.push((n, item)),
                Err(e) => {
                    tracing::error!(message_id = %delivery.message_id, error = %e, "malformed work message left for the dead-letter queue");
                }
            }
        }
        // The jobs and the packed texts are read at once, so a new
        // container's first message waits for one round trip, not two; the
        // text of an item its job then skips is read for nothing (a ranged
        // read of its pack).
        let started = Instant::now();
        let bodies: Vec<&BodyRef> = parsed
            .iter()
            .filter(|(_, item)| item.body.file.is_none())
            .map(|(_, item)| &item.body)
            .collect();
        let (jobs, texts) = futures_util::future::join(
            self.read_jobs(parsed.iter().map(|(_, item)| &item.job_id)),
            self.load_texts(&bodies),
        )
        .await;
        let mut texts = texts.into_iter();
        let mut decided: Vec<(usize, WorkItem, ItemResult)> = Vec::new();
        let mut to_load: Vec<ToLoad<'_>> = Vec::new();
        for (n, item) in parsed {
            let text = if item.body.file.is_none() {
                texts.next()
            } else {
                None
            };
            let job = match jobs.get(&item.job_id) {
                Some(Ok(Some(job))) => job,
                Some(Ok(None)) => {
                    tracing::warn!(job_id = %item.job_id, "work item of an unknown job dropped");
                    dispositions[n] = Disposition::Done;
                    continue;
                }
                // Not readable: kept, logged once per job by `read_jobs`.
                Some(Err(())) | None => continue,
            };
            if job.0.skips_items() {
                let reason = match (&job.0.error, job.0.status) {
                    (Some(error), _) => format!("job failing: {error}"),
                    (None, JobStatus::Cancelled) => "job cancelled".to_owned(),
                    _ => "job already finalized".to_owned(),
                };
                decided.push((n, item, ItemResult::Skipped { reason }));
                continue;
            }
            if deliveries[n].receive_count > self.settings.retry.max_receives {
                let failure = Failure::new(
                    FailureCategory::Permanent,
                    format!(
                        "gave up after {} deliveries without a recorded outcome",
                        deliveries[n].receive_count - 1
                    ),
                );
                decided.push((
                    n,
                    item,
                    ItemResult::Failed {
                        failure,
                        seconds: 0.0,
                    },
                ));
                continue;
            }
            to_load.push(ToLoad { n, item, job, text });
        }
        let mut loaded = Vec::with_capacity(to_load.len());
        for ToLoad { n, item, job, text } in to_load {
            let chunks = match (text, &item.body.file) {
                (Some(text), _) => text.map(|text| {
                    vec![Chunk {
                        info: item.chunk,
                        text,
                    }]
                }),
                (None, Some(name)) => {
                    self.load_file(&item.body, name, &job.0.options.chunking)
                        .await
                }
                (None, None) => Err(Failure::new(FailureCategory::Permanent, "text not read")),
            };
            loaded.push((n, item, job, chunks));
        }
        let load_seconds = started.elapsed().as_secs_f64() / loaded.len().max(1) as f64;
        let mut evaluating: Vec<Evaluating> = Vec::new();
        let mut requests = Vec::new();
        for (n, item, (job, config), chunks) in loaded {
            match chunks {
                Ok(chunks) => {
                    let parts = chunks
                        .iter()
                        .map(|c| (c.info, c.text.len() as u64))
                        .collect();
                    for chunk in chunks {
                        requests.push(EvaluationRequest {
                            evaluator: job.evaluator.clone(),
                            id: item.document_id.clone(),
                            title: item.title.clone(),
                            content: chunk.text,
                            metadata: item.metadata.clone(),
                            chunk: chunk.info,
                            config: config.clone(),
                        });
                    }
                    evaluating.push(Evaluating {
                        n,
                        item,
                        load_seconds,
                        evaluator: job.evaluator.clone(),
                        parts,
                    });
                }
                Err(failure) => {
                    if let Some(result) = self.give_up_or_retry(
                        &deliveries[n],
                        &item,
                        failure,
                        load_seconds,
                        &mut dispositions[n],
                    ) {
                        decided.push((n, item, result));
                    }
                }
            }
        }
        let mut reports = self
            .evaluators
            .evaluate(requests, deadline)
            .await
            .into_iter();
        for Evaluating {
            n,
            item,
            load_seconds,
            evaluator,
            parts,
        } in evaluating
        {
            let item_reports = reports.by_ref().take(parts.len()).collect();
            match self.evaluation_of(&evaluator, &parts, item_reports).await {
                Ok((evaluation, seconds)) => {
                    decided.push((
                        n,
                        item,
                        ItemResult::Succeeded {
                            evaluation,
                            seconds: load_seconds + seconds,
                        },
                    ));
                }
                Err(failure) => {
                    if let Some(result) = self.give_up_or_retry(
                        &deliveries[n],
                        &item,
                        failure,
                        load_seconds,
                        &mut dispositions[n],
                    ) {
                        decided.push((n, item, result));
                    }
                }
            }
        }
        let mut by_job: BTreeMap<JobId, Vec<(usize, ItemOutcome)>> = BTreeMap::new();
        for (n, item, result) in decided {
            by_job
                .entry(item.job_id.clone())
                .or_default()
                .push((n, ItemOutcome::of(&item, result)));
        }
        for (job_id, entries) in by_job {
            let Some(Ok(Some((job, _)))) = jobs.get(&job_id) else {
                continue;
            };
            let outcomes: Vec<ItemOutcome> = entries.iter().map(|(_, o)| o.clone()).collect();
            let settled = match self.record(job, &outcomes).await {
                Ok(Ok(())) => Disposition::Done,
                Ok(Err(e)) => {
                    // Outcomes are recorded; redelivery finds them recorded
                    // and sends the finalize message again.
                    tracing::warn!(%job_id, error = %e, "finalize message not sent; items kept for redelivery");
                    self.left_to_retry(e.category(), &e);
                    Disposition::Keep
                }
                Err(e) => {
                    tracing::warn!(%job_id, error = %e, "outcomes not recorded; items retried");
                    self.left_to_retry(e.category(), &e);
                    match self.settings.retry.decide(e.category(), 1, 0.5) {
                        RetryDecision::RetryAfter(delay) => Disposition::RetryAfter(delay),
                        RetryDecision::GiveUp => Disposition::Keep,
                    }
                }
            };
            for (n, _) in entries {
                dispositions[n] = settled;
            }
        }
        dispositions
    }

    /// Applies the retry policy to a failed delivery: sets a retry
    /// disposition and returns `None`, or returns the failed result to
    /// record.
    fn give_up_or_retry(
        &self,
        delivery: &Delivery,
        item: &WorkItem,
        failure: Failure,
        seconds: f64,
        disposition: &mut Disposition,
    ) -> Option<ItemResult> {
        let decision = self.settings.retry.decide(
            failure.category,
            delivery.receive_count,
            jitter(&delivery.message_id, delivery.receive_count),
        );
        match decision {
            RetryDecision::RetryAfter(delay) => {
                tracing::info!(job_id = %item.job_id, document_id = %item.document_id, item = item.item, %failure, ?delay, "retrying work item");
                *disposition = Disposition::RetryAfter(delay);
                None
            }
            RetryDecision::GiveUp => {
                tracing::info!(job_id = %item.job_id, document_id = %item.document_id, item = item.item, %failure, "work item failed");
                Some(ItemResult::Failed { failure, seconds })
            }
        }
    }

    /// The jobs of `ids`, each read once and all at once, with their
    /// configurations shared by their items' calls: `None` for a job that
    /// does not exist; `Err` for one not readable (logged here, once; its
    /// items are kept for redelivery).
    async fn read_jobs<'a>(
        &self,
        ids: impl Iterator<Item = &'a JobId>,
    ) -> HashMap<JobId, Result<Option<JobRead>, ()>> {
        let ids: BTreeSet<&JobId> = ids.collect();
        let reads = ids.iter().map(|id| self.jobs.job(id));
        let mut jobs = HashMap::with_capacity(ids.len());
        for (id, read) in ids.iter().zip(futures_util::future::join_all(reads).await) {
            let job = match read {
                Ok(job) => {
                    let config = Arc::new(job.config.clone());
                    Ok(Some((job, config)))
                }
                Err(StoreError::NotFound(_)) => Ok(None),
                Err(e) => {
                    tracing::warn!(job_id = %id, error = %e, "job not readable; its messages kept");
                    self.left_to_retry(e.category(), &e);
                    Err(())
                }
            };
            jobs.insert((*id).clone(), job);
        }
        jobs
    }

    /// A referenced document's chunks: its file read whole (refused unread
    /// past [`max_file_bytes`](super::PipelineSettings::max_file_bytes)),
    /// its text extracted and split.
    async fn load_file(
        &self,
        body: &BodyRef,
        name: &str,
        chunking: &Chunking,
    ) -> Result<Vec<Chunk>, Failure> {
        let reading =
            |e: BlobError| Failure::new(e.category(), format!("reading the file {name}: {e}"));
        let len = match body.len {
            0 => self.blobs.size(&body.key).await.map_err(reading)?,
            len => len,
        };
        let limit = self.settings.max_file_bytes;
        if len > limit {
            return Err(Failure::new(
                FailureCategory::Data,
                format!("the file is {len} bytes, over the limit of {limit} bytes"),
            ));
        }
        let bytes = self
            .blobs
            .get_range(&body.key, 0, len)
            .await
            .map_err(reading)?;
        let text = self.reader.extract(name, bytes).await?;
        Ok(chunking::plan(&text, chunking))
    }

    /// An item's evaluation from the reports of its chunks' calls (spans
    /// made relative to the document): the one chunk's, or their merge;
    /// and the seconds the calls took. The first failed call fails it.
    async fn evaluation_of(
        &self,
        evaluator: &EvaluatorRef,
        parts: &[(ChunkInfo, u64)],
        reports: Vec<Result<EvaluationReport, Failure>>,
    ) -> Result<(Evaluation, f64), Failure> {
        let mut seconds = 0.0;
        let mut chunks = Vec::with_capacity(parts.len());
        for ((info, bytes), report) in parts.iter().zip(reports) {
            let report = report.map_err(|failure| match (parts.len(), info.first_page) {
                (1, _) => failure,
                (_, Some(first)) => failure.context(format_args!(
                    "pages {first}–{}",
                    info.last_page.unwrap_or(first)
                )),
                (count, None) => {
                    failure.context(format_args!("chunk {} of {count}", info.index + 1))
                }
            })?;
            let mut evaluation = report.evaluation;
            evaluation.rebase(info.offset);
            seconds += report.usage.seconds;
            chunks.push(ChunkEvaluation {
                weight: *bytes,
                evaluation,
            });
        }
        if chunks.len() == 1 {
            let only = chunks.pop().map(|c| c.evaluation).unwrap_or_default();
            return Ok((only, seconds));
        }
        Ok((self.merge_chunks(evaluator, &chunks).await?, seconds))
    }

    /// A split document's evaluation: the evaluator's own merge of its
    /// chunks' evaluations (in order, spans relative to the document), or
    /// the host's [`default_merge`] when it has none.
    ///
    /// # Errors
    /// The merge's failure.
    pub(super) async fn merge_chunks(
        &self,
        evaluator: &EvaluatorRef,
        chunks: &[ChunkEvaluation],
    ) -> Result<Evaluation, Failure> {
        let evaluations = chunks.iter().map(|c| c.evaluation.clone()).collect();
        self.evaluators
            .merge_chunks(evaluator, evaluations)
            .await
            .map(|own| own.unwrap_or_else(|| default_merge(chunks)))
    }

    /// Reads the texts of `bodies`, one ranged read per blob and all at
    /// once: items of a batch usually share a pack, so a batch costs a read
    /// or two, not one per item.
    async fn load_texts(&self, bodies: &[&BodyRef]) -> Vec<Result<String, Failure>> {
        let mut texts: Vec<Option<Result<String, Failure>>> = vec![None; bodies.len()];
        let mut by_key: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (n, body) in bodies.iter().enumerate() {
            by_key.entry(body.key.as_str()).or_default().push(n);
        }
        let reads = by_key.into_iter().map(|(key, members)| async move {
            let start = members.iter().map(|&n| bodies[n].offset).min().unwrap_or(0);
            let end = members
                .iter()
                .map(|&n| bodies[n].offset + bodies[n].len)
                .max()
                .unwrap_or(0);
            let read = self
                .blobs
                .get_range(key, start, end - start)
                .await
                .map_err(|e| {
                    Failure::new(e.category(), format!("reading the document's text: {e}"))
                });
            (start, members, read)
        });
        for (start, members, read) in futures_util::future::join_all(reads).await {
            for n in members {
                texts[n] = Some(read.as_ref().map_err(Clone::clone).and_then(|bytes| {
                    let from = (bodies[n].offset - start) as usize;
                    let text = &bytes[from..from + bodies[n].len as usize];
                    String::from_utf8(text.to_vec()).map_err(|e| {
                        Failure::new(
                            FailureCategory::Data,
                            format!("document text is not UTF-8: {e}"),
                        )
                    })
                }));
            }
        }
        texts
            .into_iter()
            .map(|t| {
                t.unwrap_or_else(|| Err(Failure::new(FailureCategory::Permanent, "text not read")))
            })
            .collect()
    }

    /// Records `outcomes` of `job` in one store call, then sends the finalize
    /// message when this call recorded the job's last item — or recorded
    /// nothing new (a duplicate delivery) and found every item done but the
    /// job not finalized, which covers a finalize message lost after an
    /// earlier recording — and trips the failure threshold.
    ///
    /// # Errors
    /// The outer error: nothing was recorded. The inner one: the outcomes
    /// are recorded but the follow-up failed.
    pub(super) async fn record(
        &self,
        job: &Job,
        outcomes: &[ItemOutcome],
    ) -> Result<Result<(), PipelineError>, StoreError> {
        let now = self.clock.now();
        let receipt = self.jobs.record_outcomes(&job.id, outcomes, now).await?;
        let recorded: HashSet<u32> = receipt.recorded.iter().copied().collect();
        self.metrics
            .record(outcomes.iter().filter(|o| recorded.contains(&o.item)), now);
        let unfinalized_and_done = receipt.recorded.is_empty()
            && receipt.counters.items_pending() == 0
            && job.finished_at.is_none();
        Ok(self
            .after_record(
                &job.id,
                &job.options,
                &receipt.counters,
                receipt.completed_job || unfinalized_and_done,
            )
            .await)
    }

    /// After outcomes are recorded: send the finalize message when asked and
    /// trip the failure threshold when it is passed.
    pub(super) async fn after_record(
        &self,
        job_id: &JobId,
        options: &JobOptions,
        counters: &JobCounters,
        send_finalize: bool,
    ) -> Result<(), PipelineError> {
        if counters.exceeds_failure_threshold(options.tolerated_failure_percent) {
            let reason = format!(
                "failure threshold exceeded: {} of {} documents failed (tolerated {}%)",
                counters.documents_failed,
                counters.documents_total,
                options.tolerated_failure_percent
            );
            if self.jobs.halt_job(job_id, &reason).await? {
                tracing::warn!(%job_id, %reason, "job failing fast");
            }
        }
        if send_finalize {
            self.enqueue_finalize(job_id).await?;
        }
        Ok(())
    }

    /// Sends the message that has the job finalized.
    pub(super) async fn enqueue_finalize(&self, job_id: &JobId) -> Result<(), PipelineError> {
        let message = FinalizeMessage {
            job_id: job_id.clone(),
        };
        self.queue
            .send(QueueName::Finalize, vec![OutgoingMessage::json(&message)])
            .await?;
        Ok(())
    }

    /// Applies `dispositions` to `deliveries` of `queue`: acks the done ones
    /// in one call, sets the visibility of the retried ones.
    ///
    /// # Errors
    /// Queue errors (unsettled messages simply come back).
    pub async fn settle(
        &self,
        queue: QueueName,
        deliveries: &[Delivery],
        dispositions: &[Disposition],
    ) -> Result<(), QueueError> {
        let done: Vec<_> = deliveries
            .iter()
            .zip(dispositions)
            .filter(|(_, d)| **d == Disposition::Done)
            .map(|(delivery, _)| delivery.receipt.clone())
            .collect();
        if !done.is_empty() {
            self.queue.ack(queue, &done).await?;
        }
        for (delivery, disposition) in deliveries.iter().zip(dispositions) {
            if let Disposition::RetryAfter(delay) = disposition {
                self.queue
                    .retry_after(queue, &delivery.receipt, *delay)
                    .await?;
            }
        }
        Ok(())
    }

    /// Sets the backoff of the deliveries of `queue` to retry (what a Lambda
    /// handler does before it reports them as failures: the event source
    /// deletes the rest). A backoff that cannot be set is logged: the
    /// message then returns after its visibility timeout.
    pub async fn set_backoffs(
        &self,
        queue: QueueName,
        deliveries: &[Delivery],
        dispositions: &[Disposition],
    ) {
        for (delivery, disposition) in deliveries.iter().zip(dispositions) {
            if let Disposition::RetryAfter(delay) = disposition
                && let Err(e) = self
                    .queue
                    .retry_after(queue, &delivery.receipt, *delay)
                    .await
            {
                tracing::warn!(message_id = %delivery.message_id, error = %e, "backoff not set; the message returns after its visibility timeout");
                self.left_to_retry(e.category(), &e);
            }
        }
    }

    /// Handles messages of `queue`'s dead-letter companion (received here,
    /// or handed over by a Lambda event source on the dead-letter queue):
    /// a work item is recorded failed (PERMANENT: the processor never
    /// recorded an outcome for it), a callback is marked failed. Every
    /// handled message is `Done`; a malformed one too (logged and dropped).
    ///
    /// # Errors
    /// Port errors: nothing should be deleted.
    pub async fn dead_letters(
        &self,
        queue: QueueName,
        deliveries: &[Delivery],
    ) -> Result<Vec<Disposition>, PipelineError> {
        if queue == QueueName::Webhook {
            self.drain_dead_webhooks(deliveries).await?;
            return Ok(vec![Disposition::Done; deliveries.len()]);
        }
        let mut by_job: BTreeMap<JobId, Vec<(usize, ItemOutcome)>> = BTreeMap::new();
        for (n, delivery) in deliveries.iter().enumerate() {
            match serde_json::from_str::<WorkItem>(&delivery.body) {
                Ok(item) => {
                    let failure = Failure::new(
                        FailureCategory::Permanent,
                        "dead-lettered: the processor never recorded an outcome for this item",
                    );
                    by_job.entry(item.job_id.clone()).or_default().push((
                        n,
                        ItemOutcome::of(
                            &item,
                            ItemResult::Failed {
                                failure,
                                seconds: 0.0,
                            },
                        ),
                    ));
                }
                Err(e) => {
                    tracing::error!(message_id = %delivery.message_id, error = %e, "malformed dead letter discarded");
                }
            }
        }
        for (job_id, entries) in by_job {
            let job = match self.jobs.job(&job_id).await {
                Ok(job) => job,
                Err(StoreError::NotFound(_)) => continue,
                Err(e) => return Err(e.into()),
            };
            let outcomes: Vec<_> = entries.iter().map(|(_, o)| o.clone()).collect();
            self.record(&job, &outcomes).await??;
        }
        Ok(vec![Disposition::Done; deliveries.len()])
    }

    /// Receives from `queue`'s dead-letter companion and handles what is
    /// there ([`Pipeline::dead_letters`]): dead-lettered work items are
    /// recorded failed (the queue gave them up after too many receives,
    /// e.g. a processor crashing on them), so their jobs still finish.
    /// Returns how many it handled.
    ///
    /// # Errors
    /// Queue errors.
    pub async fn drain_dead_letters(&self, queue: QueueName) -> Result<usize, PipelineError> {
        let deliveries = self
            .queue
            .receive_dead(queue, self.settings.receive_batch, self.settings.visibility)
            .await?;
        let dispositions = self.dead_letters(queue, &deliveries).await?;
        let done: Vec<_> = deliveries
            .iter()
            .zip(&dispositions)
            .filter(|(_, d)| **d == Disposition::Done)
            .map(|(delivery, _)| delivery.receipt.clone())
            .collect();
        if !done.is_empty() {
            self.queue.ack_dead(queue, &done).await?;
        }
        Ok(deliveries.len())
    }
}
