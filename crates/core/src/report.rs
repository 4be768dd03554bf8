//! The run report: folds Discover's summary, every Map item's outcome and the
//! Prune stage's report into the backup state machine's output.

use crate::quota::QuotaWarning;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::backup::discover::{Findings, RegionError, Skipped};
use crate::backup::snapshot::{BatchResult, Outcome};
use crate::error::Error;
use crate::error::{ErrorKind, ErrorReport};
use crate::model::{Location, RecoveryPointState, ResourceType};
use crate::ports::ObjectStore;
use crate::prune::{PointDecision, PruneReport};
use crate::runs::{RunFiles, S3Object};
use crate::sfn::StatesError;
use crate::tags::RunKey;

/// A Map item whose Snapshot or Status step failed after its retries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedBatch {
    pub location: Location,
    pub targets: Vec<TargetRef>,
    pub error: StatesError,
}

/// Type and id of a target (what a failed batch reports).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetRef {
    pub resource_type: ResourceType,
    pub id: String,
}

/// What a Map item ends with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum BatchOutcome {
    Done(BatchResult),
    Failed(FailedBatch),
}

/// Report's input: Discover's summary and every Map item's outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportRequest {
    pub run: RunKey,
    pub found: BTreeMap<ResourceType, usize>,
    #[serde(default)]
    pub skipped: Vec<Skipped>,
    #[serde(default)]
    pub region_errors: Vec<RegionError>,
    pub batches: Vec<BatchOutcome>,
    /// The Prune stage's report, or its error after retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune: Option<PruneOutcome>,
    /// Discover's quota preflight.
    #[serde(default)]
    pub quota_warnings: Vec<QuotaWarning>,
    /// The snapshot stage (the Distributed Map) failed as a whole: its error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshots_error: Option<StatesError>,
    /// Each copy destination's outcome.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub copies: Vec<DestinationReport>,
}

/// What a destination's copy loop ended with (the Copies Map's item).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CopyOutcome {
    Done(crate::copy::CopyPassOutput),
    Failed {
        destination: usize,
        error: StatesError,
    },
}

/// One recovery point that did not reach a destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyFailure {
    pub recovery_point: String,
    pub source: String,
    /// The snapshot whose copy failed (an instance set's member), if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    pub error_type: String,
    pub message: String,
}

/// A destination in the run report: its copies counted, and every failure
/// with the AWS code in its message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestinationReport {
    pub destination: usize,
    /// Absent when the loop failed before it knew the location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    pub counts: crate::copy::CopyCounts,
    /// The most copies in flight at once per limit, over the passes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub peak_in_flight: BTreeMap<crate::copy::CopyLimit, usize>,
    pub passes: usize,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<CopyFailure>,
    /// The loop itself failed: its error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<StatesError>,
}

impl DestinationReport {
    /// A destination's report from its final state file.
    pub fn from_state(state: &crate::copy::CopyState, counts: crate::copy::CopyCounts) -> Self {
        let mut peak: BTreeMap<crate::copy::CopyLimit, usize> = BTreeMap::new();
        for pass in &state.passes {
            for (l, r) in pass {
                let p = peak.entry(*l).or_insert(0);
                *p = (*p).max(r.in_flight);
            }
        }
        let mut failures = Vec::new();
        for job in &state.jobs {
            let failed_unit = job
                .units
                .iter()
                .find(|u| u.state == crate::copy::UnitState::Failed || u.error.is_some());
            let error = failed_unit
                .and_then(|u| u.error.clone())
                .or_else(|| job.error.clone());
            if let Some(e) = error {
                failures.push(CopyFailure {
                    recovery_point: job.point.id.clone(),
                    source: job.point.source.clone(),
                    snapshot: failed_unit.map(|u| u.source.clone()),
                    error_type: e.error_type.error_type().into(),
                    message: e.message,
                });
            }
        }
        Self {
            destination: state.destination,
            location: Some(state.location.clone()),
            counts,
            peak_in_flight: peak,
            passes: state.passes.len(),
            failures,
            error: None,
        }
    }
}

