//! Jobs and their outcomes: creation, exactly-once counting, completion,
//! the state machine, listing, stats.

use chrono::Utc;
use docket_core::model::{ChunkInfo, ItemOutcome, ItemResult, JobId, JobStatus, TenantId};
use docket_core::ports::{JobFilter, StoreError};
use docket_core::{Evaluation, Failure, FailureCategory, Score};

use crate::{Subject, sample_job};

fn outcome(item: u32, document: u32, chunk: (u32, u32), result: ItemResult) -> ItemOutcome {
    ItemOutcome {
        item,
        document,
        document_id: format!("doc-{document}"),
        title: format!("Doc {document}"),
        chunk: ChunkInfo {
            index: chunk.0,
            count: chunk.1,
            ..ChunkInfo::WHOLE
        },
        bytes: 10,
        body: None,
        metadata: serde_json::Value::Null,
        result,
    }
}

fn succeeded(value: f64) -> ItemResult {
    ItemResult::Succeeded {
        evaluation: Evaluation {
            scores: vec![Score {
                name: "fake".into(),
                value,
                max: 100.0,
            }],
            ..Evaluation::default()
        },
        seconds: 0.001,
    }
}

fn failed() -> ItemResult {
    ItemResult::Failed {
        failure: Failure::new(FailureCategory::Data, "unreadable"),
        seconds: 0.0,
    }
}

/// Jobs read back as created; a second create of the id conflicts; an
/// unknown id is `NotFound`.
pub async fn store_create_read_conflict(subject: &Subject) {
    let job = sample_job("acme", 2);
    subject.store.create_job(&job).await.expect("create");
    assert_eq!(subject.store.job(&job.id).await.expect("read"), job);
    let error = subject.store.create_job(&job).await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error}");
    let error = subject.store.job(&JobId::generate()).await.unwrap_err();
    assert!(matches!(error, StoreError::NotFound(_)), "{error}");
}

/// The same outcome recorded three times in sequence counts once.
pub async fn store_counts_a_sequentially_duplicated_outcome_once(subject: &Subject) {
    let job = sample_job("acme", 2);
    subject.store.create_job(&job).await.expect("create");
    let once = [outcome(0, 0, (0, 1), succeeded(50.0))];
    let first = subject
        .store
        .record_outcomes(&job.id, &once, Utc::now())
        .await
        .expect("record");
    assert_eq!(first.recorded, [0]);
    for _ in 0..2 {
        let again = subject
            .store
            .record_outcomes(&job.id, &once, Utc::now())
            .await
            .expect("record");
        assert!(again.recorded.is_empty());
        assert_eq!(again.duplicates, [0]);
        assert!(!again.completed_job);
    }
    // Twice within one call counts once too.
    let twice = [
        outcome(1, 1, (0, 1), failed()),
        outcome(1, 1, (0, 1), failed()),
    ];
    let receipt = subject
        .store
        .record_outcomes(&job.id, &twice, Utc::now())
        .await
        .expect("record");
    assert_eq!(receipt.recorded, [1]);
    assert_eq!(receipt.duplicates, [1]);
    let stored = subject.store.job(&job.id).await.expect("read");
    let counters = stored.counters;
    assert_eq!((counters.items_succeeded, counters.items_failed), (1, 1));
    assert_eq!(
        (counters.documents_succeeded, counters.documents_failed),
        (1, 1)
    );
    // The failure is tallied once too, with its sample.
    assert_eq!(
        stored.failures,
        [docket_core::model::FailureTally {
            category: FailureCategory::Data,
            items: 1,
            samples: vec![docket_core::model::FailureSample {
                document_id: "doc-1".into(),
                title: "Doc 1".into(),
                message: "unreadable".into(),
            }],
        }]
    );
}

/// The same outcome recorded by three callers at once counts once.
pub async fn store_counts_a_concurrently_duplicated_outcome_once(subject: &Subject) {
    let job = sample_job("acme", 1);
    subject.store.create_job(&job).await.expect("create");
    let calls = (0..3).map(|_| {
        let store = subject.store.clone();
        let id = job.id.clone();
        tokio::spawn(async move {
            store
                .record_outcomes(&id, &[outcome(0, 0, (0, 1), succeeded(1.0))], Utc::now())
                .await
        })
    });
    let mut recorded = 0;
    let mut completed = 0;
    for call in calls {
        let receipt = call.await.expect("join").expect("record");
        recorded += receipt.recorded.len();
        completed += usize::from(receipt.completed_job);
    }
    assert_eq!((recorded, completed), (1, 1));
    let counters = subject.store.job(&job.id).await.expect("read").counters;
    assert_eq!(counters.items_succeeded, 1);
    assert_eq!(counters.documents_succeeded, 1);
}

