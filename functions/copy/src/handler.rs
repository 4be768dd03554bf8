use strongroom_core::copy::{copy_pass, Copies, CopyPassOutput, CopyRequest};
use strongroom_core::ports::{Identity, ObjectStore, RecoveryPoints};
use strongroom_lambda::{parse, FunctionError};

/// A [`CopyRequest`] (the run, its resolved policy and files, a destination
/// index, the snapshot stage's output) -> what this pass started and what
/// remains; the destination's full state is in the run's bucket.
pub async fn handle<C: Copies + RecoveryPoints + ObjectStore + Identity>(
    payload: serde_json::Value,
    cloud: &C,
) -> Result<CopyPassOutput, FunctionError> {
    let request: CopyRequest = parse(payload)?;
    let out = copy_pass(request, cloud, time::OffsetDateTime::now_utc()).await?;
    tracing::info!(
        destination = %out.location,
        started = out.counts.started,
        reused = out.counts.reused,
        completed = out.counts.completed,
        failed = out.counts.failed,
        remaining = out.remaining,
        passes = out.passes,
        "copy pass"
    );
    Ok(out)
}
