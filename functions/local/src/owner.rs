//! Ownership of a state directory: the one process that processes its
//! queues. A claim on a message lasts its visibility timeout; the owner
//! knows every claim it finds at start is a dead process's and releases it
//! at once instead of waiting that timeout out.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};

/// The lock file in the state directory: held (`flock`) by its owner for
/// as long as the owner runs, and naming it.
const LOCK_FILE: &str = "owner.lock";

/// Why a process could not own a state directory.
#[derive(Debug, thiserror::Error)]
pub enum OwnershipError {
    /// Another live process owns it.
    #[error(
        "the state directory {dir} is in use by {holder}; stop that process, or give this one another state directory (--state)"
    )]
    Held {
        /// The state directory.
        dir: PathBuf,
        /// What the owner wrote in the lock file: its process id and command.
        holder: String,
    },
    /// The lock file could not be opened or written.
    #[error("locking the state directory {dir}: {error}")]
    Io {
        /// The state directory.
        dir: PathBuf,
        /// Why.
        error: std::io::Error,
    },
}

/// Held while this process owns the state directory; dropping it (or the
/// process ending, however it ends) gives the ownership up.
#[derive(Debug)]
pub struct Ownership {
    _file: File,
}

/// Takes the lock of `dir` for this process, which runs `command`.
pub(crate) fn lock(dir: &Path, command: &str) -> Result<Ownership, OwnershipError> {
    let io = |error| OwnershipError::Io {
        dir: dir.to_owned(),
        error,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(LOCK_FILE))
        .map_err(io)?;
    if let Err(error) = flock(&file, FlockOperation::NonBlockingLockExclusive) {
        if error == rustix::io::Errno::WOULDBLOCK {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(OwnershipError::Held {
                dir: dir.to_owned(),
                holder: if holder.is_empty() {
                    "another process".to_owned()
                } else {
                    holder.to_owned()
                },
            });
        }
        return Err(io(error.into()));
    }
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    writeln!(file, "process {} ({command})", std::process::id()).map_err(io)?;
    Ok(Ownership { _file: file })
}
