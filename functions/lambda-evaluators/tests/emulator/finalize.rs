//! The finalizer on DynamoDB and S3 within its invocation's deadline: a
//! job it cannot write in one invocation stores a part and a checkpoint
//! and is named again; the next invocations go on from the checkpoint,
//! and the job is finalized once, with the results of a finalize in one go.
//! Results past a size are also whole files (S3 multipart uploads), and
//! the results route sends readers to them: `303 See Other` to a presigned
//! GET, which the emulator serves.

use std::time::Instant;

use docket_core::results::{ResultsFormat, ResultsStream, ResultsView};

use super::*;

/// The deployment's settings with parts of `part_bytes` and whole files
/// past any size (standing for past Lambda's 6 MB).
pub(crate) fn small_parts(settings: &Settings, part_bytes: usize) -> PipelineSettings {
    PipelineSettings {
        results_part_bytes: part_bytes,
        max_queue_depth: Some(settings.max_queue_depth),
        whole_files_past: Some(0),
        ..PipelineSettings::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finalizer_out_of_time_checkpoints_and_the_next_invocation_goes_on_from_there() {
    let (settings, pipeline, aws) = deployment().await;
    let names = &settings.names;
    // Parts of a few documents and pages of a few outcomes: many parts,
    // each read through several DynamoDB Query pages.
    let pipeline = pipeline.with_settings(PipelineSettings {
        outcomes_page: 25,
        ..small_parts(&settings, 8 * 1024)
    });
    let documents = reference::documents();
    let job = reference::submit_text(&pipeline, "decalogo", &documents).await;
    for _ in 0..200 {
        let mut handled = 0;
        for priority in docket_core::Priority::ALL {
            handled += runner::pump(&aws, names, QueueName::Work(priority), |event| {
                docket_lambda::process(&pipeline, names, event)
            })
            .await;
        }
        if handled == 0
            && aws
                .store
                .job(&job.id)
                .await
                .unwrap()
                .counters
                .items_pending()
                == 0
        {
            break;
        }
    }
    // Every invocation has no time left but the margin: it stores one part
    // and a checkpoint, and sends the job's finalize message again.
    let mut invocations = 0;
    while aws.store.job(&job.id).await.unwrap().finished_at.is_none() {
        let received = runner::pump(&aws, names, QueueName::Finalize, |event| {
            docket_lambda::finalize(
                &pipeline,
                event,
                Some(Instant::now() + docket_lambda::FINALIZE_MARGIN),
            )
        })
        .await;
        invocations += usize::from(received > 0);
        assert!(invocations < 1_000, "the finalize does not end");
    }
    let index = pipeline.results_index(&job.id).await.unwrap();
    assert!(index.parts.len() > 10, "{} parts", index.parts.len());
    assert!(index.whole_files);
    // One part per invocation, then one whole file per invocation.
    assert_eq!(invocations, index.parts.len() + 3);
    assert_eq!(
        pipeline.finalize(&job.id).await.unwrap(),
        docket_core::pipeline::FinalizeOutcome::AlreadyFinalized
    );
    let results = stored_results(&aws, &job.id).await;
    let reference = reference_results(&documents).await;
    assert_eq!(comparable(results), comparable(reference));
}

/// `GET path` through the upload handler: (status, `location` header).
async fn get_location(router: &axum::Router, path: &str, token: &str) -> (u16, Option<String>) {
    let response = api_response(router, api_request("GET", path, token, None)).await;
    let status = response["statusCode"].as_u64().unwrap() as u16;
    let location = response["headers"]["location"].as_str().map(str::to_owned);
    (status, location)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_past_what_one_response_carries_are_a_redirect_to_a_presigned_whole_file() {
    let (settings, pipeline, aws) = deployment().await;
    let names = &settings.names;
    let pipeline = pipeline.with_settings(small_parts(&settings, 16 * 1024));
    let documents: Vec<(String, String)> = reference::documents().into_iter().take(60).collect();
    let pairs: Vec<(&str, &str)> = documents
        .iter()
        .map(|(id, text)| (id.as_str(), text.as_str()))
        .collect();
    let job = upload(&pipeline, &settings, &pairs).await;
    run_until_finished(&pipeline, &aws, names, std::slice::from_ref(&job)).await;
    let index = pipeline.results_index(&job).await.unwrap();
    assert!(index.parts.len() > 1 && index.whole_files, "{index:?}");

    let token = api_key(&pipeline).await;
    let router = upload_function(&settings).await;
    let client = reqwest::Client::new();
    for (query, format) in [
        ("", ResultsFormat::Json),
        ("?format=jsonl", ResultsFormat::Jsonl),
        ("?format=csv", ResultsFormat::Csv),
    ] {
        let path = format!("/api/v1/batch/results/{job}{query}");
        let (status, location) = get_location(&router, &path, &token).await;
        assert_eq!(status, 303, "{path}");
        let location = location.unwrap();
        assert!(location.contains("X-Amz-Signature="), "{location}");
        // The presigned URL reads without the API key.
        let fetched = client.get(&location).send().await.unwrap();
        assert_eq!(fetched.status(), 200, "{location}");
        let bytes = fetched.bytes().await.unwrap().to_vec();
        let streamed = ResultsStream::open(aws.blobs.clone(), &job, ResultsView::whole(format))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert_eq!(bytes, streamed, "{format:?}");
    }
    // A page is not a whole file: it is served, not redirected.
    let (status, location) = get_location(
        &router,
        &format!("/api/v1/batch/results/{job}?limit=7"),
        &token,
    )
    .await;
    assert_eq!((status, location), (200, None));
    // A view the whole files do not hold (without evidence) is streamed.
    let (status, _) = get_location(
        &router,
        &format!("/api/v1/batch/results/{job}?include_evidence=false"),
        &token,
    )
    .await;
    assert_eq!(status, 200);
}