/// What the Prune stage ended with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PruneOutcome {
    Done(PruneReport),
    Failed(StatesError),
    /// Prune did not run (the snapshot stage failed as a whole): why.
    Skipped {
        skipped: String,
    },
}

/// The prune part of the run summary: counts, every deletion and refusal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneSummary {
    pub dry_run: bool,
    pub deleted: usize,
    pub kept: usize,
    pub refused: usize,
    pub failed: usize,
    pub deleted_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refusals: Vec<PointDecision>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// How a run went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunOutcome {
    /// Every selected source has a completed recovery point.
    Succeeded,
    /// Some did, some failed.
    Partial,
    /// Nothing was protected although something was selected or a region failed.
    Failed,
    /// Nothing matched the selector.
    NothingSelected,
}

/// A failure in the run report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
/// `error_type` is a `Strongroom.*` name, or the Step Functions error
/// (`States.*`, `Lambda.*`) of a batch that failed as a whole.
pub struct Failure {
    /// The account, when the policy names accounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    pub resource_type: Option<ResourceType>,
    pub id: Option<String>,
    pub region: String,
    pub error_type: String,
    pub message: String,
}

/// Counts per resource type.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub created: BTreeMap<ResourceType, usize>,
    pub existing: BTreeMap<ResourceType, usize>,
    pub completed: BTreeMap<ResourceType, usize>,
    pub failed: BTreeMap<ResourceType, usize>,
}

/// The run summary (the backup state machine's output).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunReport {
    pub run: RunKey,
    pub outcome: RunOutcome,
    pub resources_found: BTreeMap<ResourceType, usize>,
    /// Sources left out: by `exclude_tags`, or gone by the time of their
    /// snapshot (the Tagging API lists deleted resources for a while).
    pub skipped: usize,
    pub recovery_points: Counts,
    pub failures: Vec<Failure>,
    /// Every recovery point of the run, by source (its `strongroom:source`:
    /// the id of an EC2 source, the ARN of a database, unique across accounts).
    pub recovery_point_ids: BTreeMap<String, String>,
    /// What the Prune stage did (absent when the run had no Prune stage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune: Option<PruneSummary>,
    /// Quotas this run or the policy's retention will run into (Discover's
    /// preflight): warnings, not failures.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quota_warnings: Vec<QuotaWarning>,
    /// Copies per destination: started, reused, completed, failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub copies: Vec<DestinationReport>,
}

