use strongroom_core::backup::snapshot::BatchResult;
use strongroom_core::backup::status::refresh_batch;
use strongroom_core::ports::RecoveryPoints;
use strongroom_lambda::{parse, FunctionError};

/// A [`BatchResult`] -> the same with fresh states and `pending` recounted.
pub async fn handle<P: RecoveryPoints>(
    payload: serde_json::Value,
    cloud: &P,
) -> Result<BatchResult, FunctionError> {
    let batch: BatchResult = parse(payload)?;
    let out = refresh_batch(batch, cloud, time::OffsetDateTime::now_utc()).await?;
    tracing::info!(location = %out.location, pending = out.pending, polls = out.polls, "status checked");
    Ok(out)
}
