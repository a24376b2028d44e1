//! `docket plugin new`: a ready plugin project per language — the WIT
//! contract vendored, the language's SDK wired, one passing test, a sample
//! document and a README — that builds with one command.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// A file of a template: its path in the project, its text, and whether
/// it is executable.
type TemplateFile = (&'static str, &'static str, bool);

const WIT: &str = include_str!("../../plugins/wit/evaluator.wit");
const SAMPLE: &str = include_str!("../../plugins/templates/sample.md");

const RUST: &[TemplateFile] = &[
    (
        "Cargo.toml",
        include_str!("../../plugins/templates/rust/Cargo.toml"),
        false,
    ),
    (
        "src/lib.rs",
        include_str!("../../plugins/templates/rust/src/lib.rs"),
        false,
    ),
    (
        "README.md",
        include_str!("../../plugins/templates/rust/README.md"),
        false,
    ),
    (
        ".gitignore",
        include_str!("../../plugins/templates/rust/gitignore"),
        false,
    ),
    (
        "sdk/Cargo.toml",
        include_str!("../../plugins/templates/rust/sdk/Cargo.toml"),
        false,
    ),
    (
        "sdk/src/lib.rs",
        include_str!("../../plugins/sdk/src/lib.rs"),
        false,
    ),
    (
        "sdk/src/text.rs",
        include_str!("../../plugins/sdk/src/text.rs"),
        false,
    ),
];

const PYTHON: &[TemplateFile] = &[
    (
        "app.py",
        include_str!("../../plugins/templates/python/app.py"),
        false,
    ),
    (
        "test_app.py",
        include_str!("../../plugins/templates/python/test_app.py"),
        false,
    ),
    (
        "build",
        include_str!("../../plugins/templates/python/build"),
        true,
    ),
    (
        "README.md",
        include_str!("../../plugins/templates/python/README.md"),
        false,
    ),
    (
        ".gitignore",
        include_str!("../../plugins/templates/python/gitignore"),
        false,
    ),
    (
        "requirements.txt",
        include_str!("../../plugins/python/requirements.txt"),
        false,
    ),
    (
        "docket.py",
        include_str!("../../plugins/sdk-python/docket.py"),
        false,
    ),
];

const JS: &[TemplateFile] = &[
    (
        "package.json",
        include_str!("../../plugins/templates/js/package.json"),
        false,
    ),
    (
        "src/evaluator.js",
        include_str!("../../plugins/templates/js/src/evaluator.js"),
        false,
    ),
    (
        "src/docket.js",
        include_str!("../../plugins/sdk-js/docket.js"),
        false,
    ),
    (
        "test/evaluator.test.mjs",
        include_str!("../../plugins/templates/js/test/evaluator.test.mjs"),
        false,
    ),
    (
        "componentize.mjs",
        include_str!("../../plugins/js/componentize.mjs"),
        false,
    ),
    (
        "README.md",
        include_str!("../../plugins/templates/js/README.md"),
        false,
    ),
    (
        ".gitignore",
        include_str!("../../plugins/templates/js/gitignore"),
        false,
    ),
];

/// The command that builds a project of `language`.
pub fn build_command(language: &str) -> &'static str {
    match language {
        "python" => "./build",
        "js" => "npm install && npm test && npm run build",
        _ => "cargo test && cargo build --release --target wasm32-wasip2",
    }
}

/// Writes a new project for plugin `name` in `language` into `dir` (which
/// must not exist or be empty) and returns the files written.
///
/// # Errors
/// An invalid name, an unknown language, a non-empty directory, or a
/// write that failed.
pub fn create(name: &str, language: &str, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    docket_core::plugin::check_identity(name, "0.1.0").map_err(anyhow::Error::msg)?;
    let files = match language {
        "rust" => RUST,
        "python" => PYTHON,
        "js" => JS,
        other => bail!("language {other:?}: choose rust, python or js"),
    };
    if dir.exists()
        && std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .next()
            .is_some()
    {
        bail!("{} exists and is not empty", dir.display());
    }
    let fill = |text: &str| {
        text.replace("{{name}}", name)
            .replace("{{name_file}}", &name.replace('-', "_"))
    };
    let mut written = Vec::new();
    let common: [TemplateFile; 2] = [
        ("wit/evaluator.wit", WIT, false),
        ("testdata/sample.md", SAMPLE, false),
    ];
    for (path, text, executable) in files.iter().chain(common.iter()) {
        let file = dir.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&file, fill(text)).with_context(|| format!("writing {}", file.display()))?;
        if *executable {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755))?;
        }
        written.push(file);
    }
    Ok(written)
}