/// Folds every batch into the run summary.
pub fn report(req: ReportRequest) -> RunReport {
    let mut counts = Counts::default();
    let mut failures: Vec<Failure> = req
        .region_errors
        .iter()
        .map(|e| Failure {
            account: e.account.clone(),
            resource_type: None,
            id: None,
            region: e.region.clone(),
            error_type: e.error.error_type.error_type().into(),
            message: e.error.message.clone(),
        })
        .collect();
    if let Some(e) = &req.snapshots_error {
        failures.push(Failure {
            account: None,
            resource_type: None,
            id: None,
            region: String::new(),
            error_type: e.error.clone(),
            message: format!("the snapshot stage failed: {}", brief(&e.cause)),
        });
    }
    let mut ids = BTreeMap::new();
    let mut skipped = req.skipped.len();
    // Selected sources found gone when their snapshot was due.
    let mut gone = 0;
    let bump = |m: &mut BTreeMap<ResourceType, usize>, t| *m.entry(t).or_insert(0) += 1;
    for b in &req.batches {
        match b {
            BatchOutcome::Done(r) => {
                for t in &r.results {
                    match t.outcome {
                        Outcome::Created => bump(&mut counts.created, t.resource_type),
                        Outcome::Existing => bump(&mut counts.existing, t.resource_type),
                        // Still unconfirmed at the end: no recovery point is known.
                        Outcome::Failed | Outcome::Unconfirmed => {}
                        Outcome::Skipped => {
                            skipped += 1;
                            gone += 1;
                            continue;
                        }
                    }
                    let state = t.recovery_point.as_ref().map(|p| p.state);
                    if let Some(p) = &t.recovery_point {
                        ids.insert(p.source.clone(), p.id.clone());
                    }
                    match state {
                        Some(RecoveryPointState::Completed) => {
                            bump(&mut counts.completed, t.resource_type)
                        }
                        Some(RecoveryPointState::Pending) => {}
                        _ => {
                            bump(&mut counts.failed, t.resource_type);
                            let e = t.error.clone().unwrap_or(ErrorReport::new(
                                ErrorKind::Internal,
                                "failed without an error report",
                            ));
                            failures.push(Failure {
                                account: Some(r.location.account.clone()),
                                resource_type: Some(t.resource_type),
                                id: Some(t.id.clone()),
                                region: r.location.region.clone(),
                                error_type: e.error_type.error_type().into(),
                                message: e.message,
                            });
                        }
                    }
                }
            }
            BatchOutcome::Failed(f) => {
                if f.targets.is_empty() {
                    failures.push(Failure {
                        account: None,
                        resource_type: None,
                        id: None,
                        region: f.location.region.clone(),
                        error_type: f.error.error.clone(),
                        message: brief(&f.error.cause),
                    });
                }
                for t in &f.targets {
                    bump(&mut counts.failed, t.resource_type);
                    failures.push(Failure {
                        account: Some(f.location.account.clone()),
                        resource_type: Some(t.resource_type),
                        id: Some(t.id.clone()),
                        region: f.location.region.clone(),
                        error_type: f.error.error.clone(),
                        message: brief(&f.error.cause),
                    });
                }
            }
        }
    }
    for d in &req.copies {
        let region = d
            .location
            .as_ref()
            .map(|l| l.region.clone())
            .unwrap_or_default();
        let account = d.location.as_ref().map(|l| l.account.clone());
        if let Some(e) = &d.error {
            failures.push(Failure {
                account: account.clone(),
                resource_type: None,
                id: None,
                region: region.clone(),
                error_type: e.error.clone(),
                message: format!(
                    "the copies to destination {} failed: {}",
                    d.destination,
                    brief(&e.cause)
                ),
            });
        }
        for f in &d.failures {
            failures.push(Failure {
                account: account.clone(),
                resource_type: None,
                id: Some(f.recovery_point.clone()),
                region: region.clone(),
                error_type: f.error_type.clone(),
                message: format!("copy failed: {}", f.message),
            });
        }
    }
    let prune = req.prune.as_ref().and_then(|p| match p {
        PruneOutcome::Done(r) => {
            for l in &r.locations {
                let region = l
                    .location
                    .as_ref()
                    .map(|l| l.region.clone())
                    .unwrap_or_default();
                let account = l.location.as_ref().map(|l| l.account.clone());
                if let Some(e) = &l.aborted {
                    failures.push(Failure {
                        account: account.clone(),
                        resource_type: None,
                        id: None,
                        region: region.clone(),
                        error_type: e.error_type.error_type().into(),
                        message: format!("prune aborted: {}", e.message),
                    });
                }
                for f in &l.failures {
                    failures.push(Failure {
                        account: account.clone(),
                        resource_type: None,
                        id: Some(f.id.clone()),
                        region: region.clone(),
                        error_type: f.error.error_type.error_type().into(),
                        message: format!("delete failed: {}", f.error.message),
                    });
                }
            }
            Some(PruneSummary {
                dry_run: r.dry_run,
                deleted: r.deleted,
                kept: r.kept,
                refused: r.refused,
                failed: r.failed,
                deleted_ids: r
                    .locations
                    .iter()
                    .flat_map(|l| l.deleted.iter().map(|d| d.id.clone()))
                    .collect(),
                refusals: r.locations.iter().flat_map(|l| l.refused.clone()).collect(),
                notes: r.notes.clone(),
            })
        }
        PruneOutcome::Failed(e) => {
            failures.push(Failure {
                account: None,
                resource_type: None,
                id: None,
                region: String::new(),
                error_type: e.error.clone(),
                message: format!("prune failed: {}", e.cause),
            });
            Some(PruneSummary {
                failed: 1,
                ..Default::default()
            })
        }
        PruneOutcome::Skipped { .. } => None,
    });
    let selected: usize = req.found.values().sum::<usize>() - gone;
    let completed: usize = counts.completed.values().sum();
    let outcome = if failures.is_empty() && selected == 0 {
        RunOutcome::NothingSelected
    } else if failures.is_empty() {
        RunOutcome::Succeeded
    } else if completed > 0 {
        RunOutcome::Partial
    } else {
        RunOutcome::Failed
    };
    RunReport {
        run: req.run,
        outcome,
        resources_found: req.found,
        skipped,
        recovery_points: counts,
        failures,
        recovery_point_ids: ids,
        prune,
        quota_warnings: req.quota_warnings,
        copies: req.copies,
    }
}

