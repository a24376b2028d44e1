//! PDF intake against files that break parsers: generated pathological
//! PDFs (always), committed encrypted fixtures, and Debian's own manuals
//! from `/usr/share/doc` (skipped, with a message, where the packages are
//! not installed).

mod fixtures;

use std::path::Path;
use std::time::{Duration, Instant};

use docket_core::FailureCategory;
use docket_core::model::DocumentBody;
use docket_core::pipeline::IntakeDocument;
use docket_intake::pdf::{self, PdfError, PdfLimits};

fn committed(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pdf")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn good_pdf() -> Vec<u8> {
    pdf::write_text_pdf(&[
        "A good document, page one".to_owned(),
        "Page two".to_owned(),
    ])
    .expect("write a PDF")
}

/// A Debian manual, or `None` (and a note) when its package is absent.
fn debian_manual(path: &str) -> Option<Vec<u8>> {
    match std::fs::read(path) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            eprintln!("skipped {path}: {e} (install its Debian package to run this case)");
            None
        }
    }
}

fn by_id<'a>(documents: &'a [IntakeDocument], id: &str) -> &'a IntakeDocument {
    documents
        .iter()
        .find(|d| d.id() == id)
        .unwrap_or_else(|| panic!("no document {id}"))
}

fn data_failure(document: &IntakeDocument) -> &str {
    match document {
        IntakeDocument::Rejected(r) => {
            assert_eq!(r.failure.category, FailureCategory::Data, "{}", r.id);
            &r.failure.message
        }
        other => panic!("{} was not rejected", other.id()),
    }
}

fn pages(document: &IntakeDocument) -> &[String] {
    match document {
        IntakeDocument::Accepted(a) => match &a.body {
            DocumentBody::Pages(pages) => pages,
            other => panic!("{}: not pages: {other:?}", a.id),
        },
        IntakeDocument::Rejected(r) => panic!("{} was rejected: {}", r.id, r.failure.message),
        other => panic!("{} was not read", other.id()),
    }
}

/// Every pathological file fails alone, with its own reason, under the
/// default budget that `docket run` uses; the good PDF beside them reads.
#[test]
fn pathological_pdfs_fail_alone_with_their_reason_and_good_ones_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let good = good_pdf();
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("good.pdf", good.clone()),
        ("page-tree-loop.pdf", fixtures::page_tree_loop()),
        ("deep-page-tree.pdf", fixtures::deep_page_tree(1_000)),
        ("too-many-pages.pdf", fixtures::wide_page_tree(10_001)),
        ("self-drawing-form.pdf", fixtures::self_drawing_form()),
        ("encrypted-rc4.pdf", fixtures::encrypted(2)),
        (
            "encrypted-aes256.pdf",
            committed("encrypted-user-password.pdf"),
        ),
        (
            "owner-password-only.pdf",
            committed("encrypted-owner-password-only.pdf"),
        ),
        ("truncated.pdf", fixtures::truncated(&good)),
        ("garbage.pdf", fixtures::garbage_after_header()),
    ];
    for (name, bytes) in &files {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }

    let intake = docket_intake::read_inputs(&[dir.path().to_owned()]).unwrap();
    let documents = &intake.documents;
    assert_eq!(documents.len(), files.len());

    assert_eq!(
        pages(by_id(documents, "good.pdf")),
        ["A good document, page one", "Page two"]
    );
    assert_eq!(
        pages(by_id(documents, "owner-password-only.pdf")),
        ["Encrypted fixture, page 1", "Page 2"]
    );
    let expected = [
        (
            "page-tree-loop.pdf",
            "unreadable PDF: its page tree loops: object 1 0 is reached twice",
        ),
        (
            "deep-page-tree.pdf",
            "unreadable PDF: its page tree is deeper than 64 levels",
        ),
        (
            "too-many-pages.pdf",
            "unreadable PDF: it has more than 10000 pages",
        ),
        (
            "self-drawing-form.pdf",
            "unreadable PDF: form XObject 2 0 draws itself",
        ),
        (
            "encrypted-rc4.pdf",
            "unreadable PDF: it is encrypted and needs a password",
        ),
        (
            "encrypted-aes256.pdf",
            "unreadable PDF: it is encrypted and needs a password",
        ),
        (
            "truncated.pdf",
            "unreadable PDF: failed parsing cross reference table: invalid start value",
        ),
        (
            "garbage.pdf",
            "unreadable PDF: failed parsing cross reference table: invalid start value",
        ),
    ];
    for (id, message) in expected {
        assert_eq!(data_failure(by_id(documents, id)), message, "{id}");
    }
}

/// The looping page tree makes the previous extraction (`pdf-extract`
/// called directly) spin for ever; here it fails at once, before
/// `pdf-extract` sees it.
#[test]
fn a_looping_page_tree_is_refused_before_extraction() {
    let error = pdf::extract_pages(&fixtures::page_tree_loop()).unwrap_err();
    assert_eq!(error, PdfError::PageTreeLoop { object: (1, 0) });
}

