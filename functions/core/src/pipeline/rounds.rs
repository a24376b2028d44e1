//! The one worker loop: `docket run`, `docket serve`, the test harnesses
//! and the emulator tests all drive the pipeline through [`Pipeline::run_round`].

use std::future::Future;
use std::time::Duration;

use super::{Pipeline, PipelineError};
use crate::model::Priority;
use crate::ports::QueueName;

/// The dead-letter queues a worker round drains: work items a processor
/// never recorded (recorded failed, so their jobs finish) and callbacks
/// given up (marked failed).
const DRAINED: [QueueName; 4] = [
    QueueName::Work(Priority::High),
    QueueName::Work(Priority::Normal),
    QueueName::Work(Priority::Low),
    QueueName::Webhook,
];

/// How often a busy worker also takes callbacks, dead letters and
/// finalize messages: a job whose items are all recorded while another
/// job's backlog still fills the work queues is finalized and called back
/// within this, not once the backlog is done.
const OTHER_WORK_EVERY: Duration = Duration::from_millis(200);

/// What one [`Pipeline::run_round`] handled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Round {
    /// Work-item messages processed.
    pub work: usize,
    /// Callbacks, dead letters and finalize messages handled.
    pub other: usize,
}

impl Round {
    /// Whether the round found nothing to do.
    pub fn is_idle(&self) -> bool {
        self.work == 0 && self.other == 0
    }
}

impl Pipeline {
    /// One round of a processor: receives a batch from the highest-priority
    /// work queue that has messages, processes and settles it. Returns how
    /// many messages it handled (0 when every queue was empty).
    ///
    /// # Errors
    /// Queue errors.
    pub async fn work_once(&self) -> Result<usize, PipelineError> {
        for priority in Priority::ALL {
            let queue = QueueName::Work(priority);
            let deliveries = self
                .queue
                .receive(queue, self.settings.receive_batch, self.settings.visibility)
                .await?;
            if deliveries.is_empty() {
                continue;
            }
            let dispositions = self.process(&deliveries, None).await;
            self.settle(queue, &deliveries, &dispositions).await?;
            return Ok(deliveries.len());
        }
        Ok(0)
    }

    /// One round of a worker: a batch of work items from the highest
    /// priority queue that has any; when there is none (and, while there
    /// are, once per [`OTHER_WORK_EVERY`] in this process), callbacks, the
    /// dead-letter queues and then finalize messages (last, so a round
    /// that finalizes a job has not yet attempted its callback).
    ///
    /// # Errors
    /// Queue errors; port errors of dead letters that could not be recorded.
    pub async fn run_round(&self) -> Result<Round, PipelineError> {
        let work = self.work_once().await?;
        if work > 0 && !self.other_work_due() {
            return Ok(Round { work, other: 0 });
        }
        let mut other = self.deliver_webhooks_once().await?;
        for queue in DRAINED {
            other += self.drain_dead_letters(queue).await?;
        }
        other += self.finalize_once().await?;
        Ok(Round { work, other })
    }

    /// Whether this process's workers last took other work
    /// [`OTHER_WORK_EVERY`] ago or more (and if so, now is the last time).
    fn other_work_due(&self) -> bool {
        let mut last = self.other_work_at.lock().unwrap_or_else(|e| e.into_inner());
        let now = std::time::Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < OTHER_WORK_EVERY) {
            return false;
        }
        *last = Some(now);
        true
    }

    /// Runs rounds until `done` says to stop, asked after every round; after
    /// an idle round it backs off by `pause` (1 to 50 ms, doubling: the
    /// core has no timer of its own, so the caller's runtime sleeps).
    ///
    /// # Errors
    /// Round errors it cannot get past, and `done`'s.
    pub async fn work_until<F, Fut, E, P, Paused>(&self, done: F, pause: P) -> Result<(), E>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<bool, E>>,
        E: From<PipelineError>,
        P: Fn(Duration) -> Paused,
        Paused: Future<Output = ()>,
    {
        let mut idle = Duration::from_millis(1);
        loop {
            let round = self.run_round().await?;
            if done().await? {
                return Ok(());
            }
            if round.work > 0 {
                idle = Duration::from_millis(1);
                continue;
            }
            if !round.is_idle() {
                continue;
            }
            pause(idle).await;
            idle = (idle * 2).min(Duration::from_millis(50));
        }
    }
}