/// The longest Step Functions cause a failure quotes: a `States.*` cause may
/// carry a whole state input.
pub const MAX_CAUSE_CHARS: usize = 1000;

/// `cause`, cut at [`MAX_CAUSE_CHARS`] characters.
fn brief(cause: &str) -> String {
    match cause.char_indices().nth(MAX_CAUSE_CHARS) {
        Some((at, _)) => format!("{}… (cut at {MAX_CAUSE_CHARS} characters)", &cause[..at]),
        None => cause.to_owned(),
    }
}

/// Failures the run summary shows; the rest are in the report file.
pub const SUMMARY_FAILURES: usize = 10;

/// Where a Distributed Map's `ResultWriter` put its manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultWriterDetails {
    #[serde(rename = "Bucket")]
    pub bucket: String,
    #[serde(rename = "Key")]
    pub key: String,
}

/// A Distributed Map's output when it has a `ResultWriter`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapRunOutput {
    #[serde(rename = "MapRunArn")]
    pub map_run_arn: String,
    #[serde(rename = "ResultWriterDetails")]
    pub result_writer_details: ResultWriterDetails,
}

/// What the snapshot stage ended with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SnapshotsOutcome {
    Written(MapRunOutput),
    Failed(StatesError),
}

/// The Report function's input: where the run's files are, and what the
/// snapshot and prune stages ended with.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportRun {
    pub run: RunKey,
    /// Discover's `files`.
    pub files: RunFiles,
    /// The Distributed Map's output, or its error.
    pub snapshots: SnapshotsOutcome,
    /// The copy stage's outcome per destination (empty without copies).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub copies: Vec<CopyOutcome>,
    /// The Prune stage's output, or its error; absent when it did not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune: Option<PruneOutcome>,
}

/// The prune counts of the run summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneCounts {
    pub dry_run: bool,
    pub deleted: usize,
    pub kept: usize,
    pub refused: usize,
    pub failed: usize,
}

/// The backup state machine's output: the run report's counts, its first
/// failures, and where the whole report is. Its size does not grow with the
/// estate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSummary {
    pub run: RunKey,
    pub outcome: RunOutcome,
    pub resources_found: BTreeMap<ResourceType, usize>,
    pub skipped: usize,
    pub recovery_points: Counts,
    /// How many failures the report lists.
    pub failures: usize,
    /// The first [`SUMMARY_FAILURES`] of them.
    pub first_failures: Vec<Failure>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune: Option<PruneCounts>,
    pub quota_warnings: usize,
    /// Copies per destination (failures are in `failures`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub copies: Vec<CopySummary>,
    /// The whole [`RunReport`].
    pub report: S3Object,
}

/// A destination's counts in the run summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopySummary {
    pub destination: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    pub counts: crate::copy::CopyCounts,
}

