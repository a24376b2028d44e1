//! The AWS backend against the port conformance suite, on the AWS API at
//! `AWS_ENDPOINT_URL` (the local emulator: `eval "$(localstack/start)"`;
//! bin/test starts it). Each subject is a fresh deployment under its own
//! prefix, created as the deploy template declares it.

use std::sync::Arc;

use docket_aws::{AwsBackend, MAX_RECEIVE_COUNT, Names};
use docket_conformance::{RealTime, Subject};

async fn subject() -> Subject {
    assert!(
        std::env::var_os("AWS_ENDPOINT_URL").is_some(),
        "AWS_ENDPOINT_URL is not set: start the emulator with `eval \"$(localstack/start)\"` (bin/test does)"
    );
    let names = provisioned("t").await;
    let backend = AwsBackend::connect(&names).await.expect("connect");
    Subject {
        queue: backend.queue.clone(),
        blobs: backend.blobs.clone(),
        store: backend.store.clone(),
        max_receives: MAX_RECEIVE_COUNT,
        // The service keeps its own time: the checks wait for it by sleeping.
        time: Arc::new(RealTime),
        guard: Box::new(backend),
    }
}

/// A fresh deployment under its own prefix (starting with `letter`),
/// created as the deploy template declares it.
async fn provisioned(letter: &str) -> Names {
    let names = Names::new(format!(
        "{letter}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    ));
    AwsBackend::provision(&names).await.expect("provision");
    names
}

docket_conformance::conformance_tests!(subject);

/// Work items go to SQS in their tenant's message group: on a standard
/// queue that makes it a fair queue, so one tenant's backlog does not hold
/// another's batch behind it.
#[tokio::test]
async fn work_items_are_sent_in_their_tenants_message_group() {
    use aws_sdk_sqs::types::MessageSystemAttributeName;
    use docket_core::model::Priority;
    use docket_core::ports::{OutgoingMessage, QueueName, WorkQueue};
    let names = provisioned("g").await;
    let backend = AwsBackend::connect(&names).await.expect("connect");
    let queue = QueueName::Work(Priority::Normal);
    let job = docket_conformance::sample_job("acme", 1);
    backend
        .queue
        .send(
            queue,
            vec![
                OutgoingMessage::work_item(&job, &serde_json::json!({"item": 0})),
                OutgoingMessage::new("no group"),
            ],
        )
        .await
        .unwrap();
    let client = aws_sdk_sqs::Client::new(&aws_config::load_from_env().await);
    let url = client
        .get_queue_url()
        .queue_name(names.queue(queue))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let received = client
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
        .send()
        .await
        .unwrap();
    let mut groups: Vec<(String, Option<String>)> = received
        .messages()
        .iter()
        .map(|m| {
            let group = m
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))
                .cloned();
            (m.body().unwrap_or_default().to_owned(), group)
        })
        .collect();
    groups.sort();
    assert_eq!(
        groups,
        [
            ("no group".to_owned(), None),
            (r#"{"item":0}"#.to_owned(), Some("acme".to_owned())),
        ]
    );
}

/// With the queues' URL prefix known (the template sets
/// `DOCKET_QUEUE_URL_PREFIX`), connecting asks SQS for no URL, and the
/// queues so addressed are the deployment's.
#[tokio::test]
async fn queues_addressed_by_url_prefix_need_no_lookups() {
    use docket_core::model::Priority;
    use docket_core::ports::{OutgoingMessage, QueueName, WorkQueue};
    let names = provisioned("u").await;
    let looked_up = AwsBackend::connect_counting(&names, Some(docket_aws::CallCounter::default()))
        .await
        .expect("connect");
    let queue = QueueName::Work(Priority::Normal);
    // The URL prefix of this deployment, from one URL SQS gives.
    let config = aws_config::load_from_env().await;
    let url = aws_sdk_sqs::Client::new(&config)
        .get_queue_url()
        .queue_name(names.queue(queue))
        .send()
        .await
        .expect("queue URL")
        .queue_url
        .expect("a URL");
    let prefix = url
        .strip_suffix(&names.queue(queue))
        .expect("URL ends with the name");
    let counter = docket_aws::CallCounter::default();
    let addressed = AwsBackend::connect_counting(
        &names.clone().with_queue_url_prefix(prefix),
        Some(counter.clone()),
    )
    .await
    .expect("connect");
    assert_eq!(counter.counts(), Default::default(), "no call to connect");
    addressed
        .queue
        .send(queue, vec![OutgoingMessage::new("by prefix")])
        .await
        .expect("send");
    let received = looked_up
        .queue
        .receive(queue, 10, std::time::Duration::from_secs(30))
        .await
        .expect("receive");
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].body, "by prefix");
    // A wrong prefix is not silently another queue: sending fails.
    let wrong = AwsBackend::connect(&names.clone().with_queue_url_prefix(format!("{prefix}x")))
        .await
        .expect("connect");
    assert!(
        wrong
            .queue
            .send(queue, vec![OutgoingMessage::new("lost")])
            .await
            .is_err()
    );
}
