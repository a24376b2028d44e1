//! docket's plugin host: runs evaluator components (the
//! `docket:evaluator@0.1.0` world) with wasmtime under hard limits.
//!
//! - One [`wasmtime::Engine`] per process, with the pooling allocator.
//! - A fresh `Store` per call, so every document is isolated from the last;
//!   components are pre-instantiated once (`InstancePre`).
//! - Limits on every store: fuel (the deterministic CPU budget, base + per
//!   KiB of input), an epoch deadline as wall-clock backstop, a memory cap,
//!   input and output byte caps.
//! - WASI is linked because guests' standard libraries import it, with no
//!   preopened directories, environment, arguments or sockets, a clock frozen
//!   at the epoch and deterministic randomness.
//! - Compiled code is cached on disk keyed by the component's digest and the
//!   engine's compatibility hash, and deserialized only when the artifact's
//!   own digest matches the one recorded when docket wrote it. Code shipped
//!   beside the binary (a Lambda package) or published with a plugin is
//!   used the same way when the engine accepts it.
//! - Bundled components are registered, not compiled, when a host starts:
//!   each is compiled (or read from compiled code) the first time a call
//!   needs it, so a process pays only for the evaluators its work uses.
//!
//! Every host-side failure is a categorized [`Failure`]: traps, exhausted
//! limits and invalid output are `PERMANENT` with a message naming the limit
//! and its value; a plugin's own errors keep their category.
#![deny(missing_docs)]

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use docket_core::model::EvaluatorRef;
use docket_core::ports::{DocumentView, EvaluationReport, EvaluationRequest, Evaluators};
use docket_core::{Evaluation, Failure, FailureCategory};
use wasmtime::Engine;
use wasmtime::component::Linker;

mod cache;
mod calls;
mod catalog;
mod convert;
mod engine;
mod sandbox;

pub use cache::{recorded_digest_path, shipped_code_path};
pub use calls::WarmInstance;
pub use catalog::{ALWAYS_DENIED, Catalog, PublishError, PublishRequest, denied_imports};
pub use docket_core::plugin::{Limits, Manifest, WORLD, WORLDS, digest};
pub use docket_registry::{check_config, check_schema};
pub use engine::{PRECOMPILE_TARGETS, host_target};

use cache::check_header;
use engine::{EpochTicker, engine_config, engine_id};
use sandbox::StoreState;

/// Bindings of the calls every contract version has, generated from
/// 0.1.0's world (a 0.2.0 component implements it too; its
/// `combine-summaries` is looked up by name); `bindgen!` is called here only.
mod bindings {
    wasmtime::component::bindgen!({
        path: "../../plugins/wit/0.1.0",
        world: "evaluator",
    });
}

/// Settings of the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostConfig {
    /// Where compiled code is cached (created if missing); `None` compiles
    /// in memory every time the host starts.
    pub cache_dir: Option<PathBuf>,
    /// A read-only directory of compiled code shipped with the binary
    /// (see [`shipped_code_path`]), tried before compiling a component the
    /// cache does not have; code this engine does not accept is recompiled
    /// with a warning.
    pub shipped_code: Option<PathBuf>,
    /// Calls that may run at once (instance slots of the pooling allocator).
    pub max_concurrent_instances: u32,
    /// Largest memory any plugin may be given (the pool's slot size).
    pub max_memory_bytes: u64,
    /// Enforce each plugin's `timeout_ms` with epoch interruption.
    pub wall_clock_backstop: bool,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            cache_dir: None,
            shipped_code: None,
            max_concurrent_instances: 64,
            max_memory_bytes: 512 << 20,
            wall_clock_backstop: true,
        }
    }
}

/// Errors loading plugins.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The engine could not be configured.
    #[error("wasmtime engine: {0}")]
    Engine(String),
    /// The bytes are not a usable component for the docket world.
    #[error("invalid component {name}: {message}")]
    InvalidComponent {
        /// The plugin's name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// The bytes do not match the manifest's digest.
    #[error("digest mismatch for {name}: manifest says {expected}, bytes are {actual}")]
    DigestMismatch {
        /// The plugin's name.
        name: String,
        /// From the manifest.
        expected: String,
        /// Of the bytes.
        actual: String,
    },
    /// The manifest is unusable.
    #[error("invalid manifest for {name}: {message}")]
    InvalidManifest {
        /// The plugin's name.
        name: String,
        /// What is wrong.
        message: String,
    },
}

