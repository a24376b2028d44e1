//! The `finalizer` function: merges, summarizes and writes the results of
//! each job named on the finalize queue, exactly once.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    docket_lambda::init_logging();
    let settings = docket_lambda::Settings::from_env()?;
    let pipeline = &docket_lambda_evaluators::pipeline(&settings).await?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, lambda_runtime::Error>(
            docket_lambda::finalize(
                pipeline,
                event.payload,
                Some(docket_lambda::deadline_of(event.context.deadline)),
            )
            .await,
        )
    }))
    .await
}
