//! Published evaluators: a plugin's manifest (identity, digest, limits,
//! config schema, imports, precompiled artifacts), where its files live in
//! the blob store, and how a job's `name` or `name@version` is resolved to
//! one exact, pinned version.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::EvaluatorRef;
use crate::{Failure, FailureCategory};

/// The WIT world docket evaluators are built against: 0.2.0 adds
/// `combine-summaries` (summaries folded in bounded groups) to 0.1.0.
pub const WORLD: &str = "docket:evaluator/evaluator@0.2.0";

/// Every world docket runs, newest first: components of 0.1.0 keep working
/// (their summary only while a job fits one call).
pub const WORLDS: [&str; 2] = [WORLD, "docket:evaluator/evaluator@0.1.0"];

/// The languages docket builds and budgets evaluators for.
pub const LANGUAGES: &[&str] = &["rust", "python", "js"];

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

    /// These limits with the fields `changes` (a JSON object of some of
    /// them, as `--limits` gives) replaced; the others are kept.
    ///
    /// # Errors
    /// When `changes` is not an object, names a field [`Limits`] does not
    /// have, or gives one a value that is not a whole number.
    pub fn with_changes(self, changes: &serde_json::Value) -> Result<Self, serde_json::Error> {
        let Some(changes) = changes.as_object() else {
            return Err(serde::de::Error::custom(
                "limits must be a JSON object of some of fuel_base, fuel_per_kib, memory_bytes, max_input_bytes, max_output_bytes and timeout_ms",
            ));
        };
        let mut merged = serde_json::to_value(self)?;
        if let Some(merged) = merged.as_object_mut() {
            merged.extend(changes.clone());
        }
        serde_json::from_value(merged)
    }

    /// Default limits for a guest written in `language`. Interpreted guests
    /// run an interpreter inside the sandbox: for the same `wordstats`,
    /// Python used ~5.8 M fuel per KiB and JavaScript ~14 M, against
    /// ~0.23 M for Rust (docs/plugins.md). Their budgets keep the same
    /// ~10× headroom over those figures, and a larger heap.
    pub fn for_language(language: &str) -> Self {
        let compiled = Self::default();
        match language {
            "python" => Self {
                fuel_base: 200_000_000,
                fuel_per_kib: 60_000_000,
                memory_bytes: 128 << 20,
                timeout_ms: 30_000,
                ..compiled
            },
            "js" => Self {
                fuel_base: 200_000_000,
                fuel_per_kib: 150_000_000,
                memory_bytes: 128 << 20,
                timeout_ms: 30_000,
                ..compiled
            },
            _ => compiled,
        }
    }
}

/// Compiled code for one target, produced at publish time so processors on
/// that architecture skip compilation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Precompiled {
    /// Target triple, e.g. `aarch64-unknown-linux-gnu`.
    pub target: String,
    /// The engine configuration it was compiled for (a processor whose
    /// engine differs recompiles from the component).
    pub engine: String,
    /// `sha256:<hex>` of the artifact's bytes.
    pub sha256: String,
    /// Its key in the blob store.
    pub key: String,
}

/// Everything docket knows about a plugin besides its bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Name, e.g. `decalogo`.
    pub name: String,
    /// Exact version (semver), e.g. `0.1.0`.
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
    /// The interfaces the component imports (recorded at publish).
    #[serde(default)]
    pub imports: Vec<String>,
    /// Compiled code per target (published plugins only).
    #[serde(default)]
    pub precompiled: Vec<Precompiled>,
    /// When it was published (published plugins only).
    #[serde(default)]
    pub published_at: Option<DateTime<Utc>>,
}

impl Manifest {
    /// The pinned reference of this version: name, version and digest.
    pub fn reference(&self) -> EvaluatorRef {
        EvaluatorRef {
            name: self.name.clone(),
            version: self.version.clone(),
            digest: self.sha256.clone(),
        }
    }

    /// A manifest for a component's `bytes` with the default limits of
    /// the language it says it was written in ([`component_language`];
    /// Rust's when it says none).
    pub fn for_component(name: &str, version: &str, bytes: &[u8]) -> Self {
        let language = component_language(bytes).unwrap_or("rust");
        Self::for_language(name, version, language, bytes)
    }

