//! Published plugins: publishing a component into the blob store and the
//! registry (the `PluginRegistry`), and the [`Catalog`] that resolves a job's
//! evaluator among the loaded and the published plugins and loads a
//! pinned version by digest the first time a processor needs it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use docket_core::model::EvaluatorRef;
use docket_core::plugin::{self, Limits, Manifest, Precompiled};
use docket_core::ports::{
    BlobStore, EvaluationReport, EvaluationRequest, Evaluators, PluginRegistry, StoreError,
};
use docket_core::{Evaluation, Failure, FailureCategory};
use docket_registry::Registry;

use crate::{HostError, PRECOMPILE_TARGETS, PluginHost, digest, host_target};

/// Interface packages no published plugin may import, whatever the
/// publisher asks: an evaluator never reaches the network.
pub const ALWAYS_DENIED: &[&str] = &["wasi:sockets", "wasi:http"];

/// What `docket plugin publish` asks for.
#[derive(Debug, Clone)]
pub struct PublishRequest {
    /// The plugin's name.
    pub name: String,
    /// Its version (semver).
    pub version: String,
    /// The language it is written in (`rust`, `python`, `js`).
    pub language: String,
    /// Limits; `None` for the language's defaults.
    pub limits: Option<Limits>,
    /// JSON Schema of its configuration (`null` for none).
    pub config_schema: serde_json::Value,
    /// Interface packages refused besides [`ALWAYS_DENIED`], e.g.
    /// `wasi:filesystem` (a whole interface name, `wasi:filesystem/types`,
    /// works too).
    pub deny: Vec<String>,
}

/// Why a publication was refused.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The component, its name, version or imports are not acceptable.
    #[error("{0}")]
    Refused(String),
    /// This `name@version` exists with other bytes.
    #[error("{0}")]
    Conflict(String),
    /// The blob store or registry failed.
    #[error("{0}")]
    Backend(String),
}

impl From<HostError> for PublishError {
    fn from(error: HostError) -> Self {
        match error {
            HostError::Engine(message) => Self::Backend(message),
            other => Self::Refused(other.to_string()),
        }
    }
}

impl From<StoreError> for PublishError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict(message) => Self::Conflict(message),
            other => Self::Backend(other.to_string()),
        }
    }
}

/// The interfaces among `imports` that `deny` refuses: each entry names a
/// package (`wasi:filesystem`) or an interface (`wasi:filesystem/types`),
/// with or without a version; `wasi:file` does not refuse `wasi:filesystem`.
pub fn denied_imports(imports: &[String], deny: &[String]) -> Vec<String> {
    let refuses = |import: &str, entry: &str| {
        let entry = entry.trim_end_matches('/');
        import
            .strip_prefix(entry)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', '@']))
    };
    imports
        .iter()
        .filter(|import| {
            ALWAYS_DENIED.iter().any(|entry| refuses(import, entry))
                || deny.iter().any(|entry| refuses(import, entry))
        })
        .cloned()
        .collect()
}

