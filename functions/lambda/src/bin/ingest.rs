//! The `ingest` function: each file dropped under `inbox/` in the bucket
//! becomes a job.

use aws_lambda_events::event::s3::S3Event;
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    docket_lambda::init_logging();
    let settings = &docket_lambda::Settings::from_env()?;
    let pipeline = &docket_lambda::pipeline(settings).await?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<S3Event>| async move {
        let jobs = docket_lambda::ingest(pipeline, settings, event.payload).await?;
        Ok::<_, lambda_runtime::Error>(serde_json::json!({ "jobs": jobs }))
    }))
    .await
}
