//! The `processor` binary started as Lambda starts a new container: a new
//! process against a Lambda Runtime API on loopback, an empty `/tmp`,
//! handed one SQS event of one work item. Checks that the compiled code
//! shipped in the package is used (nothing compiled) or, when it does not
//! suit the engine, recompiled with a warning; and the cold-start figure.

use std::path::Path;

use super::runner::sqs_event;
use super::*;
use docket_core::ports::QueueName;

/// One new processor process: when it asked for its first event and when
/// it answered (from its exec), what it answered and what it logged.
struct ColdStart {
    init_ms: f64,
    answer_ms: f64,
    response: Value,
    /// Its JSON log lines.
    logs: Vec<Value>,
}

impl ColdStart {
    /// Log lines with this message.
    fn logged(&self, message: &str) -> usize {
        self.logs
            .iter()
            .filter(|line| line["fields"]["message"] == message)
            .count()
    }
}

/// Uploads one document and starts a new `processor` process with `tmp` as
/// its `/tmp` (and `shipped` as its package's compiled code) on the work
/// item it makes.
async fn start_processor(
    deployment: &(Settings, Pipeline, AwsBackend),
    tmp: &Path,
    shipped: Option<&Path>,
) -> ColdStart {
    let binary = Path::new(env!("CARGO_BIN_EXE_processor"));
    work_item_to(binary, deployment, tmp, shipped).await
}

/// [`start_processor`] with the processor `binary`.
async fn work_item_to(
    binary: &Path,
    deployment: &(Settings, Pipeline, AwsBackend),
    tmp: &Path,
    shipped: Option<&Path>,
) -> ColdStart {
    let event = serde_json::to_value(one_work_item(deployment).await).unwrap();
    start_function(binary, event, &deployment.0, tmp, shipped).await
}

