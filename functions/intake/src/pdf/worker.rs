//! Extraction in a child process: the one place a PDF parser's memory can
//! be bounded and a stuck parser stopped for good.
//!
//! A binary that reads PDFs calls [`use_child_processes`] first thing in
//! `main`. Started normally, that makes every later extraction of the
//! process run in a child: the same executable, started again with the
//! limits in [`WORKER_ENV`], the file's bytes on its standard input and the
//! result as JSON on its standard output. Started as such a child, the call
//! does the extraction and exits.
//!
//! The child lowers its own data limit (`RLIMIT_DATA`: heap and anonymous
//! memory, not the executable's mapped code) to [`PdfLimits::max_memory`]
//! before it reads anything, so a decompression bomb ends in a failed
//! allocation there, not in the parent. The parent kills a child that
//! overruns its deadline, so no stuck parser outlives its file. A child that
//! dies any other way (a stack overflow, an abort) fails only its file.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::{Condvar, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use super::{PdfError, PdfLimits};

/// Set in a child's environment to the JSON of its [`PdfLimits`].
pub const WORKER_ENV: &str = "DOCKET_PDF_WORKER";

/// Read once by [`use_child_processes`]: the memory limit of each child, in
/// MiB, in place of [`PdfLimits::max_memory`]'s default.
pub const MEMORY_ENV: &str = "DOCKET_PDF_MAX_MEMORY_MB";

/// How long past its deadline a child is given to report its own timeout
/// before it is killed.
const GRACE: Duration = Duration::from_secs(2);

/// What Rust's allocation-failure handler writes before it aborts.
const ALLOCATION_FAILED: &str = "memory allocation of";

/// Most children of one process at once: each may take its memory limit,
/// so together they stay within a few limits of the host's memory.
const MAX_CHILDREN: usize = 2;

/// Children running now, and a signal when one ends.
static RUNNING: (Mutex<usize>, Condvar) = (Mutex::new(0), Condvar::new());

/// A place among the [`MAX_CHILDREN`], given back when dropped.
struct Place;

impl Place {
    fn take() -> Self {
        let (running, freed) = &RUNNING;
        let mut running = running.lock().unwrap_or_else(PoisonError::into_inner);
        while *running >= MAX_CHILDREN {
            running = freed.wait(running).unwrap_or_else(PoisonError::into_inner);
        }
        *running += 1;
        Place
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let (running, freed) = &RUNNING;
        *running.lock().unwrap_or_else(PoisonError::into_inner) -= 1;
        freed.notify_one();
    }
}

/// The children's executable and their memory limit, once chosen.
struct Children {
    program: PathBuf,
    max_memory: Option<usize>,
}

static CHILDREN: OnceLock<Children> = OnceLock::new();

/// In a child started by this module: extracts the file on standard input
/// and exits. Otherwise: runs every later PDF extraction of this process in
/// a child process of this same executable (see the module documentation).
/// Without this call extraction runs on a thread of the caller, whose memory
/// is not bounded.
///
/// # Errors
/// When the executable's own path cannot be found (extraction then stays
/// in process).
pub fn use_child_processes() -> std::io::Result<()> {
    if let Ok(limits) = std::env::var(WORKER_ENV) {
        std::process::exit(serve(&limits));
    }
    let program = std::env::current_exe()?;
    let max_memory = std::env::var(MEMORY_ENV)
        .ok()
        .and_then(|mib| mib.trim().parse::<usize>().ok())
        .filter(|mib| *mib > 0)
        .map(|mib| mib.saturating_mul(1024 * 1024));
    let _ = CHILDREN.set(Children {
        program,
        max_memory,
    });
    Ok(())
}

/// Whether this process's extractions run in child processes.
pub(super) fn in_children() -> bool {
    CHILDREN.get().is_some()
}

