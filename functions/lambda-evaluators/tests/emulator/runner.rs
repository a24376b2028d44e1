//! The event-source runner: what Lambda's event source mappings do for the
//! deployment's queues, played against the emulator.

use super::*;

/// What the runner does with one queue.
#[derive(Clone, Copy)]
pub(crate) struct Source {
    pub(crate) queue: QueueName,
    /// The queue's dead-letter queue instead.
    pub(crate) dead: bool,
    /// Visibility of received messages.
    pub(crate) visibility: Duration,
}

impl Source {
    pub(crate) fn of(queue: QueueName) -> Self {
        Self {
            queue,
            dead: false,
            visibility: Duration::from_secs(30),
        }
    }
}

/// The event-source runner: what a Lambda event source mapping does for one
/// queue — receive up to 10 messages, hand them to `handler` as a real
/// `SqsEvent`, delete those not reported as failures. Messages for which
/// `crash` holds are received but neither handed over nor deleted, as if
/// the function died on them. Returns how many messages it received.
pub(crate) async fn pump_with<F, Fut>(
    aws: &AwsBackend,
    names: &Names,
    source: Source,
    crash: impl Fn(&docket_core::ports::Delivery) -> bool,
    handler: F,
) -> usize
where
    F: Fn(SqsEvent) -> Fut,
    Fut: std::future::Future<Output = SqsBatchResponse>,
{
    let queue = source.queue;
    let received = if source.dead {
        aws.queue.receive_dead(queue, 10, source.visibility).await
    } else {
        aws.queue.receive(queue, 10, source.visibility).await
    };
    let received = received.unwrap();
    let count = received.len();
    let deliveries: Vec<_> = received.into_iter().filter(|d| !crash(d)).collect();
    if deliveries.is_empty() {
        return count;
    }
    let event = sqs_event(names, queue, source.dead, &deliveries);
    let response = handler(event).await;
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    let done: Vec<_> = deliveries
        .iter()
        .filter(|d| !failed.contains(&d.message_id.as_str()))
        .map(|d| d.receipt.clone())
        .collect();
    if source.dead {
        aws.queue.ack_dead(queue, &done).await.unwrap();
    } else {
        aws.queue.ack(queue, &done).await.unwrap();
    }
    count
}

/// The SQS event Lambda's event source mapping would hand over for
/// `deliveries` of `queue` (or its dead-letter queue): the fixture's record
/// shape with the deliveries' ids, receipts, bodies and receive counts.
pub(crate) fn sqs_event(
    names: &Names,
    queue: QueueName,
    dead: bool,
    deliveries: &[docket_core::ports::Delivery],
) -> SqsEvent {
    let name = if dead {
        names.dead_letter_queue(queue)
    } else {
        names.queue(queue)
    };
    let template: Value = serde_json::from_str::<Value>(SQS_FIXTURE).unwrap()["Records"][0].clone();
    let records: Vec<Value> = deliveries
        .iter()
        .map(|d| {
            let mut record = template.clone();
            record["messageId"] = json!(d.message_id);
            record["receiptHandle"] = json!(d.receipt.0);
            record["body"] = json!(d.body);
            record["md5OfBody"] = Value::Null;
            record["messageAttributes"] = json!({});
            record["eventSourceARN"] = json!(format!("arn:aws:sqs:us-east-1:123456789012:{name}"));
            record["attributes"]["ApproximateReceiveCount"] = json!(d.receive_count.to_string());
            record
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

/// [`pump_with`] without crashes.
pub(crate) async fn pump<F, Fut>(
    aws: &AwsBackend,
    names: &Names,
    queue: QueueName,
    handler: F,
) -> usize
where
    F: Fn(SqsEvent) -> Fut,
    Fut: std::future::Future<Output = SqsBatchResponse>,
{
    pump_with(aws, names, Source::of(queue), |_| false, handler).await
}

/// Runs processors and finalizers until every job in `jobs` is finished.
pub(crate) async fn run_until_finished(
    pipeline: &Pipeline,
    aws: &AwsBackend,
    names: &Names,
    jobs: &[JobId],
) {
    for _ in 0..400 {
        let mut handled = 0;
        for priority in docket_core::Priority::ALL {
            handled += pump(aws, names, QueueName::Work(priority), |event| {
                docket_lambda::process(pipeline, names, event)
            })
            .await;
        }
        handled += pump(aws, names, QueueName::Finalize, |event| {
            docket_lambda::finalize(pipeline, event, None)
        })
        .await;
        let mut finished = 0;
        for job in jobs {
            if aws.store.job(job).await.unwrap().finished_at.is_some() {
                finished += 1;
            }
        }
        if finished == jobs.len() {
            return;
        }
        if handled == 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    panic!("jobs not finished: {jobs:?}");
}