/// Uploads one document and returns the SQS event of the work item it
/// makes, as the event source hands it to the processor.
async fn one_work_item(
    (settings, pipeline, aws): &(Settings, Pipeline, AwsBackend),
) -> aws_lambda_events::event::sqs::SqsEvent {
    let queue = QueueName::Work(docket_core::Priority::Normal);
    upload(
        pipeline,
        settings,
        &[("doc", "A plan with goals, budget and indicators.")],
    )
    .await;
    let deliveries = aws
        .queue
        .receive(queue, 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(deliveries.len(), 1);
    sqs_event(&settings.names, queue, false, &deliveries)
}

/// Starts the function `binary` as a new process, configured as the
/// deploy template configures it, with `tmp` as its `/tmp` (and `shipped`
/// as its package's compiled code), and hands it `event`.
async fn start_function(
    binary: &Path,
    event: Value,
    settings: &Settings,
    tmp: &Path,
    shipped: Option<&Path>,
) -> ColdStart {
    let prefix = settings.names.table().trim_end_matches("-jobs").to_owned();
    let queue = QueueName::Work(docket_core::Priority::Normal);
    let log = Arc::new(std::sync::Mutex::new(RuntimeLog::default()));
    let answered = Arc::new(tokio::sync::Notify::new());
    let api = runtime_api(event, log.clone(), answered.clone()).await;
    // The queues' URL prefix, as the deploy template sets it.
    let url = aws_sdk_sqs::Client::new(&aws_config::load_from_env().await)
        .get_queue_url()
        .queue_name(settings.names.queue(queue))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let url_prefix = url.strip_suffix(&settings.names.queue(queue)).unwrap();
    // A package's binary is `<function>/bootstrap`.
    let name = match binary.file_name().unwrap().to_string_lossy() {
        bootstrap if bootstrap == "bootstrap" => binary
            .parent()
            .and_then(|p| p.file_name())
            .unwrap()
            .to_string_lossy()
            .into_owned(),
        name => name.into_owned(),
    };
    let started = std::time::Instant::now();
    // `DOCKET_LAMBDA_RUNNER`: a command the binary runs under (e.g.
    // `qemu-aarch64 -L /usr/aarch64-linux-gnu` for the arm64 packages).
    let runner: Vec<String> = std::env::var("DOCKET_LAMBDA_RUNNER")
        .map(|r| r.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    let mut command = match runner.split_first() {
        Some((program, args)) => {
            let mut command = std::process::Command::new(program);
            command.args(args).arg(binary);
            command
        }
        None => std::process::Command::new(binary),
    };
    command
        .env("AWS_LAMBDA_RUNTIME_API", api.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", &name)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "cold-start")
        .env("DOCKET_PREFIX", &prefix)
        .env("DOCKET_QUEUE_URL_PREFIX", url_prefix)
        .env("TMPDIR", tmp)
        .env_remove("DOCKET_SHIPPED_CODE")
        .stdout(std::process::Stdio::piped());
    if let Some(dir) = shipped {
        command.env("DOCKET_SHIPPED_CODE", dir);
    }
    let mut child = command.spawn().unwrap();
    tokio::time::timeout(Duration::from_secs(120), answered.notified())
        .await
        .unwrap_or_else(|_| panic!("{name} answered"));
    child.kill().unwrap();
    let output = child.wait_with_output().unwrap();
    let log = log.lock().unwrap();
    assert!(log.error.is_none(), "{name}: {:?}", log.error);
    let ms = |at: Option<std::time::Instant>| (at.unwrap() - started).as_secs_f64() * 1e3;
    ColdStart {
        init_ms: ms(log.next_at),
        answer_ms: ms(log.response_at),
        response: log.response.clone().unwrap(),
        logs: String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect(),
    }
}

/// The bundled evaluators' code for this machine's target, written as
/// `infra/build` writes the arm64 code into a package (`configured`: the
/// engine configuration it is compiled with).
fn shipped_code(dir: &Path, configured: docket_plugin_host::HostConfig) {
    let host = docket_plugin_host::PluginHost::new(configured).unwrap();
    for bundled in docket_bundled::EVALUATORS {
        host.write_shipped_code(
            dir,
            bundled.name,
            bundled.bytes,
            &docket_plugin_host::host_target(),
        )
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_processor_evaluates_with_the_shipped_code_and_compiles_nothing() {
    let deployment = deployment().await;
    let shipped = tempfile::tempdir().unwrap();
    shipped_code(shipped.path(), docket_plugin_host::HostConfig::default());
    let tmp = tempfile::tempdir().unwrap();
    let started = start_processor(&deployment, tmp.path(), Some(shipped.path())).await;
    assert_eq!(started.response["batchItemFailures"], json!([]));
    assert_eq!(
        started.logged("evaluator loaded on first use"),
        1,
        "decalogo only"
    );
    assert_eq!(
        started.logged("component compiled"),
        0,
        "{:#?}",
        started.logs
    );
    assert_eq!(
        started.logged("shipped compiled code does not match this engine; recompiling"),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processor_whose_shipped_code_does_not_suit_its_engine_recompiles_and_warns() {
    let deployment = deployment().await;
    // Compiled by an engine configured otherwise (another docket's build).
    let shipped = tempfile::tempdir().unwrap();
    shipped_code(
        shipped.path(),
        docket_plugin_host::HostConfig {
            wall_clock_backstop: false,
            ..docket_plugin_host::HostConfig::default()
        },
    );
    let tmp = tempfile::tempdir().unwrap();
    let started = start_processor(&deployment, tmp.path(), Some(shipped.path())).await;
    assert_eq!(started.response["batchItemFailures"], json!([]));
    assert_eq!(
        started.logged("shipped compiled code does not match this engine; recompiling"),
        1,
        "{:#?}",
        started.logs
    );
    assert_eq!(started.logged("component compiled"), 1, "decalogo only");
}

/// Cold start of the `processor` binary: the time from its exec to its
/// first request for an event (init: configuration, AWS clients, queue
/// URLs; the bundled evaluators only registered) and to its answer (the
/// document read, its evaluator loaded, evaluated and recorded). Three
/// kinds of start: an empty `/tmp` and no compiled code in the package
/// (compiled on first use), an empty `/tmp` with the package's shipped code
/// (a new container of a package `infra/build` made), and compiled code
/// cached in `/tmp` (a container Lambda starts again). x86_64 here; Lambda
/// runs the arm64 build.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a figure for docs/benchmarks.md, not a check (cargo nextest run --release -p docket-lambda-evaluators --test emulator --run-ignored only --no-capture processor_cold_start)"]
async fn processor_cold_start() {
    let deployment = deployment().await;
    let shipped = tempfile::tempdir().unwrap();
    shipped_code(shipped.path(), docket_plugin_host::HostConfig::default());
    println!(
        "| run | start | init (exec → first event request) | first evaluation answered (exec → response) | compiled |"
    );
    println!("|---|---|---:|---:|---:|");
    let kept = tempfile::tempdir().unwrap();
    for run in 1..=3 {
        for (start, shipped, tmp) in [
            ("empty /tmp, no shipped code", None, None),
            ("empty /tmp, shipped code", Some(shipped.path()), None),
            ("compiled code cached in /tmp", None, Some(kept.path())),
        ] {
            let empty = tempfile::tempdir().unwrap();
            let started = start_processor(&deployment, tmp.unwrap_or(empty.path()), shipped).await;
            assert_eq!(started.response["batchItemFailures"], json!([]));
            println!(
                "| {run} | {start} | {:.0} ms | {:.0} ms | {} |",
                started.init_ms,
                started.answer_ms,
                started.logged("component compiled")
            );
        }
    }
    // What the time after init is made of: the AWS calls one work item
    // costs (the same handler in this process, counted) and the emulator's
    // round trip.
    let (settings, _, aws) = &deployment;
    let counter = docket_aws::CallCounter::default();
    let counting = docket_lambda_evaluators::pipeline_counting(settings, Some(counter.clone()))
        .await
        .unwrap();
    let event = one_work_item(&deployment).await;
    let before = counter.counts();
    let answer = docket_lambda::process(&counting, &settings.names, event).await;
    assert!(answer.batch_item_failures.is_empty());
    let calls: Vec<String> = counter
        .counts()
        .into_iter()
        .filter_map(|(key, n)| {
            let n = n - before.get(&key).copied().unwrap_or(0);
            (n > 0).then(|| format!("{} {} × {n}", key.0, key.1))
        })
        .collect();
    let started = std::time::Instant::now();
    for _ in 0..20 {
        let _missing = aws.store.job(&JobId::generate()).await;
    }
    println!(
        "\nOne work item's AWS calls: {}; the emulator's round trip (GetItem): {:.1} ms",
        calls.join(", "),
        started.elapsed().as_secs_f64() * 1e3 / 20.0
    );
}

/// Figures, not a check: init of each function binary as a new container
/// (empty `/tmp`), and its answer to a first event that needs no
/// evaluation: an empty SQS batch, or for `upload` `GET /api/v1/health`
/// (which reads the deployment); for the processor also one work item.
/// The binaries are the workspace build's, beside this package's
/// `processor`, or with `DOCKET_LAMBDA_PACKAGES` the packages `infra/build`
/// made (`<dir>/<function>/bootstrap`, the shipped code beside it), run
/// under `DOCKET_LAMBDA_RUNNER` when set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a figure for docs/benchmarks.md, not a check (cargo nextest run --release --workspace -E 'binary(emulator)' --run-ignored only --no-capture function_cold_starts)"]
async fn function_cold_starts() {
    let deployment = deployment().await;
    let settings = &deployment.0;
    let packages = std::env::var_os("DOCKET_LAMBDA_PACKAGES").map(std::path::PathBuf::from);
    let processor = Path::new(env!("CARGO_BIN_EXE_processor"));
    let mut health: Value = serde_json::from_str(APIGW_FIXTURE).unwrap();
    health["routeKey"] = json!("GET /api/v1/health");
    health["rawPath"] = json!("/api/v1/health");
    health["requestContext"]["http"]["method"] = json!("GET");
    health["requestContext"]["http"]["path"] = json!("/api/v1/health");
    println!(
        "| function | run | init (exec → first event request) | first answer (exec → response) |"
    );
    println!("|---|---|---:|---:|");
    for function in ["upload", "ingest", "processor", "finalizer", "webhook"] {
        let binary = match &packages {
            Some(dir) => dir.join(function).join("bootstrap"),
            None => processor.with_file_name(function),
        };
        assert!(
            binary.exists(),
            "{} is not built: build the workspace (or run infra/build)",
            binary.display()
        );
        for run in 1..=3 {
            let event = match function {
                "upload" => health.clone(),
                _ => json!({"Records": []}),
            };
            let tmp = tempfile::tempdir().unwrap();
            let started = start_function(&binary, event, settings, tmp.path(), None).await;
            println!(
                "| {function} | {run} | {:.0} ms | {:.0} ms |",
                started.init_ms, started.answer_ms
            );
        }
        if function == "processor" {
            for run in 1..=3 {
                let tmp = tempfile::tempdir().unwrap();
                let started = work_item_to(&binary, &deployment, tmp.path(), None).await;
                assert_eq!(started.response["batchItemFailures"], json!([]));
                println!(
                    "| processor, one work item | {run} | {:.0} ms | {:.0} ms |",
                    started.init_ms, started.answer_ms
                );
            }
        }
    }
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
