//! Documents by reference: files stored whole, their text extracted by the
//! processor that evaluates them. A 200-page PDF is evaluated in 25-page
//! calls and merged as the embedded intake's chunks are; a broken,
//! encrypted, oversized or missing file fails alone with its reason; a
//! failed referenced document is retried from its file.

// Test code: a failed unwrap fails the test.
#![allow(clippy::unwrap_used)]

use docket_core::model::{DocumentBody, DocumentSpec, JobOptions, ReferencedDocument};
use docket_core::pipeline::{IntakeDocument, PipelineSettings};
use docket_intake::formats::write_docx;
use docket_intake::pdf::write_text_pdf;
use serde_json::{Value, json};

use docket_tests::Harness;

/// Stores `bytes` as an uploaded file; the document that references it.
async fn stored(harness: &Harness, name: &str, bytes: &[u8]) -> IntakeDocument {
    let key = format!("uploads/local/test/{name}");
    harness.ports.blobs.put(&key, bytes.to_vec()).await.unwrap();
    IntakeDocument::Referenced(ReferencedDocument {
        id: name.to_owned(),
        title: name.to_owned(),
        key,
        name: name.to_owned(),
        bytes: bytes.len() as u64,
        metadata: json!({"source": name}),
    })
}

fn document<'a>(results: &'a Value, id: &str) -> &'a Value {
    results["documents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == id)
        .unwrap_or_else(|| panic!("no document {id}"))
}

/// Two hundred pages of plan text, a different passage on each.
fn plan_pages() -> Vec<String> {
    let plan = include_str!("../../examples/plans/plan-vereda-el-roble.txt");
    let lines: Vec<&str> = plan.lines().filter(|l| !l.trim().is_empty()).collect();
    (0..200)
        .map(|n| {
            format!(
                "Página {}\n{}\n{}",
                n + 1,
                lines[n % lines.len()],
                lines[(n * 7 + 3) % lines.len()]
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_referenced_pdf_is_split_in_the_processor_and_merged_as_intake_chunks_are() {
    let harness = Harness::new(None);
    let pages = plan_pages();
    let pdf = write_text_pdf(&pages).unwrap();
    let referenced = stored(&harness, "plan.pdf", &pdf).await;
    let by_reference = harness
        .submit_intake("decalogo", vec![referenced], JobOptions::default())
        .await;
    // One work item: the processor reads the file and splits it.
    assert_eq!(by_reference.counters.items_total, 1);
    // The same file read at intake, as `docket run` reads it.
    let (body, _) = docket_intake::extract("plan.pdf", &pdf).unwrap();
    assert!(matches!(&body, DocumentBody::Pages(p) if p.len() == 200));
    let inline = harness
        .submit_intake(
            "decalogo",
            vec![IntakeDocument::Accepted(DocumentSpec {
                id: "plan.pdf".into(),
                title: "plan.pdf".into(),
                body,
                metadata: json!({"source": "plan.pdf"}),
            })],
            JobOptions::default(),
        )
        .await;
    assert_eq!(inline.counters.items_total, 8, "25 pages an item");
    harness.run_until_finalized(&by_reference.id, 40).await;
    harness.run_until_finalized(&inline.id, 40).await;

    let by_reference = harness.results(&by_reference.id).await;
    let inline = harness.results(&inline.id).await;
    let (a, b) = (
        document(&by_reference, "plan.pdf"),
        document(&inline, "plan.pdf"),
    );
    assert_eq!(a["status"], "completed", "{a}");
    for field in ["scores", "findings", "labels", "data"] {
        assert_eq!(a[field], b[field], "{field}");
    }
    assert!(!a["findings"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_unusable_file_fails_alone_with_its_reason() {
    let mut harness = Harness::new(None);
    harness.pipeline = harness.pipeline.with_settings(PipelineSettings {
        max_file_bytes: 64 * 1024,
        ..Harness::settings()
    });
    let good_pdf = write_text_pdf(&["Metas e indicadores del plan.".into()]).unwrap();
    let docx = write_docx(&["Plan de agua potable.", "Metas para 2027."], None).unwrap();
    let html = b"<!doctype html><html><body><h1>Harbor Town</h1><p>A strategy.</p></body></html>";
    let mut documents = vec![
        stored(&harness, "good.pdf", &good_pdf).await,
        stored(&harness, "plan.docx", &docx).await,
        stored(&harness, "page.html", html).await,
        stored(&harness, "notes.txt", b"Plain notes of the plan.").await,
        stored(&harness, "broken.pdf", b"%PDF-1.4 not really a PDF").await,
        stored(&harness, "fake.docx", b"PK\x03\x04 not an archive").await,
        stored(
            &harness,
            "legacy.doc",
            &[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1, 0, 0],
        )
        .await,
        stored(&harness, "latin1.txt", b"caf\xe9").await,
        stored(&harness, "blank.txt", b"  \n ").await,
        stored(&harness, "big.txt", &vec![b'a'; 64 * 1024 + 1]).await,
    ];
    documents.push(IntakeDocument::Referenced(ReferencedDocument {
        id: "gone.txt".into(),
        title: "gone.txt".into(),
        key: "uploads/local/test/gone.txt".into(),
        name: "gone.txt".into(),
        bytes: 0,
        metadata: Value::Null,
    }));
    let job = harness
        .submit_intake("wordstats", documents, JobOptions::default())
        .await;
    let job = harness.run_until_finalized(&job.id, 40).await;
    assert_eq!(job.counters.documents_total, 11);
    let results = harness.results(&job.id).await;
    for id in ["good.pdf", "plan.docx", "page.html", "notes.txt"] {
        let d = document(&results, id);
        assert_eq!(d["status"], "completed", "{d}");
        assert_eq!(d["error"], Value::Null);
    }
    let failure = |id: &str| {
        let d = document(&results, id);
        assert_eq!(d["status"], "failed", "{d}");
        d["error"].clone()
    };
    let data = |id: &str| {
        let error = failure(id);
        assert_eq!(error["category"], "DATA", "{id}: {error}");
        error["message"].as_str().unwrap().to_owned()
    };
    assert!(
        data("broken.pdf").starts_with("unreadable PDF: "),
        "{}",
        data("broken.pdf")
    );
    assert!(data("fake.docx").starts_with("not a DOCX (the zip archive does not open: "));
    assert!(data("legacy.doc").starts_with("a legacy (.doc) or password-protected Office file"));
    assert_eq!(
        data("latin1.txt"),
        "not UTF-8 text: invalid byte at offset 3"
    );
    assert_eq!(data("blank.txt"), "the document has only white space");
    assert_eq!(
        data("big.txt"),
        "the file is 65537 bytes, over the limit of 65536 bytes"
    );
    assert_eq!(
        data("gone.txt"),
        "reading the file gone.txt: no blob uploads/local/test/gone.txt"
    );
    assert_eq!(results["summary"]["failures_by_category"]["DATA"], 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_referenced_document_is_retried_from_its_file() {
    let harness = Harness::new(None);
    let referenced = stored(&harness, "later.txt", b"\xff").await;
    let job = harness
        .submit_intake("wordstats", vec![referenced], JobOptions::default())
        .await;
    let job = harness.run_until_finalized(&job.id, 20).await;
    let recovery = harness.pipeline.recovery(&job).await.unwrap();
    match recovery.documents.as_slice() {
        [IntakeDocument::Referenced(document)] => {
            assert_eq!(document.key, "uploads/local/test/later.txt");
            assert_eq!(document.metadata, json!({"source": "later.txt"}));
        }
        other => panic!("{other:?}"),
    }
}
