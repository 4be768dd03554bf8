//! Report: the run's files -> the run report in S3, and its summary.
mod handler;

#[tokio::main]
async fn main() -> Result<(), strongroom_lambda::Error> {
    strongroom_lambda::run_with(strongroom_aws::AwsCloud::from_env(), handler::handle).await
}
