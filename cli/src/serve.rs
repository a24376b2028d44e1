//! `docket serve`: the API's router on a local address, with processors in
//! the same process, over the embedded backend.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use docket_api::{AppState, app};

use docket_core::pipeline::{PipelineError, PipelineSettings};

use crate::local_run::{local_catalog, local_pipeline, plugin_host};

/// What `docket serve` was asked to do.
#[derive(Debug, Clone)]
pub struct ServeRequest {
    /// Where to listen (port 0 picks a free one).
    pub addr: SocketAddr,
    /// The embedded backend's state directory.
    pub state: PathBuf,
    /// Processors running beside the server.
    pub workers: usize,
    /// Most documents in one batch.
    pub max_documents: usize,
    /// Largest request body in bytes.
    pub max_body_bytes: usize,
    /// Evaluator for batches that name none.
    pub default_evaluator: String,
    /// New batches are refused (503) while this many work items wait.
    pub max_queue_depth: Option<u64>,
    /// Which special addresses webhooks may reach.
    pub webhooks: docket_webhook::AddressPolicy,
    /// Delay after a first failed webhook attempt (doubled each time).
    pub webhook_backoff: std::time::Duration,
    /// Set to shut down (SIGTERM): no new connections, requests in flight
    /// answered, processors finish their round, claims released.
    pub stop: Arc<AtomicBool>,
    /// Finished jobs older than this are removed at start.
    pub retention: Duration,
    /// Prefix of the metrics route's series.
    pub metrics_namespace: docket_core::metrics::MetricsNamespace,
}

/// Serves until [`ServeRequest::stop`] is set; prints
/// `listening on http://…` once bound. With processors, the process owns
/// the state directory ([`docket_local::LocalBackend::take_ownership`]):
/// the claims a killed server left are released at start.
///
/// # Errors
/// When the address cannot be bound, another process owns the state
/// directory, or the backend cannot start.
pub async fn serve(request: ServeRequest) -> anyhow::Result<()> {
    let (backend, catalog) = local_catalog(
        &request.state,
        plugin_host(&request.state, request.workers)?,
    )?;
    let _ownership = if request.workers > 0 {
        let owned = backend.take_ownership("docket serve").await?;
        backend.expire(request.retention).await?;
        Some(owned)
    } else {
        None
    };
    let pipeline = local_pipeline(&backend, catalog, request.webhooks)?;
    let pipeline = pipeline.with_settings(PipelineSettings {
        webhook_backoff: request.webhook_backoff,
        max_queue_depth: request.max_queue_depth,
        ..pipeline.settings().clone()
    });
    let mut processors = Vec::with_capacity(request.workers);
    for _ in 0..request.workers {
        let pipeline = pipeline.clone();
        let stop = Arc::clone(&request.stop);
        processors.push(tokio::spawn(async move {
            let stopped = || async { Ok::<bool, PipelineError>(stop.load(Ordering::Relaxed)) };
            if let Err(e) = pipeline.work_until(stopped, tokio::time::sleep).await {
                tracing::error!(error = %e, "processor stopped");
            }
        }));
    }
    let state = AppState {
        pipeline,
        max_documents: request.max_documents,
        max_body_bytes: request.max_body_bytes,
        default_evaluator: request.default_evaluator,
        max_response_bytes: None,
        metrics_namespace: request.metrics_namespace,
    };
    let listener = tokio::net::TcpListener::bind(request.addr)
        .await
        .with_context(|| format!("binding {}", request.addr))?;
    println!("listening on http://{}", listener.local_addr()?);
    let stop = Arc::clone(&request.stop);
    let stopped = async move {
        while !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tracing::info!("shutting down: no new connections, answering those in flight");
    };
    axum::serve(listener, app(state))
        .with_graceful_shutdown(stopped)
        .await?;
    for processor in processors {
        processor.await.context("processor panicked")?;
    }
    if request.workers > 0 {
        let released = backend.queue.release_claims().await?;
        tracing::info!(released, "processors stopped, claims released");
    }
    Ok(())
}
