//! The `processor` function: evaluates work items from the three priority
//! queues, reporting partial batch failures.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{LambdaEvent, service_fn};

fn main() -> Result<(), lambda_runtime::Error> {
    // First, before any runtime starts: a PDF extraction child does its
    // file and exits here.
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
    let settings = docket_lambda::Settings::from_env()?;
    let pipeline = &docket_lambda::pipeline(&settings).await?;
    let names = &settings.names;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let deadline = docket_lambda::deadline_of(event.context.deadline);
        Ok::<SqsBatchResponse, lambda_runtime::Error>(
            docket_lambda::process_within(pipeline, names, event.payload, Some(deadline)).await,
        )
    }))
    .await
}
