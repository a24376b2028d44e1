//! Helpers for docket's end-to-end tests: a pipeline over a real backend
//! and the real plugin host, isolated per test (own state directory), with a
//! clock the test moves.

// A test-support crate: helpers fail by panicking.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use docket_core::model::{
    DocumentBody, DocumentSpec, EvaluatorRef, Job, JobId, JobOptions, TenantId,
};
use docket_core::pipeline::{IntakeDocument, Pipeline, PipelineSettings, Ports, Submission};
use docket_core::ports::{
    Delivery, Evaluators, OutgoingMessage, QueueDepth, QueueError, QueueName, Receipt, WorkQueue,
};
use docket_core::results::{ResultsFormat, ResultsView};
use docket_local::{LocalBackend, LocalOptions};
use docket_plugin_host::{HostConfig, Manifest, PluginHost};

/// A clock that moves only when told (the conformance suite's).
pub use docket_conformance::ManualClock;

/// A plugin host with decalogo, wordstats and the test plugins hostile,
/// tally (a summary fold) and legacy (contract 0.1.0).
pub fn loaded_host() -> PluginHost {
    // Compiled code is shared by every test process through the host's
    // on-disk cache (digest- and engine-keyed, written atomically), so a
    // harness does not recompile the components each time.
    let host = PluginHost::new(HostConfig {
        cache_dir: Some(std::env::temp_dir().join("docket-tests-compiled")),
        ..HostConfig::default()
    })
    .unwrap();
    for (name, bytes) in [
        ("decalogo", docket_bundled::DECALOGO),
        ("wordstats", docket_bundled::WORDSTATS),
        ("hostile", docket_test_guests::HOSTILE),
        ("tally", docket_test_guests::TALLY),
        ("legacy", docket_test_guests::LEGACY),
    ] {
        host.load(Manifest::for_component(name, "0.1.0", bytes), bytes)
            .unwrap();
    }
    host
}

/// A pipeline on the embedded backend in a temporary directory, with the
/// real plugin host and the bundled plus hostile components loaded.
pub struct Harness {
    /// The pipeline.
    pub pipeline: Pipeline,
    /// Its ports (to build a pipeline with one of them replaced).
    pub ports: Ports,
    /// The backend.
    pub backend: LocalBackend,
    /// The host.
    pub host: PluginHost,
    /// The clock driving queue visibility.
    pub clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

/// A webhook sender that may reach loopback receivers (tests only).
pub fn loopback_webhooks() -> docket_webhook::HttpWebhookSender {
    let policy = docket_webhook::AddressPolicy {
        allow_loopback: true,
        allow_private: false,
    };
    docket_webhook::HttpWebhookSender::new(policy, Duration::from_secs(5)).unwrap()
}

impl Harness {
    /// A fresh harness whose pipeline uses `evaluators` (the host when
    /// `None`).
    pub fn new(evaluators: Option<Arc<dyn Evaluators>>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new();
        let backend =
            LocalBackend::open_with_clock(dir.path(), LocalOptions::default(), clock.clone())
                .unwrap();
        let host = loaded_host();
        let ports = backend.ports(
            evaluators.unwrap_or_else(|| Arc::new(host.clone())),
            Arc::new(loopback_webhooks()),
            Arc::new(docket_intake::FileReader),
        );
        Self {
            pipeline: Pipeline::new(ports.clone(), Self::settings()),
            ports,
            backend,
            host,
            clock,
            _dir: dir,
        }
    }

    /// The harness's pipeline settings.
    pub fn settings() -> PipelineSettings {
        PipelineSettings {
            visibility: Duration::from_secs(30),
            ..PipelineSettings::default()
        }
    }

    /// Replaces the pipeline by one over `ports` changed by `change`.
    pub fn change_ports(&mut self, change: impl FnOnce(&mut Ports)) {
        change(&mut self.ports);
        self.pipeline = Pipeline::new(self.ports.clone(), Self::settings());
    }

    /// The pinned reference of a loaded evaluator.
    pub fn evaluator(&self, name: &str) -> EvaluatorRef {
        self.host.resolve_loaded(name).unwrap()
    }