/// Only the call that records the last pending item reports completion;
/// the first recorded item moves the job to processing.
pub async fn store_signals_completion_exactly_once(subject: &Subject) {
    let job = sample_job("acme", 3);
    subject.store.create_job(&job).await.expect("create");
    let now = Utc::now();
    let a = subject
        .store
        .record_outcomes(&job.id, &[outcome(0, 0, (0, 1), succeeded(1.0))], now)
        .await
        .expect("record");
    assert!(!a.completed_job);
    assert_eq!(a.status, JobStatus::Processing);
    let read = subject.store.job(&job.id).await.expect("read");
    assert_eq!(read.status, JobStatus::Processing);
    assert!(read.started_at.is_some());
    let b = subject
        .store
        .record_outcomes(
            &job.id,
            &[
                outcome(1, 1, (0, 1), succeeded(1.0)),
                outcome(2, 2, (0, 1), failed()),
            ],
            now,
        )
        .await
        .expect("record");
    assert!(b.completed_job);
    assert_eq!(b.counters.items_pending(), 0);
    let c = subject
        .store
        .record_outcomes(&job.id, &[outcome(2, 2, (0, 1), failed())], now)
        .await
        .expect("record");
    assert!(!c.completed_job);
}

/// A three-chunk document is counted when its last chunk is recorded,
/// failed if any chunk failed.
pub async fn store_counts_documents_at_their_last_chunk(subject: &Subject) {
    let mut job = sample_job("acme", 0);
    job.counters.documents_total = 2;
    job.counters.items_total = 5;
    subject.store.create_job(&job).await.expect("create");
    let now = Utc::now();
    let record = |outcomes: Vec<ItemOutcome>| {
        let store = subject.store.clone();
        let id = job.id.clone();
        async move {
            store
                .record_outcomes(&id, &outcomes, now)
                .await
                .expect("record")
        }
    };
    let r = record(vec![
        outcome(0, 0, (0, 3), succeeded(1.0)),
        outcome(2, 0, (2, 3), succeeded(1.0)),
    ])
    .await;
    assert_eq!(r.counters.documents_succeeded, 0);
    let r = record(vec![outcome(1, 0, (1, 3), succeeded(1.0))]).await;
    assert_eq!(r.counters.documents_succeeded, 1);
    let r = record(vec![outcome(3, 1, (0, 2), failed())]).await;
    assert_eq!(r.counters.documents_failed, 0);
    let r = record(vec![outcome(4, 1, (1, 2), succeeded(1.0))]).await;
    assert_eq!(r.counters.documents_failed, 1);
    assert_eq!(r.counters.documents_done(), 2);
    assert!(r.completed_job);
}

/// Status changes are conditional on the current status.
pub async fn store_transitions_follow_the_state_machine(subject: &Subject) {
    let job = sample_job("acme", 1);
    subject.store.create_job(&job).await.expect("create");
    let sources = JobStatus::sources_of(JobStatus::Cancelled);
    let cancelled = subject
        .store
        .transition(&job.id, &sources, JobStatus::Cancelled)
        .await
        .expect("cancel");
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    let error = subject
        .store
        .transition(&job.id, &sources, JobStatus::Cancelled)
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error}");
    let error = subject
        .store
        .transition(&JobId::generate(), &sources, JobStatus::Cancelled)
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::NotFound(_)), "{error}");
}

/// Of concurrent finalizations exactly one wins; the rest conflict.
pub async fn store_finish_has_exactly_one_winner(subject: &Subject) {
    let job = sample_job("acme", 1);
    subject.store.create_job(&job).await.expect("create");
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let store = subject.store.clone();
            let id = job.id.clone();
            tokio::spawn(async move {
                store
                    .finish_job(&id, JobStatus::Completed, None, Utc::now())
                    .await
            })
        })
        .collect();
    let mut wins = 0;
    for call in calls {
        match call.await.expect("join") {
            Ok(job) => {
                wins += 1;
                assert_eq!(job.status, JobStatus::Completed);
                assert!(job.finished_at.is_some());
            }
            Err(StoreError::Conflict(_)) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(wins, 1);
    // A finalized job takes no more transitions.
    let error = subject
        .store
        .transition(
            &job.id,
            &JobStatus::sources_of(JobStatus::Cancelled),
            JobStatus::Cancelled,
        )
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error}");
}

