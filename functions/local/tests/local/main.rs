//! The embedded backend against the port conformance suite, plus what is
//! particular to it.

use std::sync::Arc;

use docket_conformance::{ManualClock, Subject};
use docket_local::{LocalBackend, LocalOptions};

/// A backend on a clock the checks move: waiting for a visibility timeout
/// costs nothing, and the queue hides and shows messages by that clock.
async fn subject() -> Subject {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = LocalOptions::default();
    let clock = ManualClock::new();
    let backend =
        LocalBackend::open_with_clock(dir.path(), options.clone(), clock.clone()).expect("open");
    Subject {
        queue: backend.queue.clone(),
        blobs: backend.blobs.clone(),
        store: backend.store.clone(),
        max_receives: options.max_receives,
        time: clock,
        guard: Box::new((dir, Arc::new(backend))),
    }
}

docket_conformance::conformance_tests!(subject);

#[tokio::test]
async fn state_survives_reopening() {
    use docket_core::ports::{JobStore, WorkQueue};
    let dir = tempfile::tempdir().unwrap();
    let job = docket_conformance::sample_job("acme", 1);
    {
        let backend = LocalBackend::open(dir.path(), LocalOptions::default()).unwrap();
        backend.store.create_job(&job).await.unwrap();
        backend
            .queue
            .send(
                docket_core::ports::QueueName::Finalize,
                vec![docket_core::ports::OutgoingMessage::new("kept")],
            )
            .await
            .unwrap();
    }
    let backend = LocalBackend::open(dir.path(), LocalOptions::default()).unwrap();
    assert_eq!(backend.store.job(&job.id).await.unwrap(), job);
    let got = backend
        .queue
        .receive(
            docket_core::ports::QueueName::Finalize,
            10,
            std::time::Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(got[0].body, "kept");
}
