//! The `webhook` function: one signed attempt at each job-finished
//! callback; retries and dead letters follow the queue.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    docket_lambda::init_logging();
    let settings = docket_lambda::Settings::from_env()?;
    let pipeline = &docket_lambda::pipeline(&settings).await?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, lambda_runtime::Error>(
            docket_lambda::deliver_webhooks(pipeline, event.payload).await,
        )
    }))
    .await
}