    /// A manifest for a component written in `language`, with that
    /// language's default limits.
    pub fn for_language(name: &str, version: &str, language: &str, bytes: &[u8]) -> Self {
        Self {
            name: name.to_owned(),
            version: version.to_owned(),
            sha256: digest(bytes),
            world: WORLD.to_owned(),
            language: language.to_owned(),
            limits: Limits::for_language(language),
            config_schema: serde_json::Value::Null,
            imports: Vec::new(),
            precompiled: Vec::new(),
            published_at: None,
        }
    }

    /// Where this version's files live in the blob store.
    pub fn prefix(&self) -> String {
        plugin_prefix(&self.name, &self.version)
    }

    /// The component's key in the blob store: named by its digest, so a
    /// publisher racing with other bytes for the same version can never
    /// overwrite the component the registry points at.
    pub fn component_key(&self) -> String {
        format!(
            "{}{}.wasm",
            self.prefix(),
            self.sha256.trim_start_matches("sha256:")
        )
    }

    /// The manifest's own key in the blob store.
    pub fn manifest_key(&self) -> String {
        format!("{}manifest.json", self.prefix())
    }
}

/// Orders manifests by name, then version (oldest first, semver order).
pub fn sort_manifests(manifests: &mut [Manifest]) {
    manifests.sort_by(|a, b| {
        a.name.cmp(&b.name).then_with(|| {
            semver::Version::parse(&a.version)
                .ok()
                .cmp(&semver::Version::parse(&b.version).ok())
        })
    });
}

/// `plugins/<name>/<version>/`.
pub fn plugin_prefix(name: &str, version: &str) -> String {
    format!("plugins/{name}/{version}/")
}

/// `sha256:<hex>` of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for byte in Sha256::digest(bytes) {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// Checks a plugin name and version before anything is stored under them:
/// names are lowercase letters, digits and `-` (they become blob keys and
/// job fields), versions are semver.
///
/// # Errors
/// A message saying what is wrong.
pub fn check_identity(name: &str, version: &str) -> Result<(), String> {
    let valid_name = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid_name {
        return Err(format!(
            "plugin name {name:?}: use 1-64 lowercase letters, digits and '-', starting with a letter"
        ));
    }
    semver::Version::parse(version)
        .map(|_| ())
        .map_err(|e| format!("plugin version {version:?} is not semver: {e}"))
}

/// What a job asks for: a name and, optionally, a version or a semver
/// range (`decalogo`, `decalogo@0.1.0`, `decalogo@^1.2`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginSpec {
    /// The plugin's name.
    pub name: String,
    /// What versions qualify.
    pub version: VersionSpec,
}

/// The version part of a [`PluginSpec`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionSpec {
    /// The newest version.
    Latest,
    /// Exactly this version (`name@1.2.3` means 1.2.3, not `^1.2.3`).
    Exact(semver::Version),
    /// The newest version in the range.
    Range(semver::VersionReq),
}

impl fmt::Display for PluginSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.version {
            VersionSpec::Latest => write!(f, "{}", self.name),
            VersionSpec::Exact(v) => write!(f, "{}@{v}", self.name),
            VersionSpec::Range(r) => write!(f, "{}@{r}", self.name),
        }
    }
}

impl PluginSpec {
    /// Parses `name`, `name@version` or `name@range`.
    ///
    /// # Errors
    /// A `Configuration` failure naming what does not parse.
    pub fn parse(spec: &str) -> Result<Self, Failure> {
        let (name, version) = match spec.split_once('@') {
            Some((name, version)) => (name.trim(), Some(version.trim())),
            None => (spec.trim(), None),
        };
        if name.is_empty() {
            return Err(Failure::new(
                FailureCategory::Configuration,
                format!("evaluator {spec:?}: no name"),
            ));
        }
        let version = match version {
            None | Some("" | "latest" | "*") => VersionSpec::Latest,
            Some(text) => match semver::Version::parse(text) {
                Ok(exact) => VersionSpec::Exact(exact),
                Err(_) => VersionSpec::Range(semver::VersionReq::parse(text).map_err(|e| {
                    Failure::new(
                        FailureCategory::Configuration,
                        format!(
                            "evaluator {spec:?}: {text:?} is neither a version nor a range: {e}"
                        ),
                    )
                })?),
            },
        };
        Ok(Self {
            name: name.to_owned(),
            version,
        })
    }

