//! The SQLite database shared by the queue and the job store.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use docket_core::FailureCategory;
use docket_core::ports::BackendError;
use rusqlite::{Connection, ErrorCode};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    status TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_tenant_time ON jobs (tenant, created_ms, id);

CREATE TABLE IF NOT EXISTS outcomes (
    job_id TEXT NOT NULL,
    item INTEGER NOT NULL,
    document INTEGER NOT NULL,
    status TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (job_id, item)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS outcomes_by_document ON outcomes (job_id, document);

CREATE TABLE IF NOT EXISTS api_keys (
    hash TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    body TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS tenants (
    tenant TEXT PRIMARY KEY,
    webhook_secret TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS plugins (
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TABLE IF NOT EXISTS buckets (
    key TEXT PRIMARY KEY,
    body TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    body TEXT NOT NULL,
    visible_ms INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt TEXT,
    dead INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS messages_ready ON messages (queue, dead, id);
-- Queue depth is counted from this index alone.
CREATE INDEX IF NOT EXISTS messages_depth ON messages (queue, dead, visible_ms, receive_count);
";

/// One SQLite connection in WAL mode. Every multi-statement change runs in
/// a `BEGIN IMMEDIATE` transaction, so correctness does not rest on the
/// mutex: several processes may share the file.
pub struct Database {
    connection: Mutex<Connection>,
}

impl Database {
    /// Opens (creating and migrating) the database file.
    ///
    /// # Errors
    /// When SQLite cannot open or migrate it.
    pub fn open(path: &Path) -> rusqlite::Result<Self> {
        let connection = Connection::open(path)?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        // 32 MiB of page cache (the default is 2 MiB): the indexes a large
        // job's queue and outcomes walk stay in memory.
        connection.pragma_update(None, "cache_size", -32_768)?;
        connection.busy_timeout(std::time::Duration::from_secs(10))?;
        connection.execute_batch(SCHEMA)?;
        Ok(Self {
            connection: Mutex::new(connection),
        })
    }

    /// The connection, for one operation.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Connection> {
        self.connection.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Translates a SQLite error at the seam: busy/locked are transient, a full
/// disk is a resource problem, anything else permanent.
pub(crate) fn backend_error(error: rusqlite::Error) -> BackendError {
    let category = match error.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => FailureCategory::Transient,
        Some(ErrorCode::DiskFull | ErrorCode::OutOfMemory) => FailureCategory::Resource,
        _ => FailureCategory::Permanent,
    };
    BackendError::new(category, format!("sqlite: {error}"))
}

/// Milliseconds since the Unix epoch of `time`.
pub(crate) fn millis(time: chrono::DateTime<chrono::Utc>) -> i64 {
    time.timestamp_millis()
}
