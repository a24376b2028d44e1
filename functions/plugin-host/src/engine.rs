//! The engine every docket host runs on: its configuration (fuel, epochs,
//! NaN canonicalization, the pooling allocator), the targets plugins are
//! precompiled for, the stable identifier of an engine's compatibility that
//! keys compiled code, and the thread that advances the epoch.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::HostConfig;

/// How often the epoch advances (the wall-clock backstop's resolution).
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(5);
/// Bytes of each pooled memory and table that may stay resident between
/// instances (reset in place).
const KEEP_RESIDENT: usize = 8 << 20;
/// Freed instance slots whose memory is decommitted together.
const DECOMMIT_BATCH: usize = 16;

/// The engine configuration of every docket host: fuel, epochs, NaN
/// canonicalization (determinism) and the pooling allocator. Compiled code
/// is only usable by engines built from the same configuration, so
/// precompilation for other targets starts from this too.
pub(crate) fn engine_config(config: &HostConfig) -> Config {
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
pub(crate) fn engine_id(engine: &Engine) -> String {
    let mut hasher = StableHasher(sha2::Sha256::default());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

/// Advances the engine's epoch in the background; stops when dropped.
pub(crate) struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    pub(crate) fn start(engine: Engine) -> Self {
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
