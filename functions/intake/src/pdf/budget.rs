//! Running one extraction on a worker thread with a deadline, and counting
//! the workers that overran theirs.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Instant;

use super::{PdfError, PdfLimits};

/// Workers of this process that overran their deadline and are still
/// running.
pub(super) static OVERRUNNING: AtomicUsize = AtomicUsize::new(0);

/// The worker's stack. `pdf-extract` recurses into nested forms; their
/// depth is bounded by [`PdfLimits::max_form_depth`] before it starts.
const WORKER_STACK: usize = 8 * 1024 * 1024;

/// Where the worker leaves its result, or learns that nobody waits for it.
enum Slot<T> {
    Waiting,
    Done(T),
    Abandoned,
}

struct Handoff<T> {
    slot: Mutex<Slot<T>>,
    ready: Condvar,
}

/// Runs `job` on a new thread and waits for it until `limits.deadline`.
/// The job is given the deadline so that it can stop by itself.
///
/// A job still running at the deadline is abandoned: it is counted in
/// `overrunning` until it ends, and while `limits.max_overrunning` jobs are
/// counted there, new ones are refused without starting.
///
/// # Errors
/// The job's own error; [`PdfError::ParserFailed`] when it panicked;
/// [`PdfError::TimedOut`] past the deadline; [`PdfError::Overloaded`] when
/// refused.
pub(super) fn run_within<T, F>(
    limits: &PdfLimits,
    overrunning: &'static AtomicUsize,
    job: F,
) -> Result<T, PdfError>
where
    T: Send + 'static,
    F: FnOnce(Instant) -> Result<T, PdfError> + Send + 'static,
{
    let running = overrunning.load(Ordering::SeqCst);
    if running >= limits.max_overrunning {
        return Err(PdfError::Overloaded { running });
    }
    let deadline = Instant::now() + limits.deadline;
    let handoff = Arc::new(Handoff {
        slot: Mutex::new(Slot::Waiting),
        ready: Condvar::new(),
    });
    let worker_handoff = Arc::clone(&handoff);
    let worker = move || {
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| job(deadline)))
            .unwrap_or(Err(PdfError::ParserFailed));
        let mut slot = worker_handoff
            .slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if matches!(*slot, Slot::Abandoned) {
            overrunning.fetch_sub(1, Ordering::SeqCst);
        } else {
            *slot = Slot::Done(result);
            worker_handoff.ready.notify_one();
        }
    };
    std::thread::Builder::new()
        .name("pdf-text".into())
        .stack_size(WORKER_STACK)
        .spawn(worker)
        .map_err(|e| PdfError::Malformed(format!("cannot start the extraction thread: {e}")))?;

    let slot = handoff.slot.lock().unwrap_or_else(PoisonError::into_inner);
    let timeout = deadline.saturating_duration_since(Instant::now());
    let (mut slot, _) = handoff
        .ready
        .wait_timeout_while(slot, timeout, |slot| matches!(slot, Slot::Waiting))
        .unwrap_or_else(PoisonError::into_inner);
    match std::mem::replace(&mut *slot, Slot::Abandoned) {
        Slot::Done(result) => result,
        Slot::Waiting | Slot::Abandoned => {
            // Counted while the lock is held: the worker sees `Abandoned`
            // only after this, so its decrement cannot come first.
            overrunning.fetch_add(1, Ordering::SeqCst);
            Err(PdfError::TimedOut(limits.deadline))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    fn limits(deadline_ms: u64, max_overrunning: usize) -> PdfLimits {
        PdfLimits {
            deadline: Duration::from_millis(deadline_ms),
            max_overrunning,
            ..PdfLimits::default()
        }
    }

    #[test]
    fn a_job_that_finishes_gives_its_result() {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let result = run_within(&limits(5_000, 1), &COUNT, |_| Ok(42));
        assert_eq!(result, Ok(42));
        let result: Result<(), _> =
            run_within(&limits(5_000, 1), &COUNT, |_| Err(PdfError::NoPages));
        assert_eq!(result, Err(PdfError::NoPages));
        assert_eq!(COUNT.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_panicking_job_is_a_parser_failure() {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let result: Result<(), _> = run_within(&limits(5_000, 1), &COUNT, |_| panic!("boom"));
        assert_eq!(result, Err(PdfError::ParserFailed));
    }

    /// Stuck jobs are counted until they end; at the limit new jobs are
    /// refused without running, and a stuck job that ends frees its place.
    #[test]
    fn overrunning_jobs_are_counted_and_refuse_new_ones_at_the_limit() {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let budget = limits(50, 2);
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let release_rx = Arc::new(Mutex::new(release_rx));
        for _ in 0..2 {
            let release_rx = Arc::clone(&release_rx);
            let result: Result<(), _> = run_within(&budget, &COUNT, move |_| {
                // Ignores its deadline, like a parser stuck in a loop.
                let _ = release_rx.lock().map(|rx| rx.recv());
                Ok(())
            });
            assert_eq!(result, Err(PdfError::TimedOut(Duration::from_millis(50))));
        }
        assert_eq!(COUNT.load(Ordering::SeqCst), 2);
        let refused = run_within(&budget, &COUNT, |_| Ok(()));
        assert_eq!(refused, Err(PdfError::Overloaded { running: 2 }));
        assert_eq!(
            refused.unwrap_err().to_string(),
            "text extraction refused: 2 earlier extractions overran their deadline and are still running"
        );

        release_tx.send(()).unwrap();
        let started = Instant::now();
        while COUNT.load(Ordering::SeqCst) != 1 {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "never released"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(run_within(&budget, &COUNT, |_| Ok(7)), Ok(7));
        release_tx.send(()).unwrap();
    }
}