/// Monitoring figures follow jobs and their recorded documents (checked as
/// differences: the store may hold other jobs).
pub async fn store_stats_count_jobs_and_documents(subject: &Subject) {
    let count = |stats: &docket_core::ports::StoreStats, status: JobStatus| {
        stats
            .jobs
            .iter()
            .find(|(s, _)| *s == status)
            .map_or(0, |(_, n)| *n)
    };
    let since = Utc::now() - chrono::Duration::hours(1);
    let before = subject.store.stats(since).await.expect("stats");
    assert_eq!(before.jobs.len(), JobStatus::ALL.len());
    let tenant = TenantId::parse("stats-only").expect("tenant");
    let tenant_before = before.jobs_of(&tenant);
    let queued = sample_job("stats-only", 1);
    let running = sample_job("stats-only", 3);
    subject.store.create_job(&queued).await.expect("create");
    subject.store.create_job(&running).await.expect("create");
    let outcomes = [
        outcome(0, 0, (0, 1), succeeded(1.0)),
        outcome(1, 1, (0, 1), failed()),
    ];
    subject
        .store
        .record_outcomes(&running.id, &outcomes, Utc::now())
        .await
        .expect("record");
    let after = subject.store.stats(since).await.expect("stats");
    assert_eq!(
        count(&after, JobStatus::Queued),
        count(&before, JobStatus::Queued) + 1
    );
    assert_eq!(
        count(&after, JobStatus::Processing),
        count(&before, JobStatus::Processing) + 1
    );
    // And per tenant.
    let tenant_after = after.jobs_of(&tenant);
    for (status, added) in [
        (JobStatus::Queued, 1),
        (JobStatus::Processing, 1),
        (JobStatus::Completed, 0),
    ] {
        let n = |counts: &[(JobStatus, u64)]| {
            counts
                .iter()
                .find(|(s, _)| *s == status)
                .map_or(0, |(_, n)| *n)
        };
        assert_eq!(n(&tenant_after), n(&tenant_before) + added, "{status}");
    }
    let mine = after
        .active
        .iter()
        .find(|a| a.id == running.id)
        .expect("the running job is active");
    assert_eq!(
        (mine.tenant.as_str(), mine.status, mine.documents_total),
        ("stats-only", JobStatus::Processing, 3)
    );
    assert_eq!(after.documents_succeeded, before.documents_succeeded + 1);
    assert_eq!(after.documents_failed, before.documents_failed + 1);
    // The running job is active; the queued one has not started.
    let active: u64 = after.active.iter().map(|a| a.documents_done).sum();
    let active_before: u64 = before.active.iter().map(|a| a.documents_done).sum();
    assert_eq!(active, active_before + 2);
    assert!(after.active.iter().any(|a| a.finished_at.is_none()));
    // Nothing is active since a time still to come but what runs.
    let later = subject
        .store
        .stats(Utc::now() + chrono::Duration::hours(1))
        .await
        .expect("stats");
    assert!(later.active.iter().all(|a| a.finished_at.is_none()));
}

/// The failing-fast reason is set once.
pub async fn store_halts_once(subject: &Subject) {
    let job = sample_job("acme", 1);
    subject.store.create_job(&job).await.expect("create");
    assert!(
        subject
            .store
            .halt_job(&job.id, "too many failures")
            .await
            .expect("halt")
    );
    assert!(
        !subject
            .store
            .halt_job(&job.id, "again")
            .await
            .expect("halt")
    );
    assert_eq!(
        subject
            .store
            .job(&job.id)
            .await
            .expect("read")
            .error
            .as_deref(),
        Some("too many failures")
    );
}

/// Listing shows only the tenant's jobs, newest first, filtered, in pages.
pub async fn store_lists_by_tenant_newest_first_with_cursor(subject: &Subject) {
    let tenant = format!(
        "tenant-{}",
        JobId::generate().as_str().trim_start_matches("job_")
    );
    let mut ids = Vec::new();
    for _ in 0..5 {
        let job = sample_job(&tenant, 1);
        subject.store.create_job(&job).await.expect("create");
        ids.push(job.id);
    }
    subject
        .store
        .create_job(&sample_job("someone-else", 1))
        .await
        .expect("create");
    subject
        .store
        .transition(&ids[1], &[JobStatus::Queued], JobStatus::Cancelled)
        .await
        .expect("cancel");
    let tenant = TenantId::parse(&tenant).expect("tenant");
    let page = |before: Option<JobId>, status: Option<JobStatus>| {
        let store = subject.store.clone();
        let tenant = tenant.clone();
        async move {
            store
                .list_jobs(
                    &tenant,
                    &JobFilter {
                        status,
                        since: None,
                        before,
                        limit: 2,
                    },
                )
                .await
                .expect("list")
                .into_iter()
                .map(|j| j.id)
                .collect::<Vec<_>>()
        }
    };
    let first = page(None, None).await;
    assert_eq!(first, [ids[4].clone(), ids[3].clone()]);
    let second = page(first.last().cloned(), None).await;
    assert_eq!(second, [ids[2].clone(), ids[1].clone()]);
    let third = page(second.last().cloned(), None).await;
    assert_eq!(third, [ids[0].clone()]);
    assert_eq!(
        page(None, Some(JobStatus::Cancelled)).await,
        [ids[1].clone()]
    );
}