/// Runs CPU-heavy host work (compiling) off the async runtime.
async fn blocking<R: Send + 'static>(work: impl FnOnce() -> R + Send + 'static) -> R {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Resolves and loads evaluators: the ones loaded in the host (bundled,
/// local files) and the ones published to the registry. A job pins one
/// exact version and digest at submit time; a processor that has not got
/// it loads it from the blob store by that digest (component plus the
/// compiled code published for its architecture) once, then keeps it.
#[derive(Clone)]
pub struct Catalog {
    host: PluginHost,
    store: Arc<dyn PluginRegistry>,
    registry: Registry,
    blobs: Arc<dyn BlobStore>,
    loading: Arc<tokio::sync::Mutex<()>>,
}

impl Catalog {
    /// A catalog over `host` and the registry in `store` and `blobs`.
    pub fn new(
        host: PluginHost,
        store: Arc<dyn PluginRegistry>,
        blobs: Arc<dyn BlobStore>,
    ) -> Self {
        Self {
            host,
            registry: Registry::new(store.clone()),
            store,
            blobs,
            loading: Arc::default(),
        }
    }

    /// The host that runs the plugins.
    pub fn host(&self) -> &PluginHost {
        &self.host
    }

    /// Publishes a component: checks name and version, loads it (so a
    /// corrupt file or a component for another world is refused by the
    /// same pre-instantiation production uses), refuses denied imports and
    /// a version that exists with other bytes, precompiles it for every
    /// target in [`PRECOMPILE_TARGETS`], stores component and compiled code
    /// under `plugins/<name>/<version>/` and registers the manifest.
    /// Publishing the same bytes again returns the registered manifest.
    ///
    /// # Errors
    /// [`PublishError`] saying what was refused or what failed.
    pub async fn publish(
        &self,
        request: PublishRequest,
        bytes: Vec<u8>,
    ) -> Result<Manifest, PublishError> {
        plugin::check_identity(&request.name, &request.version).map_err(PublishError::Refused)?;
        if !plugin::LANGUAGES.contains(&request.language.as_str()) {
            return Err(PublishError::Refused(format!(
                "language {:?}: docket knows {}",
                request.language,
                plugin::LANGUAGES.join(", ")
            )));
        }
        let mut manifest =
            Manifest::for_language(&request.name, &request.version, &request.language, &bytes);
        if let Some(limits) = request.limits {
            manifest.limits = limits;
        }
        docket_registry::check_schema(&request.config_schema).map_err(PublishError::Refused)?;
        manifest.config_schema = request.config_schema.clone();
        if let Some(existing) = self.published(&request.name, &request.version).await? {
            // The same bytes again: the registered manifest; others: refused.
            docket_core::ports::check_republish(&existing, &manifest)?;
            return Ok(existing);
        }
        if let Some(bundled) = self
            .host
            .loaded_refs()
            .into_iter()
            .find(|r| r.name == request.name && r.version == request.version)
            .filter(|r| r.digest != manifest.sha256)
        {
            return Err(PublishError::Conflict(format!(
                "{bundled} ships with docket ({}); publish another version",
                bundled.digest
            )));
        }
        let host = self.host.clone();
        let (loaded, bytes) = blocking({
            let manifest = manifest.clone();
            move || {
                let loaded = host.load(manifest, &bytes)?;
                Ok::<_, HostError>((host.manifest_of(&loaded), bytes))
            }
        })
        .await?;
        let shared = Arc::new(bytes);
        // What loading found: the imports, and the contract the exports
        // implement (0.2.0, or 0.1.0 without combine-summaries).
        if let Some(loaded) = loaded {
            manifest.imports = loaded.imports;
            manifest.world = loaded.world;
        }
        let denied = denied_imports(&manifest.imports, &request.deny);
        if !denied.is_empty() {
            return Err(PublishError::Refused(format!(
                "{}@{} imports {}, which this deployment denies",
                request.name,
                request.version,
                denied.join(", ")
            )));
        }
        let prefix = manifest.prefix();
        let hex = manifest.sha256.trim_start_matches("sha256:").to_owned();
        // This machine's target too, although loading just compiled it: the
        // host's engine tunes code for this CPU, a published artifact must
        // run on any CPU of its architecture.
        for target in PRECOMPILE_TARGETS {
            let host = self.host.clone();
            let name = request.name.clone();
            let bytes = Arc::clone(&shared);
            let (compiled, engine) =
                blocking(move || host.precompile(&name, &bytes, target)).await?;
            let key = format!("{prefix}{hex}.{target}.cwasm");
            manifest.precompiled.push(Precompiled {
                target: (*target).to_owned(),
                engine,
                sha256: digest(&compiled),
                key: key.clone(),
            });
            self.put(&key, compiled).await?;
        }
        let bytes = Arc::try_unwrap(shared).unwrap_or_else(|shared| shared.to_vec());
        self.put(&manifest.component_key(), bytes).await?;
        manifest.published_at = Some(chrono::Utc::now());
        if !self.store.register_plugin(&manifest).await? {
            // A concurrent publisher of the same bytes registered first.
            return self
                .published(&request.name, &request.version)
                .await?
                .ok_or_else(|| PublishError::Backend("registered plugin vanished".into()));
        }
        let json = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| PublishError::Backend(format!("manifest: {e}")))?;
        self.put(&manifest.manifest_key(), json).await?;
        Ok(manifest)
    }

    /// The registered manifest of `name@version`, if published.
    ///
    /// # Errors
    /// When the registry cannot be read.
    pub async fn published(
        &self,
        name: &str,
        version: &str,
    ) -> Result<Option<Manifest>, StoreError> {
        self.registry.published(name, version).await
    }

    /// Every published plugin version, by name then version.
    ///
    /// # Errors
    /// When the registry cannot be read.
    pub async fn list(&self) -> Result<Vec<Manifest>, StoreError> {
        self.registry.list().await
    }

    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), PublishError> {
        self.blobs
            .put(key, bytes)
            .await
            .map_err(|e| PublishError::Backend(format!("storing {key}: {e}")))
    }

    /// Loads the pinned `evaluator` unless the host has it: the registered
    /// manifest of its version must carry the pinned digest; the component
    /// is read from the blob store and checked against it, with the
    /// compiled code published for this architecture when its digest
    /// matches the manifest's.
    async fn ensure_loaded(&self, evaluator: &EvaluatorRef) -> Result<(), Failure> {
        if self.host.is_loaded(evaluator) {
            return Ok(());
        }
        let _one_at_a_time = self.loading.lock().await;
        if self.host.is_loaded(evaluator) {
            return Ok(());
        }
        let unavailable = |category: FailureCategory, why: String| {
            Failure::new(category, format!("evaluator {evaluator}: {why}"))
        };
        let manifest = self
            .published(&evaluator.name, &evaluator.version)
            .await
            .map_err(|e| unavailable(e.category(), format!("registry not readable: {e}")))?
            .ok_or_else(|| unavailable(FailureCategory::Permanent, "not published".into()))?;
        if manifest.sha256 != evaluator.digest {
            return Err(unavailable(
                FailureCategory::Permanent,
                format!(
                    "the job pinned {} but the registry has {}",
                    evaluator.digest, manifest.sha256
                ),
            ));
        }
        let bytes = self
            .blobs
            .get(&manifest.component_key())
            .await
            .map_err(|e| unavailable(e.category(), format!("component not readable: {e}")))?;
        let compiled = match manifest
            .precompiled
            .iter()
            .find(|p| p.target == host_target())
        {
            None => None,
            Some(published) => match self.blobs.get(&published.key).await {
                Ok(compiled) if digest(&compiled) == published.sha256 => Some(compiled),
                Ok(_) => {
                    tracing::warn!(plugin = %evaluator, key = %published.key, "published compiled code does not match its digest; recompiling");
                    None
                }
                Err(e) => {
                    tracing::warn!(plugin = %evaluator, key = %published.key, error = %e, "published compiled code not readable; recompiling");
                    None
                }
            },
        };
        let host = self.host.clone();
        blocking(move || host.load_published(manifest, &bytes, compiled.as_deref()))
            .await
            .map(|loaded| tracing::info!(plugin = %loaded, digest = %loaded.digest, "published plugin loaded"))
            .map_err(|e| unavailable(FailureCategory::Permanent, e.to_string()))
    }
}