impl RunSummary {
    pub fn new(r: &RunReport, report: S3Object) -> Self {
        Self {
            run: r.run.clone(),
            outcome: r.outcome,
            resources_found: r.resources_found.clone(),
            skipped: r.skipped,
            recovery_points: r.recovery_points.clone(),
            failures: r.failures.len(),
            first_failures: r.failures.iter().take(SUMMARY_FAILURES).cloned().collect(),
            prune: r.prune.as_ref().map(|p| PruneCounts {
                dry_run: p.dry_run,
                deleted: p.deleted,
                kept: p.kept,
                refused: p.refused,
                failed: p.failed,
            }),
            quota_warnings: r.quota_warnings.len(),
            copies: r
                .copies
                .iter()
                .map(|d| CopySummary {
                    destination: d.destination,
                    location: d.location.clone(),
                    counts: d.counts.clone(),
                })
                .collect(),
            report,
        }
    }
}

/// The `ResultWriter`'s manifest (`manifest.json`).
#[derive(Debug, Deserialize)]
struct Manifest {
    #[serde(rename = "ResultFiles", default)]
    result_files: BTreeMap<String, Vec<ResultFile>>,
}

#[derive(Debug, Deserialize)]
struct ResultFile {
    #[serde(rename = "Key")]
    key: String,
}

/// One child execution in a result file (`SUCCEEDED_n.json`, `FAILED_n.json`,
/// `PENDING_n.json`): its input and output are JSON in strings.
#[derive(Debug, Deserialize)]
struct ResultRow {
    #[serde(rename = "Input", default)]
    input: String,
    #[serde(rename = "Output")]
    output: Option<String>,
    #[serde(rename = "Status")]
    status: String,
    #[serde(rename = "Error")]
    error: Option<String>,
    #[serde(rename = "Cause")]
    cause: Option<String>,
}

/// What a failed child's input tells: its location and targets.
#[derive(Debug, Deserialize)]
struct ChildInput {
    location: Location,
    targets: Vec<TargetRef>,
}

/// Reads the run's files (Discover's findings, every Map Run result file,
/// Prune's full report), folds them into the [`RunReport`], writes that to
/// `files.report` and returns its [`RunSummary`].
pub async fn report_run<S: ObjectStore>(req: ReportRun, store: &S) -> Result<RunSummary, Error> {
    req.files.validate(&req.run, "files")?;
    let files = &req.files;
    let findings: Findings = read_json(store, &files.object(&files.discovery)).await?;
    if findings.run != req.run {
        return Err(Error::invalid(
            "files.discovery",
            "holds the findings of another run; pass Discover's `files` unchanged",
        ));
    }
    let batches = read_batches(store, files, &req.snapshots).await?;
    let snapshots_error = match &req.snapshots {
        SnapshotsOutcome::Failed(e) => Some(e.clone()),
        SnapshotsOutcome::Written(_) => None,
    };
    let mut copies = Vec::new();
    for c in &req.copies {
        copies.push(match c {
            CopyOutcome::Done(out) => {
                let expected = crate::copy::state_key(files, out.destination);
                if out.state.bucket != files.bucket || out.state.key != expected {
                    return Err(Error::invalid(
                        "copies",
                        format!("names {}, not s3://{}/{expected}", out.state, files.bucket),
                    ));
                }
                let state: crate::copy::CopyState = read_json(store, &out.state).await?;
                DestinationReport::from_state(&state, out.counts.clone())
            }
            CopyOutcome::Failed { destination, error } => DestinationReport {
                destination: *destination,
                location: None,
                counts: Default::default(),
                peak_in_flight: BTreeMap::new(),
                passes: 0,
                failures: vec![],
                error: Some(error.clone()),
            },
        });
    }
    let prune = match req.prune {
        Some(PruneOutcome::Done(p)) => match &p.full_report {
            Some(full) => {
                if full.bucket != files.bucket || full.key != files.prune {
                    return Err(Error::invalid(
                        "prune.full_report",
                        format!("is not s3://{}/{}", files.bucket, files.prune),
                    ));
                }
                Some(PruneOutcome::Done(read_json(store, full).await?))
            }
            None => Some(PruneOutcome::Done(p)),
        },
        other => other,
    };
    let full = report(ReportRequest {
        run: req.run,
        found: findings.found,
        skipped: findings.skipped,
        region_errors: findings.region_errors,
        batches,
        prune,
        quota_warnings: findings.quota_warnings,
        snapshots_error,
        copies,
    });
    let at = files.object(&files.report);
    let body = serde_json::to_vec_pretty(&full).map_err(|e| Error::Internal(e.to_string()))?;
    store.put_object(&at, body).await?;
    Ok(RunSummary::new(&full, at))
}

