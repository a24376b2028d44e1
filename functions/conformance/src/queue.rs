//! [`WorkQueue`](docket_core::ports::WorkQueue) checks: delivery,
//! visibility, retries, dead letters, limits, depth.

use std::collections::BTreeSet;
use std::time::Duration;

use docket_core::Priority;
use docket_core::ports::{OutgoingMessage, QueueError, QueueName};

use crate::{NORMAL, Subject};

const VISIBILITY: Duration = Duration::from_secs(1);

async fn receive_all(
    subject: &Subject,
    queue: QueueName,
    visibility: Duration,
) -> Vec<docket_core::ports::Delivery> {
    let mut all: Vec<docket_core::ports::Delivery> = Vec::new();
    for _ in 0..20 {
        let batch = subject
            .queue
            .receive(queue, 10, visibility)
            .await
            .expect("receive");
        if batch.is_empty() && !all.is_empty() {
            break;
        }
        // A slow remote queue can take longer than the visibility timeout
        // between two receives and hand a message out again: it is still
        // one message, and its latest receipt is the one that counts.
        for delivery in batch {
            match all
                .iter_mut()
                .find(|seen| seen.message_id == delivery.message_id)
            {
                Some(seen) => *seen = delivery,
                None => all.push(delivery),
            }
        }
    }
    all
}

fn messages(bodies: &[&str]) -> Vec<OutgoingMessage> {
    bodies.iter().map(|b| OutgoingMessage::new(*b)).collect()
}

/// Sent messages are received with their bodies and a receive count of 1;
/// acked ones are gone.
pub async fn queue_send_receive_ack(subject: &Subject) {
    subject
        .queue
        .send(NORMAL, messages(&["a", "b", "c"]))
        .await
        .expect("send");
    let got = receive_all(subject, NORMAL, Duration::from_secs(30)).await;
    let bodies: BTreeSet<_> = got.iter().map(|d| d.body.as_str()).collect();
    assert_eq!(bodies, BTreeSet::from(["a", "b", "c"]));
    assert!(got.iter().all(|d| d.receive_count == 1));
    let receipts: Vec<_> = got.iter().map(|d| d.receipt.clone()).collect();
    subject.queue.ack(NORMAL, &receipts).await.expect("ack");
    let depth = subject.queue.depth(NORMAL).await.expect("depth");
    assert_eq!(depth.visible + depth.in_flight, 0, "{depth:?}");
}

/// A received message is invisible until its visibility expires, then comes
/// back with a higher receive count; a stale receipt does not delete it.
pub async fn queue_hides_received_messages_until_visibility_expires(subject: &Subject) {
    subject
        .queue
        .send(NORMAL, messages(&["m"]))
        .await
        .expect("send");
    let first = subject
        .queue
        .receive(NORMAL, 10, VISIBILITY)
        .await
        .expect("receive");
    assert_eq!(first.len(), 1);
    assert!(
        subject
            .queue
            .receive(NORMAL, 10, VISIBILITY)
            .await
            .expect("receive")
            .is_empty()
    );
    // The margin is for a remote queue, whose timeouts are not exact.
    subject
        .time
        .pass(VISIBILITY + Duration::from_millis(600))
        .await;
    let second = receive_all(subject, NORMAL, Duration::from_secs(30)).await;
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].receive_count, 2);
    assert_eq!(second[0].message_id, first[0].message_id);
    subject
        .queue
        .ack(NORMAL, &[second[0].receipt.clone()])
        .await
        .expect("ack");
    let depth = subject.queue.depth(NORMAL).await.expect("depth");
    assert_eq!(depth.visible + depth.in_flight, 0, "{depth:?}");
}

/// `retry_after` with no delay makes the message visible again at once.
pub async fn queue_retry_after_sets_visibility(subject: &Subject) {
    subject
        .queue
        .send(NORMAL, messages(&["r"]))
        .await
        .expect("send");
    let first = subject
        .queue
        .receive(NORMAL, 1, Duration::from_secs(60))
        .await
        .expect("receive");
    assert_eq!(first.len(), 1);
    subject
        .queue
        .retry_after(NORMAL, &first[0].receipt, Duration::ZERO)
        .await
        .expect("retry");
    let again = receive_all(subject, NORMAL, Duration::from_secs(60)).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].receive_count, 2);
}

