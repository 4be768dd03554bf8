//! The run report: folds Discover's summary, every Map item's outcome and the
//! Prune stage's report into the backup state machine's output.

use crate::quota::QuotaWarning;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::backup::discover::{RegionError, Skipped};
use crate::backup::snapshot::{BatchResult, Outcome};
use crate::error::{ErrorKind, ErrorReport};
use crate::model::{Location, RecoveryPointState, ResourceType};
use crate::prune::{PointDecision, PruneReport};
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
}

/// What the Prune stage ended with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PruneOutcome {
    Done(PruneReport),
    Failed(StatesError),
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
                for t in &f.targets {
                    bump(&mut counts.failed, t.resource_type);
                    failures.push(Failure {
                        account: Some(f.location.account.clone()),
                        resource_type: Some(t.resource_type),
                        id: Some(t.id.clone()),
                        region: f.location.region.clone(),
                        error_type: f.error.error.clone(),
                        message: f.error.cause.clone(),
                    });
                }
            }
        }
    }
    let prune = req.prune.as_ref().map(|p| match p {
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
            PruneSummary {
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
            }
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
            PruneSummary {
                failed: 1,
                ..Default::default()
            }
        }
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
    }
}
