//! `docket plugin`: write, test and publish evaluator plugins, and look at
//! the ones a deployment has published.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use docket_cli::plugins;
use docket_core::ports::Evaluators;

use super::DeploymentArgs;

#[derive(Subcommand)]
pub enum PluginCommand {
    /// Create a plugin project that builds with one command.
    New {
        /// The plugin's name (lowercase letters, digits, '-').
        name: String,
        /// rust (the documented first choice), python or js.
        #[arg(long, default_value = "rust")]
        lang: String,
        /// Directory to create (default: ./<name>).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Evaluate documents with a component under production limits and
    /// print what each used of every limit.
    Test {
        /// A component (.wasm) or a plugin project directory.
        component: PathBuf,
        /// Documents (files or directories); the project's testdata/ when absent.
        #[arg(long = "doc")]
        documents: Vec<PathBuf>,
        /// Evaluator configuration: inline JSON or a path to a JSON file.
        #[arg(long)]
        config: Option<String>,
        /// rust, python or js (sets the limits); read from the component,
        /// else guessed from the project.
        #[arg(long)]
        lang: Option<String>,
        /// JSON file of limits over the language's defaults (any of the
        /// six fields), as `publish --limits` takes.
        #[arg(long)]
        limits: Option<PathBuf>,
        /// Compare each output with <DIR>/<document id>.json and show a diff.
        #[arg(long)]
        golden: Option<PathBuf>,
        /// Write the outputs as the new golden files instead.
        #[arg(long, requires = "golden")]
        bless: bool,
    },
    /// Validate, precompile and publish a component as name@version.
    Publish {
        /// The component (.wasm).
        component: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long)]
        version: String,
        /// rust, python or js (sets the default limits); read from the
        /// component's producers section when absent (Rust when it says
        /// none).
        #[arg(long)]
        lang: Option<String>,
        /// JSON file of limits replacing the language's defaults.
        #[arg(long)]
        limits: Option<PathBuf>,
        /// JSON Schema file of the plugin's configuration.
        #[arg(long)]
        config_schema: Option<PathBuf>,
        /// Also refuse components importing these interface packages or
        /// interfaces (e.g. wasi:filesystem); sockets and HTTP are always
        /// refused.
        #[arg(long)]
        deny: Vec<String>,
        #[command(flatten)]
        deployment: DeploymentArgs,
    },
    /// List published plugins.
    List {
        #[command(flatten)]
        deployment: DeploymentArgs,
    },
    /// Print a published plugin's manifest (name or name@version).
    Show {
        spec: String,
        #[command(flatten)]
        deployment: DeploymentArgs,
    },
    /// Write the bundled evaluators' compiled code for a target into a
    /// directory, as a Lambda package ships it (`infra/build` runs this):
    /// the functions load it instead of compiling at a cold start.
    PrecompileBundled {
        /// Where to write `<digest>.<target>.cwasm` and its `.sha256`.
        dir: PathBuf,
        /// The functions' target (aarch64-unknown-linux-gnu on Lambda).
        #[arg(long, default_value = "aarch64-unknown-linux-gnu")]
        target: String,
    },
}

/// Runs a `docket plugin` subcommand.
pub fn execute(command: PluginCommand) -> anyhow::Result<ExitCode> {
    match command {
        PluginCommand::New { name, lang, dir } => new(&name, &lang, dir),
        PluginCommand::Test {
            component,
            documents,
            config,
            lang,
            limits,
            golden,
            bless,
        } => test(plugins::TestRequest {
            component,
            documents,
            config: super::parse_config(config.as_deref())?,
            language: lang,
            limits,
            golden,
            bless,
        }),
        PluginCommand::Publish {
            component,
            name,
            version,
            lang,
            limits,
            config_schema,
            deny,
            deployment,
        } => publish(
            &deployment,
            plugins::Publish {
                component,
                name,
                version,
                language: lang,
                limits,
                config_schema,
                deny,
            },
        ),
        PluginCommand::List { deployment } => list(&deployment),
        PluginCommand::Show { spec, deployment } => show(&spec, &deployment),
        PluginCommand::PrecompileBundled { dir, target } => precompile_bundled(&dir, &target),
    }
}

/// Writes each bundled evaluator's compiled code for `target` into `dir`
/// and prints a line per file.
fn precompile_bundled(dir: &std::path::Path, target: &str) -> anyhow::Result<ExitCode> {
    // The functions' host configuration: compiled code is usable only by
    // an engine configured the same way.
    let host = docket_plugin_host::PluginHost::new(docket_plugin_host::HostConfig::default())?;
    for bundled in docket_bundled::EVALUATORS {
        let artifact = host.write_shipped_code(dir, bundled.name, bundled.bytes, target)?;
        println!(
            "{}@{} for {target}: {}",
            bundled.name,
            bundled.version,
            artifact.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes a project for `name` in `lang` (into ./<name> unless `dir`) and
/// prints the files and how to build and test it.
fn new(name: &str, lang: &str, dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    let files = docket_cli::scaffold::create(name, lang, &dir)?;
    for file in &files {
        println!("created {}", file.display());
    }
    println!(
        "\nbuild: {}\ntest:  docket plugin test {}",
        docket_cli::scaffold::build_command(lang),
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Prints each document's output (and golden diff), then the limits used;
/// fails when a document failed or differs from its golden file.
fn test(request: plugins::TestRequest) -> anyhow::Result<ExitCode> {
    let (manifest, runs) = plugins::test(&request)?;
    for run in &runs {
        println!("{}: {}", run.id, run.output);
        for line in run.diff.iter().flatten() {
            println!("  {line}");
        }
    }
    for line in plugins::usage_lines(&manifest, &runs) {
        println!("{line}");
    }
    let failed = runs.iter().any(|r| {
        r.output.get("failure").is_some() || r.diff.as_ref().is_some_and(|d| !d.is_empty())
    });
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Publishes the component and prints its manifest's summary.
fn publish(deployment: &DeploymentArgs, request: plugins::Publish) -> anyhow::Result<ExitCode> {
    let manifest = super::block_on(plugins::publish(&deployment.deployment(), &request))?;
    println!(
        "published {}@{} {}",
        manifest.name, manifest.version, manifest.sha256
    );
    println!("  world    {}", manifest.world);
    println!("  language {}", manifest.language);
    println!("  imports  {}", manifest.imports.join(", "));
    for compiled in &manifest.precompiled {
        println!(
            "  compiled {} (engine {})",
            compiled.target, compiled.engine
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints one line per published plugin.
fn list(deployment: &DeploymentArgs) -> anyhow::Result<ExitCode> {
    let manifests = super::block_on(async {
        let stores = deployment.deployment().open().await?;
        Ok(stores.registry.plugins(None).await?)
    })?;
    for line in plugins::list_lines(&manifests) {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the manifest `spec` resolves to; refuses a bundled evaluator,
/// which has none.
fn show(spec: &str, deployment: &DeploymentArgs) -> anyhow::Result<ExitCode> {
    let manifest = super::block_on(async {
        let catalog = deployment.deployment().catalog().await?;
        let pinned = catalog
            .resolve(spec)
            .await
            .map_err(|f| anyhow::anyhow!(f.message))?;
        match catalog.published(&pinned.name, &pinned.version).await? {
            Some(manifest) => Ok(manifest),
            None => anyhow::bail!("{pinned} ships with docket; it is not published"),
        }
    })?;
    println!("{}", serde_json::to_string_pretty(&manifest)?);
    Ok(ExitCode::SUCCESS)
}
