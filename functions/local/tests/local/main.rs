//! The embedded backend against the port conformance suite, plus what is
//! particular to it.

// Test code: a failed unwrap fails the test.
#![allow(clippy::unwrap_used)]

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

/// A statement waiting for another process's write lock (up to the busy
/// timeout) does not hold the async worker: on a runtime with one worker,
/// other tasks still run while it waits. Here the other task is the one
/// that lets the lock go; were the wait on the worker, the lock would be
/// held until its holder gave up on its own.
#[tokio::test(flavor = "current_thread")]
async fn a_wait_for_the_database_lock_leaves_a_single_threaded_runtime_free() {
    other_tasks_run_while_a_write_waits_for_the_lock().await;
}

/// As above, on the multi-threaded runtime `docket run` and `docket serve`
/// use, with one worker: the check runs as a task there (the test's own
/// future runs on the test's thread, beside the worker).
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_wait_for_the_database_lock_leaves_the_only_worker_free() {
    tokio::spawn(other_tasks_run_while_a_write_waits_for_the_lock())
        .await
        .unwrap();
}

async fn other_tasks_run_while_a_write_waits_for_the_lock() {
    use docket_core::ports::JobStore;
    use std::sync::mpsc;
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap();
    let backend = LocalBackend::open(dir.path(), LocalOptions::default()).unwrap();
    let (release, released) = mpsc::channel::<()>();
    let (locked, is_locked) = mpsc::channel::<()>();
    let path = dir.path().join("docket.sqlite3");
    let other_process = std::thread::spawn(move || {
        let mut connection = rusqlite::Connection::open(path).unwrap();
        let tx = connection
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .unwrap();
        locked.send(()).unwrap();
        let told = released.recv_timeout(Duration::from_secs(8)).is_ok();
        tx.commit().unwrap();
        told
    });
    is_locked.recv().unwrap();

    let store = backend.store.clone();
    let job = docket_conformance::sample_job("acme", 1);
    let id = job.id.clone();
    let (started, has_started) = tokio::sync::oneshot::channel();
    let create = tokio::spawn(async move {
        started.send(()).unwrap();
        store.create_job(&job).await
    });
    has_started.await.unwrap();
    let _ = release.send(());
    create.await.unwrap().unwrap();

    assert!(
        other_process.join().unwrap(),
        "the write waited on the runtime's only thread: the lock was held until its holder gave up"
    );
    assert_eq!(backend.store.job(&id).await.unwrap().id, id);
}

/// The owner of a state directory releases the claims a dead process left
/// — received, never settled — at once; a message waiting out a backoff
/// stays hidden, and a settled one stays gone. A second owner of the same
/// directory is refused with who holds it.
#[tokio::test]
async fn the_owner_releases_dead_claims_and_a_second_owner_is_refused() {
    use docket_core::ports::{OutgoingMessage, QueueName, WorkQueue};
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let queue = QueueName::Finalize;
    let hour = Duration::from_secs(3600);
    {
        let backend = LocalBackend::open(dir.path(), LocalOptions::default()).unwrap();
        let messages = ["settled", "backing off", "held"].map(OutgoingMessage::new);
        backend.queue.send(queue, messages.to_vec()).await.unwrap();
        let got = backend.queue.receive(queue, 3, hour).await.unwrap();
        assert_eq!(got.len(), 3);
        backend
            .queue
            .ack(queue, &[got[0].receipt.clone()])
            .await
            .unwrap();
        backend
            .queue
            .retry_after(queue, &got[1].receipt, hour)
            .await
            .unwrap();
        // The process dies holding the third.
    }
    let backend = LocalBackend::open(dir.path(), LocalOptions::default()).unwrap();
    assert!(
        backend
            .queue
            .receive(queue, 3, hour)
            .await
            .unwrap()
            .is_empty()
    );
    let (ownership, released) = backend.take_ownership("docket test").await.unwrap();
    assert_eq!(released, 1);
    let got = backend.queue.receive(queue, 3, hour).await.unwrap();
    let bodies: Vec<&str> = got.iter().map(|d| d.body.as_str()).collect();
    assert_eq!(bodies, ["held"]);
    assert_eq!(got[0].receive_count, 2);

    let other = LocalBackend::open(dir.path(), LocalOptions::default()).unwrap();
    let refused = other.take_ownership("docket other").await.unwrap_err();
    assert_eq!(
        refused.to_string(),
        format!(
            "the state directory {} is in use by process {} (docket test); stop that process, or give this one another state directory (--state)",
            dir.path().display(),
            std::process::id()
        )
    );
    drop(ownership);
    let (_, released) = other.take_ownership("docket other").await.unwrap();
    assert_eq!(released, 1, "the claim of the owner that stopped");
}