/// A loaded plugin version. Versions with the same bytes share the
/// compiled component (`pre`), each with its own manifest: its limits.
struct LoadedPlugin {
    manifest: Manifest,
    pre: bindings::EvaluatorPre<StoreState>,
    /// Contract 0.2.0's `combine-summaries`, when the component exports it.
    combine: Option<wasmtime::component::ComponentExportIndex>,
}

/// Loads and runs evaluator components. Implements the core's
/// [`Evaluators`] port; cheap to clone (one engine, shared).
#[derive(Clone)]
pub struct PluginHost {
    inner: Arc<HostInner>,
}

/// A component registered to be loaded the first time a call needs it.
#[derive(Clone)]
struct Deferred {
    manifest: Manifest,
    bytes: &'static [u8],
}

struct HostInner {
    engine: Engine,
    linker: Linker<StoreState>,
    config: HostConfig,
    /// Loaded versions, by [`identity`].
    plugins: RwLock<HashMap<String, Arc<LoadedPlugin>>>,
    /// Registered, not loaded yet, by [`identity`].
    deferred: RwLock<HashMap<String, Deferred>>,
    /// Held while a deferred component loads: one compilation per
    /// component, however many calls wait for it.
    loading: Mutex<()>,
    /// Components compiled by this host (not read from compiled code).
    compilations: AtomicU64,
    versions: RwLock<BTreeMap<String, BTreeMap<VersionKey, EvaluatorRef>>>,
    _ticker: Option<EpochTicker>,
}

/// What a loaded or registered plugin is known by: its name, version and
/// digest. Not the digest alone: the same bytes published under two names
/// or versions may carry two sets of limits, and each runs under its own.
fn identity(reference: &EvaluatorRef) -> String {
    format!(
        "{}@{} {}",
        reference.name, reference.version, reference.digest
    )
}

/// A loaded version's place among its name's versions: semver order
/// (`0.10.0 > 0.9.1`, a pre-release before its release, build metadata
/// apart — `1.0.0-1` and `1.0.0+1` are two versions), then the text, so no
/// two distinct versions share a key. Versions that are not semver (none
/// are loaded from the registry, which checks them) sort first.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct VersionKey(Option<semver::Version>, String);

impl VersionKey {
    fn parse(version: &str) -> Self {
        Self(semver::Version::parse(version).ok(), version.to_owned())
    }
}

impl PluginHost {
    /// Builds the engine (one per process) and the WASI linker.
    ///
    /// # Errors
    /// [`HostError::Engine`] when wasmtime rejects the configuration or the
    /// cache directory cannot be created.
    pub fn new(config: HostConfig) -> Result<Self, HostError> {
        let engine_error = |e: wasmtime::Error| HostError::Engine(format!("{e:#}"));
        let wasm = engine_config(&config);
        let engine = Engine::new(&wasm).map_err(engine_error)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(engine_error)?;
        if let Some(dir) = &config.cache_dir {
            std::fs::create_dir_all(dir).map_err(|e| {
                HostError::Engine(format!("cache directory {}: {e}", dir.display()))
            })?;
        }
        let ticker = config
            .wall_clock_backstop
            .then(|| EpochTicker::start(engine.clone()));
        Ok(Self {
            inner: Arc::new(HostInner {
                engine,
                linker,
                config,
                plugins: RwLock::default(),
                deferred: RwLock::default(),
                loading: Mutex::default(),
                compilations: AtomicU64::new(0),
                versions: RwLock::default(),
                _ticker: ticker,
            }),
        })
    }

    /// Loads a component under `name@version` with the default limits (its
    /// digest computed from `bytes`): how bundled evaluators and local
    /// `.wasm` files are loaded.
    ///
    /// # Errors
    /// As [`PluginHost::load`].
    pub fn load_component(
        &self,
        name: &str,
        version: &str,
        bytes: &[u8],
    ) -> Result<EvaluatorRef, HostError> {
        self.load(Manifest::for_component(name, version, bytes), bytes)
    }

