//! Figures, not checks (ignored tests): AWS calls per document (the
//! processor's cold start is in `cold_start`).

use super::*;

/// A deployment whose pipeline and backend count every AWS call they make
/// (the event-source runner's receives and deletes are paid too).
async fn counting_deployment() -> (Settings, Pipeline, AwsBackend, docket_aws::CallCounter) {
    let (settings, _, _) = deployment().await;
    let counter = docket_aws::CallCounter::default();
    let pipeline = docket_lambda_evaluators::pipeline_counting(&settings, Some(counter.clone()))
        .await
        .unwrap();
    let aws = AwsBackend::connect_counting(&settings.names, Some(counter.clone()))
        .await
        .unwrap();
    (settings, pipeline, aws, counter)
}

/// Figures, not a check of speed: AWS API calls per document for a batch of
/// 1,000 × 5 KB documents through the handlers, counted by operation on the
/// emulator, and what the requests cost at list prices. Run with
/// `--run-ignored only` (see docs/benchmarks.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "figures: run explicitly"]
async fn aws_calls_per_document() {
    let (settings, pipeline, aws, counter) = counting_deployment().await;
    let names = &settings.names;
    let base = "Plan de desarrollo municipal con metas, indicadores y presupuesto. ".repeat(80);
    let texts: Vec<(String, String)> = (0..1000)
        .map(|n| {
            (
                format!("doc-{n:04}"),
                format!("{n} {}", &base[..5 * 1024 - 8]),
            )
        })
        .collect();
    let documents: Vec<(&str, &str)> = texts
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let before = counter.counts();
    let job_id = upload(&pipeline, &settings, &documents).await;
    run_until_finished(&pipeline, &aws, names, std::slice::from_ref(&job_id)).await;
    let job = aws.store.job(&job_id).await.unwrap();
    assert_eq!(job.counters.documents_succeeded, 1000);
    let mut calls = counter.counts();
    for (key, n) in before {
        if let Some(total) = calls.get_mut(&key) {
            *total -= n;
        }
    }
    println!("1,000 × 5 KB documents (wordstats), API calls counted on the emulator");
    calls_table(&calls, 1000.0);
    // The design's claim: bodies are packed, so S3 writes are far fewer
    // than documents.
    let puts = calls
        .get(&("s3".to_owned(), "PutObject".to_owned()))
        .copied()
        .unwrap_or(0);
    assert!(puts < 100, "{puts} PutObject calls for 1,000 documents");
}

/// Prints the calls by operation, per document of `documents`, and what
/// they cost at list prices per million documents.
fn calls_table(calls: &std::collections::BTreeMap<(String, String), u64>, documents: f64) {
    // List prices, us-east-1: SQS $0.40 per million requests; S3 PUT/LIST
    // $0.005 and GET $0.0004 per 1,000; DynamoDB on demand $0.625 per
    // million write units and $0.125 per million read units, counted here
    // as one unit per call (a lower bound: transactions cost two per item,
    // items over 1 KB more).
    let price = |service: &str, operation: &str| -> f64 {
        match (service, operation) {
            ("sqs", _) => 0.40,
            ("s3", "PutObject" | "ListObjectsV2") => 5.0,
            ("s3", _) => 0.4,
            ("dynamodb", "GetItem" | "BatchGetItem" | "Query" | "Scan") => 0.125,
            ("dynamodb", _) => 0.625,
            _ => 0.0,
        }
    };
    println!("| service | operation | calls | per document | $ per million documents |");
    println!("|---|---|---:|---:|---:|");
    let mut total = 0.0;
    for ((service, operation), n) in calls {
        if *n == 0 {
            continue;
        }
        let per_document = *n as f64 / documents;
        let dollars = per_document * price(&service.to_lowercase(), operation);
        total += dollars;
        println!("| {service} | {operation} | {n} | {per_document:.3} | {dollars:.2} |");
    }
    println!(
        "| all | | {} | {:.3} | {total:.2} |",
        calls.values().sum::<u64>(),
        calls.values().sum::<u64>() as f64 / documents
    );
}
