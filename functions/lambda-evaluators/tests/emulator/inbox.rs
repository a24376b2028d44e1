//! Files dropped in the inbox: S3 notifications through SQS to the ingest
//! handler; a large PDF chunked and merged.

use super::*;

/// Hands the ingest queue's messages to the ingest handler — each twice,
/// as duplicate deliveries would, when `twice` — until `done` holds of
/// acme's jobs (at most ten, newest first); returns them.
pub(crate) async fn ingest_until(
    pipeline: &Pipeline,
    settings: &Settings,
    aws: &AwsBackend,
    twice: bool,
    done: impl Fn(&[docket_core::model::Job]) -> bool,
) -> Vec<docket_core::model::Job> {
    let acme = TenantId::parse("acme").unwrap();
    let filter = docket_core::ports::JobFilter {
        limit: 10,
        ..Default::default()
    };
    for _ in 0..200 {
        let handled = pump(
            aws,
            &settings.names,
            QueueName::Ingest,
            |event| async move {
                if twice {
                    docket_lambda::ingest_messages(pipeline, settings, event.clone()).await;
                }
                docket_lambda::ingest_messages(pipeline, settings, event).await
            },
        )
        .await;
        let jobs = aws.store.list_jobs(&acme, &filter).await.unwrap();
        if done(&jobs) {
            return jobs;
        }
        if handled == 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    panic!("the inbox was not ingested");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_dropped_in_the_inbox_reach_ingest_through_sqs_and_bad_ones_fail_with_the_reason() {
    let (settings, pipeline, aws) = deployment().await;
    let names = &settings.names;
    let plan = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples/plans/harbor-town-strategy.txt"),
    )
    .unwrap();
    let pdf = docket_intake::pdf::write_text_pdf(&[
        "Diagnóstico del municipio.".to_owned(),
        "Metas con indicadores y línea base.".to_owned(),
    ])
    .unwrap();
    let manifest = json!({"documents": [
        {"id": "one", "content": "first document text"},
        {"id": "two", "content": "second document text"},
    ], "options": {"evaluator": "wordstats", "priority": "high"}});
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("inbox/acme/harbor town.txt", plan),
        ("inbox/acme/report.pdf", pdf),
        ("inbox/acme/two.batch.json", manifest.to_string().into_bytes()),
        ("inbox/acme/broken.batch.json", b"{\"documents\": [".to_vec()),
        ("inbox/acme/unknown.batch.json", json!({"documents": [{"id": "x", "content": "text"}], "options": {"evaluator": "nope"}}).to_string().into_bytes()),
        ("outbox/ignored.txt", b"not for us".to_vec()),
    ];
    // Real PutObject calls: S3 notifies the ingest queue.
    for (key, bytes) in &files {
        aws.blobs.put(key, bytes.clone()).await.unwrap();
    }
    // Each notification handed over twice: the second makes no job.
    let jobs: Vec<JobId> = ingest_until(&pipeline, &settings, &aws, true, |jobs| jobs.len() >= 5)
        .await
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(
        jobs.len(),
        5,
        "one job per inbox file; the object outside the inbox is not notified"
    );
    let inbox = aws.queue.depth(QueueName::Ingest).await.unwrap();
    assert_eq!((inbox.visible, inbox.in_flight, inbox.dead), (0, 0, 0));
    run_until_finished(&pipeline, &aws, names, &jobs).await;

    let mut by_first_document = std::collections::HashMap::new();
    for job in &jobs {
        let job = aws.store.job(job).await.unwrap();
        let results: Value = stored_results(&aws, &job.id).await;
        let first = results["documents"][0]["id"].as_str().unwrap().to_owned();
        by_first_document.insert(first, (job, results));
    }
    let (plan_job, plan) = &by_first_document["harbor town.txt"];
    assert_eq!(plan_job.status, docket_core::JobStatus::Completed);
    assert_eq!(
        plan["documents"][0]["scores"]["decalogo"]["total_score"],
        25.0
    );
    let (pdf_job, pdf) = &by_first_document["report.pdf"];
    assert_eq!(pdf_job.status, docket_core::JobStatus::Completed);
    assert_eq!(pdf["documents"][0]["status"], "completed");
    let (manifest_job, manifest) = &by_first_document["one"];
    assert_eq!(manifest_job.evaluator.name, "wordstats");
    assert_eq!(manifest_job.options.priority, docket_core::Priority::High);
    assert_eq!(manifest["document_count"], 2);
    let (broken_job, broken) = &by_first_document["broken.batch.json"];
    assert_eq!(broken_job.status, docket_core::JobStatus::Failed);
    let reason = broken["documents"][0]["error"]["message"].as_str().unwrap();
    assert!(reason.starts_with("invalid JSON: "), "{reason}");
    let (unknown_job, unknown) = &by_first_document["x"];
    assert_eq!(unknown_job.status, docket_core::JobStatus::Failed);
    let reason = unknown["documents"][0]["error"]["message"]
        .as_str()
        .unwrap();
    assert!(reason.starts_with("unknown evaluator \"nope\""), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_60_page_pdf_is_split_in_25_page_chunks_and_merged_in_page_order() {
    let (settings, pipeline, aws) = deployment().await;
    let names = &settings.names;
    let mut pages: Vec<String> = (1..=60)
        .map(|n| format!("Page {n}: general notes."))
        .collect();
    pages[0] = "Diagnostico: la situacion actual del municipio.".into();
    pages[30] = "Metas con indicadores y linea base 2024.".into();
    pages[59] = "Presupuesto de 4.000 millones. Seguimiento trimestral.".into();
    let pdf = docket_intake::pdf::write_text_pdf(&pages).unwrap();
    let key = "inbox/acme/long plan.pdf";
    aws.blobs.put(key, pdf.clone()).await.unwrap();
    let jobs = ingest_until(&pipeline, &settings, &aws, false, |jobs| !jobs.is_empty()).await;
    let job_id = jobs[0].id.clone();
    assert_eq!(jobs[0].counters.items_total, 3, "60 pages in chunks of 25");
    run_until_finished(&pipeline, &aws, names, std::slice::from_ref(&job_id)).await;
    let results: Value = stored_results(&aws, &job_id).await;
    let document = &results["documents"][0];
    assert_eq!(document["chunks"], 3);
    assert_eq!(document["status"], "completed");
    // The same PDF through the embedded backend, read the same way.
    let reference = reference_intake_results(docket_intake::read_bytes(
        key,
        "files/acme/",
        "long plan.pdf",
        "long plan.pdf".into(),
        &pdf,
    ))
    .await;
    assert_eq!(
        comparable(results)["documents"],
        comparable(reference)["documents"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbox_manifest_makes_one_job_over_files_that_the_processors_extract() {
    let (settings, pipeline, aws) = deployment().await;
    let names = &settings.names;
    // The files sit in the tenant's area, outside the inbox: storing them
    // notifies nothing.
    let mut entries = Vec::new();
    for n in 0..40 {
        let path = format!("batch-7/doc-{n:02}.txt");
        let text = "word ".repeat(n + 1);
        aws.blobs
            .put(&format!("files/acme/{path}"), text.into_bytes())
            .await
            .unwrap();
        entries.push(json!({"id": format!("doc-{n}"), "path": path}));
    }
    let mut pages: Vec<String> = (1..=60).map(|n| format!("Page {n}: notes.")).collect();
    pages[30] = "Metas con indicadores y linea base 2024.".into();
    let pdf = docket_intake::pdf::write_text_pdf(&pages).unwrap();
    aws.blobs
        .put("files/acme/batch-7/long plan.pdf", pdf)
        .await
        .unwrap();
    aws.blobs
        .put("files/acme/batch-7/broken.pdf", b"%PDF-1.4 cut".to_vec())
        .await
        .unwrap();
    entries.push(json!({"id": "long", "path": "batch-7/long plan.pdf", "metadata": {"pages": 60}}));
    entries.push(json!({"id": "broken", "key": "files/acme/batch-7/broken.pdf"}));
    entries.push(json!({"id": "missing", "path": "batch-7/none.txt"}));
    entries.push(json!({"id": "stranger", "key": "files/other/secret.txt"}));
    entries.push(json!({"id": "climber", "path": "../other/secret.txt"}));
    let manifest = json!({"documents": entries, "options": {"evaluator": "wordstats"}});
    aws.blobs
        .put(
            "inbox/acme/batch-7.batch.json",
            manifest.to_string().into_bytes(),
        )
        .await
        .unwrap();
    // Each notification handed over twice: still one job.
    let jobs = ingest_until(&pipeline, &settings, &aws, true, |jobs| !jobs.is_empty()).await;
    assert_eq!(
        jobs.len(),
        1,
        "one job for the manifest, none for its files"
    );
    let job_id = jobs[0].id.clone();
    assert_eq!(jobs[0].counters.documents_total, 45);
    // One item a file: the processors read and split them.
    assert_eq!(jobs[0].counters.items_total, 45);
    run_until_finished(&pipeline, &aws, names, std::slice::from_ref(&job_id)).await;
    let results: Value = stored_results(&aws, &job_id).await;
    let documents = results["documents"].as_array().unwrap();
    let by_id = |id: &str| documents.iter().find(|d| d["id"] == id).unwrap();
    for n in [0usize, 17, 39] {
        let d = by_id(&format!("doc-{n}"));
        assert_eq!(d["status"], "completed", "{d}");
        assert_eq!(d["data"]["words"], (n + 1) as u64);
    }
    assert_eq!(by_id("long")["status"], "completed");
    assert_eq!(results["summary"]["completed_documents"], 41);
    let reason = |id: &str| {
        let error = &by_id(id)["error"];
        assert_eq!(error["category"], "DATA", "{id}: {error}");
        error["message"].as_str().unwrap().to_owned()
    };
    assert!(reason("broken").starts_with("unreadable PDF: "));
    assert_eq!(
        reason("missing"),
        "reading the file none.txt: no blob files/acme/batch-7/none.txt"
    );
    assert_eq!(
        reason("stranger"),
        "documents[43].key: \"files/other/secret.txt\" is not a file under files/acme/ (no `..`, no leading `/`)"
    );
    assert!(reason("climber").starts_with("documents[44].path: "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_manifest_naming_a_prefix_makes_one_job_listed_a_page_at_a_time() {
    let (settings, pipeline, aws) = deployment().await;
    let pipeline = pipeline.with_settings(docket_core::pipeline::PipelineSettings {
        listing_page: 25,
        ..pipeline.settings().clone()
    });
    let names = &settings.names;
    // 60 files (three pages of 25; the emulator records outcomes slowly)
    // in the tenant's area: 54 texts, five PDFs, one broken PDF; and one
    // file outside the prefix.
    let pdf = docket_intake::pdf::write_text_pdf(&["Metas e indicadores.".into()]).unwrap();
    for n in 0..60usize {
        let (name, bytes) = match n {
            0..54 => (
                format!("drop/t{n:03}.txt"),
                "word ".repeat(n % 5 + 1).into_bytes(),
            ),
            54..59 => (format!("drop/p{n:03}.pdf"), pdf.clone()),
            _ => ("drop/zz-broken.pdf".to_owned(), b"%PDF-1.4 cut".to_vec()),
        };
        aws.blobs
            .put(&format!("files/acme/{name}"), bytes)
            .await
            .unwrap();
    }
    aws.blobs
        .put("files/acme/dropped-elsewhere.txt", b"not listed".to_vec())
        .await
        .unwrap();
    let manifest = json!({"prefix": "drop/", "options": {"evaluator": "wordstats"}});
    aws.blobs
        .put(
            "inbox/acme/drop.batch.json",
            manifest.to_string().into_bytes(),
        )
        .await
        .unwrap();
    // Every message (notifications and listing pages) handled twice, as
    // duplicate deliveries would be.
    let jobs = ingest_until(&pipeline, &settings, &aws, true, |jobs| {
        jobs.len() == 1 && !jobs[0].counters.intake_open
    })
    .await;
    assert_eq!(jobs.len(), 1, "one job for the prefix");
    let job = &jobs[0];
    assert!(!job.counters.intake_open, "every page listed");
    assert_eq!(job.counters.documents_total, 60);
    assert_eq!(job.counters.items_total, 60);
    run_until_finished(&pipeline, &aws, names, std::slice::from_ref(&job.id)).await;
    let job = aws.store.job(&job.id).await.unwrap();
    assert_eq!(job.counters.documents_succeeded, 59);
    assert_eq!(job.counters.documents_failed, 1);
    let results: Value = stored_results(&aws, &job.id).await;
    let documents = results["documents"].as_array().unwrap();
    assert_eq!(documents.len(), 60);
    let ids: Vec<&str> = documents
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted, "documents in key order");
    assert_eq!(ids[..2], ["p054.pdf", "p055.pdf"]);
    assert_eq!(ids[5], "t000.txt");
    assert_eq!(documents[5 + 7]["data"]["words"], 3);
    assert_eq!(documents[59]["id"], "zz-broken.pdf");
    assert_eq!(documents[59]["error"]["category"], "DATA");
    let work = aws.queue.depth(QueueName::Ingest).await.unwrap();
    assert_eq!((work.visible, work.in_flight, work.dead), (0, 0, 0));
}
