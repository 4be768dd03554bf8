//! Discover: policy -> batches of selected sources.
mod handler;

#[tokio::main]
async fn main() -> Result<(), strongroom_lambda::Error> {
    strongroom_lambda::run_with(strongroom_aws::AwsCloud::from_env(), handler::handle).await
}
