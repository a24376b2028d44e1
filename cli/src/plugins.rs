//! `docket plugin publish / list / show / test`: the plugin author's side.
//! Publishing and listing work against the embedded backend's state
//! directory or an AWS deployment (its resource prefix); `test` runs a
//! component with the same host and limits as production.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use docket_core::chunking::PAGE_SEPARATOR;
use docket_core::model::{ChunkInfo, DocumentBody, DocumentSpec};
use docket_core::pipeline::IntakeDocument;
use docket_core::plugin::{Limits, Manifest, WORLD, component_language};
use docket_core::ports::{
    ApiKeyStore, BlobStore, DocumentView, PluginRegistry, Usage, WebhookSecrets,
};
use docket_plugin_host::{Catalog, HostConfig, PluginHost, PublishRequest, recorded_digest_path};
use serde_json::{Value, json};

/// Where published plugins (and API keys) live.
#[derive(Debug, Clone)]
pub enum Deployment {
    /// The embedded backend's state directory.
    Local(PathBuf),
    /// An AWS deployment's resource prefix (region, credentials and
    /// `AWS_ENDPOINT_URL` from the environment).
    Aws(String),
}

/// The stores of a deployment the `docket keys` and `docket plugin`
/// commands write to.
pub struct Stores {
    /// API keys.
    pub keys: Arc<dyn ApiKeyStore>,
    /// Tenants' webhook secrets.
    pub secrets: Arc<dyn WebhookSecrets>,
    /// Published plugins.
    pub registry: Arc<dyn PluginRegistry>,
    /// The plugins' files.
    pub blobs: Arc<dyn BlobStore>,
}

impl Stores {
    fn of<S>(store: Arc<S>, blobs: Arc<dyn BlobStore>) -> Self
    where
        S: ApiKeyStore + WebhookSecrets + PluginRegistry + 'static,
    {
        Self {
            keys: store.clone(),
            secrets: store.clone(),
            registry: store,
            blobs,
        }
    }
}

impl Deployment {
    /// The deployment's stores.
    ///
    /// # Errors
    /// When the state directory cannot be opened or the AWS resources are
    /// not reachable.
    pub async fn open(&self) -> anyhow::Result<Stores> {
        match self {
            Self::Local(state) => {
                let backend =
                    docket_local::LocalBackend::open(state, docket_local::LocalOptions::default())
                        .with_context(|| {
                            format!("opening the state directory {}", state.display())
                        })?;
                Ok(Stores::of(backend.store, backend.blobs))
            }
            Self::Aws(prefix) => {
                let backend = docket_aws::AwsBackend::connect(&docket_aws::Names::new(prefix))
                    .await
                    .with_context(|| format!("connecting to the deployment {prefix:?}"))?;
                Ok(Stores::of(backend.store, backend.blobs))
            }
        }
    }

    /// A catalog over the deployment with the bundled evaluators loaded
    /// (compiled code cached in the state directory, or in the system's
    /// temporary directory for a deployment, as `docket run` does).
    ///
    /// # Errors
    /// As [`Deployment::open`], or when the engine cannot start.
    pub async fn catalog(&self) -> anyhow::Result<Catalog> {
        let stores = self.open().await?;
        let state = match self {
            Self::Local(state) => state.clone(),
            Self::Aws(_) => std::env::temp_dir().join("docket"),
        };
        let host = crate::local_run::plugin_host(&state, 1)?;
        Ok(Catalog::new(host, stores.registry, stores.blobs))
    }
}

/// What `docket plugin publish` was asked.
#[derive(Debug, Clone)]
pub struct Publish {
    /// The component file.
    pub component: PathBuf,
    /// The plugin's name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// `rust`, `python` or `js`; read from the component when `None`
    /// (Rust when it does not say).
    pub language: Option<String>,
    /// A JSON file of [`Limits`] replacing the language's defaults.
    pub limits: Option<PathBuf>,
    /// A JSON Schema file of its configuration.
    pub config_schema: Option<PathBuf>,
    /// Interface prefixes to refuse besides sockets and HTTP.
    pub deny: Vec<String>,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> anyhow::Result<T> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the {what} {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("the {what} {}", path.display()))
}

/// The limits a `--limits` file gives: its fields over `language`'s
/// defaults (`None` without a file).
fn limits_file(language: &str, path: Option<&Path>) -> anyhow::Result<Option<Limits>> {
    let Some(path) = path else {
        return Ok(None);
    };
    let changes: Value = read_json(path, "limits file")?;
    let limits = Limits::for_language(language)
        .with_changes(&changes)
        .with_context(|| format!("the limits file {}", path.display()))?;
    Ok(Some(limits))
}

