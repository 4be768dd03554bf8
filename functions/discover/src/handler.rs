use strongroom_core::backup::discover::{discover, DiscoverOutput, DiscoverRequest};
use strongroom_core::ports::Inventory;
use strongroom_lambda::{parse, FunctionError};

/// `{"input": <run input>, "execution": "...", "started_at": "..."}` -> batches.
pub async fn handle<I: Inventory>(
    payload: serde_json::Value,
    inventory: &I,
) -> Result<DiscoverOutput, FunctionError> {
    let request: DiscoverRequest = parse(payload)?;
    let out = discover(request, inventory).await?;
    tracing::info!(
        policy = %out.run.policy,
        scheduled_time = %strongroom_core::model::format_time(out.run.scheduled_time),
        selected = out.found.values().sum::<usize>(),
        skipped = out.skipped.len(),
        batches = out.batches.len(),
        "discovered"
    );
    Ok(out)
}
