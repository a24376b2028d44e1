//! The compiled-code cache: components compiled once and kept on disk,
//! keyed by the component's digest and the engine's identifier, and
//! deserialized only from bytes docket produced and verified (fresh, read
//! back against the digest recorded when written, shipped beside the binary
//! against the digest shipped with it, or published with the plugin against
//! its manifest).

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use wasmtime::component::Component;

use crate::engine::{engine_id, host_target};
use crate::{HostInner, digest};

/// Where compiled code for the component with `digest` on `target` is
/// shipped in `dir`: `<hex>.<target>.cwasm`, its SHA-256 digest beside it
/// in `<hex>.<target>.cwasm.sha256` (the names published code has).
/// `infra/build` writes the bundled evaluators' code for the functions'
/// target into each Lambda package this way.
pub fn shipped_code_path(dir: &Path, digest: &str, target: &str) -> PathBuf {
    dir.join(format!(
        "{}.{target}.cwasm",
        digest.trim_start_matches("sha256:")
    ))
}

/// Where compiled code offered to the cache comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Offered {
    /// Published with the plugin (checked against its manifest).
    Published,
    /// Shipped beside the binary (checked against the digest beside it).
    Shipped,
}

impl std::fmt::Display for Offered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Published => "published",
            Self::Shipped => "shipped",
        })
    }
}

/// The digest file recorded beside a compiled artifact.
pub fn recorded_digest_path(artifact: &Path) -> PathBuf {
    let mut name = artifact.as_os_str().to_owned();
    name.push(".sha256");
    PathBuf::from(name)
}

impl HostInner {
    /// Compiles `bytes`, going through the on-disk cache when there is one.
    /// `published` is compiled code from the plugin's publication (its
    /// digest already checked against the manifest); without it, code
    /// shipped for this target is looked for. Either is used when this
    /// engine accepts it, otherwise the component is recompiled and the
    /// event logged.
    pub(crate) fn compile(
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
            dir.join(format!("{stem}.cwasm"))
        });
        if let Some(artifact) = &cache
            && let Some(component) = self.load_cached(artifact)
        {
            return Ok(component);
        }
        let shipped = match (published, &self.config.shipped_code) {
            (None, Some(dir)) => {
                read_verified(&shipped_code_path(dir, digest_of_bytes, &host_target()))
            }
            _ => None,
        };
        let offered = published
            .map(|compiled| (Offered::Published, compiled))
            .or(shipped
                .as_deref()
                .map(|compiled| (Offered::Shipped, compiled)));
        let usable = offered.and_then(|(from, compiled)| match self.deserialize_verified(compiled) {
            // Shipped code is on disk already: copying it into the cache
            // would only cost a write per new container.
            Ok(component) => Some((component, (from == Offered::Published).then(|| compiled.to_vec()))),
            Err(e) => {
                tracing::warn!(plugin = %digest_of_bytes, engine = %engine_id(&self.engine), error = %e, "{from} compiled code does not match this engine; recompiling");
                None
            }
        });
        let (component, to_cache) = match usable {
            Some(found) => found,
            None => {
                let started = std::time::Instant::now();
                let compiled = self.engine.precompile_component(bytes)?;
                self.compilations.fetch_add(1, Ordering::Relaxed);
                tracing::info!(plugin = %digest_of_bytes, ms = started.elapsed().as_millis() as u64, "component compiled");
                (self.deserialize_verified(&compiled)?, Some(compiled))
            }
        };
        if let (Some(artifact), Some(compiled)) = (&cache, to_cache) {
            write_atomically(artifact, &compiled);
            write_atomically(
                &recorded_digest_path(artifact),
                digest(&compiled).as_bytes(),
            );
        }
        Ok(component)
    }

    /// The cached artifact, if it exists and its digest is the one docket
    /// recorded when it wrote it.
    fn load_cached(&self, artifact: &Path) -> Option<Component> {
        let compiled = read_verified(artifact)?;
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
        // and checked against the digest recorded when it was written,
        // shipped beside the binary by docket's build with its digest, or
        // published with the plugin and checked against the digest in its
        // manifest. wasmtime additionally checks the compatibility header.
        unsafe { Component::deserialize(&self.engine, compiled) }
    }
}

/// The compiled artifact at `artifact`, if it exists and its digest is the
/// one recorded beside it.
fn read_verified(artifact: &Path) -> Option<Vec<u8>> {
    let expected = std::fs::read_to_string(recorded_digest_path(artifact)).ok()?;
    let compiled = std::fs::read(artifact).ok()?;
    if digest(&compiled) != expected.trim() {
        tracing::warn!(artifact = %artifact.display(), "compiled plugin does not match its recorded digest; recompiling");
        return None;
    }
    Some(compiled)
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
pub(crate) fn check_header(bytes: &[u8]) -> Result<(), String> {
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
