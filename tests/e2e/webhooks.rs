//! Job-finished callbacks through the pipeline to a real receiver on
//! loopback: signed per Standard Webhooks, retried with backoff, given up
//! to the dead-letter queue, and their state kept on the job.

// Test code: a failed unwrap fails the test.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use docket_core::model::JobOptions;
use docket_core::ports::{Clock, QueueName, WorkQueue};
use docket_core::webhook::{WebhookState, sign};
use docket_tests::Harness;

/// A receiver that answers 503 to its first `failures` calls, then 200.
async fn receiver(failures: usize) -> (String, Arc<Mutex<Vec<(HeaderMap, String)>>>) {
    let seen: Arc<Mutex<Vec<(HeaderMap, String)>>> = Arc::default();
    let calls = seen.clone();
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: String| async move {
            let mut calls = calls.lock().unwrap();
            calls.push((headers, body));
            if calls.len() <= failures {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), seen)
}

/// Delivers callbacks, moving the clock past each backoff, until none is
/// left in the queue or its dead-letter companion.
async fn deliver_all(harness: &Harness) {
    for _ in 0..40 {
        let sent = harness.pipeline.deliver_webhooks_once().await.unwrap();
        let drained = harness
            .pipeline
            .drain_dead_letters(QueueName::Webhook)
            .await
            .unwrap();
        let depth = harness
            .backend
            .queue
            .depth(QueueName::Webhook)
            .await
            .unwrap();
        if sent + drained == 0 && depth.visible + depth.in_flight + depth.dead == 0 {
            return;
        }
        if sent + drained == 0 {
            harness.clock.advance(Duration::from_secs(60));
        }
    }
    panic!("webhooks still queued");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_job_calls_back_signed_and_retries_a_failing_receiver() {
    let harness = Harness::new(None);
    let (url, seen) = receiver(2).await;
    let options = JobOptions {
        webhook_url: Some(url),
        ..JobOptions::default()
    };
    let job = harness
        .submit(
            "hostile",
            &[("a", "fine"), ("b", "hostile:invalid")],
            options,
        )
        .await;
    harness.run_until_finalized(&job.id, 20).await;
    let pending = harness.pipeline.job(&job.id).await.unwrap();
    assert_eq!(pending.webhook.unwrap().state, WebhookState::Pending);

    let before = harness.clock.now();
    deliver_all(&harness).await;
    let calls = seen.lock().unwrap().clone();
    assert_eq!(calls.len(), 3, "two 503s, then delivered");
    let secret = harness.pipeline.webhook_secret(&job.tenant).await.unwrap();
    for (headers, body) in &calls {
        let id = headers["webhook-id"].to_str().unwrap();
        let timestamp: i64 = headers["webhook-timestamp"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            id,
            format!("msg_{}", job.id),
            "the same id on every attempt"
        );
        assert_eq!(
            headers["webhook-signature"].to_str().unwrap(),
            sign(&secret, id, timestamp, body).unwrap()
        );
        let event: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(event["type"], "batch.completed");
        assert_eq!(event["data"]["job_id"], job.id.as_str());
        assert_eq!(event["data"]["document_count"], 2);
        assert_eq!(event["data"]["completed_documents"], 1);
        assert_eq!(event["data"]["failed_documents"], 1);
    }
    let finished = harness.pipeline.job(&job.id).await.unwrap();
    let webhook = finished.webhook.unwrap();
    assert_eq!(webhook.state, WebhookState::Delivered);
    assert_eq!(webhook.attempts, 3);
    assert_eq!(webhook.last_status, Some(200));
    // Backoff: the clock had to move for each retry.
    assert!(harness.clock.now() > before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_never_answers_2xx_is_given_up_after_the_last_attempt() {
    let harness = Harness::new(None);
    let (url, seen) = receiver(usize::MAX).await;
    let options = JobOptions {
        webhook_url: Some(url),
        ..JobOptions::default()
    };
    let job = harness.submit("hostile", &[("a", "fine")], options).await;
    harness.run_until_finalized(&job.id, 20).await;
    deliver_all(&harness).await;
    let attempts = harness.pipeline.settings().webhook_attempts as usize;
    assert_eq!(seen.lock().unwrap().len(), attempts);
    let webhook = harness
        .pipeline
        .job(&job.id)
        .await
        .unwrap()
        .webhook
        .unwrap();
    assert_eq!(webhook.state, WebhookState::Failed);
    assert_eq!(webhook.attempts as usize, attempts);
    assert_eq!(webhook.last_status, Some(503));
    assert_eq!(
        webhook.last_error.as_deref(),
        Some("the receiver answered 503 Service Unavailable")
    );
    let depth = harness
        .backend
        .queue
        .depth(QueueName::Webhook)
        .await
        .unwrap();
    assert_eq!((depth.visible, depth.in_flight, depth.dead), (0, 0, 0));
}
