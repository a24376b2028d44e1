//! The plugin author's path, as an author takes it: `docket plugin new` in
//! each language, the project's own build command, `docket plugin test`,
//! `docket plugin publish`, then a job with the published plugin — and the
//! refusals at publish time. The toolchains (componentize-py from PyPI,
//! componentize-js from npm, pinned) are installed by `plugins/build-guests`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use super::repo;

/// Where `plugins/build-guests` keeps its toolchains.
fn guest_tools() -> PathBuf {
    std::env::var_os("DOCKET_GUEST_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/docket/guest-tools")
        })
}

/// Builds the Python and JavaScript `wordstats` (and installs the
/// toolchains) once; returns the directory holding the components.
fn guests() -> PathBuf {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("guests");
    let status = Command::new(repo().join("plugins/build-guests"))
        .arg(&out)
        .env("DOCKET_GUEST_TOOLS", guest_tools())
        .status()
        .expect("run plugins/build-guests");
    assert!(status.success(), "plugins/build-guests failed");
    out
}

fn docket(work: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_docket"))
        .current_dir(work)
        .env("DOCKET_STATE", work.join("state"))
        .args(args)
        .output()
        .expect("run docket")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn succeed(output: Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what} failed:\nstdout:\n{}\nstderr:\n{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

fn run_in(dir: &Path, program: &str, args: &[&str], envs: &[(&str, &Path)]) {
    let mut command = Command::new(program);
    command.current_dir(dir).args(args);
    for (key, value) in envs {
        command.env(key, value);
    }
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    succeed(output, &format!("{program} {}", args.join(" ")));
}

/// `count` small documents for a job.
fn corpus(dir: &Path, count: usize) -> PathBuf {
    let docs = dir.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    for n in 0..count {
        let title = if n % 2 == 0 { "# Report\n" } else { "" };
        let body = "word ".repeat(10 * (n + 1));
        std::fs::write(
            docs.join(format!("doc-{n:02}.md")),
            format!("{title}{body}"),
        )
        .unwrap();
    }
    docs
}

/// new → the project's build → plugin test → publish → a 50-document job
/// run by name@version, for one language.
fn author_publish_and_run(language: &str) {
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    let name = format!("length-{language}");
    succeed(
        docket(work, &["plugin", "new", &name, "--lang", language]),
        "plugin new",
    );
    let project = work.join(&name);
    assert!(project.join("wit/evaluator.wit").exists());
    assert!(project.join("testdata/sample.md").exists());
    let component = match language {
        "rust" => {
            // A target directory kept between runs, one per language so
            // the unhashed cdylib names never collide.
            let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("scaffold-rust");
            let envs = [("CARGO_TARGET_DIR", target.as_path())];
            run_in(&project, "cargo", &["test", "--release", "--quiet"], &envs);
            run_in(
                &project,
                "cargo",
                &["build", "--release", "--target", "wasm32-wasip2"],
                &envs,
            );
            target.join("wasm32-wasip2/release/length_rust.wasm")
        }
        "python" => {
            guests();
            let venv = guest_tools().join("python");
            run_in(&project, "./build", &[], &[("DOCKET_PYTHON_VENV", &venv)]);
            project.join(format!("{name}.wasm"))
        }
        "js" => {
            guests();
            std::os::unix::fs::symlink(
                guest_tools().join("js/node_modules"),
                project.join("node_modules"),
            )
            .unwrap();
            run_in(&project, "npm", &["test", "--silent"], &[]);
            run_in(&project, "npm", &["run", "build", "--silent"], &[]);
            project.join(format!("{name}.wasm"))
        }
        other => panic!("{other}"),
    };
    assert!(component.exists(), "{} not built", component.display());
    let component = component.to_str().unwrap();

    // plugin test: the evaluation and the use of every limit.
    let tested = succeed(
        docket(
            work,
            &[
                "plugin",
                "test",
                component,
                "--doc",
                project.join("testdata").to_str().unwrap(),
                "--lang",
                language,
            ],
        ),
        "plugin test",
    );
    assert!(
        tested.contains(r#"sample.md: {"data":{"words":28},"findings":[],"labels":[],"scores":[{"max":100.0,"name":"length","value":6.0}]}"#),
        "{tested}"
    );
    assert!(
        tested.contains("FUEL") && tested.contains("PEAK MEM"),
        "{tested}"
    );
    assert!(
        tested.contains(&format!("({language}, sha256:")),
        "{tested}"
    );
    if language == "rust" {
        // Golden mode: bless, compare, and a diff when the output changes.
        let golden = project.join("golden");
        let testdata = project.join("testdata");
        let with = |extra: &[&str]| {
            let mut args = vec!["plugin", "test", component, "--doc"];
            args.push(testdata.to_str().unwrap());
            args.extend_from_slice(&["--golden", golden.to_str().unwrap()]);
            args.extend_from_slice(extra);
            docket(work, &args)
        };
        succeed(with(&["--bless"]), "bless");
        assert!(succeed(with(&[]), "golden").contains("matches golden"));
        let file = golden.join("sample.md.json");
        let expected = std::fs::read_to_string(&file).unwrap();
        std::fs::write(&file, expected.replace("\"words\": 28", "\"words\": 29")).unwrap();
        let differs = with(&[]);
        assert_eq!(differs.status.code(), Some(1));
        let out = text(&differs.stdout);
        assert!(
            out.contains("-     \"words\": 29") && out.contains("+     \"words\": 28"),
            "{out}"
        );
        assert!(out.contains("DIFFERS from golden (2 lines)"), "{out}");
    }

    // publish, then a job by name@version with the published plugin.
    let published = succeed(
        docket(
            work,
            &[
                "plugin",
                "publish",
                component,
                "--name",
                &name,
                "--version",
                "0.1.0",
                "--lang",
                language,
            ],
        ),
        "plugin publish",
    );
    let digest = published
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().last())
        .unwrap()
        .to_owned();
    assert!(
        published.contains("compiled aarch64-unknown-linux-gnu"),
        "{published}"
    );
    let docs = corpus(work, 50);
    let run = docket(
        work,
        &[
            "run",
            "--quiet",
            docs.to_str().unwrap(),
            "--evaluator",
            &format!("{name}@0.1.0"),
            "--out",
            work.join("out").to_str().unwrap(),
        ],
    );
    succeed(run, "docket run");
    let results: Value =
        serde_json::from_slice(&std::fs::read(work.join("out/results.json")).unwrap()).unwrap();
    assert_eq!(results["status"], "completed");
    assert_eq!(results["document_count"], 50);
    assert_eq!(results["evaluator"]["version"], "0.1.0");
    assert_eq!(results["evaluator"]["digest"], digest.as_str());
    // Every other document has no title; doc-00 has 10 words of 500.
    assert_eq!(results["summary"]["documents_with_warnings"], 25);
    let first = results["documents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == "doc-00.md")
        .unwrap();
    assert_eq!(first["scores"]["length"]["total_score"], 2.0, "{first}");
}

#[test]
fn a_rust_plugin_project_builds_tests_publishes_and_runs_a_job() {
    author_publish_and_run("rust");
}

#[test]
fn a_python_plugin_project_builds_tests_publishes_and_runs_a_job() {
    author_publish_and_run("python");
}

#[test]
fn a_javascript_plugin_project_builds_tests_publishes_and_runs_a_job() {
    author_publish_and_run("js");
}

/// The evaluations of one job, by document id, without timings.
fn evaluations(results: &Value) -> Vec<(String, Value)> {
    results["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["id"].as_str().unwrap().to_owned(),
                serde_json::json!({
                    "status": d["status"],
                    "scores": d["scores"],
                    "labels": d["labels"],
                    "findings": d["findings"],
                    "data": d["data"],
                }),
            )
        })
        .collect()
}

#[test]
fn wordstats_gives_identical_evaluations_in_rust_python_and_javascript() {
    let guests = guests();
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    // The sample corpus plus text that exercises Unicode: accents, a
    // final sigma, non-Latin scripts, digits of other scripts, astral
    // characters and ties in term counts.
    let docs = work.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    for entry in std::fs::read_dir(repo().join("examples/plans")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, docs.join(path.file_name().unwrap())).unwrap();
    }
    std::fs::write(
        docs.join("unicode.txt"),
        "Ὀδυσσεύς ΟΔΥΣΣΕΥΣ niño NIÑO Straße ١٢٣ 𝒳𝒴𝒵 𝒳𝒴𝒵 日本語 テキスト टेक्स्ट e\u{301}té été zzzz aaaa zzzz aaaa ΣΑΣ. Σ ΑΣ\u{301}Α don't",
    )
    .unwrap();
    let mut runs = Vec::new();
    let run = |evaluator: &str, out: &Path| {
        succeed(
            docket(
                work,
                &[
                    "run",
                    "--quiet",
                    docs.to_str().unwrap(),
                    "--evaluator",
                    evaluator,
                    "--out",
                    out.to_str().unwrap(),
                ],
            ),
            "run",
        );
        let results: Value =
            serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
        assert_eq!(results["status"], "completed", "{evaluator}");
        assert_eq!(results["summary"]["failed_documents"], 0, "{evaluator}");
        results
    };
    for (language, plugin) in [
        ("rust", None),
        ("python", Some(guests.join("wordstats-python.wasm"))),
        ("js", Some(guests.join("wordstats-js.wasm"))),
    ] {
        if let Some(path) = &plugin {
            // Run as a file: with its language's limits, read from it.
            let results = run(
                path.to_str().unwrap(),
                &work.join(format!("file-{language}")),
            );
            runs.push((language, evaluations(&results)));
        }
        let evaluator = match plugin {
            None => "wordstats".to_owned(),
            Some(path) => {
                let name = format!("wordstats-{language}");
                succeed(
                    docket(
                        work,
                        &[
                            "plugin",
                            "publish",
                            path.to_str().unwrap(),
                            "--name",
                            &name,
                            "--version",
                            "1.0.0",
                        ],
                    ),
                    "publish",
                );
                // No --lang: the component says which it is.
                let shown = succeed(
                    docket(work, &["plugin", "show", &format!("{name}@1.0.0")]),
                    "show",
                );
                let manifest: Value = serde_json::from_str(&shown).unwrap();
                assert_eq!(manifest["language"], language, "{shown}");
                name
            }
        };
        let results = run(&evaluator, &work.join(format!("out-{language}")));
        runs.push((language, evaluations(&results)));
    }
    let (_, rust) = &runs[0];
    assert_eq!(rust.len(), 6);
    for (language, other) in &runs[1..] {
        for ((id, expected), (other_id, actual)) in rust.iter().zip(other) {
            assert_eq!(id, other_id);
            assert_eq!(
                serde_json::to_string(expected).unwrap(),
                serde_json::to_string(actual).unwrap(),
                "{language} differs from Rust on {id}"
            );
        }
    }
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn refused(work: &Path, args: &[&str]) -> String {
    let output = docket(work, args);
    assert_eq!(
        output.status.code(),
        Some(2),
        "{args:?} was not refused: {}",
        text(&output.stdout)
    );
    text(&output.stderr)
}

#[test]
fn publishing_refuses_what_docket_cannot_run_or_must_not_change() {
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    let components = work.join("components");
    std::fs::create_dir_all(&components).unwrap();
    let write = |file: &str, bytes: &[u8]| {
        let path = components.join(file);
        std::fs::write(&path, bytes).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let other_world = write("other.wasm", docket_test_guests::OTHER_WORLD);
    let dialer = write("dialer.wasm", docket_test_guests::DIALER);
    let reader = write("reader.wasm", docket_test_guests::READER);
    let wordstats = write("wordstats.wasm", docket_bundled::WORDSTATS);
    let decalogo = write("decalogo.wasm", docket_bundled::DECALOGO);
    let corrupt = write("corrupt.wasm", b"%PDF-1.7 not a component");
    let publish = |component: &str, name: &str, extra: &[&str]| {
        let mut args = vec![
            "plugin",
            "publish",
            component,
            "--name",
            name,
            "--version",
            "1.0.0",
        ];
        args.extend_from_slice(extra);
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };

    let error = refused(work, &strs(&publish(&other_world, "other", &[])));
    assert!(
        error.contains(
            "invalid component other: does not implement the docket:evaluator/evaluator@0.2.0 world"
        ),
        "{error}"
    );
    let error = refused(work, &strs(&publish(&dialer, "dialer", &[])));
    assert!(
        error.contains("dialer@1.0.0 imports ") && error.contains("wasi:sockets/tcp@"),
        "{error}"
    );
    assert!(error.ends_with("which this deployment denies\n"), "{error}");
    let error = refused(
        work,
        &strs(&publish(&reader, "reader", &["--deny", "wasi:filesystem"])),
    );
    assert!(
        error.contains("reader@1.0.0 imports wasi:filesystem/types@"),
        "{error}"
    );
    let error = refused(work, &strs(&publish(&corrupt, "corrupt", &[])));
    assert_eq!(
        error,
        "docket: invalid component corrupt: not a WebAssembly component (24 bytes without the \\0asm header)\n"
    );
    let error = refused(work, &strs(&publish(&wordstats, "Bad_Name", &[])));
    assert!(error.contains("plugin name \"Bad_Name\""), "{error}");

    // Filesystem imports are accepted unless denied (the sandbox grants no
    // files anyway); a version is published once.
    succeed(
        docket(work, &strs(&publish(&reader, "reader", &[]))),
        "publish reader",
    );
    let first = succeed(
        docket(work, &strs(&publish(&wordstats, "counts", &[]))),
        "publish",
    );
    let again = succeed(
        docket(work, &strs(&publish(&wordstats, "counts", &[]))),
        "republish",
    );
    assert_eq!(
        first.lines().next(),
        again.lines().next(),
        "same bytes: a no-op"
    );
    // The same bytes with another language would change nothing: refused.
    let error = refused(
        work,
        &strs(&publish(&wordstats, "counts", &["--lang", "python"])),
    );
    assert!(
        error.contains(
            "counts@1.0.0 is published with these bytes and language rust (asked: python), limits {\"fuel_base\":20000000,"
        ) && error.ends_with("a published version never changes: publish a new version\n"),
        "{error}"
    );
    let error = refused(work, &strs(&publish(&decalogo, "counts", &[])));
    assert!(
        error.contains("counts@1.0.0 is published with sha256:")
            && error.contains("a published version never changes"),
        "{error}"
    );
    // --limits changes only the fields it gives; an unknown one is refused.
    let limits = write("limits.json", br#"{"fuel_base": 1000}"#);
    succeed(
        docket(
            work,
            &strs(&publish(&wordstats, "limited", &["--limits", &limits])),
        ),
        "publish with limits",
    );
    let shown = succeed(docket(work, &["plugin", "show", "limited@1.0.0"]), "show");
    let manifest: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(manifest["limits"]["fuel_base"], 1000);
    assert_eq!(manifest["limits"]["fuel_per_kib"], 2_000_000, "{shown}");
    let typo = write("typo.json", br#"{"fuel": 1000}"#);
    let error = refused(
        work,
        &strs(&publish(&wordstats, "typo", &["--limits", &typo])),
    );
    assert!(
        error.contains("typo.json: unknown field `fuel`, expected one of `fuel_base`"),
        "{error}"
    );
    // A name that ships with docket keeps its bundled bytes.
    let error = refused(
        work,
        &[
            "plugin",
            "publish",
            &decalogo,
            "--name",
            "wordstats",
            "--version",
            "0.1.0",
        ],
    );
    assert!(
        error.contains("wordstats@0.1.0 ships with docket"),
        "{error}"
    );

    let listed = succeed(docket(work, &["plugin", "list"]), "list");
    let names: Vec<&str> = listed
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(names, ["counts", "limited", "reader"], "{listed}");
    let shown = succeed(docket(work, &["plugin", "show", "counts@^1"]), "show");
    let manifest: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(manifest["version"], "1.0.0");
    assert_eq!(manifest["world"], "docket:evaluator/evaluator@0.2.0");
    assert_eq!(manifest["language"], "rust", "read from the component");
    assert_eq!(manifest["precompiled"].as_array().unwrap().len(), 2);
}

/// A plugin published with a config schema: a job whose configuration
/// does not match is refused before any document runs — `docket run`
/// exits 2 with where and why, and no job is made; the API answers 422 —
/// and one that matches runs. A schema that is not JSON Schema is refused
/// at publish.
#[test]
fn a_config_that_does_not_match_the_published_schema_is_refused_before_any_document_runs() {
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    let component = work.join("wordstats.wasm");
    std::fs::write(&component, docket_bundled::WORDSTATS).unwrap();
    let schema = work.join("schema.json");
    std::fs::write(
        &schema,
        r#"{"type": "object", "properties": {"top": {"type": "integer", "minimum": 1}}, "additionalProperties": false}"#,
    )
    .unwrap();
    let publish = |name: &str, schema: &Path| {
        docket(
            work,
            &[
                "plugin",
                "publish",
                component.to_str().unwrap(),
                "--name",
                name,
                "--version",
                "1.0.0",
                "--config-schema",
                schema.to_str().unwrap(),
            ],
        )
    };
    succeed(publish("schemed", &schema), "publish");
    let broken = work.join("broken.json");
    std::fs::write(&broken, r#"{"type": "no such type"}"#).unwrap();
    let error = refused(
        work,
        &[
            "plugin",
            "publish",
            component.to_str().unwrap(),
            "--name",
            "broken",
            "--version",
            "1.0.0",
            "--config-schema",
            broken.to_str().unwrap(),
        ],
    );
    assert!(
        error.contains("the config schema is not a usable JSON Schema"),
        "{error}"
    );

    let plans = repo().join("examples/plans");
    let run = |config: &str| {
        docket(
            work,
            &[
                "run",
                "--quiet",
                plans.to_str().unwrap(),
                "--evaluator",
                "schemed@1.0.0",
                "--config",
                config,
                "--out",
                work.join("out").to_str().unwrap(),
            ],
        )
    };
    let output = run(r#"{"top": "ten", "colour": "red"}"#);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = text(&output.stderr);
    assert!(
        stderr.starts_with(
            "docket: invalid submission: the config does not match schemed's config schema: "
        ) && stderr.contains("/top: \"ten\" is not of type \"integer\"")
            && stderr.contains("colour"),
        "{stderr}"
    );
    let state = work.join("state");
    let jobs = succeed(
        docket(work, &["jobs", "--state", state.to_str().unwrap()]),
        "jobs",
    );
    assert!(!jobs.contains("job_"), "no job made: {jobs}");
    succeed(run(r#"{"top": 3}"#), "a matching config runs");

    // The API: 422 with the same reason.
    let token = super::premium_key(&work.join("state"));
    let server = super::serve(&work.join("state"));
    let (status, body) = super::http(
        &server.addr,
        &token,
        "POST",
        "/api/v1/batch/upload",
        Some(&serde_json::json!({
            "documents": [{"id": "a", "content": "some words"}],
            "options": {"evaluator": "schemed@1.0.0", "config": {"top": 0}}
        })),
    );
    assert_eq!(status, 422, "{body}");
    assert!(
        body.to_string()
            .contains("/top: 0 is less than the minimum of 1"),
        "{body}"
    );
}

/// `plugin test --limits` takes any of the limits over the language's
/// defaults; a document out of fuel is evaluated again with no fuel limit
/// and the failure says what it needed — a budget of exactly that passes.
#[test]
fn plugin_test_takes_limits_and_says_the_fuel_a_document_needed() {
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    let component = work.join("wordstats.wasm");
    std::fs::write(&component, docket_bundled::WORDSTATS).unwrap();
    let doc = work.join("plan.txt");
    std::fs::write(
        &doc,
        "plan de agua potable con metas e indicadores. ".repeat(50),
    )
    .unwrap();
    let test_with = |fuel: u64| {
        let limits = work.join(format!("limits-{fuel}.json"));
        std::fs::write(
            &limits,
            serde_json::json!({"fuel_base": fuel, "fuel_per_kib": 0}).to_string(),
        )
        .unwrap();
        docket(
            work,
            &[
                "plugin",
                "test",
                component.to_str().unwrap(),
                "--doc",
                doc.to_str().unwrap(),
                "--limits",
                limits.to_str().unwrap(),
            ],
        )
    };
    let starved = test_with(1_000);
    let printed = text(&starved.stdout);
    let needed: u64 = printed
        .split(
            "fuel limit of 1000 exhausted (base 1000 + 0 per KiB for 3 KiB of input); it needed ",
        )
        .nth(1)
        .and_then(|rest| rest.split(" fuel").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no fuel needed in: {printed}{}", text(&starved.stderr)));
    assert!(needed > 1_000, "{printed}");
    assert!(
        printed.contains("limits: fuel 1000 + 0 per KiB"),
        "the limits given are the ones used: {printed}"
    );
    let enough = test_with(needed);
    let printed = text(&enough.stdout);
    assert!(enough.status.success(), "{printed}{}", text(&enough.stderr));
    assert!(
        !printed.contains("failed:"),
        "{needed} fuel is enough: {printed}"
    );
    assert!(printed.contains(&format!("{needed} (100.0%)")), "{printed}");
}

/// The `faults` evaluators' documents: what each mode should produce is in
/// the test below.
fn faults_batch(work: &Path) -> PathBuf {
    let batch = serde_json::json!({"documents": [
        {"id": "raise", "title": "doc-7", "content": "raise\n"},
        {"id": "most-common", "content": "most-common\nb a b c b a"},
        {"id": "late-import", "content": "late-import\n"},
        {"id": "floats", "content": "floats\n"},
        {"id": "crlf", "content": "echo\r\nline two\r\n\u{feff}"},
    ]});
    let path = work.join("faults.json");
    std::fs::write(&path, batch.to_string()).unwrap();
    path
}

/// A document's `data` in `results.json` as written: the text of the value.
fn data_text<'a>(results: &'a str, id: &str) -> &'a str {
    let at = results
        .find(&format!("\"id\":\"{id}\""))
        .unwrap_or_else(|| panic!("no document {id} in {results}"));
    let rest = &results[at..];
    let rest = &rest[rest.find("\"data\":").expect("data") + "\"data\":".len()..];
    let mut values = serde_json::Deserializer::from_str(rest).into_iter::<Value>();
    values.next().expect("a value").expect("JSON");
    &rest[..values.byte_offset()]
}

#[test]
fn python_and_javascript_errors_name_the_exception_its_message_and_frames_and_data_arrives_exactly()
{
    let guests = guests();
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    let batch = faults_batch(work);
    for language in ["python", "js"] {
        let component = guests.join(format!("faults-{language}.wasm"));
        let out = work.join(format!("out-{language}"));
        let output = docket(
            work,
            &[
                "run",
                "--quiet",
                batch.to_str().unwrap(),
                "--evaluator",
                component.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ],
        );
        let written = std::fs::read_to_string(out.join("results.json"))
            .unwrap_or_else(|e| panic!("{language}: no results ({e}): {output:?}"));
        let results: Value = serde_json::from_str(&written).unwrap();
        let document = |id: &str| {
            results["documents"]
                .as_array()
                .unwrap()
                .iter()
                .find(|d| d["id"] == id)
                .unwrap_or_else(|| panic!("{language}: no {id}"))
                .clone()
        };
        // Python's hooks it does not define are the SDK's defaults (no
        // summary); JavaScript's are its own, also none.
        assert_eq!(
            results["summary"].get("evaluator_summary"),
            None,
            "{language}"
        );
        assert_eq!(
            results["summary"].get("evaluator_summary_error"),
            None,
            "{language}"
        );
        // The uncaught exception: its type, message and the helper's frame.
        let raised = document("raise");
        assert_eq!(raised["status"], "failed", "{language}: {raised}");
        assert_eq!(raised["error"]["category"], "PERMANENT", "{raised}");
        let message = raised["error"]["message"].as_str().unwrap();
        match language {
            "python" => {
                assert!(
                    message.starts_with(
                        "evaluator failed: ValueError: the helper refused 'doc-7'\nTraceback (most recent call last):\n"
                    ),
                    "{message}"
                );
                assert!(message.contains(", in evaluate_text\n"), "{message}");
                assert!(message.ends_with(", in checked"), "{message}");
                assert!(message.contains("File \"app.py\", line "), "{message}");
            }
            _ => {
                assert!(
                    message.starts_with(
                        "evaluator failed: RangeError: the helper refused \"doc-7\"\n"
                    ),
                    "{message}"
                );
                assert!(message.contains("checked@"), "{message}");
            }
        }
        assert!(!message.contains("unreachable"), "{message}");
        // Text passed as sent, CRLF and byte-order mark included; data
        // as the plugin wrote it.
        assert_eq!(document("crlf")["status"], "completed", "{language}");
        assert_eq!(
            data_text(&written, "crlf"),
            r#"{"content":"echo\r\nline two\r\n\ufeff"}"#.replace("\\ufeff", "\u{feff}"),
            "{language}"
        );
        let floats = match language {
            "python" => {
                r#"{"fifteen":15.000000000000005,"huge":1e+22,"sum":0.30000000000000004,"tiny":1e-07}"#
            }
            _ => {
                r#"{"fifteen":15.000000000000005,"huge":1e+22,"sum":0.30000000000000004,"tiny":1e-7}"#
            }
        };
        assert_eq!(data_text(&written, "floats"), floats, "{language}");
        if language == "python" {
            // A lazy import of the standard library works (the SDK made it
            // at build time); one of the plugin's own is refused by name.
            assert_eq!(
                document("most-common")["data"],
                serde_json::json!({"most_common": [["b", 3], ["a", 2]]})
            );
            let late = document("late-import");
            assert_eq!(late["status"], "failed", "{late}");
            let message = late["error"]["message"].as_str().unwrap();
            assert!(
                message.starts_with(
                    "evaluator failed: ImportError: module 'colorsys' was not imported when the component was built;"
                ),
                "{message}"
            );
        }
    }
}

#[test]
fn plugin_test_compiles_a_component_once_and_reuses_the_code() {
    let guests = guests();
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    let doc = work.join("doc.txt");
    std::fs::write(&doc, "floats\n").unwrap();
    let cache = work.join("cache");
    let test = || {
        let output = Command::new(env!("CARGO_BIN_EXE_docket"))
            .current_dir(work)
            .env("DOCKET_CACHE", &cache)
            .env("DOCKET_LOG", "info")
            .args(["plugin", "test"])
            .arg(guests.join("faults-python.wasm"))
            .arg("--doc")
            .arg(&doc)
            .output()
            .expect("run docket");
        assert!(output.status.success(), "{output:?}");
        let log = text(&output.stderr);
        log.matches("component compiled").count()
    };
    assert_eq!(test(), 1, "the first test compiles");
    assert_eq!(test(), 0, "the second reuses the compiled code");
    let kept: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(kept.len(), 2, "{kept:?}");
}

#[test]
fn python_and_javascript_state_built_at_the_top_level_costs_nothing_per_document() {
    let guests = guests();
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    for mode in ["init-module", "init-call"] {
        std::fs::write(
            work.join(format!("{mode}.txt")),
            format!("{mode}\nrule7 and term42s here\n"),
        )
        .unwrap();
    }
    for language in ["python", "js"] {
        let output = docket(
            work,
            &[
                "plugin",
                "test",
                guests
                    .join(format!("faults-{language}.wasm"))
                    .to_str()
                    .unwrap(),
                "--doc",
                "init-module.txt",
                "--doc",
                "init-call.txt",
            ],
        );
        let printed = text(&output.stdout);
        // The table built when the component was built is there, within
        // the language's default budget...
        let row = printed
            .lines()
            .find(|l| l.starts_with("init-module.txt ") && l.ends_with(" ok"))
            .unwrap_or_else(|| panic!("{language}: init-module did not pass: {printed}"));
        let at_top: u64 = row.split_whitespace().nth(1).unwrap().parse().unwrap();
        let expected = match language {
            "python" => r#"init-module.txt: {"data":{"matched":2},"#,
            _ => r#"init-module.txt: {"data":{"primes":17984},"#,
        };
        assert!(printed.contains(expected), "{printed}");
        // ...while building it in the call runs out of that budget.
        let per_call: u64 = printed
            .split("init-call.txt: {\"failure\":")
            .nth(1)
            .and_then(|rest| rest.split("it needed ").nth(1))
            .and_then(|rest| rest.split(" fuel").next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{language}: no fuel figure for init-call: {printed}"));
        assert!(
            per_call > 10 * at_top,
            "{language}: {per_call} fuel per call vs {at_top} with the state built once"
        );
    }
}
