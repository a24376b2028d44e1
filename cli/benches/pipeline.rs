//! End to end on the embedded backend: `docket run` over 10,000 documents of
//! 5 KB (wordstats and decalogo) and over one 500-page PDF chunked by 25
//! pages. Runs the real binary; peak RSS comes from `/usr/bin/time`.
//!
//! ```text
//! cargo bench -p docket-cli --bench pipeline
//! ```

use std::path::Path;
use std::process::Command;

const DOCUMENTS: usize = 10_000;
const DOCUMENT_BYTES: usize = 5 * 1024;

fn plan_text() -> String {
    [
        include_str!("../../examples/plans/plan-municipal-la-esperanza.md"),
        include_str!("../../examples/plans/riverside-county-development-plan.md"),
    ]
    .join("\n\n")
}

fn write_corpus(dir: &Path) {
    let source = plan_text().repeat(2);
    std::fs::create_dir_all(dir).expect("corpus dir");
    for n in 0..DOCUMENTS {
        // Each document starts somewhere else in the source text.
        let mut start = (n * 97) % (source.len() - DOCUMENT_BYTES);
        while !source.is_char_boundary(start) {
            start += 1;
        }
        let mut end = start + DOCUMENT_BYTES - 16;
        while !source.is_char_boundary(end) {
            end -= 1;
        }
        let text = format!("Document {n:06}\n{}", &source[start..end]);
        std::fs::write(dir.join(format!("doc-{n:05}.txt")), text).expect("write document");
    }
}

fn write_pdf(path: &Path) {
    let source = plan_text();
    let pages: Vec<String> = (0..500)
        .map(|n| {
            let at = (n * 131) % (source.len() - 1500);
            let mut start = at;
            while !source.is_char_boundary(start) {
                start += 1;
            }
            let mut end = start + 1400;
            while !source.is_char_boundary(end) {
                end -= 1;
            }
            format!("Page {}\n{}", n + 1, &source[start..end])
        })
        .collect();
    let bytes = docket_cli::pdf::write_text_pdf(&pages).expect("encode PDF");
    std::fs::write(path, bytes).expect("write PDF");
}

struct Measured {
    pipeline_seconds: f64,
    /// Items per second from submission until every item had an outcome.
    processing_rate: f64,
    wall_seconds: f64,
    peak_rss_mib: Option<f64>,
    documents: usize,
}

fn run_docket(work: &Path, inputs: &Path, extra: &[&str]) -> Measured {
    let timed = Path::new("/usr/bin/time").exists();
    let mut command = if timed {
        let mut c = Command::new("/usr/bin/time");
        c.args(["-f", "%M %e", env!("CARGO_BIN_EXE_docket")]);
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_docket"))
    };
    let started = std::time::Instant::now();
    let output = command
        .current_dir(work)
        .env("DOCKET_STATE", work.join("state"))
        .args(["run", "--quiet", "--rows", "0", "--out"])
        .arg(work.join("out"))
        .arg(inputs)
        .args(extra)
        .output()
        .expect("run docket");
    let wall = started.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "docket failed:\n{stdout}\n{stderr}"
    );
    // "job … completed in 1.23 s — 10000 documents (…"
    let first = stdout.lines().next().unwrap_or_default();
    let seconds: f64 = first
        .split(" in ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|s| s.parse().ok())
        .expect("pipeline time in the summary");
    let documents: usize = first
        .split("— ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|s| s.parse().ok())
        .expect("document count in the summary");
    // "phases: … processing 1.76 s (5682 items/s) · …"
    let processing_rate: f64 = stdout
        .lines()
        .find_map(|line| line.strip_prefix("phases: "))
        .and_then(|line| line.split(" items/s)").next())
        .and_then(|head| head.rsplit('(').next())
        .and_then(|rate| rate.parse().ok())
        .expect("processing rate in the phases line");
    let peak = stderr
        .lines()
        .last()
        .and_then(|line| line.split_whitespace().next())
        .and_then(|kib| kib.parse::<f64>().ok())
        .filter(|_| timed)
        .map(|kib| kib / 1024.0);
    Measured {
        pipeline_seconds: seconds,
        processing_rate,
        wall_seconds: wall,
        peak_rss_mib: peak,
        documents,
    }
}

fn main() {
    let root = std::env::temp_dir().join(format!("docket-bench-{}", std::process::id()));
    let corpus = root.join("corpus");
    write_corpus(&corpus);
    let pdf = root.join("long-plan.pdf");
    write_pdf(&pdf);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let workers = 2 * cores;

    println!(
        "| run | documents | pipeline s | docs/s end to end | processing items/s | process wall s | peak RSS MiB |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for evaluator in ["wordstats", "decalogo"] {
        // A warm-up run compiles the component into the cache, as any run
        // after the first would find it.
        let work = root.join(format!("work-{evaluator}"));
        std::fs::create_dir_all(&work).expect("work dir");
        run_docket(&work, &corpus, &["--evaluator", evaluator]);
        let measured = run_docket(&work, &corpus, &["--evaluator", evaluator]);
        println!(
            "| {DOCUMENTS} × 5 KB, {evaluator}, {workers} workers on {cores} cores | {} | {:.2} | {:.0} | {:.0} | {:.2} | {} |",
            measured.documents,
            measured.pipeline_seconds,
            measured.documents as f64 / measured.pipeline_seconds,
            measured.processing_rate,
            measured.wall_seconds,
            measured
                .peak_rss_mib
                .map_or("n/a".into(), |m| format!("{m:.0}"))
        );
    }
    let work = root.join("work-pdf");
    std::fs::create_dir_all(&work).expect("work dir");
    let measured = run_docket(
        &work,
        &pdf,
        &["--evaluator", "decalogo", "--chunk-pages", "25"],
    );
    println!(
        "| one 500-page PDF, 25 pages per item (20 items), decalogo | {} | {:.2} | — | {:.0} | {:.2} | {} |",
        measured.documents,
        measured.pipeline_seconds,
        measured.processing_rate,
        measured.wall_seconds,
        measured
            .peak_rss_mib
            .map_or("n/a".into(), |m| format!("{m:.0}"))
    );
    let _ = std::fs::remove_dir_all(&root);
}
