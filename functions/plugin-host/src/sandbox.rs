//! The sandbox every call runs in: a fresh `Store` with WASI denied
//! everything (no files, sockets or environment, a frozen clock,
//! deterministic randomness), a memory limiter, fuel and an epoch deadline,
//! and the categorized failures a call that breaks a limit or traps ends in.

use std::time::{Duration, Instant};

use docket_core::ports::Usage;
use docket_core::{Failure, FailureCategory};
use wasmtime::component::ResourceTable;
use wasmtime::{Store, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::engine::EPOCH_TICK;
use crate::{HostInner, Limits, LoadedPlugin, bindings};

/// How much of a plugin's stderr is kept (for panic messages).
const STDERR_CAPTURE: usize = 16 * 1024;

/// Per-store state: WASI (denied everything), the memory limiter and the
/// captured stderr.
pub(crate) struct StoreState {
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

impl HostInner {
    /// A store with WASI denied everything, the memory limiter and a
    /// captured stderr.
    pub(crate) fn new_store(&self, limits: &Limits) -> (Store<StoreState>, MemoryOutputPipe) {
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
    pub(crate) fn arm(
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

    /// Runs `call` on a fresh instance of `plugin` under its limits.
    pub(crate) fn with_instance<R>(
        &self,
        plugin: &LoadedPlugin,
        input_bytes: u64,
        deadline: Option<Instant>,
        call: impl FnOnce(&mut Store<StoreState>, &bindings::Evaluator) -> wasmtime::Result<R>,
    ) -> Result<(R, Usage), Failure> {
        self.in_sandbox(plugin, input_bytes, deadline, |store| {
            let instance = plugin.pre.instantiate(&mut *store)?;
            call(store, &instance)
        })
    }

    /// Runs `run` (which instantiates `plugin` in the store it is given)
    /// under the plugin's limits: input size, fuel, memory, time.
    pub(crate) fn in_sandbox<R>(
        &self,
        plugin: &LoadedPlugin,
        input_bytes: u64,
        deadline: Option<Instant>,
        run: impl FnOnce(&mut Store<StoreState>) -> wasmtime::Result<R>,
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
        let result = setup.and_then(|()| run(&mut store));
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

/// The panic message a Rust guest printed to stderr, if any.
fn panic_message(stderr: &str) -> Option<String> {
    let (_, after) = stderr.split_once("panicked at ")?;
    let message = after.split_once(":\n").map_or(after, |(_, m)| m);
    let message = message.split("\nnote:").next().unwrap_or(message);
    Some(message.trim().to_owned())
}

/// The innermost named functions of a trap's backtrace, innermost first
/// (`f ← g ← h`): where the plugin was when it trapped.
fn last_frames(error: &wasmtime::Error) -> Option<String> {
    let backtrace = error.downcast_ref::<wasmtime::WasmBacktrace>()?;
    let names: Vec<&str> = backtrace
        .frames()
        .iter()
        .filter_map(wasmtime::FrameInfo::func_name)
        .take(LAST_FRAMES)
        .collect();
    (!names.is_empty()).then(|| names.join(" ← "))
}

/// How many frames a trap's message names.
const LAST_FRAMES: usize = 4;

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
            None => {
                let mut message = format!("plugin trapped: {trap}");
                if let Some(frames) = last_frames(error) {
                    message.push_str(&format!(" in {frames}"));
                }
                if !stderr_text.trim().is_empty() {
                    message.push_str(&format!("; stderr: {}", stderr_text.trim()));
                }
                permanent(message)
            }
        },
        None => permanent(format!("plugin failed: {error:#}")),
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
}
