//! docket's embedded backend: the ports on one machine with no server.
//!
//! - [`queue::SqliteQueue`]: the work, finalize and webhook queues in SQLite
//!   with SQS semantics (visibility timeouts, receive counts, dead-letter
//!   after too many receives).
//! - [`store::SqliteJobStore`]: jobs and item outcomes; recording outcomes
//!   and updating the job's counters is one `BEGIN IMMEDIATE` transaction.
//! - [`blob::FsBlobStore`]: blobs as files under a directory.
//!
//! [`LocalBackend::open`] puts everything under one state directory:
//! `docket.sqlite3` (WAL mode) and `blobs/`.

pub mod blob;
mod db;
mod owner;
pub mod queue;
mod retention;
pub mod store;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use docket_core::pipeline::{DocumentReader, Ports};
use docket_core::ports::{Clock, Evaluators, SystemClock, WebhookSender};

pub use db::Database;
pub use owner::{Ownership, OwnershipError};
pub use retention::{Collected, DEFAULT_RETENTION};

/// The database file in a state directory.
const DATABASE: &str = "docket.sqlite3";

/// Settings of the embedded backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalOptions {
    /// Receives after which a message moves to its queue's dead-letter
    /// companion (SQS's `maxReceiveCount`).
    pub max_receives: u32,
}

impl Default for LocalOptions {
    fn default() -> Self {
        Self { max_receives: 6 }
    }
}

/// The three local adapters over one state directory.
#[derive(Clone)]
pub struct LocalBackend {
    /// The state directory.
    pub dir: PathBuf,
    /// Queues.
    pub queue: Arc<queue::SqliteQueue>,
    /// Jobs and outcomes.
    pub store: Arc<store::SqliteJobStore>,
    /// Blobs.
    pub blobs: Arc<blob::FsBlobStore>,
    /// The clock driving visibility timeouts (the pipeline's too).
    pub clock: Arc<dyn Clock>,
    db: Arc<Database>,
}

impl LocalBackend {
    /// Opens (creating if needed) the backend under `dir` with the system
    /// clock.
    ///
    /// # Errors
    /// When the directory or database cannot be created or migrated.
    pub fn open(dir: &Path, options: LocalOptions) -> anyhow::Result<Self> {
        Self::open_with_clock(dir, options, Arc::new(SystemClock))
    }

    /// Opens the backend of a state directory that exists: a mistyped
    /// path is an error, not a new empty directory.
    ///
    /// # Errors
    /// When `dir` holds no docket database, or as [`LocalBackend::open`].
    pub fn open_existing(dir: &Path, options: LocalOptions) -> anyhow::Result<Self> {
        if !dir.join(DATABASE).is_file() {
            anyhow::bail!("{}: not a docket state directory", dir.display());
        }
        Self::open(dir, options)
    }

    /// Opens the backend with `clock` driving visibility timeouts.
    ///
    /// # Errors
    /// When the directory or database cannot be created or migrated.
    pub fn open_with_clock(
        dir: &Path,
        options: LocalOptions,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let database = Arc::new(Database::open(&dir.join(DATABASE))?);
        Ok(Self {
            dir: dir.to_owned(),
            queue: Arc::new(queue::SqliteQueue::new(
                database.clone(),
                clock.clone(),
                options.max_receives,
            )),
            store: Arc::new(store::SqliteJobStore::new(database.clone())),
            blobs: Arc::new(blob::FsBlobStore::new(dir.join("blobs"))),
            clock,
            db: database,
        })
    }

    /// Makes this process, which runs `command` (as `docket run`), the
    /// owner of the state directory — the one process that processes its
    /// queues — and releases the claims a dead process left, so their
    /// messages are taken at once rather than after their visibility
    /// timeout. Returns the ownership (held until dropped) and how many
    /// claims were released.
    ///
    /// # Errors
    /// [`OwnershipError::Held`] when another live process owns it; I/O and
    /// database errors.
    pub async fn take_ownership(&self, command: &str) -> anyhow::Result<(Ownership, u64)> {
        let ownership = owner::lock(&self.dir, command)?;
        let released = self.queue.release_claims().await?;
        if released > 0 {
            tracing::info!(released, "claims of a process that is gone released");
        }
        Ok((ownership, released))
    }

    /// The pipeline's ports over this backend, with the process's
    /// evaluators, webhook sender and file reader.
    pub fn ports(
        &self,
        evaluators: Arc<dyn Evaluators>,
        webhooks: Arc<dyn WebhookSender>,
        reader: Arc<dyn DocumentReader>,
    ) -> Ports {
        Ports::with_store(
            self.queue.clone(),
            self.blobs.clone(),
            self.store.clone(),
            evaluators,
            webhooks,
            reader,
            self.clock.clone(),
        )
    }
}
