//! `docket serve`: the API's router on a local address, with processors in
//! the same process, over the embedded backend.

use std::net::SocketAddr;
use std::path::PathBuf;

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
}

/// Serves until the process is stopped; prints `listening on http://…`
/// once bound.
///
/// # Errors
/// When the address cannot be bound or the backend cannot start.
pub async fn serve(request: ServeRequest) -> anyhow::Result<()> {
    let (backend, catalog) = local_catalog(
        &request.state,
        plugin_host(&request.state, request.workers)?,
    )?;
    let pipeline = local_pipeline(&backend, catalog, request.webhooks)?;
    let pipeline = pipeline.with_settings(PipelineSettings {
        webhook_backoff: request.webhook_backoff,
        max_queue_depth: request.max_queue_depth,
        ..pipeline.settings().clone()
    });
    for _ in 0..request.workers {
        let pipeline = pipeline.clone();
        tokio::spawn(async move {
            let never = || async { Ok::<bool, PipelineError>(false) };
            if let Err(e) = pipeline.work_until(never, tokio::time::sleep).await {
                tracing::error!(error = %e, "processor stopped");
            }
        });
    }
    let state = AppState {
        pipeline,
        max_documents: request.max_documents,
        max_body_bytes: request.max_body_bytes,
        default_evaluator: request.default_evaluator,
        max_response_bytes: None,
    };
    let listener = tokio::net::TcpListener::bind(request.addr)
        .await
        .with_context(|| format!("binding {}", request.addr))?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app(state)).await?;
    Ok(())
}
