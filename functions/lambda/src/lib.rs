//! docket's Lambda functions, as thin wiring over the core: a pipeline built
//! from the environment once per warm container, and one handler per event
//! source. The binaries in `src/bin` hand these to `lambda_runtime` /
//! `lambda_http`; tests call the same handlers with real events (the
//! event-source runner in `docket-lambda-evaluators`' `tests/`).
//!
//! | function | event | handler |
//! |---|---|---|
//! | `upload` | API Gateway HTTP API (payload v2) | [`api`]: the API's router |
//! | `ingest` | S3 `ObjectCreated` under `inbox/`, through an SQS queue | [`ingest_messages`] |
//! | `processor` | SQS batch of work items (three priority queues) | [`process`] |
//! | `finalizer` | SQS batch of finalize messages | [`finalize`] |
//! | `webhook` | SQS batch of callbacks | [`deliver_webhooks`] |
//!
//! `upload`, `ingest` and `webhook` are built here, with [`pipeline`]: no
//! plugin engine. `processor` and `finalizer` run evaluators and are built
//! in `docket-lambda-evaluators`, whose pipeline has the plugin host.
//!
//! Every SQS handler reports partial batch failures (`SqsBatchResponse`):
//! one bad message never fails its neighbours.
#![deny(missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use docket_aws::{AwsBackend, Names};
use docket_core::metrics::{InvocationFigures, emf_records};
use docket_core::pipeline::{Disposition, IngestMessage, Pipeline, PipelineSettings};
use docket_core::plugin::Manifest;
use docket_core::ports::Evaluators;
use docket_core::ports::{Delivery, QueueName, Receipt};

/// What the functions read from their environment.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `DOCKET_PREFIX`: the stack name every resource is named from; with
    /// `DOCKET_QUEUE_URL_PREFIX` (the template sets it) the queues are
    /// addressed without asking SQS for their URLs at init.
    pub names: Names,
    /// `DOCKET_DEFAULT_EVALUATOR` (default `decalogo`).
    pub default_evaluator: String,
    /// `DOCKET_MAX_QUEUE_DEPTH`: uploads are shed past it (default 200,000).
    pub max_queue_depth: u64,
    /// `DOCKET_METRICS_NAMESPACE`: the prefix of the metrics route's
    /// series (default `docket`).
    pub metrics_namespace: docket_core::metrics::MetricsNamespace,
    /// The compiled code of the bundled evaluators shipped in the package:
    /// `DOCKET_SHIPPED_CODE`, else `evaluators/` beside the binary
    /// (`infra/build` puts it there), when it exists.
    pub shipped_code: Option<std::path::PathBuf>,
}

impl Settings {
    /// From the environment.
    ///
    /// # Errors
    /// When `DOCKET_PREFIX` is missing or a number does not parse.
    pub fn from_env() -> anyhow::Result<Self> {
        let prefix = std::env::var("DOCKET_PREFIX")
            .map_err(|_| anyhow::anyhow!("DOCKET_PREFIX is not set"))?;
        let mut names = Names::new(prefix);
        if let Ok(url_prefix) = std::env::var("DOCKET_QUEUE_URL_PREFIX") {
            names = names.with_queue_url_prefix(url_prefix);
        }
        Ok(Self {
            names,
            default_evaluator: std::env::var("DOCKET_DEFAULT_EVALUATOR")
                .unwrap_or_else(|_| "decalogo".into()),
            max_queue_depth: match std::env::var("DOCKET_MAX_QUEUE_DEPTH") {
                Ok(depth) => depth.parse()?,
                Err(_) => 200_000,
            },
            metrics_namespace: match std::env::var("DOCKET_METRICS_NAMESPACE") {
                Ok(namespace) => namespace
                    .parse()
                    .map_err(|e: String| anyhow::anyhow!("DOCKET_METRICS_NAMESPACE: {e}"))?,
                Err(_) => Default::default(),
            },
            shipped_code: match std::env::var_os("DOCKET_SHIPPED_CODE") {
                Some(dir) => Some(dir.into()),
                None => std::env::current_exe()
                    .ok()
                    .and_then(|exe| Some(exe.parent()?.join("evaluators")))
                    .filter(|dir| dir.is_dir()),
            },
        })
    }
}

/// The pipeline of a function that runs no evaluator (`upload`, `ingest`,
/// `webhook`): it resolves evaluators among the bundled and the published
/// ones and checks configurations, with no plugin engine (these binaries
/// do not link wasmtime). The `processor` and `finalizer` build theirs with
/// the plugin host (`docket-lambda-evaluators`). Built once per container.
///
/// # Errors
/// When a resource is missing.
pub async fn pipeline(settings: &Settings) -> anyhow::Result<Pipeline> {
    pipeline_with(settings, None, |backend| {
        let bundled = docket_bundled::EVALUATORS
            .iter()
            .map(|b| Manifest::for_component(b.name, b.version, b.bytes))
            .collect();
        Ok(Arc::new(docket_registry::Resolver::new(
            docket_registry::Registry::new(backend.store.clone()),
            bundled,
        )))
    })
    .await
}

