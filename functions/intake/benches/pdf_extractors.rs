//! Compares PDF text extractors on real PDFs that no one here wrote
//! (Debian's manuals, where their packages are installed) and on the
//! generated pathological PDFs of the intake tests, and prints a Markdown
//! table: pages, characters, agreement with `pdftotext` (Debian's
//! `poppler-utils`, the reference where installed), time per file, and
//! failures.
//!
//! ```sh
//! cargo bench -p docket-intake --features compare-extractors --bench pdf_extractors
//! ```
//!
//! Every extraction runs in a child process (this binary run again with
//! `--one`), killed after [`CHILD_TIMEOUT`]: some extractors hang or
//! overflow their stack on some of these files, which would otherwise
//! take the benchmark down with them.

#[path = "../tests/pdf/fixtures.rs"]
mod fixtures;

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long one extraction of one file may take before it is killed.
const CHILD_TIMEOUT: Duration = Duration::from_secs(30);

/// Debian manuals: (package, path under `/usr/share/doc`).
const DEBIAN: &[(&str, &str)] = &[
    (
        "auto-multiple-choice-doc-pdf",
        "auto-multiple-choice/auto-multiple-choice.en.pdf",
    ),
    (
        "auto-multiple-choice-doc-pdf",
        "auto-multiple-choice/auto-multiple-choice.ja.pdf",
    ),
    (
        "auto-multiple-choice-doc-pdf",
        "auto-multiple-choice/latex/automultiplechoice.pdf",
    ),
    (
        "auto-multiple-choice-doc-pdf",
        "auto-multiple-choice/latex/sample-separate.pdf",
    ),
    ("bzip2-doc", "bzip2/manual.pdf.gz"),
    ("camlidl-doc", "camlidl/camlidl-1.04.doc.pdf"),
    (
        "docbook-xsl-doc-pdf",
        "docbook-xsl-doc-pdf/doc/reference.pdf.gz",
    ),
    ("fontconfig", "fontconfig/fontconfig-user.pdf.gz"),
    ("gri-pdf-doc", "gri/gri.pdf.gz"),
    ("libtasn1-doc", "libtasn1-doc/libtasn1.pdf"),
    ("nettle-dev", "nettle-dev/nettle.pdf.gz"),
    (
        "shared-mime-info",
        "shared-mime-info/shared-mime-info-spec.pdf",
    ),
    ("valgrind", "valgrind/valgrind_manual.pdf.gz"),
    ("why3-doc-pdf", "why3-doc-pdf/manual.pdf"),
    ("zlib1g-dev", "zlib1g-dev/crc-doc.1.0.pdf.gz"),
];

const EXTRACTORS: &[&str] = &["pdf-extract-per-page", "docket", "lopdf", "pdf_oxide"];

/// One extractor's reading of one file: text per page.
fn extract(extractor: &str, bytes: Vec<u8>) -> Result<Vec<String>, String> {
    match extractor {
        // The previous `extract_pages`: pdf-extract's page-by-page call.
        "pdf-extract-per-page" => {
            std::panic::catch_unwind(|| pdf_extract::extract_text_from_mem_by_pages(&bytes))
                .map_err(|_| "panicked".to_owned())?
                .map_err(|e| e.to_string())
        }
        "docket" => docket_intake::pdf::extract_pages(&bytes).map_err(|e| e.to_string()),
        "lopdf" => {
            let mut doc = lopdf::Document::load_mem(&bytes).map_err(|e| e.to_string())?;
            if doc.is_encrypted() {
                doc.decrypt("").map_err(|e| e.to_string())?;
            }
            let pages: Vec<u32> = doc.get_pages().keys().copied().collect();
            pages
                .iter()
                .map(|n| {
                    doc.extract_text(&[*n])
                        .map_err(|e| format!("page {n}: {e}"))
                })
                .collect()
        }
        "pdf_oxide" => {
            let doc = pdf_oxide::PdfDocument::from_bytes(bytes).map_err(|e| e.to_string())?;
            let count = doc.page_count().map_err(|e| e.to_string())?;
            (0..count)
                .map(|n| {
                    doc.extract_text(n)
                        .map_err(|e| format!("page {}: {e}", n + 1))
                })
                .collect()
        }
        other => Err(format!("unknown extractor {other}")),
    }
}