    /// The newest of `versions` this spec accepts (versions that are not
    /// semver are skipped). Without a version, the newest release wins over
    /// pre-releases; a pre-release is picked only when there is nothing else.
    pub fn select<'a>(&self, versions: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
        let accepted: Vec<(semver::Version, &str)> = versions
            .into_iter()
            .filter_map(|text| semver::Version::parse(text).ok().map(|v| (v, text)))
            .filter(|(v, _)| match &self.version {
                VersionSpec::Latest => true,
                VersionSpec::Exact(exact) => v == exact,
                VersionSpec::Range(range) => range.matches(v),
            })
            .collect();
        let newest = |releases_only: bool| {
            accepted
                .iter()
                .filter(|(v, _)| !releases_only || v.pre.is_empty())
                .max_by(|a, b| a.0.cmp(&b.0))
                .map(|(_, text)| *text)
        };
        newest(self.version == VersionSpec::Latest).or_else(|| newest(false))
    }
}

/// Resolves `spec` among `known` evaluator versions (of any names) to the
/// one it pins.
///
/// # Errors
/// A `Configuration` failure naming the unknown evaluator, or the versions
/// there are when none matches.
pub fn resolve_among(spec: &str, known: &[EvaluatorRef]) -> Result<EvaluatorRef, Failure> {
    let wanted = PluginSpec::parse(spec)?;
    let versions: Vec<&EvaluatorRef> = known.iter().filter(|r| r.name == wanted.name).collect();
    if versions.is_empty() {
        let mut names: Vec<&str> = known.iter().map(|r| r.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        return Err(Failure::new(
            FailureCategory::Configuration,
            format!(
                "unknown evaluator {:?} (known: {})",
                wanted.name,
                names.join(", ")
            ),
        ));
    }
    let picked = wanted.select(versions.iter().map(|r| r.version.as_str()));
    match picked.and_then(|v| versions.iter().find(|r| r.version == v)) {
        Some(found) => Ok((*found).clone()),
        None => {
            let mut listed: Vec<&str> = versions.iter().map(|r| r.version.as_str()).collect();
            listed.sort_by_key(|v| semver::Version::parse(v).ok());
            listed.dedup();
            let missing = match &wanted.version {
                VersionSpec::Exact(v) => format!("no version {v}"),
                VersionSpec::Range(r) => format!("no version matching {r}"),
                VersionSpec::Latest => "no usable version".to_owned(),
            };
            Err(Failure::new(
                FailureCategory::Configuration,
                format!(
                    "evaluator {} has {missing} (known: {})",
                    wanted.name,
                    listed.join(", ")
                ),
            ))
        }
    }
}

/// The language a component was written in, from what its toolchain left
/// in it (in the component or the core modules and components inside it):
/// `python` when it holds CPython (a core module named `libpython3…` or
/// componentize-py's runtime, by their `name` sections), `js` when its
/// `producers` section names ComponentizeJS or the JavaScript language,
/// `rust` when rustc or wit-bindgen-rust made it; `None` when nothing
/// says (or the bytes are not WebAssembly). The interpreters come first:
/// their components hold code rustc compiled too.
pub fn component_language(bytes: &[u8]) -> Option<&'static str> {
    let mut names = Vec::new();
    producers(bytes, 0, &mut names);
    let any = |test: &dyn Fn(&str) -> bool| names.iter().any(|n| test(n));
    if any(&|n| n.starts_with("libpython3") || n.starts_with("componentize_py")) {
        Some("python")
    } else if any(&|n| n == "JavaScript" || n.eq_ignore_ascii_case("componentizejs")) {
        Some("js")
    } else if any(&|n| matches!(n, "rustc" | "Rust" | "wit-bindgen-rust")) {
        Some("rust")
    } else {
        None
    }
}

