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
//!   own digest matches the one recorded when docket wrote it.
//!
//! Every host-side failure is a categorized [`Failure`]: traps, exhausted
//! limits and invalid output are `PERMANENT` with a message naming the limit
//! and its value; a plugin's own errors keep their category.
#![deny(missing_docs)]

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use docket_core::model::EvaluatorRef;
use docket_core::ports::{DocumentView, EvaluationReport, EvaluationRequest, Evaluators, Usage};
use docket_core::{Evaluation, Failure, FailureCategory, Finding, Score, Severity, Span};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap,
};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

mod catalog;

pub use catalog::{ALWAYS_DENIED, Catalog, PublishError, PublishRequest, denied_imports};
pub use docket_core::plugin::{Limits, Manifest, WORLD, digest};

/// Bindings generated from the WIT world; `bindgen!` is called here only.
mod bindings {
    wasmtime::component::bindgen!({
        path: "../../plugins/wit",
        world: "evaluator",
    });
}

/// How often the epoch advances (the wall-clock backstop's resolution).
const EPOCH_TICK: Duration = Duration::from_millis(5);
/// Bytes of each pooled memory and table that may stay resident between
/// instances (reset in place).
const KEEP_RESIDENT: usize = 8 << 20;
/// Freed instance slots whose memory is decommitted together.
const DECOMMIT_BATCH: usize = 16;
/// How much of a plugin's stderr is kept (for panic messages).
const STDERR_CAPTURE: usize = 16 * 1024;

/// Settings of the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostConfig {
    /// Where compiled code is cached (created if missing); `None` compiles
    /// in memory every time the host starts.
    pub cache_dir: Option<PathBuf>,
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

/// Per-store state: WASI (denied everything), the memory limiter and the
/// captured stderr.
struct StoreState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryLimiter,
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Caps linear memory and records the peak, and whether the cap was hit.
struct MemoryLimiter {
    cap: usize,
    peak: usize,
    denied: Option<usize>,
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.cap {
            self.denied = Some(desired);
            return Ok(false);
        }
        self.peak = self.peak.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1 << 16)
    }
}

/// A frozen clock: guests see the Unix epoch and time standing still.
struct FrozenClock;

impl wasmtime_wasi::HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl wasmtime_wasi::HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

struct LoadedPlugin {
    manifest: Manifest,
    pre: bindings::EvaluatorPre<StoreState>,
}

