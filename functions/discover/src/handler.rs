use strongroom_core::backup::discover::{discover_run, DiscoverOutput, DiscoverRequest};
use strongroom_core::ports::{Inventory, ObjectStore};
use strongroom_core::runs::BUCKET_VARIABLE;
use strongroom_lambda::{parse, FunctionError};

/// `{"input": <run input>, "execution": "...", "started_at": "..."}` -> the
/// batches and findings, written to the bucket `STRONGROOM_BUCKET` names;
/// returns their counts and locations.
pub async fn handle<C: Inventory + ObjectStore>(
    payload: serde_json::Value,
    cloud: &C,
) -> Result<DiscoverOutput, FunctionError> {
    let request: DiscoverRequest = parse(payload)?;
    let bucket = std::env::var(BUCKET_VARIABLE).ok();
    let out = discover_run(request, cloud, bucket.as_deref()).await?;
    tracing::info!(
        policy = %out.run.policy,
        scheduled_time = %strongroom_core::model::format_time(out.run.scheduled_time),
        selected = out.found.values().sum::<usize>(),
        skipped = out.skipped,
        batches = out.batches,
        items = %out.files.object(&out.files.batches),
        "discovered"
    );
    Ok(out)
}