/// The child's side: limits from `limits` (JSON), bytes from standard
/// input, the result on standard output. Returns the exit code.
fn serve(limits: &str) -> i32 {
    let Ok(limits) = serde_json::from_str::<PdfLimits>(limits) else {
        eprintln!("{WORKER_ENV} does not hold PDF limits");
        return 2;
    };
    if let Err(error) = limit_memory(limits.max_memory) {
        eprintln!("cannot limit the extraction's memory: {error}");
        return 2;
    }
    let mut bytes = Vec::new();
    if let Err(error) = std::io::stdin().lock().read_to_end(&mut bytes) {
        eprintln!("cannot read the file: {error}");
        return 2;
    }
    let result = super::extract_in_thread(bytes, &limits);
    let mut out = std::io::stdout().lock();
    let written = serde_json::to_writer(&mut out, &result)
        .map_err(std::io::Error::from)
        .and_then(|()| out.flush());
    match written {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("cannot write the result: {error}");
            2
        }
    }
}

#[cfg(target_os = "linux")]
fn limit_memory(bytes: usize) -> std::io::Result<()> {
    use rustix::process::{Resource, Rlimit, setrlimit};
    let bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
    let limit = Rlimit {
        current: Some(bytes),
        maximum: Some(bytes),
    };
    setrlimit(Resource::Data, limit).map_err(std::io::Error::from)
}

/// Elsewhere the deadline still holds; memory is bounded by the input
/// caps alone.
#[cfg(not(target_os = "linux"))]
fn limit_memory(_bytes: usize) -> std::io::Result<()> {
    Ok(())
}

/// The parent's side: runs one extraction of `bytes` in a child and waits
/// for it until the deadline (and a grace period), killing it past that.
pub(super) fn extract_in_child(
    bytes: Vec<u8>,
    limits: &PdfLimits,
) -> Result<Vec<String>, PdfError> {
    let children = CHILDREN
        .get()
        .ok_or_else(|| PdfError::Malformed("no extraction process is configured".into()))?;
    let mut limits = limits.clone();
    if let Some(max_memory) = children.max_memory {
        limits.max_memory = max_memory;
    }
    let encoded = serde_json::to_string(&limits)
        .map_err(|e| PdfError::Malformed(format!("cannot encode the limits: {e}")))?;
    let _place = Place::take();
    let deadline = Instant::now() + limits.deadline + GRACE;
    let mut child = Command::new(&children.program)
        .env(WORKER_ENV, encoded)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| PdfError::Malformed(format!("cannot start the extraction process: {e}")))?;
    let (Some(mut stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(PdfError::Malformed(
            "the extraction process has no pipes".into(),
        ));
    };
    // A child that dies early closes its input: the write then fails, and
    // the exit status below says why.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&bytes);
    });
    // Read to its end (a child blocked on a full pipe would not exit);
    // only the last 64 KiB are kept, where an abort's message is.
    let errors = std::thread::spawn(move || {
        let mut stderr = stderr;
        let mut tail = Vec::new();
        let mut buffer = [0u8; 8192];
        while let Ok(n @ 1..) = stderr.read(&mut buffer) {
            tail.extend_from_slice(&buffer[..n]);
            if tail.len() > 64 * 1024 {
                tail.drain(..tail.len() - 64 * 1024);
            }
        }
        String::from_utf8_lossy(&tail).into_owned()
    });
    let (done, output) = mpsc::channel();
    std::thread::spawn(move || {
        let mut stdout = stdout;
        let mut bytes = Vec::new();
        let read = stdout.read_to_end(&mut bytes).map(|_| bytes);
        let _ = done.send(read);
    });
    let output = output.recv_timeout(deadline.saturating_duration_since(Instant::now()));
    // A child that closed its output may still be running: it too has
    // until the deadline.
    let mut killed = output.is_err();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if !killed && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Ok(None) => {
                killed = true;
                let _ = child.kill();
                break child.wait();
            }
            Err(error) => break Err(error),
        }
    };
    let _ = writer.join();
    let errors = errors.join().unwrap_or_default();
    if killed {
        return Err(PdfError::TimedOut(limits.deadline));
    }
    match (status, output) {
        (Ok(status), Ok(Ok(bytes))) if status.success() => serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| Err(PdfError::Malformed(format!("unreadable result: {e}")))),
        _ if errors.contains(ALLOCATION_FAILED) => Err(PdfError::OutOfMemory {
            limit: limits.max_memory,
        }),
        _ => Err(PdfError::ParserFailed),
    }
}
