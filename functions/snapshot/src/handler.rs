use strongroom_core::backup::discover::Batch;
use strongroom_core::backup::snapshot::{snapshot_batch, BatchResult, Outcome};
use strongroom_core::ports::{ObjectStore, RecoveryPoints};
use strongroom_core::runs::BUCKET_VARIABLE;
use strongroom_lambda::{parse, FunctionError};

/// A [`Batch`] (one Map item of Discover's output) -> [`BatchResult`].
/// With `STRONGROOM_BUCKET` set (the stack's bucket), what a restore of each
/// new recovery point needs is recorded there.
pub async fn handle<P: RecoveryPoints + ObjectStore>(
    payload: serde_json::Value,
    cloud: &P,
) -> Result<BatchResult, FunctionError> {
    let batch: Batch = parse(payload)?;
    let bucket = std::env::var(BUCKET_VARIABLE)
        .ok()
        .filter(|b| !b.is_empty());
    let out = snapshot_batch(
        batch,
        cloud,
        time::OffsetDateTime::now_utc(),
        bucket.as_deref(),
    )
    .await?;
    let count = |o| out.results.iter().filter(|r| r.outcome == o).count();
    tracing::info!(
        location = %out.location,
        created = count(Outcome::Created),
        existing = count(Outcome::Existing),
        failed = count(Outcome::Failed),
        unconfirmed = count(Outcome::Unconfirmed),
        unrecorded = out.results.iter().filter(|r| r.record_error.is_some()).count(),
        pending = out.pending,
        "snapshot batch done"
    );
    Ok(out)
}
