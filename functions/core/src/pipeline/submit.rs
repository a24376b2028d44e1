//! Submitting a batch: documents split into work items, their text stored
//! in packs, the job created and one message per item enqueued.

use std::collections::HashSet;

use super::{IntakeDocument, Pipeline, PipelineError, Submission};
use crate::chunking;
use crate::model::{
    BodyRef, ItemOutcome, ItemResult, Job, JobCounters, JobId, JobStatus, WorkItem,
};
use crate::ports::{OutgoingMessage, QueueName};

fn pack_key(job: &JobId, n: usize) -> String {
    format!("documents/{job}/pack-{n:05}")
}

impl Pipeline {
    /// Accepts a batch: splits documents into work items, stores their text
    /// in packs, creates the job, records intake rejections as failed and
    /// enqueues one message per item (in batched sends).
    ///
    /// # Errors
    /// [`PipelineError::Invalid`] for an empty batch or duplicate document
    /// ids (nothing stored); port errors otherwise.
    pub async fn submit(&self, submission: Submission) -> Result<Job, PipelineError> {
        if submission.documents.is_empty() {
            return Err(PipelineError::Invalid("the batch has no documents".into()));
        }
        let mut seen = HashSet::new();
        for (n, document) in submission.documents.iter().enumerate() {
            if !seen.insert(document.id()) {
                return Err(PipelineError::Invalid(format!(
                    "documents[{n}].id: duplicate id {:?}",
                    document.id()
                )));
            }
        }
        let job_id = submission.job_id.clone().unwrap_or_else(JobId::generate);
        let mut packs: Vec<Vec<u8>> = vec![Vec::new()];
        let mut items = Vec::new();
        let mut rejected = Vec::new();
        let mut next_item = 0u32;
        for (document_index, document) in submission.documents.iter().enumerate() {
            let document_index = document_index as u32;
            match document {
                IntakeDocument::Accepted(spec) => {
                    for chunk in chunking::plan(&spec.body, &submission.options.chunking) {
                        let current = packs.last_mut().expect("packs start non-empty");
                        if !current.is_empty()
                            && current.len() + chunk.text.len() > self.settings.pack_bytes
                        {
                            packs.push(Vec::new());
                        }
                        let pack_index = packs.len() - 1;
                        let pack = &mut packs[pack_index];
                        let body = BodyRef {
                            key: pack_key(&job_id, pack_index),
                            offset: pack.len() as u64,
                            len: chunk.text.len() as u64,
                        };
                        pack.extend_from_slice(chunk.text.as_bytes());
                        items.push(WorkItem {
                            job_id: job_id.clone(),
                            item: next_item,
                            document: document_index,
                            document_id: spec.id.clone(),
                            title: spec.title.clone(),
                            metadata: spec.metadata.clone(),
                            chunk: chunk.info,
                            body,
                        });
                        next_item += 1;
                    }
                }
                IntakeDocument::Rejected(doc) => {
                    rejected.push(ItemOutcome {
                        item: next_item,
                        document: document_index,
                        document_id: doc.id.clone(),
                        title: doc.title.clone(),
                        chunk: crate::model::ChunkInfo::WHOLE,
                        bytes: 0,
                        body: None,
                        metadata: serde_json::Value::Null,
                        result: ItemResult::Failed {
                            failure: doc.failure.clone(),
                            seconds: 0.0,
                        },
                    });
                    next_item += 1;
                }
            }
        }
        for (n, pack) in packs.into_iter().enumerate() {
            if !pack.is_empty() {
                self.blobs.put(&pack_key(&job_id, n), pack).await?;
            }
        }
        let now = self.clock.now();
        let job = Job {
            id: job_id.clone(),
            tenant: submission.tenant,
            status: JobStatus::Queued,
            evaluator: submission.evaluator,
            config: submission.config,
            options: submission.options,
            counters: JobCounters {
                documents_total: submission.documents.len() as u32,
                items_total: next_item,
                ..JobCounters::default()
            },
            created_at: now,
            started_at: None,
            finished_at: None,
            error: None,
            webhook: None,
        };
        self.jobs.create_job(&job).await?;
        let queue = QueueName::Work(job.options.priority);
        let messages = items
            .iter()
            .map(|item| OutgoingMessage::new(serde_json::to_string(item).unwrap_or_default()))
            .collect();
        if let Err(error) = self.queue.send(queue, messages).await {
            // Without its messages the job would wait forever: fail it now
            // (items already sent find it finalized and are skipped).
            let reason = format!("work items could not be queued: {error}");
            if let Err(e) = self
                .jobs
                .finish_job(&job_id, JobStatus::Failed, Some(&reason), now)
                .await
            {
                tracing::error!(%job_id, error = %e, "job left queued without its work items");
            }
            return Err(error.into());
        }
        if !rejected.is_empty() {
            let receipt = self.jobs.record_outcomes(&job_id, &rejected, now).await?;
            self.after_record(
                &job_id,
                &job.options,
                &receipt.counters,
                receipt.completed_job,
            )
            .await?;
        }
        Ok(self.jobs.job(&job_id).await?)
    }
}
