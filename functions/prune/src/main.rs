//! Prune: delete what the policy's retention no longer keeps, at every location.
mod handler;

#[tokio::main]
async fn main() -> Result<(), strongroom_lambda::Error> {
    strongroom_lambda::run_with(strongroom_aws::AwsCloud::from_env(), handler::handle).await
}
