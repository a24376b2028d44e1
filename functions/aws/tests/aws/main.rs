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
    let names = Names::new(format!(
        "t{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    ));
    AwsBackend::provision(&names).await.expect("provision");
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

docket_conformance::conformance_tests!(subject);

/// Work items go to SQS in their tenant's message group: on a standard
/// queue that makes it a fair queue, so one tenant's backlog does not hold
/// another's batch behind it.
#[tokio::test]
async fn work_items_are_sent_in_their_tenants_message_group() {
    use aws_sdk_sqs::types::MessageSystemAttributeName;
    use docket_core::model::Priority;
    use docket_core::ports::{OutgoingMessage, QueueName, WorkQueue};
    let names = Names::new(format!(
        "g{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    ));
    AwsBackend::provision(&names).await.expect("provision");
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
