//! What the emulator tests create (`AwsBackend::provision`, `Names`, the
//! store's keys) is what the deploy template declares: names, keys, the
//! index, the TTL, queues with their dead-letter queues and redrive.

// Test code: a failed unwrap fails the test.
#![allow(clippy::unwrap_used)]

use docket_aws::{
    CREATED_KEY, MAX_RECEIVE_COUNT, Names, PARTITION_KEY, SORT_KEY, TENANT_INDEX, TENANT_KEY,
    TTL_ATTRIBUTE,
};
use docket_core::ports::QueueName;
use serde_json::{Value, json};

fn template() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../infra/template.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn sub(name: String) -> Value {
    json!({ "Fn::Sub": name })
}

/// The resource whose `name_property` is `name`.
fn resource<'a>(
    template: &'a Value,
    kind: &str,
    name_property: &str,
    name: &Value,
) -> (&'a str, &'a Value) {
    template["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(_, r)| r["Type"] == kind && &r["Properties"][name_property] == name)
        .map(|(id, r)| (id.as_str(), &r["Properties"]))
        .unwrap_or_else(|| panic!("no {kind} named {name}"))
}

#[test]
fn the_template_declares_what_the_tests_provision() {
    let template = template();
    let names = Names::new("${AWS::StackName}");

    let (_, table) = resource(
        &template,
        "AWS::DynamoDB::Table",
        "TableName",
        &sub(names.table()),
    );
    assert_eq!(
        table["KeySchema"],
        json!([{"AttributeName": PARTITION_KEY, "KeyType": "HASH"}, {"AttributeName": SORT_KEY, "KeyType": "RANGE"}])
    );
    let index = &table["GlobalSecondaryIndexes"][0];
    assert_eq!(index["IndexName"], TENANT_INDEX);
    assert_eq!(
        index["KeySchema"],
        json!([{"AttributeName": TENANT_KEY, "KeyType": "HASH"}, {"AttributeName": CREATED_KEY, "KeyType": "RANGE"}])
    );
    assert_eq!(table["GlobalSecondaryIndexes"].as_array().unwrap().len(), 1);
    assert_eq!(
        table["TimeToLiveSpecification"]["AttributeName"],
        TTL_ATTRIBUTE
    );
    resource(
        &template,
        "AWS::S3::Bucket",
        "BucketName",
        &sub(names.bucket()),
    );

    let processor_timeout = template["Resources"]["ProcessorFunction"]["Properties"]["Timeout"]
        .as_u64()
        .unwrap();
    for queue in QueueName::ALL {
        let (dead_id, _) = resource(
            &template,
            "AWS::SQS::Queue",
            "QueueName",
            &sub(names.dead_letter_queue(queue)),
        );
        let (_, properties) = resource(
            &template,
            "AWS::SQS::Queue",
            "QueueName",
            &sub(names.queue(queue)),
        );
        assert_eq!(
            properties["RedrivePolicy"],
            json!({"deadLetterTargetArn": {"Fn::GetAtt": [dead_id, "Arn"]}, "maxReceiveCount": MAX_RECEIVE_COUNT}),
            "{queue:?}"
        );
        assert!(
            properties["VisibilityTimeout"].as_u64().unwrap() >= 6 * processor_timeout,
            "{queue:?}: visibility must be at least 6 × the function timeout"
        );
        let alarmed = template["Resources"]
            .as_object()
            .unwrap()
            .values()
            .any(|r| {
                r["Type"] == "AWS::CloudWatch::Alarm"
                    && r["Properties"]["Dimensions"][0]["Value"]
                        == json!({"Fn::GetAtt": [dead_id, "QueueName"]})
            });
        assert!(alarmed, "{queue:?}: no alarm on its dead-letter queue");
    }
    // Every SQS-driven function reports partial batch failures.
    for (id, function) in template["Resources"].as_object().unwrap() {
        for event in function["Properties"]["Events"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(_, e)| e)
        {
            if event["Type"] == "SQS" {
                assert_eq!(
                    event["Properties"]["FunctionResponseTypes"],
                    json!(["ReportBatchItemFailures"]),
                    "{id}"
                );
                assert!(
                    event["Properties"]["ScalingConfig"]["MaximumConcurrency"].is_u64(),
                    "{id}"
                );
            }
        }
    }
}
