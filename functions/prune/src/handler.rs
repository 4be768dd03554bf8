use strongroom_core::ports::Pruning;
use strongroom_core::prune::{parse_request, prune, PruneReport};
use strongroom_lambda::FunctionError;

/// `{"policy": {...}, "dry_run": false, "now": "..."}` -> [`PruneReport`].
/// Bad input (including a bad retention) fails before any call.
pub async fn handle<P: Pruning>(
    payload: serde_json::Value,
    cloud: &P,
) -> Result<PruneReport, FunctionError> {
    let (request, rules, now) = parse_request(payload, time::OffsetDateTime::now_utc())?;
    let out = prune(request, rules, now, cloud).await?;
    tracing::info!(
        policy = %out.policy,
        dry_run = out.dry_run,
        deleted = out.deleted,
        kept = out.kept,
        refused = out.refused,
        failed = out.failed,
        "pruned"
    );
    Ok(out)
}
