//! PDFs that would take the process down with them: read in a child
//! process with a memory limit, they fail alone.

use std::io::Write;

use lopdf::{Document, Object, Stream, dictionary};

use super::{docket_run_with, document};

/// A one-page PDF whose content stream is `inflated` bytes of spaces,
/// deflated to a few hundred KB: a decompression bomb.
fn inflating_pdf(inflated: usize) -> Vec<u8> {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    let block = vec![b' '; 1 << 20];
    for _ in 0..inflated / block.len() {
        encoder.write_all(&block).unwrap();
    }
    let compressed = encoder.finish().unwrap();
    let mut doc = Document::with_version("1.5");
    let pages = doc.new_object_id();
    let mut content = Stream::new(dictionary! { "Filter" => "FlateDecode" }, compressed);
    content.allows_compression = false;
    let content = doc.add_object(content);
    let page = doc.add_object(dictionary! {
        "Type" => "Page",
        "Parent" => pages,
        "Contents" => content,
        "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
    });
    doc.objects.insert(
        pages,
        Object::Dictionary(
            dictionary! { "Type" => "Pages", "Kids" => vec![page.into()], "Count" => 1 },
        ),
    );
    let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages });
    doc.trailer.set("Root", catalog);
    let mut bytes = Vec::new();
    doc.save_to(&mut bytes).unwrap();
    bytes
}

/// A small file that inflates to 320 MiB, read with a 128 MiB limit: it
/// fails as a data error that names the limit, and the good files beside it
/// are read and evaluated.
#[test]
fn a_decompression_bomb_fails_alone_at_the_memory_limit() {
    let work = tempfile::tempdir().unwrap();
    let inputs = work.path().join("inputs");
    std::fs::create_dir(&inputs).unwrap();
    let bomb = inflating_pdf(320 << 20);
    assert!(bomb.len() < 4 << 20, "{} bytes", bomb.len());
    std::fs::write(inputs.join("bomb.pdf"), bomb).unwrap();
    let good = docket_intake::pdf::write_text_pdf(&["Diagnosis: budget of USD 5 million.".into()])
        .unwrap();
    std::fs::write(inputs.join("good.pdf"), good).unwrap();
    std::fs::write(inputs.join("notes.txt"), "Goals and indicators.").unwrap();

    let (output, results) = docket_run_with(
        work.path(),
        &[inputs.to_str().unwrap()],
        &[(docket_intake::pdf::MEMORY_ENV, "128")],
    );
    assert!(output.status.success(), "{output:?}");
    assert_eq!(results["summary"]["completed_documents"], 2, "{results}");
    assert_eq!(results["summary"]["failed_documents"], 1, "{results}");
    let error = &document(&results, "bomb.pdf")["error"];
    assert_eq!(error["category"], "DATA");
    assert_eq!(
        error["message"],
        "unreadable PDF: reading it needs more than 128 MiB of memory"
    );
    assert_eq!(document(&results, "good.pdf")["status"], "completed");
    assert_eq!(document(&results, "notes.txt")["status"], "completed");
}
