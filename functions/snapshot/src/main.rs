//! Snapshot: one batch of targets -> one recovery point each, exactly once.
mod handler;

#[tokio::main]
async fn main() -> Result<(), strongroom_lambda::Error> {
    strongroom_lambda::run_with(strongroom_aws::AwsCloud::from_env(), handler::handle).await
}