/// Child mode: `--one EXTRACTOR PDF OUT` extracts up to three times (once
/// when the first run takes over a second), writes the pages joined by
/// form feeds to OUT and prints `ok MILLISECONDS` or `err MESSAGE`.
fn one(extractor: &str, pdf: &Path, out: &Path) {
    let bytes = std::fs::read(pdf).expect("read the PDF");
    let mut best = Duration::MAX;
    let mut result = Err(String::new());
    for _ in 0..3 {
        let started = Instant::now();
        result = extract(extractor, bytes.clone());
        best = best.min(started.elapsed());
        if best > Duration::from_secs(1) || result.is_err() {
            break;
        }
    }
    match result {
        Ok(pages) => {
            std::fs::write(out, pages.join("\u{c}")).expect("write the text");
            println!("ok {:.1}", best.as_secs_f64() * 1e3);
        }
        Err(e) => println!(
            "err {:.1} {}",
            best.as_secs_f64() * 1e3,
            e.replace('\n', " ")
        ),
    }
}

enum Outcome {
    Read { pages: Vec<String>, ms: f64 },
    Failed { reason: String, ms: Option<f64> },
}

fn run_child(extractor: &str, pdf: &Path, out: &Path) -> Outcome {
    let exe = std::env::current_exe().expect("own path");
    let mut child = Command::new(exe)
        .args(["--one", extractor])
        .arg(pdf)
        .arg(out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start a child");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if started.elapsed() > CHILD_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Outcome::Failed {
                reason: format!("still running after {} s (killed)", CHILD_TIMEOUT.as_secs()),
                ms: None,
            };
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut stdout);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut stderr);
    }
    if let Some(signal) = status.signal() {
        let why = if stderr.contains("stack overflow") {
            "stack overflow: the process aborted".to_owned()
        } else {
            format!("killed by signal {signal}")
        };
        return Outcome::Failed {
            reason: why,
            ms: None,
        };
    }
    let line = stdout.lines().last().unwrap_or_default();
    let mut parts = line.splitn(3, ' ');
    let kind = parts.next().unwrap_or_default();
    let ms = parts.next().and_then(|ms| ms.parse().ok());
    match (kind, ms) {
        ("ok", Some(ms)) => {
            let text = std::fs::read_to_string(out).unwrap_or_default();
            Outcome::Read {
                pages: text.split('\u{c}').map(str::to_owned).collect(),
                ms,
            }
        }
        ("err", ms) => Outcome::Failed {
            reason: parts.next().unwrap_or_default().to_owned(),
            ms,
        },
        _ => Outcome::Failed {
            reason: format!("exited {status} without a result"),
            ms: None,
        },
    }
}

/// `pdftotext`'s pages, or `None` when it is not installed or fails.
fn reference(pdf: &Path) -> Option<Vec<String>> {
    let output = Command::new("pdftotext")
        .args(["-enc", "UTF-8"])
        .arg(pdf)
        .arg("-")
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut pages: Vec<String> = text.split('\u{c}').map(str::to_owned).collect();
    if pages.last().is_some_and(|p| p.trim().is_empty()) {
        pages.pop();
    }
    Some(pages)
}

/// Agreement of two texts as the F1 score of their words (as multisets).
fn word_f1(text: &str, reference: &str) -> f64 {
    let count = |s: &str| {
        let mut words: HashMap<String, usize> = HashMap::new();
        for word in s.split_whitespace() {
            *words.entry(word.to_owned()).or_default() += 1;
        }
        words
    };
    let (ours, theirs) = (count(text), count(reference));
    let common: usize = ours
        .iter()
        .map(|(w, n)| (*n).min(theirs.get(w).copied().unwrap_or(0)))
        .sum();
    let (total_ours, total_theirs) = (ours.values().sum::<usize>(), theirs.values().sum::<usize>());
    if total_ours + total_theirs == 0 {
        return 1.0;
    }
    2.0 * common as f64 / (total_ours + total_theirs) as f64
}