/// Trees may be as deep as the limit and no deeper.
#[test]
fn page_tree_depth_is_bounded_at_the_limit() {
    let limits = PdfLimits {
        max_tree_depth: 8,
        ..PdfLimits::default()
    };
    let at_limit = pdf::extract_pages_with(&fixtures::deep_page_tree(8), &limits).unwrap();
    assert_eq!(at_limit, ["deep"]);
    let over = pdf::extract_pages_with(&fixtures::deep_page_tree(9), &limits).unwrap_err();
    assert_eq!(over, PdfError::PageTreeTooDeep { limit: 8 });
}

#[test]
fn page_count_is_bounded_at_the_limit() {
    let limits = PdfLimits {
        max_pages: 50,
        ..PdfLimits::default()
    };
    let at_limit = pdf::extract_pages_with(&fixtures::wide_page_tree(50), &limits).unwrap();
    assert_eq!(at_limit.len(), 50);
    assert!(at_limit.iter().all(|page| page == "a page"), "{at_limit:?}");
    let over = pdf::extract_pages_with(&fixtures::wide_page_tree(51), &limits).unwrap_err();
    assert_eq!(over, PdfError::TooManyPages { limit: 50 });
}

#[test]
fn files_over_the_size_limit_are_refused_unread() {
    let good = good_pdf();
    let limits = PdfLimits {
        max_bytes: good.len() - 1,
        ..PdfLimits::default()
    };
    let error = pdf::extract_pages_with(&good, &limits).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "the file's {} bytes exceed the {}-byte limit",
            good.len(),
            good.len() - 1
        )
    );
}

#[test]
fn extracted_text_is_bounded() {
    // 2,000 lines of 61 characters: about 124 KB of text.
    let bytes = fixtures::heavy_page(2_000);
    let limits = PdfLimits {
        max_text_bytes: 10_000,
        ..PdfLimits::default()
    };
    let error = pdf::extract_pages_with(&bytes, &limits).unwrap_err();
    assert_eq!(
        error,
        PdfError::TooMuchText {
            limit: 10_000,
            page: 1
        }
    );
    assert_eq!(
        error.to_string(),
        "its text exceeds the 10000-byte limit (at page 1)"
    );
    let all = pdf::extract_pages(&bytes).unwrap();
    assert_eq!(all[0].lines().count(), 2_000);
}

/// A file that is slow rather than malformed fails at the deadline, and
/// its worker, which looks at the clock as it draws text, stops soon
/// after instead of running on detached.
#[test]
fn a_file_slower_than_the_deadline_fails_at_the_deadline_and_its_worker_stops() {
    let bytes = fixtures::heavy_page(50_000);
    let limits = PdfLimits {
        deadline: Duration::from_millis(100),
        ..PdfLimits::default()
    };
    let error = pdf::extract_pages_with(&bytes, &limits).unwrap_err();
    assert_eq!(error, PdfError::TimedOut(Duration::from_millis(100)));
    assert_eq!(
        error.to_string(),
        "text extraction did not finish within 100 ms"
    );
    let waited = Instant::now();
    while pdf::overrunning_extractions() > 0 {
        assert!(
            waited.elapsed() < Duration::from_secs(60),
            "the overrunning worker did not stop"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Debian manuals (typeset by TeX, DocBook and others, none written here)
/// read with their page counts and first words, as `pdftotext` reads them.
#[test]
fn debian_manuals_read_page_by_page() {
    let manuals = [
        (
            "/usr/share/doc/libtasn1-doc/libtasn1.pdf",
            36,
            "Libtasn1\n Abstract Syntax Notation One (ASN.1) library",
        ),
        (
            "/usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf",
            17,
            "Shared MIME-info Database",
        ),
        (
            "/usr/share/doc/camlidl/camlidl-1.04.doc.pdf",
            26,
            "Camlidl user’s manual\nVersion 1.04\n\nXavier Leroy",
        ),
    ];
    for (path, page_count, start) in manuals {
        let Some(bytes) = debian_manual(path) else {
            continue;
        };
        let read = pdf::extract_pages(&bytes).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(read.len(), page_count, "{path}");
        assert!(read[0].starts_with(start), "{path}: {:?}", &read[0]);
    }
}

/// Halves of real manuals, and the one manual of the set `pdf-extract`
/// cannot read, fail alone beside a real manual that reads.
#[test]
fn broken_debian_manuals_fail_alone_beside_a_good_one() {
    let Some(good) = debian_manual("/usr/share/doc/libtasn1-doc/libtasn1.pdf") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| std::fs::write(dir.path().join(name), bytes).unwrap();
    write("libtasn1.pdf", &good);
    write("libtasn1-half.pdf", &fixtures::truncated(&good));
    let unreadable = debian_manual("/usr/share/doc/why3-doc-pdf/manual.pdf");
    if let Some(why3) = &unreadable {
        write("why3.pdf", why3);
    }
    let intake = docket_intake::read_inputs(&[dir.path().to_owned()]).unwrap();
    let documents = &intake.documents;
    assert_eq!(pages(by_id(documents, "libtasn1.pdf")).len(), 36);
    assert_eq!(
        data_failure(by_id(documents, "libtasn1-half.pdf")),
        "unreadable PDF: failed parsing cross reference table: invalid start value"
    );
    if unreadable.is_some() {
        assert_eq!(
            data_failure(by_id(documents, "why3.pdf")),
            "unreadable PDF: the PDF parser failed on this file"
        );
    }
}
