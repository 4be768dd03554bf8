use strongroom_core::restore::run::{
    check, clean_up, copy_files, finalize, start, validate, Restores, StepInput,
};
use strongroom_core::runs::BUCKET_VARIABLE;
use strongroom_lambda::{parse, FunctionError};

/// `{"step": "validate", "request": {...}, "execution": "<name>"}` and the
/// later steps' `{"step": "start" | "check" | "copy-files" | "finalize" | "clean-up",
/// "state": {...}}` -> the restore's state (validate, start, check) or its
/// report (finalize, clean-up). A bad request fails validate before any
/// call that makes anything.
pub async fn handle<C: Restores>(
    payload: serde_json::Value,
    cloud: &C,
) -> Result<serde_json::Value, FunctionError> {
    let input: StepInput = parse(payload)?;
    let now = time::OffsetDateTime::now_utc();
    let out = match input {
        StepInput::Validate { request, execution } => {
            let bucket = std::env::var(BUCKET_VARIABLE)
                .ok()
                .filter(|b| !b.is_empty());
            let state = validate(request, &execution, bucket.as_deref(), cloud, now).await?;
            tracing::info!(
                execution = %state.execution,
                recovery_point = %state.point.id,
                location = %state.location,
                recorded = state.recorded,
                "restore validated"
            );
            to_value(&state)
        }
        StepInput::Start { state } => {
            let state = start(*state, cloud, now).await?;
            tracing::info!(execution = %state.execution, made = ?state.made, "restore started");
            to_value(&state)
        }
        StepInput::Check { state } => {
            let state = check(*state, cloud, now).await?;
            tracing::info!(
                execution = %state.execution,
                usable = state.usable,
                failed = ?state.failed,
                polls = state.polls,
                "restore checked"
            );
            to_value(&state)
        }
        StepInput::CopyFiles { state } => {
            let state = copy_files(*state, cloud, now).await?;
            let progress = state.files.clone().unwrap_or_default();
            tracing::info!(
                execution = %state.execution,
                copied_files = progress.copied_files,
                copied_bytes = progress.copied_bytes,
                next = progress.next,
                of = progress.total_entries,
                done = progress.done,
                "files copied"
            );
            to_value(&state)
        }
        StepInput::Finalize { state } => {
            let report = finalize(*state, cloud, now).await?;
            tracing::info!(execution = %report.execution, seconds = report.seconds, "restored");
            to_value(&report)
        }
        StepInput::CleanUp { state, error } => {
            let report = clean_up(*state, error, cloud, now).await?;
            tracing::warn!(
                execution = %report.execution,
                kept = report.kept.len(),
                error = ?report.error,
                "restore failed"
            );
            to_value(&report)
        }
    };
    Ok(out)
}

fn to_value<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).expect("restore state and reports serialize")
}