/// Collects the tools and languages listed in the `producers` sections,
/// and the module names of the `name` sections, of the module or
/// component `bytes` and of those nested in it (to a depth of 8).
fn producers(bytes: &[u8], depth: u32, names: &mut Vec<String>) {
    let Some(mut rest) = bytes.strip_prefix(b"\0asm").and_then(|b| b.get(4..)) else {
        return;
    };
    let component = bytes.get(4..8) == Some(&[0x0d, 0x00, 0x01, 0x00][..]);
    while let Some((&id, after)) = rest.split_first() {
        let Some((size, after)) = leb_u32(after) else {
            return;
        };
        let Some((section, after)) = after.split_at_checked(size as usize) else {
            return;
        };
        rest = after;
        match id {
            0 => match name(section) {
                Some((b"producers", payload)) => producer_names(payload, names),
                Some((b"name", payload)) => module_name(payload, names),
                _ => {}
            },
            // A component's core module (1) and nested component (4).
            1 | 4 if component && depth < 8 => producers(section, depth + 1, names),
            _ => {}
        }
    }
}

/// The field values of a `producers` section: `(field, [(name, version)])`.
fn producer_names(mut payload: &[u8], names: &mut Vec<String>) {
    let Some((fields, after)) = leb_u32(payload) else {
        return;
    };
    payload = after;
    for _ in 0..fields {
        let Some((_field, after)) = name(payload) else {
            return;
        };
        let Some((values, mut after)) = leb_u32(after) else {
            return;
        };
        for _ in 0..values {
            let Some((value, rest)) = name(after) else {
                return;
            };
            let Some((_version, rest)) = name(rest) else {
                return;
            };
            names.push(String::from_utf8_lossy(value).into_owned());
            after = rest;
        }
        payload = after;
    }
}

/// The module name of a `name` section (its subsection 0), if it has one.
fn module_name(mut payload: &[u8], names: &mut Vec<String>) {
    while let Some((&id, after)) = payload.split_first() {
        let Some((size, after)) = leb_u32(after) else {
            return;
        };
        let Some((subsection, after)) = after.split_at_checked(size as usize) else {
            return;
        };
        if id == 0 {
            if let Some((module, _)) = name(subsection) {
                names.push(String::from_utf8_lossy(module).into_owned());
            }
            return;
        }
        payload = after;
    }
}

/// A length-prefixed name and what follows it.
fn name(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = leb_u32(bytes)?;
    rest.split_at_checked(len as usize)
}

