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
