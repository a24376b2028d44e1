//! Results stored once, in parts, and streamed: finalizing a job page by
//! page and part by part gives exactly the bytes of the whole job's results
//! serialized at once; pages of documents put together give the whole file.

// Test code: a failed unwrap fails the test.
#![allow(clippy::unwrap_used)]

use docket_core::aggregate::{self, ResultsDocument};
use docket_core::model::{Chunking, DocumentBody, DocumentSpec, JobOptions, RejectedDocument};
use docket_core::pipeline::IntakeDocument;
use docket_core::pipeline::PipelineSettings;
use docket_core::ports::{Evaluators, JobStore};
use docket_core::results::{ResultsFormat, ResultsView};
use docket_core::{Failure, FailureCategory};
use docket_tests::Harness;

/// Text of about `words` words, different for every `seed`.
fn text(seed: usize, words: usize) -> String {
    const WORDS: [&str; 12] = [
        "plan",
        "water",
        "road",
        "school",
        "budget",
        "health",
        "river",
        "market",
        "housing",
        "transport",
        "energy",
        "park",
    ];
    let mut out = String::new();
    for n in 0..words {
        out.push_str(WORDS[(seed * 7 + n * 5 + n / 3) % WORDS.len()]);
        out.push(if n % 40 == 39 { '\n' } else { ' ' });
        if n % 120 == 119 {
            out.push('\n');
        }
    }
    out
}

/// The job's results computed the way finalizing did before results were
/// streamed: every outcome in memory, split documents merged by the
/// evaluator, the documents and the summary built whole, serialized once.
async fn whole_results(harness: &Harness, job: &docket_core::model::Job) -> String {
    let store = &harness.backend.store;
    let outcomes = store
        .outcomes_page(&job.id, None, usize::MAX)
        .await
        .unwrap();
    let mut merged = std::collections::HashMap::new();
    let mut by_document: std::collections::BTreeMap<u32, Vec<_>> = Default::default();
    for outcome in &outcomes {
        by_document
            .entry(outcome.document)
            .or_default()
            .push(outcome.clone());
    }
    for (document, chunks) in by_document {
        if let Some(chunks) = aggregate::chunks_to_merge(&chunks) {
            let evaluations = chunks.iter().map(|c| c.evaluation.clone()).collect();
            let own = harness.host.merge_chunks(&job.evaluator, evaluations).await;
            merged.insert(
                document,
                own.map(|own| {
                    own.unwrap_or_else(|| docket_core::evaluation::default_merge(&chunks))
                }),
            );
        }
    }
    let documents =
        aggregate::assemble_documents(outcomes, |document, _| merged.remove(&document).unwrap());
    let evaluations = documents
        .iter()
        .filter(|d| d.status == aggregate::DocumentStatus::Completed)
        .map(aggregate::DocumentResult::summary_input)
        .collect();
    let summary = aggregate::summarize(
        &documents,
        harness.host.summarize(&job.evaluator, evaluations).await,
    );
    let mut header = harness
        .pipeline
        .results_index(&job.id)
        .await
        .unwrap()
        .header;
    header.summary = summary;
    serde_json::to_string(&ResultsDocument { header, documents }).unwrap()
}

async fn streamed(harness: &Harness, job: &docket_core::model::Job, view: ResultsView) -> Vec<u8> {
    harness
        .pipeline
        .results_stream(&job.id, view)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_finalized_in_pages_and_parts_are_the_whole_jobs_results_byte_for_byte() {
    const DOCUMENTS: usize = 10_000;
    let mut harness = Harness::new(None);
    // Small pages and parts: a 10,000-document job finalizes in hundreds
    // of each.
    let settings = PipelineSettings {
        outcomes_page: 97,
        results_part_bytes: 16 * 1024,
        ..Harness::settings()
    };
    harness.pipeline = harness.pipeline.with_settings(settings);
    let documents: Vec<IntakeDocument> = (0..DOCUMENTS)
        .map(|n| {
            let id = format!("doc-{n:05}.txt");
            if n % 500 == 7 {
                // Rejected at intake: failed, with no stored text.
                return IntakeDocument::Rejected(RejectedDocument {
                    title: id.clone(),
                    id,
                    failure: Failure::new(FailureCategory::Data, "the file is empty"),
                });
            }
            // Every 25th document is long enough to be split in chunks.
            let words = if n % 25 == 3 { 900 } else { 30 + n % 50 };
            IntakeDocument::Accepted(DocumentSpec {
                title: id.clone(),
                id,
                body: DocumentBody::Text(text(n, words)),
                metadata: serde_json::Value::Null,
            })
        })
        .collect();
    let options = JobOptions {
        chunking: Chunking {
            pages: None,
            text_kib: Some(2),
        },
        ..JobOptions::default()
    };
    let job = harness.submit_intake("wordstats", documents, options).await;
    assert!(
        job.counters.items_total > DOCUMENTS as u32,
        "some documents are split"
    );
    let job = harness.run_until_finalized(&job.id, 100_000).await;
    let index = harness.pipeline.results_index(&job.id).await.unwrap();
    assert!(index.parts.len() > 100, "{} parts", index.parts.len());
    assert_eq!(index.documents(), DOCUMENTS as u64);
    assert_eq!(index.header.summary.failed_documents, 20);
    assert_eq!(index.header.summary.evaluator_summary_error, None);

    let json = streamed(&harness, &job, ResultsView::whole(ResultsFormat::Json)).await;
    let whole = whole_results(&harness, &job).await;
    assert_eq!(String::from_utf8(json.clone()).unwrap(), whole);

    // Pages of any size, put together, are the whole file.
    let jsonl = streamed(&harness, &job, ResultsView::whole(ResultsFormat::Jsonl)).await;
    for limit in [1_000u64, 333] {
        let mut pages = Vec::new();
        let mut from = 0;
        loop {
            let view = ResultsView {
                from,
                limit: Some(limit),
                ..ResultsView::whole(ResultsFormat::Jsonl)
            };
            let stream = harness
                .pipeline
                .results_stream(&job.id, view)
                .await
                .unwrap();
            let next = stream.next_cursor();
            pages.extend(stream.collect().await.unwrap());
            match next {
                Some(next) => from = next,
                None => break,
            }
        }
        assert_eq!(pages, jsonl, "pages of {limit}");
    }
    let parsed: serde_json::Value = serde_json::from_slice(&json).unwrap();
    let lines: Vec<serde_json::Value> = jsonl
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(parsed["documents"].as_array().unwrap(), &lines);
}
