//! Prune: delete what the policy's retention no longer keeps, at every location.
mod handler;

use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    strongroom_lambda::init_tracing();
    let cloud = strongroom_aws::AwsCloud::from_env().await;
    let cloud = &cloud;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        handler::handle(event.payload, cloud)
    }))
    .await
}
