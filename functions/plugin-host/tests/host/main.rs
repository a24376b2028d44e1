//! The plugin host against the real components built from `plugins/`:
//! limits, isolation, error categories, caching and resolution.

use docket_core::model::{ChunkInfo, EvaluatorRef};
use std::sync::Arc;
use std::time::{Duration, Instant};

use docket_core::ports::{DocumentView, EvaluationReport, EvaluationRequest, Evaluators};
use docket_core::{Failure, FailureCategory};
use docket_plugin_host::{HostConfig, HostError, Limits, Manifest, PluginHost};

fn host() -> PluginHost {
    PluginHost::new(HostConfig::default()).expect("engine")
}

fn load(host: &PluginHost, name: &str, bytes: &[u8]) -> EvaluatorRef {
    host.load(Manifest::for_component(name, "0.1.0", bytes), bytes)
        .expect("load component")
}

fn evaluate(
    host: &PluginHost,
    evaluator: &EvaluatorRef,
    content: &str,
) -> Result<EvaluationReport, Failure> {
    evaluate_within(host, evaluator, content, None)
}

/// [`evaluate`] within an invocation's `deadline`.
fn evaluate_within(
    host: &PluginHost,
    evaluator: &EvaluatorRef,
    content: &str,
    deadline: Option<Instant>,
) -> Result<EvaluationReport, Failure> {
    let metadata = serde_json::json!({ "source": "test" });
    let view = DocumentView {
        id: "doc-1",
        title: "Doc 1",
        content,
        metadata: &metadata,
        chunk: &ChunkInfo::WHOLE,
    };
    host.evaluate_document_within(evaluator, &view, &serde_json::json!({}), deadline)
}

fn permanent_message(result: Result<EvaluationReport, Failure>) -> String {
    let failure = result.expect_err("should fail");
    assert_eq!(failure.category, FailureCategory::Permanent, "{failure}");
    failure.message
}

#[test]
fn wordstats_component_gives_the_native_result() {
    let host = host();
    let evaluator = load(&host, "wordstats", docket_bundled::WORDSTATS);
    let text = "Water, water everywhere; nor any drop to drink. Water!";
    let report = evaluate(&host, &evaluator, text).expect("evaluate");
    let native = wordstats::evaluate_text(text);
    assert_eq!(report.evaluation.scores[0].name, "lexical_diversity");
    assert_eq!(report.evaluation.scores[0].value, 77.78);
    assert_eq!(report.evaluation.data.to_value(), native.data);
    assert_eq!(
        report.evaluation.data.to_value()["top_terms"][0]["term"],
        "water"
    );
    assert_eq!(report.evaluation.labels, ["length:short"]);
    assert!(report.usage.fuel > 0);
    assert!(report.usage.peak_memory > 0);
    assert_eq!(report.usage.input_bytes, text.len() as u64);
}

#[test]
fn decalogo_component_matches_the_native_build() {
    let host = host();
    let evaluator = load(&host, "decalogo", docket_bundled::DECALOGO);
    let text = include_str!("../../../../examples/plans/plan-municipal-la-esperanza.md");
    let report = evaluate(&host, &evaluator, text).expect("evaluate");
    let native = decalogo::evaluate_text(text);
    let scores: Vec<_> = report
        .evaluation
        .scores
        .iter()
        .map(|s| (s.name.as_str(), s.value, s.max))
        .collect();
    let native_scores: Vec<_> = native
        .scores
        .iter()
        .map(|s| (s.name.as_str(), s.value, s.max))
        .collect();
    assert_eq!(scores, native_scores);
    let spans: Vec<_> = report
        .evaluation
        .findings
        .iter()
        .map(|f| {
            (
                f.code.as_str(),
                f.evidence.as_ref().map(|s| (s.start, s.end)),
            )
        })
        .collect();
    let native_spans: Vec<_> = native
        .findings
        .iter()
        .map(|f| {
            (
                f.code.as_str(),
                f.evidence.as_ref().map(|s| (s.start, s.end)),
            )
        })
        .collect();
    assert_eq!(spans, native_spans);
    assert_eq!(report.evaluation.data.to_value(), native.data);
    // Every evidence span points at the text it quotes.
    for finding in &report.evaluation.findings {
        if let Some(span) = &finding.evidence {
            let quoted = &text[span.start as usize..span.end as usize];
            assert!(
                span.snippet
                    .contains(quoted.split_whitespace().next().unwrap()),
                "{quoted} in {}",
                span.snippet
            );
        }
    }
}

