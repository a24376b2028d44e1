//! Evaluation overhead: what a fresh instance per document costs, and
//! WebAssembly against the same evaluator compiled natively.
//!
//! ```text
//! cargo bench -p docket-plugin-host --bench evaluation
//! ```
//!
//! Prints a table of per-call latencies (p50/p90 in µs) and ratios.

use std::hint::black_box;
use std::time::{Duration, Instant};

use docket_core::model::ChunkInfo;
use docket_core::ports::DocumentView;
use docket_plugin_host::{HostConfig, Manifest, PluginHost};

mod common;
use common::document;

fn doc<'a>(content: &'a str, metadata: &'a serde_json::Value) -> DocumentView<'a> {
    DocumentView {
        id: "d",
        title: "",
        content,
        metadata,
        chunk: &ChunkInfo::WHOLE,
    }
}

fn percentiles(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    (at(0.5), at(0.9))
}

fn measure(iterations: usize, mut call: impl FnMut()) -> (f64, f64) {
    for _ in 0..iterations / 10 + 1 {
        call();
    }
    let samples = (0..iterations)
        .map(|_| {
            let started = Instant::now();
            call();
            started.elapsed()
        })
        .collect();
    percentiles(samples)
}

struct Row {
    what: String,
    p50: f64,
    p90: f64,
    note: String,
}

fn main() {
    let config = serde_json::json!({});
    let config_text = config.to_string();
    let metadata = serde_json::Value::Null;
    let mut rows: Vec<Row> = Vec::new();
    let mut add = |what: &str, (p50, p90): (f64, f64), note: String| {
        rows.push(Row {
            what: what.to_owned(),
            p50,
            p90,
            note,
        })
    };

    for backstop in [true, false] {
        let host = PluginHost::new(HostConfig {
            wall_clock_backstop: backstop,
            ..HostConfig::default()
        })
        .expect("engine");
        let load = |name: &str, bytes: &[u8]| {
            host.load(Manifest::for_component(name, "0.1.0", bytes), bytes)
                .expect("load")
        };
        let wordstats = load("wordstats", docket_bundled::WORDSTATS);
        let decalogo = load("decalogo", docket_bundled::DECALOGO);
        let hostile = load("hostile", docket_test_guests::HOSTILE);
        let limits = if backstop {
            "fuel + epoch"
        } else {
            "fuel only"
        };

        // Instantiation overhead: a trivial evaluation, fresh vs kept alive.
        let tiny = "ok".to_owned();
        let fresh = measure(5000, || {
            black_box(
                host.evaluate_document(&hostile, &doc(&tiny, &metadata), &config)
                    .expect("eval"),
            );
        });
        let mut warm_instance = host.warm_instance(&hostile).expect("warm");
        let warm = measure(5000, || {
            black_box(
                warm_instance
                    .evaluate(&doc(&tiny, &metadata), &config_text)
                    .expect("eval"),
            );
        });
        add(
            &format!("trivial call, fresh instance [{limits}]"),
            fresh,
            format!("overhead vs kept-alive: {:.1} µs p50", fresh.0 - warm.0),
        );
        add(
            &format!("trivial call, kept-alive instance [{limits}]"),
            warm,
            String::new(),
        );

        for (name, evaluator, sizes) in [
            ("wordstats", &wordstats, &[5 * 1024][..]),
            ("decalogo", &decalogo, &[5 * 1024, 100 * 1024][..]),
        ] {
            for &size in sizes {
                let text = document(size);
                let iterations = if size > 50_000 { 300 } else { 2000 };
                let native = measure(iterations, || {
                    if name == "wordstats" {
                        black_box(wordstats::evaluate_text(&text));
                    } else {
                        black_box(decalogo::evaluate_text(&text));
                    }
                });
                let fresh = measure(iterations, || {
                    black_box(
                        host.evaluate_document(evaluator, &doc(&text, &metadata), &config)
                            .expect("eval"),
                    );
                });
                let mut warm_instance = host.warm_instance(evaluator).expect("warm");
                let warm = measure(iterations, || {
                    black_box(
                        warm_instance
                            .evaluate(&doc(&text, &metadata), &config_text)
                            .expect("eval"),
                    );
                });
                let kib = size / 1024;
                if backstop {
                    add(&format!("{name} {kib} KiB, native"), native, String::new());
                }
                add(
                    &format!("{name} {kib} KiB, fresh instance [{limits}]"),
                    fresh,
                    format!("{:.2}x native", fresh.0 / native.0),
                );
                add(
                    &format!("{name} {kib} KiB, kept-alive instance [{limits}]"),
                    warm,
                    format!("{:.2}x native", warm.0 / native.0),
                );
            }
        }
    }

    // Loading a precompiled artifact from the cache.
    let dir = std::env::temp_dir().join(format!("docket-bench-cache-{}", std::process::id()));
    let cached = HostConfig {
        cache_dir: Some(dir.clone()),
        ..HostConfig::default()
    };
    let bytes = docket_bundled::DECALOGO;
    let started = Instant::now();
    let first = PluginHost::new(cached.clone()).expect("engine");
    first
        .load(Manifest::for_component("decalogo", "0.1.0", bytes), bytes)
        .expect("load");
    let compile = started.elapsed();
    let loads: Vec<Duration> = (0..20)
        .map(|_| {
            let host = PluginHost::new(cached.clone()).expect("engine");
            let started = Instant::now();
            host.load(Manifest::for_component("decalogo", "0.1.0", bytes), bytes)
                .expect("load");
            started.elapsed()
        })
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    let (load_p50, load_p90) = percentiles(loads);

    println!("| measurement | p50 µs | p90 µs | note |");
    println!("|---|---:|---:|---|");
    for row in rows {
        println!(
            "| {} | {:.1} | {:.1} | {} |",
            row.what, row.p50, row.p90, row.note
        );
    }
    println!(
        "| decalogo component ({} KB): compile + cache | {:.0} | | first load, ms: {:.1} |",
        bytes.len() / 1000,
        compile.as_secs_f64() * 1e6,
        compile.as_secs_f64() * 1e3
    );
    println!(
        "| decalogo: load precompiled from cache (digest verified) | {load_p50:.0} | {load_p90:.0} | includes sha256 of the component and the artifact |"
    );
}