/// Work items of several tenants in one queue are taken in turn: a tenant
/// with a backlog of 500 does not hold another's 6 behind it, a receive is
/// shared equally, and what one group cannot fill goes to the others.
#[tokio::test]
async fn fairness_groups_take_turns_on_a_queue() {
    use docket_core::model::Priority;
    use docket_core::ports::{OutgoingMessage, QueueName, WorkQueue};
    let dir = tempfile::tempdir().unwrap();
    let backend = LocalBackend::open(dir.path(), LocalOptions::default()).unwrap();
    let queue = QueueName::Work(Priority::Normal);
    let send = |group: &'static str, n: usize| {
        let messages = (0..n)
            .map(|i| OutgoingMessage::new(format!("{group}-{i}")).in_group(group))
            .collect();
        backend.queue.send(queue, messages)
    };
    send("big", 500).await.unwrap();
    send("small", 6).await.unwrap();
    let visibility = std::time::Duration::from_secs(300);
    let receive = || backend.queue.receive(queue, 4, visibility);
    let of = |deliveries: &[docket_core::ports::Delivery], group: &str| {
        deliveries
            .iter()
            .filter(|d| d.body.starts_with(&format!("{group}-")))
            .count()
    };
    // Two receives of 4: half each, oldest first within a group.
    let first = receive().await.unwrap();
    assert_eq!(
        (of(&first, "big"), of(&first, "small")),
        (2, 2),
        "{first:?}"
    );
    let second = receive().await.unwrap();
    assert_eq!((of(&second, "big"), of(&second, "small")), (2, 2));
    let small: Vec<&str> = first
        .iter()
        .chain(&second)
        .filter(|d| d.body.starts_with("small-"))
        .map(|d| d.body.as_str())
        .collect();
    assert_eq!(small, ["small-0", "small-1", "small-2", "small-3"]);
    // The small group has 2 left: the big one fills the rest.
    let third = receive().await.unwrap();
    assert_eq!((of(&third, "big"), of(&third, "small")), (2, 2));
    let fourth = receive().await.unwrap();
    assert_eq!((of(&fourth, "big"), of(&fourth, "small")), (4, 0));
    // Messages without a group are one group of their own.
    backend
        .queue
        .send(queue, vec![OutgoingMessage::new("plain")])
        .await
        .unwrap();
    let mut seen_plain = false;
    for _ in 0..2 {
        let got = backend.queue.receive(queue, 2, visibility).await.unwrap();
        seen_plain |= got.iter().any(|d| d.body == "plain");
    }
    assert!(seen_plain, "an ungrouped message is not starved");
}

/// A group of weight 2 (a premium tenant) gets twice the share of each
/// receive of a group of weight 1.
#[tokio::test]
async fn heavier_groups_get_a_larger_share_of_each_receive() {
    use docket_core::model::Priority;
    use docket_core::ports::{OutgoingMessage, QueueName, WorkQueue};
    let dir = tempfile::tempdir().unwrap();
    let backend = LocalBackend::open(dir.path(), LocalOptions::default()).unwrap();
    let queue = QueueName::Work(Priority::High);
    for (group, weight) in [("premium", 2), ("standard", 1)] {
        let messages = (0..50)
            .map(|i| OutgoingMessage {
                weight,
                ..OutgoingMessage::new(format!("{group}-{i}")).in_group(group)
            })
            .collect();
        backend.queue.send(queue, messages).await.unwrap();
    }
    for _ in 0..3 {
        let got = backend
            .queue
            .receive(queue, 9, std::time::Duration::from_secs(300))
            .await
            .unwrap();
        let premium = got
            .iter()
            .filter(|d| d.body.starts_with("premium-"))
            .count();
        assert_eq!((premium, got.len() - premium), (6, 3), "{got:?}");
    }
}

/// More groups than a receive takes: they take turns across receives, so
/// every group is served within a few receives.
#[tokio::test]
async fn more_groups_than_a_receive_take_turns_across_receives() {
    use docket_core::model::Priority;
    use docket_core::ports::{OutgoingMessage, QueueName, WorkQueue};
    let dir = tempfile::tempdir().unwrap();
    let backend = LocalBackend::open(dir.path(), LocalOptions::default()).unwrap();
    let queue = QueueName::Work(Priority::Low);
    for group in 0..5 {
        let messages = (0..10)
            .map(|i| OutgoingMessage::new(format!("g{group}-{i}")).in_group(format!("g{group}")))
            .collect();
        backend.queue.send(queue, messages).await.unwrap();
    }
    let mut served = std::collections::BTreeSet::new();
    for _ in 0..3 {
        for delivery in backend
            .queue
            .receive(queue, 2, std::time::Duration::from_secs(300))
            .await
            .unwrap()
        {
            served.insert(delivery.body.split('-').next().unwrap().to_owned());
        }
    }
    assert_eq!(
        served.len(),
        5,
        "every group within three receives: {served:?}"
    );
}

/// A state directory made before fairness groups existed opens: its queued
/// messages gain the column with no group and are received as before.
#[tokio::test]
async fn a_queue_made_before_fairness_groups_is_migrated() {
    use docket_core::model::Priority;
    use docket_core::ports::{OutgoingMessage, QueueName, WorkQueue};
    let dir = tempfile::tempdir().unwrap();
    {
        let backend = LocalBackend::open(dir.path(), LocalOptions::default()).unwrap();
        backend
            .queue
            .send(
                QueueName::Work(Priority::High),
                vec![OutgoingMessage::new("old")],
            )
            .await
            .unwrap();
    }
    let db = dir.path().join("docket.sqlite3");
    {
        let connection = rusqlite::Connection::open(&db).unwrap();
        connection
            .execute_batch("DROP INDEX messages_by_group; ALTER TABLE messages DROP COLUMN grp;")
            .unwrap();
    }
    let backend = LocalBackend::open(dir.path(), LocalOptions::default()).unwrap();
    backend
        .queue
        .send(
            QueueName::Work(Priority::High),
            vec![OutgoingMessage::new("new").in_group("acme")],
        )
        .await
        .unwrap();
    let got = backend
        .queue
        .receive(
            QueueName::Work(Priority::High),
            10,
            std::time::Duration::from_secs(5),
        )
        .await
        .unwrap();
    let mut bodies: Vec<&str> = got.iter().map(|d| d.body.as_str()).collect();
    bodies.sort_unstable();
    assert_eq!(bodies, ["new", "old"]);
}
