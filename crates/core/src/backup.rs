//! The backup run's use cases, one per state of the backup state machine:
//! [`discover`] (policy -> batches of targets), [`snapshot_batch`] (batch ->
//! recovery points), [`refresh_batch`] (completion check) and [`report`].
//!
//! The types here are the JSON that flows between the states.

use std::collections::{BTreeMap, HashMap};

use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};

use crate::error::{CloudError, Error, ErrorKind, ErrorReport};
use crate::model::{
    format_time, parse_time, Location, RecoveryPoint, RecoveryPointKind, RecoveryPointState,
    ResourceType, Target,
};
use crate::policy::{Ec2Mode, Policy, RunInput, DEFAULT_POLL_SECONDS};
use crate::ports::{CreateRequest, Inventory, RecoveryPoints};
use crate::prune::{PointDecision, PruneReport};
use crate::tags::{recovery_point_tags, RunKey};

/// Targets per Map item. Small enough for one Lambda invocation to finish well
/// inside its timeout, large enough that the per-location lookup and
/// completion checks are shared by many targets.
pub const BATCH_SIZE: usize = 50;
/// Creates in flight at once inside one batch.
pub const CREATE_CONCURRENCY: usize = 8;
/// A recovery point still pending this long after the first completion check is failed.
pub const MAX_WAIT_SECONDS: i64 = 24 * 3600;

/// What the state machine passes to Discover.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoverRequest {
    /// The execution's input (a [`RunInput`]); validated here.
    pub input: serde_json::Value,
    /// `$$.Execution.Name`.
    pub execution: String,
    /// `$$.Execution.StartTime`, used when the input has no `scheduled_time`.
    pub started_at: String,
}

/// A source left out, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    pub resource_type: ResourceType,
    pub id: String,
    pub region: String,
    pub reason: String,
}

/// A region whose listing failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionError {
    pub region: String,
    pub error: ErrorReport,
}

/// One Map item: targets at one location, self-contained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    pub run: RunKey,
    pub policy: Policy,
    pub location: Location,
    pub poll_seconds: u32,
    pub targets: Vec<Target>,
}

/// Discover's output: the run's identity, what was found, and the batches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscoverOutput {
    pub run: RunKey,
    /// The validated policy, for the stages after the snapshots (Prune).
    pub policy: Policy,
    /// Prune computes and reports its plan but deletes nothing.
    pub prune_dry_run: bool,
    pub poll_seconds: u32,
    /// Selected sources per type.
    pub found: BTreeMap<ResourceType, usize>,
    pub skipped: Vec<Skipped>,
    pub region_errors: Vec<RegionError>,
    pub batches: Vec<Batch>,
}

/// Validates the input, lists every region, and cuts the selection into batches.
/// Fails before any call on bad input; fails (to be retried) when a region is
/// throttled; records other region failures and goes on with the rest.
pub async fn discover<I: Inventory>(
    req: DiscoverRequest,
    inventory: &I,
) -> Result<DiscoverOutput, Error> {
    let input = RunInput::parse(req.input)?;
    if req.execution.is_empty() {
        return Err(Error::invalid(
            "execution",
            "is empty; pass $$.Execution.Name",
        ));
    }
    let run = RunKey {
        policy: input.policy.name.clone(),
        scheduled_time: input.scheduled_time_or(&req.started_at)?,
        execution: req.execution,
    };
    let policy = input.policy;
    let sel = &policy.selector;
    let listings = futures::future::join_all(sel.regions.iter().map(|r| async move {
        (
            r.clone(),
            inventory
                .find_sources(r, &sel.resource_types, &sel.tags)
                .await,
        )
    }))
    .await;

    let mut found = BTreeMap::new();
    let mut skipped = Vec::new();
    let mut region_errors = Vec::new();
    let mut by_location: BTreeMap<Location, Vec<Target>> = BTreeMap::new();
    for (region, listing) in listings {
        let sources = match listing {
            Ok(s) => s,
            Err(e) if e.kind.is_retryable() => return Err(e.into()),
            Err(e) => {
                region_errors.push(RegionError {
                    region,
                    error: ErrorReport::from(&e),
                });
                continue;
            }
        };
        for s in sources {
            if !policy.selects_type(s.target.resource_type) {
                continue;
            }
            if let Some(reason) = sel.rejection(&s.target.tags) {
                skipped.push(Skipped {
                    resource_type: s.target.resource_type,
                    id: s.target.id.clone(),
                    region: s.location.region.clone(),
                    reason,
                });
                continue;
            }
            *found.entry(s.target.resource_type).or_insert(0) += 1;
            by_location.entry(s.location).or_default().push(s.target);
        }
    }
    let poll_seconds = input.poll_seconds.unwrap_or(DEFAULT_POLL_SECONDS);
    let mut batches = Vec::new();
    for (location, mut targets) in by_location {
        targets.sort_by(|a, b| (a.resource_type, &a.id).cmp(&(b.resource_type, &b.id)));
        for chunk in targets.chunks(BATCH_SIZE) {
            batches.push(Batch {
                run: run.clone(),
                policy: policy.clone(),
                location: location.clone(),
                poll_seconds,
                targets: chunk.to_vec(),
            });
        }
    }
    Ok(DiscoverOutput {
        run,
        prune_dry_run: input.prune_dry_run,
        policy: policy.clone(),
        poll_seconds,
        found,
        skipped,
        region_errors,
        batches,
    })
}