/// The pipeline over the deployment's AWS resources with the evaluators
/// `evaluators` makes from the backend, counting every AWS API call in
/// `counter` (cost figures) when given.
///
/// # Errors
/// When a resource is missing, and `evaluators`'.
pub async fn pipeline_with(
    settings: &Settings,
    counter: Option<docket_aws::CallCounter>,
    evaluators: impl FnOnce(&AwsBackend) -> anyhow::Result<Arc<dyn Evaluators>>,
) -> anyhow::Result<Pipeline> {
    let backend = AwsBackend::connect_counting(&settings.names, counter).await?;
    let evaluators = evaluators(&backend)?;
    let webhooks = docket_webhook::HttpWebhookSender::new(
        docket_webhook::AddressPolicy::default(),
        Duration::from_secs(10),
    )?;
    let ports = backend.ports(
        evaluators,
        Arc::new(webhooks),
        Arc::new(docket_intake::FileReader),
    );
    Ok(Pipeline::new(
        ports,
        PipelineSettings {
            max_queue_depth: Some(settings.max_queue_depth),
            whole_files_past: Some(WHOLE_FILES_PAST),
            ..PipelineSettings::default()
        },
    ))
}

/// The API's router over `pipeline` (the `upload` function serves it
/// through `lambda_http`).
pub fn api(pipeline: Pipeline, settings: &Settings) -> axum::Router {
    docket_api::app(docket_api::AppState {
        pipeline,
        max_documents: 10_000,
        // API Gateway's own payload limit.
        max_body_bytes: 10 * 1024 * 1024,
        default_evaluator: settings.default_evaluator.clone(),
        max_response_bytes: Some(MAX_RESPONSE_BYTES),
        metrics_namespace: settings.metrics_namespace.clone(),
    })
}

/// The most bytes of a results body the upload function answers with:
/// Lambda returns at most 6 MB, the body escaped into a JSON string of the
/// response (each quote and backslash doubled: at worst twice the size),
/// with its headers.
pub const MAX_RESPONSE_BYTES: usize = 5 * 512 * 1024;

/// An object S3 says was created: its key (form-encoded, as notifications
/// carry it) and ETag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedObject {
    /// The key as the notification has it.
    pub key: String,
    /// The object's ETag.
    pub etag: String,
}

/// The objects of an S3 notification. Read leniently: emulators leave out
/// fields real notifications carry (`userIdentity`, `requestParameters`);
/// only the key and ETag matter here.
pub fn created_objects(notification: &serde_json::Value) -> Option<Vec<CreatedObject>> {
    notification["Records"]
        .as_array()?
        .iter()
        .map(|record| {
            let object = &record["s3"]["object"];
            Some(CreatedObject {
                key: object["key"].as_str()?.to_owned(),
                etag: object["eTag"].as_str().unwrap_or_default().to_owned(),
            })
        })
        .collect()
}

/// The `ingest` function's work: the objects of a notification, their
/// keys decoded (notification keys are form-encoded), become jobs
/// ([`Pipeline::ingest`]). Returns the jobs, in record order.
///
/// # Errors
/// Backend failures (the notification is retried; a repeat makes no
/// second job).
pub async fn ingest(
    pipeline: &Pipeline,
    settings: &Settings,
    objects: &[CreatedObject],
) -> Result<Vec<docket_core::JobId>, docket_core::PipelineError> {
    let objects: Vec<docket_core::pipeline::CreatedObject> = objects
        .iter()
        .map(|object| docket_core::pipeline::CreatedObject {
            key: url::form_urlencoded::parse(format!("k={}", object.key).as_bytes())
                .map(|(_, v)| v.into_owned())
                .next()
                .unwrap_or_default(),
            etag: object.etag.clone(),
        })
        .collect();
    pipeline.ingest(&objects, &settings.default_evaluator).await
}

