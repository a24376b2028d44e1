//! The SQLite database shared by the queue and the job store.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

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
    dead INTEGER NOT NULL DEFAULT 0,
    -- Received and not yet settled: held by a running process.
    claimed INTEGER NOT NULL DEFAULT 0,
    -- The fairness group (work items: the tenant); '' for none.
    grp TEXT NOT NULL DEFAULT '',
    -- The group's weight in the turns.
    weight INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS messages_ready ON messages (queue, dead, id);
-- Queue depth is counted from this index alone.
CREATE INDEX IF NOT EXISTS messages_depth ON messages (queue, dead, visible_ms, receive_count);
";

/// The SQLite database in WAL mode, through two connections: one that
/// writes and one that reads. Every multi-statement change runs in a
/// `BEGIN IMMEDIATE` transaction, so correctness does not rest on this
/// process's mutexes: several processes may share the file.
///
/// A write may wait up to the busy timeout for another process's lock, and
/// for this process's other writes on the mutex: [`Database::write`] does
/// that without holding up the async runtime's other tasks. A read in WAL
/// mode does not wait for writers (it reads the last committed state), so
/// [`Database::read`] runs inline on its own connection.
pub struct Database {
    writer: Arc<Mutex<Connection>>,
    reader: Mutex<Connection>,
}

/// A connection to `path` with `cache_kib` of page cache.
fn connect(path: &Path, cache_kib: i64) -> rusqlite::Result<Connection> {
    let connection = Connection::open(path)?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    connection.pragma_update(None, "cache_size", -cache_kib)?;
    connection.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(connection)
}

impl Database {
    /// Opens (creating and migrating) the database file.
    ///
    /// # Errors
    /// When SQLite cannot open or migrate it.
    pub fn open(path: &Path) -> rusqlite::Result<Self> {
        // The writer walks the indexes of a large job's queue and outcomes:
        // 32 MiB keeps them in memory (the default is 2 MiB). The reader
        // keeps SQLite's default: in WAL mode it drops its whole cache
        // whenever the writer has committed, at a cost that grows with
        // the cache.
        let writer = connect(path, 32 * 1024)?;
        writer.execute_batch(SCHEMA)?;
        migrate(&writer)?;
        let reader = connect(path, 2 * 1024)?;
        Ok(Self {
            writer: Arc::new(Mutex::new(writer)),
            reader: Mutex::new(reader),
        })
    }

    /// Runs `operation` on the writing connection without holding up the
    /// async runtime's other tasks: on a multi-threaded runtime right here,
    /// the worker's other tasks handed to another thread while it blocks
    /// (`block_in_place`: no hop for the statements themselves); on a
    /// single-threaded one on the blocking pool.
    pub(crate) async fn write<R: Send + 'static>(
        &self,
        operation: impl FnOnce(&mut Connection) -> R + Send + 'static,
    ) -> R {
        let writer = Arc::clone(&self.writer);
        let work = move || operation(&mut writer.lock().unwrap_or_else(PoisonError::into_inner));
        let flavor = tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor());
        if matches!(flavor, Ok(tokio::runtime::RuntimeFlavor::MultiThread)) {
            return tokio::task::block_in_place(work);
        }
        match tokio::task::spawn_blocking(work).await {
            Ok(value) => value,
            Err(error) => match error.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(error) => panic!("database work did not finish: {error}"),
            },
        }
    }

    /// Runs the read-only `operation` on the reading connection, inline.
    pub(crate) fn read<R>(&self, operation: impl FnOnce(&Connection) -> R) -> R {
        operation(&self.reader.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Brings a database made by an earlier release up to [`SCHEMA`]: columns
/// added since are added with their defaults.
fn migrate(connection: &Connection) -> rusqlite::Result<()> {
    // One process at a time: two opening an old database at once must not
    // both add a column.
    connection.execute_batch("BEGIN IMMEDIATE")?;
    match add_columns(connection) {
        Ok(()) => connection.execute_batch("COMMIT"),
        Err(error) => {
            let _ = connection.execute_batch("ROLLBACK");
            Err(error)
        }
    }
}

fn add_columns(connection: &Connection) -> rusqlite::Result<()> {
    for (column, definition) in [
        ("claimed", "INTEGER NOT NULL DEFAULT 0"),
        ("grp", "TEXT NOT NULL DEFAULT ''"),
        ("weight", "INTEGER NOT NULL DEFAULT 1"),
    ] {
        let has: bool = connection.query_row(
            "SELECT COUNT(*) > 0 FROM pragma_table_info('messages') WHERE name = ?1",
            [column],
            |row| row.get(0),
        )?;
        if !has {
            connection.execute_batch(&format!(
                "ALTER TABLE messages ADD COLUMN {column} {definition}"
            ))?;
        }
    }
    // Each group's messages in order, and the groups of a queue found by
    // skipping from one to the next.
    connection.execute_batch(
        "CREATE INDEX IF NOT EXISTS messages_by_group ON messages (queue, dead, grp, id)",
    )?;
    Ok(())
}

/// Translates a SQLite error at the seam: busy/locked are transient, a full
/// disk is a resource problem, anything else permanent. A write the
/// system refused counts as a full disk: SQLite reports ENOSPC as
/// `SQLITE_FULL`, but a file-size limit (EFBIG) or a quota (EDQUOT) only
/// as `SQLITE_IOERR_WRITE` — which a failing disk (EIO) also is.
pub(crate) fn backend_error(error: rusqlite::Error) -> BackendError {
    let refused_write = matches!(
        &error,
        rusqlite::Error::SqliteFailure(e, _)
            if matches!(e.extended_code, rusqlite::ffi::SQLITE_IOERR_WRITE | rusqlite::ffi::SQLITE_IOERR_SHMSIZE)
    );
    let (category, note) = match error.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            (FailureCategory::Transient, "")
        }
        Some(ErrorCode::DiskFull | ErrorCode::OutOfMemory) => (FailureCategory::Resource, ""),
        _ if refused_write => (
            FailureCategory::Resource,
            " (a write refused: no room on the disk, a file-size limit or a quota; or a failing disk)",
        ),
        _ => (FailureCategory::Permanent, ""),
    };
    BackendError::new(category, format!("sqlite: {error}{note}"))
}

/// Milliseconds since the Unix epoch of `time`.
pub(crate) fn millis(time: chrono::DateTime<chrono::Utc>) -> i64 {
    time.timestamp_millis()
}
