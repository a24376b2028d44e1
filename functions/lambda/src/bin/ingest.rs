//! The `ingest` function: each file dropped under `inbox/` in the bucket
//! becomes a job (S3 notifies the ingest queue; this function consumes it).

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{LambdaEvent, service_fn};

fn main() -> Result<(), lambda_runtime::Error> {
    docket_lambda::run_reading_pdfs(serve)
}

async fn serve() -> Result<(), lambda_runtime::Error> {
    let settings = &docket_lambda::Settings::from_env()?;
    let pipeline = &docket_lambda::pipeline(settings).await?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, lambda_runtime::Error>(
            docket_lambda::ingest_messages(pipeline, settings, event.payload).await,
        )
    }))
    .await
}