#[async_trait::async_trait]
impl Evaluators for Catalog {
    async fn resolve(&self, spec: &str) -> Result<EvaluatorRef, Failure> {
        self.registry.resolve(spec, self.host.loaded_refs()).await
    }

    fn loaded(&self) -> Vec<EvaluatorRef> {
        self.host.loaded_refs()
    }

    async fn check_config(
        &self,
        evaluator: &EvaluatorRef,
        config: &serde_json::Value,
    ) -> Result<(), Failure> {
        self.registry
            .check_config(evaluator, self.host.manifest_of(evaluator), config)
            .await
    }

    async fn evaluate(
        &self,
        requests: Vec<EvaluationRequest>,
        deadline: Option<std::time::Instant>,
    ) -> Vec<Result<EvaluationReport, Failure>> {
        let mut unavailable: HashMap<String, Failure> = HashMap::new();
        let mut checked = HashSet::new();
        for request in &requests {
            let evaluator = &request.evaluator;
            if !checked.insert(&evaluator.digest) {
                continue;
            }
            if let Err(failure) = self.ensure_loaded(evaluator).await {
                unavailable.insert(evaluator.digest.clone(), failure);
            }
        }
        if unavailable.is_empty() {
            return self.host.evaluate(requests, deadline).await;
        }
        let (runnable, refused): (Vec<_>, Vec<_>) = requests
            .into_iter()
            .enumerate()
            .partition(|(_, r)| !unavailable.contains_key(&r.evaluator.digest));
        let mut results: Vec<Option<Result<EvaluationReport, Failure>>> =
            (0..runnable.len() + refused.len()).map(|_| None).collect();
        for (n, request) in refused {
            results[n] = Some(Err(unavailable[&request.evaluator.digest].clone()));
        }
        let (positions, runnable): (Vec<usize>, Vec<EvaluationRequest>) =
            runnable.into_iter().unzip();
        for (n, result) in positions
            .into_iter()
            .zip(self.host.evaluate(runnable, deadline).await)
        {
            results[n] = Some(result);
        }
        results.into_iter().flatten().collect()
    }