/// After `max_receives` receives the message moves to the dead-letter
/// companion, where it can be received and acked.
pub async fn queue_dead_letters_after_max_receives(subject: &Subject) {
    subject
        .queue
        .send(NORMAL, messages(&["poison"]))
        .await
        .expect("send");
    for n in 1..=subject.max_receives {
        let got = receive_all(subject, NORMAL, Duration::from_secs(60)).await;
        assert_eq!(got.len(), 1, "receive {n}");
        assert_eq!(got[0].receive_count, n);
        subject
            .queue
            .retry_after(NORMAL, &got[0].receipt, Duration::ZERO)
            .await
            .expect("retry");
    }
    let mut dead = Vec::new();
    for _ in 0..20 {
        assert!(
            subject
                .queue
                .receive(NORMAL, 10, Duration::from_secs(60))
                .await
                .expect("receive")
                .is_empty()
        );
        dead = subject
            .queue
            .receive_dead(NORMAL, 10, Duration::from_secs(60))
            .await
            .expect("receive dead");
        if !dead.is_empty() {
            break;
        }
        // A back-off between polls, not a wait for time to pass: a remote
        // queue may take a moment to show a message it moved to the
        // dead-letter queue. The embedded queue moves it within the receive
        // above and breaks out before getting here.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, "poison");
    subject
        .queue
        .ack_dead(NORMAL, &[dead[0].receipt.clone()])
        .await
        .expect("ack dead");
    assert_eq!(subject.queue.depth(NORMAL).await.expect("depth").dead, 0);
}

/// A send of more messages than one backend call takes is split for the
/// caller.
pub async fn queue_sends_large_batches(subject: &Subject) {
    let bodies: Vec<String> = (0..25).map(|n| format!("message-{n}")).collect();
    subject
        .queue
        .send(
            NORMAL,
            bodies
                .iter()
                .map(|b| OutgoingMessage::new(b.clone()))
                .collect(),
        )
        .await
        .expect("send");
    let got = receive_all(subject, NORMAL, Duration::from_secs(60)).await;
    let received: BTreeSet<_> = got.iter().map(|d| d.body.clone()).collect();
    assert_eq!(received, bodies.into_iter().collect());
}

/// A body over the limit is refused before anything is sent.
pub async fn queue_refuses_oversized_messages(subject: &Subject) {
    let large = "x".repeat(docket_core::ports::MAX_MESSAGE_BYTES + 1);
    let error = subject
        .queue
        .send(
            NORMAL,
            vec![OutgoingMessage::new("small"), OutgoingMessage::new(large)],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, QueueError::MessageTooLarge { .. }),
        "{error}"
    );
    assert!(
        subject
            .queue
            .receive(NORMAL, 10, VISIBILITY)
            .await
            .expect("receive")
            .is_empty()
    );
}

/// Each queue holds its own messages.
pub async fn queue_keeps_queues_apart(subject: &Subject) {
    subject
        .queue
        .send(QueueName::Finalize, messages(&["f"]))
        .await
        .expect("send");
    subject
        .queue
        .send(QueueName::Work(Priority::High), messages(&["h"]))
        .await
        .expect("send");
    assert!(
        subject
            .queue
            .receive(NORMAL, 10, VISIBILITY)
            .await
            .expect("receive")
            .is_empty()
    );
    let high = receive_all(subject, QueueName::Work(Priority::High), VISIBILITY).await;
    assert_eq!(high.len(), 1);
    assert_eq!(high[0].body, "h");
    let finalize = receive_all(subject, QueueName::Finalize, VISIBILITY).await;
    assert_eq!(finalize[0].body, "f");
}

/// Depth counts visible and in-flight messages.
pub async fn queue_reports_depth(subject: &Subject) {
    subject
        .queue
        .send(NORMAL, messages(&["1", "2", "3"]))
        .await
        .expect("send");
    let mut depth = subject.queue.depth(NORMAL).await.expect("depth");
    for _ in 0..20 {
        if depth.visible == 3 {
            break;
        }
        // A back-off between polls, not a wait for time to pass: a remote
        // queue's depth is approximate and catches up with sends after a
        // moment. The embedded queue counts exactly and breaks out at once.
        tokio::time::sleep(Duration::from_millis(200)).await;
        depth = subject.queue.depth(NORMAL).await.expect("depth");
    }
    assert_eq!(depth.visible, 3, "{depth:?}");
    let got = subject
        .queue
        .receive(NORMAL, 1, Duration::from_secs(60))
        .await
        .expect("receive");
    assert_eq!(got.len(), 1);
    let depth = subject.queue.depth(NORMAL).await.expect("depth");
    assert_eq!((depth.visible, depth.in_flight), (2, 1), "{depth:?}");
}