/// What happened to one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// A new recovery point was made.
    Created,
    /// This run's recovery point existed already (a retry or a re-run).
    Existing,
    /// No recovery point; see `error`.
    Failed,
}

/// One target's result. Tags are left out to keep the state small.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetResult {
    pub resource_type: ResourceType,
    pub id: String,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_point: Option<RecoveryPoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorReport>,
}

/// A batch after Snapshot (and after each Status).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchResult {
    pub run: RunKey,
    pub location: Location,
    pub poll_seconds: u32,
    pub results: Vec<TargetResult>,
    /// Recovery points still pending: the state machine waits while this is > 0.
    pub pending: usize,
    /// Completion checks done so far.
    pub polls: u32,
    /// When the first completion check ran (RFC 3339): the start of the
    /// [`MAX_WAIT_SECONDS`] a recovery point may stay pending. Counting from the
    /// check rather than the scheduled time keeps a late re-run or a redrive
    /// from failing fresh snapshots at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_since: Option<String>,
}

impl BatchResult {
    fn count_pending(&mut self) {
        self.pending = self
            .results
            .iter()
            .filter_map(|r| r.recovery_point.as_ref())
            .filter(|p| p.state == RecoveryPointState::Pending)
            .count();
    }
}

/// Whether the per-location lookup (not a deterministic name) makes `t` idempotent.
fn lookup_covers(batch: &Batch, t: ResourceType) -> bool {
    match t {
        ResourceType::EbsVolume => true,
        ResourceType::Ec2Instance => batch.policy.ec2.mode == Ec2Mode::Snapshots,
        _ => false,
    }
}

fn needs_lookup(batch: &Batch) -> bool {
    batch
        .targets
        .iter()
        .any(|t| lookup_covers(batch, t.resource_type))
}