/// An unsigned LEB128 `u32` and what follows it.
fn leb_u32(bytes: &[u8]) -> Option<(u32, &[u8])> {
    let mut value: u32 = 0;
    for (n, byte) in bytes.iter().enumerate().take(5) {
        value |= u32::from(byte & 0x7f) << (7 * n);
        if byte & 0x80 == 0 {
            return Some((value, &bytes[n + 1..]));
        }
    }
    None
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

    #[test]
    fn interpreted_languages_get_larger_budgets() {
        let rust = Limits::for_language("rust");
        assert_eq!(rust, Limits::default());
        for language in ["python", "js"] {
            let interpreted = Limits::for_language(language);
            assert!(interpreted.fuel_base > rust.fuel_base * 5, "{language}");
            assert!(interpreted.memory_bytes > rust.memory_bytes, "{language}");
        }
    }

    #[test]
    fn specs_pin_exact_versions_and_pick_the_newest_in_a_range() {
        let versions = [
            "0.9.1",
            "0.10.0",
            "1.0.0",
            "1.2.0",
            "2.0.0-rc.1",
            "not-semver",
        ];
        let pick = |spec: &str| {
            PluginSpec::parse(spec)
                .unwrap()
                .select(versions)
                .map(str::to_owned)
        };
        assert_eq!(pick("p").as_deref(), Some("1.2.0"));
        assert_eq!(pick("p@>=2.0.0-rc.0").as_deref(), Some("2.0.0-rc.1"));
        let only_local = PluginSpec::parse("p").unwrap().select(["0.0.0-local"]);
        assert_eq!(only_local, Some("0.0.0-local"));
        assert_eq!(pick("p@1.0.0").as_deref(), Some("1.0.0"));
        assert_eq!(pick("p@^1").as_deref(), Some("1.2.0"));
        assert_eq!(pick("p@<0.10").as_deref(), Some("0.9.1"));
        assert_eq!(pick("p@0.10.0").as_deref(), Some("0.10.0"));
        assert_eq!(pick("p@3.0.0"), None);
        assert_eq!(PluginSpec::parse("p@^1").unwrap().to_string(), "p@^1");
        let error = PluginSpec::parse("p@one").unwrap_err();
        assert_eq!(error.category, FailureCategory::Configuration);
        assert!(
            error.message.contains("neither a version nor a range"),
            "{}",
            error.message
        );
    }

    /// `text` as a length-prefixed name (short ones only).
    fn name(text: &[u8]) -> Vec<u8> {
        let mut out = vec![text.len() as u8];
        out.extend_from_slice(text);
        out
    }

    /// `header` followed by one section `id` holding `content`.
    fn with_section(header: &[u8], id: u8, content: &[u8]) -> Vec<u8> {
        let mut bytes = header.to_vec();
        bytes.push(id);
        bytes.push(content.len() as u8);
        bytes.extend_from_slice(content);
        bytes
    }

    const MODULE: &[u8] = b"\0asm\x01\0\0\0";

    /// A module with a `producers` section listing `processed-by` tools.
    fn module_processed_by(tools: &[&str]) -> Vec<u8> {
        let mut section = name(b"producers");
        section.push(1);
        section.extend(name(b"processed-by"));
        section.push(tools.len() as u8);
        for tool in tools {
            section.extend(name(tool.as_bytes()));
            section.extend(name(b"1.0"));
        }
        with_section(MODULE, 0, &section)
    }

    /// A module whose `name` section names it `module`.
    fn module_named(module: &str) -> Vec<u8> {
        let mut section = name(b"name");
        let subsection = name(module.as_bytes());
        section.push(0);
        section.push(subsection.len() as u8);
        section.extend(subsection);
        with_section(MODULE, 0, &section)
    }

    #[test]
    fn a_component_s_language_is_read_from_its_producers() {
        let rust = module_processed_by(&["rustc", "wit-component"]);
        assert_eq!(component_language(&rust), Some("rust"));
        assert_eq!(component_language(b"not wasm"), None);
        assert_eq!(component_language(&module_processed_by(&["clang"])), None);
        // A component holding modules: the interpreter's tool decides,
        // though rustc made part of it.
        let inner = module_named("libpython3.14.so");
        let component = with_section(b"\0asm\x0d\0\x01\0", 1, &inner);
        assert_eq!(component_language(&component), Some("python"));
        let js = module_processed_by(&["wit-component", "ComponentizeJS"]);
        assert_eq!(component_language(&js), Some("js"));
        assert_eq!(
            Manifest::for_component("p", "1.0.0", &component).language,
            "python"
        );
        assert_eq!(
            Manifest::for_component("p", "1.0.0", &component).limits,
            Limits::for_language("python")
        );
    }

    #[test]
    fn limits_changes_replace_only_the_fields_given() {
        let python = Limits::for_language("python");
        let changed = python
            .with_changes(&serde_json::json!({"fuel_base": 400_000_000}))
            .unwrap();
        assert_eq!(
            changed,
            Limits {
                fuel_base: 400_000_000,
                ..python
            }
        );
        let unknown = python
            .with_changes(&serde_json::json!({"fuel": 1}))
            .unwrap_err()
            .to_string();
        assert!(
            unknown.starts_with("unknown field `fuel`, expected one of `fuel_base`"),
            "{unknown}"
        );
        let not_a_number = python
            .with_changes(&serde_json::json!({"timeout_ms": "soon"}))
            .unwrap_err()
            .to_string();
        assert!(not_a_number.contains("expected u64"), "{not_a_number}");
        let not_an_object = python.with_changes(&serde_json::json!([1])).unwrap_err();
        assert!(
            not_an_object
                .to_string()
                .starts_with("limits must be a JSON object")
        );
    }

    #[test]
    fn names_and_versions_are_checked_before_use_as_keys() {
        assert!(check_identity("word-stats2", "1.0.0").is_ok());
        assert!(
            check_identity("Word", "1.0.0")
                .unwrap_err()
                .contains("lowercase")
        );
        assert!(check_identity("../x", "1.0.0").is_err());
        assert!(check_identity("ok", "1.0").unwrap_err().contains("semver"));
    }
}