/// Outcomes read back exactly as recorded, in item order, page after
/// page (item 10 sorts after item 9: indexes compare as numbers).
pub async fn store_round_trips_outcomes(subject: &Subject) {
    let job = sample_job("acme", 12);
    subject.store.create_job(&job).await.expect("create");
    let mut recorded: Vec<ItemOutcome> = (0..12)
        .rev()
        .map(|n| {
            let result = if n % 5 == 1 {
                failed()
            } else {
                succeeded(f64::from(n))
            };
            outcome(n, n, (0, 1), result)
        })
        .collect();
    subject
        .store
        .record_outcomes(&job.id, &recorded, Utc::now())
        .await
        .expect("record");
    recorded.reverse();
    let mut read = Vec::new();
    let mut after = None;
    loop {
        let page = subject
            .store
            .outcomes_page(&job.id, after, 5)
            .await
            .expect("outcomes page");
        assert!(page.len() <= 5, "a page holds at most its limit");
        let Some(last) = page.last() else { break };
        after = Some(last.item);
        read.extend(page);
    }
    assert_eq!(read, recorded);
    let tail = subject
        .store
        .outcomes_page(&job.id, Some(9), 100)
        .await
        .expect("outcomes after item 9");
    assert_eq!(tail, recorded[10..]);
    let missing = subject
        .store
        .outcomes_page(&JobId::generate(), None, 10)
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );
}

/// A job whose intake is open never completes, whatever is recorded: the
/// call that closes the intake sees the job complete when every item was
/// recorded by then, and a record after the close completes it otherwise —
/// exactly one of them, once. A closed intake takes no more documents.
pub async fn store_completes_a_job_only_once_its_intake_is_closed(subject: &Subject) {
    for recorded_before_close in [true, false] {
        let mut job = sample_job("acme", 0);
        job.counters.documents_total = 0;
        job.counters.intake_open = true;
        subject.store.create_job(&job).await.expect("create");
        let grown = subject
            .store
            .extend_job(&job.id, 2, 2, false, Some(0))
            .await
            .expect("first window");
        assert_eq!(
            (grown.counters.documents_total, grown.counters.items_total),
            (2, 2)
        );
        assert!(grown.counters.intake_open);
        let first = subject
            .store
            .record_outcomes(
                &job.id,
                &[outcome(0, 0, (0, 1), succeeded(1.0))],
                Utc::now(),
            )
            .await
            .expect("record the first window");
        assert!(!first.completed_job);
        let grown = subject
            .store
            .extend_job(&job.id, 1, 1, false, Some(2))
            .await
            .expect("second window");
        // The same part of the intake delivered again is not added twice.
        let again = subject
            .store
            .extend_job(&job.id, 1, 1, false, Some(2))
            .await;
        assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
        assert_eq!(grown.counters.items_total, 3);
        let rest = [
            outcome(1, 1, (0, 1), succeeded(2.0)),
            outcome(2, 2, (0, 1), failed()),
        ];
        if recorded_before_close {
            let receipt = subject
                .store
                .record_outcomes(&job.id, &rest, Utc::now())
                .await
                .expect("record the rest");
            assert!(
                !receipt.completed_job,
                "every item recorded, but the intake is open"
            );
            assert_eq!(receipt.counters.items_pending(), 1);
        }
        let closed = subject
            .store
            .extend_job(&job.id, 0, 0, true, None)
            .await
            .expect("close");
        assert!(!closed.counters.intake_open);
        assert_eq!(
            closed.counters.items_pending() == 0,
            recorded_before_close,
            "the closing call sees the job complete only when all was recorded"
        );
        if !recorded_before_close {
            let receipt = subject
                .store
                .record_outcomes(&job.id, &rest, Utc::now())
                .await
                .expect("record the rest");
            assert!(
                receipt.completed_job,
                "the last record after the close completes the job"
            );
        }
        let again = subject
            .store
            .record_outcomes(&job.id, &rest, Utc::now())
            .await
            .expect("duplicates");
        assert!(!again.completed_job);
        let refused = subject.store.extend_job(&job.id, 1, 1, false, None).await;
        assert!(
            matches!(refused, Err(StoreError::Conflict(_))),
            "{refused:?}"
        );
        let read = subject.store.job(&job.id).await.expect("read");
        assert_eq!(read.counters.documents_total, 3);
        assert_eq!(read.counters.documents_failed, 1);
    }
}
