//! The `ingest` function: each file dropped under `inbox/` in the bucket
//! becomes a job (S3 notifies the ingest queue; this function consumes it).

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{LambdaEvent, service_fn};

fn main() -> Result<(), lambda_runtime::Error> {
    // First, before any runtime starts: a PDF extraction child does its
    // file and exits here (a PDF dropped in the inbox is read here).
    let isolated = docket_intake::pdf::use_child_processes();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve(isolated))
}

async fn serve(isolated: std::io::Result<()>) -> Result<(), lambda_runtime::Error> {
    docket_lambda::init_logging();
    if let Err(error) = isolated {
        tracing::warn!(%error, "PDF extraction runs in process, without a memory limit");
    }
    let settings = &docket_lambda::Settings::from_env()?;
    let pipeline = &docket_lambda::pipeline(settings).await?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, lambda_runtime::Error>(
            docket_lambda::ingest_messages(pipeline, settings, event.payload).await,
        )
    }))
    .await
}