/// Every batch outcome of the snapshot stage, from its Map Run's result
/// files (none when the stage failed as a whole). Files outside the run's
/// `results` prefix are refused before any read.
pub async fn read_batches<S: ObjectStore>(
    store: &S,
    files: &RunFiles,
    snapshots: &SnapshotsOutcome,
) -> Result<Vec<BatchOutcome>, Error> {
    let mut batches = Vec::new();
    if let SnapshotsOutcome::Written(out) = snapshots {
        let details = &out.result_writer_details;
        if details.bucket != files.bucket || !details.key.starts_with(&files.results) {
            return Err(Error::invalid(
                "snapshots.ResultWriterDetails",
                format!(
                    "is not under s3://{}/{}; the snapshot Map's ResultWriter must write there",
                    files.bucket, files.results
                ),
            ));
        }
        let manifest: Manifest = read_json(store, &files.object(&details.key)).await?;
        for (status, result_files) in &manifest.result_files {
            for f in result_files {
                let rows: Vec<ResultRow> = read_json(store, &files.object(&f.key)).await?;
                batches.extend(rows.into_iter().map(|r| outcome_of(r, status)));
            }
        }
    }
    Ok(batches)
}

async fn read_json<T: serde::de::DeserializeOwned, S: ObjectStore>(
    store: &S,
    object: &S3Object,
) -> Result<T, Error> {
    let body = store.get_object(object).await?;
    serde_json::from_slice(&body)
        .map_err(|e| Error::Internal(format!("{object} is not what Strongroom wrote there: {e}")))
}

/// A child execution's row as a batch outcome: its output when it
/// succeeded, else a failed batch of its input's targets.
fn outcome_of(row: ResultRow, file_status: &str) -> BatchOutcome {
    if row.status == "SUCCEEDED" {
        if let Some(out) = &row.output {
            match serde_json::from_str::<BatchOutcome>(out) {
                Ok(o) => return o,
                Err(e) => {
                    return failed_child(
                        &row,
                        StatesError {
                            error: ErrorKind::Internal.error_type().into(),
                            cause: format!("the batch's output is unreadable: {e}"),
                        },
                    )
                }
            }
        }
    }
    let error = StatesError {
        error: row
            .error
            .clone()
            .unwrap_or_else(|| ErrorKind::Internal.error_type().into()),
        cause: row.cause.clone().unwrap_or_else(|| {
            format!(
                "the batch's child execution ended {} ({file_status})",
                row.status
            )
        }),
    };
    failed_child(&row, error)
}

fn failed_child(row: &ResultRow, error: StatesError) -> BatchOutcome {
    match serde_json::from_str::<ChildInput>(&row.input) {
        Ok(input) => BatchOutcome::Failed(FailedBatch {
            location: input.location,
            targets: input.targets,
            error,
        }),
        // Without a readable input a failed child names no targets: the
        // run still reports its error.
        Err(_) => BatchOutcome::Failed(FailedBatch {
            location: Location {
                account: String::new(),
                region: String::new(),
            },
            targets: vec![],
            error,
        }),
    }
}
