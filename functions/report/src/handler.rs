use strongroom_core::report::{report, ReportRequest, RunReport};
use strongroom_lambda::{parse, FunctionError};

/// Discover's summary plus every Map item's outcome -> [`RunReport`].
/// (Later stages add the S3 report, metrics and the completion event here.)
pub fn handle(payload: serde_json::Value) -> Result<RunReport, FunctionError> {
    let request: ReportRequest = parse(payload)?;
    let out = report(request);
    tracing::info!(
        policy = %out.run.policy,
        outcome = ?out.outcome,
        failures = out.failures.len(),
        "run report"
    );
    Ok(out)
}