    /// Registers a component under `name@version` with the default limits,
    /// to be loaded (compiled, or read from cached or shipped compiled
    /// code) the first time a call needs it: how bundled evaluators are
    /// made known, so starting a host compiles nothing. Resolving finds it
    /// at once; a component that does not load fails the calls that need
    /// it, `PERMANENT`, with the reason.
    pub fn register_component(
        &self,
        name: &str,
        version: &str,
        bytes: &'static [u8],
    ) -> EvaluatorRef {
        let manifest = Manifest::for_component(name, version, bytes);
        let reference = manifest.reference();
        if !self
            .inner
            .read_plugins()
            .contains_key(&identity(&reference))
        {
            self.inner
                .deferred
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(identity(&reference), Deferred { manifest, bytes });
        }
        self.inner.register_version(&reference);
        reference
    }

    /// How many components this host has compiled (rather than read from
    /// cached, shipped or published compiled code).
    pub fn compilations(&self) -> u64 {
        self.inner.compilations.load(Ordering::Relaxed)
    }

    /// Loads a plugin: checks the bytes against the manifest's digest,
    /// compiles them (or loads the verified cached artifact) and
    /// pre-instantiates them against the docket world, so a component for
    /// another world or with imports docket does not provide is refused
    /// here. Loading the same name, version and digest twice is a no-op;
    /// another version with the same bytes shares the compiled component
    /// and runs under its own manifest's limits.
    ///
    /// # Errors
    /// [`HostError::DigestMismatch`], [`HostError::InvalidManifest`],
    /// [`HostError::InvalidComponent`].
    pub fn load(&self, manifest: Manifest, bytes: &[u8]) -> Result<EvaluatorRef, HostError> {
        self.inner.load(manifest, bytes, None)
    }

    /// Loads a published plugin with the compiled code published for this
    /// target, when there is one (`compiled` must match the manifest's
    /// recorded digest for it). Code this engine does not accept is
    /// recompiled from the component and the event logged.
    ///
    /// # Errors
    /// As [`PluginHost::load`].
    pub fn load_published(
        &self,
        manifest: Manifest,
        bytes: &[u8],
        compiled: Option<&[u8]>,
    ) -> Result<EvaluatorRef, HostError> {
        self.inner.load(manifest, bytes, compiled)
    }

    /// Compiles a component for `target` with this host's engine
    /// configuration, returning the compiled code and the identifier of the
    /// engine it is for.
    ///
    /// # Errors
    /// [`HostError::Engine`] for an unknown target, or another
    /// architecture than this one without the `cross-compile` feature;
    /// [`HostError::InvalidComponent`] when the bytes do not compile.
    pub fn precompile(
        &self,
        name: &str,
        bytes: &[u8],
        target: &str,
    ) -> Result<(Vec<u8>, String), HostError> {
        let mut config = engine_config(&self.inner.config);
        config
            .target(target)
            .map_err(|e| HostError::Engine(format!("target {target}: {e:#}")))?;
        let engine = Engine::new(&config)
            .map_err(|e| HostError::Engine(format!("target {target}: {e:#}")))?;
        let compiled =
            engine
                .precompile_component(bytes)
                .map_err(|e| HostError::InvalidComponent {
                    name: name.to_owned(),
                    message: format!("{e:#}"),
                })?;
        Ok((compiled, engine_id(&engine)))
    }

    /// Compiles a component for `target` (as [`PluginHost::precompile`])
    /// and writes the code into `dir` where a host with
    /// [`HostConfig::shipped_code`] set to `dir` finds it, with its digest
    /// beside it; returns the artifact's path.
    ///
    /// # Errors
    /// As [`PluginHost::precompile`], and [`HostError::Engine`] when the
    /// files cannot be written.
    pub fn write_shipped_code(
        &self,
        dir: &std::path::Path,
        name: &str,
        bytes: &[u8],
        target: &str,
    ) -> Result<PathBuf, HostError> {
        let (compiled, _engine) = self.precompile(name, bytes, target)?;
        let artifact = shipped_code_path(dir, &digest(bytes), target);
        let unwritable =
            |e: std::io::Error| HostError::Engine(format!("writing {}: {e}", artifact.display()));
        std::fs::create_dir_all(dir).map_err(unwritable)?;
        std::fs::write(&artifact, &compiled).map_err(unwritable)?;
        std::fs::write(cache::recorded_digest_path(&artifact), digest(&compiled))
            .map_err(unwritable)?;
        Ok(artifact)
    }

