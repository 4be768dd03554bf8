//! Report: every batch's outcome -> the run summary.
mod handler;

use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    strongroom_lambda::init_tracing();
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        handler::handle(event.payload)
    }))
    .await
}