#[test]
fn an_infinite_loop_is_stopped_by_fuel() {
    let host = host();
    let evaluator = load(&host, "hostile", docket_test_guests::HOSTILE);
    let message = permanent_message(evaluate(&host, &evaluator, "hostile:loop"));
    let limits = Limits::default();
    assert_eq!(
        message,
        format!(
            "fuel limit of {} exhausted (base {} + {} per KiB for 1 KiB of input)",
            limits.fuel_for(12),
            limits.fuel_base,
            limits.fuel_per_kib
        )
    );
}

#[test]
fn the_wall_clock_backstop_stops_a_call_fuel_would_let_run() {
    let host = host();
    let bytes = docket_test_guests::HOSTILE;
    let mut manifest = Manifest::for_component("hostile", "0.1.0", bytes);
    manifest.limits.fuel_base = u64::MAX / 2;
    manifest.limits.timeout_ms = 50;
    let evaluator = host.load(manifest, bytes).expect("load");
    let message = permanent_message(evaluate(&host, &evaluator, "hostile:loop"));
    assert_eq!(message, "time limit of 50 ms exceeded");
}

#[test]
fn the_invocation_deadline_cuts_a_call_short_and_is_not_the_plugins_fault() {
    let host = host();
    let bytes = docket_test_guests::HOSTILE;
    let mut manifest = Manifest::for_component("hostile", "0.1.0", bytes);
    manifest.limits.fuel_base = u64::MAX / 2;
    manifest.limits.timeout_ms = 60_000;
    let evaluator = host.load(manifest, bytes).expect("load");
    // 100 ms left of the invocation: the 60 s limit is cut to them.
    let deadline = Some(Instant::now() + Duration::from_millis(100));
    let started = Instant::now();
    let failure = evaluate_within(&host, &evaluator, "hostile:loop", deadline).unwrap_err();
    assert_eq!(failure.category, FailureCategory::Transient, "{failure}");
    assert!(
        failure
            .message
            .starts_with("stopped at the invocation's deadline after ")
            && failure.message.ends_with(" ms; retried"),
        "{failure}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "stopped long before 60 s"
    );
    // Past the deadline nothing starts.
    let failure =
        evaluate_within(&host, &evaluator, "hostile:loop", Some(Instant::now())).unwrap_err();
    assert_eq!(
        failure.message,
        "stopped at the invocation's deadline after 0 ms; retried"
    );
    // Without one, the plugin's own limit applies again.
    let wordstats = load(&host, "wordstats", docket_bundled::WORDSTATS);
    assert!(evaluate(&host, &wordstats, "some words").is_ok());
}

#[test]
fn a_memory_bomb_is_stopped_by_the_cap() {
    let host = host();
    let evaluator = load(&host, "hostile", docket_test_guests::HOSTILE);
    let message = permanent_message(evaluate(&host, &evaluator, "hostile:alloc"));
    assert!(
        message.starts_with(&format!(
            "memory limit of {} bytes exceeded",
            Limits::default().memory_bytes
        )),
        "{message}"
    );
}

#[test]
fn a_panic_becomes_a_permanent_failure_with_its_message() {
    let host = host();
    let evaluator = load(&host, "hostile", docket_test_guests::HOSTILE);
    let message = permanent_message(evaluate(&host, &evaluator, "hostile:panic"));
    assert_eq!(
        message,
        "plugin panicked: the hostile plugin panicked on purpose"
    );
}

