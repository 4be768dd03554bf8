use strongroom_core::ports::ObjectStore;
use strongroom_core::report::{report_run, ReportRun, RunSummary};
use strongroom_lambda::{parse, FunctionError};

/// The run's files (Discover's findings, the Map Run's result files, Prune's
/// report) -> the run report, written to `files.report`; returns its summary.
pub async fn handle<S: ObjectStore>(
    payload: serde_json::Value,
    store: &S,
) -> Result<RunSummary, FunctionError> {
    let request: ReportRun = parse(payload)?;
    let out = report_run(request, store).await?;
    tracing::info!(
        policy = %out.run.policy,
        outcome = ?out.outcome,
        failures = out.failures,
        report = %out.report,
        "run report"
    );
    Ok(out)
}
