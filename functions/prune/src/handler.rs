use strongroom_core::ports::{ObjectStore, Pruning};
use strongroom_core::prune::{parse_request, prune, store_report, PruneReport};
use strongroom_lambda::FunctionError;

/// `{"policy": {...}, "dry_run": false, "now": "...", "report_to": {...}}` ->
/// [`PruneReport`] (with `report_to`: the counts, and the full report written
/// there). Bad input (including a bad retention) fails before any call.
pub async fn handle<P: Pruning + ObjectStore>(
    payload: serde_json::Value,
    cloud: &P,
) -> Result<PruneReport, FunctionError> {
    let (mut request, rules, now) = parse_request(payload, time::OffsetDateTime::now_utc())?;
    let report_to = request.report_to.take();
    let mut out = prune(request, rules, now, cloud).await?;
    if let Some(to) = &report_to {
        out = store_report(out, cloud, to).await;
    }
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
