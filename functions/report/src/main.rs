//! Report: every batch's outcome -> the run summary.
mod handler;

#[tokio::main]
async fn main() -> Result<(), strongroom_lambda::Error> {
    strongroom_lambda::run(|event| async move { handler::handle(event) }).await
}
