//! The `upload` function: the API's router behind API Gateway (HTTP API,
//! payload v2).

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    docket_lambda::init_logging();
    let settings = docket_lambda::Settings::from_env()?;
    let pipeline = docket_lambda::pipeline(&settings).await?;
    lambda_http::run(docket_lambda::api(pipeline, &settings)).await
}