/// Publishes a component and returns its registered manifest.
///
/// # Errors
/// What was refused (invalid component, denied imports, a version that
/// exists with other bytes) or what failed.
pub async fn publish(deployment: &Deployment, request: &Publish) -> anyhow::Result<Manifest> {
    let bytes = std::fs::read(&request.component)
        .with_context(|| format!("reading {}", request.component.display()))?;
    let language = request
        .language
        .clone()
        .unwrap_or_else(|| component_language(&bytes).unwrap_or("rust").to_owned());
    let limits = limits_file(&language, request.limits.as_deref())?;
    let config_schema = match &request.config_schema {
        Some(path) => read_json(path, "config schema")?,
        None => Value::Null,
    };
    let catalog = deployment.catalog().await?;
    let manifest = catalog
        .publish(
            PublishRequest {
                name: request.name.clone(),
                version: request.version.clone(),
                language,
                limits,
                config_schema,
                deny: request.deny.clone(),
            },
            bytes,
        )
        .await?;
    Ok(manifest)
}

/// The lines `docket plugin list` prints.
pub fn list_lines(manifests: &[Manifest]) -> Vec<String> {
    let mut lines = vec![format!(
        "{:<20} {:<12} {:<8} {:<20} {}",
        "NAME", "VERSION", "LANGUAGE", "PUBLISHED", "DIGEST"
    )];
    for m in manifests {
        lines.push(format!(
            "{:<20} {:<12} {:<8} {:<20} {}",
            m.name,
            m.version,
            m.language,
            m.published_at
                .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_default(),
            m.sha256
        ));
    }
    lines
}

/// What `docket plugin test` was asked.
#[derive(Debug, Clone)]
pub struct TestRequest {
    /// A component file, or a plugin project directory (its newest built
    /// component is used).
    pub component: PathBuf,
    /// Documents to evaluate (files or directories, as `docket run` reads
    /// them); the project's `testdata/` when none are given.
    pub documents: Vec<PathBuf>,
    /// The evaluator configuration.
    pub config: Value,
    /// `rust`, `python` or `js` (limits); guessed from the project when absent.
    pub language: Option<String>,
    /// JSON file of limits over the language's defaults.
    pub limits: Option<PathBuf>,
    /// Directory of expected outputs (`<document id>.json`).
    pub golden: Option<PathBuf>,
    /// Write the outputs into `golden` instead of comparing.
    pub bless: bool,
}

/// One document's run under `docket plugin test`.
#[derive(Debug)]
pub struct TestRun {
    /// The document's id.
    pub id: String,
    /// The evaluation (or the failure) as JSON.
    pub output: Value,
    /// What it cost.
    pub usage: Option<Usage>,
    /// The golden comparison: `None` when not compared, otherwise the
    /// differing lines (empty when equal).
    pub diff: Option<Vec<String>>,
}

/// Where `docket plugin test` keeps compiled code between runs, so a
/// component is compiled once per build, not once per test:
/// `$DOCKET_CACHE`, else `$XDG_CACHE_HOME/docket/plugins`, else
/// `~/.cache/docket/plugins`; none when no home is known.
fn author_cache() -> Option<PathBuf> {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("DOCKET_CACHE")
        .or_else(|| var("XDG_CACHE_HOME").map(|dir| dir.join("docket/plugins")))
        .or_else(|| var("HOME").map(|home| home.join(".cache/docket/plugins")))
}

/// How many compiled components the author cache keeps (the newest).
const KEPT_COMPILATIONS: usize = 8;

/// Removes all but the `keep` newest compiled components in `dir`, with
/// their digest files: each build of a component is new code, and a Python
/// one is tens of megabytes compiled.
fn prune_cache(dir: &Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut compiled: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "cwasm"))
        .filter_map(|path| Some((path.metadata().ok()?.modified().ok()?, path)))
        .collect();
    compiled.sort_by_key(|(modified, _)| std::cmp::Reverse(*modified));
    for (_, path) in compiled.into_iter().skip(keep) {
        let _ = std::fs::remove_file(recorded_digest_path(&path));
        let _ = std::fs::remove_file(&path);
    }
}