    /// Submits text documents `(id, content)` to `evaluator`.
    pub async fn submit(
        &self,
        evaluator: &str,
        documents: &[(&str, &str)],
        options: JobOptions,
    ) -> Job {
        let documents = documents
            .iter()
            .map(|(id, content)| {
                IntakeDocument::Accepted(DocumentSpec {
                    id: (*id).to_owned(),
                    title: (*id).to_owned(),
                    body: DocumentBody::Text((*content).to_owned()),
                    metadata: serde_json::Value::Null,
                })
            })
            .collect();
        self.submit_intake(evaluator, documents, options).await
    }

    /// Submits intake documents to `evaluator`.
    pub async fn submit_intake(
        &self,
        evaluator: &str,
        documents: Vec<IntakeDocument>,
        options: JobOptions,
    ) -> Job {
        self.pipeline
            .submit(Submission {
                job_id: None,
                tenant: TenantId::local(),
                evaluator: self.evaluator(evaluator),
                config: serde_json::json!({}),
                options,
                documents,
            })
            .await
            .unwrap()
    }

    /// Runs worker rounds until `job` is finalized, moving the clock past
    /// every backoff when a round finds nothing to do; panics after
    /// `rounds` rounds.
    pub async fn run_until_finalized(&self, job: &JobId, rounds: usize) -> Job {
        for _ in 0..rounds {
            let round = self.pipeline.run_round().await.unwrap();
            let current = self.pipeline.job(job).await.unwrap();
            if current.finished_at.is_some() {
                return current;
            }
            if round.is_idle() {
                self.clock.advance(Duration::from_secs(60));
            }
        }
        panic!("job {job} not finalized after {rounds} rounds");
    }

    /// The job's `results.json`.
    pub async fn results(&self, job: &JobId) -> serde_json::Value {
        let view = ResultsView::whole(ResultsFormat::Json);
        let bytes = self
            .pipeline
            .results_stream(job, view)
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }
}

/// What a [`SendHook`] does with a send: answers for it, or lets it
/// through (`None`).
pub type OnSend = dyn Fn(QueueName) -> Option<Result<(), QueueError>> + Send + Sync;

/// A queue over another whose sends pass through a hook first: a test
/// fails them (an unreachable queue) or loses them (a sender that died
/// before sending); everything else goes to the queue underneath.
pub struct SendHook {
    inner: Arc<dyn WorkQueue>,
    on_send: Box<OnSend>,
}

impl SendHook {
    /// `inner` with its sends passed through `on_send`.
    pub fn new(
        inner: Arc<dyn WorkQueue>,
        on_send: impl Fn(QueueName) -> Option<Result<(), QueueError>> + Send + Sync + 'static,
    ) -> Self {
        Self {
            inner,
            on_send: Box::new(on_send),
        }
    }
}

#[async_trait::async_trait]
impl WorkQueue for SendHook {
    async fn send(
        &self,
        queue: QueueName,
        messages: Vec<OutgoingMessage>,
    ) -> Result<(), QueueError> {
        match (self.on_send)(queue) {
            Some(answer) => answer,
            None => self.inner.send(queue, messages).await,
        }
    }
    async fn receive(
        &self,
        queue: QueueName,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        self.inner.receive(queue, max, visibility).await
    }
    async fn ack(&self, queue: QueueName, receipts: &[Receipt]) -> Result<(), QueueError> {
        self.inner.ack(queue, receipts).await
    }
    async fn retry_after(
        &self,
        queue: QueueName,
        receipt: &Receipt,
        delay: Duration,
    ) -> Result<(), QueueError> {
        self.inner.retry_after(queue, receipt, delay).await
    }
    async fn receive_dead(
        &self,
        queue: QueueName,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        self.inner.receive_dead(queue, max, visibility).await
    }
    async fn ack_dead(&self, queue: QueueName, receipts: &[Receipt]) -> Result<(), QueueError> {
        self.inner.ack_dead(queue, receipts).await
    }
    async fn depth(&self, queue: QueueName) -> Result<QueueDepth, QueueError> {
        self.inner.depth(queue).await
    }
}