/// Makes this run's recovery point of every target in the batch, exactly once:
/// one idempotency lookup per location for the kinds whose ids AWS picks,
/// deterministic names for the rest. One target failing does not stop the others.
/// Fails as a whole only when the lookup is throttled (nothing was created yet).
pub async fn snapshot_batch<P: RecoveryPoints>(
    batch: Batch,
    cloud: &P,
) -> Result<BatchResult, Error> {
    let run = &batch.run;
    let location = &batch.location;
    // Without a complete lookup we cannot know what exists, so we create nothing
    // of the kinds it covers.
    let (existing, lookup_error): (HashMap<String, RecoveryPoint>, Option<CloudError>) =
        if needs_lookup(&batch) {
            match cloud.find_run_snapshots(location, run).await {
                Ok(points) => (
                    points.into_iter().map(|p| (p.source.clone(), p)).collect(),
                    None,
                ),
                Err(e) if e.kind.is_retryable() => return Err(e.into()),
                Err(e) => (HashMap::new(), Some(e)),
            }
        } else {
            (HashMap::new(), None)
        };
    let lookup_error = lookup_error.map(|e| ErrorReport::from(&e));

    let policy = &batch.policy;
    let results: Vec<(usize, TargetResult)> = stream::iter(batch.targets.iter().enumerate())
        .map(|(i, target)| {
            let existing = &existing;
            let lookup_error = &lookup_error;
            async move {
                let base = |outcome, recovery_point, error| TargetResult {
                    resource_type: target.resource_type,
                    id: target.id.clone(),
                    outcome,
                    recovery_point,
                    error,
                };
                let covered = match target.resource_type {
                    ResourceType::EbsVolume => true,
                    ResourceType::Ec2Instance => policy.ec2.mode == Ec2Mode::Snapshots,
                    _ => false,
                };
                if covered {
                    if let Some(e) = lookup_error {
                        return (i, base(Outcome::Failed, None, Some(e.clone())));
                    }
                    if let Some(p) = existing.get(target.source_ref()) {
                        return (i, base(Outcome::Existing, Some(p.clone()), None));
                    }
                }
                let request = CreateRequest {
                    location,
                    target,
                    run,
                    name: run.recovery_point_name(target),
                    tags: recovery_point_tags(policy, run, target, location),
                    ec2: &policy.ec2,
                };
                match cloud.create(&request).await {
                    Ok(c) => {
                        let outcome = if c.existed {
                            Outcome::Existing
                        } else {
                            Outcome::Created
                        };
                        (i, base(outcome, Some(c.recovery_point), None))
                    }
                    Err(e) => (i, base(Outcome::Failed, None, Some(ErrorReport::from(&e)))),
                }
            }
        })
        .buffer_unordered(CREATE_CONCURRENCY)
        .collect()
        .await;
    let mut results = results;
    results.sort_by_key(|(i, _)| *i);
    // EBS and instance snapshots have no client token, so their creates are not
    // retried in place: a transient failure fails the batch, and the retried
    // batch's lookup finds whatever the first attempt made.
    if let Some((_, r)) = results.iter().find(|(_, r)| {
        lookup_covers(&batch, r.resource_type)
            && r.error
                .as_ref()
                .is_some_and(|e| e.error_type == ErrorKind::Throttled.error_type())
    }) {
        let e = r.error.as_ref().expect("checked above");
        return Err(CloudError::new(
            ErrorKind::Throttled,
            "CreateSnapshot",
            &r.id,
            &batch.location.region,
            e.message.clone(),
        )
        .into());
    }
    let mut out = BatchResult {
        run: batch.run.clone(),
        location: batch.location.clone(),
        poll_seconds: batch.poll_seconds,
        results: results.into_iter().map(|(_, r)| r).collect(),
        pending: 0,
        polls: 0,
        waiting_since: None,
    };
    out.count_pending();
    Ok(out)
}

/// The completion check: refreshes every pending recovery point of the batch
/// (at most one describe per kind). A point that vanished, or is still pending
/// [`MAX_WAIT_SECONDS`] after the scheduled time, is failed.
pub async fn refresh_batch<P: RecoveryPoints>(
    mut batch: BatchResult,
    cloud: &P,
    now: time::OffsetDateTime,
) -> Result<BatchResult, Error> {
    let pending: Vec<RecoveryPoint> = batch
        .results
        .iter()
        .filter_map(|r| r.recovery_point.clone())
        .filter(|p| p.state == RecoveryPointState::Pending)
        .collect();
    if !pending.is_empty() {
        let fresh = cloud.refresh(&batch.location, &pending).await?;
        let fresh: HashMap<(RecoveryPointKind, String), RecoveryPoint> = fresh
            .into_iter()
            .map(|p| ((p.kind, p.id.clone()), p))
            .collect();
        let since = match &batch.waiting_since {
            Some(t) => parse_time(t).map_err(|e| Error::invalid("waiting_since", e.to_string()))?,
            None => {
                batch.waiting_since = Some(format_time(now));
                now
            }
        };
        let overdue = (now - since).whole_seconds() > MAX_WAIT_SECONDS;
        for r in batch.results.iter_mut() {
            let Some(p) = r.recovery_point.as_mut() else {
                continue;
            };
            if p.state != RecoveryPointState::Pending {
                continue;
            }
            match fresh.get(&(p.kind, p.id.clone())) {
                Some(f) => p.state = f.state,
                None => {
                    p.state = RecoveryPointState::Failed;
                    r.error = Some(ErrorReport {
                        error_type: ErrorKind::NotFound.error_type().into(),
                        message: format!("recovery point {} disappeared before it completed", p.id),
                    });
                }
            }
            if p.state == RecoveryPointState::Pending && overdue {
                p.state = RecoveryPointState::Failed;
                r.error = Some(ErrorReport {
                    error_type: ErrorKind::NotReady.error_type().into(),
                    message: format!(
                        "recovery point {} still pending {} hours after the scheduled time",
                        p.id,
                        MAX_WAIT_SECONDS / 3600
                    ),
                });
            }
            if p.state == RecoveryPointState::Failed && r.error.is_none() {
                r.error = Some(ErrorReport {
                    error_type: ErrorKind::Internal.error_type().into(),
                    message: format!("recovery point {} ended in an error state", p.id),
                });
            }
        }
    }
    batch.polls += 1;
    batch.count_pending();
    Ok(batch)
}