    /// Resolves `name`, `name@version` or `name@range` among the loaded
    /// plugins (see [`docket_core::plugin::PluginSpec`]).
    ///
    /// # Errors
    /// A `Configuration` failure naming the unknown evaluator or version.
    pub fn resolve_loaded(&self, spec: &str) -> Result<EvaluatorRef, Failure> {
        docket_core::plugin::resolve_among(spec, &self.loaded_refs())
    }

    /// Every loaded plugin version, by name then version.
    pub fn loaded_refs(&self) -> Vec<EvaluatorRef> {
        let versions = self
            .inner
            .versions
            .read()
            .unwrap_or_else(|e| e.into_inner());
        versions
            .values()
            .flat_map(|v| v.values().cloned())
            .collect()
    }

    /// Whether this plugin version is loaded or registered to be loaded on
    /// first use.
    pub fn is_loaded(&self, evaluator: &EvaluatorRef) -> bool {
        let key = identity(evaluator);
        self.inner.read_plugins().contains_key(&key) || self.inner.deferred(&key).is_some()
    }

    /// The manifest of a loaded plugin version, or of a registered one (its
    /// imports and contract are known once it is loaded).
    pub fn manifest_of(&self, evaluator: &EvaluatorRef) -> Option<Manifest> {
        let key = identity(evaluator);
        let loaded = self
            .inner
            .read_plugins()
            .get(&key)
            .map(|p| p.manifest.clone());
        loaded.or_else(|| self.inner.deferred(&key).map(|d| d.manifest))
    }

    /// Evaluates one document on the calling thread. Do not call it from an
    /// async task: a plugin writing to stderr makes WASI block on its own
    /// runtime. Async callers use the [`Evaluators`] implementation, which
    /// moves the batch to a blocking thread.
    ///
    /// # Errors
    /// As [`Evaluators::evaluate`].
    pub fn evaluate_document(
        &self,
        evaluator: &EvaluatorRef,
        document: &DocumentView<'_>,
        config: &serde_json::Value,
    ) -> Result<EvaluationReport, Failure> {
        self.evaluate_document_within(evaluator, document, config, None)
    }

    /// [`PluginHost::evaluate_document`] within `deadline`: the call's
    /// wall-clock limit becomes the shorter of the plugin's and the time
    /// left, and a call the deadline stops is a `Transient` failure.
    ///
    /// # Errors
    /// As [`Evaluators::evaluate`].
    pub fn evaluate_document_within(
        &self,
        evaluator: &EvaluatorRef,
        document: &DocumentView<'_>,
        config: &serde_json::Value,
        deadline: Option<Instant>,
    ) -> Result<EvaluationReport, Failure> {
        self.inner.evaluate(evaluator, document, config, deadline)
    }

    /// The plugin's merge of chunk evaluations, on the calling thread (see
    /// [`PluginHost::evaluate_document`]).
    ///
    /// # Errors
    /// As [`Evaluators::merge_chunks`].
    pub fn merge_chunks_now(
        &self,
        evaluator: &EvaluatorRef,
        chunks: &[Evaluation],
    ) -> Result<Option<Evaluation>, Failure> {
        self.inner.merge_chunks(evaluator, chunks)
    }
}

