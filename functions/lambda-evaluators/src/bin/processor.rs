//! The `processor` function: evaluates work items from the three priority
//! queues, reporting partial batch failures.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{LambdaEvent, service_fn};

fn main() -> Result<(), lambda_runtime::Error> {
    docket_lambda::run_reading_pdfs(serve)
}

async fn serve() -> Result<(), lambda_runtime::Error> {
    let settings = docket_lambda::Settings::from_env()?;
    let pipeline = &docket_lambda_evaluators::pipeline(&settings).await?;
    let names = &settings.names;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let deadline = docket_lambda::deadline_of(event.context.deadline);
        Ok::<SqsBatchResponse, lambda_runtime::Error>(
            docket_lambda::process_within(pipeline, names, event.payload, Some(deadline)).await,
        )
    }))
    .await
}
