//! The same evaluator (`wordstats`) written in Rust, Python and JavaScript:
//! component size, precompile time, instantiation and evaluation latency
//! with a fresh instance per call, fuel, and the ratio to the Rust
//! evaluator compiled natively.
//!
//! ```text
//! plugins/build-guests target/guests
//! DOCKET_GUESTS=target/guests cargo bench -p docket-plugin-host --bench languages
//! ```

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use docket_core::model::ChunkInfo;
use docket_core::ports::DocumentView;
use docket_plugin_host::{HostConfig, Manifest, PluginHost, host_target};

mod common;
use common::document;

fn p50(iterations: usize, mut call: impl FnMut()) -> Duration {
    call();
    let mut samples: Vec<Duration> = (0..iterations)
        .map(|_| {
            let started = Instant::now();
            call();
            started.elapsed()
        })
        .collect();
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

fn main() {
    let guests = PathBuf::from(std::env::var("DOCKET_GUESTS").expect(
        "DOCKET_GUESTS: the directory plugins/build-guests wrote the Python and JavaScript components to",
    ));
    let components = [
        ("rust", docket_bundled::WORDSTATS.to_vec()),
        (
            "python",
            std::fs::read(guests.join("wordstats-python.wasm")).expect("python component"),
        ),
        (
            "js",
            std::fs::read(guests.join("wordstats-js.wasm")).expect("js component"),
        ),
    ];
    let small = document(5 * 1024);
    let large = document(100 * 1024);
    let metadata = serde_json::Value::Null;
    let view = |content: &'static str| DocumentView {
        id: "d",
        title: "",
        content,
        metadata: Box::leak(Box::new(metadata.clone())),
        chunk: &ChunkInfo::WHOLE,
    };
    let small: &'static str = Box::leak(small.into_boxed_str());
    let large: &'static str = Box::leak(large.into_boxed_str());
    let native_small = p50(200, || {
        black_box(wordstats::evaluate_text(black_box(small)));
    });
    let native_large = p50(50, || {
        black_box(wordstats::evaluate_text(black_box(large)));
    });
    println!(
        "native Rust wordstats: 5 KB {} ms, 100 KB {} ms (p50)\n",
        ms(native_small),
        ms(native_large)
    );
    println!(
        "| language | component | precompile ({}) | instantiate p50 | evaluate 5 KB p50 | × native | fuel 5 KB | evaluate 100 KB p50 | × native | fuel 100 KB | peak memory |",
        host_target()
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (language, bytes) in &components {
        let host = PluginHost::new(HostConfig {
            max_concurrent_instances: 4,
            ..HostConfig::default()
        })
        .expect("host");
        let started = Instant::now();
        host.precompile(language, bytes, &host_target())
            .expect("precompile");
        let precompile = started.elapsed();
        let manifest = Manifest::for_language("wordstats", "1.0.0", language, bytes);
        let evaluator = host.load(manifest, bytes).expect("load");
        let instantiate = p50(20, || {
            black_box(host.warm_instance(&evaluator).expect("instantiate"));
        });
        let config = serde_json::json!({});
        let mut usage = Vec::new();
        let mut run = |content: &'static str, iterations: usize| {
            let mut last = None;
            let time = p50(iterations, || {
                last = Some(
                    host.evaluate_document(&evaluator, &view(content), &config)
                        .expect("evaluate"),
                );
            });
            usage.push(last.expect("ran").usage);
            time
        };
        let small_time = run(small, 30);
        let large_time = run(large, 10);
        println!(
            "| {language} | {:.1} MB | {:.2} s | {} ms | {} ms | {:.0}× | {:.1} M | {} ms | {:.0}× | {:.0} M | {} MiB |",
            bytes.len() as f64 / 1e6,
            precompile.as_secs_f64(),
            ms(instantiate),
            ms(small_time),
            small_time.as_secs_f64() / native_small.as_secs_f64(),
            usage[0].fuel as f64 / 1e6,
            ms(large_time),
            large_time.as_secs_f64() / native_large.as_secs_f64(),
            usage[1].fuel as f64 / 1e6,
            usage.iter().map(|u| u.peak_memory).max().unwrap_or(0) >> 20,
        );
    }
}
