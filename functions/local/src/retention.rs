//! Retention: finished jobs expire locally as they do on AWS (S3 lifecycle
//! rules and DynamoDB TTL there): a job finished before the cutoff loses
//! its row, its outcomes, its stored text and its results, and upload
//! files older than the cutoff go too.

use std::path::Path;

use chrono::{DateTime, Utc};
use docket_core::model::Job;
use rusqlite::params;

use crate::LocalBackend;
use crate::db::backend_error;

/// How long finished jobs are kept by default: as the deployment's
/// lifecycle rules keep them.
pub const DEFAULT_RETENTION: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

/// Outcomes deleted per transaction: a collection running beside a run
/// holds the write lock only briefly at a time.
const DELETE_STEP: u32 = 10_000;

/// What a collection removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Collected {
    /// Finished jobs removed.
    pub jobs: u64,
    /// Their outcome rows.
    pub outcomes: u64,
    /// Files removed (stored text, results, uploads).
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// Removes the files under `dir` (all of them, with `cutoff` none; else
/// those last changed before it) and the directories left empty; adds what
/// it removed to `collected`.
fn remove_files(
    dir: &Path,
    cutoff: Option<std::time::SystemTime>,
    collected: &mut Collected,
) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    // Gone meanwhile (a temporary file renamed, another collection): as
    // good as removed.
    let gone = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
    for entry in entries {
        let entry = entry?;
        let meta = match entry.metadata() {
            Err(e) if gone(&e) => continue,
            meta => meta?,
        };
        if meta.is_dir() {
            remove_files(&entry.path(), cutoff, collected)?;
        } else if cutoff.is_none_or(|cutoff| meta.modified().is_ok_and(|m| m < cutoff)) {
            match std::fs::remove_file(entry.path()) {
                Err(e) if gone(&e) => continue,
                removed => removed?,
            }
            collected.files += 1;
            collected.bytes += meta.len();
        }
    }
    // Not empty (files kept): left as it is.
    let _ = std::fs::remove_dir(dir);
    Ok(())
}

impl LocalBackend {
    /// Removes every job that finished before `cutoff` — its stored text
    /// and results first, then its outcomes (a step at a time), then its
    /// row, so a collection that stops midway is finished by the next —
    /// and, when no job is unfinished (one may reference them), the upload
    /// files last written before `cutoff`. Jobs not finished are never
    /// touched, whatever their age. A process still writing the results of
    /// a job removed here (a run that just finished it) fails to; it takes
    /// no lock. The database file keeps the pages it frees, for reuse.
    ///
    /// # Errors
    /// Database and filesystem errors.
    pub async fn collect_garbage(&self, cutoff: DateTime<Utc>) -> anyhow::Result<Collected> {
        let (finished, unfinished) = self.db.read(|connection| {
            let mut select = connection.prepare("SELECT body FROM jobs")?;
            let bodies = select
                .query_map([], |row| row.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            let jobs: Vec<Job> = bodies
                .iter()
                .filter_map(|body| serde_json::from_str::<Job>(body).ok())
                .collect();
            let unfinished = jobs.iter().any(|job| job.finished_at.is_none());
            let finished: Vec<Job> = jobs
                .into_iter()
                .filter(|job| job.finished_at.is_some_and(|at| at < cutoff))
                .collect();
            Ok::<_, anyhow::Error>((finished, unfinished))
        })?;
        let mut collected = Collected::default();
        let blobs = self.dir.join("blobs");
        for job in finished {
            for prefix in ["documents", "results"] {
                remove_files(
                    &blobs.join(prefix).join(job.id.as_str()),
                    None,
                    &mut collected,
                )?;
            }
            let items = job.counters.items_total;
            let id = job.id.as_str().to_owned();
            collected.outcomes += self
                .db
                .write(move |connection| {
                    let mut removed = 0;
                    for from in (0..=items).step_by(DELETE_STEP as usize) {
                        removed += connection.execute(
                            "DELETE FROM outcomes WHERE job_id = ?1 AND item >= ?2 AND item < ?3",
                            params![id, from, from.saturating_add(DELETE_STEP)],
                        )? as u64;
                    }
                    connection.execute("DELETE FROM jobs WHERE id = ?1", params![id])?;
                    Ok::<_, rusqlite::Error>(removed)
                })
                .await
                .map_err(backend_error)?;
            collected.jobs += 1;
        }
        // An unfinished job may still read uploads it references.
        if !unfinished {
            let cutoff = std::time::SystemTime::from(cutoff);
            remove_files(&blobs.join("uploads"), Some(cutoff), &mut collected)?;
        }
        Ok(collected)
    }

    /// [`collect_garbage`](Self::collect_garbage) of what is older than
    /// `retention`, logged when it removed anything.
    ///
    /// # Errors
    /// As `collect_garbage`.
    pub async fn expire(&self, retention: std::time::Duration) -> anyhow::Result<Collected> {
        let cutoff = self.clock.now() - chrono::Duration::from_std(retention)?;
        let collected = self.collect_garbage(cutoff).await?;
        if collected.jobs > 0 || collected.files > 0 {
            tracing::info!(
                jobs = collected.jobs,
                outcomes = collected.outcomes,
                files = collected.files,
                bytes = collected.bytes,
                "expired jobs removed"
            );
        }
        Ok(collected)
    }
}