impl HostInner {
    fn load(
        &self,
        mut manifest: Manifest,
        bytes: &[u8],
        compiled: Option<&[u8]>,
    ) -> Result<EvaluatorRef, HostError> {
        let actual = digest(bytes);
        if actual != manifest.sha256 {
            return Err(HostError::DigestMismatch {
                name: manifest.name,
                expected: manifest.sha256,
                actual,
            });
        }
        if !WORLDS.contains(&manifest.world.as_str()) {
            return Err(HostError::InvalidManifest {
                message: format!(
                    "world {:?}, docket runs {}",
                    manifest.world,
                    WORLDS.join(" and ")
                ),
                name: manifest.name,
            });
        }
        let reference = manifest.reference();
        let key = identity(&reference);
        if self.read_plugins().contains_key(&key) {
            self.register_version(&reference);
            return Ok(reference);
        }
        let same_bytes = self
            .read_plugins()
            .values()
            .find(|p| p.manifest.sha256 == manifest.sha256)
            .cloned();
        if let Some(compiled) = same_bytes {
            manifest.imports = compiled.manifest.imports.clone();
            manifest.world = compiled.manifest.world.clone();
            let plugin = LoadedPlugin {
                manifest,
                pre: compiled.pre.clone(),
                combine: compiled.combine,
            };
            return Ok(self.insert(reference, plugin));
        }
        let invalid = |message: String| HostError::InvalidComponent {
            name: manifest.name.clone(),
            message,
        };
        check_header(bytes).map_err(invalid)?;
        let component = self
            .compile(bytes, &manifest.sha256, compiled)
            .map_err(|e| invalid(format!("{e:#}")))?;
        manifest.imports = component
            .component_type()
            .imports(&self.engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| invalid(format!("imports what docket does not provide: {e:#}")))?;
        let pre = bindings::EvaluatorPre::new(instance_pre)
            .map_err(|e| invalid(format!("does not implement the {WORLD} world: {e:#}")))?;
        // The contract a component implements is told by its exports.
        let combine = component.get_export_index(None, "combine-summaries");
        manifest.world = if combine.is_some() { WORLD } else { WORLDS[1] }.to_owned();
        let plugin = LoadedPlugin {
            manifest,
            pre,
            combine,
        };
        Ok(self.insert(reference, plugin))
    }

    /// Makes `plugin` the loaded `reference` (no longer deferred).
    fn insert(&self, reference: EvaluatorRef, plugin: LoadedPlugin) -> EvaluatorRef {
        let key = identity(&reference);
        self.plugins
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.clone(), Arc::new(plugin));
        self.deferred
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
        self.register_version(&reference);
        reference
    }

    fn read_plugins(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<LoadedPlugin>>> {
        self.plugins.read().unwrap_or_else(|e| e.into_inner())
    }

    fn deferred(&self, key: &str) -> Option<Deferred> {
        self.deferred
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
    }

    /// Loads the registered component of this version, once.
    fn load_deferred(&self, evaluator: &EvaluatorRef) -> Option<Result<(), Failure>> {
        let key = identity(evaluator);
        let deferred = self.deferred(&key)?;
        let _one_at_a_time = self.loading.lock().unwrap_or_else(|e| e.into_inner());
        if self.read_plugins().contains_key(&key) {
            return Some(Ok(()));
        }
        let started = Instant::now();
        let loaded = self.load(deferred.manifest, deferred.bytes, None);
        Some(match loaded {
            Ok(_) => {
                tracing::info!(plugin = %evaluator, ms = started.elapsed().as_millis() as u64, "evaluator loaded on first use");
                Ok(())
            }
            Err(e) => Err(Failure::new(
                FailureCategory::Permanent,
                format!("evaluator {evaluator} does not load: {e}"),
            )),
        })
    }

    fn register_version(&self, reference: &EvaluatorRef) {
        self.versions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(reference.name.clone())
            .or_default()
            .insert(VersionKey::parse(&reference.version), reference.clone());
    }

    /// The loaded plugin with the job's pinned digest. Not having it is a
    /// RESOURCE failure: the item is retried, and another processor that has
    /// the component (a process sharing the queues, or one that loads it
    /// from the blob store) takes it.
    /// A registered component is loaded here, on the calling thread.
    fn plugin(&self, evaluator: &EvaluatorRef) -> Result<Arc<LoadedPlugin>, Failure> {
        let key = identity(evaluator);
        if let Some(plugin) = self.read_plugins().get(&key) {
            return Ok(plugin.clone());
        }
        if let Some(loaded) = self.load_deferred(evaluator) {
            loaded?;
        }
        self.read_plugins().get(&key).cloned().ok_or_else(|| {
            Failure::new(
                FailureCategory::Resource,
                format!(
                    "evaluator {evaluator} ({}) is not loaded in this processor",
                    evaluator.digest
                ),
            )
        })
    }
}

