//! Restore: every step of the restore state machine (validate, start,
//! check, finalize, clean up), one binary so that the steps share one role
//! and one build.
mod handler;

#[tokio::main]
async fn main() -> Result<(), strongroom_lambda::Error> {
    strongroom_lambda::run_with(strongroom_aws::AwsCloud::from_env(), handler::handle).await
}
