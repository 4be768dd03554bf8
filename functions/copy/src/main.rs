//! Copy: one pass of a destination's copy loop (start what the limit allows,
//! check what is in flight, lock and unshare what finished).
mod handler;

#[tokio::main]
async fn main() -> Result<(), strongroom_lambda::Error> {
    strongroom_lambda::run_with(strongroom_aws::AwsCloud::from_env(), handler::handle).await
}