/// Runs `work` on a thread where blocking is allowed: WASI's synchronous
/// streams block on a runtime of their own, which must not happen on an
/// async worker thread.
async fn off_the_runtime<R: Send + 'static>(
    work: impl FnOnce() -> R + Send + 'static,
) -> Result<R, Failure> {
    match tokio::runtime::Handle::try_current() {
        Ok(_) => tokio::task::spawn_blocking(work).await.map_err(|e| {
            Failure::new(
                FailureCategory::Permanent,
                format!("evaluation thread failed: {e}"),
            )
        }),
        Err(_) => Ok(work()),
    }
}

#[async_trait::async_trait]
impl Evaluators for PluginHost {
    async fn resolve(&self, spec: &str) -> Result<EvaluatorRef, Failure> {
        self.resolve_loaded(spec)
    }

    fn loaded(&self) -> Vec<EvaluatorRef> {
        self.loaded_refs()
    }

    async fn check_config(
        &self,
        evaluator: &EvaluatorRef,
        config: &serde_json::Value,
    ) -> Result<(), Failure> {
        match self.manifest_of(evaluator) {
            Some(manifest) => check_config(&evaluator.name, &manifest.config_schema, config),
            None => Ok(()),
        }
    }

    async fn evaluate(
        &self,
        requests: Vec<EvaluationRequest>,
        deadline: Option<Instant>,
    ) -> Vec<Result<EvaluationReport, Failure>> {
        if requests.is_empty() {
            return Vec::new();
        }
        let count = requests.len();
        let inner = self.inner.clone();
        let batch = off_the_runtime(move || {
            requests
                .iter()
                .map(|request| {
                    inner.evaluate(
                        &request.evaluator,
                        &request.view(),
                        &request.config,
                        deadline,
                    )
                })
                .collect::<Vec<_>>()
        })
        .await;
        batch.unwrap_or_else(|failure| vec![Err(failure); count])
    }

    async fn merge_chunks(
        &self,
        evaluator: &EvaluatorRef,
        chunks: Vec<Evaluation>,
    ) -> Result<Option<Evaluation>, Failure> {
        let inner = self.inner.clone();
        let evaluator = evaluator.clone();
        off_the_runtime(move || inner.merge_chunks(&evaluator, &chunks)).await?
    }

    async fn summarize(
        &self,
        evaluator: &EvaluatorRef,
        evaluations: Vec<Evaluation>,
    ) -> Result<Option<serde_json::Value>, Failure> {
        let inner = self.inner.clone();
        let evaluator = evaluator.clone();
        off_the_runtime(move || inner.summarize(&evaluator, &evaluations)).await?
    }

    async fn folds_summaries(&self, evaluator: &EvaluatorRef) -> Result<bool, Failure> {
        let inner = self.inner.clone();
        let evaluator = evaluator.clone();
        off_the_runtime(move || Ok(inner.plugin(&evaluator)?.combine.is_some())).await?
    }

    async fn combine_summaries(
        &self,
        evaluator: &EvaluatorRef,
        partials: Vec<serde_json::Value>,
    ) -> Result<Option<serde_json::Value>, Failure> {
        let inner = self.inner.clone();
        let evaluator = evaluator.clone();
        off_the_runtime(move || inner.combine_summaries(&evaluator, &partials)).await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_order_numerically() {
        assert!(VersionKey::parse("0.10.0") > VersionKey::parse("0.9.1"));
        assert!(VersionKey::parse("1.0.0") > VersionKey::parse("0.99.99"));
    }

    #[test]
    fn versions_follow_semver_precedence_and_stay_distinct() {
        // A pre-release comes before its release (it used to sort above).
        assert!(VersionKey::parse("1.0.0-rc.1") < VersionKey::parse("1.0.0"));
        assert!(VersionKey::parse("1.0.0-alpha") < VersionKey::parse("1.0.0-alpha.1"));
        assert!(VersionKey::parse("1.0.0-rc.2") < VersionKey::parse("1.0.0-rc.10"));
        // A pre-release and a build of the same version are two keys (they
        // used to collide, so one loaded version replaced the other).
        assert_ne!(VersionKey::parse("1.0.0-1"), VersionKey::parse("1.0.0+1"));
        assert!(VersionKey::parse("1.0.0-1") < VersionKey::parse("1.0.0+1"));
    }
}