    async fn merge_chunks(
        &self,
        evaluator: &EvaluatorRef,
        chunks: Vec<Evaluation>,
    ) -> Result<Option<Evaluation>, Failure> {
        self.ensure_loaded(evaluator).await?;
        self.host.merge_chunks(evaluator, chunks).await
    }

    async fn summarize(
        &self,
        evaluator: &EvaluatorRef,
        evaluations: Vec<Evaluation>,
    ) -> Result<Option<serde_json::Value>, Failure> {
        self.ensure_loaded(evaluator).await?;
        self.host.summarize(evaluator, evaluations).await
    }

    async fn folds_summaries(&self, evaluator: &EvaluatorRef) -> Result<bool, Failure> {
        self.ensure_loaded(evaluator).await?;
        self.host.folds_summaries(evaluator).await
    }

    async fn combine_summaries(
        &self,
        evaluator: &EvaluatorRef,
        partials: Vec<serde_json::Value>,
    ) -> Result<Option<serde_json::Value>, Failure> {
        self.ensure_loaded(evaluator).await?;
        self.host.combine_summaries(evaluator, partials).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denied_imports_match_whole_packages_or_interfaces() {
        let imports: Vec<String> = [
            "wasi:cli/stderr@0.2.6",
            "wasi:filesystem/types@0.2.6",
            "wasi:filesystem/preopens@0.2.6",
            "wasi:sockets/tcp@0.2.6",
            "wasi:filesystemx/other@0.1.0",
        ]
        .map(str::to_owned)
        .to_vec();
        let deny = |entries: &[&str]| {
            denied_imports(
                &imports,
                &entries.iter().map(|e| (*e).to_owned()).collect::<Vec<_>>(),
            )
        };
        assert_eq!(deny(&[]), ["wasi:sockets/tcp@0.2.6"], "sockets always");
        assert_eq!(
            deny(&["wasi:filesystem"]),
            [
                "wasi:filesystem/types@0.2.6",
                "wasi:filesystem/preopens@0.2.6",
                "wasi:sockets/tcp@0.2.6"
            ]
        );
        assert_eq!(deny(&["wasi:filesystem/"]), deny(&["wasi:filesystem"]));
        assert_eq!(
            deny(&["wasi:filesystem/types"]),
            ["wasi:filesystem/types@0.2.6", "wasi:sockets/tcp@0.2.6"]
        );
        assert_eq!(deny(&["wasi:file"]), ["wasi:sockets/tcp@0.2.6"]);
    }
}