/// The files: Debian's manuals present here, then the generated ones.
fn corpus(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut files = Vec::new();
    for (package, path) in DEBIAN {
        let source = Path::new("/usr/share/doc").join(path);
        let Ok(bytes) = std::fs::read(&source) else {
            eprintln!("skipped {path}: install the Debian package {package}");
            continue;
        };
        let bytes = if path.ends_with(".gz") {
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(&bytes[..])
                .read_to_end(&mut plain)
                .expect("gunzip");
            plain
        } else {
            bytes
        };
        let name = path.trim_end_matches(".gz").replace('/', "_");
        let target = dir.join(&name);
        std::fs::write(&target, bytes).expect("write");
        files.push((
            format!("{package}: {}", path.trim_end_matches(".gz")),
            target,
        ));
    }
    let text: Vec<String> = (1..=3)
        .map(|n| format!("Generated page {n}.\nThe quick brown fox jumps over the lazy dog."))
        .collect();
    let good = docket_intake::pdf::write_text_pdf(&text).expect("write PDF");
    let generated: Vec<(&str, Vec<u8>)> = vec![
        ("generated: 3 text pages", good.clone()),
        ("generated: 5,000 pages", fixtures::wide_page_tree(5_000)),
        ("generated: 20,000-line page", fixtures::heavy_page(20_000)),
        ("generated: page-tree loop", fixtures::page_tree_loop()),
        (
            "generated: 1,000-deep page tree",
            fixtures::deep_page_tree(1_000),
        ),
        (
            "generated: self-drawing form",
            fixtures::self_drawing_form(),
        ),
        ("generated: encrypted (RC4)", fixtures::encrypted(2)),
        ("generated: truncated", fixtures::truncated(&good)),
        (
            "generated: garbage after header",
            fixtures::garbage_after_header(),
        ),
    ];
    for (n, (label, bytes)) in generated.into_iter().enumerate() {
        let target = dir.join(format!("generated-{n}.pdf"));
        std::fs::write(&target, bytes).expect("write");
        files.push((label.to_owned(), target));
    }
    files
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--one") && args.len() == 5 {
        one(&args[2], Path::new(&args[3]), Path::new(&args[4]));
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let files = corpus(dir.path());
    println!(
        "Each cell: pages · characters · word F1 against pdftotext · ms (best of 3), or why it failed.\n"
    );
    println!("| file | pdftotext pages | {} |", EXTRACTORS.join(" | "));
    println!("|---|---:|{}", "---|".repeat(EXTRACTORS.len()));
    let mut totals: HashMap<&str, (usize, usize, f64, f64, usize)> = HashMap::new();
    for (label, pdf) in &files {
        let reference = reference(pdf);
        let reference_pages = reference
            .as_ref()
            .map_or("–".to_owned(), |p| p.len().to_string());
        let mut cells = Vec::new();
        for extractor in EXTRACTORS {
            let out = dir.path().join("out.txt");
            let _ = std::fs::remove_file(&out);
            let total = totals.entry(extractor).or_default();
            match run_child(extractor, pdf, &out) {
                Outcome::Read { pages, ms } => {
                    let chars: usize = pages.iter().map(|p| p.chars().count()).sum();
                    let f1 = reference
                        .as_ref()
                        .map(|r| word_f1(&pages.join("\n"), &r.join("\n")));
                    let shown = f1.map_or("–".to_owned(), |f| format!("{f:.3}"));
                    cells.push(format!("{} · {chars} · {shown} · {ms:.0}", pages.len()));
                    total.0 += 1;
                    total.2 += ms;
                    if let Some(f1) = f1 {
                        total.3 += f1;
                        total.4 += 1;
                    }
                }
                Outcome::Failed { reason, ms } => {
                    let ms = ms.map_or(String::new(), |ms| format!(" ({ms:.0} ms)"));
                    cells.push(format!("fails: {reason}{ms}"));
                    total.1 += 1;
                }
            }
        }
        println!("| {label} | {reference_pages} | {} |", cells.join(" | "));
    }
    println!();
    println!(
        "| extractor | files read | failures | total ms of files read | mean word F1 of files read |"
    );
    println!("|---|---:|---:|---:|---:|");
    for extractor in EXTRACTORS {
        let (read, failed, ms, f1, scored) = totals.get(extractor).copied().unwrap_or_default();
        let mean = if scored == 0 { 0.0 } else { f1 / scored as f64 };
        println!("| {extractor} | {read} | {failed} | {ms:.0} | {mean:.3} |");
    }
}