#[test]
fn a_bare_trap_names_the_functions_it_happened_in() {
    let host = host();
    let evaluator = load(&host, "hostile", docket_test_guests::HOSTILE);
    let message = permanent_message(evaluate(&host, &evaluator, "hostile:trap"));
    let (trap, frames) = message
        .split_once(" in ")
        .unwrap_or_else(|| panic!("no frames in {message:?}"));
    assert_eq!(
        trap,
        "plugin trapped: wasm trap: wasm `unreachable` instruction executed"
    );
    let innermost = frames.split(" ← ").next().unwrap();
    assert!(innermost.contains("trap_in_a_helper"), "{message}");
    assert!(frames.contains("evaluate"), "{message}");
}

#[test]
fn huge_output_is_refused() {
    let host = host();
    let evaluator = load(&host, "hostile", docket_test_guests::HOSTILE);
    let message = permanent_message(evaluate(&host, &evaluator, "hostile:huge"));
    assert!(message.starts_with("output of "), "{message}");
    assert!(
        message.ends_with(&format!("exceeds the plugin's limit of {} bytes", 1 << 20)),
        "{message}"
    );
}

#[test]
fn oversized_input_is_refused_before_running() {
    let host = host();
    let bytes = docket_bundled::WORDSTATS;
    let mut manifest = Manifest::for_component("wordstats", "0.1.0", bytes);
    manifest.limits.max_input_bytes = 10;
    let evaluator = host.load(manifest, bytes).expect("load");
    let message = permanent_message(evaluate(&host, &evaluator, "eleven byte"));
    assert_eq!(
        message,
        "input of 11 bytes exceeds the plugin's limit of 10 bytes"
    );
}

#[test]
fn plugin_errors_keep_their_own_category() {
    let host = host();
    let evaluator = load(&host, "hostile", docket_test_guests::HOSTILE);
    let failure = evaluate(&host, &evaluator, "hostile:invalid").unwrap_err();
    assert_eq!(failure.category, FailureCategory::Data);
    assert_eq!(
        failure.message,
        "evaluator rejected the document: this document is invalid on purpose"
    );
}

#[test]
fn plugins_have_no_ambient_capabilities() {
    let host = host();
    let evaluator = load(&host, "hostile", docket_test_guests::HOSTILE);
    let report = evaluate(&host, &evaluator, "hostile:ambient").expect("evaluate");
    let seen = &report.evaluation.data.to_value();
    assert_ne!(seen["file"], "read", "{seen}");
    assert_ne!(seen["dir"], "listed", "{seen}");
    assert_ne!(seen["network"], "connected", "{seen}");
    assert_eq!(seen["env"], 0);
    assert_eq!(seen["args"], 0);
    assert_eq!(seen["unix_seconds"], 0, "the clock is frozen at the epoch");
}

#[test]
fn each_call_gets_a_fresh_instance() {
    // After a trap the next document still evaluates normally.
    let host = host();
    let evaluator = load(&host, "hostile", docket_test_guests::HOSTILE);
    assert!(evaluate(&host, &evaluator, "hostile:panic").is_err());
    let report = evaluate(&host, &evaluator, "a normal document").expect("evaluate");
    assert_eq!(report.evaluation.scores[0].value, 1.0);
}

#[test]
fn bytes_must_match_the_manifest_digest() {
    let host = host();
    let mut manifest = Manifest::for_component("wordstats", "0.1.0", docket_bundled::WORDSTATS);
    manifest.sha256 = docket_plugin_host::digest(b"something else");
    let error = host.load(manifest, docket_bundled::WORDSTATS).unwrap_err();
    assert!(matches!(error, HostError::DigestMismatch { .. }), "{error}");
}

#[test]
fn corrupt_components_are_refused() {
    let host = host();
    let bytes = b"\0asm\x0d\0\x01\0garbage";
    let error = host
        .load(Manifest::for_component("broken", "0.1.0", bytes), bytes)
        .unwrap_err();
    assert!(
        matches!(error, HostError::InvalidComponent { .. }),
        "{error}"
    );
    let text = b"Plan municipal: not a component";
    let error = host
        .load(Manifest::for_component("text", "0.1.0", text), text)
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid component text: not a WebAssembly component (31 bytes without the \\0asm header)"
    );
    let core_module = b"\0asm\x01\0\0\0";
    let error = host
        .load(
            Manifest::for_component("core", "0.1.0", core_module),
            core_module,
        )
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("a core WebAssembly module, not a component"),
        "{error}"
    );
}