/// The component file of `path`: the file itself, or the newest `.wasm`
/// a plugin project built (`target/wasm32-wasip2/release/*.wasm`, or
/// `*.wasm` at the project's top level for Python and JavaScript).
///
/// # Errors
/// When there is none.
pub fn component_of(path: &Path) -> anyhow::Result<PathBuf> {
    if path.is_file() {
        return Ok(path.to_owned());
    }
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = Vec::new();
    for dir in [path.join("target/wasm32-wasip2/release"), path.to_owned()] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let file = entry.path();
            if file.extension().is_some_and(|e| e == "wasm")
                && let Ok(modified) = entry.metadata().and_then(|m| m.modified())
            {
                found.push((modified, file));
            }
        }
    }
    found.sort();
    found.pop().map(|(_, file)| file).with_context(|| {
        format!(
            "no component in {} (build the project first)",
            path.display()
        )
    })
}

/// The language of a plugin project, from the files it has.
pub fn language_of(project: &Path) -> &'static str {
    if project.join("app.py").exists() || project.join("requirements.txt").exists() {
        "python"
    } else if project.join("package.json").exists() {
        "js"
    } else {
        "rust"
    }
}

/// Evaluates each document with the production host and the language's
/// limits; compares with (or writes) golden outputs.
///
/// # Errors
/// When the component does not load or a document cannot be read.
pub fn test(request: &TestRequest) -> anyhow::Result<(Manifest, Vec<TestRun>)> {
    let path = component_of(&request.component)?;
    let project = if request.component.is_dir() {
        request.component.clone()
    } else {
        request
            .component
            .parent()
            .map(Path::to_owned)
            .unwrap_or_default()
    };
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let language = request
        .language
        .clone()
        .or_else(|| component_language(&bytes).map(str::to_owned))
        .unwrap_or_else(|| language_of(&project).to_owned());
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plugin".into());
    let cache = author_cache();
    let host = PluginHost::new(HostConfig {
        max_concurrent_instances: 2,
        cache_dir: cache.clone(),
        ..HostConfig::default()
    })?;
    let mut manifest = Manifest::for_language(&name, "0.0.0-test", &language, &bytes);
    if let Some(limits) = limits_file(&language, request.limits.as_deref())? {
        manifest.limits = limits;
    }
    let evaluator = host.load(manifest, &bytes)?;
    if let Some(dir) = &cache {
        prune_cache(dir, KEPT_COMPILATIONS);
    }
    let manifest = host
        .manifest_of(&evaluator)
        .context("loaded plugin has no manifest")?;
    // A document out of fuel is evaluated again without a fuel budget, to
    // say what it needed.
    let mut unlimited = None;
    let mut inputs = request.documents.clone();
    if inputs.is_empty() {
        inputs.push(project.join("testdata"));
    }
    let intake = docket_intake::intake::read_inputs(&inputs)?;
    if intake.documents.is_empty() {
        bail!(
            "no documents to test with (give --doc FILE, or put files in {})",
            project.join("testdata").display()
        );
    }
    let mut runs = Vec::new();
    for document in &intake.documents {
        let (id, output, usage) = match document {
            IntakeDocument::Accepted(spec) => {
                let (mut output, usage) = evaluate_one(&host, &evaluator, spec, &request.config);
                if let Some(message) = output["failure"]["message"].as_str()
                    && message.starts_with("fuel limit of ")
                {
                    if unlimited.is_none() {
                        unlimited = Some(load_unmetered(&host, &manifest, &bytes)?);
                    }
                    if let Some(evaluator) = &unlimited {
                        let needed = match evaluate_one(&host, evaluator, spec, &request.config) {
                            (_, Some(usage)) => format!("it needed {} fuel", usage.fuel),
                            (again, None) => format!(
                                "with no fuel limit it still failed: {}",
                                again["failure"]["message"].as_str().unwrap_or_default()
                            ),
                        };
                        output["failure"]["message"] = Value::from(format!("{message}; {needed}"));
                    }
                }
                (spec.id.clone(), output, usage)
            }
            IntakeDocument::Rejected(rejected) => (
                rejected.id.clone(),
                json!({"failure": {"category": rejected.failure.category, "message": rejected.failure.message}}),
                None,
            ),
            IntakeDocument::Referenced(_) => unreachable!("files on disk are read, not referenced"),
        };
        let diff = match &request.golden {
            None => None,
            Some(dir) => Some(golden(dir, &id, &output, request.bless)?),
        };
        runs.push(TestRun {
            id,
            output,
            usage,
            diff,
        });
    }
    Ok((manifest, runs))
}

/// `manifest`'s plugin loaded again in `host` as good as unmetered, as a
/// version of its own (`<version>-unmetered`: the host runs each version
/// under its own limits and shares the compiled component): fuel for 2^60
/// instructions, a minute of time, the rest of its limits kept.
fn load_unmetered(
    host: &PluginHost,
    manifest: &Manifest,
    bytes: &[u8],
) -> anyhow::Result<docket_core::EvaluatorRef> {
    let mut manifest = manifest.clone();
    manifest.version = format!("{}-unmetered", manifest.version);
    manifest.limits.fuel_base = 1 << 60;
    manifest.limits.fuel_per_kib = 0;
    manifest.limits.timeout_ms = manifest.limits.timeout_ms.max(60_000);
    Ok(host.load(manifest, bytes)?)
}

