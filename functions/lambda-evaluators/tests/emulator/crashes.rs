//! Crashes and poison messages: redelivery counts once, a poison message
//! fails its document alone.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_redelivered_after_a_crash_before_delete_counts_once_and_finalizes_once() {
    let (settings, pipeline, aws) = deployment().await;
    let names = &settings.names;
    let texts: Vec<(String, String)> = (0..20)
        .map(|n| (format!("d{n}"), format!("document {n} text")))
        .collect();
    let documents: Vec<(&str, &str)> = texts
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let job_id = upload(&pipeline, &settings, &documents).await;
    let work = Source {
        visibility: Duration::from_secs(1),
        ..Source::of(QueueName::Work(docket_core::Priority::Normal))
    };
    // The function processes a batch and dies before Lambda deletes it.
    let handled = pump_with(
        &aws,
        names,
        work,
        |_| false,
        |event| async {
            docket_lambda::process(&pipeline, names, event).await;
            SqsBatchResponse::default()
        },
    )
    .await;
    assert_eq!(handled, 10);
    // Every message delivered again, the crashed batch included.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for _ in 0..100 {
        pump_with(
            &aws,
            names,
            work,
            |_| false,
            |event| docket_lambda::process(&pipeline, names, event),
        )
        .await;
        // Finalize messages delivered twice each.
        pump(&aws, names, QueueName::Finalize, |event| async {
            docket_lambda::finalize(&pipeline, event.clone(), None).await;
            docket_lambda::finalize(&pipeline, event, None).await
        })
        .await;
        let job = aws.store.job(&job_id).await.unwrap();
        if job.finished_at.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let job = aws.store.job(&job_id).await.unwrap();
    assert_eq!(job.status, docket_core::JobStatus::Completed);
    assert_eq!(
        (
            job.counters.items_succeeded,
            job.counters.documents_succeeded,
            job.counters.items_failed
        ),
        (20, 20, 0)
    );
    // A late duplicate finalize message changes nothing.
    let finished_at = job.finished_at;
    let late = docket_core::pipeline::FinalizeMessage {
        job_id: job_id.clone(),
    };
    aws.queue
        .send(
            QueueName::Finalize,
            vec![docket_core::ports::OutgoingMessage::json(&late)],
        )
        .await
        .unwrap();
    pump(&aws, names, QueueName::Finalize, |event| {
        docket_lambda::finalize(&pipeline, event, None)
    })
    .await;
    assert_eq!(
        aws.store.job(&job_id).await.unwrap().finished_at,
        finished_at
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_goes_to_the_dead_letter_queue_and_its_document_fails_alone() {
    let (settings, pipeline, aws) = deployment().await;
    let names = &settings.names;
    let documents = [
        ("good-1", "fine text"),
        ("poison", "the processor dies on this one"),
        ("good-2", "more fine text"),
    ];
    let job_id = upload(&pipeline, &settings, &documents).await;
    let work = Source {
        visibility: Duration::from_secs(1),
        ..Source::of(QueueName::Work(docket_core::Priority::Normal))
    };
    let poison = |d: &docket_core::ports::Delivery| d.body.contains("\"poison\"");
    for _ in 0..60 {
        pump_with(&aws, names, work, poison, |event| {
            docket_lambda::process(&pipeline, names, event)
        })
        .await;
        let dead = Source { dead: true, ..work };
        pump_with(
            &aws,
            names,
            dead,
            |_| false,
            |event| docket_lambda::process(&pipeline, names, event),
        )
        .await;
        pump(&aws, names, QueueName::Finalize, |event| {
            docket_lambda::finalize(&pipeline, event, None)
        })
        .await;
        if aws.store.job(&job_id).await.unwrap().finished_at.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let job = aws.store.job(&job_id).await.unwrap();
    assert!(job.finished_at.is_some(), "the job did not finish");
    assert_eq!(
        (
            job.counters.documents_succeeded,
            job.counters.documents_failed
        ),
        (2, 1)
    );
    let results: Value = stored_results(&aws, &job_id).await;
    let poisoned = results["documents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == "poison")
        .unwrap();
    assert_eq!(poisoned["status"], "failed");
    assert_eq!(poisoned["error"]["category"], "PERMANENT");
    assert_eq!(
        poisoned["error"]["message"],
        "dead-lettered: the processor never recorded an outcome for this item"
    );
    let depth = aws
        .queue
        .depth(QueueName::Work(docket_core::Priority::Normal))
        .await
        .unwrap();
    assert_eq!((depth.visible, depth.in_flight, depth.dead), (0, 0, 0));
}