/// The `ingest` function: each message is an S3 notification (S3 sends
/// them to the ingest queue); its files become jobs ([`ingest`]). S3's
/// test event is acknowledged; a message that is not a notification, or
/// whose files could not be read, stays for a retry and then the
/// dead-letter queue.
pub async fn ingest_messages(
    pipeline: &Pipeline,
    settings: &Settings,
    event: SqsEvent,
) -> SqsBatchResponse {
    let deliveries: Vec<Delivery> = event.records.iter().map(delivery).collect();
    let mut dispositions = Vec::with_capacity(deliveries.len());
    for delivery in &deliveries {
        let body: serde_json::Value = serde_json::from_str(&delivery.body).unwrap_or_default();
        let disposition = if body["Event"] == "s3:TestEvent" {
            Disposition::Done
        } else if let Ok(IngestMessage::Listing(page)) = serde_json::from_value(body.clone()) {
            match pipeline.ingest_listing(&page).await {
                Ok(()) => Disposition::Done,
                Err(e) => {
                    tracing::warn!(message_id = %delivery.message_id, job_id = %page.job_id, error = %e, "listing page not added; retried");
                    Disposition::Keep
                }
            }
        } else {
            match created_objects(&body) {
                None => {
                    tracing::error!(message_id = %delivery.message_id, "not an S3 notification; left for the dead-letter queue");
                    Disposition::Keep
                }
                Some(objects) => match ingest(pipeline, settings, &objects).await {
                    Ok(_) => Disposition::Done,
                    Err(e) => {
                        tracing::warn!(message_id = %delivery.message_id, error = %e, "inbox files not ingested; retried");
                        Disposition::Keep
                    }
                },
            }
        };
        dispositions.push(disposition);
    }
    respond(
        pipeline,
        Some(QueueName::Ingest),
        &deliveries,
        &dispositions,
    )
    .await
}

/// Which of the deployment's queues an event source ARN names, and
/// whether it is that queue's dead-letter queue.
pub fn queue_of(arn: &str, names: &Names) -> Option<(QueueName, bool)> {
    let name = arn.rsplit(':').next()?;
    QueueName::ALL.into_iter().find_map(|q| {
        if names.queue(q) == name {
            Some((q, false))
        } else if names.dead_letter_queue(q) == name {
            Some((q, true))
        } else {
            None
        }
    })
}

fn delivery(message: &SqsMessage) -> Delivery {
    Delivery {
        message_id: message.message_id.clone().unwrap_or_default(),
        receipt: Receipt(message.receipt_handle.clone().unwrap_or_default()),
        body: message.body.clone().unwrap_or_default(),
        receive_count: message
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|n| n.parse().ok())
            .unwrap_or(1),
    }
}

/// Turns dispositions into the batch response: done messages succeed
/// (Lambda deletes them); a retry gets its visibility set first; both
/// retried and kept messages are reported as failures, so they stay.
async fn respond(
    pipeline: &Pipeline,
    queue: Option<QueueName>,
    deliveries: &[Delivery],
    dispositions: &[Disposition],
) -> SqsBatchResponse {
    if let Some(queue) = queue {
        pipeline.set_backoffs(queue, deliveries, dispositions).await;
    }
    let mut response = SqsBatchResponse::default();
    for (delivery, disposition) in deliveries.iter().zip(dispositions) {
        if *disposition != Disposition::Done {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = delivery.message_id.clone();
            response.batch_item_failures.push(failure);
        }
    }
    response
}

static COLD: AtomicBool = AtomicBool::new(true);

/// The `processor` function: evaluates a batch of work items and reports
/// the invocation in CloudWatch Embedded Metric Format. Mapped to the work
/// queues' dead-letter queues too, it records what they hold as failed.
pub async fn process(pipeline: &Pipeline, names: &Names, event: SqsEvent) -> SqsBatchResponse {
    process_within(pipeline, names, event, None).await
}

/// Time an invocation keeps after its last evaluation, to record outcomes,
/// report failures and print its figures.
pub const RECORDING_MARGIN: Duration = Duration::from_secs(3);

/// The invocation's deadline as an [`Instant`], from the Lambda context's
/// milliseconds since the epoch.
pub fn deadline_of(context_deadline_ms: u64) -> Instant {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    Instant::now() + Duration::from_millis(context_deadline_ms.saturating_sub(now_ms))
}