/// Advances the engine's epoch in the background; stops when dropped.
struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    fn start(engine: Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("docket-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .ok();
        Self { stop }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Loads and runs evaluator components. Implements the core's
/// [`Evaluators`] port; cheap to clone (one engine, shared).
#[derive(Clone)]
pub struct PluginHost {
    inner: Arc<HostInner>,
}

struct HostInner {
    engine: Engine,
    linker: Linker<StoreState>,
    config: HostConfig,
    plugins: RwLock<HashMap<String, Arc<LoadedPlugin>>>,
    versions: RwLock<BTreeMap<String, BTreeMap<VersionKey, EvaluatorRef>>>,
    _ticker: Option<EpochTicker>,
}

/// Orders versions numerically where they are numbers (`0.10.0 > 0.9.1`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct VersionKey(Vec<(u64, String)>);

impl VersionKey {
    fn parse(version: &str) -> Self {
        Self(
            version
                .split(['.', '-', '+'])
                .map(|part| (part.parse().unwrap_or(0), part.to_owned()))
                .collect(),
        )
    }
}

/// The engine configuration of every docket host: fuel, epochs, NaN
/// canonicalization (determinism) and the pooling allocator. Compiled code
/// is only usable by engines built from the same configuration, so
/// precompilation for other targets starts from this too.
fn engine_config(config: &HostConfig) -> Config {
    let slots = config.max_concurrent_instances.max(1);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(slots)
        .total_core_instances(slots * 64)
        .total_memories(slots * 2)
        .total_tables(slots * 4)
        // componentize-py with --stub-wasi makes ~40 core instances.
        .max_core_instances_per_component(64)
        .max_memories_per_component(2)
        .max_tables_per_component(4)
        .max_memory_size(config.max_memory_bytes as usize)
        // Return freed instances' pages to the kernel in batches: one
        // TLB shootdown per batch instead of one per document.
        .decommit_batch_size(DECOMMIT_BATCH)
        // Where the kernel can say which pages an instance dirtied
        // (PAGEMAP_SCAN, Linux 6.7+), reset just those in place and keep
        // them mapped: the next document's instance reuses them without
        // page faults. Elsewhere this falls back to decommitting.
        .pagemap_scan(Enabled::Auto)
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT);
    let mut wasm = Config::new();
    wasm.wasm_component_model(true)
        .consume_fuel(true)
        .epoch_interruption(config.wall_clock_backstop)
        .cranelift_nan_canonicalization(true)
        .max_wasm_stack(1 << 20)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    wasm
}

/// The targets `docket plugin publish` precompiles for: x86_64 servers and
/// arm64 Lambda.
pub const PRECOMPILE_TARGETS: &[&str] = &["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"];

/// This process's target triple, as named in [`PRECOMPILE_TARGETS`].
pub fn host_target() -> String {
    format!("{}-unknown-linux-gnu", std::env::consts::ARCH)
}

/// Feeds a value's `Hash` into SHA-256, so the identifier is the same in
/// every process (std's hasher is randomly keyed).
struct StableHasher(sha2::Sha256);

impl Hasher for StableHasher {
    fn write(&mut self, bytes: &[u8]) {
        sha2::Digest::update(&mut self.0, bytes);
    }

    fn finish(&self) -> u64 {
        let hash = sha2::Digest::finalize(self.0.clone());
        u64::from_le_bytes(hash[..8].try_into().unwrap_or_default())
    }
}

/// A stable identifier of an engine's compatibility (wasmtime version,
/// configuration, target): compiled code is shared only between engines
/// with the same identifier.
fn engine_id(engine: &Engine) -> String {
    let mut hasher = StableHasher(sha2::Sha256::default());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!("{:016x}", hasher.finish())
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

    /// Loads a plugin: checks the bytes against the manifest's digest,
    /// compiles them (or loads the verified cached artifact) and
    /// pre-instantiates them against the docket world, so a component for
    /// another world or with imports docket does not provide is refused
    /// here. Loading the same digest twice is a no-op.
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

    /// Whether the plugin with this digest is loaded.
    pub fn is_loaded(&self, digest: &str) -> bool {
        self.inner.read_plugins().contains_key(digest)
    }

    /// The manifest of a loaded plugin.
    pub fn manifest(&self, digest: &str) -> Option<Manifest> {
        self.inner
            .read_plugins()
            .get(digest)
            .map(|p| p.manifest.clone())
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
        if manifest.world != WORLD {
            return Err(HostError::InvalidManifest {
                message: format!("world {:?}, docket runs {WORLD:?}", manifest.world),
                name: manifest.name,
            });
        }
        let reference = EvaluatorRef {
            name: manifest.name.clone(),
            version: manifest.version.clone(),
            digest: manifest.sha256.clone(),
        };
        if self.read_plugins().contains_key(&reference.digest) {
            self.register_version(&reference);
            return Ok(reference);
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
        let plugin = Arc::new(LoadedPlugin { manifest, pre });
        self.plugins
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(reference.digest.clone(), plugin);
        self.register_version(&reference);
        Ok(reference)
    }

    fn read_plugins(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<LoadedPlugin>>> {
        self.plugins.read().unwrap_or_else(|e| e.into_inner())
    }

    fn register_version(&self, reference: &EvaluatorRef) {
        self.versions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(reference.name.clone())
            .or_default()
            .insert(VersionKey::parse(&reference.version), reference.clone());
    }

    /// Compiles `bytes`, going through the on-disk cache when there is one.
    /// `published` is compiled code from the plugin's publication (its
    /// digest already checked against the manifest): used when this engine
    /// accepts it, otherwise the component is recompiled and the event
    /// logged.
    fn compile(
        &self,
        bytes: &[u8],
        digest_of_bytes: &str,
        published: Option<&[u8]>,
    ) -> wasmtime::Result<Component> {
        let cache = self.config.cache_dir.as_ref().map(|dir| {
            let stem = format!(
                "{}-{}",
                digest_of_bytes.trim_start_matches("sha256:"),
                engine_id(&self.engine)
            );
            (
                dir.join(format!("{stem}.cwasm")),
                dir.join(format!("{stem}.cwasm.sha256")),
            )
        });
        if let Some((artifact, recorded)) = &cache
            && let Some(component) = self.load_cached(artifact, recorded)
        {
            return Ok(component);
        }
        let published = published.and_then(|compiled| match self.deserialize_verified(compiled) {
            Ok(component) => Some((component, compiled.to_vec())),
            Err(e) => {
                tracing::warn!(plugin = %digest_of_bytes, engine = %engine_id(&self.engine), error = %e, "published compiled code does not match this engine; recompiling");
                None
            }
        });
        let (component, compiled) = match published {
            Some(found) => found,
            None => {
                let compiled = self.engine.precompile_component(bytes)?;
                (self.deserialize_verified(&compiled)?, compiled)
            }
        };
        if let Some((artifact, recorded)) = &cache {
            write_atomically(artifact, &compiled);
            write_atomically(recorded, digest(&compiled).as_bytes());
        }
        Ok(component)
    }

    /// The cached artifact, if it exists and its digest is the one docket
    /// recorded when it wrote it.
    fn load_cached(&self, artifact: &Path, recorded: &Path) -> Option<Component> {
        let expected = std::fs::read_to_string(recorded).ok()?;
        let compiled = std::fs::read(artifact).ok()?;
        if digest(&compiled) != expected.trim() {
            tracing::warn!(artifact = %artifact.display(), "cached compiled plugin does not match its recorded digest; recompiling");
            return None;
        }
        match self.deserialize_verified(&compiled) {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(artifact = %artifact.display(), error = %e, "cached compiled plugin not usable by this engine; recompiling");
                None
            }
        }
    }

    /// Deserializes compiled code that docket produced itself: either just
    /// now by `precompile_component`, or read back from the cache and
    /// checked against the digest recorded when it was written.
    #[allow(unsafe_code)]
    fn deserialize_verified(&self, compiled: &[u8]) -> wasmtime::Result<Component> {
        // SAFETY: `compiled` is output of docket's `precompile_component`
        // with this engine configuration: fresh, read back from the cache
        // and checked against the digest recorded when it was written, or
        // published with the plugin and checked against the digest in its
        // manifest. wasmtime additionally checks the compatibility header.
        unsafe { Component::deserialize(&self.engine, compiled) }
    }

    /// The loaded plugin with the job's pinned digest. Not having it is a
    /// RESOURCE failure: the item is retried, and another processor that has
    /// the component (a process sharing the queues, or one that loads it
    /// from the blob store) takes it.
    fn plugin(&self, evaluator: &EvaluatorRef) -> Result<Arc<LoadedPlugin>, Failure> {
        self.read_plugins()
            .get(&evaluator.digest)
            .cloned()
            .ok_or_else(|| {
                Failure::new(
                    FailureCategory::Resource,
                    format!(
                        "evaluator {evaluator} ({}) is not loaded in this processor",
                        evaluator.digest
                    ),
                )
            })
    }

    /// Runs `call` on a fresh instance of `plugin` under its limits.
    /// A store with WASI denied everything, the memory limiter and a
    /// captured stderr.
    fn new_store(&self, limits: &Limits) -> (Store<StoreState>, MemoryOutputPipe) {
        let stderr = MemoryOutputPipe::new(STDERR_CAPTURE);
        let wasi = WasiCtxBuilder::new()
            .stderr(stderr.clone())
            .wall_clock(FrozenClock)
            .monotonic_clock(FrozenClock)
            .secure_random(wasmtime_wasi::Deterministic::new(vec![0x2a; 32]))
            .insecure_random(wasmtime_wasi::Deterministic::new(vec![0x2a; 32]))
            .insecure_random_seed(0)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let mut store = Store::new(
            &self.engine,
            StoreState {
                wasi,
                table: ResourceTable::new(),
                limiter: MemoryLimiter {
                    cap: limits.memory_bytes.min(self.config.max_memory_bytes) as usize,
                    peak: 0,
                    denied: None,
                },
            },
        );
        store.limiter(|state| &mut state.limiter);
        (store, stderr)
    }

    /// Gives the store its fuel budget and wall-clock deadline for one call.
    fn arm(
        &self,
        store: &mut Store<StoreState>,
        timeout_ms: u64,
        fuel: u64,
    ) -> wasmtime::Result<()> {
        store.set_fuel(fuel)?;
        if self.config.wall_clock_backstop {
            store.set_epoch_deadline(timeout_ms / EPOCH_TICK.as_millis() as u64 + 1);
            store.epoch_deadline_trap();
        }
        Ok(())
    }

    /// The wall-clock limit of a call starting now: the plugin's, or the
    /// time left before `deadline` when that is shorter (`true`).
    fn time_limit(&self, limits: &Limits, deadline: Option<Instant>) -> (u64, bool) {
        match deadline.map(|d| d.saturating_duration_since(Instant::now()).as_millis() as u64) {
            Some(left) if left < limits.timeout_ms => (left, true),
            _ => (limits.timeout_ms, false),
        }
    }

    fn with_instance<R>(
        &self,
        plugin: &LoadedPlugin,
        input_bytes: u64,
        deadline: Option<Instant>,
        call: impl FnOnce(&mut Store<StoreState>, &bindings::Evaluator) -> wasmtime::Result<R>,
    ) -> Result<(R, Usage), Failure> {
        let limits = plugin.manifest.limits;
        if input_bytes > limits.max_input_bytes {
            return Err(Failure::new(
                FailureCategory::Permanent,
                format!(
                    "input of {input_bytes} bytes exceeds the plugin's limit of {} bytes",
                    limits.max_input_bytes
                ),
            ));
        }
        let (timeout_ms, by_deadline) = self.time_limit(&limits, deadline);
        if by_deadline && timeout_ms == 0 {
            return Err(deadline_failure(0));
        }
        let started = Instant::now();
        let (mut store, stderr) = self.new_store(&limits);
        let fuel = limits.fuel_for(input_bytes);
        let setup = self.arm(&mut store, timeout_ms, fuel);
        let result = setup
            .and_then(|()| plugin.pre.instantiate(&mut store))
            .and_then(|instance| call(&mut store, &instance));
        let usage = Usage {
            fuel: fuel.saturating_sub(store.get_fuel().unwrap_or(0)),
            peak_memory: store.data().limiter.peak as u64,
            input_bytes,
            output_bytes: 0,
            seconds: started.elapsed().as_secs_f64(),
        };
        match result {
            Ok(value) => Ok((value, usage)),
            Err(error)
                if by_deadline && matches!(error.downcast_ref::<Trap>(), Some(Trap::Interrupt)) =>
            {
                Err(deadline_failure(timeout_ms))
            }
            Err(error) => Err(host_failure(
                &error,
                &store,
                &limits,
                fuel,
                input_bytes,
                &stderr,
            )),
        }
    }
}

/// A call the invocation's deadline stopped (or left no time to start):
/// retried by another invocation, not the plugin's fault.
fn deadline_failure(ran_ms: u64) -> Failure {
    Failure::new(
        FailureCategory::Transient,
        format!("stopped at the invocation's deadline after {ran_ms} ms; retried"),
    )
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a
/// reader never sees half an artifact. Failures only cost a recompilation.
fn write_atomically(path: &Path, bytes: &[u8]) {
    let temp = path.with_extension(format!("tmp{}", std::process::id()));
    let written = std::fs::write(&temp, bytes).and_then(|()| std::fs::rename(&temp, path));
    if let Err(e) = written {
        tracing::warn!(path = %path.display(), error = %e, "compiled plugin not cached");
        let _ = std::fs::remove_file(&temp);
    }
}

/// Refuses what is not a component before compiling it, with the reason a
/// plugin author can act on.
fn check_header(bytes: &[u8]) -> Result<(), String> {
    match bytes.get(..8) {
        Some([0, b'a', b's', b'm', 0x0d, 0, 0x01, 0]) => Ok(()),
        Some([0, b'a', b's', b'm', 0x01, 0, 0, 0]) => Err(
            "a core WebAssembly module, not a component: build for wasm32-wasip2 (or with componentize-py / componentize-js)".into(),
        ),
        _ => Err(format!(
            "not a WebAssembly component ({} bytes without the \\0asm header)",
            bytes.len()
        )),
    }
}

/// The panic message a Rust guest printed to stderr, if any.
fn panic_message(stderr: &str) -> Option<String> {
    let (_, after) = stderr.split_once("panicked at ")?;
    let message = after.split_once(":\n").map_or(after, |(_, m)| m);
    let message = message.split("\nnote:").next().unwrap_or(message);
    Some(message.trim().to_owned())
}

fn host_failure(
    error: &wasmtime::Error,
    store: &Store<StoreState>,
    limits: &Limits,
    fuel: u64,
    input_bytes: u64,
    stderr: &MemoryOutputPipe,
) -> Failure {
    let permanent = |message: String| Failure::new(FailureCategory::Permanent, message);
    let stderr_text = String::from_utf8_lossy(&stderr.contents()).into_owned();
    if let Some(asked) = store.data().limiter.denied {
        return permanent(format!(
            "memory limit of {} bytes exceeded (the plugin asked for {asked} bytes)",
            store.data().limiter.cap
        ));
    }
    if error
        .downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
        .is_some()
    {
        return Failure::new(
            FailureCategory::Resource,
            format!("no free plugin instance slot: {error}"),
        );
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => permanent(format!(
            "fuel limit of {fuel} exhausted (base {} + {} per KiB for {} KiB of input)",
            limits.fuel_base,
            limits.fuel_per_kib,
            input_bytes.div_ceil(1024)
        )),
        Some(Trap::Interrupt) => {
            permanent(format!("time limit of {} ms exceeded", limits.timeout_ms))
        }
        Some(Trap::StackOverflow) => permanent("stack overflow: call stack exhausted".into()),
        Some(trap) => match panic_message(&stderr_text) {
            Some(message) => permanent(format!("plugin panicked: {message}")),
            None if stderr_text.trim().is_empty() => permanent(format!("plugin trapped: {trap}")),
            None => permanent(format!(
                "plugin trapped: {trap}; stderr: {}",
                stderr_text.trim()
            )),
        },
        None => permanent(format!("plugin failed: {error:#}")),
    }
}

fn wit_document(document: &DocumentView<'_>) -> bindings::Document {
    bindings::Document {
        id: document.id.to_owned(),
        title: document.title.to_owned(),
        content: document.content.to_owned(),
        metadata: document.metadata.to_string(),
        chunk: bindings::ChunkInfo {
            index: document.chunk.index,
            count: document.chunk.count,
            first_page: document.chunk.first_page,
            last_page: document.chunk.last_page,
            offset: document.chunk.offset,
        },
    }
}

fn plugin_error(error: bindings::PluginError) -> Failure {
    match error {
        bindings::PluginError::InvalidDocument(m) => Failure::new(
            FailureCategory::Data,
            format!("evaluator rejected the document: {m}"),
        ),
        bindings::PluginError::InvalidConfig(m) => Failure::new(
            FailureCategory::Configuration,
            format!("evaluator rejected its configuration: {m}"),
        ),
        bindings::PluginError::Internal(m) => {
            Failure::new(FailureCategory::Permanent, format!("evaluator failed: {m}"))
        }
    }
}

/// Bytes of text an evaluation carries (what the output cap limits).
fn output_bytes(e: &bindings::Evaluation) -> u64 {
    let scores: usize = e.scores.iter().map(|s| s.name.len() + 16).sum();
    let findings: usize = e
        .findings
        .iter()
        .map(|f| {
            f.code.len() + f.message.len() + f.evidence.as_ref().map_or(0, |s| s.snippet.len() + 16)
        })
        .sum();
    let labels: usize = e.labels.iter().map(String::len).sum();
    (scores + findings + labels + e.data.len()) as u64
}

fn severity_from(severity: bindings::Severity) -> Severity {
    match severity {
        bindings::Severity::Info => Severity::Info,
        bindings::Severity::Warning => Severity::Warning,
        bindings::Severity::Violation => Severity::Violation,
    }
}

fn severity_to(severity: Severity) -> bindings::Severity {
    match severity {
        Severity::Info => bindings::Severity::Info,
        Severity::Warning => bindings::Severity::Warning,
        Severity::Violation => bindings::Severity::Violation,
    }
}

/// Converts and validates an evaluation returned by a plugin. `content_len`
/// bounds evidence spans when known.
fn evaluation_from(
    e: bindings::Evaluation,
    content_len: Option<u64>,
) -> Result<Evaluation, Failure> {
    let invalid = |message: String| {
        Failure::new(
            FailureCategory::Permanent,
            format!("invalid plugin output: {message}"),
        )
    };
    let data = if e.data.trim().is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&e.data).map_err(|err| invalid(format!("data is not JSON: {err}")))?
    };
    let mut scores = Vec::with_capacity(e.scores.len());
    for score in e.scores {
        if !score.value.is_finite() || !score.max.is_finite() {
            return Err(invalid(format!(
                "score {:?} is not a finite number",
                score.name
            )));
        }
        scores.push(Score {
            name: score.name,
            value: score.value,
            max: score.max,
        });
    }
    let mut findings = Vec::with_capacity(e.findings.len());
    for finding in e.findings {
        let evidence = match finding.evidence {
            Some(span) => {
                if span.start > span.end || content_len.is_some_and(|len| span.end > len) {
                    return Err(invalid(format!(
                        "evidence span {}..{} of finding {:?} is outside the {}-byte input",
                        span.start,
                        span.end,
                        finding.code,
                        content_len.unwrap_or(0)
                    )));
                }
                Some(Span {
                    start: span.start,
                    end: span.end,
                    snippet: span.snippet,
                })
            }
            None => None,
        };
        findings.push(Finding {
            code: finding.code,
            severity: severity_from(finding.severity),
            message: finding.message,
            evidence,
        });
    }
    Ok(Evaluation {
        scores,
        findings,
        labels: e.labels,
        data,
    })
}

fn evaluation_to(e: &Evaluation) -> bindings::Evaluation {
    bindings::Evaluation {
        scores: e
            .scores
            .iter()
            .map(|s| bindings::Score {
                name: s.name.clone(),
                value: s.value,
                max: s.max,
            })
            .collect(),
        findings: e
            .findings
            .iter()
            .map(|f| bindings::Finding {
                code: f.code.clone(),
                severity: severity_to(f.severity),
                message: f.message.clone(),
                evidence: f.evidence.as_ref().map(|s| bindings::Span {
                    start: s.start,
                    end: s.end,
                    snippet: s.snippet.clone(),
                }),
            })
            .collect(),
        labels: e.labels.clone(),
        data: e.data.to_string(),
    }
}

impl HostInner {
    fn checked_output(
        &self,
        plugin: &LoadedPlugin,
        e: &bindings::Evaluation,
    ) -> Result<u64, Failure> {
        let bytes = output_bytes(e);
        let limit = plugin.manifest.limits.max_output_bytes;
        if bytes > limit {
            return Err(Failure::new(
                FailureCategory::Permanent,
                format!("output of {bytes} bytes exceeds the plugin's limit of {limit} bytes"),
            ));
        }
        Ok(bytes)
    }
}

impl HostInner {
    fn evaluate(
        &self,
        evaluator: &EvaluatorRef,
        document: &DocumentView<'_>,
        config: &serde_json::Value,
        deadline: Option<Instant>,
    ) -> Result<EvaluationReport, Failure> {
        let plugin = self.plugin(evaluator)?;
        let input = wit_document(document);
        let config = if config.is_null() {
            "{}".to_owned()
        } else {
            config.to_string()
        };
        let content_len = document.content.len() as u64;
        let (result, mut usage) =
            self.with_instance(&plugin, content_len, deadline, |store, instance| {
                instance.call_evaluate(store, &input, &config)
            })?;
        let raw = result.map_err(plugin_error)?;
        usage.output_bytes = self.checked_output(&plugin, &raw)?;
        Ok(EvaluationReport {
            evaluation: evaluation_from(raw, Some(content_len))?,
            usage,
        })
    }

    fn merge_chunks(
        &self,
        evaluator: &EvaluatorRef,
        chunks: &[Evaluation],
    ) -> Result<Option<Evaluation>, Failure> {
        let plugin = self.plugin(evaluator)?;
        let input: Vec<bindings::Evaluation> = chunks.iter().map(evaluation_to).collect();
        let input_bytes = input.iter().map(output_bytes).sum();
        let (merged, _) = self.with_instance(&plugin, input_bytes, None, |store, instance| {
            instance.call_merge_chunks(store, &input)
        })?;
        match merged {
            None => Ok(None),
            Some(raw) => {
                self.checked_output(&plugin, &raw)?;
                evaluation_from(raw, None).map(Some)
            }
        }
    }

    fn summarize(
        &self,
        evaluator: &EvaluatorRef,
        evaluations: &[Evaluation],
    ) -> Result<Option<serde_json::Value>, Failure> {
        let plugin = self.plugin(evaluator)?;
        let input: Vec<bindings::Evaluation> = evaluations.iter().map(evaluation_to).collect();
        let input_bytes = input.iter().map(output_bytes).sum();
        let (summary, _) = self.with_instance(&plugin, input_bytes, None, |store, instance| {
            instance.call_summarize(store, &input)
        })?;
        summary
            .map(|json| {
                serde_json::from_str(&json).map_err(|e| {
                    Failure::new(
                        FailureCategory::Permanent,
                        format!("invalid plugin output: summary is not JSON: {e}"),
                    )
                })
            })
            .transpose()
    }
}

/// A kept-alive instance: one store reused for many calls, refuelled before
/// each. docket's pipeline never uses it — documents must not share an
/// instance — it exists so benchmarks can measure what a fresh instance
/// per document costs.
pub struct WarmInstance {
    host: Arc<HostInner>,
    plugin: Arc<LoadedPlugin>,
    store: Store<StoreState>,
    instance: bindings::Evaluator,
}

impl PluginHost {
    /// A kept-alive instance of `evaluator` (for measurements only).
    ///
    /// # Errors
    /// When the evaluator is not loaded or does not instantiate.
    pub fn warm_instance(&self, evaluator: &EvaluatorRef) -> Result<WarmInstance, Failure> {
        let plugin = self.inner.plugin(evaluator)?;
        let limits = plugin.manifest.limits;
        let (mut store, _) = self.inner.new_store(&limits);
        let instance = self
            .inner
            .arm(&mut store, limits.timeout_ms, limits.fuel_base)
            .and_then(|()| plugin.pre.instantiate(&mut store))
            .map_err(|e| Failure::new(FailureCategory::Permanent, format!("{e:#}")))?;
        Ok(WarmInstance {
            host: self.inner.clone(),
            plugin,
            store,
            instance,
        })
    }
}

impl WarmInstance {
    /// Evaluates on the kept-alive instance.
    ///
    /// # Errors
    /// A categorized failure, as for a fresh instance.
    pub fn evaluate(
        &mut self,
        document: &DocumentView<'_>,
        config: &str,
    ) -> Result<Evaluation, Failure> {
        let limits = self.plugin.manifest.limits;
        let fuel = limits.fuel_for(document.content.len() as u64);
        let input = wit_document(document);
        let result = self
            .host
            .arm(&mut self.store, limits.timeout_ms, fuel)
            .and_then(|()| self.instance.call_evaluate(&mut self.store, &input, config))
            .map_err(|e| Failure::new(FailureCategory::Permanent, format!("{e:#}")))?;
        evaluation_from(
            result.map_err(plugin_error)?,
            Some(document.content.len() as u64),
        )
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_messages_are_extracted_from_stderr() {
        let stderr = "\nthread '<unnamed>' panicked at src/lib.rs:40:32:\nthe hostile plugin panicked on purpose\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n";
        assert_eq!(
            panic_message(stderr).as_deref(),
            Some("the hostile plugin panicked on purpose")
        );
        assert_eq!(panic_message("nothing here"), None);
    }

    #[test]
    fn versions_order_numerically() {
        assert!(VersionKey::parse("0.10.0") > VersionKey::parse("0.9.1"));
        assert!(VersionKey::parse("1.0.0") > VersionKey::parse("0.99.99"));
    }
}