fn evaluate_one(
    host: &PluginHost,
    evaluator: &docket_core::EvaluatorRef,
    spec: &DocumentSpec,
    config: &Value,
) -> (Value, Option<Usage>) {
    let text = match &spec.body {
        DocumentBody::Text(text) => text.clone(),
        DocumentBody::Pages(pages) => pages.join(&PAGE_SEPARATOR.to_string()),
    };
    let view = DocumentView {
        id: &spec.id,
        title: &spec.title,
        content: &text,
        metadata: &spec.metadata,
        chunk: &ChunkInfo::WHOLE,
    };
    match host.evaluate_document(evaluator, &view, config) {
        Ok(report) => (
            serde_json::to_value(&report.evaluation).unwrap_or(Value::Null),
            Some(report.usage),
        ),
        Err(failure) => (
            json!({"failure": {"category": failure.category, "message": failure.message}}),
            None,
        ),
    }
}

/// Compares `output` with `<dir>/<id>.json` (or writes it when blessing):
/// the differing lines of the two pretty-printed JSON texts.
fn golden(dir: &Path, id: &str, output: &Value, bless: bool) -> anyhow::Result<Vec<String>> {
    let file = dir.join(format!("{id}.json"));
    let actual = serde_json::to_string_pretty(output)? + "\n";
    if bless {
        std::fs::create_dir_all(dir)?;
        std::fs::write(&file, &actual).with_context(|| format!("writing {}", file.display()))?;
        return Ok(Vec::new());
    }
    let expected = std::fs::read_to_string(&file).with_context(|| {
        format!(
            "reading the golden output {} (write it with --bless)",
            file.display()
        )
    })?;
    Ok(line_diff(&expected, &actual))
}

/// A minimal line diff: `-` expected lines missing from the output, `+`
/// output lines not expected, in order (a longest common subsequence).
pub fn line_diff(expected: &str, actual: &str) -> Vec<String> {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push(format!("+ {}", b[j]));
            j += 1;
        } else {
            out.push(format!("- {}", a[i]));
            i += 1;
        }
    }
    out
}

/// The report `docket plugin test` prints: each document's use of every
/// limit.
pub fn usage_lines(manifest: &Manifest, runs: &[TestRun]) -> Vec<String> {
    let limits = manifest.limits;
    let mut lines = vec![format!(
        "{} ({}, {}), world {WORLD}",
        manifest.name, manifest.language, manifest.sha256
    )];
    lines.push(format!(
        "{:<24} {:>14} {:>12} {:>12} {:>12} {:>10}  {}",
        "DOCUMENT", "FUEL", "PEAK MEM", "INPUT", "OUTPUT", "TIME", "RESULT"
    ));
    for run in runs {
        let result = match &run.diff {
            Some(diff) if diff.is_empty() => "matches golden".to_owned(),
            Some(diff) => format!("DIFFERS from golden ({} lines)", diff.len()),
            None if run.output.get("failure").is_some() => {
                format!("failed: {}", run.output["failure"]["message"])
            }
            None => "ok".to_owned(),
        };
        match &run.usage {
            Some(u) => lines.push(format!(
                "{:<24} {:>14} {:>12} {:>12} {:>12} {:>10}  {result}",
                run.id,
                format!(
                    "{} ({:.1}%)",
                    u.fuel,
                    percent(u.fuel, limits.fuel_for(u.input_bytes))
                ),
                format!("{} MiB", u.peak_memory >> 20),
                u.input_bytes,
                u.output_bytes,
                format!("{:.1} ms", u.seconds * 1000.0),
            )),
            None => lines.push(format!("{:<24} {:>75}  {result}", run.id, "-")),
        }
    }
    lines.push(format!(
        "limits: fuel {} + {} per KiB, memory {} MiB, input {} KiB, output {} KiB, time {} ms",
        limits.fuel_base,
        limits.fuel_per_kib,
        limits.memory_bytes >> 20,
        limits.max_input_bytes >> 10,
        limits.max_output_bytes >> 10,
        limits.timeout_ms
    ));
    lines
}

fn percent(used: u64, budget: u64) -> f64 {
    if budget == 0 {
        0.0
    } else {
        used as f64 * 100.0 / budget as f64
    }
}
