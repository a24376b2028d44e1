//! docket's Lambda functions that run evaluators, `processor` and
//! `finalizer`: `docket-lambda`'s handlers over a pipeline whose evaluators
//! port is the plugin host. The other three functions are built without
//! it (`docket-lambda`), so only these two link wasmtime.
#![deny(missing_docs)]

use std::sync::Arc;

use docket_core::pipeline::Pipeline;
use docket_lambda::Settings;
use docket_plugin_host::{Catalog, HostConfig, PluginHost};

/// The pipeline over the deployment's AWS resources with the plugin host.
/// Bundled evaluators are registered and loaded the first time a message
/// needs them (from the compiled code shipped in the package when the
/// engine accepts it); published ones are resolved from the registry and
/// loaded from S3 by digest the first time the container needs them
/// (compiled code published for arm64 used when the engine accepts it).
/// Compiled code is cached under `/tmp`, verified by digest. Built once per
/// container.
///
/// # Errors
/// When a resource is missing or the engine cannot start.
pub async fn pipeline(settings: &Settings) -> anyhow::Result<Pipeline> {
    pipeline_counting(settings, None).await
}

/// [`pipeline`], counting every AWS API call in `counter` (cost figures).
///
/// # Errors
/// As [`pipeline`].
pub async fn pipeline_counting(
    settings: &Settings,
    counter: Option<docket_aws::CallCounter>,
) -> anyhow::Result<Pipeline> {
    docket_lambda::pipeline_with(settings, counter, |backend| {
        let host = PluginHost::new(HostConfig {
            cache_dir: Some(std::env::temp_dir().join("docket-cache")),
            shipped_code: settings.shipped_code.clone(),
            ..HostConfig::default()
        })?;
        for bundled in docket_bundled::EVALUATORS {
            host.register_component(bundled.name, bundled.version, bundled.bytes);
        }
        Ok(Arc::new(Catalog::new(
            host,
            backend.store.clone(),
            backend.blobs.clone(),
        )))
    })
    .await
}
