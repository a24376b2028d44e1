//! `docket run` end to end: the real binary on real files, the embedded
//! backend in a temporary state directory, the bundled components.

// Test code: a failed unwrap fails the test.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

mod pdfs;
mod plugins;
mod resume;
mod slots;
mod soak;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `docket run` in a fresh working directory.
fn docket_run(work: &Path, args: &[&str]) -> (Output, Value) {
    docket_run_with(work, args, &[])
}

/// Runs `docket run` with `envs` set.
fn docket_run_with(work: &Path, args: &[&str], envs: &[(&str, &str)]) -> (Output, Value) {
    let output = Command::new(env!("CARGO_BIN_EXE_docket"))
        .current_dir(work)
        .envs(envs.iter().copied())
        .env("DOCKET_STATE", work.join("state"))
        .arg("run")
        .args(["--quiet", "--out"])
        .arg(work.join("out"))
        .args(args)
        .output()
        .expect("run docket");
    let results = std::fs::read(work.join("out/results.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or(Value::Null);
    (output, results)
}

fn document<'a>(results: &'a Value, id: &str) -> &'a Value {
    results["documents"]
        .as_array()
        .and_then(|docs| docs.iter().find(|d| d["id"] == id))
        .unwrap_or_else(|| panic!("no document {id} in {results}"))
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn the_sample_corpus_runs_end_to_end() {
    let work = tempfile::tempdir().unwrap();
    let plans = repo().join("examples/plans");
    let (output, results) = docket_run(
        work.path(),
        &[plans.to_str().unwrap(), "--evaluator", "decalogo"],
    );
    assert!(output.status.success(), "{output:?}");
    assert_eq!(results["status"], "completed");
    assert_eq!(results["document_count"], 5);
    assert_eq!(results["evaluator"]["name"], "decalogo");
    assert!(
        results["evaluator"]["digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );

    // Computed by hand from the default rubric (see docs/evaluators.md).
    let roble = document(&results, "plan-vereda-el-roble.txt");
    assert_eq!(roble["status"], "completed");
    assert_eq!(roble["scores"]["decalogo"]["total_score"], 15.0);
    assert_eq!(roble["scores"]["decalogo"]["max_score"], 100.0);
    assert_eq!(roble["scores"]["questionnaire"]["total_score"], 8.0);
    assert_eq!(roble["scores"]["questionnaire"]["max_score"], 60.0);
    let codes = |doc: &Value, severity: &str| -> Vec<String> {
        doc["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["severity"] == severity)
            .map(|f| f["code"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        codes(roble, "violation"),
        ["missing-section:budget", "missing-section:monitoring"]
    );
    assert_eq!(
        codes(roble, "warning"),
        [
            "goals-without-indicators",
            "goals-without-baseline",
            "no-budget-figures"
        ]
    );
    assert_eq!(roble["labels"], serde_json::json!(["language:es"]));
    let evidence = roble["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "evidence:P01")
        .unwrap();
    let text = std::fs::read_to_string(plans.join("plan-vereda-el-roble.txt")).unwrap();
    let (start, end) = (
        evidence["evidence"]["start"].as_u64().unwrap() as usize,
        evidence["evidence"]["end"].as_u64().unwrap() as usize,
    );
    assert_eq!(&text[start..end], "Diagnóstico");

    let harbor = document(&results, "harbor-town-strategy.txt");
    assert_eq!(harbor["scores"]["decalogo"]["total_score"], 25.0);
    assert_eq!(harbor["scores"]["questionnaire"]["total_score"], 10.0);
    assert_eq!(
        codes(harbor, "violation"),
        [
            "missing-section:diagnosis",
            "missing-section:monitoring",
            "missing-section:objectives"
        ]
    );
    assert!(codes(harbor, "warning").is_empty());
    assert_eq!(harbor["labels"], serde_json::json!(["language:en"]));

    // The 30-page PDF is split into two 25-page work items and merged.
    let pdf = document(&results, "northfield-regional-plan.pdf");
    assert_eq!(pdf["status"], "completed");
    assert_eq!(pdf["chunks"], 2);

    let summary = &results["summary"];
    assert_eq!(summary["completed_documents"], 5);
    assert_eq!(summary["failed_documents"], 0);
    assert!(summary["avg_decalogo_score"].is_number());
    assert!(summary["avg_questionnaire_score"].is_number());
    assert_eq!(summary["total_violations"], 5);
    assert_eq!(summary["documents_with_warnings"], 1);

    let jsonl = std::fs::read_to_string(work.path().join("out/documents.jsonl")).unwrap();
    assert_eq!(jsonl.lines().count(), 5);
    for line in jsonl.lines() {
        let doc: Value = serde_json::from_str(line).unwrap();
        assert_eq!(&doc, document(&results, doc["id"].as_str().unwrap()));
    }
    let table = stdout(&output);
    assert!(table.contains("completed"), "{table}");
    assert!(table.contains("plan-vereda-el-roble.txt"), "{table}");
    assert!(table.contains("15/100"), "{table}");
}

#[test]
fn unreadable_files_fail_alone() {
    let work = tempfile::tempdir().unwrap();
    let inputs = work.path().join("inputs");
    std::fs::create_dir(&inputs).unwrap();
    std::fs::write(inputs.join("empty.txt"), b"").unwrap();
    std::fs::write(inputs.join("broken.pdf"), b"%PDF-1.4 not really").unwrap();
    std::fs::write(inputs.join("latin1.txt"), b"caf\xe9 con leche").unwrap();
    std::fs::copy(
        repo().join("examples/plans/harbor-town-strategy.txt"),
        inputs.join("harbor.txt"),
    )
    .unwrap();
    std::fs::write(
        inputs.join("notes.txt"),
        "Diagnosis: budget of USD 5 million.",
    )
    .unwrap();
    let (output, results) = docket_run(work.path(), &[inputs.to_str().unwrap()]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(results["status"], "completed");
    assert_eq!(results["summary"]["completed_documents"], 2);
    assert_eq!(results["summary"]["failed_documents"], 3);
    assert_eq!(results["summary"]["failures_by_category"]["DATA"], 3);
    let error = |id: &str| document(&results, id)["error"].clone();
    assert_eq!(error("empty.txt")["message"], "the document is empty");
    assert_eq!(error("empty.txt")["category"], "DATA");
    assert_eq!(
        error("latin1.txt")["message"],
        "not UTF-8 text: invalid byte at offset 3"
    );
    assert!(
        error("broken.pdf")["message"]
            .as_str()
            .unwrap()
            .starts_with("unreadable PDF: ")
    );
    assert_eq!(
        document(&results, "harbor.txt")["scores"]["decalogo"]["total_score"],
        25.0
    );
}

#[test]
fn a_manifest_of_10000_relative_paths_runs_as_one_job() {
    let work = tempfile::tempdir().unwrap();
    let corpus = work.path().join("corpus");
    std::fs::create_dir_all(corpus.join("docs")).unwrap();
    let mut documents = Vec::new();
    for n in 0..10_000 {
        let name = format!("docs/{n:05}.txt");
        std::fs::write(corpus.join(&name), "word ".repeat(n % 7 + 1)).unwrap();
        documents.push(serde_json::json!({"id": format!("doc-{n}"), "title": format!("Document {n}"), "path": name}));
    }
    let docx = docket_intake::formats::write_docx(&["Plan de agua", "potable"], None).unwrap();
    std::fs::write(corpus.join("plan.docx"), docx).unwrap();
    documents.push(serde_json::json!({"id": "word", "path": "plan.docx"}));
    documents.push(serde_json::json!({"id": "missing", "path": "docs/none.txt"}));
    documents.push(serde_json::json!({"id": "inline", "content": "inline text here"}));
    documents.push(serde_json::json!({"id": "elsewhere", "key": "inbox/x.txt"}));
    let manifest = corpus.join("manifest.json");
    std::fs::write(
        &manifest,
        serde_json::json!({ "documents": documents }).to_string(),
    )
    .unwrap();
    // Run from another directory: paths are relative to the manifest.
    let (output, results) = docket_run(
        work.path(),
        &[manifest.to_str().unwrap(), "--evaluator", "wordstats"],
    );
    assert!(output.status.success(), "{output:?}");
    assert_eq!(results["document_count"], 10_004);
    assert_eq!(results["summary"]["completed_documents"], 10_002);
    let listed = results["documents"].as_array().unwrap();
    let ids: Vec<&str> = listed.iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert_eq!(ids[..3], ["doc-0", "doc-1", "doc-2"]);
    assert_eq!(
        ids[9_999..],
        ["doc-9999", "word", "missing", "inline", "elsewhere"]
    );
    for n in [0, 6, 7, 9_999] {
        let d = &listed[n];
        assert_eq!(d["title"], format!("Document {n}"));
        assert_eq!(d["data"]["words"], (n % 7 + 1) as u64, "{d}");
    }
    assert_eq!(document(&results, "word")["data"]["words"], 4);
    let missing = &document(&results, "missing")["error"];
    assert_eq!(missing["category"], "DATA");
    assert!(
        missing["message"].as_str().unwrap().starts_with(&format!(
            "cannot read {}",
            corpus.join("docs/none.txt").display()
        )),
        "{missing}"
    );
    assert_eq!(
        document(&results, "elsewhere")["error"]["message"],
        "documents[10003].key: names an object in a deployment's bucket; a manifest on disk names its files by path"
    );
}

#[test]
fn hostile_plugins_fail_their_documents_and_spare_the_rest() {
    let work = tempfile::tempdir().unwrap();
    let plugin = work.path().join("hostile.wasm");
    std::fs::write(&plugin, docket_test_guests::HOSTILE).unwrap();
    let batch = serde_json::json!({"documents": [
        {"id": "loop", "content": "hostile:loop"},
        {"id": "ok-1", "content": "an ordinary document"},
        {"id": "alloc", "content": "hostile:alloc"},
        {"id": "ok-2", "content": "another ordinary document"},
        {"id": "panic", "content": "hostile:panic"},
        {"id": "huge", "content": "hostile:huge"},
        {"id": "invalid", "content": "hostile:invalid"},
        {"id": "ok-3", "content": "a third ordinary document"},
    ]});
    let manifest = work.path().join("batch.json");
    std::fs::write(&manifest, batch.to_string()).unwrap();
    let (output, results) = docket_run(
        work.path(),
        &[
            manifest.to_str().unwrap(),
            "--evaluator",
            plugin.to_str().unwrap(),
        ],
    );
    assert!(output.status.success(), "{output:?}");
    for ok in ["ok-1", "ok-2", "ok-3"] {
        assert_eq!(document(&results, ok)["status"], "completed", "{ok}");
        assert_eq!(document(&results, ok)["scores"]["ok"]["total_score"], 1.0);
    }
    let failure = |id: &str| {
        let doc = document(&results, id);
        assert_eq!(doc["status"], "failed", "{id}");
        (
            doc["error"]["category"].as_str().unwrap().to_owned(),
            doc["error"]["message"].as_str().unwrap().to_owned(),
        )
    };
    let (category, message) = failure("loop");
    assert_eq!(category, "PERMANENT");
    assert!(
        message.starts_with("fuel limit of 22000000 exhausted"),
        "{message}"
    );
    let (category, message) = failure("alloc");
    assert_eq!(category, "PERMANENT");
    assert!(
        message.starts_with("memory limit of 67108864 bytes exceeded"),
        "{message}"
    );
    assert_eq!(
        failure("panic"),
        (
            "PERMANENT".into(),
            "plugin panicked: the hostile plugin panicked on purpose".into()
        )
    );
    let (category, message) = failure("huge");
    assert_eq!(category, "PERMANENT");
    assert!(
        message.ends_with("exceeds the plugin's limit of 1048576 bytes"),
        "{message}"
    );
    assert_eq!(
        failure("invalid"),
        (
            "DATA".into(),
            "evaluator rejected the document: this document is invalid on purpose".into()
        )
    );
    assert_eq!(results["summary"]["failures_by_category"]["PERMANENT"], 4);
    assert_eq!(results["summary"]["failures_by_category"]["DATA"], 1);
}

#[test]
fn a_job_past_its_failure_threshold_fails_and_exits_non_zero() {
    let work = tempfile::tempdir().unwrap();
    let plugin = work.path().join("hostile.wasm");
    std::fs::write(&plugin, docket_test_guests::HOSTILE).unwrap();
    let documents: Vec<Value> = (0..20)
        .map(|n| {
            let content = if n % 2 == 0 {
                "hostile:invalid"
            } else {
                "fine"
            };
            serde_json::json!({"id": format!("d{n}"), "content": content})
        })
        .collect();
    let manifest = work.path().join("batch.json");
    std::fs::write(
        &manifest,
        serde_json::json!({ "documents": documents }).to_string(),
    )
    .unwrap();
    let (output, results) = docket_run(
        work.path(),
        &[
            manifest.to_str().unwrap(),
            "--evaluator",
            plugin.to_str().unwrap(),
            "--tolerated-failure-percent",
            "10",
        ],
    );
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert_eq!(results["status"], "failed");
    let error = results["error"].as_str().unwrap();
    assert!(error.starts_with("failure threshold exceeded: "), "{error}");
    assert!(
        error.ends_with("of 20 documents failed (tolerated 10%)"),
        "{error}"
    );
    // Every document is accounted for: completed, failed, or skipped.
    let summary = &results["summary"];
    let total = summary["completed_documents"].as_u64().unwrap()
        + summary["failed_documents"].as_u64().unwrap()
        + summary["skipped_documents"].as_u64().unwrap();
    assert_eq!(total, 20);
}

#[test]
fn wordstats_runs_by_name_and_bad_arguments_are_explained() {
    let work = tempfile::tempdir().unwrap();
    let plans = repo().join("examples/plans");
    let (output, results) = docket_run(
        work.path(),
        &[
            plans.to_str().unwrap(),
            "--evaluator",
            "wordstats",
            "--rows",
            "2",
        ],
    );
    assert!(output.status.success(), "{output:?}");
    assert!(
        stdout(&output).contains("… and 3 more documents"),
        "{}",
        stdout(&output)
    );
    assert_eq!(results["evaluator"]["name"], "wordstats");
    assert!(results["summary"]["avg_lexical_diversity_score"].is_number());

    let (output, _) = docket_run(
        work.path(),
        &[plans.to_str().unwrap(), "--evaluator", "nope"],
    );
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("unknown evaluator \"nope\" (known: decalogo, wordstats)"),
        "{stderr}"
    );

    let (output, _) = docket_run(work.path(), &["/no/such/dir"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("/no/such/dir: no such file or directory")
    );

    let (output, _) = docket_run(
        work.path(),
        &[plans.to_str().unwrap(), "--config", "{not json"],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--config is not valid JSON"));

    let (output, _) = docket_run(
        work.path(),
        &[plans.to_str().unwrap(), "--config", "not json"],
    );
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "docket: --config \"not json\" is neither a JSON object (it does not start with {) nor a file that can be read (No such file or directory (os error 2))\n"
    );
}

#[test]
fn an_evaluator_config_is_passed_through_and_a_bad_one_fails_every_document_with_its_reason() {
    let work = tempfile::tempdir().unwrap();
    let plans = repo().join("examples/plans");
    let rubric = serde_json::json!({"rubric": {
        "points": [{"id": "X1", "title": "Harbor", "patterns": ["harbor", "town"]}],
        "questions": [], "sections": [], "goals": [], "indicators": [], "baselines": [], "amounts": []
    }});
    let config = work.path().join("rubric.json");
    std::fs::write(&config, rubric.to_string()).unwrap();
    let (output, results) = docket_run(
        work.path(),
        &[
            plans.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ],
    );
    assert!(output.status.success(), "{output:?}");
    let harbor = document(&results, "harbor-town-strategy.txt");
    assert_eq!(harbor["scores"]["decalogo"]["total_score"], 10.0);
    assert_eq!(harbor["scores"]["decalogo"]["max_score"], 10.0);
    assert_eq!(
        document(&results, "plan-vereda-el-roble.txt")["scores"]["decalogo"]["total_score"],
        0.0
    );

    let (output, results) = docket_run(
        work.path(),
        &[plans.to_str().unwrap(), "--config", r#"{"rubrik": {}}"#],
    );
    assert_eq!(
        output.status.code(),
        Some(1),
        "every document failed: {output:?}"
    );
    assert_eq!(results["status"], "failed");
    assert_eq!(
        results["summary"]["failures_by_category"]["CONFIGURATION"],
        5
    );
    let message = document(&results, "harbor-town-strategy.txt")["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.starts_with(
            "evaluator rejected its configuration: decalogo config: unknown field `rubrik`"
        ),
        "{message}"
    );
}

/// A `docket serve` child process, killed when dropped.
struct Server {
    child: std::process::Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(state: &Path) -> Server {
    serve_with(state, &["--addr", "127.0.0.1:0", "--workers", "2"], &[])
}

/// `docket serve <args>` on `state` with `envs` set, logging (info) to
/// `state`'s `.log` file.
fn serve_with(state: &Path, args: &[&str], envs: &[(&str, &str)]) -> Server {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_docket"))
        .env("DOCKET_STATE", state)
        .env("DOCKET_LOG", "info")
        .envs(envs.iter().copied())
        .arg("serve")
        .args(args)
        .stdout(std::process::Stdio::piped())
        // Appended to: a server started again on `state` logs after the first.
        .stderr(
            std::fs::File::options()
                .create(true)
                .append(true)
                .open(state.with_extension("log"))
                .unwrap(),
        )
        .spawn()
        .expect("start docket serve");
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    Server { child, addr }
}

/// One HTTP/1.1 request over a real loopback connection.
fn http(addr: &str, token: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let (status, _, body) = http_with(addr, token, method, path, body, "");
    (status, body)
}

/// As [`http`], with extra header lines; also returns the response's head.
fn http_with(
    addr: &str,
    token: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
    extra_headers: &str,
) -> (u16, String, Value) {
    try_http_with(addr, token, method, path, body, extra_headers).unwrap()
}

/// As [`http_with`], with the connection's errors (a server killed
/// mid-request) returned.
fn try_http_with(
    addr: &str,
    token: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
    extra_headers: &str,
) -> std::io::Result<(u16, String, Value)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr)?;
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{extra_headers}\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let cut_short = || std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "response cut short");
    let status: u16 = response
        .get(9..12)
        .and_then(|code| code.parse().ok())
        .ok_or_else(cut_short)?;
    let (head, payload) = response.split_once("\r\n\r\n").ok_or_else(cut_short)?;
    let payload = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(payload)
    } else {
        payload.to_owned()
    };
    Ok((
        status,
        head.to_owned(),
        serde_json::from_str(&payload).unwrap_or(Value::String(payload)),
    ))
}

/// A chunked HTTP/1.1 body (streamed responses) put back together.
fn dechunk(mut payload: &str) -> String {
    let mut body = String::new();
    while let Some((size, rest)) = payload.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        body.push_str(&rest[..size]);
        payload = &rest[size + 2..];
    }
    body
}

#[test]
fn docket_serve_takes_a_batch_over_http_and_processes_it() {
    let work = tempfile::tempdir().unwrap();
    let state = work.path().join("state");
    let created = Command::new(env!("CARGO_BIN_EXE_docket"))
        .env("DOCKET_STATE", &state)
        .args(["keys", "create", "--tenant", "acme", "--tier", "standard"])
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");
    let printed = String::from_utf8(created.stdout).unwrap();
    let lines: Vec<&str> = printed.lines().collect();
    let token = lines[0].to_owned();
    assert!(token.starts_with("dk_"), "{printed}");
    assert!(lines[1].starts_with("whsec_"), "{printed}");
    let server = serve(&state);
    let batch = serde_json::json!({"documents": [
        {"id": "harbor", "content": std::fs::read_to_string(repo().join("examples/plans/harbor-town-strategy.txt")).unwrap()},
        {"id": "roble", "content": std::fs::read_to_string(repo().join("examples/plans/plan-vereda-el-roble.txt")).unwrap()},
    ]});
    let (status, accepted) = http(
        &server.addr,
        &token,
        "POST",
        "/api/v1/batch/upload",
        Some(&batch),
    );
    assert_eq!(status, 202, "{accepted}");
    let status_url = accepted["status_url"].as_str().unwrap().to_owned();
    let mut last = Value::Null;
    for _ in 0..200 {
        let (code, body) = http(&server.addr, &token, "GET", &status_url, None);
        assert_eq!(code, 200, "{body}");
        last = body;
        if last["status"] == "completed" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(last["status"], "completed", "{last}");
    assert_eq!(last["progress"]["completed_documents"], 2);
    let (code, results) = http(
        &server.addr,
        &token,
        "GET",
        accepted["results_url"].as_str().unwrap(),
        None,
    );
    assert_eq!(code, 200);
    assert_eq!(results["summary"]["avg_decalogo_score"], 20.0);
    let (code, error) = http(
        &server.addr,
        &token,
        "GET",
        "/api/v1/batch/status/job_missing",
        None,
    );
    assert_eq!(code, 404);
    assert_eq!(error["error"]["code"], "not_found");
    let (code, error) = http(&server.addr, "dk_not_a_key", "GET", &status_url, None);
    assert_eq!(code, 401);
    assert_eq!(error["error"]["message"], "unknown API key");

    // JSON log lines carry the request's id (echoed to the client) and the
    // job's id.
    let (code, head, _) = http_with(
        &server.addr,
        &token,
        "GET",
        &status_url,
        None,
        "x-request-id: req-trace-42\r\n",
    );
    assert_eq!(code, 200);
    assert!(
        head.to_lowercase().contains("x-request-id: req-trace-42"),
        "{head}"
    );
    let job_id = status_url.rsplit('/').next().unwrap().to_owned();
    drop(server);
    let log = std::fs::read_to_string(state.with_extension("log")).unwrap();
    let lines: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let traced = lines
        .iter()
        .find(|l| l["span"]["request_id"] == "req-trace-42")
        .unwrap_or_else(|| panic!("no line of request req-trace-42 in\n{log}"));
    assert_eq!(traced["span"]["job_id"], job_id.as_str());
    assert_eq!(traced["fields"]["status"], 200);
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "job finalized"
                && l["fields"]["job_id"] == job_id.as_str()),
        "{log}"
    );
}

/// `docket <args>` as an API client of `server` with `token`.
fn client(server: &Server, token: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_docket"))
        .env("DOCKET_URL", format!("http://{}", server.addr))
        .env("DOCKET_TOKEN", token)
        .args(args)
        .output()
        .expect("run docket")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A premium API key of tenant `acme` in the state directory `state`.
fn premium_key(state: &Path) -> String {
    let created = Command::new(env!("CARGO_BIN_EXE_docket"))
        .args([
            "keys", "create", "--tenant", "acme", "--tier", "premium", "--state",
        ])
        .arg(state)
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");
    text(&created.stdout).lines().next().unwrap().to_owned()
}

#[test]
fn the_client_commands_submit_watch_list_export_and_report_refusals() {
    let work = tempfile::tempdir().unwrap();
    let state = work.path().join("state");
    let token = premium_key(&state);
    let server = serve(&state);
    let plans = repo().join("examples/plans");

    let submitted = client(
        &server,
        &token,
        &["submit", plans.to_str().unwrap(), "--wait"],
    );
    assert_eq!(
        submitted.status.code(),
        Some(0),
        "{}",
        text(&submitted.stderr)
    );
    let job = text(&submitted.stdout).trim().to_owned();
    assert!(job.starts_with("job_"), "{job}");
    assert!(
        text(&submitted.stderr).contains(&format!(
            "job {job} completed: 5 of 5 documents completed, 0 failed"
        )),
        "{}",
        text(&submitted.stderr)
    );

    let listed = client(&server, &token, &["jobs"]);
    let listing = text(&listed.stdout);
    let row = listing.lines().nth(1).unwrap();
    assert!(row.starts_with(&job), "{listing}");
    assert!(
        row.contains(" completed ") && row.contains(" 5 ") && row.contains("decalogo@"),
        "{row}"
    );

    let csv = client(&server, &token, &["results", &job, "--format", "csv"]);
    let csv = text(&csv.stdout);
    assert_eq!(csv.lines().count(), 6, "{csv}");
    assert!(csv.contains("plan-vereda-el-roble.txt,plan-vereda-el-roble.txt,completed,"));
    let json = client(&server, &token, &["results", &job]);
    let results: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(results["summary"]["total_documents"], 5);
    // Queried: the server filters, the client follows the pages.
    let roble = client(
        &server,
        &token,
        &["results", &job, "--format", "jsonl", "--text", "ROBLE"],
    );
    let roble = text(&roble.stdout);
    assert_eq!(roble.lines().count(), 1, "{roble}");
    assert!(
        roble.contains("\"id\":\"plan-vereda-el-roble.txt\""),
        "{roble}"
    );
    let failed = client(&server, &token, &["results", &job, "--status", "failed"]);
    let failed: Value = serde_json::from_slice(&failed.stdout).unwrap();
    assert_eq!(failed["documents"], serde_json::json!([]));
    assert_eq!(failed["summary"]["total_documents"], 5, "the job's summary");

    let watched = client(&server, &token, &["watch", &job]);
    assert_eq!(watched.status.code(), Some(0));
    let report: Value = serde_json::from_slice(&watched.stdout).unwrap();
    assert_eq!(report["progress"]["completed_documents"], 5);

    for (args, code, message) in [
        (
            vec!["cancel", job.as_str()],
            2,
            format!("409 Conflict: job {job} is completed and finalized"),
        ),
        (
            vec!["status", "job_nope"],
            2,
            "404 Not Found: job job_nope not found".to_owned(),
        ),
        (
            vec!["results", job.as_str(), "--format", "xml"],
            2,
            "422 Unprocessable Entity:\n  format: unknown format \"xml\": use json, jsonl or csv"
                .to_owned(),
        ),
        (
            vec!["results", job.as_str(), "--min-score", "-x"],
            2,
            "422 Unprocessable Entity:\n  min_score: \"-x\" is not a number".to_owned(),
        ),
        (
            vec!["retry", job.as_str()],
            2,
            format!("409 Conflict: job {job} has no failed documents"),
        ),
    ] {
        let refused = client(&server, &token, &args);
        assert_eq!(refused.status.code(), Some(code), "{args:?}");
        assert_eq!(
            text(&refused.stderr).trim(),
            format!("docket: {message}"),
            "{args:?}"
        );
    }
    let unknown = client(&server, "dk_not_a_key", &["jobs"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert_eq!(
        text(&unknown.stderr).trim(),
        "docket: 401 Unauthorized: unknown API key"
    );
}

/// Fields of results that differ between two runs of the same batch.
const VARYING: [&str; 5] = [
    "job_id",
    "created_at",
    "finished_at",
    "processing_time_seconds",
    "avg_processing_time_seconds",
];

/// `text` with the value after each `"key":` (up to the next `,` or `}` at
/// its level: ids, times and durations here, never objects) replaced by `_`.
fn without_values(text: &str, keys: &[&str]) -> String {
    let mut out = text.to_owned();
    for key in keys {
        let needle = format!("\"{key}\":");
        let mut from = 0;
        while let Some(at) = out[from..].find(&needle) {
            let start = from + at + needle.len();
            let end = start
                + out[start..]
                    .find([',', '}'])
                    .expect("a value ends before its object does");
            out.replace_range(start..end, "_");
            from = start + 1;
        }
    }
    out
}

/// The results files are streamed from documents stored once in parts; for
/// the sample corpus they are byte for byte what the whole-job results of
/// the release before were (recorded in `tests/fixtures/results/`), apart
/// from ids, times and durations — and `documents.jsonl` is the same
/// documents, a line each.
#[test]
fn results_files_are_byte_identical_to_the_recorded_ones() {
    let plans = repo().join("examples/plans");
    for evaluator in ["decalogo", "wordstats"] {
        let work = tempfile::tempdir().unwrap();
        let (output, _) = docket_run(
            work.path(),
            &[plans.to_str().unwrap(), "--evaluator", evaluator],
        );
        assert!(output.status.success(), "{output:?}");
        let results = std::fs::read_to_string(work.path().join("out/results.json")).unwrap();
        let recorded = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!("tests/fixtures/results/plans-{evaluator}.json")),
        )
        .unwrap();
        assert_eq!(
            without_values(&results, &VARYING),
            without_values(&recorded, &VARYING),
            "{evaluator}"
        );
        let lines = std::fs::read_to_string(work.path().join("out/documents.jsonl")).unwrap();
        let documents = results
            .split_once(r#","documents":["#)
            .map(|(_, rest)| rest.strip_suffix("]}").unwrap())
            .unwrap();
        assert_eq!(lines.trim_end().replace('\n', ","), documents);
    }
}