#[test]
fn compiled_code_is_cached_and_verified() {
    let dir = tempfile::tempdir().unwrap();
    let config = HostConfig {
        cache_dir: Some(dir.path().to_owned()),
        ..HostConfig::default()
    };
    let first = PluginHost::new(config.clone()).unwrap();
    let evaluator = load(&first, "wordstats", docket_bundled::WORDSTATS);
    let artifacts: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .collect();
    assert_eq!(artifacts.len(), 1);

    // A second host loads the cached artifact and gives the same result.
    let second = PluginHost::new(config.clone()).unwrap();
    load(&second, "wordstats", docket_bundled::WORDSTATS);
    let a = evaluate(&first, &evaluator, "one two three").unwrap();
    let b = evaluate(&second, &evaluator, "one two three").unwrap();
    assert_eq!(a.evaluation, b.evaluation);

    // A tampered artifact is not deserialized: the host recompiles.
    std::fs::write(&artifacts[0], b"tampered").unwrap();
    let third = PluginHost::new(config).unwrap();
    load(&third, "wordstats", docket_bundled::WORDSTATS);
    let c = evaluate(&third, &evaluator, "one two three").unwrap();
    assert_eq!(c.evaluation, a.evaluation);
    assert_ne!(std::fs::read(&artifacts[0]).unwrap(), b"tampered");
}

#[test]
fn a_registered_component_is_compiled_on_its_first_call_only() {
    let host = host();
    let wordstats = host.register_component("wordstats", "0.1.0", docket_bundled::WORDSTATS);
    let decalogo = host.register_component("decalogo", "0.1.0", docket_bundled::DECALOGO);
    // Known at once, compiled not yet.
    assert_eq!(host.compilations(), 0);
    assert_eq!(host.resolve_loaded("wordstats").unwrap(), wordstats);
    assert!(host.is_loaded(&decalogo));
    assert_eq!(host.manifest_of(&decalogo).unwrap().name, "decalogo");
    let first = evaluate(&host, &wordstats, "one two three").unwrap();
    assert_eq!(host.compilations(), 1, "only the evaluator used");
    let again = evaluate(&host, &wordstats, "one two three").unwrap();
    assert_eq!(host.compilations(), 1, "once");
    assert_eq!(first.evaluation, again.evaluation);
    // What loading finds is in the manifest from then on.
    assert!(!host.manifest_of(&wordstats).unwrap().imports.is_empty());
    evaluate(&host, &decalogo, "Objetivo: metas y presupuesto.").unwrap();
    assert_eq!(host.compilations(), 2);
}

#[test]
fn calls_waiting_for_a_registered_component_share_one_compilation() {
    let host = host();
    let wordstats = host.register_component("wordstats", "0.1.0", docket_bundled::WORDSTATS);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| evaluate(&host, &wordstats, "one two").unwrap());
        }
    });
    assert_eq!(host.compilations(), 1);
}

#[test]
fn a_registered_component_that_does_not_load_fails_its_calls_permanently() {
    let host = host();
    let broken = host.register_component("broken", "0.1.0", b"\0asm\x01\0\0\0");
    assert_eq!(host.resolve_loaded("broken").unwrap(), broken);
    let failure = evaluate(&host, &broken, "text").unwrap_err();
    assert_eq!(failure.category, FailureCategory::Permanent);
    assert!(
        failure
            .message
            .starts_with("evaluator broken@0.1.0 does not load: invalid component broken: a core WebAssembly module"),
        "{}",
        failure.message
    );
}