/// Error and cause as Step Functions hands them to a `Catch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatesError {
    #[serde(rename = "Error")]
    pub error: String,
    #[serde(rename = "Cause", default)]
    pub cause: String,
}

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
pub struct Failure {
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
    pub skipped: usize,
    pub recovery_points: Counts,
    pub failures: Vec<Failure>,
    /// Every recovery point of the run, by source.
    pub recovery_point_ids: BTreeMap<String, String>,
    /// What the Prune stage did (absent when the run had no Prune stage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune: Option<PruneSummary>,
}

/// Folds every batch into the run summary.
pub fn report(req: ReportRequest) -> RunReport {
    let mut counts = Counts::default();
    let mut failures: Vec<Failure> = req
        .region_errors
        .iter()
        .map(|e| Failure {
            resource_type: None,
            id: None,
            region: e.region.clone(),
            error_type: e.error.error_type.clone(),
            message: e.error.message.clone(),
        })
        .collect();
    let mut ids = BTreeMap::new();
    let bump = |m: &mut BTreeMap<ResourceType, usize>, t| *m.entry(t).or_insert(0) += 1;
    for b in &req.batches {
        match b {
            BatchOutcome::Done(r) => {
                for t in &r.results {
                    match t.outcome {
                        Outcome::Created => bump(&mut counts.created, t.resource_type),
                        Outcome::Existing => bump(&mut counts.existing, t.resource_type),
                        Outcome::Failed => {}
                    }
                    let state = t.recovery_point.as_ref().map(|p| p.state);
                    if let Some(p) = &t.recovery_point {
                        ids.insert(t.id.clone(), p.id.clone());
                    }
                    match state {
                        Some(RecoveryPointState::Completed) => {
                            bump(&mut counts.completed, t.resource_type)
                        }
                        Some(RecoveryPointState::Pending) => {}
                        _ => {
                            bump(&mut counts.failed, t.resource_type);
                            let e = t.error.clone().unwrap_or(ErrorReport {
                                error_type: ErrorKind::Internal.error_type().into(),
                                message: "failed without an error report".into(),
                            });
                            failures.push(Failure {
                                resource_type: Some(t.resource_type),
                                id: Some(t.id.clone()),
                                region: r.location.region.clone(),
                                error_type: e.error_type,
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
                if let Some(e) = &l.aborted {
                    failures.push(Failure {
                        resource_type: None,
                        id: None,
                        region: region.clone(),
                        error_type: e.error_type.clone(),
                        message: format!("prune aborted: {}", e.message),
                    });
                }
                for f in &l.failures {
                    failures.push(Failure {
                        resource_type: None,
                        id: Some(f.id.clone()),
                        region: region.clone(),
                        error_type: f.error.error_type.clone(),
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
    let selected: usize = req.found.values().sum();
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
        skipped: req.skipped.len(),
        recovery_points: counts,
        failures,
        recovery_point_ids: ids,
        prune,
    }
}
