use strongroom_core::backup::discover::Batch;
use strongroom_core::backup::snapshot::{snapshot_batch, BatchResult, Outcome};
use strongroom_core::ports::RecoveryPoints;
use strongroom_lambda::{parse, FunctionError};

/// A [`Batch`] (one Map item of Discover's output) -> [`BatchResult`].
pub async fn handle<P: RecoveryPoints>(
    payload: serde_json::Value,
    cloud: &P,
) -> Result<BatchResult, FunctionError> {
    let batch: Batch = parse(payload)?;
    let out = snapshot_batch(batch, cloud, time::OffsetDateTime::now_utc()).await?;
    let count = |o| out.results.iter().filter(|r| r.outcome == o).count();
    tracing::info!(
        location = %out.location,
        created = count(Outcome::Created),
        existing = count(Outcome::Existing),
        failed = count(Outcome::Failed),
        unconfirmed = count(Outcome::Unconfirmed),
        pending = out.pending,
        "snapshot batch done"
    );
    Ok(out)
}