#[test]
fn shipped_compiled_code_is_used_and_code_for_another_engine_is_recompiled() {
    let shipped = tempfile::tempdir().unwrap();
    let bytes = docket_bundled::WORDSTATS;
    let artifact = host()
        .write_shipped_code(
            shipped.path(),
            "wordstats",
            bytes,
            &docket_plugin_host::host_target(),
        )
        .unwrap();
    assert_eq!(
        artifact,
        docket_plugin_host::shipped_code_path(
            shipped.path(),
            &docket_core::plugin::digest(bytes),
            &docket_plugin_host::host_target()
        )
    );
    let with_shipped = |dir: &std::path::Path| {
        let cache = tempfile::tempdir().unwrap();
        let host = PluginHost::new(HostConfig {
            shipped_code: Some(dir.to_owned()),
            cache_dir: Some(cache.path().to_owned()),
            ..HostConfig::default()
        })
        .unwrap();
        let evaluator = host.register_component("wordstats", "0.1.0", bytes);
        let report = evaluate(&host, &evaluator, "one two three").unwrap();
        let cached = std::fs::read_dir(cache.path()).unwrap().count();
        (host.compilations(), report.evaluation, cached)
    };
    let (compiled, shipped_result, cached) = with_shipped(shipped.path());
    assert_eq!(compiled, 0, "the shipped code is used");
    assert_eq!(cached, 0, "and not copied into the cache");
    let (_, compiled_result) = {
        let host = host();
        let evaluator = host.register_component("wordstats", "0.1.0", bytes);
        (
            0,
            evaluate(&host, &evaluator, "one two three")
                .unwrap()
                .evaluation,
        )
    };
    assert_eq!(shipped_result, compiled_result);

    // Code from an engine configured otherwise (another docket's build):
    // this engine refuses it; the component is compiled.
    let foreign = tempfile::tempdir().unwrap();
    PluginHost::new(HostConfig {
        wall_clock_backstop: false,
        ..HostConfig::default()
    })
    .unwrap()
    .write_shipped_code(
        foreign.path(),
        "wordstats",
        bytes,
        &docket_plugin_host::host_target(),
    )
    .unwrap();
    let (compiled, foreign_result, cached) = with_shipped(foreign.path());
    assert_eq!(compiled, 1, "recompiled");
    assert_eq!(cached, 2, "the compiled code cached, with its digest");
    assert_eq!(foreign_result, compiled_result);

    // Shipped code that does not match its digest is not deserialized.
    std::fs::write(&artifact, b"tampered").unwrap();
    let (compiled, tampered_result, _) = with_shipped(shipped.path());
    assert_eq!(compiled, 1, "recompiled");
    assert_eq!(tampered_result, compiled_result);
}

#[test]
fn evaluators_resolve_by_name_and_exact_version() {
    let host = host();
    let bytes = docket_bundled::WORDSTATS;
    host.load(Manifest::for_component("wordstats", "0.9.0", bytes), bytes)
        .unwrap();
    let hostile = docket_test_guests::HOSTILE;
    let newer = host
        .load(
            Manifest::for_component("wordstats", "0.10.0", hostile),
            hostile,
        )
        .unwrap();
    assert_eq!(host.resolve_loaded("wordstats").unwrap(), newer);
    assert_eq!(
        host.resolve_loaded("wordstats@0.9.0").unwrap().version,
        "0.9.0"
    );
    let unknown = host.resolve_loaded("nope").unwrap_err();
    assert_eq!(unknown.category, FailureCategory::Configuration);
    assert_eq!(
        unknown.message,
        "unknown evaluator \"nope\" (known: wordstats)"
    );
    // The same bytes under another name resolve under that name.
    let alias = host
        .load(Manifest::for_component("counter", "1.0.0", bytes), bytes)
        .unwrap();
    assert_eq!(host.resolve_loaded("counter").unwrap(), alias);
    assert_eq!(host.resolve_loaded("counter").unwrap().name, "counter");
    let missing = host.resolve_loaded("wordstats@2.0.0").unwrap_err();
    assert_eq!(
        missing.message,
        "evaluator wordstats has no version 2.0.0 (known: 0.9.0, 0.10.0)"
    );
}

