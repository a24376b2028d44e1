//! Figures, not checks (ignored tests): AWS calls per document and the
//! processor's cold start.

use super::*;

/// A deployment whose pipeline and backend count every AWS call they make
/// (the event-source runner's receives and deletes are paid too).
async fn counting_deployment() -> (Settings, Pipeline, AwsBackend, docket_aws::CallCounter) {
    let (settings, _, _) = deployment().await;
    let counter = docket_aws::CallCounter::default();
    let pipeline = docket_lambda::pipeline_counting(&settings, Some(counter.clone()))
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

/// What the fake Lambda Runtime API saw of one processor process.
#[derive(Default)]
struct RuntimeLog {
    next_at: Option<std::time::Instant>,
    response_at: Option<std::time::Instant>,
    response: Option<Value>,
    error: Option<String>,
}

/// A Lambda Runtime API on loopback that hands out `event` once, records
/// when the function asked for it and when it answered, and then keeps
/// the function waiting (as Lambda freezes it).
async fn runtime_api(
    event: Value,
    log: Arc<std::sync::Mutex<RuntimeLog>>,
    answered: Arc<tokio::sync::Notify>,
) -> std::net::SocketAddr {
    use axum::extract::{Path, State};
    use axum::routing::{get, post};
    type Shared = (
        Value,
        Arc<std::sync::Mutex<RuntimeLog>>,
        Arc<tokio::sync::Notify>,
    );
    async fn next(State((event, log, _)): State<Shared>) -> axum::response::Response {
        let first = {
            let mut log = log.lock().unwrap();
            let first = log.next_at.is_none();
            log.next_at.get_or_insert_with(std::time::Instant::now);
            first
        };
        if !first {
            std::future::pending::<()>().await;
        }
        let deadline = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
            + 60_000;
        axum::response::Response::builder()
            .header("lambda-runtime-aws-request-id", "cold-start-1")
            .header("lambda-runtime-deadline-ms", deadline.to_string())
            .header(
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:123456789012:function:processor",
            )
            .header(
                "lambda-runtime-trace-id",
                "Root=1-00000000-000000000000000000000000",
            )
            .body(axum::body::Body::from(event.to_string()))
            .unwrap()
    }
    async fn response(
        State((_, log, answered)): State<Shared>,
        Path(_id): Path<String>,
        body: String,
    ) -> axum::http::StatusCode {
        let mut log = log.lock().unwrap();
        log.response_at = Some(std::time::Instant::now());
        log.response = serde_json::from_str(&body).ok();
        answered.notify_one();
        axum::http::StatusCode::ACCEPTED
    }
    async fn error(
        State((_, log, answered)): State<Shared>,
        body: String,
    ) -> axum::http::StatusCode {
        log.lock().unwrap().error = Some(body);
        answered.notify_one();
        axum::http::StatusCode::ACCEPTED
    }
    let app = axum::Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(error))
        .with_state((event, log, answered));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// Cold start of the `processor` binary: a new process started against a
/// Lambda Runtime API on loopback, handed one SQS event of one work item;
/// the time to its first request for an event (init: configuration, AWS
/// clients, queue URLs, the bundled plugins loaded) and to its answer
/// (the document read, evaluated and recorded). The first run starts with
/// an empty `/tmp` (plugins compiled), the next ones with the compiled
/// plugins cached there, as in a container Lambda starts again. x86_64
/// here; Lambda runs the arm64 build.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a figure for docs/benchmarks.md, not a check (cargo test --release -p docket-lambda --test emulator -- --ignored --nocapture processor_cold_start)"]
async fn processor_cold_start() {
    let (settings, pipeline, aws) = deployment().await;
    let prefix = settings.names.table().trim_end_matches("-jobs").to_owned();
    let tmp = tempfile::tempdir().unwrap();
    let queue = QueueName::Work(docket_core::Priority::Normal);
    println!(
        "| run | compiled plugins in /tmp | init (exec → first event request) | first evaluation answered (exec → response) |"
    );
    println!("|---|---|---:|---:|");
    for run in 1..=5 {
        upload(
            &pipeline,
            &settings,
            &[("doc", "A plan with goals, budget and indicators.")],
        )
        .await;
        let deliveries = aws
            .queue
            .receive(queue, 10, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(deliveries.len(), 1);
        let event =
            serde_json::to_value(sqs_event(&settings.names, queue, false, &deliveries)).unwrap();
        let log = Arc::new(std::sync::Mutex::new(RuntimeLog::default()));
        let answered = Arc::new(tokio::sync::Notify::new());
        let api = runtime_api(event, log.clone(), answered.clone()).await;
        let cached = std::fs::read_dir(tmp.path().join("docket-cache"))
            .map(|d| d.count() > 0)
            .unwrap_or(false);
        let started = std::time::Instant::now();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_processor"))
            .env("AWS_LAMBDA_RUNTIME_API", api.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", "processor")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/processor")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "cold-start")
            .env("DOCKET_PREFIX", &prefix)
            .env("TMPDIR", tmp.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        tokio::time::timeout(Duration::from_secs(120), answered.notified())
            .await
            .expect("the processor answered");
        child.kill().unwrap();
        child.wait().unwrap();
        let log = log.lock().unwrap();
        assert!(log.error.is_none(), "{:?}", log.error);
        assert_eq!(
            log.response.as_ref().unwrap()["batchItemFailures"],
            json!([])
        );
        let ms = |at: Option<std::time::Instant>| (at.unwrap() - started).as_secs_f64() * 1e3;
        println!(
            "| {run} | {} | {:.0} ms | {:.0} ms |",
            if cached { "yes" } else { "no" },
            ms(log.next_at),
            ms(log.response_at)
        );
    }
}

/// Peak resident bytes since the last reset, and a reset (Linux: `5` in
/// `/proc/self/clear_refs` resets the peak to what is resident now).
fn peak_resident_bytes(reset: bool) -> u64 {
    if reset {
        let _ = std::fs::write("/proc/self/clear_refs", "5");
    }
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Figures, not a check of speed: a job of 2,000 items finalized by the
/// Lambda finalizer on DynamoDB and S3 with forced small parts (16 KiB) and
/// a forced short time budget (each invocation is past its deadline after
/// one part, so it checkpoints), and the peak resident memory of the
/// finalize step. The job is created and its outcomes recorded straight
/// into the store (what intake and processors would have left), so the
/// figure is the finalizer's alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "figures: run explicitly"]
async fn finalize_of_a_job_in_small_parts_with_checkpoints() {
    // 2,000, not the 20,000 the figure was asked for: the emulator copies
    // the whole table for every DynamoDB transaction (moto's rollback), so
    // recording grows with the square of the job there, not on DynamoDB.
    const ITEMS: usize = 2_000;
    let (settings, pipeline, aws) = deployment().await;
    let names = &settings.names;
    let pipeline = pipeline.with_settings(super::finalize::small_parts(&settings, 16 * 1024));
    let texts: Vec<(String, String)> = (0..ITEMS)
        .map(|n| (format!("doc-{n:05}"), format!("plan {n} water road")))
        .collect();
    // The job as intake leaves it, without its work messages (the
    // emulator's queue grows slow with them, and no processor runs here).
    let job = docket_core::model::Job {
        id: JobId::generate(),
        tenant: TenantId::parse("acme").unwrap(),
        status: docket_core::JobStatus::Queued,
        evaluator: pipeline.resolve_evaluator("wordstats").await.unwrap(),
        config: json!({}),
        options: Default::default(),
        counters: docket_core::model::JobCounters {
            documents_total: ITEMS as u32,
            items_total: ITEMS as u32,
            ..Default::default()
        },
        created_at: chrono::Utc::now(),
        started_at: None,
        finished_at: None,
        error: None,
        webhook: None,
        failures: Vec::new(),
    };
    aws.store.create_job(&job).await.unwrap();
    let recording = std::time::Instant::now();
    // Batches of ten, as a processor records a receive's worth.
    for (batch, chunk) in texts.chunks(10).enumerate() {
        let outcomes: Vec<docket_core::model::ItemOutcome> = chunk
            .iter()
            .enumerate()
            .map(|(k, (id, text))| {
                let n = (batch * 10 + k) as u32;
                docket_core::model::ItemOutcome {
                    item: n,
                    document: n,
                    document_id: id.clone(),
                    title: id.clone(),
                    chunk: docket_core::model::ChunkInfo::WHOLE,
                    bytes: text.len() as u64,
                    body: None,
                    metadata: Value::Null,
                    result: docket_core::model::ItemResult::Succeeded {
                        evaluation: docket_core::Evaluation {
                            scores: vec![docket_core::evaluation::Score {
                                name: "words".into(),
                                value: 4.0,
                                max: 100.0,
                            }],
                            findings: Vec::new(),
                            labels: vec!["length:short".into()],
                            data: json!({"words": 4}),
                        },
                        seconds: 0.001,
                    },
                }
            })
            .collect();
        aws.store
            .record_outcomes(&job.id, &outcomes, chrono::Utc::now())
            .await
            .unwrap();
        if batch % 200 == 199 {
            eprintln!(
                "{} outcomes recorded in {:.1} s",
                (batch + 1) * 10,
                recording.elapsed().as_secs_f64()
            );
        }
    }
    let recording = recording.elapsed().as_secs_f64();
    assert_eq!(
        aws.store
            .job(&job.id)
            .await
            .unwrap()
            .counters
            .items_pending(),
        0
    );
    // The last record would have sent it.
    let message = docket_core::pipeline::FinalizeMessage {
        job_id: job.id.clone(),
    };
    aws.queue
        .send(
            QueueName::Finalize,
            vec![docket_core::ports::OutgoingMessage::json(&message)],
        )
        .await
        .unwrap();
    let before = peak_resident_bytes(true);
    let started = std::time::Instant::now();
    let mut invocations = 0;
    let mut slowest = 0f64;
    while aws.store.job(&job.id).await.unwrap().finished_at.is_none() {
        let invoked = std::time::Instant::now();
        let received = runner::pump(&aws, names, QueueName::Finalize, |event| {
            docket_lambda::finalize(
                &pipeline,
                event,
                Some(std::time::Instant::now() + docket_lambda::FINALIZE_MARGIN),
            )
        })
        .await;
        if received > 0 {
            invocations += 1;
            slowest = slowest.max(invoked.elapsed().as_secs_f64());
        }
        assert!(invocations < 10_000);
    }
    let seconds = started.elapsed().as_secs_f64();
    let peak = peak_resident_bytes(false);
    let index = pipeline.results_index(&job.id).await.unwrap();
    assert_eq!(index.documents(), ITEMS as u64);
    println!(
        "finalize of {ITEMS} items on the emulator, 16 KiB parts, a checkpoint after every part"
    );
    println!(
        "| parts | invocations | finalize s | s per invocation (mean / slowest) | resident before | peak resident during | outcomes recorded in |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {invocations} | {seconds:.1} | {:.2} / {slowest:.2} | {:.0} MiB | {:.0} MiB | {recording:.1} s |",
        index.parts.len(),
        seconds / invocations as f64,
        before as f64 / 1048576.0,
        peak as f64 / 1048576.0,
    );
}

/// Figures, not a check of speed: a `*.batch.json` naming a prefix of
/// `DOCKET_FIGURE_OBJECTS` objects (20,000 by default) listed and enqueued
/// by the ingest handler (a page of 500 keys per message), the seconds it
/// takes on the emulator and the AWS calls it makes per document. The
/// items are not processed here. Run with `--run-ignored only` (see
/// docs/benchmarks.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "figures: run explicitly"]
async fn listing_and_enqueuing_a_prefix() {
    let objects: usize = std::env::var("DOCKET_FIGURE_OBJECTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    let (settings, pipeline, aws, counter) = counting_deployment().await;
    let blobs = std::sync::Arc::new(aws.blobs.clone());
    let put_started = std::time::Instant::now();
    let mut puts = tokio::task::JoinSet::new();
    for worker in 0..16 {
        let blobs = blobs.clone();
        puts.spawn(async move {
            for n in (worker..objects).step_by(16) {
                let key = format!("files/acme/drop/{n:05}.txt");
                blobs
                    .put(&key, format!("document {n}").into_bytes())
                    .await
                    .unwrap();
            }
        });
    }
    puts.join_all().await;
    println!(
        "{objects} objects put in {:.1} s (not counted)",
        put_started.elapsed().as_secs_f64()
    );
    let manifest = json!({"prefix": "drop/", "options": {"evaluator": "wordstats"}});
    let before = counter.counts();
    let started = std::time::Instant::now();
    aws.blobs
        .put(
            "inbox/acme/drop.batch.json",
            manifest.to_string().into_bytes(),
        )
        .await
        .unwrap();
    let jobs = super::inbox::ingest_until(&pipeline, &settings, &aws, false, |jobs| {
        jobs.first().is_some_and(|job| !job.counters.intake_open)
    })
    .await;
    let job = &jobs[0];
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(job.counters.documents_total as usize, objects);
    let mut calls = counter.counts();
    for (key, n) in before {
        if let Some(total) = calls.get_mut(&key) {
            *total -= n;
        }
    }
    println!(
        "{objects} objects under a prefix listed and enqueued as one job in {seconds:.1} s ({:.0} documents/s) on the emulator",
        objects as f64 / seconds
    );
    calls_table(&calls, objects as f64);
}