/// [`process`] within an invocation that ends at `deadline`: every
/// evaluation must end [`RECORDING_MARGIN`] before it (a plugin's own time
/// limit is cut to what is left); an evaluation the deadline stops is a
/// `TRANSIENT` failure, so its message is retried by another invocation
/// instead of being blamed on the plugin. Mapped to the work queues'
/// dead-letter queues too, it records what they hold as failed.
pub async fn process_within(
    pipeline: &Pipeline,
    names: &Names,
    event: SqsEvent,
    deadline: Option<Instant>,
) -> SqsBatchResponse {
    let deadline = deadline.map(|d| d.checked_sub(RECORDING_MARGIN).unwrap_or(d));
    let before = pipeline.metrics();
    let source = event
        .records
        .first()
        .and_then(|m| m.event_source_arn.as_deref())
        .and_then(|arn| queue_of(arn, names));
    let deliveries: Vec<Delivery> = event.records.iter().map(delivery).collect();
    let (queue, dead) = match source {
        Some((queue, dead)) => (Some(queue), dead),
        None => (None, false),
    };
    let dispositions = match (queue, dead) {
        // Items a processor never recorded (the queue gave them up) are
        // recorded failed, so their jobs still finish.
        (Some(queue), true) => match pipeline.dead_letters(queue, &deliveries).await {
            Ok(dispositions) => dispositions,
            Err(e) => {
                tracing::warn!(error = %e, "dead letters not recorded; retried");
                vec![Disposition::Keep; deliveries.len()]
            }
        },
        _ => pipeline.process(&deliveries, deadline).await,
    };
    let queue = queue.filter(|_| !dead);
    let response = respond(pipeline, queue, &deliveries, &dispositions).await;
    let after = pipeline.metrics();
    let processed =
        (after.succeeded + after.skipped + after.failed.iter().map(|f| f.1).sum::<u64>())
            - (before.succeeded + before.skipped + before.failed.iter().map(|f| f.1).sum::<u64>());
    let timed = after.latency_count - before.latency_count;
    let figures = InvocationFigures {
        function: "processor".into(),
        documents_processed: processed,
        evaluation_ms: if timed > 0 {
            // The invocation's mean: the counters keep sums, not each value.
            vec![(after.latency_sum - before.latency_sum) * 1000.0 / timed as f64]
        } else {
            Vec::new()
        },
        failures: after
            .failed
            .iter()
            .zip(&before.failed)
            .map(|((category, a), (_, b))| (*category, a - b))
            .collect(),
        cold_start: COLD.swap(false, Ordering::Relaxed),
    };
    for record in emf_records(&figures, pipeline.now()) {
        println!("{record}");
    }
    response
}

/// Stored documents past which a job's results are also whole files: the
/// results route then sends readers to them by a presigned URL, since a
/// body past Lambda's 6 MB response limit cannot be returned (the JSON form
/// adds the header and a comma per document to the stored bytes).
pub const WHOLE_FILES_PAST: u64 = 4 * 1024 * 1024;

/// Time a finalizer keeps before its invocation's deadline to store the
/// part in progress and a checkpoint (a part is a few MiB).
pub const FINALIZE_MARGIN: Duration = Duration::from_secs(30);

/// The `finalizer` function: finalizes each job named by a message, within
/// the invocation's `deadline`: a job not written by then checkpoints and
/// is named by a new message, which a next invocation goes on from.
/// Messages the deadline leaves no time for are deferred (named by new
/// messages, so waiting counts no receive against them).
pub async fn finalize(
    pipeline: &Pipeline,
    event: SqsEvent,
    deadline: Option<Instant>,
) -> SqsBatchResponse {
    let deliveries: Vec<Delivery> = event.records.iter().map(delivery).collect();
    let deadline = deadline.map(|d| d.checked_sub(FINALIZE_MARGIN).unwrap_or(d));
    let mut dispositions = Vec::with_capacity(deliveries.len());
    for (n, delivery) in deliveries.iter().enumerate() {
        let late = deadline.is_some_and(|d| Instant::now() >= d);
        dispositions.push(if n > 0 && late {
            pipeline.defer_finalize(delivery).await
        } else {
            pipeline.finalize_delivery(delivery, deadline).await
        });
    }
    respond(
        pipeline,
        Some(QueueName::Finalize),
        &deliveries,
        &dispositions,
    )
    .await
}

/// The `webhook` function: one attempt at each callback.
pub async fn deliver_webhooks(pipeline: &Pipeline, event: SqsEvent) -> SqsBatchResponse {
    let deliveries: Vec<Delivery> = event.records.iter().map(delivery).collect();
    let mut dispositions = Vec::with_capacity(deliveries.len());
    for delivery in &deliveries {
        dispositions.push(match pipeline.deliver_webhook(delivery).await {
            Ok(disposition) => disposition,
            Err(e) => {
                tracing::warn!(error = %e, "webhook not attempted; retried");
                Disposition::Keep
            }
        });
    }
    respond(
        pipeline,
        Some(QueueName::Webhook),
        &deliveries,
        &dispositions,
    )
    .await
}

/// `main` of a function that reads PDFs: first, before any runtime starts,
/// a PDF extraction child does its file and exits; otherwise `serve` runs
/// on a multi-threaded runtime, logging set up, its PDFs read in children.
///
/// # Errors
/// When the runtime cannot start, and `serve`'s.
pub fn run_reading_pdfs<F, Fut>(serve: F) -> Result<(), lambda_runtime::Error>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<(), lambda_runtime::Error>>,
{
    let isolated = docket_intake::pdf::use_child_processes();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async {
            init_logging();
            if let Err(error) = isolated {
                tracing::warn!(%error, "PDF extraction runs in process, without a memory limit");
            }
            serve().await
        })
}

/// JSON logs for CloudWatch, filtered by `DOCKET_LOG` (default `info`).
pub fn init_logging() {
    tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DOCKET_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .without_time()
        .init();
}