#[test]
fn chunk_merges_run_the_plugin_hook_or_fall_back() {
    let host = host();
    let decalogo = load(&host, "decalogo", docket_bundled::DECALOGO);
    let wordstats = load(&host, "wordstats", docket_bundled::WORDSTATS);
    let first = evaluate(&host, &decalogo, "Diagnosis and goals.")
        .unwrap()
        .evaluation;
    let second = evaluate(&host, &decalogo, "Indicators and a baseline.")
        .unwrap()
        .evaluation;
    let merged = host
        .merge_chunks_now(&decalogo, &[first, second])
        .unwrap()
        .expect("decalogo merges");
    let whole = evaluate(
        &host,
        &decalogo,
        "Diagnosis and goals.\n\nIndicators and a baseline.",
    )
    .unwrap()
    .evaluation;
    assert_eq!(merged.scores, whole.scores);
    let plain = evaluate(&host, &wordstats, "x").unwrap().evaluation;
    assert_eq!(
        host.merge_chunks_now(&wordstats, &[plain.clone(), plain])
            .unwrap(),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_evaluate_from_async_tasks_even_when_plugins_write_to_stderr() {
    // WASI's synchronous streams block on a runtime of their own; the port
    // moves the batch off the async worker so a panicking plugin's stderr
    // write cannot take the worker down.
    let host = host();
    let evaluator = load(&host, "hostile", docket_test_guests::HOSTILE);
    let request = |content: &str| EvaluationRequest {
        evaluator: evaluator.clone(),
        id: content.into(),
        title: String::new(),
        content: content.into(),
        metadata: serde_json::Value::Null,
        chunk: ChunkInfo::WHOLE,
        config: Arc::new(serde_json::json!({})),
    };
    let results = host
        .evaluate(
            vec![
                request("fine"),
                request("hostile:panic"),
                request("also fine"),
            ],
            None,
        )
        .await;
    assert_eq!(results.len(), 3);
    assert_eq!(results[0].as_ref().unwrap().evaluation.scores[0].value, 1.0);
    assert_eq!(
        results[1].as_ref().unwrap_err().message,
        "plugin panicked: the hostile plugin panicked on purpose"
    );
    assert!(results[2].is_ok());
}

#[test]
fn an_evaluator_this_host_has_not_loaded_is_retried_elsewhere() {
    let host = host();
    let missing = EvaluatorRef {
        name: "elsewhere".into(),
        version: "1.0.0".into(),
        digest: docket_plugin_host::digest(b"not here"),
    };
    let failure = evaluate(&host, &missing, "text").unwrap_err();
    assert_eq!(failure.category, FailureCategory::Resource);
    assert!(
        failure.message.ends_with("is not loaded in this processor"),
        "{}",
        failure.message
    );
}

#[test]
fn the_same_bytes_under_two_versions_run_each_under_its_own_limits() {
    for starved_first in [false, true] {
        let host = host();
        let bytes = docket_bundled::WORDSTATS;
        let generous = Manifest::for_component("wordstats", "0.1.0", bytes);
        let mut starved = Manifest::for_component("starved", "1.0.0", bytes);
        starved.limits.fuel_base = 1_000;
        starved.limits.fuel_per_kib = 0;
        let (generous, starved) = if starved_first {
            let starved = host.load(starved, bytes).unwrap();
            (host.load(generous, bytes).unwrap(), starved)
        } else {
            let generous = host.load(generous, bytes).unwrap();
            (generous, host.load(starved, bytes).unwrap())
        };
        assert_eq!(generous.digest, starved.digest);
        let text = "Water, water everywhere; nor any drop to drink.";
        let failure = evaluate(&host, &starved, text).expect_err("starved runs out of fuel");
        assert!(
            failure.message.starts_with("fuel limit of 1000 exhausted"),
            "starved first: {starved_first}: {failure}"
        );
        evaluate(&host, &generous, text).expect("wordstats keeps its own limits");
        assert_eq!(host.manifest_of(&starved).unwrap().limits.fuel_base, 1_000);
    }
}
