//! A plugin's manifest: identity, digest, limits and config schema.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The WIT world every docket evaluator targets.
pub const WORLD: &str = "docket:evaluator/evaluator@0.1.0";

/// Hard limits applied to every call into a plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Fuel every call starts with (instantiation and set-up included).
    pub fuel_base: u64,
    /// Extra fuel per KiB of input: large documents get a proportional budget.
    pub fuel_per_kib: u64,
    /// Largest linear memory a call may reach, in bytes.
    pub memory_bytes: u64,
    /// Largest input (document text, or merged evaluations) in bytes.
    pub max_input_bytes: u64,
    /// Largest output (the evaluation's strings and data) in bytes.
    pub max_output_bytes: u64,
    /// Wall-clock backstop per call, in milliseconds (fuel is the budget
    /// that decides; this only stops a call the fuel budget let run away).
    pub timeout_ms: u64,
}

impl Default for Limits {
    /// Budgets for compiled (Rust-like) guests: 20 M fuel + 2 M per KiB is
    /// about a second of work for a 100 KiB document, far above what the
    /// bundled evaluators use (see docs/benchmarks.md).
    fn default() -> Self {
        Self {
            fuel_base: 20_000_000,
            fuel_per_kib: 2_000_000,
            memory_bytes: 64 << 20,
            max_input_bytes: 4 << 20,
            max_output_bytes: 1 << 20,
            timeout_ms: 10_000,
        }
    }
}

impl Limits {
    /// The fuel budget for `input_bytes` of input.
    pub fn fuel_for(&self, input_bytes: u64) -> u64 {
        let kib = input_bytes.div_ceil(1024);
        self.fuel_base
            .saturating_add(self.fuel_per_kib.saturating_mul(kib))
    }
}

/// Everything docket knows about a plugin besides its bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Name, e.g. `decalogo`.
    pub name: String,
    /// Exact version, e.g. `0.1.0`.
    pub version: String,
    /// `sha256:<hex>` of the component's bytes.
    pub sha256: String,
    /// The WIT world it targets.
    pub world: String,
    /// The language it was written in (sets default budgets).
    pub language: String,
    /// Limits of every call.
    pub limits: Limits,
    /// JSON Schema of its configuration, when it publishes one.
    #[serde(default)]
    pub config_schema: serde_json::Value,
}

impl Manifest {
    /// A manifest for a component's `bytes` with default limits.
    pub fn for_component(name: &str, version: &str, bytes: &[u8]) -> Self {
        Self {
            name: name.to_owned(),
            version: version.to_owned(),
            sha256: digest(bytes),
            world: WORLD.to_owned(),
            language: "rust".to_owned(),
            limits: Limits::default(),
            config_schema: serde_json::Value::Null,
        }
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuel_grows_per_started_kib() {
        let limits = Limits {
            fuel_base: 100,
            fuel_per_kib: 10,
            ..Limits::default()
        };
        assert_eq!(limits.fuel_for(0), 100);
        assert_eq!(limits.fuel_for(1), 110);
        assert_eq!(limits.fuel_for(1024), 110);
        assert_eq!(limits.fuel_for(1025), 120);
    }

    #[test]
    fn digest_is_prefixed_hex_sha256() {
        assert_eq!(
            digest(b"abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
